"""Named faults: the catalogue (stable IDs), parsing of ``<id>[;k=v;...]`` and selection.

Faults are data (DESIGN.md principle 2). Each has a stable ID, a description, parameters with
defaults, and the dialects it applies to. The dialects themselves declare which faults they
cannot render (``Dialect.unsupported_faults``), so ``applies_to`` is computed from the registry
and a new dialect never has to edit this file.

Selection: engine-wide (``faults=`` / ``--fault`` / ``POST /__mock__/config``) or per request
(header ``X-Mock-Fault``). Two selection parameters work on any fault: ``first=N`` (only the
first N matching requests get it, then the engine behaves normally) and ``rate=P`` (each
matching request gets it with probability P from a seeded RNG). Engine-wide rules apply to
generation requests, except ``engine.loading``, which applies to every route, and the
connection-level ``conn.*`` faults. At most one fault applies to a request: the header wins,
then the engine rules in order.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llorch_conformance.adapters.api import ConfigError

__all__ = [
    "FAULT_HEADER",
    "FAULT_IDS",
    "FaultParam",
    "FaultRule",
    "FaultSpec",
    "RuleState",
    "fault_spec",
    "parse_faults",
]

FAULT_HEADER = "x-mock-fault"


@dataclass(frozen=True, slots=True)
class FaultParam:
    name: str
    default: int | float | str | None
    help: str


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One named fault: ``id``, ``description``, ``params`` (with defaults), ``applies_to``."""

    id: str
    description: str
    params: tuple[FaultParam, ...] = ()
    applies_to: tuple[str, ...] = ()
    engine_level_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "params": {p.name: p.default for p in self.params},
            "applies_to": list(self.applies_to),
            "engine_level_only": self.engine_level_only,
        }


_AFTER_EVENTS_2 = FaultParam("after_events", 2, "SSE events sent before the fault")
_AFTER_EVENTS_1 = FaultParam("after_events", 1, "SSE events sent before the fault")
_DELAY = FaultParam("delay_ms", 2000, "length of the silence in milliseconds")
_DURATION = FaultParam("duration_ms", 0, "engine-wide: how long it lasts (0 = until cleared)")

_CATALOGUE: tuple[FaultSpec, ...] = (
    *(
        FaultSpec(
            f"http.{code}",
            f"HTTP {code} with the engine's own error envelope, before any stream byte",
        )
        for code in (400, 401, 404, 422, 500, 503)
    ),
    FaultSpec(
        "http.429_retry_after",
        "HTTP 429 with Retry-After (OpenAI/vLLM also x-ratelimit-* where the engine sends them)",
        (FaultParam("seconds", 1, "Retry-After value in seconds"),),
    ),
    FaultSpec(
        "engine.loading",
        "the engine's own loading behaviour (llama.cpp: 503 'Loading model' on every route; "
        "vLLM/TGI/Triton: port closed until ready)",
        (_DURATION,),
    ),
    FaultSpec(
        "engine.overload",
        "the engine's own answer when slots and queue are full",
    ),
    FaultSpec(
        "conn.port_closed",
        "nothing listens on the port (connection refused)",
        (_DURATION,),
        engine_level_only=True,
    ),
    FaultSpec(
        "conn.accept_then_close",
        "accept the TCP connection, then close it without an HTTP response",
    ),
    FaultSpec(
        "conn.slow_headers",
        "response headers only after delay_ms",
        (_DELAY,),
    ),
    FaultSpec(
        "stall.before_first_byte",
        "headers sent, then silence for delay_ms before the first body byte",
        (_DELAY,),
    ),
    FaultSpec(
        "stall.midstream",
        "after after_events events, silence for delay_ms, then continue",
        (_AFTER_EVENTS_2, _DELAY),
    ),
    FaultSpec(
        "midstream.disconnect",
        "close the connection after after_events events, no terminal frame",
        (_AFTER_EVENTS_2,),
    ),
    FaultSpec(
        "midstream.disconnect_bytes",
        "close the connection after after_bytes body bytes",
        (FaultParam("after_bytes", 64, "body bytes sent before closing"),),
    ),
    FaultSpec(
        "midstream.cut_utf8",
        "close the connection in the middle of a multi-byte UTF-8 character",
    ),
    FaultSpec(
        "frame.split_utf8",
        "benign: every write boundary falls inside a multi-byte character",
    ),
    FaultSpec("frame.split_every_byte", "benign: every body byte is its own write"),
    FaultSpec(
        "frame.malformed_json",
        "one data frame carries invalid JSON",
        (_AFTER_EVENTS_1,),
    ),
    FaultSpec(
        "frame.missing_terminal",
        "the stream ends without its terminal frame",
    ),
    FaultSpec(
        "frame.duplicate_index",
        "a token/index repeated (where the dialect carries an index)",
        (_AFTER_EVENTS_1,),
    ),
    FaultSpec(
        "frame.out_of_order_index",
        "token indices out of order (where the dialect carries one)",
        (_AFTER_EVENTS_1,),
    ),
    FaultSpec(
        "stream.error_event",
        "an in-stream error event in the engine's own shape after after_events events",
        (_AFTER_EVENTS_1, FaultParam("message", "mock in-stream failure", "error message")),
    ),
    FaultSpec(
        "stream.keepalive_flood",
        "count keep-alive comments interleaved before and among the events",
        (FaultParam("count", 1000, "number of keep-alive comments"),),
    ),
    FaultSpec(
        "frame.oversized",
        "one frame of size bytes; a client must fail cleanly, not buffer forever",
        (_AFTER_EVENTS_1, FaultParam("size", 8 * 1024 * 1024, "frame size in bytes")),
    ),
    FaultSpec(
        "http.wrong_content_type",
        "success body with a wrong Content-Type (text/plain)",
        (FaultParam("content_type", "text/plain", "the Content-Type sent"),),
    ),
)

_BY_ID: dict[str, FaultSpec] = {s.id: s for s in _CATALOGUE}
FAULT_IDS: tuple[str, ...] = tuple(s.id for s in _CATALOGUE)
_SELECTION_PARAMS = ("first", "rate")


def fault_spec(fault_id: str) -> FaultSpec:
    """The catalogue entry of ``fault_id`` (without ``applies_to``); ConfigError if unknown."""
    try:
        return _BY_ID[fault_id]
    except KeyError:
        raise ConfigError(
            f"unknown fault id {fault_id!r} (see 'llorch-conformance list faults')"
        ) from None


def catalogue_specs() -> tuple[FaultSpec, ...]:
    return _CATALOGUE


def _coerce(spec: FaultSpec, name: str, raw: str) -> int | float | str:
    default = next((p.default for p in spec.params if p.name == name), None)
    try:
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ConfigError(f"fault {spec.id}: parameter {name}={raw!r} is not a number") from None
    return raw


@dataclass(frozen=True, slots=True)
class FaultRule:
    """A parsed fault selection: ``id``, ``params`` (defaults filled in), ``first``, ``rate``."""

    id: str
    params: Mapping[str, int | float | str | None] = field(default_factory=dict)
    first: int | None = None
    rate: float | None = None

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """Parse ``"<id>[;k=v;...]"``, e.g. ``"stall.midstream;after_events=3;first=2"``."""
        parts = [p.strip() for p in text.strip().split(";") if p.strip()]
        if not parts:
            raise ConfigError("empty fault specification")
        spec = fault_spec(parts[0])
        known = {p.name for p in spec.params}
        params: dict[str, int | float | str | None] = {p.name: p.default for p in spec.params}
        first: int | None = None
        rate: float | None = None
        for item in parts[1:]:
            key, sep, value = item.partition("=")
            key = key.strip()
            value = value.strip()
            if not sep:
                raise ConfigError(f"fault {spec.id}: parameter {item!r} is not key=value")
            if key == "first":
                try:
                    first = int(value)
                except ValueError:
                    raise ConfigError(
                        f"fault {spec.id}: first={value!r} is not an integer"
                    ) from None
                if first < 0:
                    raise ConfigError(f"fault {spec.id}: first must be >= 0")
            elif key == "rate":
                try:
                    rate = float(value)
                except ValueError:
                    raise ConfigError(f"fault {spec.id}: rate={value!r} is not a number") from None
                if not 0.0 <= rate <= 1.0:
                    raise ConfigError(f"fault {spec.id}: rate must be within 0..1")
            elif key in known:
                params[key] = _coerce(spec, key, value)
            else:
                allowed = ", ".join([*sorted(known), *_SELECTION_PARAMS])
                raise ConfigError(
                    f"fault {spec.id}: unknown parameter {key!r} (allowed: {allowed})"
                )
        return cls(spec.id, params, first, rate)

    def param(self, name: str) -> Any:
        return self.params.get(name)

    def int_param(self, name: str) -> int:
        v = self.params.get(name)
        return int(v) if isinstance(v, int | float) else 0

    def __str__(self) -> str:
        spec = _BY_ID[self.id]
        defaults = {p.name: p.default for p in spec.params}
        items = [f"{k}={v}" for k, v in self.params.items() if defaults.get(k) != v]
        if self.first is not None:
            items.append(f"first={self.first}")
        if self.rate is not None:
            items.append(f"rate={self.rate}")
        return ";".join([self.id, *items])


def parse_faults(items: Iterable[str | FaultRule]) -> list[FaultRule]:
    """Parse a list of fault specifications (strings or ready rules)."""
    return [i if isinstance(i, FaultRule) else FaultRule.parse(i) for i in items]


class RuleState:
    """An engine-wide rule with its counters: ``first`` counts down, ``rate`` draws seeded.

    Thread-safe: the runner may replace rules from the test thread while the server thread
    selects faults.
    """

    def __init__(self, rule: FaultRule, seed: int, position: int) -> None:
        self.rule = rule
        self.matched = 0
        self.applied = 0
        digest = hashlib.sha256(f"{seed}|{position}|{rule}".encode()).digest()
        self._rng = random.Random(int.from_bytes(digest[:8], "big"))
        self._lock = threading.Lock()

    def select(self) -> bool:
        """Count one matching request; True when this request gets the fault."""
        with self._lock:
            self.matched += 1
            rule = self.rule
            if rule.first is not None and self.applied >= rule.first:
                return False
            if rule.rate is not None and self._rng.random() >= rule.rate:
                return False
            self.applied += 1
            return True
