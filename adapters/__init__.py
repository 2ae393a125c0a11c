"""Worker adapters: the contract (``adapters.api``), the shared HTTP layer (``adapters.http_util``),
one module per engine, the fault-injecting mock adapter and the adapter host.

The engine adapters live in their own modules (``adapters.llamacpp.LlamaCppAdapter``,
``adapters.vllm.VllmAdapter``, ``adapters.tgi.TgiAdapter``, ``adapters.triton.TritonAdapter``,
``adapters.openai.OpenAIAdapter``, ``adapters.mock.MockAdapter``). This package root stays light:
importing ``adapters.api`` must not pull in httpx or prometheus, so the registry below imports an
adapter module only when its factory is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .api import UsageError, WorkerAdapter

__all__ = ["BUILTIN_ADAPTERS", "AdapterFactory", "adapter_factory", "create_adapter"]

#: ``(base_url, **config) -> WorkerAdapter``
AdapterFactory = Callable[..., WorkerAdapter]

_WHERE: Mapping[str, tuple[str, str]] = {
    "llamacpp": ("llorch_conformance.adapters.llamacpp", "LlamaCppAdapter"),
    "vllm": ("llorch_conformance.adapters.vllm", "VllmAdapter"),
    "tgi": ("llorch_conformance.adapters.tgi", "TgiAdapter"),
    "triton": ("llorch_conformance.adapters.triton", "TritonAdapter"),
    "openai": ("llorch_conformance.adapters.openai", "OpenAIAdapter"),
    "mock": ("llorch_conformance.adapters.mock", "MockAdapter"),
}


def _lazy(module: str, name: str) -> AdapterFactory:
    def factory(base_url: str, **config: Any) -> WorkerAdapter:
        cls = getattr(importlib.import_module(module), name)
        adapter: WorkerAdapter = cls(base_url, **config)
        return adapter

    factory.__name__ = f"create_{name}"
    factory.__qualname__ = factory.__name__
    factory.__doc__ = f"Build a :class:`{module}.{name}` from ``(base_url, **config)``."
    return factory


#: Dialect name → factory ``(base_url, **config) -> WorkerAdapter`` (read-only).
BUILTIN_ADAPTERS: Mapping[str, AdapterFactory] = MappingProxyType(
    {dialect: _lazy(*where) for dialect, where in _WHERE.items()}
)


def adapter_factory(dialect: str) -> AdapterFactory:
    """The factory for a built-in dialect; an unknown name is a :class:`UsageError`."""
    try:
        return BUILTIN_ADAPTERS[dialect]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_ADAPTERS))
        raise UsageError(f"unknown adapter {dialect!r}; built-in adapters: {known}") from None


def create_adapter(dialect: str, base_url: str, **config: Any) -> WorkerAdapter:
    """Build a built-in adapter by dialect name."""
    return adapter_factory(dialect)(base_url, **config)
