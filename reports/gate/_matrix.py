"""``matrix BUNDLE...``: which adapter versions are verified against which engines, under which suite.

Modelled on Pact's matrix (can-i-deploy asks "verified against this version?") and the Gateway
API conformance reports (each claim names its versions and its date). Rows are adapter name and
version, columns engine dialect and engine version, as ``environment.json`` recorded them; a cell
lists one entry per suite version (newest run of each), newest suite first:

* ``verified`` — no ``fail`` and no ``error`` verdict for that adapter, made with the *current*
  requirement catalogue; ``(subset)`` when the run selected requirements or only MUST levels;
* ``failing`` — a ``fail`` or ``error`` verdict (the count says how many);
* ``stale`` — made with an older catalogue (its digest differs from the installed one: IDs,
  levels or texts changed), whatever it said then: it does not answer the current question.

Run-wide scenarios (adapter ``*``) compare adapters with each other; they are not one adapter's
claim and are left out, as are names that are no target of the run (the placeholder of
scenarios no selected adapter could run): a row is an adapter the run actually tested.

Identity: the adapter's name and version as the run recorded them (``--adapter-name``,
``--adapter-version``, else the installed distribution). An adapter without a known version
cannot be told apart from a changed copy of itself, so each of its runs is its own row
("unversioned, run <id>") instead of being merged into one cell with other code.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._render import md_cell
from ._view import BundleView, current_catalogue_digest

__all__ = [
    "Matrix",
    "MatrixEntry",
    "build_matrix",
    "can_i_deploy",
    "render_matrix_html",
    "render_matrix_markdown",
]

CellState = Literal["verified", "failing", "stale"]


@dataclass(frozen=True)
class MatrixEntry:
    adapter: str
    adapter_version: str
    dialect: str
    engine_version: str
    suite_version: str
    state: CellState
    was: str  # what the run said (verified/failing), for stale entries
    subset: bool
    passed: int
    failed: int
    errors: int
    unsupported: int
    started_at: str
    run_id: str
    bundle: str
    superseded: int = 0  # older runs of the same cell and suite version

    def label(self) -> str:
        if self.state == "stale":
            return f"stale (was {self.was})"
        if self.state == "failing":
            return f"failing ({self.failed + self.errors})"
        return "verified (subset)" if self.subset else "verified"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["label"] = self.label()
        return d


@dataclass
class Matrix:
    rows: list[tuple[str, str]]
    columns: list[tuple[str, str]]
    cells: dict[tuple[tuple[str, str], tuple[str, str]], list[MatrixEntry]]
    catalogue: str

    def entries(self) -> list[MatrixEntry]:
        return [e for es in self.cells.values() for e in es]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "llorch-conformance/matrix/1",
            "catalogue": self.catalogue,
            "entries": [e.to_dict() for e in self.entries()],
        }


def _suite_key(v: str) -> tuple[Any, ...]:
    """Version order good enough for PEP 440-ish strings: numbers compare as numbers, before
    words (a version is bundle data: any text must sort, never raise)."""
    import re

    return tuple(
        (0, int(p), "") if p.isascii() and p.isdigit() and len(p) <= 18 else (1, 0, p)
        for p in re.split(r"[.+-]", v)
    )


def _version_label(view: BundleView, adapter: str) -> str:
    info = view.adapters.get(adapter)
    version = info.version if info else "unknown"
    if version.startswith("unknown"):
        where = f"{info.spec}, " if info and info.spec else ""
        return f"unversioned ({where}run {view.run_id})"
    return version


def _tested(view: BundleView) -> list[str]:
    """Adapters the run tested: its targets (environment.json); older bundles without that
    list fall back to the verdicts' names minus placeholders."""
    if view.adapters:
        return sorted(view.adapters)
    return [a for a in view.adapter_names() if a not in ("run-wide", "?", "-", "n/a", "unknown")]


def _entry(view: BundleView, adapter: str, current: str) -> MatrixEntry:
    info = view.adapters.get(adapter)
    statuses = [s for (a, _), s in view.verdicts.items() if a == adapter]
    failed = statuses.count("fail")
    errors = statuses.count("error")
    was = "failing" if failed or errors else "verified"
    state: CellState = "stale" if view.catalogue_digest != current else was  # type: ignore[assignment]
    sel = view.selection
    subset = bool(sel.get("requirements")) or sel.get("level") == "must"
    return MatrixEntry(
        adapter=adapter,
        adapter_version=_version_label(view, adapter),
        dialect=(info.dialect if info and info.dialect else "?"),
        engine_version=info.engine_version if info else "unknown",
        suite_version=view.suite_version,
        state=state,
        was=was,
        subset=subset,
        passed=statuses.count("pass"),
        failed=failed,
        errors=errors,
        unsupported=statuses.count("unsupported"),
        started_at=view.started_at,
        run_id=view.run_id,
        bundle=str(view.path),
    )


def build_matrix(views: Sequence[BundleView]) -> Matrix:
    current = current_catalogue_digest()
    best: dict[tuple[tuple[str, str], tuple[str, str], str], MatrixEntry] = {}
    counts: dict[tuple[tuple[str, str], tuple[str, str], str], int] = {}
    for view in views:
        for adapter in _tested(view):
            if adapter == "run-wide":
                continue
            e = _entry(view, adapter, current)
            key = ((e.adapter, e.adapter_version), (e.dialect, e.engine_version), e.suite_version)
            counts[key] = counts.get(key, 0) + 1
            if key not in best or (e.started_at, e.run_id) > (
                best[key].started_at,
                best[key].run_id,
            ):
                best[key] = e
    cells: dict[tuple[tuple[str, str], tuple[str, str]], list[MatrixEntry]] = {}
    for (row, col, _), e in best.items():
        key3 = (row, col, e.suite_version)
        e = MatrixEntry(**{**e.__dict__, "superseded": counts[key3] - 1})
        cells.setdefault((row, col), []).append(e)
    for es in cells.values():
        es.sort(key=lambda x: _suite_key(x.suite_version), reverse=True)
    return Matrix(
        rows=sorted({r for r, _ in cells}),
        columns=sorted({c for _, c in cells}),
        cells=cells,
        catalogue=current,
    )


def _split(spec: str) -> tuple[str, str | None]:
    name, _, version = spec.partition("@")
    return name, (version or None)


def can_i_deploy(m: Matrix, adapter: str, engine: str) -> tuple[bool, str]:
    """Is ``adapter[@version]`` verified against ``dialect[@engine_version]`` right now?

    Pact's can-i-deploy question over the matrix: among the matching entries, the newest run
    (by start time) decides; it must be ``verified`` — a ``stale`` entry (older catalogue) or a
    ``failing`` one says no. Returns the answer and one line saying why.
    """
    a_name, a_ver = _split(adapter)
    d_name, e_ver = _split(engine)
    found = [
        e
        for e in m.entries()
        if e.adapter == a_name
        and (a_ver is None or e.adapter_version == a_ver)
        and e.dialect == d_name
        and (e_ver is None or e.engine_version == e_ver)
    ]
    if not found:
        return False, f"no: no bundle has {adapter} against {engine}"
    e = max(found, key=lambda x: (x.started_at, x.run_id))
    what = (
        f"{e.adapter} {e.adapter_version} against {e.dialect} {e.engine_version}, "
        f"suite {e.suite_version}, run {e.run_id} ({e.started_at or 'no date'})"
    )
    if e.state == "verified":
        return True, f"yes: {what} is {e.label()}"
    return False, f"no: {what} is {e.label()}"


_ICON = {"verified": "✅", "failing": "❌", "stale": "⚠️"}


def render_matrix_markdown(m: Matrix) -> str:
    lines = [
        "## llorch-conformance compatibility matrix",
        "",
        "Rows: adapter and version. Columns: engine dialect and version. Each cell: suite version "
        "and verdict of the newest run; ⚠️ stale = made with an older requirement catalogue.",
        "",
        "| adapter | version | " + " | ".join(md_cell(f"{d} {v}") for d, v in m.columns) + " |",
        "|---|---|" + "---|" * len(m.columns),
    ]
    for row in m.rows:
        cells = []
        for col in m.columns:
            es = m.cells.get((row, col), [])
            cells.append(
                "<br>".join(
                    md_cell(
                        f"{_ICON[e.state]} {e.label()} — suite {e.suite_version}, "
                        f"{e.started_at or e.run_id}"
                    )
                    for e in es
                )
                or "—"
            )
        lines.append(f"| {md_cell(row[0])} | {md_cell(row[1])} | " + " | ".join(cells) + " |")
    lines += ["", f"current catalogue: `{m.catalogue}`", ""]
    return "\n".join(lines)


def render_matrix_html(m: Matrix) -> str:
    e_ = html.escape
    head = "".join(f"<th>{e_(d)}<br><small>{e_(v)}</small></th>" for d, v in m.columns)
    body = []
    for row in m.rows:
        tds = []
        for col in m.columns:
            items = [
                f'<div class="{e.state}" title="{e_(e.bundle)}">{_ICON[e.state]} '
                f"{e_(e.label())}<br><small>suite {e_(e.suite_version)} · "
                f"{e_(e.started_at or e.run_id)} · {e.passed} pass, {e.failed} fail, "
                f"{e.unsupported} unsupported</small></div>"
                for e in m.cells.get((row, col), [])
            ]
            tds.append(f"<td>{''.join(items) or '—'}</td>")
        body.append(f"<tr><th>{e_(row[0])}</th><td>{e_(row[1])}</td>{''.join(tds)}</tr>")
    return (
        "<!DOCTYPE html>\n<!-- AUTOGENERATED: Proof Bundle -->\n"
        '<html lang="en"><head><meta charset="utf-8"><title>llorch-conformance matrix</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}"
        ".verified{color:#0a6b2b}.failing{color:#b00020}.stale{color:#8a6d00}</style></head>"
        "<body><h1>llorch-conformance compatibility matrix</h1>"
        "<p>Rows: adapter and version. Columns: engine dialect and version. Stale: made with an "
        "older requirement catalogue.</p>"
        f"<table><thead><tr><th>adapter</th><th>version</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        f"<p><small>current catalogue {e_(m.catalogue)}</small></p></body></html>\n"
    )
