"""Helpers shared by the mock-engine tests: SSE parsing and native request shapes."""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
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


class RawResponse:
    """A response read off a plain socket: status, headers and the HTTP chunks as written."""

    def __init__(
        self, status: int, headers: dict[str, str], chunks: list[bytes], complete: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.chunks = chunks
        self.complete = complete

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def raw_request(
    base_url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> RawResponse:
    """One HTTP/1.1 request over a raw socket, keeping chunked-encoding boundaries visible.

    Each ASGI ``send`` of the mock becomes one HTTP chunk, so ``chunks`` shows exactly how the
    mock split its writes; ``complete`` is False when the connection ended before the final
    zero-length chunk (a deliberate mid-stream close).
    """
    u = urllib.parse.urlsplit(base_url)
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    data = bytearray()
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=timeout) as s:
        s.sendall(raw)
        while True:
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            data += got
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    if not head:
        return RawResponse(0, {}, [], False)
    status_line, *hlines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in hlines)}
    if hdrs.get("transfer-encoding") != "chunked":
        n = int(hdrs.get("content-length", len(rest)))
        return RawResponse(status, hdrs, [rest[:n]], len(rest) >= n)
    chunks: list[bytes] = []
    pos = 0
    while True:
        eol = rest.find(b"\r\n", pos)
        if eol == -1:
            return RawResponse(status, hdrs, chunks, False)
        size = int(rest[pos:eol], 16)
        if size == 0:
            return RawResponse(status, hdrs, chunks, True)
        start = eol + 2
        chunk = rest[start : start + size]
        if len(chunk) < size:
            if chunk:
                chunks.append(chunk)
            return RawResponse(status, hdrs, chunks, False)
        chunks.append(chunk)
        pos = start + size + 2


def refused(base_url: str) -> bool:
    """Whether a connection to ``base_url``'s host and port is refused (a closed port)."""
    u = urllib.parse.urlsplit(base_url)
    try:
        with socket.create_connection((u.hostname or "", u.port or 0), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def check_loading_then_serving(engine: Any, health_path: str) -> None:
    """``engine.loading`` keeps the port closed; cleared, the engine serves ``health_path``."""
    engine.set_faults(["engine.loading"])
    assert refused(engine.base_url)
    engine.set_faults([])
    with httpx.Client(base_url=engine.base_url, timeout=TIMEOUT) as c:
        assert c.get(health_path).status_code == 200
