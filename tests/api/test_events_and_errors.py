"""TokenEvent helpers, stream grammar, the WorkerError taxonomy and the mapping table."""

from __future__ import annotations

import pytest

from llorch_conformance.adapters.api import (
    ERROR_MAPPING,
    ConfigError,
    ConformanceFailure,
    ErrorCode,
    HarnessError,
    LlorchError,
    SSEDecodeError,
    TokenEvent,
    UpstreamCondition,
    UsageError,
    WorkerError,
    WorkerErrorKind,
    check_stream,
    error_for_condition,
    error_for_status,
    joined_text,
    mapping_for_status,
)


def good_stream() -> list[TokenEvent]:
    return [
        TokenEvent.started(engine_version="b1", seed=1),
        TokenEvent.token("He", 0),
        TokenEvent.token("llo", 1),
        TokenEvent.metrics(tokens_out=2),
        TokenEvent.end(tokens_out=2, decode_time_ms=3, stop_reason="length"),
    ]


def test_good_stream_conforms() -> None:
    assert check_stream(good_stream()) == []
    assert joined_text(good_stream()) == "Hello"


def test_error_first_stream_conforms() -> None:
    err = error_for_condition(UpstreamCondition.CONNECT_FAILED, "refused")
    assert check_stream([TokenEvent.error(err)]) == []


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda s: s[1:], "before 'started'"),
        (lambda s: s[:-1], "no terminal"),
        (lambda s: [*s, TokenEvent.token("x", 2)], "follows the terminal"),
        (lambda s: [s[0], s[2], s[1], *s[3:]], "token index 1, expected 0"),
        (lambda s: [s[0], s[1], s[1], *s[2:]], "token index 0, expected 1"),
        (lambda s: [*s[:-1], TokenEvent("end", {"tokens_out": 2})], "decode_time_ms"),
        (
            lambda s: [*s[:-1], TokenEvent("error", {"code": "NOPE", "retriable": True})],
            "ErrorKind",
        ),
        (
            lambda s: [*s[:-1], TokenEvent("error", {"code": "INTERNAL", "retriable": "no"})],
            "boolean",
        ),
        (lambda s: [*s[:2], TokenEvent("tok", {}), *s[2:]], "unknown kind"),
        (lambda s: [s[0], *s], "second 'started'"),
        (lambda s: [], "empty"),
    ],
    ids=[
        "no-started",
        "no-terminal",
        "after-terminal",
        "out-of-order",
        "duplicate",
        "end-missing-field",
        "bad-code",
        "bad-retriable",
        "unknown-kind",
        "double-started",
        "empty",
    ],
)
def test_grammar_violations_are_named(mutate: object, needle: str) -> None:
    problems = check_stream(mutate(good_stream()))  # type: ignore[operator]
    assert any(needle in p for p in problems), problems


def test_error_event_payload_shape() -> None:
    err = error_for_status(429, "upstream 429: slow down", retry_after_ms=1500)
    assert TokenEvent.error(err).data == {
        "code": "POOL_UNAVAILABLE",
        "retriable": True,
        "retry_after_ms": 1500,
        "message": "upstream 429: slow down",
    }
    assert "retry_after_ms" not in TokenEvent.error(error_for_status(400, "bad")).data


@pytest.mark.parametrize(
    ("status", "kind", "code", "retriable"),
    [
        (400, WorkerErrorKind.ADAPTER, ErrorCode.INVALID_PARAMS, False),
        (422, WorkerErrorKind.ADAPTER, ErrorCode.INVALID_PARAMS, False),
        (401, WorkerErrorKind.ADAPTER, ErrorCode.INTERNAL, False),
        (403, WorkerErrorKind.ADAPTER, ErrorCode.INTERNAL, False),
        (404, WorkerErrorKind.POOL_UNAVAILABLE, ErrorCode.POOL_UNAVAILABLE, False),
        (429, WorkerErrorKind.POOL_UNAVAILABLE, ErrorCode.POOL_UNAVAILABLE, True),
        (503, WorkerErrorKind.POOL_UNAVAILABLE, ErrorCode.POOL_UNAVAILABLE, True),
        (500, WorkerErrorKind.WORKER_RESET, ErrorCode.WORKER_RESET, True),
        (502, WorkerErrorKind.WORKER_RESET, ErrorCode.WORKER_RESET, True),
    ],
)
def test_status_mapping_follows_design_table(
    status: int, kind: WorkerErrorKind, code: ErrorCode, retriable: bool
) -> None:
    err = error_for_status(status, f"upstream {status}", retry_after_ms=2000)
    assert (err.kind, err.code, err.retriable) == (kind, code, retriable)
    assert err.upstream_status == status
    # retry_after_ms is only kept where the table says Retry-After applies
    assert (err.retry_after_ms == 2000) == (status in (429, 503))


def test_success_status_is_not_an_error() -> None:
    assert mapping_for_status(200) is None
    with pytest.raises(ValueError, match="not an error"):
        error_for_status(204, "fine")


def test_every_condition_has_exactly_one_row() -> None:
    assert sorted(r.condition.value for r in ERROR_MAPPING) == sorted(
        c.value for c in UpstreamCondition
    )


@pytest.mark.parametrize(
    ("cond", "code", "retriable"),
    [
        (UpstreamCondition.RESET, ErrorCode.WORKER_RESET, True),
        (UpstreamCondition.CONNECT_FAILED, ErrorCode.POOL_UNAVAILABLE, True),
        (UpstreamCondition.TIMEOUT, ErrorCode.DECODE_TIMEOUT, True),
        (UpstreamCondition.DEADLINE, ErrorCode.DEADLINE_UNMET, False),
        (UpstreamCondition.PROTOCOL, ErrorCode.INTERNAL, False),
        (UpstreamCondition.ADAPTER_BUG, ErrorCode.INTERNAL, False),
    ],
)
def test_condition_mapping(cond: UpstreamCondition, code: ErrorCode, retriable: bool) -> None:
    err = error_for_condition(cond, "x", retry_after_ms=5)
    assert err.code is code and err.retriable is retriable
    assert err.retry_after_ms is None  # Retry-After only matters for overload rows


def test_exception_tree_keeps_failures_and_errors_apart() -> None:
    assert issubclass(UsageError, HarnessError) and issubclass(ConfigError, HarnessError)
    assert not issubclass(ConformanceFailure, HarnessError)
    assert not issubclass(HarnessError, ConformanceFailure)
    for cls in (WorkerError, HarnessError, ConformanceFailure, SSEDecodeError):
        assert issubclass(cls, LlorchError)
    failure = ConformanceFailure("ADAPT-3001", "unknown event kind", "saw 'tok'")
    assert str(failure) == "ADAPT-3001: unknown event kind — saw 'tok'"
    assert failure.requirement == "ADAPT-3001"


def test_error_round_trips_through_event_data() -> None:
    err = error_for_status(503, "loading", retry_after_ms=700)
    back = WorkerError.from_event_data(TokenEvent.error(err).data)
    assert (back.kind, back.code, back.retriable, back.retry_after_ms, back.message) == (
        err.kind,
        err.code,
        err.retriable,
        err.retry_after_ms,
        err.message,
    )
    odd = WorkerError.from_event_data({"code": "NOPE", "retriable": "yes", "retry_after_ms": True})
    assert odd.code is ErrorCode.INTERNAL and odd.retriable is False and odd.retry_after_ms is None
