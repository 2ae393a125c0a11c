"""Stream grammar: ``started → token* → [metrics] → end | error``, checked once for everybody.

The harness, the host and the tests all need to know whether a finished stream obeyed the
contract (ADAPT-3000/3001, WA-INT-3001, ORCH-3407). :func:`check_stream` returns every violation
as a readable sentence instead of stopping at the first, so a report can show them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._enums import ErrorCode
from ._types import TokenEvent

__all__ = ["check_stream", "joined_text"]

_KINDS = frozenset({"started", "token", "metrics", "end", "error"})
_CODES = frozenset(c.value for c in ErrorCode)


def check_stream(events: Iterable[TokenEvent]) -> list[str]:
    """Return the grammar violations of a complete stream (empty list: the stream conforms).

    Rules: the first event is ``started``; tokens carry a string ``t`` and an int ``i`` that
    starts at 0 and rises by exactly one; ``metrics`` may appear after ``started`` any number of
    times; the stream ends with exactly one ``end`` (with int ``tokens_out`` and
    ``decode_time_ms``) or one ``error`` (``code`` from the ErrorKind set, bool ``retriable``,
    optional int ``retry_after_ms``); nothing follows the terminal event. A stream may end in
    ``error`` without ``started`` (the failure came first).
    """
    problems: list[str] = []
    seen_started = False
    terminal_at: int | None = None
    expected_i = 0
    n = -1
    for n, ev in enumerate(events):
        kind = ev.kind
        if terminal_at is not None:
            problems.append(f"event #{n} ({kind}) follows the terminal event #{terminal_at}")
            continue
        if kind not in _KINDS:
            problems.append(f"event #{n} has unknown kind {kind!r}")
            continue
        data: Any = ev.data
        if not isinstance(data, dict):
            problems.append(f"event #{n} ({kind}) data is not an object")
            continue
        if kind == "started":
            if seen_started:
                problems.append(f"event #{n}: second 'started'")
            elif n != 0:
                problems.append(f"event #{n}: 'started' is not the first event")
            seen_started = True
        elif kind == "error":
            terminal_at = n
            code = ev.data.get("code")
            if code not in _CODES:
                problems.append(f"event #{n}: error code {code!r} is not an ErrorKind")
            if not isinstance(ev.data.get("retriable"), bool):
                problems.append(f"event #{n}: error 'retriable' is not a boolean")
            ra = ev.data.get("retry_after_ms")
            if ra is not None and (isinstance(ra, bool) or not isinstance(ra, int) or ra < 0):
                problems.append(f"event #{n}: error 'retry_after_ms' is not a non-negative int")
        else:
            if not seen_started:
                problems.append(f"event #{n} ({kind}) comes before 'started'")
                seen_started = True  # report once
            if kind == "token":
                t, i = ev.data.get("t"), ev.data.get("i")
                if not isinstance(t, str):
                    problems.append(f"event #{n}: token 't' is not a string")
                if isinstance(i, bool) or not isinstance(i, int):
                    problems.append(f"event #{n}: token 'i' is not an integer")
                elif i != expected_i:
                    problems.append(f"event #{n}: token index {i}, expected {expected_i}")
                    expected_i = i + 1
                else:
                    expected_i += 1
            elif kind == "end":
                terminal_at = n
                for key in ("tokens_out", "decode_time_ms"):
                    v = ev.data.get(key)
                    if isinstance(v, bool) or not isinstance(v, int):
                        problems.append(f"event #{n}: end '{key}' is not an integer")
    if n == -1:
        problems.append("the stream is empty")
    elif terminal_at is None:
        problems.append("the stream has no terminal 'end' or 'error' event")
    return problems


def joined_text(events: Iterable[TokenEvent]) -> str:
    """The generated text: every token's ``t`` joined in order."""
    return "".join(ev.data["t"] for ev in events if ev.kind == "token")
