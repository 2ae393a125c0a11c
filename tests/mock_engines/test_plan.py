"""The generation plan (the cross-dialect oracle), the tokenizer, profiles and fault parsing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.mock_engines import (
    FAULT_IDS,
    FaultRule,
    fault_catalogue,
    load_profile,
    make_plan,
    tokenize,
)
from llorch_conformance.mock_engines._faults import RuleState


def test_plan_is_deterministic_and_seed_sensitive() -> None:
    a = make_plan("Tell me a story", seed=1, max_tokens=40)
    b = make_plan("Tell me a story", seed=1, max_tokens=40)
    c = make_plan("Tell me a story", seed=2, max_tokens=40)
    assert a == b
    assert a.tokens != c.tokens
    assert len(a.tokens) == len(a.token_ids)
    assert a.text == "".join(a.tokens)


def test_greedy_ignores_the_seed() -> None:
    a = make_plan("x", seed=1, max_tokens=30, temperature=0.0)
    b = make_plan("x", seed=99, max_tokens=30, temperature=0.0)
    assert a.tokens == b.tokens


def test_length_and_eos_stop_reasons() -> None:
    short = make_plan("p", seed=3, max_tokens=2)
    assert short.stop_reason == "length"
    assert short.completion_tokens == 2
    free = make_plan("p", seed=3, max_tokens=None)
    assert free.stop_reason == "eos"
    assert 4 <= free.completion_tokens <= 96
    assert make_plan("p", seed=3, max_tokens=0).tokens == ()
    ignore = make_plan("p", seed=3, max_tokens=200, ignore_eos=True)
    assert ignore.stop_reason == "length" and ignore.completion_tokens == 200


def test_stop_string_is_excluded_and_counted() -> None:
    base = make_plan("a prompt", seed=5, max_tokens=60, ignore_eos=True)
    # pick a stop string that straddles a token boundary in the middle of the text
    k = len(base.tokens) // 2
    prefix_len = len("".join(base.tokens[:k]))
    stop = base.text[prefix_len - 1 : prefix_len + 2]
    plan = make_plan("a prompt", seed=5, max_tokens=60, ignore_eos=True, stop=[stop])
    assert plan.stop_reason == "stop"
    assert plan.stop_string == stop
    cut = base.text.find(stop)
    assert plan.text == base.text[:cut]
    assert stop not in plan.text
    assert plan.completion_tokens >= len(plan.tokens)
    assert plan.tokens[: k - 1] == base.tokens[: k - 1]


def test_vocabulary_reaches_multibyte_and_whitespace_tokens() -> None:
    plans = [make_plan(f"p{i}", seed=i, max_tokens=64, ignore_eos=True) for i in range(20)]
    toks = [t for p in plans for t in p.tokens]
    assert any(len(t.encode()) > len(t) for t in toks), "no multi-byte token"
    assert any(len(t.encode()) == 4 * len(t.strip()) and t.strip() for t in toks) or any(
        any(len(ch.encode()) == 4 for ch in t) for t in toks
    ), "no 4-byte character"
    assert any(t.isspace() for t in toks), "no whitespace-only token"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_tokenize_round_trips(text: str) -> None:
    pieces = tokenize(text)
    assert "".join(pieces) == text
    assert all(pieces)


@settings(max_examples=100, deadline=None)
@given(
    prompt=st.text(max_size=50),
    seed=st.integers(0, 2**32),
    max_tokens=st.integers(0, 80),
    stop=st.lists(st.text(min_size=1, max_size=3), max_size=2),
)
def test_plan_invariants(prompt: str, seed: int, max_tokens: int, stop: list[str]) -> None:
    plan = make_plan(prompt, seed=seed, max_tokens=max_tokens, stop=stop)
    assert plan.completion_tokens <= max_tokens
    assert len(plan.tokens) <= plan.completion_tokens
    assert all(plan.tokens), "no empty token is emitted"
    assert plan.prompt_tokens == len(tokenize(prompt))
    if plan.stop_reason == "stop":
        assert plan.stop_string in stop
    for s in stop:
        assert s not in plan.text
    assert plan == make_plan(prompt, seed=seed, max_tokens=max_tokens, stop=stop)


def test_builtin_and_file_profiles(tmp_path: Path) -> None:
    assert load_profile().name == "fast"
    assert not load_profile("fast").has_delays
    real = load_profile("realistic")
    assert real.itl_ms > 0 and real.ttft_ms > 0 and real.load_ms > 0
    y = tmp_path / "p.yaml"
    y.write_text("base: realistic\nitl_ms: 5\nslots: 2\n", encoding="utf-8")
    p = load_profile(y)
    assert (p.name, p.itl_ms, p.slots, p.ttft_ms) == ("p", 5, 2, real.ttft_ms)
    j = tmp_path / "q.json"
    j.write_text(json.dumps({"ttft_ms": 7}), encoding="utf-8")
    assert load_profile(j).ttft_ms == 7
    assert load_profile("fast", slots=3).slots == 3


@pytest.mark.parametrize(
    "content",
    ["itl: 5\n", "slots: 0\n", "- a list\n", "base: nope\n", "slots: many\n"],
    ids=["typo-key", "zero-slots", "not-a-mapping", "bad-base", "wrong-type"],
)
def test_bad_profiles_are_config_errors(tmp_path: Path, content: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_profile(f)


def test_unknown_profile_name() -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("warp-speed")


def test_step_offsets_follow_the_latency_model() -> None:
    p = load_profile("fast", ttft_ms=10, ttft_per_prompt_token_ms=1, itl_ms=4)
    offs = p.step_offsets(3, 5, [1, 1, 2], 0.0, None)
    assert offs == pytest.approx([0.015, 0.019, 0.027])
    slow = load_profile("fast", itl_ms=10, load_slowdown=1.0)
    assert slow.step_offsets(2, 0, [1, 1], 1.0, None)[1] == pytest.approx(0.020)
    jit = load_profile("fast", itl_ms=10, jitter_ms=3)
    a = jit.step_offsets(50, 0, [1] * 50, 0.0, random.Random(1))
    assert a == sorted(a)
    assert a == jit.step_offsets(50, 0, [1] * 50, 0.0, random.Random(1))


def test_fault_rule_parsing() -> None:
    r = FaultRule.parse("stall.midstream;after_events=3;delay_ms=10;first=2")
    assert r.id == "stall.midstream"
    assert r.params == {"after_events": 3, "delay_ms": 10}
    assert r.first == 2 and r.rate is None
    assert str(r) == "stall.midstream;after_events=3;delay_ms=10;first=2"
    assert FaultRule.parse("http.503").params == {}
    for bad in ("nope", "http.503;zzz=1", "stall.midstream;delay_ms=abc", "http.500;rate=2", "x;"):
        with pytest.raises(ConfigError):
            FaultRule.parse(bad)


def test_first_and_rate_selection_are_counted_and_seeded() -> None:
    first = RuleState(FaultRule.parse("http.500;first=2"), seed=0, position=0)
    assert [first.select() for _ in range(4)] == [True, True, False, False]
    draws = [RuleState(FaultRule.parse("http.500;rate=0.3"), seed=7, position=0) for _ in range(2)]
    seq = [[d.select() for _ in range(200)] for d in draws]
    assert seq[0] == seq[1]
    assert 30 <= sum(seq[0]) <= 90


def test_catalogue_has_every_fixed_id_once() -> None:
    expected = {
        "http.400", "http.401", "http.404", "http.422", "http.500", "http.503",
        "http.429_retry_after", "engine.loading", "engine.overload", "conn.port_closed",
        "conn.accept_then_close", "conn.slow_headers", "stall.before_first_byte",
        "stall.midstream", "midstream.disconnect", "midstream.disconnect_bytes",
        "midstream.cut_utf8", "frame.split_utf8", "frame.split_every_byte",
        "frame.malformed_json", "frame.missing_terminal", "frame.duplicate_index",
        "frame.out_of_order_index", "stream.error_event", "stream.keepalive_flood",
        "frame.oversized", "http.wrong_content_type",
    }  # fmt: skip
    assert set(FAULT_IDS) == expected and len(FAULT_IDS) == len(expected)
    cat = {s.id: s for s in fault_catalogue()}
    assert "llamacpp" in cat["frame.duplicate_index"].applies_to
    assert "vllm" not in cat["frame.duplicate_index"].applies_to
    assert "openai" not in cat["stream.keepalive_flood"].applies_to
    assert {"llamacpp", "vllm", "openai"} <= set(cat["midstream.disconnect"].applies_to)
    for spec in cat.values():
        assert spec.description
        assert spec.to_dict()["id"] == spec.id
