"""Idle connections against the ``orchestrator`` CLI's server: real process, raw sockets.

uvicorn alone times a connection out only between requests: one that connects and sends nothing
(or half a request head) stayed open for ever, and with ``--limit-concurrency`` enough of them
would turn every new client away with 503. Each wait polls with a generous deadline; nothing
asserts how fast the server is.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx

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
