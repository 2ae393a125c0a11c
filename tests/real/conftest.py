"""The real-engine tier: real ``llama-server``, vLLM and Triton with tiny local models.

Every test here is marked ``real``. Where an engine is not installed the tests of that engine
*skip with the reason* (the output names the missing install step) — unless CI made the engine
mandatory: ``LLORCH_REQUIRE_REAL=1`` (llama.cpp), ``LLORCH_REQUIRE_VLLM=1``,
``LLORCH_REQUIRE_TRITON=1``; ``.ci/run`` sets each one whenever that engine's install
succeeded, and ``tox -e real`` sets all three. A missing engine then fails instead of skipping.

Engines start once per test session: vLLM takes 30-110 s to start on 2 busy cores, so its tests
are in one xdist group (``xdist_group("vllm")``; pyproject's ``--dist loadgroup`` keeps a group
on one worker) and share one server; Triton likewise. llama-server starts per module (well under
a second). Where the engine venvs live: ``$LLORCH_VLLM_VENV`` / ``$LLORCH_TRITON_VENV``, else
``${LLORCH_REAL_HOME:-~/.cache/llorch-real}/{vllm,triton}-venv`` (``.ci/run`` installs there).

For quick local work against an engine that is already running, ``LLORCH_VLLM_URL`` /
``LLORCH_TRITON_URL`` make the fixtures use it instead of starting one (the vLLM one must serve
the tiny model as ``tiny``; the Triton one a repository written by ``write_triton_repo``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llorch_conformance.conformance.real import (
    EngineUnavailable,
    LlamaServer,
    TritonServer,
    VllmServer,
    find_llama_server,
    find_triton_venv,
    find_vllm_venv,
    write_tiny_hf_model,
    write_tiny_model,
    write_triton_repo,
)

#: Start budgets (seconds): generous, a loaded 2-core CI machine is slow; failures say so.
VLLM_START_TIMEOUT = 900.0
TRITON_START_TIMEOUT = 180.0


def _unavailable(exc: EngineUnavailable, require_env: str, tier: str) -> None:
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {exc}")
    pytest.skip(f"real {tier} tier skipped: {exc}")


def _binary_or_skip() -> Path:
    try:
        return find_llama_server()
    except EngineUnavailable as exc:
        _unavailable(exc, "LLORCH_REQUIRE_REAL", "llama.cpp")
        raise  # unreachable: skip/fail raise


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="module")
def llama_binary() -> Path:
    return _binary_or_skip()


@pytest.fixture(scope="module")
def real_server(
    llama_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    d = tmp_path_factory.mktemp("real")
    model = write_tiny_model(d / "tiny.gguf", seed=1)
    srv = LlamaServer(model.path, binary=llama_binary, seed=42, parallel=2, ctx_size=512)
    with srv:
        yield srv


@dataclass(frozen=True)
class LiveEngine:
    """A running real engine as the tests see it."""

    base_url: str
    model: str
    log_path: Path | None = None
    start_seconds: float | None = None
    metrics_url: str | None = None


@pytest.fixture(scope="session")
def vllm_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    """One real vLLM for the session (serving the tiny HF model as ``tiny``)."""
    url = os.environ.get("LLORCH_VLLM_URL")
    if url:
        yield LiveEngine(url.rstrip("/"), "tiny")
        return
    try:
        venv = find_vllm_venv()
    except EngineUnavailable as exc:
        _unavailable(exc, "LLORCH_REQUIRE_VLLM", "vLLM")
        raise
    d = tmp_path_factory.mktemp("vllm")
    t0 = time.monotonic()
    model = write_tiny_hf_model(d / "hf", seed=1, venv=venv)
    srv = VllmServer(model.path, served_model_name="tiny", venv=venv, seed=0)
    srv.start(timeout=VLLM_START_TIMEOUT)
    try:
        print(f"\nreal vLLM ready in {time.monotonic() - t0:.1f} s (model write + start)")
        yield LiveEngine(srv.base_url, "tiny", srv.log_path, srv.start_seconds)
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def triton_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    """One real tritonserver for the session (models ``tiny`` and ``tiny_fails``)."""
    url = os.environ.get("LLORCH_TRITON_URL")
    if url:
        yield LiveEngine(url.rstrip("/"), "tiny")
        return
    try:
        venv = find_triton_venv()
        srv = TritonServer(write_triton_repo(tmp_path_factory.mktemp("triton") / "repo"), venv=venv)
    except EngineUnavailable as exc:
        _unavailable(exc, "LLORCH_REQUIRE_TRITON", "Triton")
        raise
    srv.start(timeout=TRITON_START_TIMEOUT)
    try:
        yield LiveEngine(srv.base_url, "tiny", srv.log_path, srv.start_seconds, srv.metrics_url)
    finally:
        srv.stop()
