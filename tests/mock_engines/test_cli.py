"""``llorch-conformance serve`` as a real subprocess, and ``list faults``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from llorch_conformance.conformance.cli import main
from llorch_conformance.mock_engines import FAULT_IDS

from ._helpers import TIMEOUT


@contextmanager
def serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    cmd = [
        sys.executable,
        "-m",
        "llorch_conformance.conformance.cli",
        "serve",
        *args,
        "--port",
        "0",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # printed right after binding (or EOF on failure)
            assert line.startswith("serving "), line
            yield proc, line.split(" on ")[1].split()[0]
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hang fails, never blocks
                proc.kill()
                proc.wait(timeout=5)
                raise


@pytest.mark.parametrize("dialect", ["llamacpp", "openai"])
def test_serve_subprocess(dialect: str) -> None:
    with serve(dialect, "--seed", "5") as (proc, url):
        if dialect == "openai":
            r = httpx.get(
                url + "/v1/models", headers={"authorization": "Bearer x"}, timeout=TIMEOUT
            )
        else:
            r = httpx.get(url + "/health", timeout=TIMEOUT)
        assert r.status_code == 200
        assert httpx.get(url + "/__mock__/config", timeout=TIMEOUT).json()["seed"] == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_serve_stands_in_for_a_deployment() -> None:
    """``--model`` and ``--ctx-size``: the served name and the context the requests are held to."""
    with serve("vllm", "--model", "tiny", "--ctx-size", "64") as (_proc, url):
        card = httpx.get(url + "/v1/models", timeout=TIMEOUT).json()["data"][0]
        assert (card["id"], card["max_model_len"]) == ("tiny", 64)
        over = httpx.post(
            url + "/v1/completions",
            json={"model": "tiny", "prompt": " ".join(["a"] * 70), "max_tokens": 2},
            timeout=TIMEOUT,
        )
        assert over.status_code == 400
        assert over.json()["error"]["param"] == "input_tokens"
        too_many = httpx.post(
            url + "/v1/completions",
            json={"model": "tiny", "prompt": "a", "max_tokens": 65},
            timeout=TIMEOUT,
        )
        assert too_many.json()["error"]["message"].startswith("max_tokens=65 cannot be greater")
        ok = httpx.post(
            url + "/v1/completions",
            json={"model": "tiny", "prompt": "a", "max_tokens": 64},
            timeout=TIMEOUT,
        )
        assert ok.status_code == 200


def test_serve_with_fault_and_no_control() -> None:
    with serve("llamacpp", "--fault", "http.503", "--no-control") as (_proc, url):
        r = httpx.post(url + "/completion", json={"prompt": "x"}, timeout=TIMEOUT)
        assert r.status_code == 503
        assert httpx.get(url + "/__mock__/config", timeout=TIMEOUT).status_code == 404


def test_serve_api_key_from_environment() -> None:
    os.environ["LLORCH_MOCK_API_KEY"] = "envkey-123"
    try:
        with serve("vllm") as (_proc, url):
            assert httpx.get(url + "/v1/models", timeout=TIMEOUT).status_code == 401
            ok = httpx.get(
                url + "/v1/models", headers={"authorization": "Bearer envkey-123"}, timeout=TIMEOUT
            )
            assert ok.status_code == 200
    finally:
        del os.environ["LLORCH_MOCK_API_KEY"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "llamacpp", "--profile", "warp"], "unknown profile"),
        (["serve", "llamacpp", "--fault", "bogus"], "unknown fault id"),
        (["serve", "vllm", "--fault", "frame.duplicate_index"], "does not apply"),
        (["serve", "llamacpp", "--port", "70000"], "not a TCP port"),
        (["serve", "vllm", "--ctx-size", "8"], "--ctx-size 8: must be between"),
        (["serve", "vllm", "--model", " "], "--model must not be empty"),
    ],
    ids=["profile", "fault", "inapplicable", "port", "ctx-size", "model"],
)
def test_serve_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_serve_unknown_dialect_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "ollama"])
    assert exc.value.code == 2


def test_list_faults_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "faults"]) == 0
    table = capsys.readouterr().out
    for fid in FAULT_IDS:
        assert fid in table
    assert main(["list", "faults", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == list(FAULT_IDS)
    by_id = {d["id"]: d for d in data}
    assert by_id["stall.midstream"]["params"] == {"after_events": 2, "delay_ms": 2000}
    assert "llamacpp" in by_id["http.500"]["applies_to"]
