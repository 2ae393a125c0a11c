"""The fixture itself: model, start, health, wire basics, clean stop (real llama-server)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from llorch_conformance.conformance.real import LlamaServer, tiny_vocab, write_tiny_model

TIMEOUT = 30.0


def test_tiny_model_is_small_seeded_and_has_byte_tokens(tmp_path: Path) -> None:
    a = write_tiny_model(tmp_path / "a.gguf", seed=3)
    b = write_tiny_model(tmp_path / "b.gguf", seed=3)
    c = write_tiny_model(tmp_path / "c.gguf", seed=4)
    assert a.sha256 == b.sha256 != c.sha256
    assert 100_000 < a.size_bytes < 1_000_000
    tokens, scores, types = tiny_vocab()
    assert len(tokens) == len(scores) == len(types) == a.n_vocab
    assert [f"<0x{i:02X}>" for i in range(256)] == tokens[3:259]


def test_server_is_healthy_on_loopback_and_reports_itself(real_server: LlamaServer) -> None:
    assert real_server.base_url.startswith("http://127.0.0.1:")
    assert real_server.health_log and real_server.health_log[-1].status == 200
    props = httpx.get(real_server.base_url + "/props", timeout=TIMEOUT).json()
    assert props["total_slots"] == 2
    assert str(props["build_info"]).startswith("b")
    slots = httpx.get(real_server.base_url + "/slots", timeout=TIMEOUT).json()
    assert [s["id"] for s in slots] == [0, 1]


def test_stream_splits_multibyte_characters_over_byte_tokens(real_server: LlamaServer) -> None:
    """Random weights pick byte tokens: the real server's partial-UTF-8 handling is on the wire.

    Over a few seeded prompts, at least one streamed frame must come from a byte token (its
    ``tokens`` id is one of the 256 byte tokens), and every frame must still be valid JSON
    with valid UTF-8 text — that is what adapters must cope with.
    """
    byte_ids = set(range(3, 259))
    seen_byte_token = False
    with httpx.Client(base_url=real_server.base_url, timeout=TIMEOUT) as c:
        for seed in range(4):
            body = {"prompt": "café 日本", "n_predict": 48, "seed": seed, "stream": True}
            with c.stream("POST", "/completion", json=body) as r:
                assert r.status_code == 200
                raw = r.read()
            frames = [f for f in raw.split(b"\n\n") if f]
            assert all(f.startswith(b"data: ") for f in frames)
            objs = [json.loads(f[6:].decode("utf-8")) for f in frames]
            assert objs[-1]["stop"] is True
            for o in objs[:-1]:
                if byte_ids & set(o["tokens"]):
                    seen_byte_token = True
            if seen_byte_token:
                break
    assert seen_byte_token


def test_stop_is_clean_and_frees_the_port(llama_binary: Path, tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "m.gguf", seed=2)
    srv = LlamaServer(model.path, binary=llama_binary)
    with srv:
        url = srv.base_url
        assert httpx.get(url + "/health", timeout=TIMEOUT).status_code == 200
    assert srv.pid is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2.0)
