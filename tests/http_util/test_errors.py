"""Retry-After parsing, status helpers and the mapping of responses/exceptions to WorkerError."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llorch_conformance.adapters.api import (
    ErrorCode,
    SSEDecodeError,
    UsageError,
    WorkerError,
    WorkerErrorKind,
    mapping_for_status,
)
from llorch_conformance.adapters.http_util import (
    error_from_exception,
    error_from_response,
    is_non_retriable_status,
    is_retriable_status,
    parse_retry_after,
    retry_after_from_headers,
)

NOW = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("120", 120_000),
        ("  5  ", 5_000),
        ("0", 0),
        ("1.5", 1_500),
        ("0.25", 250),
        ("Sun, 22 Nov 2026 07:00:30 GMT", 30_000),
        ("Sunday, 22-Nov-26 07:01:00 GMT", 60_000),  # RFC 850 form
        ("Sun Nov 22 07:00:10 2026", 10_000),  # asctime form
        ("Sun, 22 Nov 2026 06:00:00 GMT", 0),  # in the past: retry now
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("1e400", None),
        ("nan", None),
        ("12abc", None),
        ("Sun, 99 Foo 2026", None),
    ],
)
def test_parse_retry_after(value: str | None, ms: int | None) -> None:
    assert parse_retry_after(value, now=NOW) == ms


def test_retry_after_ms_header_wins_and_ratelimit_reset_is_not_a_retry_after() -> None:
    assert retry_after_from_headers({"retry-after-ms": "250", "retry-after": "9"}) == 250
    assert retry_after_from_headers({"retry-after-ms": "junk", "retry-after": "9"}) == 9000
    assert retry_after_from_headers({"x-ratelimit-reset-requests": "1s"}) is None


def test_status_helpers_match_the_original_sets() -> None:
    assert [s for s in range(100, 600) if is_non_retriable_status(s)] == [400, 401, 403, 404, 422]
    assert [s for s in range(100, 600) if is_retriable_status(s)] == [429, *range(500, 600)]
    assert not is_retriable_status(409) and not is_non_retriable_status(409)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error":{"message":"Rate limit reached for gpt","type":"x","code":null}}',
            "Rate limit reached for gpt",
        ),  # OpenAI / vLLM / llama.cpp
        (
            b'{"error":"Model is overloaded","error_type":"overloaded"}',
            "Model is overloaded",
        ),  # TGI
        (b'{"error":"failed to infer"}', "failed to infer"),  # Triton
        (b'{"object":"error","message":"old vllm","type":"x"}', "old vllm"),
        (b'{"detail":"Not Found"}', "Not Found"),
        (b'{"detail":[{"msg":"field required"},{"msg":"bad int"}]}', "field required; bad int"),
        (b"Failed to deserialize the JSON body\nline two", "Failed to deserialize the JSON body"),
        (b"", "Too Many Requests"),
        (b"{not json", "{not json"),
        ('{"error":"caf\u00e9 \u2028 ok"}', "caf\u00e9 ok"),
    ],
)
def test_error_message_from_engine_envelopes(body: bytes | str, message: str) -> None:
    err = error_from_response(429, {}, body)
    assert err.message == f"upstream 429: {message}"


def test_error_from_response_follows_the_mapping_table() -> None:
    for status in (400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504):
        err = error_from_response(status, {"Retry-After": "3"}, b"")
        row = mapping_for_status(status)
        assert row is not None
        assert (err.kind, err.code, err.retriable) == (row.kind, row.code, row.retriable)
        assert err.upstream_status == status
        assert err.retry_after_ms == (3000 if row.uses_retry_after else None)


def test_error_message_is_redacted_and_short() -> None:
    body = (
        '{"error":{"message":"bad key sk-abcdefghijklmnopqrstu and Bearer t0ken123 '
        + "x" * 500
        + '"}}'
    )
    err = error_from_response(401, httpx.Headers({}), body, secrets=["t0ken123"])
    assert "sk-abcdefghijklmnopqrstu" not in err.message and "t0ken123" not in err.message
    assert len(err.message) <= 200
    assert err.message.startswith("upstream 401: bad key ****")


def test_error_from_response_refuses_success_statuses() -> None:
    with pytest.raises(UsageError):
        error_from_response(200, {}, b"")


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.anyio
async def test_real_connection_refused_maps_to_pool_unavailable() -> None:
    url = f"http://127.0.0.1:{_refused_port()}/"
    with anyio.fail_after(5):
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError) as info:
                await client.get(url)
    err = error_from_exception(info.value, stage="connect")
    assert err.kind is WorkerErrorKind.POOL_UNAVAILABLE and err.retriable
    assert err.message.startswith("connect: ConnectError:")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("exc", "stage", "kind", "retriable"),
    [
        (httpx.ConnectError("Name or service not known"), "connect", "POOL_UNAVAILABLE", True),
        (httpx.ConnectTimeout("timed out"), "connect", "POOL_UNAVAILABLE", True),
        (socket.gaierror(-2, "Name or service not known"), "connect", "POOL_UNAVAILABLE", True),
        (ConnectionRefusedError(111, "refused"), "connect", "POOL_UNAVAILABLE", True),
        (httpx.ReadTimeout("timed out"), "first_byte", "DECODE_TIMEOUT", True),
        (httpx.PoolTimeout("no connection"), "first_byte", "DECODE_TIMEOUT", True),
        (TimeoutError(), "stream", "DECODE_TIMEOUT", True),
        (httpx.RemoteProtocolError("peer closed connection"), "stream", "WORKER_RESET", True),
        (httpx.ReadError("reset by peer"), "stream", "WORKER_RESET", True),
        (ConnectionResetError(104, "reset"), "stream", "WORKER_RESET", True),
        (anyio.EndOfStream(), "stream", "WORKER_RESET", True),
        (httpx.LocalProtocolError("bad header"), "first_byte", "INTERNAL", False),
        (httpx.UnsupportedProtocol("ftp"), "connect", "INTERNAL", False),
        (SSEDecodeError("line too long"), "stream", "ADAPTER", False),
        (ValueError("bug"), "stream", "INTERNAL", False),
    ],
)
def test_exception_mapping(exc: BaseException, stage: str, kind: str, retriable: bool) -> None:
    err = error_from_exception(exc, stage=stage)  # type: ignore[arg-type]
    assert err.kind is WorkerErrorKind(kind)
    assert err.retriable is retriable


def test_tls_refusal_is_not_retriable() -> None:
    try:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed")
        except ssl.SSLError as inner:
            raise httpx.ConnectError("certificate verify failed") from inner
    except httpx.ConnectError as exc:
        err = error_from_exception(exc, stage="connect")
    assert err.kind is WorkerErrorKind.ADAPTER and err.code is ErrorCode.INTERNAL
    assert not err.retriable


def test_worker_error_passes_unchanged_and_messages_are_redacted() -> None:
    original = WorkerError(WorkerErrorKind.INTERNAL, "x")
    assert error_from_exception(original, stage="stream") is original
    err = error_from_exception(
        httpx.ConnectError("proxy http://user:hunter22@proxy:3128 refused"), stage="connect"
    )
    assert "hunter22" not in err.message and "****" in err.message


@settings(deadline=None)
@given(value=st.one_of(st.none(), st.text(max_size=40)))
def test_parse_retry_after_never_raises_and_is_never_negative(value: str | None) -> None:
    ms = parse_retry_after(value, now=NOW)
    assert ms is None or (isinstance(ms, int) and ms >= 0)


@settings(deadline=None)
@given(
    status=st.integers(min_value=400, max_value=599),
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300)),
    retry_after=st.one_of(st.none(), st.text(max_size=20)),
)
def test_error_from_response_total_on_arbitrary_input(
    status: int, body: bytes | str, retry_after: str | None
) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    err = error_from_response(status, headers, body)
    assert err.message.startswith(f"upstream {status}: ") and len(err.message) <= 200
    assert err.retry_after_ms is None or err.retry_after_ms >= 0
