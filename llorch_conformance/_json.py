"""Pretty JSON, the bytes ``json.dumps(value, indent=2, ensure_ascii=False)`` gives, faster.

Also :func:`loads`, the matching reader. One implementation for the two writers that need it: the results model (``results.json``) and
the proof-bundle writer (every JSON file of a bundle).

Why: with ``indent`` the standard library encodes in pure Python, which made these files one of
the largest costs after a run. Its C encoder writes compact JSON, and msgspec (a dependency
already) re-indents those tokens verbatim in C; doing it on the UTF-8 bytes rather than on a
``str`` that is encoded afterwards is ~3x cheaper for non-ASCII text (most evidence). The result
is byte-identical (tests in ``tests/reports/test_writer.py`` and ``tests/conformance/
test_results.py``). What msgspec or UTF-8 refuses (``NaN``/``Infinity``, lone surrogates) takes
the standard path, so those values behave exactly as before (a lone surrogate still fails to
encode).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["loads", "pretty_json", "pretty_json_bytes"]


def pretty_json(value: Any, *, default: Callable[[Any], Any] = str) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False, default=default)``: the same text."""
    compact = json.dumps(value, ensure_ascii=False, default=default)
    try:
        return msgspec.json.format(compact, indent=2)
    except (msgspec.MsgspecError, ValueError):
        return json.dumps(value, indent=2, ensure_ascii=False, default=default)


def pretty_json_bytes(value: Any, *, default: Callable[[Any], Any] = str) -> bytes:
    """``pretty_json(value, default=default)`` as UTF-8: the same bytes."""
    compact = json.dumps(value, ensure_ascii=False, default=default)
    try:
        return msgspec.json.format(compact.encode("utf-8"), indent=2)
    except (msgspec.MsgspecError, ValueError):  # UnicodeEncodeError is a ValueError
        return json.dumps(value, indent=2, ensure_ascii=False, default=default).encode("utf-8")


def loads(data: str | bytes) -> Any:
    """``json.loads(data)``: the same values, or the same error.

    msgspec parses in C (~2.5x faster; a full run's results.json and evidence are tens of MB)
    and, where it succeeds, gives what ``json.loads`` gives (same dicts in the same order,
    lists, correctly rounded floats, big ints, last duplicate key wins); whatever it refuses
    (``NaN``, lone surrogate escapes, out-of-range numbers, nesting too deep, invalid input)
    goes to ``json.loads`` as before, with its result or its error.
    """
    try:
        return msgspec.json.decode(data)
    except (msgspec.MsgspecError, RecursionError):
        return json.loads(data)
