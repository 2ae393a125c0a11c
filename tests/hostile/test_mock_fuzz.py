"""Hostile requests against every route of every mock dialect (issue 16 items 8 and 9).

Hypothesis builds bodies, headers and paths an attacker or a broken client would send — deep
nesting, huge integers, wrong types in the fields the engines read, bad UTF-8, lone surrogates,
huge strings, garbage headers and paths — and sends them over a real socket to a real mock
engine. The checks: never a 500 (unless it is the engine's own answer, listed in
:func:`documented_500`), never a hang (every request has a timeout and must be answered), and a
journal that stays inside its byte budget however much is sent.

The regression tests below pin the answers that were 500s before: deep nesting on all five mocks,
a lone surrogate on the llama.cpp and TGI mocks, and a journal without a byte limit.

Bounded for CI: ``LLORCH_FUZZ_EXAMPLES`` examples per dialect (default 60; the closing note's
figures used 4,000).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llorch_conformance.mock_engines import (
    DIALECTS,
    FAULT_IDS,
    Journal,
    MockEngine,
    get_dialect,
    run_mock_engine,
)

from ._figures import HostileFigures

EXAMPLES = int(os.environ.get("LLORCH_FUZZ_EXAMPLES", "60"))
#: per request: a mock that has not answered by then hangs
TIMEOUT_S = 10.0
#: the journal budget during fuzzing: small, so the fuzz run itself must evict
JOURNAL_BYTES = 4 << 20
DEEP = 100_000

#: Fields the engines read, given wrong or hostile values by the fuzzer.
KNOWN_FIELDS = (
    "prompt",
    "messages",
    "inputs",
    "text_input",
    "parameters",
    "model",
    "max_tokens",
    "n_predict",
    "max_new_tokens",
    "stream",
    "stop",
    "seed",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "logprobs",
    "tokens",
    "content",
    "stream_options",
    "sampling_parameters",
)

# -- answers the engines give themselves ------------------------------------------------------


def documented_500(dialect: str, resp: httpx.Response) -> bool:
    """A 500 that is the engine's own answer to this request, not a mock failure.

    Triton reports a body it cannot parse or read (TritonJson: "failed to parse the request JSON
    buffer", "attempt to get members for non-object", "Unable to parse JSON bytes array", ...) as
    an INTERNAL error: 500 in its own ``{"error": "..."}`` envelope
    (``mock_engines._dialects.triton``). A failure of the mock itself is uvicorn's plain-text 500.
    """
    if dialect != "triton":
        return False
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str)


# -- strategies ------------------------------------------------------------------------------

_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.one_of(_SURROGATES, st.characters()), min_size=1, max_size=8),
    st.integers(1_000, 300_000).map(lambda n: "x" * n),
    st.sampled_from(["", "\x00", "\u202e", "語" * 100, "\ufeff{", "[DONE]"]),
)
_HUGE_INT = st.sampled_from([10**30, -(10**30), 2**63, 2**64, -(2**63) - 1]) | st.integers(
    4_000, 4_300
).map(lambda n: int("9" * n))
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    _HUGE_INT,
    st.floats(allow_nan=True, allow_infinity=True),
    _HOSTILE_TEXT,
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _dumps(obj: Any) -> bytes:
    """JSON as a client sends it: NaN/Infinity allowed, lone surrogates as ``\\ud800`` escapes."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=True).encode()


@st.composite
def _deep(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([127, 128, 129, 1_000, 5_000, DEEP]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    nest = opener * depth + b"1" + closer * depth
    where = draw(st.sampled_from(["top", "field", "prompt"]))
    if where == "top":
        return nest
    key = b"x" if where == "field" else draw(st.sampled_from(KNOWN_FIELDS)).encode()
    return (
        b'{"prompt":"Hi","inputs":"Hi","max_tokens":2,"n_predict":2,"' + key + b'":' + nest + b"}"
    )


@st.composite
def _object(draw: st.DrawFn) -> bytes:
    """A plausible request with hostile values in the fields the engines read."""
    base: dict[str, Any] = {"prompt": "Hi", "inputs": "Hi", "max_tokens": 2, "n_predict": 2}
    for name in draw(st.lists(st.sampled_from(KNOWN_FIELDS), max_size=4, unique=True)):
        base[name] = draw(_VALUE)
    if draw(st.booleans()):
        base["messages"] = [{"role": "user", "content": draw(_HOSTILE_TEXT)}]
    return _dumps(base)


_RAW = st.one_of(
    st.binary(max_size=200),  # bad UTF-8 and garbage
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"prompt":"\xff\xfe"}',
            b'{"prompt":"\\ud800"}',
            b'{"prompt":"\\udc00x"}',
            b'{"prompt":"\\ud800\\u0041"}',
            b'{"n_predict":' + b"9" * 5_000 + b"}",
            b'{"max_tokens":1e400}',
            b"[]",
            b"null",
            b'"x"',
        ]
    ),
)
BODY = st.one_of(_object(), _deep(), _RAW, _VALUE.map(_dumps))

# (h11 refuses to send values with surrounding whitespace: stripped)
_HEADER_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=64
).map(str.strip) | st.sampled_from(
    ["application/json; charset=utf-16", "text/plain", "", "*/*", "a" * 4000]
)
HEADERS = st.dictionaries(
    st.sampled_from(
        ["content-type", "accept", "x-mock-fault", "accept-encoding", "x-request-id", "x-other"]
    ),
    _HEADER_VALUE,
    max_size=3,
)
PATH_SUFFIX = st.one_of(
    st.just(""),
    st.sampled_from(["/", "//", "/..", "/%00", "/%ff", "?a=" + "b" * 3000, "?stream=true&&&"]),
    st.text(alphabet="abc/%?=&.", max_size=20).map(lambda s: "/" + s),
)


# -- the engines -----------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    http_500: int = 0
    worst_s: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


def _paths(dialect: str, model: str) -> list[tuple[str, str]]:
    """Every route of the dialect, path parameters filled with the served model."""
    out = []
    for route in get_dialect(dialect).routes():
        path = re.sub(r"\{model[^}]*\}", model, route.path)
        path = re.sub(r"\{version[^}]*\}", "1", path)
        out.append((route.method, re.sub(r"\{[^}]+\}", "x", path)))
    return out


@pytest.fixture(scope="module", params=DIALECTS)
def fuzzed(
    request: pytest.FixtureRequest, hostile_figures: HostileFigures
) -> Iterator[tuple[str, MockEngine, httpx.Client, Tally]]:
    dialect = str(request.param)
    with run_mock_engine(dialect, seed=5) as eng, httpx.Client(timeout=TIMEOUT_S) as client:
        eng.journal.max_bytes = JOURNAL_BYTES
        tally = Tally()
        yield dialect, eng, client, tally
        hostile_figures.record(
            f"mocks: route fuzz ({dialect})", tally.cases, tally.http_500, tally.worst_s, TIMEOUT_S
        )


def _valid_fault(value: str) -> bool:
    return value.split(";", 1)[0].strip() in FAULT_IDS


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_no_route_of_any_mock_answers_500_or_hangs(
    fuzzed: tuple[str, MockEngine, httpx.Client, Tally], data: st.DataObject
) -> None:
    dialect, eng, client, tally = fuzzed
    method, path = data.draw(st.sampled_from(_paths(dialect, eng.model)), label="route")
    body = data.draw(BODY, label="body")
    headers = data.draw(HEADERS, label="headers")
    # a valid X-Mock-Fault asks for the fault (http.500 included): not hostile input
    headers = {k: v for k, v in headers.items() if not (k == "x-mock-fault" and _valid_fault(v))}
    headers.setdefault("content-type", "application/json")
    headers.setdefault("authorization", "Bearer fuzz-key")
    suffix = data.draw(PATH_SUFFIX, label="path suffix")
    t0 = time.monotonic()
    resp = client.request(method, eng.base_url + path + suffix, content=body, headers=headers)
    elapsed = time.monotonic() - t0
    tally.cases += 1
    tally.worst_s = max(tally.worst_s, elapsed)
    tally.statuses[resp.status_code] = tally.statuses.get(resp.status_code, 0) + 1
    if resp.status_code == 500 and not documented_500(dialect, resp):
        tally.http_500 += 1
        raise AssertionError(f"{dialect} {method} {path}{suffix}: 500 {resp.text[:300]!r}")
    assert eng.journal.bytes <= JOURNAL_BYTES + _newest(eng.journal)


def _newest(journal: Journal) -> int:
    """The newest entry is kept whatever its size: the budget may be exceeded by it alone."""
    last = journal.last()
    return 0 if last is None else max(0, last.kept_bytes)


# -- the answers that were 500s before --------------------------------------------------------

_DEEP_NEST = b"[" * DEEP + b"]" * DEEP


def _generation(dialect: str, model: str, extra: bytes) -> tuple[str, bytes]:
    """A native generation request with ``extra`` spliced in as the value of ``"x"``."""
    if dialect == "llamacpp":
        return "/completion", b'{"prompt":"Hi","n_predict":2,"x":' + extra + b"}"
    if dialect == "tgi":
        return "/generate", b'{"inputs":"Hi","parameters":{"max_new_tokens":2},"x":' + extra + b"}"
    if dialect == "triton":
        path = f"/v2/models/{model}/generate"
        return path, b'{"text_input":"Hi","max_tokens":2,"x":' + extra + b"}"
    body = b'{"model":"' + model.encode() + b'","prompt":"Hi","max_tokens":2,"x":' + extra + b"}"
    return "/v1/completions", body


def _undocumented_500s(dialect: str, *responses: httpx.Response) -> int:
    return sum(r.status_code == 500 and not documented_500(dialect, r) for r in responses)


def _post(eng: MockEngine, path: str, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json", "authorization": "Bearer k"}
    return httpx.post(eng.base_url + path, content=body, headers=headers, timeout=TIMEOUT_S)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_deep_nesting_gets_the_engines_own_answer(
    dialect: str, hostile_figures: HostileFigures
) -> None:
    """100,000 levels: nlohmann (llama.cpp) and rapidjson (Triton) parse them (an unknown key is
    ignored / a non-scalar parameter refused), serde_json (TGI) stops at 128, FastAPI (vLLM)
    cannot parse the body, OpenAI cannot parse the JSON — each with its own 4xx, none a 500."""
    with run_mock_engine(dialect) as eng:
        path, body = _generation(dialect, eng.model, _DEEP_NEST)
        t0 = time.monotonic()
        resp = _post(eng, path, body)
        top = _post(eng, path, _DEEP_NEST)
        worst = time.monotonic() - t0
    hostile_figures.record("mocks: deep nesting", 2, _undocumented_500s(dialect, resp, top), worst)
    if dialect == "llamacpp":
        assert resp.status_code == 200 and resp.json()["stop"] is True
        assert top.status_code == 400
        assert top.json()["error"]["message"] == "Request body must be a JSON object"
    elif dialect == "vllm":
        for r in (resp, top):
            assert r.status_code == 400
            assert r.json()["error"]["message"] == "There was an error parsing the body"
            assert r.json()["error"]["type"] == "Bad Request"
    elif dialect == "openai":
        for r in (resp, top):
            assert r.status_code == 400
            assert r.json()["error"]["message"].startswith("We could not parse the JSON body")
    elif dialect == "tgi":
        # level 128 is opened by the 127th "[" (the outer object is level 1)
        assert resp.status_code == 400
        assert resp.text == (
            "Failed to parse the request body as JSON: recursion limit exceeded at line 1 column "
            f"{body.index(b'[') + 126 + 1}"
        )
        assert top.status_code == 400
        assert top.text.endswith("recursion limit exceeded at line 1 column 128")
    else:
        assert resp.status_code == 400
        assert resp.json() == {
            "error": "parameter 'x' has invalid type. It should be either 'int', 'bool', or 'string'."
        }
        assert top.status_code == 500  # Triton's own INTERNAL: the document root is no object
        assert documented_500("triton", top)


def test_a_5000_digit_integer_on_triton_is_rapidjsons_own_parse_error() -> None:
    """Found by the 4,000-example run: CPython refuses the integer (ValueError, was a plain 500
    of the mock); rapidjson overflows the double — Triton's INTERNAL parse error."""
    with run_mock_engine("triton") as eng:
        body = b'{"text_input":"Hi","max_tokens":' + b"9" * 5_000 + b"}"
        resp = _post(eng, f"/v2/models/{eng.model}/generate", body)
    assert resp.status_code == 500 and documented_500("triton", resp)
    assert resp.json()["error"] == (
        "failed to parse the request JSON buffer: Number too big to be stored in double. at 32"
    )


def test_an_integer_beyond_a_double_as_vllm_temperature_is_pydantics_float_type() -> None:
    """Found by the 4,000-example run (was ``OverflowError`` → a plain 500 of the mock)."""
    with run_mock_engine("vllm") as eng:
        body = b'{"model":"%s","prompt":"Hi","max_tokens":2,"temperature":1%s}' % (
            eng.model.encode(),
            b"0" * 400,
        )
        resp = _post(eng, "/v1/completions", body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "Bad Request" and error["param"] == "body.temperature"
    assert "'type': 'float_type'" in error["message"]
    assert "Input should be a valid number" in error["message"]


def test_tgi_nesting_limit_is_serde_jsons_128() -> None:
    with run_mock_engine("tgi") as eng:
        ok = _post(eng, *_generation("tgi", eng.model, b"[" * 126 + b"]" * 126))
        over = _post(eng, *_generation("tgi", eng.model, b"[" * 127 + b"]" * 127))
    assert ok.status_code == 200  # 127 levels with the outer object; the 128th is refused
    assert over.status_code == 400 and "recursion limit exceeded" in over.text


@pytest.mark.parametrize(
    ("dialect", "status", "expected"),
    [
        (
            "llamacpp",
            400,
            "Invalid JSON body: [json.exception.parse_error.101] parse error at line 1, column 18: "
            "syntax error while parsing value - invalid string: "
            "surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF",
        ),
        (
            "tgi",
            400,
            "Failed to parse the request body as JSON: "
            "unexpected end of hex escape at line 1 column 19",
        ),
    ],
)
def test_lone_surrogate_in_a_prompt_gets_the_engines_own_4xx(
    dialect: str, status: int, expected: str, hostile_figures: HostileFigures
) -> None:
    field_name = b"prompt" if dialect == "llamacpp" else b"inputs"
    body = b'{"' + field_name + b'":"a\\ud800b","n_predict":2,"parameters":{}}'
    path = "/completion" if dialect == "llamacpp" else "/generate"
    with run_mock_engine(dialect) as eng:
        t0 = time.monotonic()
        resp = _post(eng, path, body)
        also = _post(eng, path, body.replace(b"\\ud800", b"\\udc00"))
        worst = time.monotonic() - t0
    hostile_figures.record(
        "mocks: lone surrogates", 2, _undocumented_500s(dialect, resp, also), worst
    )
    assert resp.status_code == status
    message = resp.json()["error"]["message"] if dialect == "llamacpp" else resp.text
    assert message == expected
    assert also.status_code == status  # a trailing half alone is refused too


def test_journal_is_bounded_in_bytes_with_a_note_of_what_was_dropped(
    hostile_figures: HostileFigures,
) -> None:
    """Bodies of ~1 MiB through a live engine: the journal keeps what fits its byte budget,
    drops the oldest and says so (it used to keep 10,000 entries of any size)."""
    budget = 3 << 20
    with run_mock_engine("llamacpp") as eng, httpx.Client(timeout=TIMEOUT_S) as client:
        eng.journal.max_bytes = budget
        big = b'{"prompt":"Hi","n_predict":2,"x":"' + b"y" * (1 << 20) + b'"}'
        t0 = time.monotonic()
        for _ in range(12):
            assert client.post(eng.base_url + "/completion", content=big).status_code == 200
        worst = time.monotonic() - t0
        journal = client.get(eng.base_url + "/__mock__/journal?frames=0").json()
        kept = eng.journal.bytes
    hostile_figures.record("mocks: journal budget", 12, 0, worst)
    assert kept <= budget
    assert 1 <= len(journal["entries"]) < 12
    assert journal["dropped"]["entries"] == 12 - len(journal["entries"])
    assert "dropped" in journal["dropped"]["note"]
    assert journal["counters"]["requests"] == 12  # the counters stay exact


def test_journal_keeps_the_newest_entry_whatever_its_size() -> None:
    j = Journal(max_bytes=1 << 20)
    for i in range(3):
        e = j.new_entry("POST", f"/p{i}", "", [], b"b" * 1000)
        e.frames.append(b"f" * (3 << 20))  # frames counted when the entry finishes
        j.finish(e)
    assert [e.path for e in j.entries] == ["/p2"]
    assert j.dropped_entries == 2 and j.dropped_bytes > 6 << 20
    j.clear()
    assert j.bytes == 0 and j.to_dict().get("dropped") is None
