"""The journal (requests, frames, timings, disconnects, counters) and the control endpoints."""

from __future__ import annotations

import anyio
import httpx
import pytest

from llorch_conformance.mock_engines import MockEngine, load_profile, run_mock_engine

from ._helpers import TIMEOUT, auth_headers, gen_request, sse_data


def _model(engine: MockEngine, dialect: str) -> str:
    return "gpt-4o-mini" if dialect == "openai" else engine.model


def test_entry_records_request_and_response(
    client: httpx.Client, engine: MockEngine, dialect: str
) -> None:
    path, body = gen_request(dialect, _model(engine, dialect), stream=True, max_tokens=4)
    r = client.post(path + "?trace=1", json=body, headers={"X-Custom": "yes"})
    entry = engine.journal.wait_for_sync(
        lambda j: j.last() if j.last() and j.last().completed else None, timeout=5
    )
    assert (entry.method, entry.path, entry.query) == ("POST", path, "trace=1")
    assert entry.header("x-custom") == "yes"
    assert entry.json_body() == body
    assert entry.generation and entry.route == path
    assert entry.status == 200 and entry.completed and not entry.disconnected
    assert b"".join(entry.frames) == r.content
    assert entry.plan is not None and entry.plan.completion_tokens == 4
    assert entry.fault is None
    assert engine.journal.counters()["in_flight"] == 0


def test_client_disconnect_mid_stream_is_journaled(dialect: str) -> None:
    prof = load_profile("fast", itl_ms=20)
    with (
        run_mock_engine(dialect, profile=prof) as eng,
        httpx.Client(timeout=TIMEOUT, headers=auth_headers(dialect)) as c,
    ):
        path, body = gen_request(dialect, _model(eng, dialect), stream=True, max_tokens=200)
        with c.stream("POST", eng.base_url + path, json=body) as r:
            got = b""
            for chunk in r.iter_raw():
                got += chunk
                if len(sse_data(got)) >= 2:
                    break
        entry = eng.journal.wait_for_sync(
            lambda j: j.last() if j.last() is not None and j.last().disconnected else None,
            timeout=5,
        )
        assert entry.t_disconnected is not None and entry.t_first_byte is not None
        assert entry.t_disconnected >= entry.t_first_byte
        assert not entry.completed and not entry.aborted
        assert 2 <= len(entry.frames) < 200
        eng.journal.wait_for_sync(lambda j: j.in_flight == 0 and eng.ctx.slots.busy == 0, timeout=5)
        assert eng.journal.cancels == 1


def test_open_connections_counter(engine: MockEngine) -> None:
    j = engine.journal
    assert j.counters()["open_connections"] == 0
    with httpx.Client(
        base_url=engine.base_url, timeout=TIMEOUT, headers=auth_headers(engine.dialect)
    ) as c:
        c.get("/v1/models")
        j.wait_for_sync(lambda jj: jj.open_connections == 1, timeout=5)
    j.wait_for_sync(lambda jj: jj.open_connections == 0, timeout=5)
    assert j.counters()["connections_total"] >= 1


@pytest.mark.anyio
async def test_async_wait_for(dialect: str) -> None:
    async with (
        run_mock_engine(dialect) as eng,
        httpx.AsyncClient(timeout=TIMEOUT, headers=auth_headers(dialect)) as c,
    ):
        path, body = gen_request(dialect, _model(eng, dialect), stream=False, max_tokens=2)

        async def go() -> None:
            await c.post(eng.base_url + path, json=body)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(go)
                found = await eng.journal.wait_for(
                    lambda j: [e for e in j.find(path=path) if e.completed], timeout=5
                )
        assert found[0].status == 200
        with pytest.raises(TimeoutError):
            await eng.journal.wait_for(lambda j: j.find(path="/never"), timeout=0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_wait_for_sync_times_out(engine: MockEngine) -> None:
    with pytest.raises(TimeoutError):
        engine.journal.wait_for_sync(lambda j: False, timeout=0.05)


def test_control_endpoints(client: httpx.Client, engine: MockEngine, dialect: str) -> None:
    path, body = gen_request(dialect, _model(engine, dialect), stream=True, max_tokens=3)
    client.post(path, json=body)
    journal = client.get("/__mock__/journal").json()
    assert journal["counters"]["requests"] == 1
    (e,) = journal["entries"]
    assert e["path"] == path and e["status"] == 200 and e["frames"]
    assert "frames" not in client.get("/__mock__/journal?frames=0").json()["entries"][0]
    cfg = client.get("/__mock__/config").json()
    assert cfg["dialect"] == dialect and cfg["engine_version"] == engine.engine_version
    assert cfg["faults"] == [] and cfg["profile"]["name"] == "fast"
    new = client.post("/__mock__/config", json={"faults": ["http.503;first=1"], "seed": 9}).json()
    assert new["faults"] == ["http.503;first=1"] and new["seed"] == 9
    assert client.post(path, json=body).status_code == 503
    assert client.post(path, json=body).status_code == 200
    bad = client.post("/__mock__/config", json={"faults": ["nope"]})
    assert bad.status_code == 400 and "unknown fault id" in bad.json()["error"]
    assert client.post("/__mock__/config", json={"colour": 1}).status_code == 400
    prof = client.post("/__mock__/config", json={"profile": {"itl_ms": 1, "slots": 2}}).json()
    assert prof["profile"]["itl_ms"] == 1 and prof["profile"]["slots"] == 2
    assert client.post("/__mock__/reset").json() == {"ok": True}
    assert client.get("/__mock__/journal").json()["entries"] == []
    assert client.get("/__mock__/nope").status_code == 404


def test_control_prefix_can_be_switched_off(dialect: str) -> None:
    with run_mock_engine(dialect, control=False) as eng:
        r = httpx.get(
            eng.base_url + "/__mock__/journal", headers=auth_headers(dialect), timeout=TIMEOUT
        )
        assert r.status_code == 404
        if dialect == "llamacpp":
            assert r.json()["error"]["message"] == "File Not Found"
        elif dialect == "vllm":
            assert r.json() == {"detail": "Not Found"}
        else:
            assert r.json()["error"]["message"].startswith("Invalid URL")
        # the request reached the engine as an ordinary (unknown) route
        assert eng.journal.last() is not None and eng.journal.last().path == "/__mock__/journal"


def test_secrets_are_redacted_everywhere(dialect: str) -> None:
    with run_mock_engine(dialect, api_key="sk-live-SECRET") as eng:
        headers = {
            "authorization": "Bearer sk-live-SECRET",
            "x-api-key": "sk-live-SECRET",
            "cookie": "s=1",
        }
        path, body = gen_request(dialect, _model(eng, dialect), stream=False, max_tokens=1)
        httpx.post(eng.base_url + path, json=body, headers=headers, timeout=TIMEOUT)
        dump = httpx.get(eng.base_url + "/__mock__/journal", timeout=TIMEOUT).text
        assert "sk-live-SECRET" not in dump
        assert "s=1" not in dump
        entry = eng.journal.last()
        assert entry is not None
        assert (entry.header("authorization") or "").startswith("Bearer ****")


def test_stop_mid_stream_is_quick_and_quiet(dialect: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.WARNING)
    eng = run_mock_engine(dialect, profile=load_profile("fast", itl_ms=50)).start()
    try:
        path, body = gen_request(dialect, _model(eng, dialect), stream=True, max_tokens=1000)
        with (
            httpx.Client(timeout=TIMEOUT, headers=auth_headers(dialect)) as c,
            c.stream("POST", eng.base_url + path, json=body) as r,
        ):
            it = r.iter_raw()
            next(it)
            eng.stop()  # in-flight stream is cut, the port is released
            with pytest.raises(httpx.HTTPError):
                for _ in it:
                    pass
    finally:
        eng.stop()
    entry = eng.journal.last()
    assert entry is not None and not entry.completed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_tls_serving_with_faults(dialect: str) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with run_mock_engine(
        dialect, ssl_context=server_ctx, profile=load_profile("fast", itl_ms=5)
    ) as eng:
        assert eng.base_url.startswith("https://")
        path, body = gen_request(dialect, _model(eng, dialect), stream=True, max_tokens=5)
        with httpx.Client(verify=client_ctx, timeout=TIMEOUT, headers=auth_headers(dialect)) as c:
            r = c.post(eng.base_url + path, json=body)
            assert r.status_code == 200 and len(sse_data(r.content)) >= 5
            with pytest.raises(httpx.RemoteProtocolError):
                c.post(
                    eng.base_url + path, json=body, headers={"X-Mock-Fault": "midstream.disconnect"}
                )
        with pytest.raises(httpx.ConnectError):  # verification stays on: an untrusted CA fails
            httpx.get(eng.base_url + "/health", timeout=TIMEOUT)


def test_journal_keeps_the_newest_entries_only() -> None:
    from llorch_conformance.mock_engines import Journal

    j = Journal(max_entries=3)
    for i in range(5):
        e = j.new_entry("GET", f"/p{i}", "", [], b"")
        j.finish(e)
    assert [e.path for e in j.entries] == ["/p2", "/p3", "/p4"]
    assert j.counters()["in_flight"] == 0
    assert j.last() is not None and j.last().id == 5
