"""A slow, obviously-correct transcription of the WHATWG event-stream rules: the test oracle.

It works on the whole stream at once (decode everything, then walk characters), so it shares no
code and no tricks with :class:`adapters.http_util.SSEDecoder`, which works incrementally on bytes.
"""

from __future__ import annotations

from llorch_conformance.adapters.http_util import SSEEvent

_MAX_RETRY_DIGITS = 18  # the decoder's documented limit for absurdly long retry values


def reference_events(raw: bytes) -> tuple[list[SSEEvent], bool]:
    """Events of a complete stream, and whether an unfinished line/event was discarded."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", "replace")
    lines: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\r":
            lines.append(text[start:i])
            if i + 1 < n and text[i + 1] == "\n":
                i += 1
            start = i + 1
        elif c == "\n":
            lines.append(text[start:i])
            start = i + 1
        i += 1
    tail = text[start:]

    events: list[SSEEvent] = []
    data: list[str] = []
    event_type = ""
    retry: int | None = None
    last_id: str | None = None
    seen_field = False
    for line in lines:
        if line == "":
            if data:
                events.append(SSEEvent(event_type or "message", "\n".join(data), last_id, retry))
            data, event_type, retry, seen_field = [], "", None, False
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "data":
            data.append(value)
            seen_field = True
        elif name == "event":
            event_type = value
            seen_field = True
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry" and value and all(ch in "0123456789" for ch in value):
            digits = value.lstrip("0")
            if len(digits) <= _MAX_RETRY_DIGITS:
                retry = int(digits or "0")
    truncated = bool(tail) or bool(data) or seen_field
    return events, truncated
