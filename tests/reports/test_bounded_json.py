"""``bounded_json`` (what the bundle writer records) keeps its rules on its quick path.

The oracle is the rule list as first written: one ``isinstance`` chain, a regex on every string
and key. The writer now skips the regex for ASCII strings and plain keys (issue 18); the result
must be the same value, of the same types, for any input.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llorch_conformance.reports._bundle_read import MAX_DEPTH, MAX_INT, bounded_json

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _oracle(value: Any, max_depth: int = MAX_DEPTH - 8, depth: int = 1) -> Any:
    if isinstance(value, dict):
        if depth > max_depth:
            return f"…[object nested deeper than {max_depth} levels cut]"
        return {
            _SURROGATE.sub("?", str(k)): _oracle(v, max_depth, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        if depth > max_depth:
            return f"…[array nested deeper than {max_depth} levels cut]"
        return [_oracle(v, max_depth, depth + 1) for v in value]
    if isinstance(value, str):
        return _SURROGATE.sub("?", value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) <= MAX_INT:
            return value
        try:
            return str(value)
        except ValueError:
            return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (``1 == 1.0 == True`` is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class _Str(str):
    pass


class _Huge(int):
    """An integer with more digits than Python prints (``repr`` says so, for hypothesis)."""

    def __repr__(self) -> str:
        return "<integer of 16610 bits>"


_KEYS = st.one_of(
    st.text(max_size=4),
    st.text(alphabet="a\ud800\udfffé?", max_size=3),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.builds(_Str, st.text(alphabet="ab\ud801", max_size=3)),
)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([MAX_INT, MAX_INT + 1, -MAX_INT - 1, _Huge(10**5000)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.text(alphabet="x\ud800\udbff\udc00é…", max_size=6),
    st.builds(_Str, st.text(alphabet="ab\ud801", max_size=3)),
    st.builds(object),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=4),
        st.dictionaries(st.text(max_size=3), inner, max_size=3).map(OrderedDict),
    ),
    max_leaves=25,
)


@settings(deadline=None, max_examples=500)
@given(value=_VALUES, max_depth=st.integers(1, 6))
def test_quick_path_gives_what_the_rules_give(value: Any, max_depth: int) -> None:
    out, expected = bounded_json(value, max_depth), _oracle(value, max_depth)
    if isinstance(value, object) and type(value) is object:  # an unknown leaf is passed through
        assert out is value
        return
    assert _same(_strip_objects(out), _strip_objects(expected))


def _strip_objects(v: Any) -> Any:
    """Unknown objects are passed through as they are: compare them by identity."""
    if isinstance(v, dict):
        return {k: _strip_objects(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_strip_objects(x) for x in v]
    if type(v) is object:
        return f"<object {id(v)}>"
    return v


def test_nesting_is_cut_at_the_same_depth() -> None:
    deep: Any = "leaf"
    for i in range(80):
        deep = [deep] if i % 2 else {"k": deep}
    assert _same(bounded_json(deep), _oracle(deep))
    assert "nested deeper than" in str(bounded_json(deep))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, -0.0, 1e-07, 18446744073709551616, true, null], "b": {"a": 1, "a": 2}}',
        '{"nan": NaN, "inf": -Infinity, "s": "\\ud800", "pair": "\\ud83d\\ude00"}',
        '{"big": 1e400, "deep": ' + "[" * 100 + "]" * 100 + "}",
        '"\\u0000 \\u2028 é"',
    ],
)
def test_redacted_evidence_is_parsed_as_json_loads_parses_it(text: str) -> None:
    import json

    from llorch_conformance._json import loads as _parse

    assert repr(_parse(text)) == repr(json.loads(text))  # repr: NaN, -0.0, int vs float
