"""The built-in adapter registry and the public surface of the adapter modules."""

from __future__ import annotations

import importlib

import pytest

from llorch_conformance import adapters
from llorch_conformance.adapters import BUILTIN_ADAPTERS, adapter_factory, create_adapter
from llorch_conformance.adapters.api import ConfigError, UsageError, WorkerAdapter

MODULES = {
    "llamacpp": "LlamaCppAdapter",
    "vllm": "VllmAdapter",
    "tgi": "TgiAdapter",
    "triton": "TritonAdapter",
    "openai": "OpenAIAdapter",
    "mock": "MockAdapter",
}


def test_registry_covers_every_dialect() -> None:
    assert set(BUILTIN_ADAPTERS) == set(MODULES)


@pytest.mark.parametrize("dialect", sorted(MODULES))
def test_factories_build_adapters_from_explicit_config(dialect: str) -> None:
    config: dict[str, object] = {"pool_id": "p1", "replica_id": "r7"}
    if dialect in ("openai", "triton", "vllm"):
        config["model"] = "m"
    if dialect == "openai":
        config["api_key"] = "sk-test-key-000000000000"
    adapter = create_adapter(dialect, "http://127.0.0.1:9", **config)
    assert isinstance(adapter, WorkerAdapter)
    assert type(adapter).__name__ == MODULES[dialect]
    assert adapter_factory(dialect) is BUILTIN_ADAPTERS[dialect]


def test_unknown_dialect_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="built-in adapters"):
        adapter_factory("nope")


def test_missing_required_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        create_adapter("openai", "https://api.example", api_key="", model="m")
    with pytest.raises(ConfigError, match="model"):
        create_adapter("triton", "http://127.0.0.1:9", model="")
    with pytest.raises(ConfigError, match="base_url"):
        create_adapter("llamacpp", "127.0.0.1:8080")


@pytest.mark.parametrize("module", ["adapters", *(f"adapters.{m}" for m in MODULES)])
def test_all_is_honest(module: str) -> None:
    mod = importlib.import_module(module)
    exported = mod.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name!r}"


def test_package_root_stays_light() -> None:
    # The registry imports adapter modules lazily: importing the root must not need them.
    assert "BUILTIN_ADAPTERS" in adapters.__all__
