"""Helpers shared by the mock-engine tests: SSE parsing and native request shapes."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

# The dialects written with the core (TGI and Triton have their own test files).
CORE_DIALECTS = ("llamacpp", "vllm", "openai")
TIMEOUT = httpx.Timeout(10.0)
CREATED = 1732000000

_LINE = re.compile(rb"\r\n|\r|\n")


def sse_data(body: bytes) -> list[bytes]:
    """The ``data`` payloads of an SSE body, split on raw CR/LF/CRLF (never ``splitlines``)."""
    out: list[bytes] = []
    buf: list[bytes] = []
    for line in _LINE.split(body):
        if line == b"":
            if buf:
                out.append(b"\n".join(buf))
                buf = []
            continue
        if line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if field == b"data":
            buf.append(value[1:] if value.startswith(b" ") else value)
    if buf:
        out.append(b"\n".join(buf))
    return out


def sse_json(body: bytes) -> list[Any]:
    return [json.loads(d) for d in sse_data(body) if d != b"[DONE]"]


def gen_request(
    dialect: str, model: str, *, stream: bool, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """(path, body) of a plain completion request in ``dialect``'s own native shape."""
    prompt = extra.pop("prompt", "Hello")
    max_tokens = extra.pop("max_tokens", 6)
    if dialect == "llamacpp":
        body = {"prompt": prompt, "n_predict": max_tokens, "stream": stream, **extra}
        return "/completion", body
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": stream, **extra}
    return "/v1/completions", body


def auth_headers(dialect: str) -> dict[str, str]:
    return {"authorization": "Bearer test-key"} if dialect == "openai" else {}


def stream_texts(dialect: str, body: bytes) -> list[str]:
    """Token texts of a native completion stream in ``dialect``."""
    objs = sse_json(body)
    if dialect == "llamacpp":
        return [o["content"] for o in objs if not o.get("stop")]
    return [o["choices"][0]["text"] for o in objs if o.get("choices") and o["choices"][0]["text"]]
