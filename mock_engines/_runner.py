"""Building and running mock engines: ``create_app`` and the in-process ``run_mock_engine``.

``run_mock_engine`` starts a real uvicorn server (httptools) on ``127.0.0.1`` port 0 in a daemon
thread with its own event loop and hands back a :class:`MockEngine` handle: the base URL, the
journal, fault switching and a clean stop. It works as a sync ``with`` (pytest-bdd steps, plain
tests) and as an ``async with`` (anyio tests; start and stop then run in a worker thread so the
caller's loop is never blocked).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

from llorch_conformance.adapters.api import ConfigError

from ._app import MockEngineApp
from ._context import DEFAULT_MAX_BODY, EngineContext
from ._dialects import get_dialect
from ._faults import FaultRule
from ._profile import Profile
from ._server import EngineHandle

__all__ = ["MockEngine", "create_app", "run_mock_engine"]


def create_app(
    dialect: str,
    *,
    seed: int = 0,
    profile: str | Profile | None = "fast",
    faults: Iterable[str | FaultRule] = (),
    control: bool = True,
    model: str | None = None,
    api_key: str | None = None,
    created: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    ctx_size: int | None = None,
    metrics: bool = True,
) -> MockEngineApp:
    """The ASGI app of one mock engine (``app.ctx`` is its :class:`EngineContext`).

    ``control=False`` switches the ``/__mock__/`` control prefix off (the paths then get the
    engine's own 404). ``created`` fixes the ``created`` timestamps (golden-byte tests).
    ``ctx_size`` is the deployment's context length (default: the dialect's own, see
    :attr:`EngineContext.ctx_size`); ``metrics=False`` serves ``/metrics`` the way the engine does
    when metrics are switched off (llama.cpp without ``--metrics``: 501).
    """
    ctx = EngineContext(
        get_dialect(dialect),
        seed=seed,
        profile=profile,
        faults=faults,
        control=control,
        model=model,
        api_key=api_key,
        created=created,
        max_body_bytes=max_body_bytes,
        ctx_size=ctx_size,
        metrics=metrics,
    )
    return MockEngineApp(ctx)


class MockEngine(EngineHandle):
    """Handle on a running mock engine."""

    @property
    def engine_version(self) -> str:
        return self.ctx.dialect.engine_version

    @property
    def model(self) -> str:
        return self.ctx.model


def run_mock_engine(
    dialect: str,
    *,
    seed: int = 0,
    profile: str | Profile | None = "fast",
    faults: Iterable[str | FaultRule] = (),
    control: bool = True,
    model: str | None = None,
    api_key: str | None = None,
    created: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    ctx_size: int | None = None,
    metrics: bool = True,
) -> MockEngine:
    """A mock engine to use as ``with run_mock_engine("llamacpp") as eng:`` (or ``async with``).

    ``ssl_context`` (a server-side :class:`ssl.SSLContext`, e.g. from ``trustme``) serves HTTPS;
    every fault and the journal work the same over TLS.
    """
    if not isinstance(dialect, str):
        raise ConfigError("dialect must be a name such as 'llamacpp'")
    app = create_app(
        dialect,
        seed=seed,
        profile=profile,
        faults=faults,
        control=control,
        model=model,
        api_key=api_key,
        created=created,
        max_body_bytes=max_body_bytes,
        ctx_size=ctx_size,
        metrics=metrics,
    )
    return MockEngine(app, host, port, ssl_context)
