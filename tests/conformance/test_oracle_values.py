"""The independent oracle (steps._oracle) and the value checks (steps._values), as pure functions.

The scenarios exercise them against real adapters; these tests pin the rules themselves: a task
seed never equals the engine's, the expected plan follows the task (not a request), every task
field an adapter can drop or change is reported, and each value rule rejects what it must.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from llorch_conformance.adapters.api import TaskRequest
from llorch_conformance.mock_engines import chat_prompt, make_plan
from llorch_conformance.steps._oracle import derive_task_seed, expected_plan, forwarded_problems
from llorch_conformance.steps._values import (
    count_problems,
    log_value_problems,
    metrics_problems,
    secret_shaped,
    version_matches,
)


def _task(**extra_fields: object) -> TaskRequest:
    fields = {
        "task_id": "t-1",
        "session_id": "s-1",
        "workload": "completion",
        "model_ref": "hf:x/y",
        "engine": "vllm",
        "ctx": 4096,
        "priority": "interactive",
        "max_tokens": 24,
        "deadline_ms": 30_000,
        "prompt": "Write a haiku about rivers",
        "seed": 1234,
    }
    extra = extra_fields.pop("extra", None)
    fields.update(extra_fields)
    task = TaskRequest.from_dict(fields)
    return dataclasses.replace(task, extra=extra) if extra else task


@pytest.mark.parametrize("run_seed", [0, 1, 7, 2**31 - 1])
def test_task_seeds_never_equal_the_engine_seed_and_vary_per_scenario(run_seed: int) -> None:
    seeds = {derive_task_seed(run_seed, f"scenario-{n}") for n in range(200)}
    assert run_seed not in seeds
    assert len(seeds) > 190  # distinct per scenario
    assert derive_task_seed(run_seed, "a") == derive_task_seed(run_seed, "a")  # stable
    assert all(1 <= s < 2**31 for s in seeds)


def test_expected_plan_follows_the_task_not_the_engine_default() -> None:
    task = _task()
    plan = expected_plan(task, "vllm", engine_seed=0)
    assert plan.tokens == make_plan(task.prompt or "", seed=1234, max_tokens=24).tokens
    assert plan.tokens != make_plan(task.prompt or "", seed=0, max_tokens=24).tokens


def test_expected_plan_applies_stop_strict_tgi_greedy_and_engine_params() -> None:
    base = expected_plan(_task(max_tokens=64), "vllm", 0)
    stop = base.text[base.text.index(base.tokens[3]) :][:3]
    stopped = expected_plan(_task(max_tokens=64, extra={"stop": [stop]}), "vllm", 0)
    assert stopped.stop_reason == "stop" and len(stopped.tokens) < len(base.tokens)
    strict = expected_plan(_task(determinism="strict"), "vllm", 0)
    other_seed = expected_plan(_task(determinism="strict", seed=99), "vllm", 0)
    assert strict.tokens == other_seed.tokens  # greedy ignores the seed
    tgi = expected_plan(_task(), "tgi", 0)
    assert tgi.tokens == strict.tokens  # TGI decodes greedily unless asked to sample
    long = expected_plan(
        _task(max_tokens=150, extra={"engine_params": {"ignore_eos": True}}), "vllm", 0
    )
    assert len(long.tokens) == 150 and long.stop_reason == "length"


def test_a_chat_task_plans_like_its_message() -> None:
    chat = expected_plan(_task(extra={"endpoint": "chat"}), "openai", 0)
    assert chat.tokens == expected_plan(_task(), "openai", 0).tokens
    assert str(chat.prompt) == str(chat_prompt([{"role": "user", "content": _task().prompt}]))


def _parsed(task: TaskRequest, **changes: object) -> object:
    plan = expected_plan(task, "vllm", 0)
    return dataclasses.replace(plan, **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 25}, "max_tokens"),
        ({"seed": 0}, "seed"),
        ({"prompt": "Write a"}, "prompt"),
        ({"stop": ()}, "stop"),
    ],
)
def test_forwarded_problems_name_the_field(changes: dict[str, object], field: str) -> None:
    task = _task(extra={"stop": ["xyz"]})
    assert forwarded_problems(task, _parsed(task), "vllm") == []
    problems = forwarded_problems(task, _parsed(task, **changes), "vllm")
    assert [p.field for p in problems] == [field]


def test_forwarded_problems_see_missing_greedy_and_engine_params() -> None:
    strict = _task(determinism="strict")
    assert [
        p.field for p in forwarded_problems(strict, _parsed(strict, temperature=None), "vllm")
    ] == ["temperature (strict)"]
    params = _task(extra={"engine_params": {"ignore_eos": True}})
    problems = forwarded_problems(params, _parsed(params, ignore_eos=False), "vllm")
    assert [p.field for p in problems] == ["engine_params.ignore_eos"]


def test_count_problems() -> None:
    good = {"tokens_out": 3, "decode_time_ms": 0, "usage": {"completion_tokens": 3}}
    assert count_problems("end", good, 3) == []
    assert count_problems("end", {**good, "tokens_out": 4}, 3)
    assert count_problems("end", {**good, "tokens_out": -1}, 3)
    assert count_problems("end", {**good, "decode_time_ms": -5}, 3)
    assert count_problems("end", {**good, "usage": {"prompt_tokens": -1}}, 3)
    assert count_problems("error", {"tokens_out": 2}, 3)
    assert count_problems("error", {"code": "INTERNAL"}, 3) == []


def test_metrics_problems() -> None:
    ok = {"latency_first_token_ms": 4, "latency_decode_ms": 1.5, "tokens_out": 3}
    assert metrics_problems(ok, 3) == []
    assert metrics_problems({**ok, "latency_first_token_ms": "4"}, 3)
    assert metrics_problems({**ok, "latency_first_token_ms": None}, 3)
    assert metrics_problems({"latency": ok}, 3)
    assert metrics_problems({**ok, "tokens_out": 9}, 3)
    assert metrics_problems({"kv_warmth": True, "human": "warm", "prep": {}}, 0) == []
    assert metrics_problems({"on_time_probability": 1.5}, 0)


def test_version_matches() -> None:
    assert version_matches("0.11.0", ["0.11.0"])
    assert version_matches("3.3.6+db931fc", ["3.3.6"])  # the engine's build hash
    assert not version_matches("3.3.6+2", ["3.3.6"])
    assert not version_matches("vllm", ["0.11.0"])
    assert version_matches("gpt-4o-mini@2020-10-01", ["gpt-4o-mini", "gpt-4o-mini@2020-10-01"])
    assert not version_matches(None, ["0.11.0"])


def test_log_value_problems() -> None:
    common = {
        "task_id": "t-1",
        "session_id": "s-1",
        "engines": ["vllm"],
        "engine_versions": ["0.11.0"],
        "delivered": 5,
        "prompt_tokens": 6,
    }
    good = {
        "job_id": "t-1",
        "session_id": "s-1",
        "engine": "vllm",
        "engine_version": "0.11.0",
        "tokens_out": 5,
        "tokens_in": 6,
        "decode_time_ms": 3,
        "pool_id": "p",
        "replica_id": "r",
    }
    assert log_value_problems(good, **common) == []  # type: ignore[arg-type]
    for bad in (
        {"job_id": "s-1"},
        {"tokens_out": 24},
        {"tokens_in": 7},
        {"decode_time_ms": "3ms"},
        {"engine_version": "vllm"},
        {"pool_id": ""},
    ):
        assert log_value_problems({**good, **bad}, **common), bad  # type: ignore[arg-type]
    assert log_value_problems({**good, "tokens_in": None}, **common) == []  # type: ignore[arg-type]


def test_secret_shaped_uses_the_redactors_patterns() -> None:
    record = logging.LogRecord("x", logging.INFO, "x", 0, "msg", None, None)
    assert secret_shaped([record.getMessage(), "tokens_out=5 max_tokens=8"]) == []
    found = secret_shaped(["calling with Authorization: Bearer abcdefghijklmnop123"])
    assert found and "abcdefghijklmnop123" not in found[0]
    assert secret_shaped(["api_key=sk-0123456789abcdef0123"])
    assert secret_shaped(["already masked: Bearer ****9f86d0"]) == []
