"""``llorch-conformance worker`` as a real subprocess: serves, beats, stops gracefully on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llorch_conformance.conformance.cli import main
from llorch_conformance.mock_engines.rbee import MockQueen

from .conftest import WAIT_S

_BOUND = re.compile(r"on (http://\S+) ")


def _first_line(proc: subprocess.Popen[str], within_s: float) -> str:
    """Read the first stdout line with a deadline (a hung start must fail, not hang)."""
    box: list[str] = []
    t = threading.Thread(
        target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    t.start()
    t.join(within_s)
    if not box:
        proc.kill()
        raise AssertionError(f"the worker printed nothing within {within_s:g} s")
    return box[0]


@pytest.fixture
def worker_proc(queen: MockQueen, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    errlog = (tmp_path / "worker.stderr").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llorch_conformance.conformance.cli",
            "worker",
            "--adapter",
            "mock",
            "--queen-url",
            queen.url,
            "--port",
            "0",
            "--worker-id",
            "cli-worker",
            "--heartbeat-interval",
            "0.05",
            "--slots",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=errlog,
        text=True,
        env=env,
    )
    try:
        line = _first_line(proc, 30.0)
        m = _BOUND.search(line)
        assert m, line
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        errlog.close()


def test_worker_command_serves_beats_and_stops_on_sigterm(
    worker_proc: tuple[subprocess.Popen[str], str], queen: MockQueen
) -> None:
    proc, url = worker_proc
    assert httpx.get(url + "/health", timeout=5.0).text == "ok"
    queen.state.wait_for(lambda s: s.is_available("cli-worker"), WAIT_S)
    info = httpx.get(url + "/info", timeout=5.0).json()
    assert info["id"] == "cli-worker" and info["port"] == int(url.rsplit(":", 1)[1])
    r = httpx.post(
        url + "/v1/infer", json={"prompt": "from the CLI", "max_tokens": 3}, timeout=10.0
    )
    assert r.status_code == 200 and r.json()["tokens_generated"] <= 3
    proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, so the exit status says
    # "terminated by SIGTERM"; what matters is what happened before: the final heartbeat.
    assert proc.wait(WAIT_S) in (0, -signal.SIGTERM)
    beats = queen.state.heartbeats("cli-worker")
    assert beats[-1].status == "stopped"
    assert "stopping" in queen.state.worker("cli-worker").statuses  # type: ignore[union-attr]
    assert not queen.state.is_available("cli-worker")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["worker", "--adapter", "llamacpp", "--queen-url", "http://127.0.0.1:1", "--port", "0"],
            "--engine-url is required",
        ),
        (
            ["worker", "--adapter", "mock", "--queen-url", "queen:7833", "--port", "0"],
            "--queen-url",
        ),
        (
            ["worker", "--adapter", "nosuch", "--queen-url", "http://127.0.0.1:1", "--port", "0"],
            "unknown adapter",
        ),
        (
            ["worker", "--adapter", "mock", "--queen-url", "http://127.0.0.1:1", "--port", "70000"],
            "--port",
        ),
        (
            [
                "worker",
                "--adapter",
                "mock",
                "--queen-url",
                "http://127.0.0.1:1",
                "--port",
                "0",
                "--adapter-opt",
                "novalue",
            ],
            "key=value",
        ),
    ],
)
def test_worker_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
