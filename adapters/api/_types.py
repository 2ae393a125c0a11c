"""Contract types: TaskRequest, health/props/capabilities, TokenEvent and the WorkerAdapter protocol.

The original trait (``worker-adapters-adapter-api``) is synchronous Rust returning a boxed stream;
here it is async Python: ``submit`` returns an async iterator of :class:`TokenEvent`, and failures
after submission arrive *inside* the stream as one terminal ``error`` event, as in the original
(where they were ``Err`` items).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from ._enums import (
    Capability,
    DeterminismLevel,
    Engine,
    KVHint,
    PlacementMode,
    Priority,
    Workload,
)
from ._exceptions import InvalidTaskRequest, UsageError, WorkerError

__all__ = [
    "Capabilities",
    "PlacementOverrides",
    "TaskRequest",
    "TokenEvent",
    "WorkerAdapter",
    "WorkerHealth",
    "WorkerProps",
]

_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """Liveness and readiness. ``ready`` implies the worker can be dispatched to."""

    live: bool
    ready: bool

    def to_dict(self) -> dict[str, bool]:
        return {"live": self.live, "ready": self.ready}


@dataclass(frozen=True, slots=True)
class WorkerProps:
    """Capacity as the engine reports it; ``None`` where the engine does not say."""

    slots_total: int | None = None
    slots_free: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return {"slots_total": self.slots_total, "slots_free": self.slots_free}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter/engine pair offers (ORCH-3093/3094; feeds ``/v1/capabilities``).

    ``features`` is a free set of capability flags. ``declared_unsupported`` is what the adapter
    declares it does not do (for example engine-side cancel): :class:`Capability` members or
    their names, ``unsupported:<name>`` too; scenarios needing one are reported ``unsupported``.
    An unknown name is a :class:`UsageError` here, at construction, so a typo never silently
    declares nothing.
    """

    engine: str
    engine_version: str
    sampler_profile_version: str | None = None
    ctx_max: int | None = None
    max_tokens_out: int | None = None
    slots: int | None = None
    supported_workloads: tuple[str, ...] = ("completion",)
    features: tuple[str, ...] = ()
    declared_unsupported: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = frozenset(Capability)
        for name in self.declared_unsupported:
            if str(name).removeprefix("unsupported:") not in known:
                raise UsageError(
                    f"Capabilities.declared_unsupported: unknown capability {name!r} (known: "
                    + ", ".join(c.value for c in Capability)
                    + ")"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "engine_version": self.engine_version,
            "sampler_profile_version": self.sampler_profile_version,
            "ctx_max": self.ctx_max,
            "max_tokens_out": self.max_tokens_out,
            "slots": self.slots,
            "supported_workloads": list(self.supported_workloads),
            "features": list(self.features),
            "declared_unsupported": [str(x) for x in self.declared_unsupported],
        }


class TokenEvent:
    """One event of an adapter's stream: ``kind`` and a JSON-able ``data`` dict.

    Kept as a slotted plain class with helper constructors: this is the per-token hot path, so
    no validation runs here (the harness validates streams with :func:`check_stream`).
    """

    __slots__ = ("data", "kind")

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def started(cls, **data: Any) -> TokenEvent:
        return cls("started", data)

    @classmethod
    def token(cls, t: str, i: int) -> TokenEvent:
        return cls("token", {"t": t, "i": i})

    @classmethod
    def metrics(cls, **data: Any) -> TokenEvent:
        return cls("metrics", data)

    @classmethod
    def end(cls, tokens_out: int, decode_time_ms: int, **data: Any) -> TokenEvent:
        return cls("end", {"tokens_out": tokens_out, "decode_time_ms": decode_time_ms, **data})

    @classmethod
    def error(cls, err: WorkerError) -> TokenEvent:
        return cls("error", err.to_event_data())

    # -- helpers --------------------------------------------------------------------------
    @property
    def is_terminal(self) -> bool:
        return self.kind in ("end", "error")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "data": self.data}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenEvent):
            return NotImplemented
        return self.kind == other.kind and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TokenEvent({self.kind!r}, {self.data!r})"


def _enum(cls: type[Any], name: str, value: Any, *, optional: bool = False) -> Any:
    if value is None:
        if optional:
            return None
        raise InvalidTaskRequest(name, "is required", value)
    if isinstance(value, cls):
        return value
    allowed = ", ".join(m.value for m in cls)
    if not isinstance(value, str):
        raise InvalidTaskRequest(name, f"must be one of: {allowed}", value)
    try:
        return cls(value)
    except ValueError:
        raise InvalidTaskRequest(name, f"must be one of: {allowed}", value) from None


def _int(
    name: str,
    value: Any,
    *,
    bounds: tuple[int, int],
    minimum: int | None = None,
    optional: bool = False,
) -> int | None:
    if value is None:
        if optional:
            return None
        raise InvalidTaskRequest(name, "is required", value)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        else:
            raise InvalidTaskRequest(name, "must be an integer", value)
    lo, hi = bounds
    if minimum is not None:
        lo = max(lo, minimum)
    if not lo <= value <= hi:
        raise InvalidTaskRequest(name, f"must be between {lo} and {hi}", value)
    return int(value)


def _str(name: str, value: Any, *, optional: bool = False, nonempty: bool = True) -> str | None:
    if value is None:
        if optional:
            return None
        raise InvalidTaskRequest(name, "is required", value)
    if not isinstance(value, str):
        raise InvalidTaskRequest(name, "must be a string", value)
    if nonempty and not value.strip():
        raise InvalidTaskRequest(name, "must not be empty", value)
    return value


def _str_list(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidTaskRequest(name, "must be a list of strings", value)
    for n, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidTaskRequest(f"{name}[{n}]", "must be a string", item)
    return tuple(value)


_MODEL_REF_SCHEMES = ("hf:", "file:", "https://", "http://", "s3://", "oci://")


@dataclass(frozen=True, slots=True)
class PlacementOverrides:
    mode: PlacementMode | None = None
    pin_pool_id: str | None = None
    prefer_pools: tuple[str, ...] | None = None
    avoid_pools: tuple[str, ...] | None = None
    require_device_mask: str | None = None
    allow_fallback: bool = True

    @classmethod
    def from_dict(cls, raw: Any) -> PlacementOverrides:
        if not isinstance(raw, Mapping):
            raise InvalidTaskRequest("placement", "must be an object", raw)
        known = {f.name for f in fields(cls)}
        for key in raw:
            if key not in known:
                raise InvalidTaskRequest(f"placement.{key}", "is not a known field", raw[key])
        allow = raw.get("allow_fallback", True)
        if not isinstance(allow, bool):
            raise InvalidTaskRequest("placement.allow_fallback", "must be a boolean", allow)
        mode = _enum(PlacementMode, "placement.mode", raw.get("mode"), optional=True)
        pin = _str("placement.pin_pool_id", raw.get("pin_pool_id"), optional=True)
        if mode is PlacementMode.PIN and pin is None:
            raise InvalidTaskRequest("placement.pin_pool_id", "is required when mode is pin", None)
        return cls(
            mode=mode,
            pin_pool_id=pin,
            prefer_pools=_str_list("placement.prefer_pools", raw.get("prefer_pools")),
            avoid_pools=_str_list("placement.avoid_pools", raw.get("avoid_pools")),
            require_device_mask=_str(
                "placement.require_device_mask", raw.get("require_device_mask"), optional=True
            ),
            allow_fallback=allow,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else (str(v) if f.name == "mode" else v)
        return out


#: The fields a wire ``TaskRequest`` must carry (``TaskRequest.from_dict``; the facade's OpenAPI
#: description says the same).
TASK_REQUEST_REQUIRED: tuple[str, ...] = (
    "task_id",
    "session_id",
    "workload",
    "model_ref",
    "engine",
    "ctx",
    "priority",
    "max_tokens",
    "deadline_ms",
)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """The 17 fields of the original ``TaskRequest`` with their enums, validated on construction.

    Rules beyond the types (each error names field and rule): ids and ``model_ref`` are
    non-empty and ``model_ref`` uses a known scheme or is a path; ``ctx``, ``max_tokens`` and
    ``deadline_ms`` are positive; ``expected_tokens`` is not negative; a completion needs
    ``prompt`` or ``inputs``; integers stay in their Rust widths (i32 / i64).
    """

    task_id: str
    session_id: str
    workload: Workload
    model_ref: str
    engine: Engine
    ctx: int
    priority: Priority
    max_tokens: int
    deadline_ms: int
    seed: int | None = None
    determinism: DeterminismLevel | None = None
    sampler_profile_version: str | None = None
    prompt: str | None = None
    inputs: tuple[str, ...] | None = None
    expected_tokens: int | None = None
    kv_hint: KVHint | None = None
    placement: PlacementOverrides | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Validate (and coerce wire strings to enums) so that a TaskRequest that exists is valid.
        s = object.__setattr__
        s(self, "task_id", _str("task_id", self.task_id))
        s(self, "session_id", _str("session_id", self.session_id))
        s(self, "workload", _enum(Workload, "workload", self.workload))
        model_ref = _str("model_ref", self.model_ref)
        assert model_ref is not None
        if "://" in model_ref and not model_ref.startswith(_MODEL_REF_SCHEMES):
            raise InvalidTaskRequest(
                "model_ref", "must use a scheme of hf:, file:, https://, s3:// or oci://", model_ref
            )
        s(self, "engine", _enum(Engine, "engine", self.engine))
        s(self, "ctx", _int("ctx", self.ctx, bounds=_I32, minimum=1))
        s(self, "priority", _enum(Priority, "priority", self.priority))
        s(self, "max_tokens", _int("max_tokens", self.max_tokens, bounds=_I32, minimum=1))
        s(self, "deadline_ms", _int("deadline_ms", self.deadline_ms, bounds=_I64, minimum=1))
        s(self, "seed", _int("seed", self.seed, bounds=_I64, optional=True))
        s(
            self,
            "determinism",
            _enum(DeterminismLevel, "determinism", self.determinism, optional=True),
        )
        s(
            self,
            "sampler_profile_version",
            _str("sampler_profile_version", self.sampler_profile_version, optional=True),
        )
        s(self, "prompt", _str("prompt", self.prompt, optional=True, nonempty=False))
        inputs: Any = self.inputs
        s(
            self,
            "inputs",
            _str_list("inputs", list(inputs) if isinstance(inputs, tuple) else inputs),
        )
        s(
            self,
            "expected_tokens",
            _int("expected_tokens", self.expected_tokens, bounds=_I32, minimum=0, optional=True),
        )
        s(self, "kv_hint", _enum(KVHint, "kv_hint", self.kv_hint, optional=True))
        placement: Any = self.placement
        if placement is not None and not isinstance(placement, PlacementOverrides):
            s(self, "placement", PlacementOverrides.from_dict(placement))
        if self.workload is Workload.COMPLETION and self.prompt is None and not self.inputs:
            raise InvalidTaskRequest(
                "prompt", "is required for a completion (or give inputs)", None
            )

    @classmethod
    def from_dict(cls, raw: Any) -> TaskRequest:
        """Build from the wire form (``contracts/openapi/data.yaml``); unknown keys are refused."""
        if not isinstance(raw, Mapping):
            raise InvalidTaskRequest("<request>", "must be a JSON object", raw)
        known = {f.name for f in fields(cls)} - {"extra"}
        for key in raw:
            if key not in known:
                raise InvalidTaskRequest(str(key), "is not a TaskRequest field", raw[key])
        for name in TASK_REQUEST_REQUIRED:
            if name not in raw:
                raise InvalidTaskRequest(name, "is required", None)
        return cls(**{k: raw[k] for k in raw})

    def to_dict(self) -> dict[str, Any]:
        """Wire form: ``None`` fields skipped, enums as strings (serde ``skip_serializing_if``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, PlacementOverrides):
                out[f.name] = v.to_dict()
            elif isinstance(v, tuple):
                out[f.name] = list(v)
            elif hasattr(v, "value"):
                out[f.name] = v.value
            else:
                out[f.name] = v
        return out


@runtime_checkable
class WorkerAdapter(Protocol):
    """The async form of the original ``WorkerAdapter`` trait (ADAPT-3000).

    Structural: a vendor's adapter need not import this package to be tested, it only needs
    these methods. ``submit`` is an async generator function: it yields ``started``, ``token``
    (``{t, i}``, ``i`` from 0 strictly increasing), optional ``metrics`` and exactly one
    terminal ``end`` or ``error``, after which it stops. Failures after submission are yielded as
    the terminal ``error`` event, never raised (an invalid request may raise
    :class:`InvalidTaskRequest` before anything is sent). ``cancel`` is best effort and
    idempotent; unknown ids are harmless. Adapters holding connections should also offer
    ``async aclose()``, which the harness calls when present.
    """

    async def health(self) -> WorkerHealth: ...

    async def props(self) -> WorkerProps: ...

    async def capabilities(self) -> Capabilities: ...

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]: ...

    async def cancel(self, task_id: str) -> None:
        """Stop task ``task_id``: best effort, idempotent, unknown ids harmless.

        Project decision (the original left it open): once ``cancel`` has returned, the task's
        stream delivers no further ``token``; it ends with one ``end`` event carrying
        ``stop_reason: "cancelled"`` and the ``tokens_out`` delivered so far (cancellation is
        the caller's wish, not a failure, so it is not an ``error``). HTTP adapters close the
        upstream connection, so the engine stops generating.
        """
        ...

    async def engine_version(self) -> str: ...
