"""Synthetic run results shaped like the step library's evidence (steps/_context.py)."""

from __future__ import annotations

from typing import Any

from llorch_conformance.conformance._results import RunResults, ScenarioResult

T0 = 1000.0  # a monotonic clock value for the synthetic streams


def stream(
    tokens: list[str], *, t_first: float = 12.0, gap: float = 2.0, decode: int = 30
) -> dict[str, Any]:
    transcript: list[dict[str, Any]] = [
        {"t_ms": 1.0, "kind": "started", "data": {"engine": "llamacpp"}}
    ]
    t = t_first
    for i, tok in enumerate(tokens):
        transcript.append({"t_ms": t, "kind": "token", "data": {"t": tok, "i": i}})
        t += gap
    transcript.append(
        {"t_ms": t, "kind": "end", "data": {"tokens_out": len(tokens), "decode_time_ms": decode}}
    )
    return {
        "transcript": transcript,
        "raised": None,
        "hung": False,
        "duration_ms": t + 1.0,
        "tokens_after_cancel": 0,
        "t0": T0,
    }


def journal_entry(
    *, ttfb_ms: float = 4.0, frames: list[str] | None = None, status: int = 200
) -> dict[str, Any]:
    rx = T0 + 0.002
    return {
        "id": 1,
        "method": "POST",
        "path": "/completion",
        "query": "",
        "headers": [["authorization", "Bearer ****9f86d0"], ["content-type", "application/json"]],
        "body": '{"prompt":"hello","n_predict":8,"stream":true,"seed":7}',
        "generation": True,
        "status": status,
        "t_received": rx,
        "t_first_byte": rx + ttfb_ms / 1000.0,
        "fault": None,
        "disconnected": False,
        "frames": frames if frames is not None else ['data: {"content":"Hel","stop":false}\n\n'],
    }


def evidence(tokens: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "target": {
            "name": "llamacpp",
            "dialect": "llamacpp",
            "origin": "builtin",
            "spec": "",
            "engine_url": None,
        },
        "seed": 7,
        "faults": [],
        "request": {"task_id": "t-0123456789ab", "prompt": "hello"},
        "streams": [stream(tokens if tokens is not None else ["Hel", "lo", "!"])],
        "retry_timelines": [
            [
                {
                    "attempt": 1,
                    "delay_ms": 80,
                    "reason": "upstream 503",
                    "code": "POOL_UNAVAILABLE",
                    "status": 503,
                    "retry_after_ms": None,
                    "at_s": 0.01,
                }
            ]
        ],
        "journal": [journal_entry()],
        "notes": {"surface": {"engine_version": "b6710-mock"}},
        "logs": [
            {"level": "INFO", "logger": "llorch.adapters.llamacpp", "message": "stream started"}
        ],
    }
    ev.update(extra)
    return ev


def scenario(
    name: str,
    status: str = "pass",
    *,
    adapter: str = "llamacpp",
    reqs: tuple[str, ...] = ("ADAPT-3001",),
    message: str = "",
    ev: dict[str, Any] | None = None,
    feature: str = "/src/features/stream/grammar.feature",
) -> ScenarioResult:
    return ScenarioResult(
        nodeid=f"steps/_suite.py::test_{name.replace(' ', '_')}[{adapter}]",
        feature=feature,
        scenario=name,
        adapter=adapter,
        dialect=adapter if adapter != "*" else None,
        requirements=list(reqs),
        status=status,  # type: ignore[arg-type]
        duration_s=0.25,
        message=message,
        failed_requirements=list(reqs) if status == "fail" else [],
        evidence=ev if ev is not None else evidence(),
    )


def results(
    *scenarios: ScenarioResult, run_id: str = "20260101-000000-abcdef12", seed: int = 7
) -> RunResults:
    if not scenarios:
        scenarios = (
            scenario("streams tokens in order"),
            scenario("streams tokens in order", adapter="vllm"),
        )
    names = sorted({s.adapter for s in scenarios if s.adapter != "*"})
    return RunResults(
        run_id=run_id,
        seed=seed,
        target={
            "targets": [
                {
                    "name": n,
                    "dialect": n,
                    "origin": "builtin",
                    "spec": f"llorch_conformance.adapters.BUILTIN_ADAPTERS[{n!r}]",
                    "engine_url": None,
                }
                for n in names
            ],
            "requirements": [],
        },
        level="should",
        started_at="2026-01-01T00:00:00Z",
        wall_time_s=1.5,
        scenarios=list(scenarios),
    )


def all_statuses() -> RunResults:
    return results(
        scenario("passes", "pass", reqs=("ADAPT-3001", "WA-INT-3001")),
        scenario(
            "fails", "fail", reqs=("ADAPT-3002",), message="ADAPT-3002: wrong code — got INTERNAL"
        ),
        scenario(
            "is unsupported",
            "unsupported",
            reqs=("WA-INT-3002",),
            message="adapter declares 'cancel' unsupported",
        ),
        scenario("is skipped", "skipped", reqs=("HTU-1005",), message="not applicable"),
        scenario(
            "errors",
            "error",
            adapter="vllm",
            reqs=("ADAPT-3005",),
            message="HarnessError: engine did not start",
        ),
        scenario(
            "runs once", "pass", adapter="*", reqs=("OC-TEST-7003",), ev={"seed": 7, "notes": {}}
        ),
    )
