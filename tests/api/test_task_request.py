"""TaskRequest: all 17 fields, their enums, and errors that name the field and the rule."""

from __future__ import annotations

from typing import Any

import pytest

from llorch_conformance.adapters.api import (
    DeterminismLevel,
    Engine,
    ErrorCode,
    InvalidTaskRequest,
    KVHint,
    PlacementMode,
    PlacementOverrides,
    Priority,
    TaskRequest,
    WorkerError,
    Workload,
)


def canonical(**over: Any) -> dict[str, Any]:
    """The canonical test request of the original crates, as a wire dict."""
    raw: dict[str, Any] = {
        "task_id": "t0",
        "session_id": "s0",
        "workload": "completion",
        "model_ref": "m:v0",
        "engine": "llamacpp",
        "ctx": 1,
        "priority": "interactive",
        "prompt": "hi",
        "max_tokens": 8,
        "deadline_ms": 1,
        "expected_tokens": 1,
    }
    raw.update(over)
    return raw


def test_all_seventeen_fields_round_trip() -> None:
    raw = canonical(
        seed=123,
        determinism="strict",
        sampler_profile_version="v1",
        inputs=["a", "b"],
        kv_hint="reuse",
        placement={"mode": "pin", "pin_pool_id": "p0", "allow_fallback": False},
    )
    req = TaskRequest.from_dict(raw)
    assert req.workload is Workload.COMPLETION
    assert req.engine is Engine.LLAMACPP
    assert req.priority is Priority.INTERACTIVE
    assert req.determinism is DeterminismLevel.STRICT
    assert req.kv_hint is KVHint.REUSE
    assert isinstance(req.placement, PlacementOverrides)
    assert req.placement.mode is PlacementMode.PIN
    assert req.inputs == ("a", "b")
    assert TaskRequest.from_dict(req.to_dict()) == req
    assert req.to_dict() == raw
    names = [f for f in TaskRequest.__dataclass_fields__ if f != "extra"]
    assert len(names) == 17


@pytest.mark.parametrize("engine", ["llamacpp", "vllm", "tgi", "triton", "openai", "mock"])
def test_engine_enum_is_extended_with_openai_and_mock(engine: str) -> None:
    assert TaskRequest.from_dict(canonical(engine=engine)).engine.value == engine


def test_optional_fields_are_skipped_on_the_wire() -> None:
    wire = TaskRequest.from_dict(canonical()).to_dict()
    for absent in ("seed", "determinism", "inputs", "kv_hint", "placement"):
        assert absent not in wire


@pytest.mark.parametrize(
    ("over", "field", "rule"),
    [
        ({"ctx": "x"}, "ctx", "must be an integer"),
        ({"ctx": 0}, "ctx", "between 1"),
        ({"ctx": 2**31}, "ctx", "between"),
        ({"max_tokens": -1}, "max_tokens", "between 1"),
        ({"deadline_ms": 0}, "deadline_ms", "between 1"),
        ({"workload": "chat"}, "workload", "one of: completion, embedding, rerank"),
        ({"engine": "ollama"}, "engine", "one of"),
        ({"priority": 1}, "priority", "one of"),
        ({"task_id": ""}, "task_id", "must not be empty"),
        ({"session_id": 5}, "session_id", "must be a string"),
        ({"model_ref": "ftp://x"}, "model_ref", "scheme"),
        ({"seed": 1.5}, "seed", "must be an integer"),
        ({"seed": True}, "seed", "must be an integer"),
        ({"expected_tokens": -2}, "expected_tokens", "between 0"),
        ({"inputs": "abc"}, "inputs", "list of strings"),
        ({"inputs": ["a", 3]}, "inputs[1]", "must be a string"),
        ({"kv_hint": "warm"}, "kv_hint", "one of: reuse, cold"),
        ({"determinism": "exact"}, "determinism", "one of: strict, best_effort"),
        ({"placement": {"mode": "pin"}}, "placement.pin_pool_id", "required when mode is pin"),
        ({"placement": {"bogus": 1}}, "placement.bogus", "not a known field"),
        ({"placement": {"allow_fallback": "yes"}}, "placement.allow_fallback", "boolean"),
        ({"prompt": None}, "prompt", "required for a completion"),
        ({"temperature": 0.2}, "temperature", "not a TaskRequest field"),
    ],
)
def test_invalid_request_names_field_and_rule(over: dict[str, Any], field: str, rule: str) -> None:
    raw = canonical(**over)
    if over.get("prompt", "") is None:
        raw.pop("prompt")
    with pytest.raises(InvalidTaskRequest) as info:
        TaskRequest.from_dict(raw)
    err = info.value
    assert err.field == field
    assert rule in err.rule
    assert field in str(err) and rule in str(err)
    # It is a WorkerError with the INVALID_PARAMS code, never retriable.
    assert isinstance(err, WorkerError)
    assert err.code is ErrorCode.INVALID_PARAMS
    assert err.retriable is False


@pytest.mark.parametrize("missing", ["task_id", "engine", "ctx", "max_tokens", "deadline_ms"])
def test_missing_required_field_is_named(missing: str) -> None:
    raw = canonical()
    del raw[missing]
    with pytest.raises(InvalidTaskRequest, match=missing) as info:
        TaskRequest.from_dict(raw)
    assert info.value.rule == "is required"


def test_non_object_is_refused() -> None:
    with pytest.raises(InvalidTaskRequest, match="JSON object"):
        TaskRequest.from_dict(["not", "a", "dict"])


def test_embedding_without_prompt_is_allowed() -> None:
    raw = canonical(workload="embedding")
    del raw["prompt"]
    assert TaskRequest.from_dict(raw).prompt is None


def test_direct_construction_validates_too() -> None:
    with pytest.raises(InvalidTaskRequest, match="ctx"):
        TaskRequest(
            task_id="t",
            session_id="s",
            workload=Workload.COMPLETION,
            model_ref="hf:org/repo",
            engine=Engine.VLLM,
            ctx=-5,
            priority=Priority.BATCH,
            max_tokens=1,
            deadline_ms=10,
            prompt="x",
        )
