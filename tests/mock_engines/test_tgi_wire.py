"""Golden bytes of TGI's wire pieces, written down from the router source before any server runs.

The expected strings are the reconstructed transcript of reference §3.8 (``router/src/server.rs``
``generate_stream_internal`` + ``lib.rs`` ``StreamResponse`` + axum 0.7 ``Event::json_data``), so
a change in the renderer that drifts from TGI's bytes fails here first.
"""

from __future__ import annotations

import json
import struct

import pytest

from llorch_conformance.mock_engines._dialects.tgi import (
    KEEPALIVE_COMMENT,
    TgiToken,
    error_body,
    f32_json,
    openai_error_event,
    sse,
    stream_event,
)

GOLDEN_STREAM = (
    b'data: {"index":1,"token":{"id":28725,"text":",","logprob":-1.2265625,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data: {"index":2,"token":{"id":1526,"text":" world","logprob":-0.44335938,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data: {"index":3,"token":{"id":28808,"text":"!","logprob":-0.7988281,"special":false},'
    b'"generated_text":", world!","details":{"finish_reason":"length","generated_tokens":3,'
    b'"seed":null,"input_length":2}}\n\n'
)


def test_stream_matches_reconstructed_transcript() -> None:
    toks = [
        TgiToken(28725, ",", -1.2265625),
        TgiToken(1526, " world", -0.443359375),
        TgiToken(28808, "!", -0.798828125),
    ]
    body = b"".join(
        sse(
            stream_event(
                i + 1,
                t,
                generated_text=", world!" if i == 2 else None,
                finish_reason="length",
                generated_tokens=3,
                seed=None,
                input_length=2,
                details=True,
            )
        )
        for i, t in enumerate(toks)
    )
    assert body == GOLDEN_STREAM


def test_legacy_axum_06_framing_has_no_space() -> None:
    assert sse('{"a":1}', legacy=True) == b'data:{"a":1}\n\n'
    assert sse('{"a":1}') == b'data: {"a":1}\n\n'


def test_details_null_unless_requested_even_on_last_event() -> None:
    ev = stream_event(
        1, TgiToken(5, "x", -0.5), generated_text="x", finish_reason="length", details=False
    )
    assert ev.endswith('"generated_text":"x","details":null}')


def test_special_eos_token_and_seed() -> None:
    ev = stream_event(
        4,
        TgiToken(2, "</s>", -0.25, special=True),
        generated_text="ab",
        finish_reason="eos_token",
        generated_tokens=4,
        seed=42,
        input_length=7,
        details=True,
    )
    assert ev == (
        '{"index":4,"token":{"id":2,"text":"</s>","logprob":-0.25,"special":true},'
        '"generated_text":"ab","details":{"finish_reason":"eos_token","generated_tokens":4,'
        '"seed":42,"input_length":7}}'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(-0.443359375, "-0.44335938", id="shortest-f32-digits"),
        pytest.param(-2.0, "-2.0", id="integral-keeps-dot-zero"),
        pytest.param(-1e-7, "-1e-7", id="small-uses-exponent"),
        pytest.param(-0.0012, "-0.0012", id="small-stays-decimal"),
        pytest.param(-1.5e30, "-1.5e30", id="large-exponent"),
        pytest.param(0.0, "0.0", id="zero"),
        pytest.param(float("nan"), "null", id="nan-is-null"),
    ],
)
def test_f32_json_follows_ryu_layout(value: float, expected: str) -> None:
    assert f32_json(value) == expected


def test_f32_json_round_trips_through_f32() -> None:
    pack = struct.Struct("<f")
    for i in range(1, 2000):
        x = -i / 977.0
        want = pack.unpack(pack.pack(x))[0]
        assert pack.unpack(pack.pack(float(f32_json(x))))[0] == want


def test_text_escaping_like_serde_json() -> None:
    # Non-ASCII raw, control characters escaped, U+2028 left alone (serde_json does not escape it).
    tok = TgiToken(7, "é\n\t\x01\u2028🦙", -1.0)
    assert tok.json() == '{"id":7,"text":"é\\n\\t\\u0001\u2028🦙","logprob":-1.0,"special":false}'


def test_error_envelopes() -> None:
    assert error_body("Model is overloaded", "overloaded") == (
        '{"error":"Model is overloaded","error_type":"overloaded"}'
    )
    assert json.loads(openai_error_event("boom")) == {
        "error": {"message": "boom", "http_status_code": 422}
    }
    assert KEEPALIVE_COMMENT == b":\n\n"
