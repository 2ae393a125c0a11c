"""Targets: which adapters a run drives, against which engine.

A target is an adapter factory ``(base_url, **config) -> WorkerAdapter`` plus the engine dialect
it speaks. Three sources, in the order the issue lists them:

* the built-in adapters (default): ``adapters.BUILTIN_ADAPTERS`` (dialect → factory);
* a vendor's adapter: ``--adapter package.module:factory --dialect <engine>``, or the *name* of an
  entry point in the group ``llorch_conformance.adapters`` (the dialect comes from
  ``--dialect`` or from a ``dialect`` attribute of the factory);
* ``--engine-url URL``: the same adapters against a live engine instead of a mock engine. Then
  scenarios that need fault control or the engine journal are reported ``unsupported``.

Why resolution is lazy: the pytest plugin must stay light (no adapters or mock engines imported
until a run asks for them), so this module imports adapters only inside :func:`resolve_targets`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from adapters.api import UsageError

__all__ = ["ENTRY_POINT_GROUP", "KNOWN_DIALECTS", "Target", "resolve_targets"]

ENTRY_POINT_GROUP = "llorch_conformance.adapters"
#: Engine dialects the mock engines can speak (the harness's vocabulary for ``--dialect``).
KNOWN_DIALECTS = ("llamacpp", "vllm", "tgi", "openai", "triton", "mock")

Factory = Callable[..., Any]


@dataclass(frozen=True)
class Target:
    """One adapter under test. ``name`` is what the summary shows (test ids use it too)."""

    name: str
    dialect: str
    factory: Factory = field(compare=False, repr=False)
    origin: str = "builtin"  # builtin | vendor | entry-point
    spec: str = ""
    engine_url: str | None = None

    @property
    def live(self) -> bool:
        return self.engine_url is not None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dialect": self.dialect,
            "origin": self.origin,
            "spec": self.spec,
            "engine_url": self.engine_url,
        }


def _builtin() -> dict[str, Factory]:
    try:
        mod = importlib.import_module("adapters")
    except ImportError as exc:  # pragma: no cover - the package is part of this distribution
        raise UsageError(f"cannot import the built-in adapters: {exc}") from None
    table = getattr(mod, "BUILTIN_ADAPTERS", None)
    if not isinstance(table, Mapping) or not table:
        raise UsageError("no built-in adapters are registered (adapters.BUILTIN_ADAPTERS is empty)")
    return dict(table)


def _load_spec(spec: str) -> tuple[Factory, str]:
    """``package.module:factory`` or an entry-point name → (factory, origin)."""
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        if not mod_name or not attr:
            raise UsageError(f"--adapter {spec!r}: expected package.module:factory")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            raise UsageError(
                f"--adapter {spec!r}: cannot import module {mod_name!r} ({exc})"
            ) from None
        obj: Any = mod
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise UsageError(f"--adapter {spec!r}: module {mod_name!r} has no {attr!r}")
        if not callable(obj):
            raise UsageError(f"--adapter {spec!r}: {attr!r} is not callable")
        return obj, "vendor"
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
    if not matches:
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        hint = f" (registered: {', '.join(known)})" if known else ""
        raise UsageError(
            f"unknown adapter {spec!r}: not module:factory and no entry point in "
            f"{ENTRY_POINT_GROUP!r}{hint}"
        )
    try:
        loaded = matches[0].load()
    except Exception as exc:
        raise UsageError(f"adapter entry point {spec!r} failed to load: {exc}") from None
    if not callable(loaded):
        raise UsageError(f"adapter entry point {spec!r} is not callable")
    return loaded, "entry-point"


def resolve_targets(
    *,
    adapter: str | None = None,
    dialect: str | None = None,
    engine_url: str | None = None,
    only: Sequence[str] = (),
) -> list[Target]:
    """Resolve the command-line choice into targets; bad input raises :class:`UsageError`.

    ``only`` restricts the built-in adapters to those dialects (``--only llamacpp,vllm``).
    """
    if dialect is not None and dialect not in KNOWN_DIALECTS:
        raise UsageError(f"unknown dialect {dialect!r} (known: {', '.join(KNOWN_DIALECTS)})")
    if engine_url is not None and not engine_url.startswith(("http://", "https://")):
        raise UsageError(f"--engine-url must be an http(s) URL, got {engine_url!r}")
    if adapter is not None:
        factory, origin = _load_spec(adapter)
        d = dialect or getattr(factory, "dialect", None)
        if not isinstance(d, str) or not d:
            raise UsageError(
                f"--adapter {adapter!r} needs --dialect (one of {', '.join(KNOWN_DIALECTS)})"
            )
        if d not in KNOWN_DIALECTS:
            raise UsageError(f"unknown dialect {d!r} (known: {', '.join(KNOWN_DIALECTS)})")
        name = adapter.rpartition(":")[2] if origin == "vendor" else adapter
        return [Target(name, d, factory, origin, adapter, engine_url)]
    table = _builtin()
    wanted = list(only)
    if dialect is not None:
        wanted = [dialect]
    if engine_url is not None and not wanted:
        raise UsageError("--engine-url needs --dialect: which engine listens there?")
    for w in wanted:
        if w not in table:
            raise UsageError(
                f"no built-in adapter for dialect {w!r} (built-in: {', '.join(sorted(table))})"
            )
    names = wanted or sorted(table)
    return [
        Target(n, n, table[n], "builtin", f"adapters.BUILTIN_ADAPTERS[{n!r}]", engine_url)
        for n in names
    ]
