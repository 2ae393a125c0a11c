"""Mock inference engines: one engine core and a thin dialect module per engine.

Quick use in a test::

    from llorch_conformance.mock_engines import run_mock_engine

    with run_mock_engine("llamacpp", seed=7) as eng:
        httpx.post(f"{eng.base_url}/completion", json={"prompt": "Hi", "n_predict": 4})
        eng.journal.wait_for_sync(lambda j: j.find(path="/completion"), timeout=5)

The same ``(seed, prompt, max_tokens, stop)`` gives the same :class:`GenerationPlan` — the same
token texts and stop reason — in every dialect: :func:`make_plan` is the cross-dialect oracle.
"""

from ._app import MockEngineApp
from ._cassette import (
    CASSETTE_VERSION,
    Cassette,
    Chunk,
    Exchange,
    ReplayDialect,
    record_exchange,
    run_replay_engine,
)
from ._context import EngineContext
from ._dialects import dialect_names as _dialect_names
from ._dialects import get_dialect
from ._faults import (
    FAULT_HEADER,
    FAULT_IDS,
    FAULTS,
    Fault,
    FaultHost,
    FaultParam,
    FaultRule,
    FaultSpec,
    Outcome,
    Responder,
    Stage,
    Stall,
    fault_outcome,
)
from ._journal import Journal, JournalEntry, redact_secret
from ._plan import GenerationPlan, chat_prompt, make_plan, tokenize
from ._profile import PROFILES, Profile, load_profile
from ._proxy import (
    NOT_APPLIED,
    FaultProxy,
    ObservedGeneration,
    ProxyApp,
    ProxyContext,
    run_fault_proxy,
)
from ._runner import MockEngine, create_app, run_mock_engine
from ._server import EngineServer, serve_until_signalled
from ._wire import (
    CONTROL_PREFIX,
    Dialect,
    EngineError,
    EngineView,
    Frame,
    FrameKind,
    MockRequest,
    Reply,
    Route,
    StreamReply,
)

__all__ = [
    "CASSETTE_VERSION",
    "CONTROL_PREFIX",
    "DIALECTS",
    "FAULTS",
    "FAULT_HEADER",
    "FAULT_IDS",
    "NOT_APPLIED",
    "PROFILES",
    "Cassette",
    "Chunk",
    "Dialect",
    "EngineContext",
    "EngineError",
    "EngineServer",
    "EngineView",
    "Exchange",
    "Fault",
    "FaultHost",
    "FaultParam",
    "FaultProxy",
    "FaultRule",
    "FaultSpec",
    "Frame",
    "FrameKind",
    "GenerationPlan",
    "Journal",
    "JournalEntry",
    "MockEngine",
    "MockEngineApp",
    "MockRequest",
    "ObservedGeneration",
    "Outcome",
    "Profile",
    "ProxyApp",
    "ProxyContext",
    "ReplayDialect",
    "Reply",
    "Responder",
    "Route",
    "Stage",
    "Stall",
    "StreamReply",
    "chat_prompt",
    "create_app",
    "fault_catalogue",
    "fault_outcome",
    "get_dialect",
    "load_profile",
    "make_plan",
    "record_exchange",
    "redact_secret",
    "run_fault_proxy",
    "run_mock_engine",
    "run_replay_engine",
    "serve_until_signalled",
    "tokenize",
]

#: Registered dialect names in canonical order ("llamacpp", "vllm", "tgi", "openai", "triton").
DIALECTS: tuple[str, ...] = _dialect_names()


def fault_catalogue() -> list[FaultSpec]:
    """Every named fault with its parameters and the registered dialects it applies to."""
    from dataclasses import replace

    from ._faults import catalogue_specs

    names = _dialect_names()
    out: list[FaultSpec] = []
    for spec in catalogue_specs():
        applies = tuple(n for n in names if spec.id not in get_dialect(n).unsupported_faults)
        out.append(replace(spec, applies_to=applies))
    return out
