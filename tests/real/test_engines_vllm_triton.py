"""The vLLM and Triton fixtures themselves: the servers start, serve the tiny models and show
the wire facts the adapters and mocks are held to (reference/real-engines.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from llorch_conformance.conformance.real import TritonServer, find_triton_venv, write_triton_repo

from .conftest import LiveEngine

TIMEOUT = 60.0


def _frames(raw: bytes) -> list[bytes]:
    return [f for f in raw.split(b"\n\n") if f.strip()]


@pytest.mark.xdist_group("vllm")
def test_vllm_serves_the_tiny_model_with_openai_framing(vllm_engine: LiveEngine) -> None:
    with httpx.Client(base_url=vllm_engine.base_url, timeout=TIMEOUT, trust_env=False) as c:
        models = c.get("/v1/models").json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
        assert models["data"][0]["max_model_len"] == 4096
        assert c.get("/version").json()["version"] == "0.32.0"
        body = {
            "model": "tiny",
            "prompt": "café 日本 Hello",
            "max_tokens": 12,
            "seed": 1,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with c.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            raw = r.read()
        frames = _frames(raw)
        assert frames[-1] == b"data: [DONE]"
        objs = [json.loads(f[6:]) for f in frames[:-1]]
        usage = objs[-1]
        assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 12
        last = objs[-2]["choices"][0]
        assert last["finish_reason"] == "length" and "stop_reason" in last
        # Validation failures of a streamed request are a plain JSON 400, not SSE.
        r = c.post("/v1/completions", json={**body, "max_tokens": 5000})
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["type"] == "BadRequestError"


@pytest.mark.xdist_group("triton")
def test_triton_streams_like_the_vllm_backend(triton_engine: LiveEngine) -> None:
    body = {
        "text_input": "Hello café",
        "stream": True,
        "exclude_input_in_output": True,
        "return_finish_reason": True,
        "return_num_input_tokens": True,
        "return_num_output_tokens": True,
        "sampling_parameters": json.dumps({"max_tokens": 6, "seed": 3, "ignore_eos": True}),
    }
    with httpx.Client(base_url=triton_engine.base_url, timeout=TIMEOUT, trust_env=False) as c:
        assert c.get("/v2").json()["version"] == "2.51.0"
        r = c.post("/v2/models/tiny/generate_stream", json=body)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        objs = [json.loads(f[6:]) for f in _frames(r.content)]
        assert len(objs) == 6  # one response per token, no terminator frame
        assert [o["finish_reason"] for o in objs] == ["None"] * 5 + ["length"]
        assert sum(o["num_output_tokens"] for o in objs) == 6
        assert {o["model_name"] for o in objs} == {"tiny"}
        # The same seed gives the same text (the model is deterministic noise).
        again = c.post("/v2/models/tiny/generate_stream", json=body).content
        assert again == r.content
        # An invalid parameter fails the first response: an error status, still SSE-framed.
        bad = {**body, "sampling_parameters": json.dumps({"max_tokens": 0})}
        r = c.post("/v2/models/tiny/generate_stream", json=bad)
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("text/event-stream")
        assert json.loads(_frames(r.content)[0][6:])["error"].startswith("max_tokens")
        # A failure after the first response is an error event inside the 200 stream.
        r = c.post("/v2/models/tiny_fails/generate_stream", json=body)
        assert r.status_code == 200
        objs = [json.loads(f[6:]) for f in _frames(r.content)]
        assert len(objs) == 4 and "error" in objs[-1] and "text_output" in objs[0]
        # The request-level test hook: the same error frame from the ordinary model.
        r = c.post(
            "/v2/models/tiny/generate_stream",
            json={
                "text_input": "x",
                "stream": True,
                "parameters": {"fail_after": 2, "ignore_eos": True, "seed": 1},
            },
        )
        objs = [json.loads(f[6:]) for f in _frames(r.content)]
        assert r.status_code == 200 and len(objs) == 3
        assert objs[-1] == {"error": "Error generating stream: injected failure"}
        # A list in the request parameters is refused by Triton itself (JSON, not SSE).
        r = c.post(
            "/v2/models/tiny/generate_stream",
            json={"text_input": "x", "parameters": {"stop": ["a", "b"]}},
        )
        assert r.status_code == 400 and "invalid type" in r.json()["error"]


def test_triton_server_stops_its_whole_process_group(tmp_path: Path) -> None:
    try:
        venv = find_triton_venv()
    except Exception as exc:  # EngineUnavailable: the session fixture reports it
        pytest.skip(f"real Triton tier skipped: {exc}")
    srv = TritonServer(write_triton_repo(tmp_path / "repo", {"tiny": {}}), venv=venv)
    with srv:
        pid = srv.pid
        assert pid is not None
        url = srv.base_url
        assert httpx.get(url + "/v2/health/ready", timeout=TIMEOUT).status_code == 200
    assert srv.pid is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v2/health/ready", timeout=2.0)
    deadline = time.monotonic() + 10
    while _group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # the python-backend stubs of the group are gone too
    assert _group_members(pid) == []


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
