"""build_client / fetch on real sockets: defaults, TLS verification, no environment, HTTP/2."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import anyio
import httpx
import pytest

from llorch_conformance.adapters.api import ConfigError, ErrorCode, WorkerError, WorkerErrorKind
from llorch_conformance.adapters.http_util import (
    HttpClientConfig,
    bearer_header,
    build_client,
    fetch,
    verifying_context,
)

from ._server import App, ServerThread
from .conftest import Tls

pytestmark = pytest.mark.anyio


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_defaults_are_the_original_client_defaults() -> None:
    config = HttpClientConfig()
    assert (config.connect_timeout_s, config.total_timeout_s) == (5.0, 30.0)
    assert (config.max_keepalive_connections, config.keepalive_expiry_s) == (8, 90.0)
    assert config.http2 is True and config.verify is True and config.proxy is None
    client = build_client(config)
    try:
        t = client.timeout
        assert (t.connect, t.read, t.write, t.pool) == (5.0, 30.0, 30.0, 30.0)
        assert client.trust_env is False
        assert client.follow_redirects is False
    finally:
        anyio.run(client.aclose)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect_timeout_s": 0},
        {"total_timeout_s": -1},
        {"inter_chunk_timeout_s": True},
        {"max_connections": 0},
        {"verify": "/nonexistent/ca.pem"},
    ],
)
def test_bad_config_is_a_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        HttpClientConfig(**kwargs)  # type: ignore[arg-type]


def test_config_headers_are_a_frozen_copy() -> None:
    headers = {"Authorization": "Bearer abcdefgh"}
    config = HttpClientConfig(headers=headers)
    headers["Authorization"] = "changed"
    assert config.headers["Authorization"] == "Bearer abcdefgh"
    with pytest.raises(TypeError):
        config.headers["x"] = "y"  # type: ignore[index]


async def test_default_headers_are_sent(server: ServerThread) -> None:
    config = HttpClientConfig(headers={"Authorization": "Bearer abcdefgh"})
    with anyio.fail_after(10):
        async with build_client(config) as client:
            resp = await fetch(client, "GET", f"{server.url}/echo", total_timeout_s=5)
    assert resp.json()["headers"]["authorization"] == "Bearer abcdefgh"


async def test_tls_verification_is_on_by_default(tls_server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client() as client:
            with pytest.raises(WorkerError) as info:
                await fetch(client, "GET", f"{tls_server.url}/echo", total_timeout_s=5)
    err = info.value
    assert err.kind is WorkerErrorKind.ADAPTER and err.code is ErrorCode.INTERNAL
    assert not err.retriable
    assert "CERTIFICATE_VERIFY_FAILED" in err.message or "certificate" in err.message.lower()


def test_the_default_verifying_context_is_built_once_per_alpn_setting() -> None:
    """Loading the CA bundle per client was a quarter of a run's CPU; it is loaded once, and a
    client with HTTP/2 never shares a context with one without (httpcore sets ALPN on it)."""
    ctx = verifying_context()
    assert verifying_context() is ctx
    assert verifying_context(True) is verifying_context(True) is not ctx
    for c in (ctx, verifying_context(True)):
        assert c.verify_mode is ssl.CERT_REQUIRED and c.check_hostname
    cfg = HttpClientConfig()
    clients = [build_client(cfg), build_client(cfg)]
    pools = [c._transport._pool for c in clients]  # type: ignore[attr-defined]
    assert pools[0]._ssl_context is pools[1]._ssl_context is verifying_context(cfg.http2)


@pytest.mark.parametrize("as_context", [False, True], ids=["ca-file", "ssl-context"])
async def test_tls_with_the_test_ca_works(
    tls_server: ServerThread, tls: Tls, as_context: bool
) -> None:
    verify: str | ssl.SSLContext = (
        ssl.create_default_context(cafile=tls.ca_file) if as_context else tls.ca_file
    )
    with anyio.fail_after(10):
        async with build_client(HttpClientConfig(verify=verify)) as client:
            resp = await fetch(client, "GET", f"{tls_server.url}/echo", total_timeout_s=5)
    assert resp.status_code == 200


async def test_tls_verification_off_only_when_asked(tls_server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client(HttpClientConfig(verify=False)) as client:
            resp = await fetch(client, "GET", f"{tls_server.url}/echo", total_timeout_s=5)
    assert resp.status_code == 200


async def test_environment_is_ignored(
    server: ServerThread, tls_server: ServerThread, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = _refused_url()
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # Were SSL_CERT_FILE honoured, the untrusted test CA would become trusted.
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("SSL_CERT_DIR", str(Path(tls.ca_file).parent))
    with anyio.fail_after(10):
        async with build_client() as client:
            resp = await fetch(client, "GET", f"{server.url}/echo", total_timeout_s=5)
            assert resp.status_code == 200  # the dead env proxy was not used
            with pytest.raises(WorkerError) as info:
                await fetch(client, "GET", f"{tls_server.url}/echo", total_timeout_s=5)
    assert info.value.kind is WorkerErrorKind.ADAPTER


async def test_explicit_proxy_is_used(app: App, server: ServerThread) -> None:
    # Our test server answers the proxy-form request "GET http://engine.invalid/echo".
    config = HttpClientConfig(proxy=server.url)
    with anyio.fail_after(10):
        async with build_client(config) as client:
            resp = await fetch(client, "GET", "http://engine.invalid/echo", total_timeout_s=5)
    assert resp.json()["headers"]["host"] == "engine.invalid"


async def test_http2_is_negotiated_over_tls(app: App, h2_server: ServerThread, tls: Tls) -> None:
    with anyio.fail_after(10):
        async with build_client(HttpClientConfig(verify=tls.ca_file)) as client:
            responses = []
            async with anyio.create_task_group() as tg:

                async def get() -> None:
                    url = f"{h2_server.url}/echo"
                    responses.append(await fetch(client, "GET", url, total_timeout_s=5))

                for _ in range(5):
                    tg.start_soon(get)
    assert [r.http_version for r in responses] == ["HTTP/2"] * 5
    assert {r.json()["http_version"] for r in responses} == {"2"}
    # Five concurrent requests were multiplexed over one connection (HTU-INT-3305).
    assert len({r.json()["client_port"] for r in responses}) == 1


async def test_http1_fallback_when_http2_disabled(h2_server: ServerThread, tls: Tls) -> None:
    config = HttpClientConfig(verify=tls.ca_file, http2=False)
    with anyio.fail_after(10):
        async with build_client(config) as client:
            resp = await fetch(client, "GET", f"{h2_server.url}/echo", total_timeout_s=5)
    assert resp.http_version == "HTTP/1.1"
    assert resp.json()["http_version"] == "1.1"


async def test_http1_server_with_http2_enabled_client(tls_server: ServerThread, tls: Tls) -> None:
    # uvicorn offers only http/1.1 by ALPN: the h2-preferring client falls back.
    with anyio.fail_after(10):
        async with build_client(HttpClientConfig(verify=tls.ca_file)) as client:
            resp = await fetch(client, "GET", f"{tls_server.url}/echo", total_timeout_s=5)
    assert resp.http_version == "HTTP/1.1"


async def test_fetch_maps_status_refused_and_total_timeout(server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client() as client:
            with pytest.raises(WorkerError) as status:
                await fetch(client, "GET", f"{server.url}/status/503", total_timeout_s=5)
            with pytest.raises(WorkerError) as refused:
                await fetch(client, "GET", f"{_refused_url()}/x", total_timeout_s=5)
            with pytest.raises(WorkerError) as slow:
                # The stall route never finishes its body: the whole-request budget ends it.
                await fetch(client, "GET", f"{server.url}/sse/stall", total_timeout_s=0.3)
    assert status.value.kind is WorkerErrorKind.POOL_UNAVAILABLE
    assert status.value.retry_after_ms == 2000 and status.value.upstream_status == 503
    assert refused.value.kind is WorkerErrorKind.POOL_UNAVAILABLE and refused.value.retriable
    assert refused.value.message.startswith("connect:")
    assert slow.value.kind is WorkerErrorKind.DECODE_TIMEOUT


async def test_success_body_is_returned_read(server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client() as client:
            resp = await fetch(client, "GET", f"{server.url}/sse/count-2", total_timeout_s=5)
    assert resp.content == b"data: 0\n\ndata: 1\n\n"
    assert isinstance(resp, httpx.Response)


async def test_http1_keep_alive_reuses_the_connection(server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client() as client:
            ports = {
                (await fetch(client, "GET", f"{server.url}/echo", total_timeout_s=5)).json()[
                    "client_port"
                ]
                for _ in range(3)
            }
    assert len(ports) == 1


def test_bearer_header_is_explicit() -> None:
    assert bearer_header("abc123") == {"Authorization": "Bearer abc123"}
    assert bearer_header(None) == {} and bearer_header("  ") == {}
    with pytest.raises(ConfigError):
        bearer_header("abc\r\nX-Evil: 1")


async def test_bearer_header_reaches_the_engine(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_TOKEN", "from-the-environment")
    with anyio.fail_after(10):
        async with build_client(HttpClientConfig(headers=bearer_header("abc123"))) as client:
            seen = (await fetch(client, "GET", f"{server.url}/echo", total_timeout_s=5)).json()
        async with build_client() as client:
            unset = (await fetch(client, "GET", f"{server.url}/echo", total_timeout_s=5)).json()
    assert seen["headers"]["authorization"] == "Bearer abc123"
    assert "authorization" not in unset["headers"]  # AUTH_TOKEN in the environment is not read


async def test_fetch_refuses_an_oversized_body(server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client() as client:
            ok = await fetch(
                client, "GET", f"{server.url}/sse/count-2", total_timeout_s=5, max_body_bytes=18
            )
            with pytest.raises(WorkerError) as info:
                await fetch(
                    client, "GET", f"{server.url}/sse/count-2", total_timeout_s=5, max_body_bytes=17
                )
    assert len(ok.content) == 18 and ok.headers["content-length"] == "18"
    assert info.value.kind is WorkerErrorKind.ADAPTER and not info.value.retriable
    assert "larger than 17 bytes" in info.value.message
