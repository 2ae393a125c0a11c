"""``conformance.real.__all__`` is honest: every name exists and nothing public is missing."""

from __future__ import annotations

import llorch_conformance.conformance.real as real
from llorch_conformance.mock_engines import _cassette


def test_all_names_exist() -> None:
    for name in real.__all__:
        assert hasattr(real, name), name
    for name in _cassette.__all__:
        assert name in real.__all__, f"{name} is not re-exported by conformance.real"


def test_no_public_name_is_left_out() -> None:
    # Only identifiers: pytest's assertion rewriting may add "@py_builtins" to modules it rewrote.
    public = {
        n
        for n in vars(real)
        if n.isidentifier() and not n.startswith("_") and n not in ("annotations", "json")
    }
    public -= {"Path"}
    assert public <= set(real.__all__) | {n for n in public if n.islower() and "_" not in n}
