"""The conformance runner: requirement catalogue, targets, results, pytest plugin and the CLI.

Public API (kept light: importing it pulls in no adapters, servers or mock engines)::

    from llorch_conformance.conformance import CATALOGUE, Requirement, Level, Layer, get_requirement
    from llorch_conformance.conformance import RunResults, ScenarioResult, SEED_CORPUS, run_suite
    from llorch_conformance.conformance import FacadeView  # a WorkerAdapter over the facade's HTTP API

``run_suite`` runs the packaged features in a pytest session and returns :class:`RunResults`;
``llorch-conformance run`` is its command-line face.

Vendor quick start::

    llorch-conformance run --adapter mypkg.adapter:make --dialect vllm     # one clear verdict
    llorch-conformance run --adapter my-entry-point                        # group llorch_conformance.adapters
    llorch-conformance run --dialect llamacpp --engine-url http://gpu:8080 # black-box subset, live engine
    pytest --llorch-suite --llorch-adapter mypkg.adapter:make --llorch-dialect vllm   # inside pytest

The factory is called as ``factory(base_url, **config)`` with the mock engine's base URL; the
harness passes ``http`` (:class:`adapters.http_util.HttpClientConfig`: timeouts, TLS CA),
``retry`` (:class:`adapters.http_util.RetryPolicy`, seeded), ``model`` and ``api_key`` where a
scenario needs them — a factory may ignore keys it does not use. An adapter declares what it does
not support in ``Capabilities.declared_unsupported`` (``cancel``, ``api_key``, ``tls``,
``deadline``, ``metrics_scrape``, ``retries``, ``connection_reuse``); scenarios tagged
``@needs:<name>`` are then not run and the declaration table (``conformance._declarations``)
judges it per requirement: a MUST declared away fails, an allowed declaration shows as
``pass-declared`` ("pass, declared: cancel"). Exit codes: 0 every MUST passed, 1 failures (``--fail-on
should`` counts SHOULDs too), 2 harness or usage errors.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ._catalogue import (
    CATALOGUE,
    PENDING_COMPONENTS,
    Layer,
    Level,
    Requirement,
    get_requirement,
    is_known,
    pending_requirements,
)
from ._declarations import DECLARATION_RULES
from ._guide import SCOPES
from ._results import STATUSES, VERDICT_STATUSES, RunResults, ScenarioResult, Verdict
from ._seeds import SEED_CORPUS
from ._targets import DEFAULT_TOKEN_ENV, KNOWN_DIALECTS, distributions_providing, resolve_targets

try:
    __version__ = version("llorch-conformance")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+source"

if TYPE_CHECKING:
    from ._facade_view import FacadeView
    from ._runner import run_suite, scenario_key


def __getattr__(name: str) -> Any:
    if name == "run_suite":
        from ._runner import run_suite

        return run_suite
    if name == "FacadeView":  # imports httpx: only when asked for
        from ._facade_view import FacadeView

        return FacadeView
    if name == "scenario_key":  # replay selects recorded scenarios by it (lazy: pytest)
        from ._runner import scenario_key

        return scenario_key
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")


__all__ = [
    "CATALOGUE",
    "DECLARATION_RULES",
    "DEFAULT_TOKEN_ENV",
    "KNOWN_DIALECTS",
    "PENDING_COMPONENTS",
    "SCOPES",
    "SEED_CORPUS",
    "STATUSES",
    "VERDICT_STATUSES",
    "FacadeView",
    "Layer",
    "Level",
    "Requirement",
    "RunResults",
    "ScenarioResult",
    "Verdict",
    "__version__",
    "distributions_providing",
    "get_requirement",
    "is_known",
    "pending_requirements",
    "resolve_targets",
    "run_suite",
    "scenario_key",
]
