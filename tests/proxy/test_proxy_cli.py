"""``llorch-conformance proxy``: a real process in front of a mock engine, and its usage errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from llorch_conformance.conformance.cli import main as cli_main
from llorch_conformance.mock_engines import run_mock_engine


def test_bad_engine_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["proxy", "--dialect", "llamacpp", "--engine-url", "ftp://x"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "engine URL must be http(s)" in err and "Traceback" not in err


def test_bad_fault_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(
        ["proxy", "--dialect", "vllm", "--engine-url", "http://127.0.0.1:9", "--fault", "nope"]
    )
    assert rc == 2
    assert "unknown fault id" in capsys.readouterr().err


def test_proxy_process_serves_faults_and_journal() -> None:
    with run_mock_engine("llamacpp", seed=2) as eng:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llorch_conformance.conformance.cli", "proxy", "--dialect", "llamacpp",
             "--engine-url", eng.base_url, "--fault", "http.503;first=1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("proxying llamacpp ") and eng.engine_version in line, line
            url = line.rsplit(" on ", 1)[1].strip()
            body = {"prompt": "Hi", "n_predict": 3, "stream": True}
            with httpx.Client(timeout=10.0) as c:
                assert c.post(url + "/completion", json=body).status_code == 503
                r = c.post(url + "/completion", json=body)
                assert r.status_code == 200 and b'"stop":true' in r.content
                journal = c.get(url + "/__mock__/journal", params={"frames": "0"}).json()
            assert [e["status"] for e in journal["entries"]][-2:] == [503, 200]
            assert len(eng.journal.find(path="/completion")) == 1
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err[-500:]
