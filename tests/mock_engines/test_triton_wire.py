"""Golden bytes of Triton's generate-extension pieces, from ``src/http_server.cc`` (reference §5.5).

``FinalizeResponse`` collects ``id``/``model_name``/``model_version`` and the outputs in a
``std::map`` (sorted keys), writes compact rapidjson and, for ``generate_stream``, wraps each
response in ``data: `` … ``\\n\\n`` with no terminator.
"""

from __future__ import annotations

import json

from llorch_conformance.mock_engines._dialects.triton import error_json, response_json, sse

GOLDEN_STREAM = (
    b'data: {"id":"42","model_name":"llm","model_version":"1","text_output":","}\n\n'
    b'data: {"id":"42","model_name":"llm","model_version":"1","text_output":" world"}\n\n'
    b'data: {"id":"42","model_name":"llm","model_version":"1","text_output":"!"}\n\n'
)


def test_stream_matches_reconstructed_transcript() -> None:
    body = b"".join(
        sse(response_json(model="llm", version="1", request_id="42", outputs={"text_output": t}))
        for t in (",", " world", "!")
    )
    assert body == GOLDEN_STREAM


def test_keys_are_sorted_like_std_map_and_empty_id_is_dropped() -> None:
    out = response_json(
        model="llm",
        version="1",
        request_id="",
        outputs={"text_output": "hi", "finish_reason": "length", "num_output_tokens": 3},
    )
    assert out == (
        '{"finish_reason":"length","model_name":"llm","model_version":"1",'
        '"num_output_tokens":3,"text_output":"hi"}'
    )


def test_rapidjson_escapes_controls_with_upper_case_hex() -> None:
    out = response_json(model="m", version="1", request_id=None, outputs={"text_output": "\x1f\né"})
    assert '"text_output":"\\u001F\\né"' in out
    assert json.loads(out)["text_output"] == "\x1f\né"


def test_error_object() -> None:
    assert error_json("Model version not ready") == '{"error":"Model version not ready"}'
    assert sse(error_json("An Error Occurred")) == b'data: {"error":"An Error Occurred"}\n\n'
