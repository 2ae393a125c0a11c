"""Fixtures of the http_util tests: the anyio backend and a plain HTTP/1.1 test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import App, ServerThread


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def server(app: App) -> Iterator[ServerThread]:
    with ServerThread(app) as srv:
        yield srv
