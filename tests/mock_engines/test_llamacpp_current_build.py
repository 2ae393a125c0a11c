"""Key sets of the llama.cpp mock follow a current llama-server build (drift check, b11434).

Each assertion is a drift the real-engine tier (``tests/real``, ``conformance.real``) found
between the mock and a real ``llama-server`` and that the mock now reproduces.
"""

from __future__ import annotations

import httpx

from llorch_conformance.mock_engines import run_mock_engine

TIMEOUT = 10.0


def test_llamacpp_mock_key_sets_match_a_current_build() -> None:
    with (
        run_mock_engine("llamacpp", seed=1) as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        props = c.get("/props").json()
        fresh = c.get("/slots").json()
        metrics = c.get("/metrics").text
        models = c.get("/v1/models").json()
        final = c.post("/completion", json={"prompt": "x", "n_predict": 2}).json()
        slots = c.get("/slots").json()
    # a slot that never had a task shows four keys; one that had a task shows that task
    assert [set(s) for s in fresh] == [{"id", "n_ctx", "speculative", "is_processing"}] * len(fresh)
    assert slots[0]["id_task"] >= 0 and slots[0]["is_processing"] is False
    assert "stop" not in slots[0]["params"] and "stop" in final["generation_settings"]
    assert "dry_sequence_breakers" not in props["default_generation_settings"]["params"]
    assert set(props["default_generation_settings"]) == {"params", "n_ctx"}
    for key in ("model_ftype", "media_marker", "ui", "ui_settings", "cors_proxy_enabled"):
        assert key in props
    assert props["modalities"] == {"vision": False, "video": False, "audio": False}
    assert props["chat_template_caps"]["supports_tool_calls"] is False
    assert isinstance(slots[0]["next_token"], list)
    assert set(slots[0]["next_token"][0]) == {
        "has_next_token",
        "has_new_line",
        "n_remain",
        "n_decoded",
    }
    assert slots[0]["n_prompt_tokens_cache"] == 0
    for series in (
        "prompt_tokens_cached_total",
        "spec_decode_num_draft_tokens_total",
        "spec_decode_num_accepted_tokens_total",
        "spec_decode_num_drafts_total",
    ):
        assert f"\nllamacpp:{series} " in metrics
    assert "# TYPE llamacpp:n_busy_slots_per_decode gauge" in metrics
    entry = models["data"][0]
    assert entry["aliases"] == [entry["id"]]
    assert entry["architecture"]["input_modalities"] == ["text"]
    assert {"n_ctx", "ftype"} <= set(entry["meta"])
    gs = final["generation_settings"]
    for key in (
        "dry_sequence_breakers",
        "xtc_threshold",
        "top_n_sigma",
        "chat_format",
        "reasoning_format",
        "grammar_triggers",
        "backend_sampling",
        "speculative.types",
    ):
        assert key in gs, key  # fmt: skip


def test_llamacpp_mock_context_and_metrics_switch_follow_b11434() -> None:
    """Over-long prompt: 400 exceed_context_size_error (plain JSON, also when streaming);
    ``n_predict: 0`` still samples one token; ``/metrics`` without ``--metrics`` is 501."""
    long_prompt = " ".join(["hello"] * 80)
    with (
        run_mock_engine("llamacpp", seed=1, ctx_size=64, metrics=False) as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        assert c.get("/props").json()["default_generation_settings"]["n_ctx"] == 64
        for path, body in (
            ("/completion", {"prompt": long_prompt, "stream": True}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": long_prompt}]}),
        ):
            r = c.post(path, json=body)
            assert (r.status_code, r.headers["content-type"]) == (
                400,
                "application/json; charset=utf-8",
            )
            err = r.json()["error"]
            assert err["type"] == "exceed_context_size_error"
            assert err["n_ctx"] == 64 and err["n_prompt_tokens"] >= 64
        zero = c.post("/completion", json={"prompt": "x", "n_predict": 0}).json()
        assert (zero["tokens_predicted"], zero["stop_type"]) == (1, "limit")
        assert zero["generation_settings"]["n_predict"] == 0
        m = c.get("/metrics")
        assert m.status_code == 501
        assert m.json()["error"]["type"] == "not_supported_error"
