"""Record from a live (mock) engine over real sockets, then replay byte- and timing-faithfully."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.mock_engines import load_profile, run_mock_engine
from llorch_conformance.mock_engines._cassette import (
    Cassette,
    Chunk,
    Exchange,
    record_exchange,
    run_replay_engine,
)

TIMEOUT = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _record(base_url: str) -> Cassette:
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as c:
        cas = Cassette(dialect="llamacpp", engine_url=base_url)
        cas.exchanges.append(await record_exchange(c, "GET", "/health", label="health"))
        body = {"prompt": "Hello", "n_predict": 6, "stream": True, "seed": 3, "temperature": 0}
        cas.exchanges.append(await record_exchange(c, "POST", "/completion", json_body=body))
        body2 = dict(body, stream=False)
        cas.exchanges.append(await record_exchange(c, "POST", "/completion", json_body=body2))
        cas.exchanges.append(
            await record_exchange(c, "POST", "/completion", json_body={"n_predict": 1})
        )
    return cas


@pytest.mark.anyio
async def test_record_then_replay_is_byte_identical(tmp_path: Path) -> None:
    prof = load_profile("fast", itl_ms=5.0, ttft_ms=10.0)
    with anyio.fail_after(30):
        async with run_mock_engine("llamacpp", seed=5, profile=prof) as eng:
            cas = await _record(eng.base_url)
        assert [e.status for e in cas.exchanges] == [200, 200, 200, 400]
        stream = cas.exchanges[1]
        assert stream.complete and len(stream.chunks) >= 2
        assert stream.chunks[0].t >= 0.010  # the mock's TTFT: frames never leave early
        path = cas.save(tmp_path / "c.json")
        loaded = Cassette.load(path)
        assert [e.body for e in loaded.exchanges] == [e.body for e in cas.exchanges]

        async with (
            run_replay_engine(loaded, speed=1.0) as rep,
            httpx.AsyncClient(base_url=rep.base_url, timeout=TIMEOUT) as c,
        ):
            for ex in loaded.exchanges:
                r = await c.request(ex.method, ex.path, content=ex.request_body)
                assert r.status_code == ex.status
                assert r.content == ex.body
                assert r.headers["x-llorch-replay"] == "exact"
                assert r.headers.get("content-type") == ex.header("content-type")
                assert r.headers.get("server") == "llama.cpp"
            # the replay is a mock engine: the journal saw every request
            assert len(rep.journal.find(path="/completion")) == 3


@pytest.mark.anyio
async def test_replay_keeps_recorded_chunking_and_delays() -> None:
    """Each recorded chunk is one write, due at its recorded offset (never earlier)."""
    cas = Cassette(
        dialect="llamacpp",
        exchanges=[
            Exchange(
                method="POST",
                path="/completion",
                request_body=b'{"prompt":"x","stream":true}',
                status=200,
                response_headers=[
                    ("content-type", "text/event-stream"),
                    ("transfer-encoding", "chunked"),
                ],
                chunks=[Chunk(0.05, b'data: {"content":"caf'), Chunk(0.1, b"\xc3")],
                complete=True,
            )
        ],
    )
    cas.exchanges[0].chunks.append(Chunk(0.15, b'\xa9"}\n\n'))
    with anyio.fail_after(20):
        async with (
            run_replay_engine(cas, speed=1.0) as rep,
            httpx.AsyncClient(base_url=rep.base_url, timeout=TIMEOUT) as c,
        ):
            t0 = anyio.current_time()
            got: list[tuple[float, bytes]] = []
            async with c.stream("POST", "/completion", content=b'{"stream":true}') as r:
                assert r.headers["x-llorch-replay"] == "fallback"
                async for piece in r.aiter_raw():
                    got.append((anyio.current_time() - t0, piece))
    body = b"".join(p for _, p in got)
    assert body == 'data: {"content":"café"}\n\n'.encode()
    assert got[0][0] >= 0.05
    assert got[-1][0] >= 0.15
    entry = rep.journal.find(path="/completion")[0]
    assert entry.n_writes == 3  # one write per recorded chunk: the split é stays split


def test_speed_factor_scales_due_times() -> None:
    from llorch_conformance.mock_engines import EngineContext
    from llorch_conformance.mock_engines._cassette import ReplayDialect
    from llorch_conformance.mock_engines._wire import MockRequest, StreamReply

    ex = Exchange(
        method="POST",
        path="/completion",
        request_body=b"{}",
        status=200,
        response_headers=[("transfer-encoding", "chunked")],
        chunks=[Chunk(0.2, b"a"), Chunk(0.4, b"b"), Chunk(0.3, b"c")],
        complete=True,
    )
    for speed, want in ((1.0, [0.2, 0.4, 0.4]), (4.0, [0.05, 0.1, 0.1]), (0.0, [0.0] * 3)):
        d = ReplayDialect(Cassette("llamacpp", [ex]), speed=speed)
        ctx = EngineContext(d)
        req = MockRequest("POST", "/completion", {}, {}, b"{}")
        reply = d.routes()[0].handler(req, ctx)
        assert isinstance(reply, StreamReply)
        assert reply.offsets == pytest.approx(want)


def test_unrecorded_path_gets_the_engines_404_and_faults_still_apply() -> None:
    ex = Exchange(
        method="GET",
        path="/health",
        status=200,
        response_headers=[("content-type", "application/json")],
        chunks=[Chunk(0.0, b'{"status":"ok"}')],
        complete=True,
    )
    with run_replay_engine(Cassette("llamacpp", [ex]), speed=0) as rep:
        r = httpx.get(rep.base_url + "/nope", timeout=TIMEOUT)
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "not_found_error"
        r = httpx.get(rep.base_url + "/health", timeout=TIMEOUT)
        assert r.json() == {"status": "ok"}
        assert r.headers["content-length"] == "15"  # recorded without chunking
        rep.set_faults(["engine.loading"])
        r = httpx.get(rep.base_url + "/health", timeout=TIMEOUT)
        assert r.status_code == 503
        assert r.json()["error"]["message"] == "Loading model"


def test_cassette_never_stores_secrets_and_rejects_bad_files(tmp_path: Path) -> None:
    async def rec() -> Exchange:
        with run_mock_engine("llamacpp", api_key="sk-secret-value-123") as eng:
            async with httpx.AsyncClient(base_url=eng.base_url, timeout=TIMEOUT) as c:
                return await record_exchange(
                    c, "GET", "/props", headers={"authorization": "Bearer sk-secret-value-123"}
                )

    ex = anyio.run(rec)
    assert ex.status == 200
    p = Cassette("llamacpp", [ex], engine_url="http://u:sk-secret-value-123@127.0.0.1:1").save(
        tmp_path / "c.json"
    )
    assert "sk-secret-value-123" not in p.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"llorch_cassette": 99, "dialect": "llamacpp", "exchanges": []}))
    with pytest.raises(ConfigError, match="version"):
        Cassette.load(bad)
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not JSON"):
        Cassette.load(bad)
    with pytest.raises(ConfigError):
        Cassette.load(tmp_path / "missing.json")


def test_fallback_is_deterministic_and_skips_cut_recordings() -> None:
    def ex(body: bytes, text: bytes, *, cut: bool = False) -> Exchange:
        return Exchange(
            method="POST",
            path="/completion",
            request_body=body,
            status=200,
            response_headers=[
                ("content-type", "text/event-stream"),
                ("transfer-encoding", "chunked"),
            ],
            chunks=[Chunk(0.0, text)],
            complete=not cut,
            disconnected=cut,
        )

    cas = Cassette(
        "llamacpp",
        [
            ex(b'{"stream":true,"seed":1}', b"data: {}\n\n", cut=True),
            ex(b'{"stream":true,"seed":2}', b'data: {"a":1}\n\n'),
            ex(b'{"stream":true,"seed":3}', b'data: {"b":2}\n\n'),
        ],
    )
    with (
        run_replay_engine(cas, speed=0) as rep,
        httpx.Client(base_url=rep.base_url, timeout=TIMEOUT) as c,
    ):
        answers = set()
        for seed in range(20):
            body = json.dumps({"stream": True, "seed": 100 + seed}).encode()
            first = c.post("/completion", content=body)
            again = c.post("/completion", content=body)
            assert first.headers["x-llorch-replay"] == "fallback"
            assert first.content == again.content
            answers.add(first.content)
        assert b"data: {}\n\n" not in answers  # the cut recording is never a fallback
        assert len(answers) == 2
        # an exact match still gets its own (even cut) recording
        assert c.post("/completion", content=b'{"stream":true,"seed":1}').content == b"data: {}\n\n"
