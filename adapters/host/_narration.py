"""Narration (ORCH-3300..3312, ORCH-3604, AH-2002): short human sentences beside structured logs.

A narration record has the required ``actor``, ``action``, ``target`` and ``human`` fields plus
ids and context. ``human`` is natural language under about 100 characters, present tense, and is
redacted before it leaves; ids stay in structured fields. Records go to the ``llorch.narration``
logger as one INFO line each (never per token) with the fields in ``extra["narration"]``, so both
pretty and JSON log formatters can use them. :class:`NarrationCapture` collects records in tests
(the original ``CaptureAdapter``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HUMAN_MAX", "Narration", "NarrationCapture", "narrate"]

HUMAN_MAX = 100
LOGGER = logging.getLogger("llorch.narration")

_captures: list[NarrationCapture] = []

# Fields that are safe by construction and must stay readable: an identity is ``localhost`` or
# ``token:<fp6>`` (AUTH-1008) — redacting it again would hide the fingerprint it exists to show.
_SAFE_FIELDS = frozenset({"identity"})


@dataclass(frozen=True, slots=True)
class Narration:
    actor: str
    action: str
    target: str
    human: str
    fields: dict[str, Any] = field(default_factory=dict)
    emitted_at_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "human": self.human,
            "emitted_at_ms": self.emitted_at_ms,
            **self.fields,
        }


def _redact(text: str) -> str:
    # Imported lazily: http_util is a sibling layer and this module must import without it.
    from llorch_conformance.adapters.http_util import redact

    return redact(text)


def narrate(actor: str, action: str, target: str, human: str, **fields: Any) -> Narration:
    """Emit one narration record and return it. ``None`` fields are dropped."""
    text = _redact(human)
    if len(text) > HUMAN_MAX:
        text = text[: HUMAN_MAX - 1] + "…"
    clean = {
        k: (_redact(v) if isinstance(v, str) and k not in _SAFE_FIELDS else v)
        for k, v in fields.items()
        if v is not None
    }
    rec = Narration(actor, action, target, text, clean, int(time.time() * 1000))
    if LOGGER.isEnabledFor(logging.INFO):
        LOGGER.info(text, extra={"narration": rec.to_dict()})
    for cap in _captures:
        cap.records.append(rec)
    return rec


class NarrationCapture:
    """Collects narration records while active; use :func:`NarrationCapture.install`."""

    def __init__(self) -> None:
        self.records: list[Narration] = []

    @classmethod
    @contextmanager
    def install(cls) -> Iterator[NarrationCapture]:
        cap = cls()
        _captures.append(cap)
        try:
            yield cap
        finally:
            _captures.remove(cap)

    def actions(self) -> list[str]:
        return [r.action for r in self.records]

    def find(self, action: str) -> list[Narration]:
        return [r for r in self.records if r.action == action]
