"""Waivers: known failures, each with what it covers, adapter, reason and expiry date.

Format: YAML (comments carry the context a reviewer needs; dates are native), checked against
:data:`WAIVER_SCHEMA` (JSON Schema draft 2020-12)::

    version: 1
    waivers:
      - cause: "comes before 'started'"  # a root cause: text of the failure (case-insensitive)
        adapter: acme_vllm               # adapter name as the run shows it; glob allowed ("*")
        reason: started is sent after the first token until acme#41 lands
        expires: 2026-12-31              # valid through this day (UTC), then the run fails
        issue: https://example.invalid/acme/41   # optional
      - requirement: ADAPT-3001          # or one catalogue ID ...
        adapter: acme_*
        reason: upstream drops the last token on n_predict, acme#42
        expires: 2026-12-31
      - requirements: [HTU-1001, ADAPT-3005]   # ... or several
        cause: DECODE_TIMEOUT            # (requirement(s) and cause together: both must match)
        adapter: acme_vllm
        reason: no first-byte timeout yet, acme#43
        expires: 2026-12-31

Why a cause: one bug fails many requirements (a missing ``started`` event fails 30). A waiver is
policy about a *known bug*, so one entry names the bug — text from the failure block's root cause
or the failure message, as ``test_report.md`` prints it — and covers every failing verdict that
bug produced, instead of one entry per requirement. A failing verdict matches a cause when the
text occurs (case-insensitive) in its message or in the root cause of a failure group that
includes it (``summary.json`` ``failure_groups``).

Semantics (OpenTelemetry's conformance runner is the model: waivers fail once stale):

* a failing verdict matched by a live waiver is reported ``waived`` — never ``pass``; the raw
  results keep ``fail`` (the bundle is evidence, the waiver is policy);
* a waiver whose expiry date has passed fails the gate, whatever the verdict — someone has to
  renew it with a reason or fix the adapter;
* a waiver whose failure is gone for every adapter it matches is reported ``stale`` (so it can be
  deleted); one that matches nothing in the run is reported ``unused``.
* ``error`` verdicts (harness errors) are never waived: they are not known failures, they are an
  unknown verdict.

Entries are numbered from 1 in messages and reports. A bad file raises :class:`ConfigError`: one
line naming the file, the entry (number and what it covers) and the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, Literal

from llorch_conformance.adapters.api import ConfigError

__all__ = [
    "WAIVER_SCHEMA",
    "Waiver",
    "WaiverOutcome",
    "apply_waivers",
    "load_waivers",
    "parse_waivers",
]

_ID_PATTERN: Final = r"^[A-Z][A-Z-]*-\d{4}[a-z]?$"

WAIVER_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "llorch-conformance/waivers/1",
    "title": "llorch-conformance waivers",
    "type": "object",
    "required": ["waivers"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "waivers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["adapter", "reason", "expires"],
                "anyOf": [
                    {"required": ["requirement"]},
                    {"required": ["requirements"]},
                    {"required": ["cause"]},
                ],
                "additionalProperties": False,
                "properties": {
                    "requirement": {"type": "string", "pattern": _ID_PATTERN},
                    "requirements": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": _ID_PATTERN},
                    },
                    "cause": {"type": "string", "minLength": 3},
                    "adapter": {"type": "string", "minLength": 1},
                    "reason": {"type": "string", "minLength": 3},
                    "expires": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                    "issue": {"type": "string"},
                },
            },
        },
    },
}

State = Literal["active", "expired", "stale", "unused"]


@dataclass(frozen=True)
class Waiver:
    """One entry: it covers ``requirements`` (any, when empty) failing for ``cause`` (any, when
    empty) on adapters matching the ``adapter`` glob."""

    requirement: str  # the first covered ID, "" for a cause-only waiver (kept for old readers)
    adapter: str
    reason: str
    expires: dt.date
    issue: str = ""
    source: str = ""  # "file#number" (from 1), for messages
    requirements: tuple[str, ...] = ()
    cause: str = ""

    def __post_init__(self) -> None:
        if self.requirement and not self.requirements:
            object.__setattr__(self, "requirements", (self.requirement,))

    def expired(self, today: dt.date) -> bool:
        """Valid through the expiry day itself."""
        return today > self.expires

    @property
    def covers(self) -> str:
        """What the entry waives, in words (tables and messages)."""
        parts = []
        if self.requirements:
            parts.append(", ".join(self.requirements))
        if self.cause:
            parts.append(f"cause “{self.cause}”")
        return " · ".join(parts)

    def matches(self, adapter: str, requirement: str, causes: Sequence[str] = ()) -> bool:
        """Adapter glob, requirement (when named) and cause (when named, in any of ``causes``)."""
        if not fnmatchcase(adapter, self.adapter):
            return False
        if self.requirements and requirement not in self.requirements:
            return False
        if self.cause:
            needle = self.cause.casefold()
            return any(needle in c.casefold() for c in causes)
        return True


@dataclass(frozen=True)
class WaiverOutcome:
    waiver: Waiver
    state: State
    waived: tuple[str, ...]  # adapters whose failure this waiver covered
    passing: tuple[str, ...]  # matched adapters where the requirement passes
    waived_verdicts: tuple[tuple[str, str], ...] = ()  # (adapter, requirement) it turned waived

    def to_dict(self) -> dict[str, Any]:
        w = self.waiver
        return {
            "requirement": w.requirement,
            "requirements": list(w.requirements),
            "cause": w.cause,
            "covers": w.covers,
            "adapter": w.adapter,
            "reason": w.reason,
            "expires": w.expires.isoformat(),
            "issue": w.issue,
            "source": w.source,
            "state": self.state,
            "waived": list(self.waived),
            "waived_verdicts": [list(k) for k in self.waived_verdicts],
            "passing": list(self.passing),
        }


def _dates_to_text(obj: Any) -> Any:
    """YAML turns ``2026-12-31`` into a date; the schema speaks JSON, so dates become text."""
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return {k: _dates_to_text(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_dates_to_text(v) for v in obj]
    return obj


def _entry_label(doc: Any, index: int) -> str:
    """``entry 2 (ADAPT-3001)``: numbered from 1, with what the entry covers when readable."""
    entry = doc["waivers"][index] if isinstance(doc, Mapping) else None
    what = None
    if isinstance(entry, Mapping):
        if isinstance(entry.get("requirement"), str):
            what = entry["requirement"]
        elif isinstance(entry.get("requirements"), list) and entry["requirements"]:
            what = ", ".join(str(r) for r in entry["requirements"][:3])
        elif isinstance(entry.get("cause"), str):
            what = f"cause {entry['cause'][:40]!r}"
    return f"entry {index + 1}" + (f" ({what})" if what else "")


def _where(doc: Any, path: Sequence[Any], err: Any) -> str:
    """``entry 2 (ADAPT-3001), field 'expires': …`` out of a jsonschema error, one line."""
    parts: list[str] = []
    if len(path) >= 2 and path[0] == "waivers" and isinstance(path[1], int):
        parts.append(_entry_label(doc, path[1]))
        rest = list(path[2:])
    else:
        rest = list(path)
    field = ".".join(str(p) for p in rest)
    if not rest and not path and err.validator == "type":
        return "expected a mapping with a 'waivers:' list at the top"
    if err.validator == "required":
        inst = err.instance if isinstance(err.instance, Mapping) else {}
        missing = [f for f in err.validator_value if f not in inst]
        field = ", ".join(missing) or field
        parts.append(f"missing field {field!r}")
    elif err.validator == "anyOf" and len(path) == 2:
        parts.append("names nothing to waive: add 'requirement', 'requirements' or 'cause'")
    elif err.validator == "additionalProperties":
        inst = err.instance if isinstance(err.instance, Mapping) else {}
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(str(k) for k in inst if k not in allowed)
        known = ", ".join(sorted(allowed))
        parts.append(f"unknown field {', '.join(extra)!r} (known: {known})")
    elif err.validator == "pattern" and rest and rest[0] in ("requirement", "requirements"):
        parts.append(f"field {field!r}: {err.instance!r} is not a requirement ID like ADAPT-3001")
    elif err.validator == "pattern" and rest == ["expires"]:
        parts.append(f"field 'expires': {err.instance!r} is not a date like 2026-12-31")
    elif err.validator == "type" and len(path) == 2:
        parts.append(f"is {type(err.instance).__name__}, expected a mapping of fields")
    else:
        parts.append(f"field {field!r}: {err.message}" if field else err.message)
    return ", ".join(parts)


def parse_waivers(doc: Any, *, source: str = "<waivers>") -> list[Waiver]:
    """Validate an already-parsed document and build the waivers (see module docstring)."""
    import jsonschema  # type: ignore[import-untyped]

    from llorch_conformance.conformance import is_known

    doc = _dates_to_text(doc)
    if doc is None:
        raise ConfigError(f"{source}: empty waiver file (expected a 'waivers:' list)")
    validator = jsonschema.Draft202012Validator(WAIVER_SCHEMA)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_where(doc, list(err.absolute_path), err)}{more}")
    out: list[Waiver] = []
    for i, raw in enumerate(doc["waivers"]):
        where = f"{source}: {_entry_label(doc, i)}"
        try:
            expires = dt.date.fromisoformat(raw["expires"])
        except ValueError:
            raise ConfigError(
                f"{where}, field 'expires': {raw['expires']!r} is not a calendar date"
            ) from None
        reqs = [raw["requirement"]] if "requirement" in raw else []
        reqs += [r for r in raw.get("requirements", []) if r not in reqs]
        for rid in reqs:
            if not is_known(rid):
                field = "requirement" if rid == raw.get("requirement") else "requirements"
                raise ConfigError(
                    f"{where}, field {field!r}: {rid} is not a catalogue ID "
                    "(see 'llorch-conformance list requirements')"
                )
        out.append(
            Waiver(
                requirement=reqs[0] if reqs else "",
                adapter=raw["adapter"],
                reason=raw["reason"],
                expires=expires,
                issue=raw.get("issue", ""),
                source=f"{source}#{i + 1}",
                requirements=tuple(reqs),
                cause=str(raw.get("cause", "")),
            )
        )
    return out


#: A waiver file is a short hand-written list; anything bigger is not one.
MAX_WAIVER_BYTES = 1 << 20
#: Nesting of a waiver file's YAML (the format itself needs 4: top, list, entry, list of IDs).
MAX_WAIVER_DEPTH = 16


def _loader() -> Any:
    """SafeLoader that keeps dates as text: ``2026-02-30`` must reach the field check, not crash
    the YAML parser with a bare ``ValueError``. It is also where YAML bombs stop (module rules):
    no alias (an exponential or recursive structure; a merge key ``<<: *a`` is an alias too),
    nesting at most :data:`MAX_WAIVER_DEPTH` (deep nesting would exhaust the stack), no
    Python or other non-standard tag (SafeLoader), integers kept as text (a 5000-digit number
    would crash ``int``; the schema then names the field)."""
    import yaml

    class TextDates(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # Aliases are how a hostile YAML file becomes a bomb (exponential or recursive
            # structures); a waiver file never needs one.
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in a waiver file", mark
                )
            self._depth += 1
            try:
                if self._depth > MAX_WAIVER_DEPTH:
                    mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                    raise yaml.composer.ComposerError(
                        None, None, f"nested deeper than {MAX_WAIVER_DEPTH} levels", mark
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    def as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        assert isinstance(node, yaml.ScalarNode)  # timestamps are scalars by the YAML spec
        return loader.construct_scalar(node)

    def as_int(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        assert isinstance(node, yaml.ScalarNode)
        text = str(loader.construct_scalar(node))
        if len(text) > 20:  # no field of a waiver file is a number that long
            return text
        return loader.construct_yaml_int(node)

    TextDates.add_constructor("tag:yaml.org,2002:timestamp", as_text)
    TextDates.add_constructor("tag:yaml.org,2002:int", as_int)
    return TextDates


def load_waivers(path: str | Path) -> list[Waiver]:
    """Read and validate a YAML waiver file; :class:`ConfigError` names file, entry and field
    in one line — also for a YAML bomb, a FIFO, a huge or non-UTF-8 file."""
    import stat

    import yaml

    from .._bundle_read import check_json_value, one_line

    p = Path(path)
    shown = one_line(p)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{shown}: not a regular file (a waiver file is a YAML file)")
        if st.st_size > MAX_WAIVER_BYTES:
            raise ConfigError(f"{shown}: waiver file larger than {MAX_WAIVER_BYTES} bytes")
        with p.open("rb") as fh:
            data = fh.read(MAX_WAIVER_BYTES + 1)
        if len(data) > MAX_WAIVER_BYTES:
            raise ConfigError(f"{shown}: waiver file larger than {MAX_WAIVER_BYTES} bytes")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read waiver file ({one_line(exc)})") from None
    try:
        doc = yaml.load(text, Loader=_loader())  # a SafeLoader subclass
        check_json_value(doc, MAX_WAIVER_DEPTH)  # lone surrogates ("\ud800") cannot be printed
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{shown}: not valid YAML ({one_line((str(exc).splitlines() or ['?'])[0])})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{shown}: not a waiver file ({one_line(exc)})") from None
    try:
        return parse_waivers(doc, source=str(p))
    except ConfigError as exc:
        raise ConfigError(one_line(exc, 400)) from None


def apply_waivers(
    verdicts: Mapping[tuple[str, str], str],
    waivers: Sequence[Waiver],
    *,
    today: dt.date,
    causes: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> tuple[dict[tuple[str, str], str], list[WaiverOutcome]]:
    """Report-level statuses (``fail`` → ``waived`` where a live waiver matches) and outcomes.

    ``causes`` gives, per failing (adapter, requirement), the texts a ``cause`` is searched in
    (its message and root causes). An expired waiver waives nothing: its failures show as
    ``fail`` again.
    """
    causes = causes or {}
    statuses = dict(verdicts)
    outcomes: list[WaiverOutcome] = []
    for w in waivers:
        matched = sorted(k for k in verdicts if w.matches(k[0], k[1], causes.get(k, ())))
        failing = [k for k in matched if verdicts[k] == "fail"]
        # passing: the adapters the waiver names where the waived requirement(s) now pass
        passing_keys = [
            k
            for k in verdicts
            if verdicts[k] == "pass"
            and fnmatchcase(k[0], w.adapter)
            and (not w.requirements or k[1] in w.requirements)
        ]
        passing = tuple(sorted({a for a, _ in passing_keys}))
        adapters = tuple(sorted({a for a, _ in failing}))
        if w.expired(today):
            outcomes.append(WaiverOutcome(w, "expired", (), passing))
            continue
        for k in failing:
            statuses[k] = "waived"
        tested = any(fnmatchcase(a, w.adapter) for a, _ in verdicts)
        if failing:
            state: State = "active"
        elif passing or (w.cause and not w.requirements and tested):
            state = "stale"
        else:
            state = "unused"
        outcomes.append(WaiverOutcome(w, state, adapters, passing, tuple(failing)))
    # Two waivers on one verdict: the expired one must not undo the live one, nor the reverse.
    return statuses, outcomes
