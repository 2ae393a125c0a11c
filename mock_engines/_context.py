"""The engine context: one mock engine's state, configuration and fault selection.

Handlers see it as ``ctx`` through :class:`~mock_engines._wire.EngineView` (what a dialect may
read); the app (:mod:`mock_engines._app`) and the fault proxy use the rest: route matching, the
engine-wide fault rules with their counters, loading and closed-port states.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from llorch_conformance.adapters.api import ConfigError

from ._faults import Fault, FaultRule, RuleState, parse_faults
from ._journal import Journal
from ._plan import MAX_CONTEXT, GenerationPlan, make_plan
from ._profile import Profile, load_profile
from ._slots import SlotPool, Stats
from ._wire import Dialect, Route

__all__ = ["DEFAULT_MAX_BODY", "EngineContext"]

DEFAULT_MAX_BODY = 16 * 1024 * 1024


class EngineContext:
    """One mock engine's state; handlers get it as ``ctx``.

    Public for dialects: ``dialect``, ``model``, ``seed``, ``profile``, ``api_key``, ``stats``,
    ``slots``, ``started_at`` and the helpers :meth:`plan`, :meth:`chunks`, :meth:`created`,
    :meth:`new_id`.
    """

    def __init__(
        self,
        dialect: Dialect,
        *,
        seed: int = 0,
        profile: str | Profile | None = "fast",
        faults: Iterable[str | FaultRule] = (),
        control: bool = True,
        model: str | None = None,
        api_key: str | None = None,
        created: int | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        journal: Journal | None = None,
        ctx_size: int | None = None,
        metrics: bool = True,
    ) -> None:
        if ctx_size is not None and not 16 <= ctx_size <= MAX_CONTEXT:
            raise ConfigError(f"ctx_size must be between 16 and {MAX_CONTEXT}, got {ctx_size}")
        self.dialect = dialect
        #: The deployment's context length in tokens (llama.cpp ``--ctx-size``, vLLM
        #: ``--max-model-len``): prompts and ``max_tokens`` are held against it as the engine does.
        self.ctx_size = ctx_size or dialect.default_ctx_size
        #: Whether the engine serves ``/metrics`` (llama.cpp needs ``--metrics``).
        self.metrics_enabled = metrics
        self.seed = int(seed)
        self.profile = load_profile(profile)
        self.control = control
        self.model = model or dialect.default_model
        self.api_key = api_key or None
        self.fixed_created = created
        self.max_body_bytes = max_body_bytes
        self.journal = journal or Journal()
        self.stats = Stats()
        self.slots = SlotPool(self.profile.slots, self.profile.queue_size)
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self._counter = 0
        self._jitter_rng = random.Random(self.seed)
        self._rules: list[RuleState] = []
        self._startup_until: float | None = None
        self._fault_loading_until: float | None = None
        self._port_closed_until: float | None = None
        self.port_listener: Callable[[], None] | None = None
        self.accept_closes = 0
        self._exact: dict[tuple[str, str], Route] = {}
        self._patterns: list[tuple[Route, list[str]]] = []
        for route in dialect.routes():
            if "{" in route.path:
                self._patterns.append((route, route.path.strip("/").split("/")))
            else:
                self._exact[(route.method, route.path)] = route
        if self.profile.load_ms > 0:
            self._startup_until = self.started_mono + self.profile.load_ms / 1000.0
        self.set_faults(faults)

    # -- helpers for dialects ---------------------------------------------------------------
    def plan(
        self,
        prompt: str,
        *,
        max_tokens: int | None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        ignore_eos: bool = False,
        min_tokens: int = 0,
    ) -> GenerationPlan:
        """The plan for a request; a request without a seed uses the engine seed."""
        return make_plan(
            prompt,
            seed=self.seed if seed is None else seed,
            max_tokens=max_tokens,
            stop=stop,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            ignore_eos=ignore_eos,
            min_tokens=min_tokens,
        )

    def chunks(self, plan: GenerationPlan) -> list[tuple[str, tuple[int, ...]]]:
        """The plan's tokens grouped ``tokens_per_chunk`` at a time: one entry per engine step."""
        n = self.profile.tokens_per_chunk
        toks, ids = plan.tokens, plan.token_ids
        if n == 1:
            return [(t, (i,)) for t, i in zip(toks, ids, strict=True)]
        return [("".join(toks[k : k + n]), tuple(ids[k : k + n])) for k in range(0, len(toks), n)]

    def created(self) -> int:
        """Unix seconds for ``created`` fields (fixed when the engine was built with ``created=``)."""
        return self.fixed_created if self.fixed_created is not None else int(time.time())

    def new_id(self, n_hex: int = 24) -> str:
        """A deterministic hex id: the same engine seed gives the same id sequence."""
        self._counter += 1
        return hashlib.sha256(f"{self.seed}|{self._counter}".encode()).hexdigest()[:n_hex]

    # -- configuration ------------------------------------------------------------------------
    @property
    def faults(self) -> list[FaultRule]:
        return [s.rule for s in self._rules]

    def set_faults(self, faults: Iterable[str | FaultRule]) -> None:
        """Replace the engine-wide fault rules (ConfigError for unknown or inapplicable ones)."""
        rules = parse_faults(faults)
        for r in rules:
            r.fault.check(r, self.dialect, per_request=False)
        self._rules = [RuleState(r, self.seed, i) for i, r in enumerate(rules)]
        now = time.monotonic()
        self._port_closed_until = None
        loading_from_fault: float | None = None
        for r in rules:
            closed, loading = r.fault.state_until(r, self.dialect, now)
            if closed is not None:
                self._port_closed_until = max(self._port_closed_until or 0.0, closed)
            if loading is not None:
                loading_from_fault = loading
        self._fault_loading_until = loading_from_fault
        if self.port_listener is not None:
            self.port_listener()

    def check_applies(self, rule: FaultRule) -> None:
        """ConfigError when the dialect cannot render ``rule``'s fault."""
        Fault.check(rule.fault, rule, self.dialect, per_request=False)

    def set_profile(self, profile: str | Profile) -> None:
        self.profile = load_profile(profile)
        if self.slots.busy == 0 and self.slots.queued == 0:
            self.slots = SlotPool(self.profile.slots, self.profile.queue_size)
        else:
            self.slots.queue_size = self.profile.queue_size

    def reset(self) -> None:
        """Clear the journal and restart the fault counters (``first=`` / ``rate=``)."""
        self.journal.clear()
        self._rules = [RuleState(s.rule, self.seed, i) for i, s in enumerate(self._rules)]
        self._counter = 0
        self.accept_closes = 0

    def config_dict(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect.name,
            "engine_version": self.dialect.engine_version,
            "model": self.model,
            "ctx_size": self.ctx_size,
            "seed": self.seed,
            "profile": self.profile.to_dict(),
            "faults": [str(r) for r in self.faults],
            "loading": self.is_loading(),
            "port_closed": self.port_closed(),
            "api_key_set": self.api_key is not None,
        }

    # -- states ---------------------------------------------------------------------------------
    def _loading_deadline(self) -> float | None:
        now = time.monotonic()
        best: float | None = None
        for until in (self._startup_until, self._fault_loading_until):
            if until is not None and until > now:
                best = until if best is None else max(best, until)
        return best

    def is_loading(self) -> bool:
        """True while the engine is loading (startup ``load_ms`` or an ``engine.loading`` fault)."""
        return self._loading_deadline() is not None

    def port_closed_until(self) -> float | None:
        """Monotonic deadline until which the port must stay closed (``inf`` = until cleared)."""
        deadline: float | None = None
        now = time.monotonic()
        if self.dialect.loading_mode == "port_closed":
            deadline = self._loading_deadline()
        pc = self._port_closed_until
        if pc is not None and pc > now:
            deadline = pc if deadline is None else max(deadline, pc)
        return deadline

    def port_closed(self) -> bool:
        return self.port_closed_until() is not None

    def select_connection_fault(self) -> FaultRule | None:
        """Engine-wide ``conn.accept_then_close`` for a new TCP connection."""
        for state in self._rules:
            if state.rule.fault.on_connection and state.select():
                self.accept_closes += 1
                return state.rule
        return None

    def select_request_fault(self, route: Route | None) -> FaultRule | None:
        for state in self._rules:
            rule = state.rule
            if rule.fault.selects(rule, route, self.dialect) and state.select():
                return rule
        return None

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path exists with another method)."""
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}, False
        other = any(p == path for (_, p) in self._exact)
        segs = path.strip("/").split("/")
        for r, pat in self._patterns:
            if len(pat) != len(segs):
                continue
            params: dict[str, str] = {}
            for a, b in zip(pat, segs, strict=True):
                if a.startswith("{") and a.endswith("}"):
                    params[a[1:-1]] = b
                elif a != b:
                    break
            else:
                if r.method == method:
                    return r, params, False
                other = True
        return None, {}, other
