"""Drift check, the adapter's black-box scenarios, and record → replay, all on the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from llorch_conformance.conformance.cli import main as cli_main
from llorch_conformance.conformance.real import LlamaServer, run_drift_check
from llorch_conformance.mock_engines._cassette import Cassette, run_replay_engine

from ._blackbox import run_blackbox

TIMEOUT = 30.0


def test_drift_against_the_mock_has_no_critical_finding(
    real_server: LlamaServer, tmp_path: Path
) -> None:
    report = run_drift_check(real_server, out_dir=tmp_path / "drift")
    assert (tmp_path / "drift" / "drift-report.md").is_file()
    data = json.loads((tmp_path / "drift" / "drift-report.json").read_text())
    assert data["real_version"].startswith("b")
    assert len(data["probes"]) >= 15
    assert real_server.base_url not in (tmp_path / "drift" / "drift-report.md").read_text()
    critical = [f"{i.probe} {i.path}: real={i.real!r} mock={i.mock!r}" for i in report.critical]
    assert not critical, "critical drift:\n" + "\n".join(critical)


def test_adapter_blackbox_scenarios_pass_against_the_real_engine(
    real_server: LlamaServer, tmp_path: Path
) -> None:
    rc, results, bundle = run_blackbox("llamacpp", real_server.base_url, tmp_path)
    failing = [
        f"{s.get('scenario')}: {str(s.get('message'))[:200]}"
        for s in results.get("scenarios", [])
        if isinstance(s, dict) and s.get("status") in ("fail", "error")
    ]
    assert rc == 0 and not failing, "\n".join(failing)
    passed = [s for s in results["scenarios"] if s.get("status") == "pass"]
    assert len(passed) >= 20
    # the drift evidence goes into the same proof bundle
    report = run_drift_check(real_server, out_dir=bundle / "drift")
    assert (bundle / "drift" / "drift-report.json").is_file()
    assert not report.critical


def test_record_real_engine_then_gate_on_the_replay(
    real_server: LlamaServer, tmp_path: Path
) -> None:
    cassette = tmp_path / "real.cassette.json"
    rc = cli_main(
        [
            "record",
            "--engine-url",
            real_server.base_url,
            "--dialect",
            "llamacpp",
            "--out",
            str(cassette),
            "--request",
            'POST /completion {"prompt": "Hi", "n_predict": 4, "stream": true}',
            # a one-token answer: the replay then has one within any task's max_tokens
            "--request",
            'POST /completion {"prompt": "Hi", "n_predict": 1, "stream": true}',
        ]
    )
    assert rc == 0
    cas = Cassette.load(cassette)
    labels = [e.label for e in cas.exchanges]
    assert "completion.stream" in labels and "request.0" in labels
    stream = next(e for e in cas.exchanges if e.label == "completion.stream")
    assert stream.complete and stream.header("server") == "llama.cpp"
    with run_replay_engine(cas, speed=4.0) as rep:
        r = httpx.post(rep.base_url + "/completion", content=stream.request_body, timeout=TIMEOUT)
        assert r.content == stream.body
        assert r.headers["x-llorch-replay"] == "exact"
        rc, results, _bundle = run_blackbox("llamacpp", rep.base_url, tmp_path / "replay")
    failing = [
        f"{s.get('scenario')}: {str(s.get('message'))[:200]}"
        for s in results.get("scenarios", [])
        if isinstance(s, dict) and s.get("status") in ("fail", "error")
    ]
    assert rc == 0 and not failing, "\n".join(failing)
