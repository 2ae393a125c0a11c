"""Given steps: the task, the engine's faults, the adapter's configuration, the environment."""

from __future__ import annotations

import json
import secrets as _secrets
from typing import Any

from pytest_bdd import given, parsers

from llorch_conformance.adapters.api import HarnessError

from ._context import ScenarioContext


@given(parsers.parse('a completion of {n:d} tokens for prompt "{prompt}"'))
def completion_task(llorch_ctx: ScenarioContext, n: int, prompt: str) -> None:
    llorch_ctx.request_fields.update({"max_tokens": n, "prompt": prompt})


@given(parsers.parse("the task seed is {seed:d}"))
def task_seed(llorch_ctx: ScenarioContext, seed: int) -> None:
    llorch_ctx.request_fields["seed"] = seed


@given(parsers.parse("the task asks for the {endpoint} endpoint"))
def task_endpoint(llorch_ctx: ScenarioContext, endpoint: str) -> None:
    """``TaskRequest.extra["endpoint"]``: ``chat`` (messages) or ``completions`` (prompt)."""
    llorch_ctx.request_extra["endpoint"] = endpoint


@given(parsers.parse("the task passes engine parameters '{params}'"))
def task_engine_params(llorch_ctx: ScenarioContext, params: str) -> None:
    """``TaskRequest.extra["engine_params"]``: engine fields the contract has no field for."""
    try:
        value = json.loads(params)
    except ValueError as exc:
        raise HarnessError(f"engine parameters in a feature are not JSON: {exc}") from None
    llorch_ctx.request_extra["engine_params"] = value


@given("the task stops at a sequence its plan contains")
def task_stop_sequence(llorch_ctx: ScenarioContext) -> None:
    """Stop sequences through ``TaskRequest.extra["stop"]``: one that occurs in the middle of the
    task's own plan (it spans a token boundary, so an adapter that only compares whole tokens
    misses it) and one that never occurs. Chosen from the plan computed from the task, so it
    varies with the task seed like everything else."""
    plan = llorch_ctx.expected_plan(llorch_ctx.make_request())
    text = plan.text
    tokens = list(plan.tokens)
    starts = [sum(len(t) for t in tokens[:k]) for k in range(len(tokens))]
    order = sorted(range(1, max(1, len(tokens) - 1)), key=lambda k: abs(k - len(tokens) // 2))
    chosen: str | None = None
    for k in order:
        piece = tokens[k]
        if not piece.strip() or k + 1 >= len(tokens):
            continue
        candidate = piece + tokens[k + 1][:1]
        if candidate.strip() and text.find(candidate) == starts[k]:
            chosen = candidate
            break
    if chosen is None:
        raise HarnessError(f"the task's plan has no usable stop sequence: {tokens!r}")
    llorch_ctx.request_extra["stop"] = [chosen, "\u241e-never-in-a-plan"]
    llorch_ctx.notes["stop_sequences"] = llorch_ctx.request_extra["stop"]


@given("the task carries a seed of its own")
def own_seed(llorch_ctx: ScenarioContext) -> None:
    """The default, spelled out: a seed derived from the run seed and the scenario, never the
    engine's default seed (``steps._oracle.derive_task_seed``)."""
    llorch_ctx.request_fields["seed"] = llorch_ctx.task_seed


@given("the task asks for strict determinism")
def strict_determinism(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.request_fields["determinism"] = "strict"


@given(parsers.parse('the task names sampler profile "{profile}"'))
def sampler_profile(llorch_ctx: ScenarioContext, profile: str) -> None:
    llorch_ctx.request_fields["sampler_profile_version"] = profile


@given(parsers.parse("the task deadline is {ms:d} ms"))
def task_deadline(llorch_ctx: ScenarioContext, ms: int) -> None:
    llorch_ctx.request_fields["deadline_ms"] = ms


@given(parsers.parse('the engine injects "{fault}"'))
def engine_fault(llorch_ctx: ScenarioContext, fault: str) -> None:
    llorch_ctx.set_faults([fault])


@given(parsers.parse("the adapter's stream timeouts are {ms:d} ms"))
def stream_timeouts(llorch_ctx: ScenarioContext, ms: int) -> None:
    llorch_ctx.timeouts_s = ms / 1000.0


@given(parsers.parse("the adapter makes at most {n:d} attempt"))
@given(parsers.parse("the adapter makes at most {n:d} attempts"))
def max_attempts(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.max_attempts = n


@given(parsers.parse('the adapter is configured with API key "{key}"'))
def api_key(llorch_ctx: ScenarioContext, key: str) -> None:
    llorch_ctx.api_key = key


@given("the adapter is configured without an API key")
def no_api_key(llorch_ctx: ScenarioContext) -> None:
    """An adapter that cannot work without a key reports the scenario unsupported."""
    llorch_ctx.api_key = ""


@given("the environment holds credentials and a proxy")
def env_credentials(llorch_ctx: ScenarioContext) -> None:
    """Credentials and proxies an adapter must NOT pick up (HTU-EXP-1101, HTU-SEC-1401).

    The proxy points at the discard port of the loopback, so an adapter that trusts the
    environment fails to connect instead of passing silently.
    """
    mp: Any = llorch_ctx._getfixturevalue("monkeypatch")
    values: dict[str, str] = {}
    for var in ("AUTH_TOKEN", "LLORCH_API_TOKEN", "OPENAI_API_KEY", "HF_TOKEN", "API_KEY"):
        values[var] = f"env-secret-{var.lower()}-{_secrets.token_hex(8)}"
    for var, value in values.items():
        mp.setenv(var, value)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        mp.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        mp.delenv(var, raising=False)
    llorch_ctx.env_secrets = list(values.values())
    llorch_ctx.notes["env_vars_set"] = sorted(values)


@given("the engine serves TLS with a certificate the adapter does not trust")
def tls_untrusted(llorch_ctx: ScenarioContext) -> None:
    from ._tls import serve_tls

    serve_tls(llorch_ctx, trusted=False)


@given("the engine serves TLS with a certificate the adapter trusts explicitly")
def tls_trusted(llorch_ctx: ScenarioContext) -> None:
    from ._tls import serve_tls

    serve_tls(llorch_ctx, trusted=True)
