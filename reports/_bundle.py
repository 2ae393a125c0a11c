"""``write_bundle``: a whole conformance run → ``<base>/conformance/<run_id>/``.

Order of work, and why:

1. every scenario's evidence and message is redacted with the run's secrets and the project's
   patterns (:func:`adapters.http_util.redact`) — PB-1007 puts redaction on the caller, and this
   function is the caller of the low-level writer;
2. the content is written (per scenario: ``events.ndjson``, ``wire.ndjson``,
   ``retry_timeline.ndjson``, ``evidence.json``; per run: ``results.json``, ``summary.json``,
   ``test_report.md``, ``report.html``, ``junit.xml``, ``allure-results/``, ``timings.csv``,
   ``error_mapping_table.md``, ``requirements.json``, ``environment.json``/``.md``,
   ``run_config.json``, ``seeds.txt``, ``retry_timeline.ndjson``);
3. the redaction audit scans every file (:mod:`reports._audit`). A hit fails the run: the hit is
   scrubbed in place, ``redaction_audit.json`` names file, line and rule, no manifest is written
   (so ``verify`` rejects the bundle) and :class:`RedactionAuditError` is raised;
4. ``manifest.json`` (SHA-256 of every file) and the in-toto statement over it, signed when a key
   is given.

Who is blamed for an audit hit (the choice the issue leaves open): a hit inside a scenario's
``events``/``wire``/``evidence`` files means the adapter under test put the secret into its own
output in a form the redaction could not recognise (re-encoded) — a *conformance failure* of that
adapter (HTU-SEC-1402, exit 1). A hit anywhere else, and any hit whose secret appears in no
adapter file, is a secret the harness wrote — a *harness error* (exit 2). Either way the run
fails; the audit never merely warns.

Bundles are written on failure too: nothing here depends on the verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from llorch_conformance._json import loads
from llorch_conformance.adapters.api import ConformanceFailure, HarnessError
from llorch_conformance.adapters.http_util import redact
from llorch_conformance.conformance import CATALOGUE, RunResults, ScenarioResult

from ._attest import build_statement, load_private_key, sign_statement, statement_bytes
from ._audit import AuditHit, FileDigest, audit_files, list_files
from ._bundle_read import bounded_json
from ._failures import group_failures, groups_to_json
from ._model import (
    TIMING_COLUMNS,
    ScenarioFiles,
    adapter_label,
    assign_dirs,
    events_of,
    feature_label,
    retry_records_of,
    stream_timings,
    wire_entries_of,
)
from ._render_allure import cases_from_scenarios, write_allure_results
from ._render_html import render_html
from ._render_junit import render_junit
from ._render_md import render_environment, render_error_mapping, render_test_report
from ._summary import build_summary, validate_summary
from ._writer import BundleError, ProofBundle, TestType, make_run_id, replace_file

__all__ = [
    "MANIFEST",
    "BundleResult",
    "RedactionAuditError",
    "RedactionLeak",
    "environment_secrets",
    "sha256_file",
    "write_bundle",
]

MANIFEST: Final = "manifest.json"
ATTESTATION_DIR: Final = "attestation"
STATEMENT: Final = "attestation/statement.intoto.json"
ENVELOPE: Final = "attestation/statement.intoto.dsse.json"
#: Files the manifest cannot list (they are computed over it).
NOT_IN_MANIFEST: Final = frozenset(
    {MANIFEST, STATEMENT, STATEMENT + ".meta", ENVELOPE, ENVELOPE + ".meta"}
)
#: Environment variables whose values are secrets of a run when set.
SECRET_ENV: Final = (
    "LLORCH_API_TOKEN",
    "AUTH_TOKEN",
    "OPENAI_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)
_ADAPTER_FILES: Final = ("events.ndjson", "wire.ndjson", "retry_timeline.ndjson", "evidence.json")


class RedactionAuditError(HarnessError):
    """The audit found a secret the harness wrote; the bundle is left without a manifest."""

    def __init__(self, bundle: Path, hits: Sequence[AuditHit]) -> None:
        first = ", ".join(str(h) for h in hits[:5])
        more = f" (+{len(hits) - 5} more)" if len(hits) > 5 else ""
        super().__init__(f"redaction audit failed in {bundle}: {first}{more}")
        self.bundle = bundle
        self.hits = list(hits)


class RedactionLeak(ConformanceFailure):
    """The audit found a secret in an adapter's own output (events, wire, logs)."""

    def __init__(self, bundle: Path, adapters: Sequence[str], hits: Sequence[AuditHit]) -> None:
        first = ", ".join(str(h) for h in hits[:5])
        super().__init__(
            "HTU-SEC-1402",
            f"adapter {', '.join(adapters)} leaked a secret into its output",
            f"{first} (bundle {bundle}, see redaction_audit.json)",
        )
        self.bundle = bundle
        self.adapters = list(adapters)
        self.hits = list(hits)


@dataclass
class BundleResult:
    """What :func:`write_bundle` made."""

    path: Path
    run_id: str
    exit_code: int
    summary: dict[str, Any]
    files: list[str] = field(default_factory=list)
    signed: bool = False


def environment_secrets() -> list[str]:
    return [v for k in SECRET_ENV if (v := os.environ.get(k, ""))]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical_digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _redacted(results: RunResults, secrets: Sequence[str]) -> RunResults:
    def present(text: str) -> list[str]:
        # Only the secrets that occur in the text: redact's explicit pass is one regex over the
        # whole text that cannot use a literal prefix (it also matches masks, to keep them), and
        # it changes nothing where no secret occurs — str.find in C decides that far faster.
        return [s for s in secrets if s in text]

    def r(obj: Any) -> Any:
        # bounded first: evidence nested too deep, huge integers, NaN become text, so redaction
        # cannot recurse to death and the bundle's own readers accept what is written
        text = json.dumps(bounded_json(obj), ensure_ascii=False, default=str)
        return loads(redact(text, present(text)))

    def m(message: str) -> str:
        text = bounded_json(message)
        return redact(text, present(text))

    scenarios = [
        replace(
            s,
            evidence=_trim(r(s.evidence)) if s.evidence else {},
            message=m(str(s.message)),
        )
        for s in results.scenarios
    ]
    return replace(results, target=r(results.target), scenarios=scenarios)


def _suite_version() -> str:
    from llorch_conformance.conformance import __version__

    return str(__version__)


def _find_key(obj: Any, key: str) -> str | None:
    if isinstance(obj, Mapping):
        v = obj.get(key)
        if isinstance(v, str) and v:
            return v
        for sub in obj.values():
            found = _find_key(sub, key)
            if found:
                return found
    elif isinstance(obj, list):
        for sub in obj:
            found = _find_key(sub, key)
            if found:
                return found
    return None


def _adapter_version(desc: Mapping[str, Any]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from llorch_conformance.conformance import distributions_providing

    origin = desc.get("origin")
    spec = str(desc.get("spec") or "")
    if origin == "builtin" or not spec:
        return f"llorch-conformance {_suite_version()}"
    top = spec.split(":", 1)[0].split(".", 1)[0]
    # packages_distributions().get(top, []) without building the table of every installed
    # distribution (~80 ms after every vendor run whose adapter has no installed version)
    dists = distributions_providing([top]).get(top, [])
    for d in dists:
        try:
            return f"{d} {version(d)}"
        except PackageNotFoundError:  # pragma: no cover - racing uninstall
            continue
    return "unknown (module not from an installed distribution)"


def _mock_dialect_versions() -> dict[str, str]:
    try:
        from llorch_conformance import mock_engines
    except ImportError:  # pragma: no cover - same distribution
        return {}
    out: dict[str, str] = {}
    for name in mock_engines.DIALECTS:
        out[name] = str(getattr(mock_engines.get_dialect(name), "engine_version", "?"))
    return out


def _environment(results: RunResults, config_digest: str) -> dict[str, Any]:
    targets = results.target.get("targets", []) if isinstance(results.target, Mapping) else []
    adapters: list[dict[str, Any]] = []
    for t in targets if isinstance(targets, list) else []:
        if not isinstance(t, Mapping):
            continue
        name = str(t.get("name", "?"))
        ev = [s.evidence for s in results.scenarios if s.adapter == name]
        adapters.append(
            {
                "name": name,
                "dialect": t.get("dialect"),
                "origin": t.get("origin"),
                "spec": t.get("spec"),
                "engine_url": t.get("engine_url"),
                # --adapter-version / the installed distribution (the target says), else ours
                "version": str(t["version"]) if t.get("version") else _adapter_version(t),
                "distribution": t.get("distribution"),
                "engine_version": _find_key(ev, "engine_version") or "not observed in this run",
            }
        )
    return {
        "suite_version": _suite_version(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "seed": results.seed,
        "config_digest": config_digest,
        "adapters": adapters,
        "mock_dialect_versions": _mock_dialect_versions(),
    }


def _clear_previous(root: Path) -> None:
    """Rewrite a bundle of the same run id; refuse to clear a directory that is not a bundle."""
    if not any(root.iterdir()):
        return
    if not any((root / n).exists() for n in (MANIFEST, "summary.json", "test_report.md")):
        raise BundleError(f"{root} exists and is not a proof bundle; refusing to overwrite it")
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():  # a link is removed, never followed
            shutil.rmtree(child)
        else:
            child.unlink()


def _write_scenario(pb: ProofBundle, p: ScenarioFiles) -> list[dict[str, Any]]:
    s: ScenarioResult = p.result
    ev = s.evidence if isinstance(s.evidence, Mapping) else {}
    events = events_of(ev)
    pb.append_ndjson_many(f"{p.dir}/events.ndjson", events)
    wire: list[dict[str, Any]] = []
    for e in wire_entries_of(ev):
        head = {k: v for k, v in e.items() if k != "frames"}
        wire.append({"record": "request", **head})
        frames = e.get("frames")
        if isinstance(frames, list):
            eid = e.get("id")
            wire.extend(
                {"record": "frame", "entry": eid, "i": i, "frame": _cut_frame(f)}
                for i, f in enumerate(frames)
            )
    pb.append_ndjson_many(f"{p.dir}/wire.ndjson", wire)
    retries = retry_records_of(ev)
    pb.append_ndjson_many(f"{p.dir}/retry_timeline.ndjson", retries)
    rest = {
        k: v for k, v in ev.items() if k not in ("streams", "wire", "journal", "retry_timelines")
    }
    pb.write_json(
        f"{p.dir}/evidence.json",
        {
            "nodeid": s.nodeid,
            "adapter": s.adapter,
            "dialect": s.dialect,
            "feature": s.feature,
            "scenario": s.scenario,
            "status": s.status,
            "requirements": s.requirements,
            "failed_requirements": s.failed_requirements,
            "message": s.message,
            "duration_s": s.duration_s,
            "evidence": rest,
        },
    )
    p.files = {name: f"{p.dir}/{name}" for name in _ADAPTER_FILES}
    return [
        {"test_id": s.nodeid, "adapter": s.adapter, "seed": ev.get("seed"), **r} for r in retries
    ]


#: Characters of one wire frame kept in ``wire.ndjson`` (an oversized-frame fault sends MiBs).
_FRAME_KEEP: Final = 64 * 1024


def _cut_frame(frame: Any) -> Any:
    if isinstance(frame, str) and len(frame) > _FRAME_KEEP:
        return frame[:_FRAME_KEEP] + f"…[truncated {len(frame) - _FRAME_KEEP} characters]"
    return frame


def _trim(ev: Any) -> Any:
    """Cap every recorded wire frame (see ``_FRAME_KEEP``) so a fault's MiB frame stays readable."""
    if isinstance(ev, dict):
        for key in ("journal", "wire"):
            entries = ev.get(key)
            if isinstance(entries, list):
                for e in entries:
                    if isinstance(e, dict) and isinstance(e.get("frames"), list):
                        e["frames"] = [_cut_frame(f) for f in e["frames"]]
    return ev


def _attachments(
    pb: ProofBundle, placed: Sequence[ScenarioFiles]
) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    for p in placed:
        items = []
        for name in ("events.ndjson",):
            path = pb.root() / p.dir / name
            text = path.read_text("utf-8")
            if text.count("\n") > 1:  # more than the meta record
                items.append((name, "application/x-ndjson", text))
        out[p.dir] = items
    return out


def _audit(
    pb: ProofBundle, secrets: Sequence[str], placed: Sequence[ScenarioFiles]
) -> dict[str, FileDigest]:
    """Run the audit; on a clean bundle, the digests of the files it read (for the manifest)."""
    root = pb.root()
    hits, binary, digests = audit_files(root, secrets)
    n_files = len(list_files(root))
    record: dict[str, Any] = {
        "files_scanned": n_files - len(binary),
        "binary_not_scanned": binary,
        "secrets_configured": len([s for s in secrets if len(s) >= 4]),
        "hits": [h.to_dict() for h in hits],
    }
    if not hits:
        pb.write_json("redaction_audit.json", record)
        return digests
    dir_adapter = {p.dir: p.result.adapter for p in placed}

    def adapter_of(h: AuditHit) -> str | None:
        for d, a in dir_adapter.items():
            if h.file.startswith(d + "/") and h.file.rsplit("/", 1)[-1] in _ADAPTER_FILES:
                return a
        return None

    leaked_by: dict[str, str] = {}
    for h in hits:
        a = adapter_of(h)
        if a is not None:
            leaked_by.setdefault(h.masked, a)
    harness_hits = [h for h in hits if h.masked not in leaked_by]
    record["hits"] = [
        {
            **h.to_dict(),
            "blamed": f"adapter {leaked_by[h.masked]}" if h.masked in leaked_by else "harness",
        }
        for h in hits
    ]
    _scrub(root, hits, secrets)
    pb.write_json("redaction_audit.json", record)
    if harness_hits:
        raise RedactionAuditError(root, hits)
    raise RedactionLeak(root, sorted(set(leaked_by.values())), hits)


def _scrub(root: Path, hits: Sequence[AuditHit], secrets: Sequence[str]) -> None:
    """Remove found secrets from the files in place: a failed bundle must not keep them."""
    from ._audit import _PATTERNS, secret_forms

    forms = sorted(
        {f for s in secrets if len(s) >= 4 for _, f in secret_forms(s)}, key=len, reverse=True
    )
    for rel in sorted({h.file for h in hits}):
        path = root / rel
        text = path.read_text("utf-8", errors="replace")
        for f in forms:
            text = text.replace(f, "****scrub")
        for _, pat in _PATTERNS:
            text = pat.sub(lambda m: m.group(0).replace(m.group("t"), "****scrub"), text)
        replace_file(path, text.encode("utf-8"))


def _manifest(
    pb: ProofBundle, known: Mapping[str, FileDigest] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The manifest; ``known`` digests (from the audit) are used while the file is unchanged."""
    root = pb.root()
    files = sorted(f for f in list_files(root) if f not in NOT_IN_MANIFEST)
    entries = [_manifest_entry(root, f, (known or {}).get(f)) for f in files]
    return {
        "schema": "llorch-conformance/manifest/1",
        "algorithm": "sha256",
        "files": entries,
    }, files


def _manifest_entry(root: Path, rel: str, known: FileDigest | None) -> dict[str, Any]:
    st = (root / rel).stat()
    if known is not None and known[1:] == (st.st_size, st.st_ino, st.st_mtime_ns):
        return {"path": rel, "sha256": known[0], "size": st.st_size}
    return {"path": rel, "sha256": sha256_file(root / rel), "size": st.st_size}


def write_bundle(
    results: RunResults,
    *,
    base: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    config: Mapping[str, Any] | None = None,
    secrets: Sequence[str] = (),
    fail_on: Literal["must", "should"] = "must",
    sign_key: str | os.PathLike[str] | None = None,
    screenshot: bool = False,
) -> BundleResult:
    """Write the proof bundle of ``results``; see the module docstring for what and in which order.

    ``config`` is the run configuration as the runner knows it (command line, pytest arguments,
    targets); it is stored as ``run_config.json`` and its digest goes into the environment and
    the attestation. ``secrets`` are the run's configured secrets (the values of
    :data:`SECRET_ENV` are added). ``screenshot`` renders ``report.html`` in headless Chromium into
    ``report.png`` when Chromium is installed. Raises :class:`RedactionAuditError` or
    :class:`RedactionLeak` when the audit finds a secret, :class:`BundleError` on I/O failure.
    """
    key = load_private_key(sign_key) if sign_key is not None else None  # fail before writing
    all_secrets = sorted({*secrets, *environment_secrets()} - {""})
    # A run id someone chose (argument or LLORCH_RUN_ID) names the bundle: a rerun rewrites it.
    # A generated one must not collide with a parallel run's bundle: take a fresh directory.
    chosen = run_id is not None or bool(os.environ.get("LLORCH_RUN_ID", "").strip())
    rid = run_id or results.run_id or make_run_id()
    pb = ProofBundle.for_type(TestType.CONFORMANCE, base=base, run_id=rid, unique=not chosen)
    try:
        return _write_all(pb, results, all_secrets, config, fail_on, key, screenshot)
    except OSError as exc:  # PB-1008: an error result, never a bare crash
        raise BundleError(f"writing the proof bundle {pb.root()} failed: {exc}") from exc


def _write_all(
    pb: ProofBundle,
    results: RunResults,
    all_secrets: list[str],
    config: Mapping[str, Any] | None,
    fail_on: Literal["must", "should"],
    key: Any,
    screenshot: bool,
) -> BundleResult:
    _clear_previous(pb.root())
    res = _redacted(results, all_secrets)
    res.run_id = pb.run_id
    run_config: dict[str, Any] = {
        "run_id": pb.run_id,
        "seed": res.seed,
        "level": res.level,
        "fail_on": fail_on,
        "target": res.target,
        **json.loads(
            redact(json.dumps(bounded_json(dict(config or {})), default=str), all_secrets)
        ),
    }
    config_digest = _canonical_digest(run_config)
    placed = assign_dirs(res)

    retry_rows: list[dict[str, Any]] = []
    for p in placed:
        retry_rows.extend(_write_scenario(pb, p))
    pb.append_ndjson_many("retry_timeline.ndjson", retry_rows)
    pb.write_json("results.json", res.to_json_dict())
    pb.write_json("requirements.json", {"catalogue": [r.to_dict() for r in CATALOGUE]})
    pb.write_json("run_config.json", run_config)
    env = _environment(res, config_digest)
    pb.write_json("environment.json", env)
    pb.write_markdown("environment.md", render_environment(env))
    seeds = pb.seeds()
    seeds.record(res.seed, "run")
    for s in sorted(
        {int(x) for p in placed if isinstance(x := p.result.evidence.get("seed"), int)} - {res.seed}
    ):
        seeds.record(s, "scenario")
    pb.write_markdown("error_mapping_table.md", render_error_mapping())
    rows = []
    for p in placed:
        for t in stream_timings(p.result.evidence):
            rows.append(
                [
                    adapter_label(p.result.adapter),
                    feature_label(p.result.feature),
                    p.result.scenario,
                    t.stream,
                    t.tokens,
                    t.ttft_ms,
                    t.itl_p50_ms,
                    t.itl_p99_ms,
                    t.engine_ttfb_ms,
                    t.adapter_added_ms,
                    t.decode_time_ms,
                    t.duration_ms,
                ]
            )
    pb.write_csv("timings.csv", TIMING_COLUMNS, rows)
    pb.write_text("junit.xml", render_junit(pb.run_id, placed))
    start_ms = int(time.time() * 1000 - res.wall_time_s * 1000)
    write_allure_results(
        cases_from_scenarios(placed, start_ms, _attachments(pb, placed)),
        pb.ensure_dir("allure-results"),
    )
    files_index = {
        "test_report": "test_report.md",
        "html": "report.html",
        "junit": "junit.xml",
        "allure": "allure-results/",
        "timings": "timings.csv",
        "error_mapping": "error_mapping_table.md",
        "requirements": "requirements.json",
        "environment": "environment.json",
        "run_config": "run_config.json",
        "results": "results.json",
        "seeds": "seeds.txt",
        "retry_timeline": "retry_timeline.ndjson",
        "manifest": MANIFEST,
        "attestation": STATEMENT,
    }
    summary = build_summary(
        res,
        placed,
        suite_version=_suite_version(),
        config_digest=config_digest,
        files_index=files_index,
        fail_on=fail_on,
    )
    summary["failure_groups"] = groups_to_json(group_failures(res, fail_on=fail_on))
    problems = validate_summary(summary)
    if problems:  # a writer bug; never ship a bundle verify would reject
        raise BundleError("summary.json does not match its schema: " + "; ".join(problems[:5]))
    pb.write_json("summary.json", summary, embed_marker=False)
    pb.write_markdown("test_report.md", render_test_report(summary, env))
    html_path = pb.write_text(
        "report.html", render_html(summary, placed, {r.id: r.text for r in CATALOGUE})
    )
    if screenshot:
        from ._browser import chromium_path, screenshot_html

        if chromium_path() is not None:
            screenshot_html(html_path, pb.path("report.png"))

    audited = _audit(pb, all_secrets, placed)
    manifest, listed = _manifest(pb, audited)
    manifest_path = pb.write_json(MANIFEST, manifest, embed_marker=True)
    digests = {
        n: sha256_file(pb.root() / n)
        for n in ("run_config.json", "environment.json", "requirements.json")
    }
    statement = build_statement(summary, sha256_file(manifest_path), digests)
    body = statement_bytes(statement)
    pb.write_bytes(STATEMENT, body)
    pb.write_text(STATEMENT + ".meta", "# AUTOGENERATED: Proof Bundle\n")
    if key is not None:
        pb.write_text(ENVELOPE, json.dumps(sign_statement(body, key), indent=2) + "\n")
        pb.write_text(ENVELOPE + ".meta", "# AUTOGENERATED: Proof Bundle\n")
    return BundleResult(
        pb.root(), pb.run_id, int(summary["exit_code"]), summary, listed, key is not None
    )
