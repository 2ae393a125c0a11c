"""Logs and metrics: contract names and labels, cardinality budgets, redaction, no per-token lines."""

from __future__ import annotations

import logging

from llorch_conformance.adapters._observability import (
    LOG_FIELDS,
    AdapterMetrics,
    JsonLogFormatter,
    LabelBudget,
    log_event,
)

from .conftest import LogCapture


def test_metric_names_and_labels_follow_the_contract() -> None:
    m = AdapterMetrics()
    labels = {
        "engine": "vllm",
        "engine_version": "0.10.1",
        "pool_id": "p",
        "replica_id": "r",
        "priority": "batch",
    }
    m.started(labels)
    m.canceled(labels, "client")
    m.rejected("vllm", "POOL_UNAVAILABLE")
    m.rejected("vllm", "WORKER_RESET")  # not a rejection reason of the contract: not counted
    m.finished(labels, tokens_in=3, tokens_out=5, first_token_ms=12.0, decode_ms=40.0)
    text = m.exposition().decode()
    assert (
        'tasks_started_total{engine="vllm",engine_version="0.10.1",pool_id="p",priority="batch",replica_id="r"} 1.0'
        in text
    )
    assert 'tasks_rejected_total{engine="vllm",reason="POOL_UNAVAILABLE"} 1.0' in text
    assert "WORKER_RESET" not in text
    assert (
        'tokens_out_total{engine="vllm",engine_version="0.10.1",pool_id="p",replica_id="r"} 5.0'
        in text
    )
    assert (
        'tokens_in_total{engine="vllm",engine_version="0.10.1",pool_id="p",replica_id="r"} 3.0'
        in text
    )
    assert (
        'latency_first_token_ms_bucket{engine="vllm",engine_version="0.10.1",le="50.0",pool_id="p",priority="batch"} 1.0'
        in text
    )
    assert (
        'tasks_canceled_total{engine="vllm",engine_version="0.10.1",pool_id="p",reason="client",replica_id="r"} 1.0'
        in text
    )
    # tasks_rejected_total carries exactly engine and reason (the normative exception).
    fam = next(f for f in m.registry.collect() if f.name == "tasks_rejected")
    assert {tuple(sorted(s.labels)) for s in fam.samples if s.name.endswith("_total")} == {
        ("engine", "reason")
    }


def test_private_registries_do_not_collide() -> None:
    a, b = AdapterMetrics(), AdapterMetrics()
    a.rejected("tgi", "INVALID_PARAMS")
    assert b"tasks_rejected_total{" not in b.exposition()


def test_label_budget_folds_new_values_into_other() -> None:
    budget = LabelBudget({"pool_id": 3})
    assert [budget.value("pool_id", v) for v in ("a", "b", "c", "d", "a")] == [
        "a",
        "b",
        "other",
        "other",
        "a",
    ]
    assert budget.distinct("pool_id") == 3
    m = AdapterMetrics(
        budgets={
            "engine": 6,
            "engine_version": 2,
            "pool_id": 256,
            "replica_id": 1024,
            "priority": 8,
            "reason": 16,
        }
    )
    for v in ("v1", "v2", "v3"):
        m.started(
            {
                "engine": "tgi",
                "engine_version": v,
                "pool_id": "p",
                "replica_id": "r",
                "priority": "batch",
            }
        )
    text = m.exposition().decode()
    assert 'engine_version="v1"' in text and 'engine_version="other"' in text
    assert 'engine_version="v3"' not in text


def test_log_event_has_readme_llm_fields_and_redacts() -> None:
    cap = LogCapture()
    logger = logging.getLogger("llorch.adapters.test-obs")
    logger.addHandler(cap)
    logger.setLevel(logging.INFO)
    try:
        log_event(
            logger,
            logging.INFO,
            "error",
            "upstream said Authorization: Bearer sk-live-1234567890abcdef",
            secrets=("hunter2-secret",),
            job_id="j1",
            engine="openai",
            detail="token hunter2-secret leaked",
        )
    finally:
        logger.removeHandler(cap)
    record = cap.records[0]
    payload = record.llorch  # type: ignore[attr-defined]
    for name in LOG_FIELDS:
        assert name in payload
    assert payload["job_id"] == "j1" and payload["action"] == "error"
    rendered = JsonLogFormatter().format(record)
    assert "sk-live-1234567890abcdef" not in rendered
    assert "hunter2-secret" not in rendered
    assert "****" in rendered
