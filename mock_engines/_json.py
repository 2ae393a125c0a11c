"""Request-body JSON the way the engines' own parsers see it, for the dialects.

Python's ``json`` differs from the engines' parsers at the edges a hostile client reaches, and a
mock must answer there as its engine does — with the engine's 4xx, never a 500 of its own:

* **depth**: CPython's decoder recurses and raises ``RecursionError`` near 1000 levels.
  nlohmann::json (llama.cpp) parses iteratively without a limit (:func:`loads_any_depth`);
  serde_json (TGI) stops at 128 (:func:`depth_exceeds`); FastAPI (vLLM) turns any non-syntax
  failure into 400 "There was an error parsing the body".
* **lone surrogates**: CPython accepts ``"\\ud800"``; nlohmann and serde_json reject it while
  parsing (:func:`lone_surrogate`).
"""

from __future__ import annotations

import json
import json.decoder
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Surrogate", "depth_exceeds", "line_col", "loads_any_depth", "lone_surrogate"]

_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Surrogate:
    """A ``\\uXXXX`` escape that is half a UTF-16 pair: at byte ``start``..``end`` of the body;
    ``leading`` (U+D800..U+DBFF without its trailing half) or a trailing half alone."""

    start: int
    end: int
    leading: bool


def lone_surrogate(body: bytes) -> Surrogate | None:
    """The first lone surrogate escape of a valid JSON ``body`` (None when there is none).

    Backslashes occur only inside strings in valid JSON, so scanning the escapes in order
    (``\\\\`` consumed as one) finds exactly the string escapes."""
    if b"\\u" not in body and b"\\U" not in body:
        return None
    pending: re.Match[bytes] | None = None
    for m in _ESCAPE.finditer(body):
        hexd = m.group(1)
        code = int(hexd, 16) if hexd is not None else -1
        if pending is not None:
            if 0xDC00 <= code <= 0xDFFF and m.start() == pending.end():
                pending = None
                continue
            return Surrogate(pending.start(), pending.end(), True)
        if 0xD800 <= code <= 0xDBFF:
            pending = m
        elif 0xDC00 <= code <= 0xDFFF:
            return Surrogate(m.start(), m.end(), False)
    if pending is not None:
        return Surrogate(pending.start(), pending.end(), True)
    return None


def depth_exceeds(body: bytes, limit: int) -> int | None:
    """Byte offset of the first ``[``/``{`` that opens nesting level ``limit`` (1-based), outside
    strings; None when the body never nests that deep."""
    if body.count(b"[") + body.count(b"{") < limit:
        return None
    depth = 0
    in_str = False
    esc = False
    for i, b in enumerate(body):
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth >= limit:
                return i
        elif b in (0x5D, 0x7D):
            depth -= 1
    return None


def line_col(body: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in bytes, as serde_json and nlohmann count) of ``offset``."""
    line = body.count(b"\n", 0, offset) + 1
    start = body.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def loads_any_depth(
    body: bytes, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None
) -> Any:
    """``json.loads`` that parses any nesting depth, as nlohmann::json does (its parser keeps an
    explicit stack). Raises ``json.JSONDecodeError`` / ``UnicodeDecodeError`` / ``ValueError``
    exactly where ``json.loads`` would; only depth is unlimited (and past CPython's own depth
    ``object_pairs_hook`` is not called: objects are plain dicts)."""
    try:
        return json.loads(body, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        return _iterative(body.decode("utf-8"))


#: The C-accelerated string scanner of ``json`` (not in typeshed): (string, index after it).
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?")
_CONSTANTS: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}


def _ws(s: str, i: int) -> int:
    m = _WS.match(s, i)
    return m.end() if m is not None else i


def _key(s: str, i: int) -> tuple[str, int]:
    if s[i : i + 1] != '"':
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, i)
    key, i = scanstring(s, i + 1)
    i = _ws(s, i)
    if s[i : i + 1] != ":":
        raise json.JSONDecodeError("Expecting ':' delimiter", s, i)
    return key, _ws(s, i + 1)


def _scalar(s: str, i: int) -> tuple[Any, int]:
    c = s[i : i + 1]
    if c == '"':
        text, end = scanstring(s, i + 1)
        return text, end
    m = _NUMBER.match(s, i)
    if m is not None:
        integer, frac, exp = m.groups()
        if frac or exp:
            return float(integer + (frac or "") + (exp or "")), m.end()
        return int(integer), m.end()
    for text, value in _CONSTANTS.items():
        if s.startswith(text, i):
            return value, i + len(text)
    raise json.JSONDecodeError("Expecting value", s, i)


def _iterative(s: str) -> Any:
    """A JSON parser with an explicit stack (no recursion), for bodies CPython's cannot nest."""
    n = len(s)
    stack: list[tuple[dict[str, Any] | list[Any], str]] = []
    i = _ws(s, 0)
    while True:
        c = s[i : i + 1]
        value: Any
        if c in ("{", "["):
            i = _ws(s, i + 1)
            if c == "{" and s[i : i + 1] == "}":
                value, i = {}, i + 1
            elif c == "[" and s[i : i + 1] == "]":
                value, i = [], i + 1
            elif c == "{":
                key, i = _key(s, i)
                stack.append(({}, key))
                continue
            else:
                stack.append(([], ""))
                continue
        else:
            value, i = _scalar(s, i)
        while True:
            if not stack:
                i = _ws(s, i)
                if i != n:
                    raise json.JSONDecodeError("Extra data", s, i)
                return value
            cont, key = stack[-1]
            if isinstance(cont, dict):
                cont[key] = value
            else:
                cont.append(value)
            i = _ws(s, i)
            sep = s[i : i + 1]
            if sep == ",":
                i = _ws(s, i + 1)
                if isinstance(cont, dict):
                    key, i = _key(s, i)
                    stack[-1] = (cont, key)
                break
            if sep == ("}" if isinstance(cont, dict) else "]"):
                stack.pop()
                value, i = cont, i + 1
                continue
            raise json.JSONDecodeError("Expecting ',' delimiter", s, i)
