"""Steps of ``features/security``: API keys, environment credentials and proxies, TLS verification, secrets in logs."""

from __future__ import annotations

import json
import secrets as _secrets
from typing import Any

from pytest_bdd import given, parsers, then

from ._checks import ERROR_IDS, ended_cleanly, secret_fp
from ._context import ScenarioContext


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


@then("the stream ends with an error event")
def ends_with_error(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    term = run.terminal
    llorch_ctx.check(
        term is not None and term.kind == "error",
        "the stream did not end with an error event",
        f"terminal: {None if term is None else term.to_dict()}",
        ids=ERROR_IDS,
    )


@then("no log record, error message or event contains the API key")
def no_key_leak(llorch_ctx: ScenarioContext) -> None:
    key = llorch_ctx.api_key
    if not key:
        llorch_ctx.fail("the scenario configured no API key", ids=("HTU-1004",))
    ids = (
        "WA-INT-3005",
        "HTU-1004",
        "HTU-SEC-1402",
        "HTU-EXP-1104",
        "ORCH-3613",
        "HTU-ERR-4001",
        "OC-ADAPT-OAI-6020",
    )
    for text in llorch_ctx.logs.texts():
        if key in text:
            llorch_ctx.fail(
                "the API key appears in a log record",
                f"record: {text[:200].replace(key, '<KEY>')}",
                ids=ids,
            )
    for run in llorch_ctx.runs:
        for _, ev in run.events:
            if key in json.dumps(ev.data, default=str):
                llorch_ctx.fail("the API key appears in an event", f"{ev.kind}", ids=ids)
        if run.raised is not None and key in repr(run.raised):
            llorch_ctx.fail("the API key appears in a raised error", ids=ids)
    no_secret_shapes(llorch_ctx)


#: The secrets requirements a secret-shaped value in a log record breaks.
_SECRET_LOG_IDS = (
    "HTU-SEC-1402",
    "WA-INT-3005",
    "HTU-1004",
    "HTU-EXP-1104",
    "ORCH-3613",
    "OC-ADAPT-OAI-6020",
)


@then("no adapter log record carries a secret-shaped value")
def no_secret_shapes(llorch_ctx: ScenarioContext) -> None:
    """Not only the configured key: whatever the project's redactor would mask (any bearer
    token, API-key header or pair, URL credentials, ``sk-``/``hf_`` keys — its own patterns)
    must never reach a log record raw, whoever's secret it is."""
    from ._values import secret_shaped

    found = secret_shaped(llorch_ctx.logs.texts())
    secrets = [s for s in (llorch_ctx.api_key, *llorch_ctx.env_secrets) if s]
    for text in llorch_ctx.logs.texts():
        for secret in secrets:
            if secret in text:
                found.append(f"a configured or environment secret ({secret_fp(secret)})")
    llorch_ctx.check(
        not found,
        "a log record carries a secret-shaped value unredacted",
        f"{len(found)} fragment(s), shown redacted: {found[:3]}",
        ids=_SECRET_LOG_IDS,
    )


@then("the engine received the API key as a Bearer token")
def bearer_sent(llorch_ctx: ScenarioContext) -> None:
    key = llorch_ctx.api_key or ""
    want = f"Bearer {secret_fp(key)}"
    got = [e.header("authorization") for e in llorch_ctx.generation_entries()]
    llorch_ctx.check(
        got and all(g == want for g in got),
        "the configured key was not sent as Authorization: Bearer",
        f"got {got}",
        ids=("HTU-1005",),
    )


@then("the engine received no Authorization header")
def no_auth(llorch_ctx: ScenarioContext) -> None:
    got = [
        e.header("authorization") for e in llorch_ctx.journal().entries if e.header("authorization")
    ]
    llorch_ctx.check(
        not got,
        "an Authorization header was sent although no key was configured",
        f"got {got}",
        ids=("HTU-1005", "HTU-EXP-1101"),
    )


@then("the engine received none of the environment's credentials")
def no_env_credentials(llorch_ctx: ScenarioContext) -> None:
    fps = {secret_fp(s): s for s in llorch_ctx.env_secrets}
    for e in llorch_ctx.journal().entries:
        for name, value in e.headers:
            for fp, raw in fps.items():
                if fp in value or raw in value:
                    llorch_ctx.fail(
                        "a credential from the environment reached the engine",
                        f"header {name!r} on {e.method} {e.path}",
                        ids=("HTU-EXP-1101", "OC-ADAPT-OAI-6021"),
                    )
