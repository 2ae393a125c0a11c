"""``serve``'s start-up: its descriptor table grown up front, and no thread of its own.

A process with more than one thread waits for an RCU grace period each time the kernel doubles
its descriptor table (``accept4 -> expand_files -> synchronize_rcu``): 8-14 ms with the event
loop stopped, twice during a fresh mock's first ramp to 500 streams (issue 18.2). So ``serve``
grows the table while it has one thread (:func:`reserve_descriptors`) and never starts a thread.
"""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import httpx
import pytest

from llorch_conformance.mock_engines._server import FD_TABLE_MAX, reserve_descriptors

from ._helpers import TIMEOUT
from .test_cli import serve

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads the descriptor table size from /proc"
)


def _fd_table(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("FDSize:"):
            return int(line.split()[1])
    raise AssertionError("no FDSize in /proc status")  # pragma: no cover


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _soft_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FD_TABLE_MAX if soft == resource.RLIM_INFINITY else soft


def test_grows_the_table_and_leaves_no_descriptor_open() -> None:
    size = min(_soft_limit(), max(_fd_table() * 2, 512))
    if size <= _fd_table():
        pytest.skip("the soft descriptor limit leaves no room to grow the table")
    before = _open_fds()
    assert reserve_descriptors(size) == size
    assert _fd_table() >= size
    assert _open_fds() == before


def test_never_replaces_an_open_descriptor(tmp_path: Path) -> None:
    size = min(_soft_limit(), max(_fd_table() * 2, 512))
    if size <= 64:
        pytest.skip("the soft descriptor limit is too low")
    f = tmp_path / "mine"
    f.write_text("x")
    fd = os.open(f, os.O_RDONLY)
    top = size - 1
    try:
        if os.path.exists(f"/proc/self/fd/{top}"):
            pytest.skip(f"descriptor {top} is already in use")
        os.dup2(fd, top)
        try:
            reserve_descriptors(size)
            assert os.fstat(top).st_ino == os.fstat(fd).st_ino  # still our file
        finally:
            os.close(top)
    finally:
        os.close(fd)


def test_the_soft_limit_and_tiny_limits_bound_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert reserve_descriptors(32) == 0  # the kernel's first table covers it already
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (200, hard))
    assert reserve_descriptors(1024) == 200


def test_serve_runs_on_one_thread_with_its_table_grown() -> None:
    expected = min(_soft_limit(), FD_TABLE_MAX)
    with serve("vllm") as (proc, url):
        r = httpx.post(
            url + "/v1/completions",
            json={"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "a", "max_tokens": 3,
                  "stream": True},
            timeout=TIMEOUT,
        )  # fmt: skip
        assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
        assert os.listdir(f"/proc/{proc.pid}/task") == [str(proc.pid)]
        assert _fd_table(proc.pid) >= expected
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
