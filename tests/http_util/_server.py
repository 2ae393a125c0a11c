"""A tiny raw-ASGI test server, run by uvicorn (HTTP/1.1) or hypercorn (HTTP/2 over TLS) in a
thread on a pre-bound port-0 socket, so the port is known before the server even starts.

Routes exist only to exercise adapters.http_util on real sockets; the real mock engines live in
``mock_engines``. Synchronisation is by gates (an ``asyncio.Event`` per name, released from the
test thread with ``call_soon_threadsafe``) and by a journal of what the server did, never by
sleeping.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class App:
    """Raw ASGI app with a journal and named gates."""

    def __init__(self) -> None:
        self.journal: list[str] = []
        self._journal_cv = threading.Condition()
        self._gates: dict[str, asyncio.Event] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- test-thread API --------------------------------------------------------------------
    def release(self, name: str) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: self._gate(name).set())

    def wait_journal(self, entry: str, timeout: float = 5.0) -> bool:
        with self._journal_cv:
            return self._journal_cv.wait_for(lambda: entry in self.journal, timeout)

    # -- server side ----------------------------------------------------------------------------
    def _gate(self, name: str) -> asyncio.Event:
        if name not in self._gates:
            self._gates[name] = asyncio.Event()
        return self._gates[name]

    def _log(self, entry: str) -> None:
        with self._journal_cv:
            self.journal.append(entry)
            self._journal_cv.notify_all()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        self._log(f"request {path}")
        if path.startswith("/sse/"):
            await self._sse(path[5:], scope, receive, send)
        elif path.startswith("/status/"):
            await self._status(int(path[8:]), send)
        elif path == "/echo":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            client = scope.get("client") or ("", 0)
            body = json.dumps(
                {
                    "http_version": scope["http_version"],
                    "headers": headers,
                    "client_port": client[1],
                }
            )
            await _json(send, 200, body.encode())
        else:
            await _json(send, 404, b'{"error":"not found"}')

    async def _status(self, code: int, send: Send) -> None:
        body = json.dumps(
            {"error": {"message": f"status {code} for api_key=sk-live-abcdefghijklmnop"}}
        )
        extra = [(b"retry-after", b"2")] if code in (429, 503) else []
        await _json(send, code, body.encode(), extra)

    async def _sse(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

        async def body(data: bytes, more: bool = True) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": more})

        if name == "gated":
            await body(b"data: one\n\n")
            self._log("sent one")
            await asyncio.wait_for(self._gate("second").wait(), 5.0)
            await body(b"data: two\n\n")
            self._log("sent two")
            await body(b"", more=False)
        elif name == "stall":
            await body(b"data: one\n\n")
            self._log("sent one")
            await _until_disconnect(receive)
            self._log("disconnected")
        elif name == "abort":
            await body(b"data: one\n\n")
            self._log("sent one")
            # An exception after the response started makes the server drop the connection
            # without the final chunk: the client sees a premature close.
            raise ConnectionAbortedError("test: abort mid-stream")
        elif name == "truncated":
            await body(b"data: one\n\ndata: tw")
            await body(b"", more=False)
        elif name == "split-utf8":
            raw = "data: a😀中\n\n".encode()
            for i in range(len(raw)):
                await body(raw[i : i + 1])
            await body(b"", more=False)
        elif name.startswith("count-"):
            n = int(name[6:])
            await body(b"".join(b"data: %d\n\n" % i for i in range(n)), more=False)
        else:
            await body(b"", more=False)


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await asyncio.wait_for(receive(), 10.0)
        if message["type"] == "http.disconnect":
            return


async def _json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class ServerThread:
    """Context manager: serve ``app`` on 127.0.0.1:<ephemeral> in a thread.

    ``kind="uvicorn"`` (HTTP/1.1, optional TLS) or ``"hypercorn"`` (TLS with ALPN h2 +
    http/1.1). ``certfile``/``keyfile`` turn TLS on.
    """

    def __init__(
        self,
        app: App,
        *,
        kind: str = "uvicorn",
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        self.app = app
        self.kind = kind
        self.certfile = certfile
        self.keyfile = keyfile
        self._sock = _bound_socket()
        self.port: int = self._sock.getsockname()[1]
        scheme = "https" if certfile else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        app.loop = self._loop
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"test-{kind}", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # pragma: no cover - surfaced in __exit__
            self._error = exc
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        if self.kind == "uvicorn":
            import uvicorn

            config = uvicorn.Config(
                self.app,
                lifespan="off",
                log_config=None,
                log_level="critical",
                ssl_certfile=self.certfile,
                ssl_keyfile=self.keyfile,
                timeout_graceful_shutdown=2,
            )
            server = uvicorn.Server(config)
            task = asyncio.ensure_future(server.serve(sockets=[self._sock]))
            await self._stop.wait()
            server.should_exit = True
            await task
        else:
            from hypercorn.asyncio import serve
            from hypercorn.config import Config

            hconfig = Config()
            hconfig.bind = [f"fd://{self._sock.detach()}"]
            hconfig.certfile = self.certfile
            hconfig.keyfile = self.keyfile
            hconfig.graceful_timeout = 2
            hconfig.accesslog = None
            hconfig.errorlog = None
            await serve(self.app, hconfig, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

    def __enter__(self) -> ServerThread:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        if self.kind == "uvicorn":
            self._sock.close()
        assert not self._thread.is_alive(), "test server did not stop within 10 s"
        if self._error is not None:
            raise self._error
