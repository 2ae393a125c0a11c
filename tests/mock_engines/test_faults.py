"""Every fault family over a real socket, for the llama.cpp, vLLM and OpenAI mocks.

Timing checks are lower bounds only (a stall lasts *at least* its delay); nothing here asserts an
upper bound on time, and waits are on the journal with bounded timeouts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.mock_engines import MockEngine, load_profile, make_plan, run_mock_engine

from ._helpers import (
    TIMEOUT,
    auth_headers,
    gen_request,
    raw_request,
    refused,
    sse_data,
    sse_json,
    stream_texts,
)


def _req(engine: MockEngine, dialect: str, **kw: object) -> tuple[str, dict[str, object]]:
    model = "gpt-4o-mini" if dialect == "openai" else engine.model
    kw.setdefault("max_tokens", 8)
    kw.setdefault("seed", 3)
    kw.setdefault("prompt", "Hello")
    return gen_request(dialect, model, stream=True, **kw)


def _fault(dialect: str, fault: str) -> dict[str, str]:
    return {**auth_headers(dialect), "X-Mock-Fault": fault}


def _multibyte_prompt(n: int, max_tokens: int = 8) -> str:
    """A prompt whose plan (seed 3) contains at least ``n`` multi-byte characters."""
    for i in range(500):
        text = make_plan(f"p{i}", seed=3, max_tokens=max_tokens).text
        if sum(1 for ch in text if len(ch.encode()) > 1) >= n:
            return f"p{i}"
    raise AssertionError("no such prompt")


def _post_with_fault(
    engine: MockEngine, dialect: str, fault: str, path: str, body: dict[str, object]
) -> httpx.Response:
    """One request to ``engine`` with ``fault`` selected by its header."""
    return httpx.post(
        engine.base_url + path, json=body, headers=_fault(dialect, fault), timeout=TIMEOUT
    )


# -- HTTP status faults -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500, 503])
def test_http_status_faults(
    client: httpx.Client, engine: MockEngine, dialect: str, status: int
) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": f"http.{status}"})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["message"]
    entry = engine.journal.last()
    assert entry is not None and entry.fault == f"http.{status}" and entry.status == status


def test_http_429_retry_after(client: httpx.Client, engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": "http.429_retry_after;seconds=7"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    if dialect == "openai":
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_engine_wide_fault_first_n_then_normal(
    engine: MockEngine, client: httpx.Client, dialect: str
) -> None:
    engine.set_faults(["http.500;first=2"])
    path, body = _req(engine, dialect)
    codes = [client.post(path, json=body).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    # non-generation routes are not matched by engine-wide rules
    engine.reset()
    info = {"llamacpp": "/health", "vllm": "/health", "openai": "/v1/models"}[dialect]
    assert client.get(info).status_code == 200
    assert client.post(path, json=body).status_code == 500


def test_inapplicable_fault_is_reported(
    engine: MockEngine, client: httpx.Client, dialect: str
) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": "frame.duplicate_index"})
    if dialect == "llamacpp":
        assert r.status_code == 200
        return
    assert r.status_code == 400
    assert "does not apply" in r.text
    with pytest.raises(ConfigError, match="does not apply"):
        engine.set_faults(["frame.duplicate_index"])
    bad = client.post(path, json=body, headers={"X-Mock-Fault": "no.such.fault"})
    assert bad.status_code == 400 and "unknown fault id" in bad.text


# -- overload and slots -----------------------------------------------------------------------------


def test_engine_overload_fault(client: httpx.Client, engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": "engine.overload"})
    expected = {"llamacpp": 503, "vllm": 503, "openai": 503}[dialect]
    assert r.status_code == expected
    assert r.json()["error"]["message"]


def test_full_slots_and_queue_give_the_overload_answer(dialect: str) -> None:
    prof = load_profile("fast", slots=1, queue_size=0, itl_ms=20)
    with (
        run_mock_engine(dialect, profile=prof) as eng,
        httpx.Client(timeout=TIMEOUT, headers=auth_headers(dialect)) as c,
    ):
        path, body = _req(eng, dialect, max_tokens=200)
        with c.stream("POST", eng.base_url + path, json=body) as first:
            assert first.status_code == 200
            eng.journal.wait_for_sync(
                lambda j: j.last() is not None and j.last().t_first_byte, timeout=5
            )
            assert eng.ctx.slots.busy == 1
            second = c.post(eng.base_url + path, json=body)
            assert second.status_code == 503
        eng.journal.wait_for_sync(lambda j: eng.ctx.slots.busy == 0, timeout=5)


def test_queue_waits_for_a_slot(dialect: str) -> None:
    prof = load_profile("fast", slots=1, queue_size=4, itl_ms=5)
    with (
        run_mock_engine(dialect, profile=prof) as eng,
        httpx.Client(timeout=TIMEOUT, headers=auth_headers(dialect)) as c,
    ):
        # the first holds the slot 1.5 s (a stall): a bare 10-token stream (50 ms) could end, and
        # free the slot, before a loaded machine saw it busy or sent the second request
        path, body = _req(eng, dialect, max_tokens=10)
        stall = _fault(dialect, "stall.before_first_byte;delay_ms=1500")
        with c.stream("POST", eng.base_url + path, json=body, headers=stall) as first:
            eng.journal.wait_for_sync(lambda j: eng.ctx.slots.busy == 1, timeout=30)
            second = c.post(eng.base_url + path, json=body)  # queued, then served
            first.read()
        assert second.status_code == 200
        e1, e2 = eng.journal.find(path=path)
        assert e2.t_first_byte is not None and e1.t_last_byte is not None
        assert e2.t_received < e1.t_last_byte  # it did arrive while the first held the slot
        assert e2.t_first_byte >= e1.t_last_byte - 0.001  # served only after the slot was freed


# -- connection faults ------------------------------------------------------------------------------


def test_accept_then_close_per_request(engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    with pytest.raises(httpx.RemoteProtocolError):
        _post_with_fault(engine, dialect, "conn.accept_then_close", path, body)
    entry = engine.journal.last()
    assert entry is not None and entry.aborted and entry.status is None


def test_accept_then_close_engine_wide_first_connection(dialect: str) -> None:
    with run_mock_engine(dialect, faults=["conn.accept_then_close;first=1"]) as eng:
        path, body = _req(eng, dialect)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            httpx.post(
                eng.base_url + path, json=body, headers=auth_headers(dialect), timeout=TIMEOUT
            )
        ok = httpx.post(
            eng.base_url + path, json=body, headers=auth_headers(dialect), timeout=TIMEOUT
        )
        assert ok.status_code == 200
        assert eng.ctx.accept_closes == 1


def test_port_closed_and_reopened_on_the_same_port(engine: MockEngine, dialect: str) -> None:
    engine.set_faults(["conn.port_closed"])
    assert refused(engine.base_url)
    engine.set_faults([])
    assert not refused(engine.base_url)
    path, body = _req(engine, dialect)
    assert (
        httpx.post(
            engine.base_url + path, json=body, headers=auth_headers(dialect), timeout=TIMEOUT
        ).status_code
        == 200
    )


def test_port_closed_for_a_duration_reopens_by_itself(engine: MockEngine) -> None:
    """A probe that *finished* inside the window must have been refused; one that a loaded machine
    delayed past the window proves nothing either way, so the window doubles and the test tries
    again (no clock race: the only timing fact used is "the window cannot end before t0 + d")."""
    for duration_s in (0.3, 0.6, 1.2, 2.4, 4.8):
        t0 = time.monotonic()
        engine.set_faults([f"conn.port_closed;duration_ms={int(duration_s * 1000)}"])
        if refused(engine.base_url):
            break
        assert time.monotonic() - t0 >= duration_s, "a connection was accepted inside the window"
    else:
        pytest.fail("the machine never probed the port inside a closed window (up to 4.8 s)")
    deadline = time.monotonic() + duration_s + 30
    while refused(engine.base_url):
        assert time.monotonic() < deadline, "port did not reopen"
        time.sleep(0.02)


def test_slow_headers(engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    # headers held 3 s against a 0.1 s read timeout: a client thread a loaded machine leaves
    # unscheduled for a few hundred ms must still see the timeout, not the late headers
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            engine.base_url + path,
            json=body,
            headers=_fault(dialect, "conn.slow_headers;delay_ms=3000"),
            timeout=httpx.Timeout(10.0, read=0.1),
        )
    t0 = time.monotonic()
    r = _post_with_fault(engine, dialect, "conn.slow_headers;delay_ms=150", path, body)
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.15


def test_stall_before_first_byte_and_midstream(engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    with (
        httpx.Client(timeout=TIMEOUT) as c,
        c.stream(
            "POST",
            engine.base_url + path,
            json=body,
            headers=_fault(dialect, "stall.before_first_byte;delay_ms=300"),
        ) as r,
    ):
        assert r.status_code == 200  # headers are here; the body is still withheld
        next(r.iter_raw())
    first = engine.journal.find(path=path)[0]
    assert first.t_first_byte is not None and first.t_first_byte - first.t_received >= 0.3
    r = raw_request(
        engine.base_url,
        "POST",
        path,
        body,
        _fault(dialect, "stall.midstream;after_events=2;delay_ms=300"),
    )
    assert r.complete
    entry = engine.journal.last()
    assert entry is not None and entry.t_last_byte is not None and entry.t_first_byte is not None
    assert entry.t_last_byte - entry.t_received >= 0.3
    events_before = sse_data(r.chunks[0])
    assert len(events_before) == 2  # the write before the silence ends after exactly two events
    assert stream_texts(dialect, r.body) == list(make_plan("Hello", seed=3, max_tokens=8).tokens)


def test_midstream_disconnect(engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = raw_request(
        engine.base_url, "POST", path, body, _fault(dialect, "midstream.disconnect;after_events=3")
    )
    assert r.status == 200 and not r.complete
    assert len(sse_data(r.body)) == 3
    assert b"[DONE]" not in r.body
    with pytest.raises(httpx.RemoteProtocolError):
        _post_with_fault(engine, dialect, "midstream.disconnect", path, body)
    entry = engine.journal.last()
    assert entry is not None and entry.aborted and not entry.completed
    assert engine.journal.cancels == 0  # a deliberate close is not a client cancel


def test_midstream_disconnect_bytes(engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = raw_request(
        engine.base_url,
        "POST",
        path,
        body,
        _fault(dialect, "midstream.disconnect_bytes;after_bytes=100"),
    )
    assert not r.complete and len(r.body) == 100


def test_midstream_cut_utf8(dialect: str) -> None:
    with run_mock_engine(dialect) as eng:
        prompt = next(
            p
            for p in (f"p{i}" for i in range(200))
            if any(len(t.encode()) > len(t) for t in make_plan(p, seed=3, max_tokens=8).tokens)
        )
        path, body = _req(eng, dialect, prompt=prompt)
        r = raw_request(eng.base_url, "POST", path, body, _fault(dialect, "midstream.cut_utf8"))
        assert not r.complete
        with pytest.raises(UnicodeDecodeError):
            r.body.decode("utf-8")
        r.body[:-1].decode("utf-8")  # only the last, cut character is incomplete


def test_benign_split_utf8(dialect: str) -> None:
    with run_mock_engine(dialect) as eng:
        path, body = _req(eng, dialect, max_tokens=40, prompt=_multibyte_prompt(3, 40))
        normal = raw_request(eng.base_url, "POST", path, body, auth_headers(dialect))
        split = raw_request(eng.base_url, "POST", path, body, _fault(dialect, "frame.split_utf8"))
    assert split.complete and len(split.chunks) > 2
    for chunk in split.chunks[:-1]:
        with pytest.raises(UnicodeDecodeError):
            chunk.decode("utf-8")  # every boundary falls inside a character
    assert _strip_ids(split.body, dialect) == _strip_ids(normal.body, dialect)


def test_benign_split_every_byte(engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect, max_tokens=3)
    r = raw_request(engine.base_url, "POST", path, body, _fault(dialect, "frame.split_every_byte"))
    assert r.complete and all(len(c) == 1 for c in r.chunks)
    assert stream_texts(dialect, r.body) == list(make_plan("Hello", seed=3, max_tokens=3).tokens)


def _strip_ids(body: bytes, dialect: str) -> list[object]:
    objs = sse_json(body)
    for o in objs:
        if isinstance(o, dict):
            o.pop("id", None)
            o.pop("obfuscation", None)
    return objs


# -- frame faults -------------------------------------------------------------------------------------


def test_malformed_json(client: httpx.Client, engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": "frame.malformed_json"})
    bad = []
    for d in sse_data(r.content):
        if d == b"[DONE]":
            continue
        try:
            json.loads(d)
        except ValueError:
            bad.append(d)
    assert len(bad) == 1


def test_missing_terminal(client: httpx.Client, engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": "frame.missing_terminal"})
    data = sse_data(r.content)
    assert b"[DONE]" not in data
    if dialect == "llamacpp":
        assert not any(json.loads(d).get("stop") for d in data)


def test_duplicate_and_out_of_order_index_llamacpp() -> None:
    with run_mock_engine("llamacpp") as eng:
        body = {"prompt": "Hello", "n_predict": 5, "stream": True, "seed": 3}
        dup = _post_with_fault(eng, "llamacpp", "frame.duplicate_index", "/completion", body)
        idx = [o["tokens_predicted"] for o in sse_json(dup.content) if not o["stop"]]
        assert idx == [1, 2, 2, 3, 4, 5]
        ooo = _post_with_fault(
            eng, "llamacpp", "frame.out_of_order_index;after_events=2", "/completion", body
        )
        idx = [o["tokens_predicted"] for o in sse_json(ooo.content) if not o["stop"]]
        assert idx == [1, 2, 4, 3, 5]


def test_error_event_in_engine_shape(
    client: httpx.Client, engine: MockEngine, dialect: str
) -> None:
    path, body = _req(engine, dialect)
    r = client.post(
        path, json=body, headers={"X-Mock-Fault": "stream.error_event;after_events=2;message=boom"}
    )
    assert r.status_code == 200
    data = sse_data(r.content)
    assert len(data) == 3 + (1 if dialect == "vllm" else 0)
    err = json.loads(data[2])["error"]
    assert err["message"] == "boom"
    if dialect == "llamacpp":
        assert err == {"code": 500, "message": "boom", "type": "server_error"}
    if dialect == "vllm":
        assert data[-1] == b"[DONE]"  # vLLM always ends with [DONE], even after an error
    else:
        assert data[-1] != b"[DONE]"


def test_keepalive_flood_llamacpp() -> None:
    with run_mock_engine("llamacpp") as eng:
        body = {"prompt": "Hello", "n_predict": 4, "stream": True, "seed": 3}
        r = _post_with_fault(
            eng, "llamacpp", "stream.keepalive_flood;count=10", "/completion", body
        )
    assert r.content.count(b":\n\n") - r.content.count(b'":\n\n') == 10
    assert r.content.startswith(b":\n\n")
    assert stream_texts("llamacpp", r.content) == list(
        make_plan("Hello", seed=3, max_tokens=4).tokens
    )


def test_oversized_frame(client: httpx.Client, engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": "frame.oversized;size=300000"})
    frames = [f for f in r.content.split(b"\n\n") if f]
    big = [f for f in frames if len(f) + 2 >= 300000]
    assert len(big) == 1 and len(big[0]) + 2 == 300000
    json.loads(big[0][6:])


def test_wrong_content_type(client: httpx.Client, engine: MockEngine, dialect: str) -> None:
    path, body = _req(engine, dialect)
    r = client.post(path, json=body, headers={"X-Mock-Fault": "http.wrong_content_type"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain"
    assert sse_data(r.content)


# -- loading ----------------------------------------------------------------------------------------------


def test_llamacpp_loading_answers_503_on_every_route() -> None:
    with (
        run_mock_engine("llamacpp") as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        eng.set_faults(["engine.loading"])
        for method, path in (
            ("GET", "/health"),
            ("GET", "/v1/models"),
            ("POST", "/completion"),
            ("GET", "/nope"),
        ):
            r = c.request(method, path, json={"prompt": "x"} if method == "POST" else None)
            assert r.status_code == 503, path
            assert (
                r.content
                == b'{"error":{"message":"Loading model","type":"unavailable_error","code":503}}'
            )
        eng.set_faults([])
        assert c.get("/health").status_code == 200
        eng.set_faults(["engine.loading;first=1"])
        assert [c.get("/health").status_code for _ in range(2)] == [503, 200]


def test_llamacpp_startup_loading_phase() -> None:
    with run_mock_engine("llamacpp", profile=load_profile("fast", load_ms=300)) as eng:
        assert httpx.get(eng.base_url + "/health", timeout=TIMEOUT).status_code == 503
        eng.journal.wait_for_sync(lambda j: not eng.ctx.is_loading(), timeout=5)
        assert httpx.get(eng.base_url + "/health", timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("dialect", ["vllm", "openai"])
def test_port_closed_while_loading(dialect: str) -> None:
    with run_mock_engine(dialect, profile=load_profile("fast", load_ms=300)) as eng:
        assert refused(eng.base_url)
        deadline = time.monotonic() + 5
        while refused(eng.base_url):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert (
            httpx.get(
                eng.base_url + "/v1/models", headers=auth_headers(dialect), timeout=TIMEOUT
            ).status_code
            == 200
        )
        eng.set_faults(["engine.loading"])
        assert refused(eng.base_url)
        eng.set_faults([])
        assert not refused(eng.base_url)


@pytest.fixture
def slow_engine(dialect: str) -> Iterator[MockEngine]:
    with run_mock_engine(dialect, profile=load_profile("fast", ttft_ms=30, itl_ms=10)) as eng:
        yield eng


def test_latency_model_lower_bounds(slow_engine: MockEngine, dialect: str) -> None:
    path, body = _req(slow_engine, dialect, max_tokens=6)
    r = raw_request(slow_engine.base_url, "POST", path, body, auth_headers(dialect))
    assert r.complete
    entry = slow_engine.journal.last()
    assert entry is not None and entry.t_first_byte is not None and entry.t_last_byte is not None
    assert entry.t_first_byte - entry.t_received >= 0.03
    assert entry.t_last_byte - entry.t_received >= 0.08  # ttft 30 ms + 5 gaps of 10 ms
    assert entry.n_writes >= 6  # one write per due moment, tokens are 10 ms apart
