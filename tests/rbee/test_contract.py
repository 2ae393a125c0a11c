"""The rbee worker contract as data: validators, recency, timestamps, statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llorch_conformance.adapters.rbee_worker import (
    BadInferRequest,
    HeartbeatAck,
    InferRequest,
    InferResponse,
    WorkerHeartbeat,
    WorkerInfo,
    WorkerStatus,
    format_rfc3339,
    is_recent,
    parse_rfc3339_utc,
)

INFO = {
    "id": "worker-abc123",
    "model_id": "meta-llama/Llama-2-7b",
    "device": "GPU-0",
    "port": 9301,
    "status": "ready",
    "implementation": "llm-worker-rbee",
    "version": "0.1.0",
}


def test_worker_info_round_trips_in_declaration_order() -> None:
    info = WorkerInfo.from_dict(INFO)
    assert list(info.to_dict()) == list(INFO)
    assert info.to_dict() == INFO


@pytest.mark.parametrize("field", list(INFO))
def test_every_worker_info_field_is_required(field: str) -> None:
    raw = {k: v for k, v in INFO.items() if k != field}
    with pytest.raises(BadInferRequest, match=field):
        WorkerInfo.from_dict(raw)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 70000),
        ("port", "9301"),
        ("port", True),
        ("status", "Ready"),
        ("status", "idle"),
        ("id", ""),
        ("version", 1),
    ],
)
def test_worker_info_types(field: str, value: object) -> None:
    with pytest.raises(BadInferRequest):
        WorkerInfo.from_dict({**INFO, field: value})


def test_status_vocabulary_and_availability() -> None:
    assert [s.value for s in WorkerStatus] == ["starting", "ready", "busy", "stopping", "stopped"]
    # The shared helper's rule (reference §9 item 10): busy IS available; the stale test is wrong.
    assert {s for s in WorkerStatus if s.is_available} == {WorkerStatus.READY, WorkerStatus.BUSY}
    assert {s for s in WorkerStatus if s.is_stopped} == {
        WorkerStatus.STOPPING,
        WorkerStatus.STOPPED,
    }


@pytest.mark.parametrize(
    ("age", "recent"),
    [(0.0, True), (89.0, True), (89.999, True), (90.0, False), (90.5, False), (91.0, False)],
)
def test_recency_is_whole_seconds_strict(age: float, recent: bool) -> None:
    assert is_recent(age, 90) is recent


def test_recency_resolution_scales_for_tests() -> None:
    assert is_recent(0.29, 0.3, resolution_s=0.01)
    assert not is_recent(0.3, 0.3, resolution_s=0.01)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.123456Z",
        "2026-01-02T03:04:05+00:00",
        "2026-01-02t03:04:05z",
    ],
)
def test_rfc3339_utc_accepted(text: str) -> None:
    assert parse_rfc3339_utc(text).tzinfo is not None


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02T03:04:05",
        "2026-01-02 03:04:05Z",
        "2026-01-02T03:04:05+02:00",
        "yesterday",
        1700000000,
    ],
)
def test_rfc3339_non_utc_refused(text: object) -> None:
    with pytest.raises(BadInferRequest):
        parse_rfc3339_utc(text)


def test_heartbeat_wire_form() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    hb = WorkerHeartbeat(WorkerInfo.from_dict(INFO), ts)
    wire = hb.to_dict()
    assert wire == {"worker": INFO, "timestamp": "2026-01-02T03:04:05.006000Z"}
    assert WorkerHeartbeat.from_dict(wire) == hb
    assert format_rfc3339(ts + timedelta(hours=0)) == wire["timestamp"]


def test_ack_shapes() -> None:
    assert HeartbeatAck.success("x").to_dict() == {"status": "ok", "message": "x"}
    assert HeartbeatAck.from_dict({"status": "error", "message": "no"}).ok is False
    with pytest.raises(BadInferRequest):
        HeartbeatAck.from_dict({"status": "fine"})


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"prompt": 1},
        {"prompt": None},
        {"prompt": "x", "max_tokens": 0},
        {"prompt": "x", "max_tokens": 4097},
        {"prompt": "x", "max_tokens": 1.0},
        {"prompt": "x", "max_tokens": True},
        {"prompt": "x", "temperature": 2.01},
        {"prompt": "x", "temperature": -0.01},
        {"prompt": "x", "temperature": float("nan")},
        {"prompt": "x", "temperature": "0.5"},
        {"prompt": "x", "stream": 1},
        ["prompt"],
    ],
)
def test_infer_request_refuses(raw: object) -> None:
    with pytest.raises(BadInferRequest):
        InferRequest.from_dict(raw)


def test_infer_request_defaults_and_unknown_fields() -> None:
    req = InferRequest.from_dict({"prompt": "hi", "seed": 3})
    assert (req.max_tokens, req.temperature, req.stream) == (None, None, False)
    assert req.to_dict() == {"prompt": "hi"}


@given(
    prompt=st.text(max_size=50),
    max_tokens=st.none() | st.integers(1, 4096),
    temperature=st.none() | st.floats(0.0, 2.0),
    stream=st.booleans(),
)
def test_valid_infer_requests_round_trip(
    prompt: str, max_tokens: int | None, temperature: float | None, stream: bool
) -> None:
    req = InferRequest(prompt, max_tokens, temperature, stream)
    assert InferRequest.from_dict(req.to_dict()) == req


def test_infer_response_requires_unsigned_counts() -> None:
    assert (
        InferResponse.from_dict({"text": "a", "tokens_generated": 1, "duration_ms": 0}).text == "a"
    )
    with pytest.raises(BadInferRequest):
        InferResponse.from_dict({"text": "a", "tokens_generated": -1, "duration_ms": 0})
    with pytest.raises(BadInferRequest):
        InferResponse.from_dict({"text": "a", "tokens_generated": 1})
