"""Steps for worker registration on the orchestrator facade (AUTH-1003)."""

from __future__ import annotations

import httpx
from pytest_bdd import then, when

from ._context import ScenarioContext
from ._orch import facade


@when("a worker registers without a token, with a wrong token and with the token")
def register_three_ways(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)
    body = {"engine": "mock", "pool_id": "registered", "replica_id": "r-reg"}
    answers = []
    headers_list: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-the-token-0123456789"},
        {"Authorization": f"Bearer {view.token}"} if view.token else {},
    ]
    with httpx.Client(base_url=view.base_url, trust_env=False, timeout=10.0) as client:
        for headers in headers_list:
            r = client.post("/v1/workers/register", json=body, headers=headers)
            try:
                payload = r.json()
            except ValueError:
                payload = {"raw": r.text[:200]}
            answers.append({"status": r.status_code, "body": payload})
    llorch_ctx.notes["registration"] = answers
    llorch_ctx.scratch["registration"] = answers


@then("only the registration with the token was accepted")
def only_token_accepted(llorch_ctx: ScenarioContext) -> None:
    missing, wrong, right = llorch_ctx.scratch["registration"]
    llorch_ctx.check(
        missing["status"] == 401 and wrong["status"] == 401,
        "a worker registered without the right token",
        f"no token: {missing}, wrong token: {wrong}",
        ids=("AUTH-1003",),
    )
    llorch_ctx.check(
        right["status"] == 200 and right["body"].get("ok") is True,
        "registration with the right token was refused",
        str(right),
        ids=("AUTH-1003",),
    )


@then("the accepted registration names its caller by token fingerprint only")
def registration_identity(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)
    _, _, right = llorch_ctx.scratch["registration"]
    ident = str(right["body"].get("identity", ""))
    llorch_ctx.check(
        ident.startswith("token:") and len(ident) == len("token:") + 6,
        "the registration identity is not token:<fp6>",
        ident,
        ids=("AUTH-1008",),
    )
    llorch_ctx.check(
        not view.token or view.token not in str(right),
        "the token itself came back in the registration answer",
        "",
        ids=("AUTH-1008",),
    )
