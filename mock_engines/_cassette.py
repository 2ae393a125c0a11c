"""Cassettes: record exchanges with a live engine once, replay them byte- and timing-faithfully.

A vendor records a real engine (``llorch-conformance record --engine-url URL --dialect D --out
C``) and gates CI on the replay (``llorch-conformance replay-cassette --cassette C``, or
:func:`run_replay_engine` in a test). The replay is a mock engine like the others — same core,
same journal, same fault catalogue — whose dialect answers from the cassette.

Format (JSON, one file, ``"llorch_cassette": 1``)::

    {"llorch_cassette": 1, "dialect": "llamacpp", "engine_url": "http://127.0.0.1:PORT",
     "engine_version": "b11434-…", "recorded_at": "2026-…Z", "notes": {...},
     "exchanges": [
       {"label": "completion.stream", "method": "POST", "path": "/completion", "query": "",
        "request_headers": {"content-type": "application/json"},
        "request_body": {"text": "{\\"prompt\\":…}"},
        "status": 200, "response_headers": [["content-type", "text/event-stream"], …],
        "t_headers": 0.0123, "chunks": [[0.0131, {"text": "data: {…}\\n\\n"}], …],
        "complete": true, "disconnected": false, "error": null}]}

Choices:

* **Raw chunks with their times**, seconds after the request was sent, exactly as the socket
  delivered them (``httpx`` ``aiter_raw``: transfer-encoding removed, nothing else). Bytes are
  stored as ``{"text": …}`` when they are valid UTF-8, else ``{"b64": …}`` — a chunk that splits
  a multi-byte character stays split.
* **Secrets never reach a cassette**: request headers go through ``redact_headers`` (the
  project's ``****<fp6>`` style) and the engine URL through ``redact_url``.
* **Matching** on replay: first an exact match on method, path, query and the canonical JSON of
  the body (key order ignored); then a fallback on method, path and the body's ``stream`` flag,
  so an adapter's own requests (other prompts, other seeds) still get a recorded answer of the
  right shape: only complete exchanges qualify, those whose token limit (``n_predict``/
  ``max_tokens``/...) is within the request's are preferred (a replay never claims more tokens
  than asked), then those whose request had the same top-level keys, then 2xx answers, and
  the choice among them is a hash of the
  request, so the same request always gets the same answer. Repeated exact matches walk the
  recorded list in order and then repeat the last one.
  The header ``x-llorch-replay: exact|fallback`` tells which; no match at all gets the dialect's
  own 404 envelope with ``x-llorch-replay: miss``.
* **Timing**: each chunk is due at its recorded offset divided by ``speed`` (``speed=0`` sends
  everything at once). Headers go out when the request arrives; the first chunk keeps its
  recorded delay (the core writes status and headers before the first frame).
* Faults still apply: the replay's frames go through the same fault interpreter, so a recorded
  real stream can be cut, split or corrupted on demand.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.adapters.http_util import redact_headers, redact_url

from ._dialects import get_dialect
from ._plan import GenerationPlan
from ._wire import (
    Dialect,
    EngineView,
    Frame,
    FrameKind,
    Headers,
    MockRequest,
    Reply,
    Route,
    StreamReply,
)

if TYPE_CHECKING:
    from ._runner import MockEngine

__all__ = [
    "CASSETTE_VERSION",
    "Cassette",
    "Chunk",
    "Exchange",
    "ReplayDialect",
    "record_exchange",
    "run_replay_engine",
]

CASSETTE_VERSION = 1
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "upgrade"}
)


def _enc(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def _dec(obj: Any) -> bytes:
    if isinstance(obj, dict):
        if "text" in obj:
            return str(obj["text"]).encode("utf-8")
        if "b64" in obj:
            return base64.b64decode(str(obj["b64"]))
    raise ConfigError(f"cassette: bad byte field {obj!r}")


@dataclass(slots=True)
class Chunk:
    """One piece of the response body as the socket delivered it, ``t`` seconds after sending."""

    t: float
    data: bytes


@dataclass(slots=True)
class Exchange:
    """One request and the engine's raw answer."""

    method: str
    path: str
    query: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: bytes = b""
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    t_headers: float = 0.0
    chunks: list[Chunk] = field(default_factory=list)
    complete: bool = False
    disconnected: bool = False
    error: str | None = None
    label: str = ""

    @property
    def body(self) -> bytes:
        return b"".join(c.data for c in self.chunks)

    def _with_body(self, body: bytes, t: float = 0.0) -> Exchange:
        """Set the whole body as one chunk (for exchanges built from other observations)."""
        self.chunks = [Chunk(t, body)] if body else []
        return self

    def header(self, name: str) -> str | None:
        n = name.lower()
        for k, v in self.response_headers:
            if k.lower() == n:
                return v
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "request_headers": dict(self.request_headers),
            "request_body": _enc(self.request_body),
            "status": self.status,
            "response_headers": [[k, v] for k, v in self.response_headers],
            "t_headers": round(self.t_headers, 6),
            "chunks": [[round(c.t, 6), _enc(c.data)] for c in self.chunks],
            "complete": self.complete,
            "disconnected": self.disconnected,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Exchange:
        try:
            return cls(
                label=str(d.get("label", "")),
                method=str(d["method"]).upper(),
                path=str(d["path"]),
                query=str(d.get("query", "")),
                request_headers={str(k): str(v) for k, v in d.get("request_headers", {}).items()},
                request_body=_dec(d.get("request_body", {"text": ""})),
                status=int(d["status"]),
                response_headers=[(str(k), str(v)) for k, v in d.get("response_headers", [])],
                t_headers=float(d.get("t_headers", 0.0)),
                chunks=[Chunk(float(t), _dec(b)) for t, b in d.get("chunks", [])],
                complete=bool(d.get("complete", False)),
                disconnected=bool(d.get("disconnected", False)),
                error=d.get("error"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"cassette: bad exchange ({exc})") from None


@dataclass(slots=True)
class Cassette:
    """A recording: the dialect it speaks, where it came from and the exchanges in order."""

    dialect: str
    exchanges: list[Exchange] = field(default_factory=list)
    engine_url: str = ""
    engine_version: str = ""
    recorded_at: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "llorch_cassette": CASSETTE_VERSION,
            "dialect": self.dialect,
            "engine_url": redact_url(self.engine_url) if self.engine_url else "",
            "engine_version": self.engine_version,
            "recorded_at": self.recorded_at
            or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "notes": self.notes,
            "exchanges": [e.to_dict() for e in self.exchanges],
        }

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", "utf-8")
        tmp.replace(p)
        return p

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cassette:
        if d.get("llorch_cassette") != CASSETTE_VERSION:
            raise ConfigError(
                f"not a llorch cassette of version {CASSETTE_VERSION} "
                f"(llorch_cassette={d.get('llorch_cassette')!r})"
            )
        dialect = d.get("dialect")
        if not isinstance(dialect, str) or not dialect:
            raise ConfigError("cassette: missing 'dialect'")
        ex = d.get("exchanges")
        if not isinstance(ex, list):
            raise ConfigError("cassette: 'exchanges' must be a list")
        return cls(
            dialect=dialect,
            exchanges=[Exchange.from_dict(e) for e in ex],
            engine_url=str(d.get("engine_url", "")),
            engine_version=str(d.get("engine_version", "")),
            recorded_at=str(d.get("recorded_at", "")),
            notes=dict(d.get("notes") or {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> Cassette:
        p = Path(path)
        try:
            text = p.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read cassette {p}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"cassette {p} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"cassette {p} must be a JSON object")
        return cls.from_dict(data)


async def record_exchange(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    label: str = "",
    disconnect_after_chunks: int | None = None,
) -> Exchange:
    """Send one request through ``client`` (its ``base_url`` is the engine) and record the answer.

    ``disconnect_after_chunks=n`` closes the connection after ``n`` body chunks (cancel by
    disconnect); ``disconnected`` is then true and ``complete`` false. Transport errors are
    recorded in ``error`` rather than raised: a broken engine is data for the caller.
    """
    if json_body is not None:
        content = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
        hs = {"content-type": "application/json", **(headers or {})}
    else:
        hs = dict(headers or {})
    path_only, _, query = path.partition("?")
    ex = Exchange(
        method=method.upper(),
        path=path_only,
        query=query,
        request_headers=redact_headers(hs),
        request_body=content or b"",
        label=label,
    )
    t0 = time.monotonic()
    try:
        async with client.stream(method.upper(), path, content=content, headers=hs) as resp:
            ex.t_headers = time.monotonic() - t0
            ex.status = resp.status_code
            ex.response_headers = [
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in resp.headers.raw
            ]
            n = 0
            async for data in resp.aiter_raw():
                ex.chunks.append(Chunk(time.monotonic() - t0, data))
                n += 1
                if disconnect_after_chunks is not None and n >= disconnect_after_chunks:
                    ex.disconnected = True
                    break
            if not ex.disconnected:
                ex.complete = True
    except httpx.HTTPError as exc:
        ex.error = f"{type(exc).__name__}: {exc}"
    return ex


# ---------------------------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------------------------


def _canonical(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except (ValueError, UnicodeDecodeError):
        return body.decode("latin-1")


def _keys(body: bytes) -> frozenset[str] | None:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return frozenset(obj) if isinstance(obj, dict) else None


_TOKEN_LIMIT_KEYS = ("n_predict", "max_tokens", "max_new_tokens", "max_completion_tokens")


def _token_limit(body: bytes) -> int | None:
    """The request's output-token limit, wherever the dialect puts it (top level, TGI's
    ``parameters``, Triton's ``sampling_parameters`` JSON string); None when absent."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    places: list[Any] = [obj, obj.get("parameters")]
    sp = obj.get("sampling_parameters")
    if isinstance(sp, str):
        with contextlib.suppress(ValueError):
            places.append(json.loads(sp))
    for place in places:
        if isinstance(place, dict):
            for key in _TOKEN_LIMIT_KEYS:
                v = place.get(key)
                if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                    return v
    return None


def _stream_flag(body: bytes) -> bool:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and obj.get("stream") is True


def _plan(n: int, seed: int) -> GenerationPlan:
    """A stand-in plan of ``n`` steps: it makes the core treat the replay as a generation
    (a slot, disconnect watching, one due time per step) without inventing any text."""
    return GenerationPlan(
        prompt="",
        seed=seed,
        max_tokens=None,
        tokens=("",) * n,
        token_ids=(0,) * n,
        stop_reason="eos",
        stop_string=None,
        prompt_tokens=0,
        completion_tokens=n,
    )


class _Cursor:
    """Walk a list of exchanges in order, then keep answering with the last one."""

    __slots__ = ("i", "items")

    def __init__(self) -> None:
        self.items: list[Exchange] = []
        self.i = 0

    def next(self) -> Exchange:
        ex = self.items[min(self.i, len(self.items) - 1)]
        self.i += 1
        return ex


class ReplayDialect(Dialect):
    """A dialect that answers from a cassette and borrows every envelope from the recorded one.

    Error envelopes, loading answers, keep-alive comments and base headers come from the
    recorded dialect (``base``), so faults injected into a replay look like that engine's.
    """

    name = "replay"

    def __init__(self, cassette: Cassette, *, speed: float = 1.0) -> None:
        if speed < 0:
            raise ConfigError("replay speed must be >= 0 (0 = no delays)")
        self.cassette = cassette
        self.speed = speed
        self.base: Dialect = get_dialect(cassette.dialect)
        self.engine_version = cassette.engine_version or self.base.engine_version
        self.default_model = self.base.default_model
        self.loading_mode = self.base.loading_mode
        self.keepalive = self.base.keepalive
        self.json_content_type = self.base.json_content_type
        self.unsupported_faults = self.base.unsupported_faults
        self._exact: dict[tuple[str, str, str, str], _Cursor] = {}
        self._loose: dict[tuple[str, str, bool], list[Exchange]] = {}
        for ex in cassette.exchanges:
            if ex.error is not None or ex.status == 0:
                continue  # nothing to replay: the engine never answered
            k = (ex.method, ex.path, ex.query, _canonical(ex.request_body))
            self._exact.setdefault(k, _Cursor()).items.append(ex)
            if ex.complete and not ex.disconnected:
                lk = (ex.method, ex.path, _stream_flag(ex.request_body))
                self._loose.setdefault(lk, []).append(ex)

    def routes(self) -> Sequence[Route]:
        seen: set[tuple[str, str]] = set()
        out: list[Route] = []
        for method, path, _q, _b in self._exact:
            if (method, path) not in seen:
                seen.add((method, path))
                out.append(Route(method, path, self._answer, generation=True, public=True))
        return out

    def pick(self, req: MockRequest) -> tuple[Exchange | None, str]:
        q = "&".join(f"{k}={v}" for k, v in req.query.items())
        cur = self._exact.get((req.method, req.path, q, _canonical(req.body)))
        if cur is not None:
            return cur.next(), "exact"
        canon = _canonical(req.body)
        flag = _stream_flag(req.body)
        cands = self._loose.get((req.method, req.path, flag)) or self._loose.get(
            (req.method, req.path, not flag)
        )
        if cands:
            # Closest recorded shape first: the same top-level keys (an adapter's own request
            # recorded beside a probe set), then success answers (a recorded 400 of an error
            # probe must not answer an ordinary request).
            # A recorded answer never claims more tokens than this request allows (first: a
            # too-long answer is wrong, a different request shape only unusual).
            want = _token_limit(req.body)
            if want is not None:
                cands = [
                    c for c in cands if (_token_limit(c.request_body) or want + 1) <= want
                ] or cands
            keys = _keys(req.body)
            cands = [c for c in cands if _keys(c.request_body) == keys] or cands
            cands = [c for c in cands if 200 <= c.status < 300] or cands
            # Deterministic: the same unrecorded request always gets the same recorded answer
            # (a determinism check must not see the cassette's order), different ones spread.
            h = int.from_bytes(hashlib.sha256(f"{req.query}|{canon}".encode()).digest()[:4], "big")
            return cands[h % len(cands)], "fallback"
        return None, "miss"

    def _answer(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        ex, how = self.pick(req)
        if ex is None:
            reply = self.base.not_found_reply(req)
            reply.headers.append((b"x-llorch-replay", b"miss"))
            return reply
        headers: Headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in ex.response_headers
            if k.lower() not in _HOP_BY_HOP
        ]
        headers.append((b"x-llorch-replay", how.encode()))
        chunks = ex.chunks or [Chunk(ex.t_headers, b"")]
        speed = self.speed
        offsets = [(c.t / speed) if speed > 0 else 0.0 for c in chunks]
        chunked = (ex.header("transfer-encoding") or "").lower() == "chunked"
        if not chunked and ex.complete:
            # A Content-Length body: one write when the recorded body was complete.
            return Reply(ex.status, ex.body, headers, _plan(1, ctx.seed), offsets=[max(offsets)])
        n = len(chunks)
        for i in range(1, n):  # due times never go backwards
            offsets[i] = max(offsets[i], offsets[i - 1])
        frames = [
            Frame(
                c.data, i, FrameKind.TERMINAL if (i == n - 1 and ex.complete) else FrameKind.TOKEN
            )
            for i, c in enumerate(chunks)
        ]
        return StreamReply(ex.status, headers, frames, _plan(n, ctx.seed), offsets=offsets)

    # Envelopes: the recorded engine's own.
    def base_headers(self) -> Headers:
        return self.base.base_headers()

    def error_reply(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> Reply:
        return self.base.error_reply(status, message, etype=etype, param=param, code=code)

    def not_found_reply(self, req: MockRequest) -> Reply:
        return self.base.not_found_reply(req)

    def method_not_allowed_reply(self, req: MockRequest) -> Reply:
        return self.base.method_not_allowed_reply(req)

    def loading_reply(self, req: MockRequest) -> Reply:
        return self.base.loading_reply(req)

    def overload_reply(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        return self.base.overload_reply(req, ctx)

    def rate_limit_reply(self, req: MockRequest, seconds: int) -> Reply:
        return self.base.rate_limit_reply(req, seconds)

    def status_fault_reply(self, status: int, req: MockRequest) -> Reply:
        return self.base.status_fault_reply(status, req)


def run_replay_engine(
    cassette: Cassette | str | Path,
    *,
    speed: float = 1.0,
    faults: Iterable[str] = (),
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> MockEngine:
    """A mock engine replaying ``cassette`` (use as ``with run_replay_engine(c) as eng:``)."""
    from ._app import MockEngineApp
    from ._context import EngineContext
    from ._runner import MockEngine

    cas = cassette if isinstance(cassette, Cassette) else Cassette.load(cassette)
    dialect = ReplayDialect(cas, speed=speed)
    ctx = EngineContext(dialect, seed=seed, profile="fast", faults=faults)
    return MockEngine(MockEngineApp(ctx), host, port)
