"""``llorch-conformance orchestrator`` as a user runs it: a real process, real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from llorch_conformance.adapters.api import UsageError
from llorch_conformance.adapters.orchestrator._cli import parse_binding
from llorch_conformance.conformance.cli import main

EXE = [
    sys.executable,
    "-c",
    "import sys; from llorch_conformance.conformance.cli import main; sys.exit(main())",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_parse_binding() -> None:
    b = parse_binding("p/r1=vllm@http://127.0.0.1:9/;model=m;slots=2;api_key_env=K", {"K": "sk-1"})
    assert (b.pool_id, b.replica_id, b.dialect, b.url) == ("p", "r1", "vllm", "http://127.0.0.1:9/")
    assert b.config == {"model": "m", "slots": 2, "api_key": "sk-1"}
    assert parse_binding("default/r0=mock").dialect == "mock"
    for bad, needle in [
        ("nonsense", "POOL/REPLICA=DIALECT@URL"),
        ("p=vllm@http://x", "POOL/REPLICA before"),
        ("p/r=vllm@ftp://x", "must start with http"),
        ("p/r=vllm@http://x;oops", "not key=value"),
        ("p/r=vllm@http://x;api_key_env=MISSING", "MISSING is not set"),
    ]:
        with pytest.raises(UsageError, match=needle):
            parse_binding(bad, {})


def test_refuses_non_loopback_without_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLORCH_API_TOKEN", raising=False)
    assert main(["orchestrator", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "NON_LOOPBACK_WITHOUT_TOKEN" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "flag",
    [
        "--max-deadline-ms",
        "--unopened-ttl-ms",
        "--limit-concurrency",
        "--timeout-keep-alive",
        "--write-timeout-ms",
    ],
)
def test_limits_must_be_positive(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    assert main(["orchestrator", "--port", "1", flag, "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{flag} must be at least 1" in err and len(err.splitlines()) == 1


def test_unknown_adapter_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["orchestrator", "--port", "1", "--bind", "p/r=ollama@http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown adapter 'ollama'" in err and len(err.splitlines()) == 1


def test_serves_tasks_over_the_mock_adapter() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LLORCH_API_TOKEN"}
    proc = subprocess.Popen(
        [*EXE, "orchestrator", "--port", str(port), "--max-deadline-ms", "10000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "orchestrator did not come up"
            time.sleep(0.05)
        task = {
            "task_id": "cli-1",
            "session_id": "s",
            "workload": "completion",
            "model_ref": "m:v0",
            "engine": "mock",
            "ctx": 512,
            "priority": "batch",
            "prompt": "Hello",
            "max_tokens": 5,
            "deadline_ms": 5000,
            "seed": 7,
        }
        r = httpx.post(base + "/v1/tasks", json={**task, "deadline_ms": 10001}, timeout=5)
        assert r.status_code == 400 and r.json()["field"] == "deadline_ms"
        assert httpx.post(base + "/v1/tasks", json=task, timeout=5).status_code == 202
        body = httpx.get(base + "/v1/tasks/cli-1/stream", timeout=10).text
        assert body.startswith("event: started\n")
        assert body.count("event: token\n") == 5 and "event: end\n" in body
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # also closes the pipes
