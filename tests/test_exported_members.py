"""Keep every package's ``__all__`` honest: each name exists and no public name is forgotten."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_PACKAGES = [
    "llorch_conformance.adapters.api",
    "llorch_conformance.adapters.http_util",
    "mock_engines",
    "llorch_conformance.conformance.errors",
    "reports",
]


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_all_is_complete_and_exists(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:  # pragma: no cover - package not built yet
        pytest.fail(f"public package {name} cannot be imported")
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names missing {member!r}"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and not inspect.ismodule(v)
        and getattr(v, "__module__", name).startswith(name.split(".")[0])
        and n not in {"annotations"}
    }
    assert public <= set(exported), f"{name} exposes names not in __all__: {public - set(exported)}"
