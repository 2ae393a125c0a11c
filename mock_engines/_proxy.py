"""A fault-injecting reverse proxy in front of a *live* engine, with the mock engine's controls.

Why: against a live engine (``run --engine-url``) the suite cannot make the engine fail on cue, so
every scenario that needs a fault or the engine journal used to be ``unsupported``. The proxy sits
between adapter and engine on loopback and passes the engine's own bytes through as they arrive
(no whole-response buffering), bending them on request: split writes, a cut inside a UTF-8
character, silence, a reset after N events or bytes, a corrupted or missing frame, a duplicated or
reordered token frame, an oversized frame, keep-alive floods, a wrong Content-Type, and statuses
before the first byte (429 with Retry-After, 503, ...) in the engine's own error envelope.

The control surface is the mock engine's, so steps need almost no changes:

* the same fault catalogue and selection (``mock_engines._faults``): engine-wide rules
  (:meth:`FaultProxy.set_faults`, ``POST /__mock__/config``) or per request (``X-Mock-Fault``),
  ``first=N`` / ``rate=P``; engine-wide rules apply to the dialect's generation routes;
* the same :class:`~mock_engines._journal.Journal`: every request the adapter sent, redacted
  headers, body, status, frames as sent to the adapter, first/last byte times, disconnects and
  cancels, open connections. A request answered by a status fault (``http.*``, loading,
  overload) or cut at accept never reaches the engine, as on a mock engine. ``entry.plan`` is an :class:`ObservedGeneration`: the token texts
  and stop reason parsed from the engine's *unmodified* stream — the live engine's own output is
  the oracle, since no plan exists for it.

How it is built: the request side is the mock engine's raw-ASGI app and uvicorn server
(:class:`~mock_engines._app.MockEngineApp` subclassed, :class:`~mock_engines._server.EngineServer`
reused), so request parsing, body limits, connection counting, ``conn.*`` faults, the closed port
and the ``/__mock__/`` control endpoints are exactly the mock's. Only dispatch differs: instead of
rendering a plan it forwards to the engine over a small HTTP/1.1 client on raw asyncio streams
(bounded head, bounded chunk lines, bounded SSE events, an idle-connection pool) and applies the
selected fault to the response stream incrementally.

Security: the proxy contacts only the configured engine URL (scheme, host and port fixed at
construction; the request path is appended to the URL's own path), never a URL taken from a
request; hop-by-hop headers and ``X-Mock-Fault`` are not forwarded; TLS to an https engine is
verified.

Faults the proxy realises with the dialect's rendering instead of engine bytes (the engine cannot
be made to produce them): ``http.<status>``, ``http.429_retry_after``, ``engine.overload``,
``engine.loading`` (llama.cpp's 503 envelope) and ``stream.error_event`` (the in-stream error
shape, after the engine's own first events). ``conn.port_closed`` / ``engine.loading`` on
port-closed dialects close the proxy's own port, which is the port the adapter was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from llorch_conformance.adapters.api import ConfigError

from ._app import MockEngineApp, _WatchState
from ._asgi import Receive, Scope, Send
from ._context import DEFAULT_MAX_BODY, EngineContext
from ._dialects import get_dialect
from ._faults import FAULT_HEADER, NOT_APPLIED, FaultRule, Live, LiveEvent, Responder, Stage
from ._journal import Journal, JournalEntry
from ._plan import MAX_CONTEXT
from ._server import EngineHandle
from ._wire import FrameKind, MockRequest, Rejected, Reply, StreamReply

__all__ = [
    "ENGINE_PROBES",
    "NOT_APPLIED",
    "FaultProxy",
    "ObservedGeneration",
    "ProxyApp",
    "ProxyContext",
    "UpstreamError",
    "run_fault_proxy",
]

#: Limits: what a hostile engine (or client) can make the proxy hold at once.
MAX_HEAD_BYTES = 64 * 1024
MAX_CHUNK_LINE = 1024
MAX_EVENT_BYTES = 16 * 1024 * 1024
MAX_JOURNAL_BYTES = 32 * 1024 * 1024
MAX_IDLE_CONNECTIONS = 16
READ_SIZE = 64 * 1024
CONNECT_TIMEOUT_S = 10.0
HEAD_TIMEOUT_S = 300.0

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        FAULT_HEADER,
    }
)

#: Where each dialect's engine tells its version and served model (path, JSON key path).
ENGINE_PROBES: dict[str, dict[str, tuple[str, tuple[str | int, ...]]]] = {
    "llamacpp": {
        "version": ("/props", ("build_info",)),
        "model": ("/v1/models", ("data", 0, "id")),
        "ctx_size": ("/props", ("default_generation_settings", "n_ctx")),
    },
    "vllm": {
        "version": ("/version", ("version",)),
        "model": ("/v1/models", ("data", 0, "id")),
        "ctx_size": ("/v1/models", ("data", 0, "max_model_len")),
    },
    "openai": {"model": ("/v1/models", ("data", 0, "id"))},
    "tgi": {
        "version": ("/info", ("version",)),
        "model": ("/info", ("model_id",)),
        "ctx_size": ("/info", ("max_total_tokens",)),
    },
    "triton": {
        "version": ("/v2", ("version",)),
        # the first ready model of the repository index (a POST: Triton's repository extension)
        "model": ("POST /v2/repository/index", (0, "name")),
        "ctx_size": (
            "/v2/models/{model}/config",
            ("parameters", "max_model_len", "string_value"),
        ),
    },
}


class UpstreamError(Exception):
    """The engine could not be reached or answered something that is not HTTP/1.x."""


# ---------------------------------------------------------------------------------------------
# What the engine generated (the live oracle)
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ObservedGeneration:
    """The engine's own output for one request, parsed from its unmodified response.

    Shaped like :class:`~mock_engines._plan.GenerationPlan` where steps read it: ``tokens`` (one
    text per content event), ``stop_reason`` (``length`` / ``eos`` / ``stop``, ``None`` when the
    engine did not say), ``text``, ``completion_tokens``. ``complete`` is true once the engine's
    response ended normally (a fault may cut the adapter off earlier; the proxy then stops
    reading, and the tokens are what the engine had sent by then).
    """

    tokens: list[str] = field(default_factory=list)
    #: what the engine said, mapped (``EOS_OR_STOP`` when its wire cannot tell the two apart)
    engine_stop_reason: str | None = None
    stop_string: str | None = None
    upstream_status: int | None = None
    complete: bool = False
    source: str = "engine"
    token_ids: tuple[int, ...] = ()
    #: When the engine's response head arrived and when its body ended (``time.monotonic()``;
    #: the entry's ``t_first_byte`` / ``t_last_byte`` are what the adapter was sent, faults and all).
    t_engine_head: float | None = None
    t_engine_done: float | None = None
    #: Parses the forwarded request the way the engine does (the dialect's own parser), on
    #: first use: ``prompt``, ``seed``, ``max_tokens``, ``stop``, sampling knobs.
    parse: Callable[[], tuple[Any, str | None]] | None = field(
        default=None, repr=False, compare=False
    )
    #: Why the dialect parser could not read the forwarded request (then ``request`` is None).
    parse_error: str | None = None
    _parsed: Any = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def stop_reasons(self) -> tuple[str, ...]:
        """Every stop reason consistent with what the engine said (two when it is ambiguous)."""
        r = self.engine_stop_reason
        if r is None:
            return ()
        return ("eos", "stop") if r == EOS_OR_STOP else (r,)

    @property
    def stop_reason(self) -> str | None:
        """The stop reason; an ambiguous ``finish_reason: "stop"`` reads as ``stop`` when the
        forwarded request carried stop strings, else ``eos`` (see :attr:`stop_reasons`)."""
        r = self.engine_stop_reason
        if r != EOS_OR_STOP:
            return r
        return "stop" if getattr(self.request, "stop", None) else "eos"

    @property
    def request(self) -> Any:
        """The engine's parsed view of the request (a plan of the dialect's parser), or None."""
        if self._parsed is None and self.parse is not None:
            parse, self.parse = self.parse, None
            self._parsed, self.parse_error = parse()
        return self._parsed

    def __getattr__(self, name: str) -> Any:
        # What the adapter forwarded, as the engine parsed it (never the engine's output: that
        # is ``tokens`` / ``stop_reason`` above). ``prompt_tokens`` is left out on purpose: the
        # dialect's tokenizer is not the engine's.
        if name in _REQUEST_FIELDS:
            return getattr(self.request, name, None)
        raise AttributeError(name)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


_REQUEST_FIELDS = frozenset(
    {"prompt", "seed", "max_tokens", "stop", "temperature", "top_p", "top_k", "ignore_eos",
     "min_tokens"}
)  # fmt: skip

_KIND_TOKEN, _KIND_META, _KIND_TERMINAL, _KIND_COMMENT = 0, 1, 2, 3

_LLAMA_STOP = {"eos": "eos", "limit": "length", "word": "stop"}
_TGI_STOP = {"eos_token": "eos", "length": "length", "stop_sequence": "stop"}


#: An OpenAI-style ``finish_reason: "stop"`` without vLLM's ``stop_reason`` field: the end of
#: sequence and a matched stop string look the same on the wire.
EOS_OR_STOP = "eos|stop"
_MISSING = object()


def _finish(reason: Any, extra: Any = _MISSING) -> str | None:
    """An OpenAI-style finish reason as a plan stop reason (``extra``: vLLM's ``stop_reason``)."""
    if reason == "length":
        return "length"
    if reason == "stop":
        if extra is _MISSING:
            return EOS_OR_STOP
        return "stop" if isinstance(extra, str | int) and not isinstance(extra, bool) else "eos"
    return None


def classify_event(event: bytes) -> tuple[int, str | None, str | None, list[str | int] | None]:
    """``(kind, token text, stop reason, JSON path of the token text)`` of one SSE event.

    Dialect-agnostic on purpose: the shapes of llama.cpp, OpenAI/vLLM, TGI and Triton do not
    overlap, so one classifier reads all of them (and an unknown shape is ``META``: passed
    through, never counted as a token).
    """
    payload: list[bytes] = []
    only_comments = True
    for line in event.splitlines():
        if not line:
            continue
        if line.startswith(b":"):
            continue
        only_comments = False
        if line.startswith(b"data:"):
            v = line[5:]
            payload.append(v[1:] if v.startswith(b" ") else v)
    if only_comments:
        return _KIND_COMMENT, None, None, None
    data = b"\n".join(payload).strip()
    if data == b"[DONE]":
        return _KIND_TERMINAL, None, None, None
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return _KIND_META, None, None, None
    if not isinstance(obj, dict) or "error" in obj:
        return _KIND_META, None, None, None
    # llama.cpp native /completion
    if "content" in obj and "stop" in obj:
        text = obj.get("content")
        text = text if isinstance(text, str) and text else None
        if obj.get("stop") is True:
            reason = _LLAMA_STOP.get(str(obj.get("stop_type")))
            return _KIND_TERMINAL, text, reason, ["content"] if text else None
        return (_KIND_TOKEN, text, None, ["content"]) if text else (_KIND_META, None, None, None)
    # OpenAI-compatible (vLLM, llama.cpp /v1, OpenAI)
    choices = obj.get("choices")
    if isinstance(choices, list):
        if not choices or not isinstance(choices[0], dict):
            return _KIND_META, None, None, None
        ch = choices[0]
        reason = _finish(ch.get("finish_reason"), ch.get("stop_reason", _MISSING))
        text = ch.get("text")
        path: list[str | int] = ["choices", 0, "text"]
        if not isinstance(text, str):
            delta = ch.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
            path = ["choices", 0, "delta", "content"]
        if isinstance(text, str) and text:
            return _KIND_TOKEN, text, reason, path
        return _KIND_META, None, reason, None
    # TGI
    tok = obj.get("token")
    if isinstance(tok, dict):
        text = tok.get("text") if not tok.get("special") else None
        text = text if isinstance(text, str) and text else None
        tpath: list[str | int] | None = ["token", "text"] if text else None
        if obj.get("generated_text") is not None:
            details = obj.get("details")
            fr = details.get("finish_reason") if isinstance(details, dict) else None
            return _KIND_TERMINAL, text, _TGI_STOP.get(str(fr)), tpath
        return (_KIND_TOKEN, text, None, tpath) if text else (_KIND_META, None, None, None)
    # Triton generate extension
    if "text_output" in obj:
        text = obj.get("text_output")
        text = text if isinstance(text, str) and text else None
        fr = obj.get("finish_reason")
        if isinstance(fr, list):
            fr = fr[0] if fr else None
        if fr in ("length", "stop"):
            return _KIND_TERMINAL, text, _finish(fr), ["text_output"] if text else None
        return (
            (_KIND_TOKEN, text, None, ["text_output"]) if text else (_KIND_META, None, None, None)
        )
    return _KIND_META, None, None, None


def observe_body(body: bytes) -> tuple[str | None, str | None]:
    """(text, stop reason) of a complete non-streamed generation body (best effort)."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(obj, dict):
        return None, None
    if isinstance(obj.get("content"), str):
        return obj["content"], _LLAMA_STOP.get(str(obj.get("stop_type")))
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        ch = choices[0]
        text = ch.get("text")
        if not isinstance(text, str):
            msg = ch.get("message")
            text = msg.get("content") if isinstance(msg, dict) else None
        return (text if isinstance(text, str) else None), _finish(
            ch.get("finish_reason"), ch.get("stop_reason", _MISSING)
        )
    if isinstance(obj.get("generated_text"), str):
        details = obj.get("details")
        fr = details.get("finish_reason") if isinstance(details, dict) else None
        return obj["generated_text"], _TGI_STOP.get(str(fr))
    if isinstance(obj.get("text_output"), str):
        return obj["text_output"], None
    return None, None


# ---------------------------------------------------------------------------------------------
# The engine side: a small HTTP/1.1 client on raw streams
# ---------------------------------------------------------------------------------------------


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


class UpstreamResponse:
    """Status, headers and a body iterator of one engine response (the connection is owned)."""

    def __init__(
        self,
        upstream: Upstream,
        conn: _Conn,
        status: int,
        headers: list[tuple[bytes, bytes]],
        method: str,
    ) -> None:
        self._up = upstream
        self._conn: _Conn | None = conn
        self.status = status
        self.headers = headers
        self._method = method
        self._done = False
        self._reusable = True
        for k, v in headers:
            if k == b"connection" and b"close" in v.lower():
                self._reusable = False

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    async def body(self) -> AsyncGenerator[bytes, None]:
        """The body's bytes as they arrive (de-chunked); bounded pieces."""
        if self._conn is None:
            raise UpstreamError("response already released")
        reader = self._conn.reader
        if self._method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._done = True
            return
        te = (self.header(b"transfer-encoding") or b"").lower()
        cl = self.header(b"content-length")
        if b"chunked" in te:
            while True:
                line = await reader.readuntil(b"\n")
                if len(line) > MAX_CHUNK_LINE:
                    raise UpstreamError("chunk-size line too long")
                size_txt = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_txt, 16)
                except ValueError:
                    raise UpstreamError(f"bad chunk size {size_txt[:20]!r}") from None
                if size < 0:
                    raise UpstreamError("negative chunk size")
                if size == 0:
                    # trailers, then the blank line
                    total = 0
                    while True:
                        t = await reader.readuntil(b"\n")
                        total += len(t)
                        if total > MAX_HEAD_BYTES:
                            raise UpstreamError("trailers too long")
                        if t in (b"\r\n", b"\n"):
                            break
                    break
                while size > 0:
                    piece = await reader.read(min(size, READ_SIZE))
                    if not piece:
                        raise UpstreamError("engine closed the connection inside a chunk")
                    size -= len(piece)
                    yield piece
                crlf = await reader.readuntil(b"\n")
                if crlf.strip():
                    raise UpstreamError("chunk not followed by CRLF")
        elif cl is not None:
            try:
                left = int(cl)
            except ValueError:
                raise UpstreamError("bad Content-Length") from None
            while left > 0:
                piece = await reader.read(min(left, READ_SIZE))
                if not piece:
                    raise UpstreamError("engine closed the connection before Content-Length")
                left -= len(piece)
                yield piece
        else:
            self._reusable = False
            while True:
                piece = await reader.read(READ_SIZE)
                if not piece:
                    break
                yield piece
        self._done = True

    def release(self) -> None:
        """Give the connection back (reused when the body was read to its end) or close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._reusable:
            self._up.put_idle(conn)
        else:
            conn.close()


class Upstream:
    """The one engine the proxy may contact: scheme, host, port and base path fixed here."""

    def __init__(self, engine_url: str) -> None:
        u = urllib.parse.urlsplit(engine_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ConfigError(
                f"engine URL must be http(s)://host[:port][/path], got {engine_url!r}"
            )
        if u.username or u.password:
            raise ConfigError("engine URL must not carry credentials")
        if u.query or u.fragment:
            raise ConfigError("engine URL must not carry a query or fragment")
        self.url = engine_url.rstrip("/")
        self.scheme = u.scheme
        self.host = u.hostname
        try:
            port = u.port
        except ValueError:
            raise ConfigError(f"engine URL has a bad port: {engine_url!r}") from None
        self.port = port or (443 if u.scheme == "https" else 80)
        self.base_path = u.path.rstrip("/")
        default = (u.scheme == "http" and self.port == 80) or (
            u.scheme == "https" and self.port == 443
        )
        hostpart = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (hostpart if default else f"{hostpart}:{self.port}").encode("idna")
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if u.scheme == "https" else None
        )
        self._idle: list[_Conn] = []
        self._open: set[_Conn] = set()  # every connection opened and not yet seen closed
        self.connections_opened = 0

    def put_idle(self, conn: _Conn) -> None:
        if len(self._idle) >= MAX_IDLE_CONNECTIONS or conn.reader.at_eof():
            conn.close()
            return
        self._idle.append(conn)

    def close_idle(self) -> None:
        """Close every connection to the engine, idle or still owned by a response.

        Called on the proxy's own loop as it shuts down: a stream whose handler was cancelled
        mid-way (a client that left, a stall cut short by the harness) may still hold its
        connection, and a transport left to the garbage collector after the loop closed is a
        ResourceWarning in whoever runs the proxy (pytest's unraisable-exception check)."""
        while self._idle:
            self._idle.pop().close()
        while self._open:
            self._open.pop().close()

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                    limit=MAX_HEAD_BYTES,
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to the engine at {self.url}: {exc!r}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket

            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections_opened += 1
        conn = _Conn(reader, writer)
        # remember it until shutdown (close_idle); closed ones are dropped here so the set
        # stays as small as the connections actually open
        self._open = {c for c in self._open if not c.writer.transport.is_closing()}
        self._open.add(conn)
        return conn

    def _request_bytes(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> bytes:
        lines = [f"{method} {self.base_path}{target} HTTP/1.1".encode("latin-1")]
        lines.append(b"host: " + self.host_header)
        for k, v in headers:
            if k.lower() in _HOP_BY_HOP:
                continue
            if "\r" in k or "\n" in k or "\r" in v or "\n" in v:
                continue
            lines.append(f"{k}: {v}".encode("latin-1", "replace"))
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"content-length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        """Send one request; returns once the response head arrived (the body is streamed)."""
        if not target.startswith("/") or any(c in target for c in "\r\n "):
            raise UpstreamError(f"refusing request target {target[:60]!r}")
        data = self._request_bytes(method, target, headers, body)
        for attempt in range(2):
            pooled = bool(self._idle) and attempt == 0
            conn = self._idle.pop() if pooled else await self._connect()
            try:
                conn.writer.write(data)
                await conn.writer.drain()
                async with asyncio.timeout(HEAD_TIMEOUT_S):
                    head = await conn.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                conn.close()
                if pooled and not exc.partial:
                    continue  # a stale idle connection: the engine closed it; try a fresh one
                raise UpstreamError("the engine closed the connection without a response") from None
            except asyncio.LimitOverrunError:
                conn.close()
                raise UpstreamError("response head too large") from None
            except (OSError, TimeoutError) as exc:
                conn.close()
                if pooled:
                    continue
                raise UpstreamError(f"engine request failed: {exc!r}") from None
            except BaseException:
                conn.close()
                raise
            return self._parse_head(conn, head, method)
        raise UpstreamError("the engine closed the connection without a response")

    def _parse_head(self, conn: _Conn, head: bytes, method: str) -> UpstreamResponse:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            conn.close()
            raise UpstreamError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            conn.close()
            raise UpstreamError(f"bad status line {lines[0][:60]!r}") from None
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            if not line:
                continue
            k, sep, v = line.partition(b":")
            if not sep:
                continue
            headers.append((k.strip().lower(), v.strip()))
        return UpstreamResponse(self, conn, status, headers, method)

    async def get_json(self, path: str) -> Any:
        """A small GET for probes (version, model); ``None`` when anything goes wrong.
        ``"POST /path"`` posts ``{"ready": true}`` instead (Triton's repository index)."""
        method, body = "GET", b""
        hs = [("accept", "application/json")]
        if path.startswith("POST "):
            method, path, body = "POST", path[5:], b'{"ready":true}'
            hs.append(("content-type", "application/json"))
        try:
            resp = await self.request(method, path, hs, body)
        except UpstreamError:
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            async for piece in resp.body():
                size += len(piece)
                if size > 1 << 20:
                    return None
                chunks.append(piece)
        except (UpstreamError, asyncio.IncompleteReadError, OSError):
            return None
        finally:
            resp.release()
        if resp.status != 200:
            return None
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError):
            return None


# ---------------------------------------------------------------------------------------------
# Context and app
# ---------------------------------------------------------------------------------------------


class ProxyContext(EngineContext):
    """The mock engine's state machine (faults, selection counters, loading, closed port,
    journal), with an :class:`Upstream` instead of plans."""

    def __init__(
        self,
        dialect: str,
        engine_url: str,
        *,
        seed: int = 0,
        faults: Iterable[str | FaultRule] = (),
        control: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(
            get_dialect(dialect),
            seed=seed,
            profile="fast",
            faults=faults,
            control=control,
            max_body_bytes=max_body_bytes,
            journal=journal,
        )
        self.upstream = Upstream(engine_url)
        self.engine_version: str | None = None
        self.served_model: str | None = None
        #: the engine's own context window (probed); ``ctx_size`` (the dialect parser's) follows it
        self.engine_ctx_size: int | None = None

    def config_dict(self) -> dict[str, Any]:
        d = super().config_dict()
        d.update(
            proxy=True,
            engine_url=self.upstream.url,
            engine_version=self.engine_version,
            model=self.served_model,
            engine_ctx_size=self.engine_ctx_size,
        )
        d.pop("profile", None)
        return d

    async def probe(self) -> None:
        """Learn the engine's version and served model from its own endpoints (best effort)."""
        for what, (path, keys) in ENGINE_PROBES.get(self.dialect.name, {}).items():
            if "{model}" in path:
                if not self.served_model:
                    continue
                path = path.replace("{model}", urllib.parse.quote(self.served_model, safe=""))
            obj = await self.upstream.get_json(path)
            for k in keys:
                if isinstance(k, int) and isinstance(obj, list) and len(obj) > k:
                    obj = obj[k]
                elif isinstance(k, str) and isinstance(obj, dict):
                    obj = obj.get(k)
                else:
                    obj = None
                    break
            if isinstance(obj, str | int | float) and not isinstance(obj, bool) and str(obj):
                if what == "version":
                    self.engine_version = str(obj)
                elif what == "model":
                    # the dialect parser (forwarded-request view) must accept the served name
                    self.served_model = self.model = str(obj)
                elif str(obj).isdigit() and int(obj) > 0:
                    self.engine_ctx_size = int(obj)
                    self.ctx_size = max(16, min(int(obj), MAX_CONTEXT))


class ProxyApp(MockEngineApp):
    """The mock engine's ASGI app with dispatch replaced by forwarding to the engine."""

    _who = "proxy"
    ctx: ProxyContext

    def __init__(self, ctx: ProxyContext) -> None:
        super().__init__(ctx)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await super().__call__(scope, receive, send)
            return
        # served by a plain uvicorn (lifespan on): close the idle engine connections on the
        # server's own loop before it ends
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.ctx.upstream.close_idle()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(
        self,
        req: MockRequest,
        entry: JournalEntry,
        receive: Receive,
        send: Send,
        transport: Any,
    ) -> None:
        handled, rule, _route, _other = await self._select_rule(req, entry, send)
        if handled:
            return
        if rule is not None and await rule.fault.answer(
            rule, Responder(self, req, entry, receive, send, transport)
        ):
            return
        state = _WatchState()
        task = asyncio.current_task()
        watcher = asyncio.create_task(self._watch(receive, entry, state, task))
        try:
            await self._forward(req, entry, rule, receive, send, transport, state)
        except asyncio.CancelledError:
            if await self._quiet_cancel(state, entry, transport):
                return
            raise
        finally:
            state.done = True
            if not watcher.done():
                watcher.cancel()

    async def _forward(
        self,
        req: MockRequest,
        entry: JournalEntry,
        rule: FaultRule | None,
        receive: Receive,
        send: Send,
        transport: Any,
        state: _WatchState,
    ) -> None:
        up = self.ctx.upstream
        target = urllib.parse.quote(req.path, safe="/:@!$&'()*+,;=-._~%")
        if entry.query:
            target += "?" + entry.query
        headers = [(k, v) for k, v in req.headers.items() if k != "accept-encoding"]
        try:
            resp = await up.request(req.method, target, headers, req.body)
        except UpstreamError as exc:
            # The adapter sees what an unreachable engine looks like through a proxy: the
            # connection closes without a response.
            entry.fault_note = f"engine unreachable: {exc}"
            entry.aborted = True
            state.aborting = True
            await self.abort_connection(transport, receive)
            return
        observed = (
            ObservedGeneration(
                upstream_status=resp.status,
                t_engine_head=time.monotonic(),
                parse=functools.partial(_parse_request, self.ctx, req),
            )
            if entry.generation
            else None
        )
        if observed is not None:
            entry.plan = observed
        try:
            await _Relay(
                self, req, entry, rule, resp, observed, send, receive, transport, state
            ).run()
        finally:
            resp.release()

    def ok_headers(
        self, resp: UpstreamResponse, rule: FaultRule | None, keep_length: bool
    ) -> list[tuple[bytes, bytes]]:
        hs = [(k, v) for k, v in resp.headers if k.decode("latin-1") not in _HOP_BY_HOP]
        if keep_length:
            cl = resp.header(b"content-length")
            if cl is not None:
                hs.append((b"content-length", cl))
        if rule is not None and 200 <= resp.status < 300:
            rule.fault.headers(rule, hs)
        return hs


def _find_event_end(buf: bytearray | bytes, start: int) -> int:
    """Index just past the first blank line at/after ``start`` (``-1`` when none yet).

    The CRLF search is bounded by the LF one (``\r\n\r\n`` never contains ``\n\n``), so a
    piece holding many events is scanned once, not once per event."""
    i = buf.find(b"\n\n", start)
    j = buf.find(b"\r\n\r\n", start, len(buf) if i == -1 else i)
    if j != -1:
        return j + 4
    return -1 if i == -1 else i + 2


class _EventSplitter:
    """Splits a byte stream into SSE events (each with its blank line) as they complete; an
    event over :data:`MAX_EVENT_BYTES` is handed on in pieces rather than buffered further."""

    __slots__ = ("buf", "scan")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.scan = 0

    def feed(self, piece: bytes) -> list[bytes]:
        buf = self.buf
        buf += piece
        out: list[bytes] = []
        start = 0
        scan = max(0, self.scan - 3)
        while True:
            end = _find_event_end(buf, scan)
            if end == -1:
                break
            out.append(bytes(buf[start:end]))
            start = scan = end
        if start:
            del buf[:start]
        self.scan = len(buf)
        if len(buf) > MAX_EVENT_BYTES:
            out.append(bytes(buf))
            buf.clear()
            self.scan = 0
        return out

    def flush(self) -> bytes:
        rest = bytes(self.buf)
        self.buf.clear()
        self.scan = 0
        return rest


class _Relay:
    """Streams one engine response to the adapter, applying the fault as bytes arrive."""

    def __init__(
        self,
        app: ProxyApp,
        req: MockRequest,
        entry: JournalEntry,
        rule: FaultRule | None,
        resp: UpstreamResponse,
        observed: ObservedGeneration | None,
        send: Send,
        receive: Receive,
        transport: Any,
        state: _WatchState,
    ) -> None:
        self.app = app
        self.req = req
        self.entry = entry
        self.rule = rule
        #: the fault's per-response state (None: no fault, the engine's bytes pass unchanged)
        self.live: Live | None = rule.fault.live(rule) if rule is not None else None
        self.resp = resp
        self.observed = observed
        self.send = send
        self.receive = receive
        self.transport = transport
        self.state = state
        self.ok = 200 <= resp.status < 300
        ct = (resp.header(b"content-type") or b"").lower()
        self.sse = ct.startswith(b"text/event-stream")
        self.events_sent = 0
        self.text_sent = 0  # events that carried token text
        self.tokens_seen = 0
        self.bytes_sent = 0
        self.started = False
        self.done_fault = False
        self.kept = 0
        self.truncated = False
        self.notes: list[str] = []

    # -- writing ----------------------------------------------------------------------------
    @property
    def keepalive(self) -> bytes:
        return self.app.dialect.keepalive or b":\n\n"

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        rule = self.rule
        keep_length = not (self.ok and rule is not None and rule.fault.stage is Stage.FRAMES)
        hs = self.app.ok_headers(self.resp, rule if self.ok else None, keep_length)
        delay = 0.0 if rule is None else rule.fault.header_delay_s(rule)
        if delay > 0.0:
            await asyncio.sleep(delay)
        self.entry.status = self.resp.status
        await self.send({"type": "http.response.start", "status": self.resp.status, "headers": hs})
        if self.ok and self.live is not None:
            await self.live.after_head(self)

    async def write(self, data: bytes, frame: bytes | None) -> bool:
        """Write ``data`` (bent by the fault); False once the fault cut the stream."""
        if self.done_fault:
            return False
        sent: bool | None = None
        if self.ok and self.live is not None:
            sent = await self.live.write(self, data)
            if sent is False:
                return False
        if sent is None:
            await self.raw(data)
        if frame is not None:
            self.keep(frame)
        self.app.journal.notify()
        return True

    def keep(self, frame: bytes) -> None:
        """Journal one frame as sent, up to :data:`MAX_JOURNAL_BYTES` per request (an engine
        that streams without end must not grow the journal without end)."""
        self.kept += len(frame)
        if self.kept <= MAX_JOURNAL_BYTES:
            self.entry.frames.append(frame)
        elif not self.truncated:
            self.truncated = True
            self.notes.append(f"journal frames truncated after {MAX_JOURNAL_BYTES} bytes")

    async def raw(self, data: bytes) -> None:
        if not data:
            return
        await self.send({"type": "http.response.body", "body": data, "more_body": True})
        self.bytes_sent += len(data)
        self.entry.n_writes += 1
        if self.entry.t_first_byte is None:
            self.entry.t_first_byte = time.monotonic()

    async def cut(self) -> None:
        """Close the connection mid-response (the fault's end)."""
        self._note()
        self.done_fault = True
        self.state.aborting = True
        self.entry.aborted = True
        self.entry.t_last_byte = time.monotonic()
        await self.app.abort_connection(self.transport, self.receive)

    # -- the stream -------------------------------------------------------------------------
    async def run(self) -> None:
        await self.start()
        if not self.ok:
            # Engine errors pass through untouched (a fault applies to successful answers).
            await self._pipe_raw()
        elif self.sse:
            await self._pipe_events()
        elif (
            self.live.whole_body(self.observed is not None)
            if self.live is not None
            else self.observed is not None
        ):
            await self._pipe_whole()
        else:
            await self._pipe_raw()
        if self.done_fault:
            return
        self._note()
        self.state.done = True
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        self.entry.t_last_byte = time.monotonic()
        if self.entry.t_first_byte is None:
            self.entry.t_first_byte = self.entry.t_last_byte
        self.entry.completed = True
        self.app.journal.notify()

    def _note(self) -> None:
        """Move the collected notes to the journal entry (once each)."""
        if self.notes:
            note = "; ".join(self.notes)
            self.notes.clear()
            self.entry.fault_note = (
                note if self.entry.fault_note is None else f"{self.entry.fault_note}; {note}"
            )

    async def _pipe_raw(self) -> None:
        try:
            async with contextlib.aclosing(self.resp.body()) as body:
                async for piece in body:
                    if not await self.write(piece, piece):
                        return
        except (UpstreamError, asyncio.IncompleteReadError, OSError) as exc:
            self.notes.append(f"engine stream broke: {exc!r}"[:200])
            self._note()
            await self.cut()

    async def _pipe_whole(self) -> None:
        """A non-streamed body, read whole (bounded) so a fault can rewrite it."""
        buf = bytearray()
        try:
            async with contextlib.aclosing(self.resp.body()) as pieces:
                async for piece in pieces:
                    buf += piece
                    if len(buf) > MAX_EVENT_BYTES:
                        self.notes.append("body too large to rewrite; passed through")
                        if not await self.write(bytes(buf), None):
                            return
                        buf.clear()
                        async for rest in pieces:
                            if not await self.write(rest, None):
                                return
                        return
        except (UpstreamError, asyncio.IncompleteReadError, OSError) as exc:
            self.notes.append(f"engine stream broke: {exc!r}"[:200])
            self._note()
            await self.cut()
            return
        body = bytes(buf)
        obs = self.observed
        if obs is not None:
            text, reason = observe_body(body)
            if text:
                obs.tokens.append(text)
            obs.engine_stop_reason = reason
            obs.complete = True
            obs.t_engine_done = time.monotonic()
        rule = self.rule
        if rule is not None:
            body, note = rule.fault.body(rule, body)
            if note:
                self.notes.append(NOT_APPLIED + note)
        if self.live is not None:
            await self.live.before_body(self)
        if not await self.write(body, body):
            return
        if self.live is not None:
            await self.live.after_body(self)

    async def _pipe_events(self) -> None:
        if self.rule is None:
            await self._pipe_passthrough()
            return
        try:
            async with contextlib.aclosing(self._events()) as events:
                async for event in events:
                    if not await self._event(event):
                        return
            if self.observed is not None:
                self.observed.complete = True
                self.observed.t_engine_done = time.monotonic()
        except (UpstreamError, asyncio.IncompleteReadError, OSError) as exc:
            self.notes.append(f"engine stream broke: {exc!r}"[:200])
            self._note()
            await self.cut()
            return
        await self._end_of_stream()

    async def _pipe_passthrough(self) -> None:
        """No fault: each piece goes on the moment it arrives, exactly as the engine wrote it
        (one write per piece, not per event); events are only split off for the journal."""
        split = _EventSplitter()
        keep = self.keep
        observe = self._observe if self.observed is not None else None
        notify = self.app.journal.notify
        try:
            async with contextlib.aclosing(self.resp.body()) as pieces:
                async for piece in pieces:
                    for event in split.feed(piece):
                        keep(event)
                        if observe is not None:
                            observe(event)
                    await self.raw(piece)
                    notify()
            rest = split.flush()
            if rest:
                keep(rest)
                if observe is not None:
                    observe(rest)
            if self.observed is not None:
                self.observed.complete = True
                self.observed.t_engine_done = time.monotonic()
        except (UpstreamError, asyncio.IncompleteReadError, OSError) as exc:
            self.notes.append(f"engine stream broke: {exc!r}"[:200])
            self._note()
            await self.cut()

    def _observe(self, event: bytes) -> tuple[int, str | None, str | None, list[str | int] | None]:
        """Classify one engine event and record its token text / stop reason."""
        kind, text, reason, path = classify_event(event)
        obs = self.observed
        if obs is not None:
            if text is not None:
                obs.tokens.append(text)
            if reason is not None:
                obs.engine_stop_reason = reason
        return kind, text, reason, path

    async def _events(self) -> AsyncGenerator[bytes, None]:
        """The engine's SSE events (each with its blank line) as they complete."""
        split = _EventSplitter()
        async with contextlib.aclosing(self.resp.body()) as pieces:
            async for piece in pieces:
                for event in split.feed(piece):
                    yield event
        rest = split.flush()
        if rest:
            yield rest

    async def _end_of_stream(self) -> None:
        """What the fault still owes when the engine's stream ended."""
        if self.live is not None:
            await self.live.end(self)

    async def _event(self, event: bytes) -> bool:
        """One SSE event from the engine, bent by the fault; False once the stream was cut."""
        kind, text, reason, path = self._observe(event)
        live = self.live
        if live is None:
            return await self.write(event, event)
        index = -1
        if kind == _KIND_TOKEN or (kind == _KIND_TERMINAL and text is not None and path):
            index = self.tokens_seen
            self.tokens_seen += 1
        out = await live.event(self, LiveEvent(event, FrameKind(kind), text, reason, path, index))
        if self.done_fault:
            return False
        if out is None:
            return True
        ok = await self.write(out, out)
        if ok and kind != _KIND_COMMENT:
            self.events_sent += 1
            if text:
                self.text_sent += 1
        return ok

    async def error_event(self, message: str) -> bool:
        """The dialect's in-stream error; the engine is left. True when this route has no
        in-stream error shape (nothing was sent)."""
        frames = _error_frames(self.app.ctx, self.req, message)
        if frames is None:
            return True
        for f in frames:
            if not await self.write(f, f):
                return False
        await self._finish_early()
        return False

    async def _finish_early(self) -> None:
        """End the adapter's response normally now, leaving the engine's (closed on release)."""
        self.done_fault = True
        self.resp._reusable = False
        self._note()
        self.state.done = True
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        self.entry.t_last_byte = time.monotonic()
        self.entry.completed = True
        self.app.journal.notify()


def _dialect_reply(
    ctx: EngineContext, req: MockRequest
) -> tuple[Reply | StreamReply | None, str | None]:
    """What the dialect's own handler makes of ``req`` (parse + render, no engine contacted),
    or why it could not."""
    route, params, _ = ctx.match(req.method, req.path)
    if route is None:
        return None, f"no {ctx.dialect.name} route {req.method} {req.path}"
    shadow = MockRequest(req.method, req.path, req.query, req.headers, req.body, dict(params))
    try:
        return route.handler(shadow, ctx), None
    except Rejected as rejected:
        return rejected.reply, None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]


def _error_frames(ctx: EngineContext, req: MockRequest, message: str) -> list[bytes] | None:
    """The dialect's in-stream error frames for this route (rendered by the mock's handler)."""
    result, _ = _dialect_reply(ctx, req)
    if isinstance(result, StreamReply) and result.error_frames is not None:
        return result.error_frames(message)
    return None


def _parse_request(ctx: EngineContext, req: MockRequest) -> tuple[Any, str | None]:
    """The dialect parser's view of a forwarded generation request (its plan), or the reason."""
    result, error = _dialect_reply(ctx, req)
    if result is not None and result.plan is None:
        return None, "the dialect parser made no plan of the request"
    return (None, error) if result is None else (result.plan, None)


# ---------------------------------------------------------------------------------------------
# The handle
# ---------------------------------------------------------------------------------------------


class FaultProxy(EngineHandle):
    """A running fault proxy in front of one engine: the same handle shape as a mock engine
    (``base_url``, ``journal``, ``set_faults``, ``reset``, ``dialect``, ``engine_version``,
    ``model``, ``check_applies``), plus ``engine_url``."""

    #: Steps read this to know the plan comes from the engine's own output.
    observed = True

    def __init__(
        self,
        dialect: str,
        engine_url: str,
        *,
        seed: int = 0,
        faults: Iterable[str | FaultRule] = (),
        control: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        probe: bool = True,
    ) -> None:
        self.ctx: ProxyContext = ProxyContext(
            dialect,
            engine_url,
            seed=seed,
            faults=faults,
            control=control,
            max_body_bytes=max_body_bytes,
        )
        super().__init__(ProxyApp(self.ctx), host, port)
        self._probe = probe

    # -- facts ----------------------------------------------------------------------------------
    @property
    def engine_url(self) -> str:
        return self.ctx.upstream.url

    @property
    def engine_version(self) -> str | None:
        """The engine's own version (from its endpoints), ``None`` when it does not say."""
        return self.ctx.engine_version

    @property
    def model(self) -> str | None:
        """The engine's served model name, ``None`` when unknown."""
        return self.ctx.served_model

    @property
    def ctx_size(self) -> int | None:
        """The engine's context window in tokens, ``None`` when it does not say."""
        return self.ctx.engine_ctx_size

    @property
    def upstream_connections(self) -> int:
        """Connections the proxy opened to the engine (idle ones are reused)."""
        return self.ctx.upstream.connections_opened

    # -- control --------------------------------------------------------------------------------
    def check_applies(self, rule: FaultRule) -> None:
        self.ctx.check_applies(rule)

    def _started(self) -> None:
        if self._probe:
            loop = self._server._loop
            if loop is not None:
                fut = asyncio.run_coroutine_threadsafe(self.ctx.probe(), loop)
                with contextlib.suppress(Exception):
                    fut.result(timeout=15.0)

    def _stopping(self) -> None:
        loop = self._server._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.ctx.upstream.close_idle)


def run_fault_proxy(
    dialect: str,
    engine_url: str,
    *,
    seed: int = 0,
    faults: Iterable[str | FaultRule] = (),
    control: bool = True,
    host: str = "127.0.0.1",
    port: int = 0,
    probe: bool = True,
) -> FaultProxy:
    """A fault proxy for ``engine_url``: ``with run_fault_proxy("llamacpp", url) as px:``.

    ``ConfigError`` for an unknown dialect or a URL that is not ``http(s)://host[:port][/path]``.
    """
    if not isinstance(dialect, str):
        raise ConfigError("dialect must be a name such as 'llamacpp'")
    return FaultProxy(
        dialect,
        engine_url,
        seed=seed,
        faults=faults,
        control=control,
        host=host,
        port=port,
        probe=probe,
    )
