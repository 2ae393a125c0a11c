"""``record`` and ``replay-cassette`` on the command line (against a mock engine, real sockets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llorch_conformance.conformance.cli import main as cli_main
from llorch_conformance.mock_engines import run_mock_engine
from llorch_conformance.mock_engines._cassette import Cassette

TIMEOUT = 10.0


def test_record_cli_writes_a_cassette_of_the_probe_set(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    with run_mock_engine("llamacpp", seed=2) as eng:
        rc = cli_main(
            [
                "record",
                "--engine-url",
                eng.base_url,
                "--dialect",
                "llamacpp",
                "--out",
                str(out),
                "--request",
                'POST /completion {"prompt": "x", "n_predict": 2}',
            ]
        )
        assert rc == 0
        assert len(eng.journal.find(path="/completion")) >= 4
    cas = Cassette.load(out)
    assert cas.engine_version == "b6710-3df2244" or cas.engine_version.startswith("b")
    labels = [e.label for e in cas.exchanges]
    assert {"health", "props", "completion.stream", "oai.chat.stream", "request.0"} <= set(labels)
    assert cas.notes["cancel_slots_idle"] is True


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--request", "nonsense"], "METHOD /path"),
        (["--request", "POST /x {bad"], "not JSON"),
        (["--dialect", "nope"], "unknown dialect"),
    ],
)
def test_record_cli_usage_errors_exit_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["record", "--engine-url", "http://127.0.0.1:9", "--dialect", "llamacpp"]
    base += ["--out", str(tmp_path / "c.json")]
    rc = cli_main(base + argv)
    assert rc == 2
    assert needle in capsys.readouterr().err


def test_record_cli_refuses_a_dead_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with run_mock_engine("llamacpp") as eng:
        url = eng.base_url
    rc = cli_main(["record", "--engine-url", url, "--dialect", "tgi", "--out", str(tmp_path / "c")])
    assert rc == 2
    assert "did not answer" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_replay_cassette_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    with run_mock_engine("llamacpp", seed=4) as eng:
        assert cli_main(["record", "--engine-url", eng.base_url, "--dialect", "llamacpp",
                         "--out", str(out)]) == 0  # fmt: skip
    cas = Cassette.load(out)
    want = next(e for e in cas.exchanges if e.label == "completion.stream")
    with subprocess.Popen(
        [sys.executable, "-m", "llorch_conformance.conformance.cli", "replay-cassette", "--cassette", str(out),
         "--speed", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded: the process prints it or exits
            assert "replaying" in line, line
            url = line.rsplit(" ", 1)[1].strip()
            r = httpx.post(url + "/completion", content=want.request_body, timeout=TIMEOUT)
            assert r.content == want.body
        finally:
            proc.terminate()
            proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
