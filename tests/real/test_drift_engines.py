"""Live drift check of the vLLM and Triton mocks against the real engines (marker ``real``).

``llorch-conformance drift --dialect vllm|triton`` against the session's real vLLM 0.32.0 and
Triton 2.51.0: zero critical drift, the report names the engine version, the mock imitates the
discovered deployment. The same comparison runs without engines on every test run against the
recordings in ``tests/mock_engines/fixtures/drift`` (``test_drift_fixtures.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from llorch_conformance.conformance.cli import main as cli_main

from .conftest import LiveEngine


def _drift(dialect: str, url: str, out: Path) -> tuple[int, dict[str, object]]:
    rc = cli_main(
        ["drift", "--dialect", dialect, "--engine-url", url, "--model", "tiny", "--out", str(out)]
    )
    return rc, json.loads((out / "drift-report.json").read_text())


def _critical(report: dict[str, object]) -> list[str]:
    items = report["items"]
    assert isinstance(items, list)
    return [
        f"{i['probe']} {i['path']}: real={i['real']!r} mock={i['mock']!r}"
        for i in items
        if i["severity"] == "critical"
    ]


@pytest.mark.xdist_group("vllm")
def test_drift_vllm_mock_against_real_vllm(vllm_engine: LiveEngine, tmp_path: Path) -> None:
    rc, report = _drift("vllm", vllm_engine.base_url, tmp_path)
    assert not _critical(report), "\n".join(_critical(report))
    assert rc == 0
    assert report["real_version"] == "vllm 0.32.0"
    assert report["mock_version"] == "0.32.0"
    deployment = report["deployment"]
    assert isinstance(deployment, dict)
    served = httpx.get(vllm_engine.base_url + "/v1/models", timeout=30).json()["data"][0]
    assert (deployment["model"], deployment["ctx_size"]) == ("tiny", served["max_model_len"])
    probes = report["probes"]
    assert isinstance(probes, list) and len(probes) >= 40
    assert vllm_engine.base_url not in (tmp_path / "drift-report.md").read_text()


@pytest.mark.xdist_group("triton")
def test_drift_triton_mock_against_real_triton(triton_engine: LiveEngine, tmp_path: Path) -> None:
    rc, report = _drift("triton", triton_engine.base_url, tmp_path)
    assert not _critical(report), "\n".join(_critical(report))
    assert rc == 0
    assert report["real_version"] == "triton 2.51.0"
    assert report["mock_version"] == "2.51.0"
    deployment = report["deployment"]
    assert isinstance(deployment, dict)
    # the repository's failing model makes "an error inside a 200 stream" comparable
    assert deployment["fail_model"] == "tiny_fails"
    items = report["items"]
    assert isinstance(items, list)
    assert not [i for i in items if i["probe"] == "err.stream.mid_stream"]
