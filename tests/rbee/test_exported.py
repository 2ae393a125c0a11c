"""``__all__`` of the rbee packages is complete and honest (as tests/test_exported_members.py)."""

from __future__ import annotations

import importlib
import inspect

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "llorch_conformance.adapters.rbee_worker",
        "llorch_conformance.mock_engines.rbee",
        "llorch_conformance.conformance.rbee",
    ],
)
def test_all_is_complete_and_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    for member in exported:
        assert hasattr(module, member), member
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not inspect.ismodule(v) and n != "annotations"
    }
    assert public <= set(exported), public - set(exported)
