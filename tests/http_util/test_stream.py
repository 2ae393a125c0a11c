"""aiter_sse / aiter_chunks over real sockets: incremental delivery, stall, reset, truncation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from llorch_conformance.adapters.api import ErrorCode, SSEDecodeError, WorkerError, WorkerErrorKind
from llorch_conformance.adapters.http_util import (
    HttpClientConfig,
    SSEDecoder,
    aiter_chunks,
    aiter_sse,
    build_client,
    open_stream,
)

from ._server import App, ServerThread
from .conftest import Tls

pytestmark = pytest.mark.anyio

CONFIG = HttpClientConfig(connect_timeout_s=2, first_byte_timeout_s=5, total_timeout_s=5)


@asynccontextmanager
async def stream(url: str) -> AsyncIterator[httpx.Response]:
    async with build_client(CONFIG) as client, client.stream("GET", url) as resp:
        yield resp


async def events_until_error(
    url: str, inter_chunk_timeout_s: float
) -> tuple[list[str], WorkerError]:
    """The SSE ``data`` read from ``url`` before the stream failed, and what it failed with."""
    got: list[str] = []
    with anyio.fail_after(10):
        async with stream(url) as resp:
            with pytest.raises(WorkerError) as info:
                async for event in aiter_sse(resp, inter_chunk_timeout_s=inter_chunk_timeout_s):
                    got.append(event.data)
    return got, info.value


async def test_first_event_arrives_before_the_server_finished_sending(
    app: App, server: ServerThread
) -> None:
    with anyio.fail_after(10):
        async with stream(f"{server.url}/sse/gated") as resp:
            events = aiter_sse(resp, inter_chunk_timeout_s=5)
            first = await events.__anext__()
            assert first.data == "one"
            # The server is parked at its gate: "two" has not been sent yet.
            assert "sent two" not in app.journal
            app.release("second")
            rest = [e.data async for e in events]
    assert rest == ["two"]
    assert app.wait_journal("sent two")


async def test_stall_longer_than_inter_chunk_timeout_is_decode_timeout(
    app: App, server: ServerThread
) -> None:
    got, err = await events_until_error(f"{server.url}/sse/stall", 0.2)
    assert got == ["one"]
    assert err.kind is WorkerErrorKind.DECODE_TIMEOUT
    assert err.code is ErrorCode.DECODE_TIMEOUT
    assert err.retriable
    assert "inter-chunk" in err.message
    # Leaving the block closed the connection: the server saw the disconnect.
    assert app.wait_journal("disconnected")


async def test_abrupt_close_mid_stream_is_worker_reset(app: App, server: ServerThread) -> None:
    got, err = await events_until_error(f"{server.url}/sse/abort", 5)
    assert got == ["one"]
    assert err.kind is WorkerErrorKind.WORKER_RESET
    assert err.retriable
    assert isinstance(err.__cause__, Exception)


async def test_body_ending_inside_an_event_is_worker_reset(server: ServerThread) -> None:
    got, err = await events_until_error(f"{server.url}/sse/truncated", 5)
    assert got == ["one"]
    assert err.kind is WorkerErrorKind.WORKER_RESET
    assert "inside an SSE event" in err.message


async def test_utf8_split_into_single_byte_writes(server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with stream(f"{server.url}/sse/split-utf8") as resp:
            events = [e async for e in aiter_sse(resp, inter_chunk_timeout_s=5)]
    assert [e.data for e in events] == ["a😀中"]


async def test_many_events_in_one_write_and_own_decoder(server: ServerThread) -> None:
    decoder = SSEDecoder()
    with anyio.fail_after(10):
        async with stream(f"{server.url}/sse/count-500") as resp:
            events = [e async for e in aiter_sse(resp, inter_chunk_timeout_s=5, decoder=decoder)]
    assert [e.data for e in events] == [str(i) for i in range(500)]
    assert not decoder.truncated


async def test_decode_error_passes_through(server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with stream(f"{server.url}/sse/count-50") as resp:
            with pytest.raises(SSEDecodeError):
                async for _ in aiter_sse(
                    resp, inter_chunk_timeout_s=5, decoder=SSEDecoder(max_event_bytes=1)
                ):
                    pass


async def test_aiter_chunks_yields_raw_bytes_and_maps_stall(app: App, server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client(CONFIG) as client:
            async with client.stream("GET", f"{server.url}/sse/split-utf8") as resp:
                raw = b"".join([c async for c in aiter_chunks(resp, inter_chunk_timeout_s=5)])
            assert raw == "data: a😀中\n\n".encode()
            async with client.stream("GET", f"{server.url}/sse/stall") as resp:
                with pytest.raises(WorkerError) as info:
                    async for _ in aiter_chunks(resp, inter_chunk_timeout_s=0.2):
                        pass
    assert info.value.kind is WorkerErrorKind.DECODE_TIMEOUT


async def test_open_stream_yields_successful_response(app: App, server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with (
            build_client(CONFIG) as client,
            open_stream(client, "GET", f"{server.url}/sse/count-3", first_byte_timeout_s=5) as resp,
        ):
            events = [e.data async for e in aiter_sse(resp, inter_chunk_timeout_s=5)]
    assert events == ["0", "1", "2"]


async def test_open_stream_raises_mapped_error_for_error_status(server: ServerThread) -> None:
    with anyio.fail_after(10):
        async with build_client(CONFIG) as client:
            with pytest.raises(WorkerError) as info:
                async with open_stream(
                    client, "GET", f"{server.url}/status/429", first_byte_timeout_s=5
                ):
                    pytest.fail("an error status must not be yielded")
    err = info.value
    assert err.kind is WorkerErrorKind.POOL_UNAVAILABLE
    assert err.retry_after_ms == 2000
    assert err.upstream_status == 429
    assert "sk-live-abcdefghijklmnop" not in err.message
    assert err.message.startswith("upstream 429: status 429 for api_key=****")


async def test_stream_without_first_byte_is_decode_timeout() -> None:
    # A listening socket nobody accepts from: the TCP connect succeeds (backlog), no reply ever.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with anyio.fail_after(10):
            async with build_client(CONFIG) as client:
                with pytest.raises(WorkerError) as info:
                    async with open_stream(
                        client, "GET", f"http://127.0.0.1:{port}/", first_byte_timeout_s=0.2
                    ):
                        pass
    assert info.value.kind is WorkerErrorKind.DECODE_TIMEOUT
    assert "before first byte" in info.value.message


async def test_client_read_timeout_below_the_budget_is_the_timer(
    app: App, server: ServerThread
) -> None:
    # Our own timer is skipped (httpx bounds each read at 0.2 s); the stall is still caught.
    config = HttpClientConfig(first_byte_timeout_s=0.2)
    with anyio.fail_after(10):
        async with (
            build_client(config) as client,
            client.stream("GET", f"{server.url}/sse/stall") as resp,
        ):
            with pytest.raises(WorkerError) as info:
                async for _ in aiter_sse(resp, inter_chunk_timeout_s=30):
                    pass
    assert info.value.kind is WorkerErrorKind.DECODE_TIMEOUT
    assert "ReadTimeout" in info.value.message


async def test_http2_stream_is_incremental_and_stall_is_caught(
    app: App, h2_server: ServerThread, tls: Tls
) -> None:
    # On HTTP/2 a socket read can carry other streams' frames, so our own timer must run even
    # though the client's read timeout (30 s) is above the budget.
    config = HttpClientConfig(verify=tls.ca_file)
    with anyio.fail_after(10):
        async with build_client(config) as client:
            async with client.stream("GET", f"{h2_server.url}/sse/gated") as resp:
                assert resp.http_version == "HTTP/2"
                events = aiter_sse(resp, inter_chunk_timeout_s=5)
                assert (await events.__anext__()).data == "one"
                assert "sent two" not in app.journal
                app.release("second")
                assert [e.data async for e in events] == ["two"]
            async with client.stream("GET", f"{h2_server.url}/sse/stall") as resp:
                with pytest.raises(WorkerError) as info:
                    async for _ in aiter_sse(resp, inter_chunk_timeout_s=0.2):
                        pass
    assert info.value.kind is WorkerErrorKind.DECODE_TIMEOUT
    assert "inter-chunk" in info.value.message
