"""Registry of dialects. Each dialect module exposes one object (a :class:`Dialect` subclass).

To add a dialect: write ``mock_engines/_dialects/<name>.py`` exposing ``DIALECT`` and add one
``register`` line below. ``DIALECTS`` lists the registered names in the canonical order.
"""

from __future__ import annotations

from llorch_conformance.adapters.api import ConfigError

from .._wire import Dialect

__all__ = ["CANONICAL_ORDER", "dialect_names", "get_dialect", "register"]

CANONICAL_ORDER = ("llamacpp", "vllm", "tgi", "openai", "triton")
_REGISTRY: dict[str, Dialect] = {}


def register(dialect: Dialect) -> None:
    """Add a dialect object under its ``name``."""
    if not dialect.name:
        raise ValueError("dialect without a name")
    _REGISTRY[dialect.name] = dialect


def get_dialect(name: str) -> Dialect:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(dialect_names())
        raise ConfigError(f"unknown dialect {name!r} (known: {known})") from None


def dialect_names() -> tuple[str, ...]:
    ordered = [n for n in CANONICAL_ORDER if n in _REGISTRY]
    return tuple(ordered + sorted(n for n in _REGISTRY if n not in CANONICAL_ORDER))


from . import llamacpp as _llamacpp  # noqa: E402

register(_llamacpp.DIALECT)

from . import openai as _openai  # noqa: E402
from . import vllm as _vllm  # noqa: E402

register(_vllm.DIALECT)
register(_openai.DIALECT)

from . import tgi as _tgi  # noqa: E402
from . import triton as _triton  # noqa: E402

register(_tgi.DIALECT)
register(_triton.DIALECT)
