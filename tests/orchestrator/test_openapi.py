"""The facade's OpenAPI description is valid and true to its routes (every route described, every
described route answering on a real socket)."""

from __future__ import annotations

import httpx
import schemathesis
from starlette.routing import Route

from llorch_conformance.adapters.host import AdapterHost
from llorch_conformance.adapters.orchestrator import FacadeConfig, create_app
from llorch_conformance.adapters.orchestrator._openapi import openapi_document
from llorch_conformance.adapters.orchestrator._server import ServerThread

from ..host.fakes import FakeAdapter


def _app() -> object:
    host = AdapterHost()
    host.bind("default", "r0", FakeAdapter())
    return create_app(host, FacadeConfig(max_deadline_ms=60_000))


def test_document_is_valid_openapi() -> None:
    doc = openapi_document(FacadeConfig())
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # the OpenAPI 3.0 meta-schema
    assert doc["openapi"] == "3.0.3"


def test_every_route_is_described_and_every_description_is_routed() -> None:
    app = _app()
    starlette = app.app  # type: ignore[attr-defined]
    routed = {
        (r.path, m.lower())
        for r in starlette.routes
        if isinstance(r, Route)
        for m in (r.methods or ())
        if m != "HEAD"
    }
    doc = openapi_document(FacadeConfig())
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routed == described


def test_served_document_follows_the_config_and_each_route_answers() -> None:
    with ServerThread(_app()) as srv, httpx.Client(base_url=srv.base_url, timeout=5) as c:  # type: ignore[arg-type]
        doc = c.get("/openapi.json").json()
        body = doc["components"]["schemas"]["TaskRequest"]["properties"]["deadline_ms"]
        assert body["maximum"] == 60_000  # the limit in force, not a copy
        for path, ops in doc["paths"].items():
            url = path.replace("{task_id}", "no-such-task").replace("{pool_id}", "default")
            for method in ops:
                r = c.request(method.upper(), url, json={} if method == "post" else None)
                assert r.status_code != 404 or r.json()["message"] != "no such route", (path, r)
                assert str(r.status_code) in ops[method]["responses"], (path, method, r.text)
