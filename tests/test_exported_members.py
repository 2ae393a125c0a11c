"""Keep every package's ``__all__`` honest: each name exists and no public name is forgotten."""

from __future__ import annotations

import importlib
import inspect

import pytest

#: Every package a vendor (or a test of ours) imports: each keeps an honest ``__all__``.
PUBLIC_PACKAGES = [
    f"llorch_conformance.{name}"
    for name in (
        "adapters",
        "adapters.api",
        "adapters.http_util",
        "adapters.host",
        "adapters.orchestrator",
        "adapters.rbee_worker",
        "adapters.llamacpp",
        "adapters.vllm",
        "adapters.tgi",
        "adapters.triton",
        "adapters.openai",
        "adapters.mock",
        "mock_engines",
        "mock_engines.rbee",
        "conformance",
        "conformance.errors",
        "conformance.rbee",
        "conformance.real",
        "reports",
        "reports.gate",
    )
]


def _defined_in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + "._")


@pytest.mark.parametrize(
    "name", PUBLIC_PACKAGES, ids=lambda n: n.removeprefix("llorch_conformance.")
)
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
        # its own: defined in the package itself or one of its private modules (a name it
        # merely re-imports from another public package is that package's API, not this one's)
        and _defined_in(getattr(v, "__module__", name), name)
        and n not in {"annotations", "TYPE_CHECKING"}
    }
    assert public <= set(exported), f"{name} exposes names not in __all__: {public - set(exported)}"
