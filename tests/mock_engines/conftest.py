"""Fixtures for the mock-engine tests: engines per dialect (readable ids) and SSE helpers.

Every engine is a real uvicorn server on 127.0.0.1 port 0 in a thread; every HTTP call carries a
timeout and every wait on the journal is bounded, so a bug fails a test instead of hanging it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from llorch_conformance.mock_engines import MockEngine, run_mock_engine

from ._helpers import CORE_DIALECTS, CREATED, TIMEOUT, auth_headers


@pytest.fixture(params=CORE_DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(dialect: str) -> Iterator[MockEngine]:
    with run_mock_engine(dialect, seed=11, created=CREATED) as eng:
        yield eng


@pytest.fixture
def client(engine: MockEngine, dialect: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=engine.base_url, timeout=TIMEOUT, headers=auth_headers(dialect)
    ) as c:
        yield c
