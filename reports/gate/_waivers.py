"""Waivers: known failures, each with requirement, adapter, reason and expiry date.

Format: YAML (comments carry the context a reviewer needs; dates are native), checked against
:data:`WAIVER_SCHEMA` (JSON Schema draft 2020-12)::

    version: 1
    waivers:
      - requirement: ADAPT-3001          # a catalogue ID
        adapter: acme_llamacpp           # adapter name as the run shows it; glob allowed ("*")
        reason: upstream drops the last token on n_predict, acme#42
        expires: 2026-12-31              # valid through this day (UTC), then the run fails
        issue: https://example.invalid/acme/42   # optional

Semantics (OpenTelemetry's conformance runner is the model: waivers fail once stale):

* a failing verdict matched by a live waiver is reported ``waived`` — never ``pass``; the raw
  results keep ``fail`` (the bundle is evidence, the waiver is policy);
* a waiver whose expiry date has passed fails the gate, whatever the verdict — someone has to
  renew it with a reason or fix the adapter;
* a waiver whose requirement now passes for every adapter it matches is reported ``stale`` (so
  it can be deleted); one that matches nothing in the run is reported ``unused``.
* ``error`` verdicts (harness errors) are never waived: they are not known failures, they are an
  unknown verdict.

A bad file raises :class:`ConfigError` naming the file, the entry (index and requirement) and the
field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, Literal

from adapters.api import ConfigError

__all__ = [
    "WAIVER_SCHEMA",
    "Waiver",
    "WaiverOutcome",
    "apply_waivers",
    "load_waivers",
    "parse_waivers",
]

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
                "required": ["requirement", "adapter", "reason", "expires"],
                "additionalProperties": False,
                "properties": {
                    "requirement": {"type": "string", "pattern": r"^[A-Z][A-Z-]*-\d{4}[a-z]?$"},
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
    requirement: str
    adapter: str
    reason: str
    expires: dt.date
    issue: str = ""
    source: str = ""  # "file#index", for messages

    def expired(self, today: dt.date) -> bool:
        """Valid through the expiry day itself."""
        return today > self.expires

    def matches(self, adapter: str, requirement: str) -> bool:
        return requirement == self.requirement and fnmatchcase(adapter, self.adapter)


@dataclass(frozen=True)
class WaiverOutcome:
    waiver: Waiver
    state: State
    waived: tuple[str, ...]  # adapters whose failure this waiver covered
    passing: tuple[str, ...]  # matched adapters where the requirement passes

    def to_dict(self) -> dict[str, Any]:
        w = self.waiver
        return {
            "requirement": w.requirement,
            "adapter": w.adapter,
            "reason": w.reason,
            "expires": w.expires.isoformat(),
            "issue": w.issue,
            "source": w.source,
            "state": self.state,
            "waived": list(self.waived),
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


def _where(doc: Any, path: Sequence[Any], err: Any) -> str:
    """``entry 2 (ADAPT-3001), field 'expires'`` out of a jsonschema error."""
    parts: list[str] = []
    if len(path) >= 2 and path[0] == "waivers" and isinstance(path[1], int):
        entry = doc["waivers"][path[1]]
        rid = entry.get("requirement") if isinstance(entry, Mapping) else None
        parts.append(f"entry {path[1]}" + (f" ({rid})" if isinstance(rid, str) else ""))
        rest = list(path[2:])
    else:
        rest = list(path)
    field = ".".join(str(p) for p in rest)
    if err.validator == "required":
        inst = err.instance if isinstance(err.instance, Mapping) else {}
        missing = [f for f in err.validator_value if f not in inst]
        field = ", ".join(missing) or field
        parts.append(f"missing field {field!r}")
    elif err.validator == "additionalProperties":
        inst = err.instance if isinstance(err.instance, Mapping) else {}
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(str(k) for k in inst if k not in allowed)
        parts.append(f"unknown field {', '.join(extra)!r}")
    else:
        parts.append(f"field {field!r}: {err.message}" if field else err.message)
    return ", ".join(parts)


def parse_waivers(doc: Any, *, source: str = "<waivers>") -> list[Waiver]:
    """Validate an already-parsed document and build the waivers (see module docstring)."""
    import jsonschema  # type: ignore[import-untyped]

    from conformance._catalogue import is_known

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
        where = f"{source}: entry {i} ({raw['requirement']})"
        try:
            expires = dt.date.fromisoformat(raw["expires"])
        except ValueError:
            raise ConfigError(
                f"{where}, field 'expires': {raw['expires']!r} is not a calendar date"
            ) from None
        if not is_known(raw["requirement"]):
            raise ConfigError(
                f"{where}, field 'requirement': not a catalogue ID "
                "(see 'llorch-conformance list requirements')"
            )
        out.append(
            Waiver(
                requirement=raw["requirement"],
                adapter=raw["adapter"],
                reason=raw["reason"],
                expires=expires,
                issue=raw.get("issue", ""),
                source=f"{source}#{i}",
            )
        )
    return out


def _loader() -> Any:
    """SafeLoader that keeps dates as text: ``2026-02-30`` must reach the field check, not crash
    the YAML parser with a bare ``ValueError``."""
    import yaml

    class TextDates(yaml.SafeLoader):
        pass

    def as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        assert isinstance(node, yaml.ScalarNode)  # timestamps are scalars by the YAML spec
        return loader.construct_scalar(node)

    TextDates.add_constructor("tag:yaml.org,2002:timestamp", as_text)
    return TextDates


def load_waivers(path: str | Path) -> list[Waiver]:
    """Read and validate a YAML waiver file; :class:`ConfigError` names file, entry and field."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read waiver file ({exc})") from None
    try:
        doc = yaml.load(text, Loader=_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_waivers(doc, source=str(p))


def apply_waivers(
    verdicts: Mapping[tuple[str, str], str],
    waivers: Sequence[Waiver],
    *,
    today: dt.date,
) -> tuple[dict[tuple[str, str], str], list[WaiverOutcome]]:
    """Report-level statuses (``fail`` → ``waived`` where a live waiver matches) and outcomes.

    An expired waiver waives nothing: its failures show as ``fail`` again.
    """
    statuses = dict(verdicts)
    outcomes: list[WaiverOutcome] = []
    for w in waivers:
        matched = sorted((a, r) for (a, r) in verdicts if w.matches(a, r))
        failing = tuple(a for a, r in matched if verdicts[(a, r)] == "fail")
        passing = tuple(a for a, r in matched if verdicts[(a, r)] == "pass")
        if w.expired(today):
            outcomes.append(WaiverOutcome(w, "expired", (), passing))
            continue
        for a in failing:
            statuses[(a, w.requirement)] = "waived"
        if failing:
            state: State = "active"
        elif passing:
            state = "stale"
        else:
            state = "unused"
        outcomes.append(WaiverOutcome(w, state, failing, passing))
    # Two waivers on one verdict: the expired one must not undo the live one, nor the reverse.
    return statuses, outcomes
