"""Bad input never crashes the TGI or Triton mock: random JSON bodies get the engine's own 4xx.

Property: for any JSON document (and for the generate shapes with random field values) the mock
answers within the client timeout with a status from the engine's known set — never an
unhandled 500 and never a hang. Triton's only 500 is a model-side ``Error generating stream``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llorch_conformance.mock_engines import MockEngine, run_mock_engine

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
TGI_PARAMS = st.dictionaries(
    st.sampled_from(
        [
            "max_new_tokens",
            "temperature",
            "top_p",
            "top_k",
            "stop",
            "details",
            "do_sample",
            "seed",
            "best_of",
            "truncate",
        ]
    ),
    JSON,
    max_size=4,
)
TRITON_KEYS = st.sampled_from(
    [
        "text_input",
        "stream",
        "exclude_input_in_output",
        "return_finish_reason",
        "sampling_parameters",
        "id",
        "parameters",
        "max_tokens",
    ]
)
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def tgi() -> Iterator[MockEngine]:
    with run_mock_engine("tgi") as eng:
        yield eng


@pytest.fixture(scope="module")
def triton() -> Iterator[MockEngine]:
    with run_mock_engine("triton") as eng:
        yield eng


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    # One pool: building a client per call costs more than the call itself.
    with httpx.Client(timeout=10, headers={"content-type": "application/json"}) as c:
        yield c


@SETTINGS
@given(doc=JSON)
@pytest.mark.parametrize(
    "path", ["/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions"]
)
def test_tgi_any_json_document(http: httpx.Client, tgi: MockEngine, path: str, doc: Any) -> None:
    r = http.post(tgi.base_url + path, content=json.dumps(doc).encode())
    assert r.status_code in (200, 400, 413, 415, 422), r.text


@SETTINGS
@given(inputs=JSON, params=TGI_PARAMS)
def test_tgi_generate_shapes(
    http: httpx.Client, tgi: MockEngine, inputs: Any, params: dict[str, Any]
) -> None:
    body = json.dumps({"inputs": inputs, "parameters": params}).encode()
    r = http.post(tgi.base_url + "/generate", content=body)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422 and r.headers["content-type"] == "application/json":
        assert r.json()["error_type"] == "validation"
    s = http.post(tgi.base_url + "/generate_stream", content=body)
    assert s.status_code in (200, 422)


@SETTINGS
@given(doc=st.dictionaries(TRITON_KEYS, JSON, max_size=5) | JSON)
@pytest.mark.parametrize("route", ["generate", "generate_stream"])
def test_triton_any_generate_body(
    http: httpx.Client, triton: MockEngine, route: str, doc: Any
) -> None:
    r = http.post(f"{triton.base_url}/v2/models/llm/{route}", content=json.dumps(doc).encode())
    assert r.status_code in (200, 400, 404, 500), r.text
    if r.status_code in (400, 500) and b"Error generating stream" not in r.content:
        assert r.headers["content-type"] == "application/json"
        assert isinstance(r.json()["error"], str)


def test_triton_huge_body_is_a_json_400(http: httpx.Client, triton: MockEngine) -> None:
    body = b'{"text_input":"' + b"x" * (17 * 1024 * 1024) + b'"}'
    r = http.post(triton.base_url + "/v2/models/llm/generate", content=body)
    assert r.status_code == 400
    assert "exceeds the maximum allowed input size" in r.json()["error"]
