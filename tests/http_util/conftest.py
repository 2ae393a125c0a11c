"""Fixtures of the http_util tests: anyio backend, test servers (HTTP/1.1, TLS, HTTP/2), a test CA."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

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


@dataclass
class Tls:
    ca_file: str
    cert_file: str
    key_file: str


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = Tls(str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(paths.ca_file)
    cert.private_key_pem.write_to_path(paths.key_file)
    for n, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(paths.cert_file, append=n > 0)
    return paths


@pytest.fixture
def tls_server(app: App, tls: Tls) -> Iterator[ServerThread]:
    with ServerThread(app, certfile=tls.cert_file, keyfile=tls.key_file) as srv:
        yield srv


@pytest.fixture
def h2_server(app: App, tls: Tls) -> Iterator[ServerThread]:
    with ServerThread(app, kind="hypercorn", certfile=tls.cert_file, keyfile=tls.key_file) as srv:
        yield srv
