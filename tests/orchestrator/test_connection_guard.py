"""Idle connections against the ``orchestrator`` CLI's server: real process, raw sockets.

uvicorn alone times a connection out only between requests: one that connects and sends nothing
(or half a request head) stayed open for ever, and with ``--limit-concurrency`` enough of them
would turn every new client away with 503. Each wait polls with a generous deadline; nothing
asserts how fast the server is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from llorch_conformance.adapters.api import TokenEvent

from ..host.fakes import FakeAdapter, Script
from ._env import FacadeServer, task

EXE = [
    sys.executable,
    "-c",
    "import sys; from llorch_conformance.conformance.cli import main; sys.exit(main())",
]
DEADLINE_S = 30.0  # generous: a loaded 2-core CI machine


@contextmanager
def orchestrator(*flags: str) -> Iterator[tuple[str, int]]:
    """The CLI on a free port (``--port 0``; the start-up line names it): (base URL, port)."""
    env = {k: v for k, v in os.environ.items() if k != "LLORCH_API_TOKEN"}
    proc = subprocess.Popen(
        [*EXE, "orchestrator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, f"no start-up line: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        base, port = m.group(0), int(m.group(1))
        wait_served(base)
        yield base, port
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def status(base: str) -> int | None:
    """Status of GET /health on a fresh connection; None if the connection failed."""
    try:
        return httpx.get(base + "/health", timeout=DEADLINE_S).status_code
    except httpx.TransportError:
        return None


def wait_served(base: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while status(base) != 200:
        assert time.monotonic() < deadline, "no 200 from /health"
        time.sleep(0.05)


def closed_by_server(s: socket.socket) -> bool:
    """Block (bounded) until the server closes ``s``; True if it did (EOF or reset)."""
    s.settimeout(DEADLINE_S)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_do_not_keep_new_clients_out() -> None:
    """Twice the connection limit in sockets that never send a request (and some that send half
    a head): the server closes each within its keep-alive timeout, and a new client is served."""
    with (
        orchestrator("--limit-concurrency", "4", "--timeout-keep-alive", "1") as (base, port),
        ExitStack() as stack,
    ):
        idle = [
            stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            for _ in range(8)
        ]
        for s in idle[:3]:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        wait_served(base)
        assert all(closed_by_server(s) for s in idle)


def test_beyond_the_limit_is_503_and_served_again_once_they_go() -> None:
    """With the limit's worth of connections held open, a new request is answered 503 (not
    queued, not hung); once they close, new clients are served."""
    with orchestrator("--limit-concurrency", "3", "--timeout-keep-alive", "60") as (base, port):
        with ExitStack() as stack:
            for _ in range(3):
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            assert status(base) == 503
        wait_served(base)


def test_a_client_that_stops_reading_is_cut_off_and_its_task_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream client that never reads (tiny receive buffer, 12 MB of events queued) used to hold
    its connection open for ever, its task running until its deadline (here ten minutes): past
    ``write_timeout_ms`` on one write the facade ends the stream as on a disconnect."""
    caplog.set_level(logging.INFO, logger="llorch.narration")
    big: Script = [
        TokenEvent.started(engine_version="fake-1"),
        *[TokenEvent.token("x" * 4000, i) for i in range(3000)],
        TokenEvent.end(tokens_out=3000, decode_time_ms=1, stop_reason="length"),
    ]
    with (
        FacadeServer(FakeAdapter(default=big), write_timeout_ms=500) as e,
        socket.socket() as s,
    ):
        assert e.client.post("/v1/tasks", json=task("a", deadline_ms=600_000)).status_code == 202
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", e.server.port))
        s.sendall(b"GET /v1/tasks/a/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + DEADLINE_S
        while not any("client went away" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the stalled stream's task was not cancelled"
            time.sleep(0.05)
        got = 0
        s.settimeout(DEADLINE_S)  # the old code never closed: recv timed out here
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(1 << 20):  # what was buffered, then the server's close
                got += len(chunk)
        assert got < 3000 * 4000  # cut off, not the whole stream
