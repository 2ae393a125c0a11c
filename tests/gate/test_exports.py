"""Keep ``reports.gate.__all__`` honest (the same rule as tests/test_exported_members.py)."""

from __future__ import annotations

import inspect

import llorch_conformance.reports.gate as gate


def test_all_is_complete_and_exists() -> None:
    exported = gate.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(gate, name), name
    public = {
        n
        for n, v in vars(gate).items()
        if not n.startswith("_")
        and not inspect.ismodule(v)
        and getattr(v, "__module__", "llorch_conformance.reports.gate").startswith(
            "llorch_conformance.reports"
        )
        and n != "annotations"
    }
    assert public <= set(exported), public - set(exported)
