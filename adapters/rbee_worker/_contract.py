"""The rbee worker contract as data: WorkerInfo, statuses, heartbeats, InferRequest, recency.

Wire facts and where they come from (reference §8, seed 004 — the ``worker-contract`` crate and
``contracts/openapi/worker-api.yaml``):

* ``WorkerInfo`` has seven required fields in declaration order ``id, model_id, device, port,
  status, implementation, version``; ``port`` is a uint16.
* ``WorkerStatus`` values are lowercase ``starting, ready, busy, stopping, stopped``. The
  OpenAPI enum and the README omit ``stopping``; the Rust enum has it, so it is accepted.
  ``is_available`` is ready **or** busy — the shared ``OperationalStatus`` helper; the crate's
  own unit test that says busy is unavailable is stale (reference §9 item 10).
* ``WorkerHeartbeat`` is ``{"worker": WorkerInfo, "timestamp": RFC 3339 UTC}``;
  ``HeartbeatAck`` is ``{"status": "ok"|"error", "message": ...}``.
* Recency is ``(now - ts).num_seconds() < timeout``: whole seconds truncated toward zero, strict
  ``<`` (91 s old is stale at 90 s). Tests need sub-second timeouts, so the truncation step is a
  parameter (``resolution_s``, default 1 s, the original).
* ``InferRequest``: ``prompt`` required string; ``max_tokens`` uint 1..4096, ``temperature``
  0.0..2.0, ``stream`` bool (default false); absent optional fields are omitted. Unknown fields
  are ignored, as serde does by default.

Only the validators here decide what "bad input" is, so the bridge, the fault-capable mock worker
and the black-box checks can never disagree about it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "HEARTBEAT_INTERVAL_SECS",
    "HEARTBEAT_PATH",
    "HEARTBEAT_TIMEOUT_SECS",
    "MAX_TOKENS_LIMIT",
    "WORKER_INFO_FIELDS",
    "BadInferRequest",
    "HeartbeatAck",
    "InferRequest",
    "InferResponse",
    "WorkerApiSpec",
    "WorkerHeartbeat",
    "WorkerInfo",
    "WorkerStatus",
    "format_rfc3339",
    "is_recent",
    "parse_rfc3339_utc",
    "whole_age",
]

HEARTBEAT_INTERVAL_SECS: Final = 30
HEARTBEAT_TIMEOUT_SECS: Final = 90
HEARTBEAT_PATH: Final = "/v1/worker-heartbeat"
MAX_TOKENS_LIMIT: Final = 4096
WORKER_INFO_FIELDS: Final = (
    "id",
    "model_id",
    "device",
    "port",
    "status",
    "implementation",
    "version",
)


class WorkerApiSpec:
    """The paths every worker serves (``WorkerApiSpec`` consts of the crate)."""

    HEALTH: Final = "/health"
    INFO: Final = "/info"
    INFER: Final = "/v1/infer"


class WorkerStatus(StrEnum):
    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    STOPPING = "stopping"
    STOPPED = "stopped"

    @property
    def is_available(self) -> bool:
        """Ready or busy: the queen may route to the worker (the shared helper's rule)."""
        return self in (WorkerStatus.READY, WorkerStatus.BUSY)

    @property
    def is_stopped(self) -> bool:
        return self in (WorkerStatus.STOPPING, WorkerStatus.STOPPED)


class BadInferRequest(ValueError):
    """An InferRequest (or heartbeat / WorkerInfo) that breaks a rule; the message names it."""


def _req_str(raw: Mapping[str, Any], name: str, where: str) -> str:
    if name not in raw:
        raise BadInferRequest(f"{where}{name} is required")
    value = raw[name]
    if not isinstance(value, str):
        raise BadInferRequest(f"{where}{name} must be a string")
    return value


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """Complete worker state, returned by ``GET /info`` and carried in every heartbeat."""

    id: str
    model_id: str
    device: str
    port: int
    status: WorkerStatus
    implementation: str
    version: str

    @property
    def is_available(self) -> bool:
        return self.status.is_available

    def serves_model(self, model_id: str) -> bool:
        return self.model_id == model_id

    def with_status(self, status: WorkerStatus) -> WorkerInfo:
        return replace(self, status=status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_id": self.model_id,
            "device": self.device,
            "port": self.port,
            "status": self.status.value,
            "implementation": self.implementation,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, raw: Any, *, where: str = "") -> WorkerInfo:
        """Validate the wire form; :class:`BadInferRequest` names the first broken field."""
        if not isinstance(raw, Mapping):
            raise BadInferRequest(f"{where or 'WorkerInfo'} must be a JSON object")
        strs = {
            n: _req_str(raw, n, where)
            for n in ("id", "model_id", "device", "implementation", "version")
        }
        for n, v in strs.items():
            if not v.strip():
                raise BadInferRequest(f"{where}{n} must not be empty")
        if "port" not in raw:
            raise BadInferRequest(f"{where}port is required")
        port = raw["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise BadInferRequest(f"{where}port must be an integer 0..65535")
        if "status" not in raw:
            raise BadInferRequest(f"{where}status is required")
        try:
            status = WorkerStatus(str(raw["status"]) if isinstance(raw["status"], str) else "")
        except ValueError:
            allowed = ", ".join(s.value for s in WorkerStatus)
            raise BadInferRequest(f"{where}status must be one of: {allowed}") from None
        return cls(
            id=strs["id"],
            model_id=strs["model_id"],
            device=strs["device"],
            port=port,
            status=status,
            implementation=strs["implementation"],
            version=strs["version"],
        )


def format_rfc3339(ts: datetime) -> str:
    """``2026-01-02T03:04:05.123456Z`` — UTC with a ``Z``, as chrono serialises ``DateTime<Utc>``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339_utc(text: Any) -> datetime:
    """Parse an RFC 3339 timestamp that must be UTC (``Z`` or ``+00:00``)."""
    if not isinstance(text, str):
        raise BadInferRequest("timestamp must be an RFC 3339 string")
    if len(text) < 20 or text[10] not in "Tt":
        raise BadInferRequest(f"timestamp {text[:40]!r} is not RFC 3339 (date 'T' time offset)")
    normal = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    try:
        ts = datetime.fromisoformat(normal)
    except ValueError:
        raise BadInferRequest(f"timestamp {text[:40]!r} is not RFC 3339") from None
    if ts.tzinfo is None:
        raise BadInferRequest(f"timestamp {text[:40]!r} has no UTC offset")
    if ts.utcoffset() != UTC.utcoffset(None):
        raise BadInferRequest(f"timestamp {text[:40]!r} is not UTC")
    return ts.astimezone(UTC)


def whole_age(age_s: float, resolution_s: float = 1.0) -> float:
    """Truncate an age toward zero in steps of ``resolution_s`` (chrono ``num_seconds``)."""
    steps = math.trunc(age_s / resolution_s)
    return steps * resolution_s


def is_recent(age_s: float, timeout_s: float, *, resolution_s: float = 1.0) -> bool:
    """``whole_age(age) < timeout``: 89.9 s is recent, 90 s and 91 s are stale at 90 s."""
    return whole_age(age_s, resolution_s) < timeout_s


@dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    worker: WorkerInfo
    timestamp: datetime

    @classmethod
    def now(cls, worker: WorkerInfo) -> WorkerHeartbeat:
        return cls(worker, datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {"worker": self.worker.to_dict(), "timestamp": format_rfc3339(self.timestamp)}

    @classmethod
    def from_dict(cls, raw: Any) -> WorkerHeartbeat:
        if not isinstance(raw, Mapping):
            raise BadInferRequest("heartbeat must be a JSON object")
        if "worker" not in raw:
            raise BadInferRequest("worker is required")
        if "timestamp" not in raw:
            raise BadInferRequest("timestamp is required")
        worker = WorkerInfo.from_dict(raw["worker"], where="worker.")
        return cls(worker, parse_rfc3339_utc(raw["timestamp"]))


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    status: str
    message: str | None = None

    @classmethod
    def success(cls, message: str | None = None) -> HeartbeatAck:
        return cls("ok", message)

    @classmethod
    def error(cls, message: str) -> HeartbeatAck:
        return cls("error", message)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message}

    @classmethod
    def from_dict(cls, raw: Any) -> HeartbeatAck:
        if not isinstance(raw, Mapping) or raw.get("status") not in ("ok", "error"):
            raise BadInferRequest('ack must be {"status": "ok"|"error", "message": ...}')
        msg = raw.get("message")
        return cls(str(raw["status"]), None if msg is None else str(msg))


@dataclass(frozen=True, slots=True)
class InferRequest:
    prompt: str
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False

    @classmethod
    def from_dict(cls, raw: Any) -> InferRequest:
        """Validate a request body; every rule broken raises :class:`BadInferRequest` (400)."""
        if not isinstance(raw, Mapping):
            raise BadInferRequest("request body must be a JSON object")
        prompt = _req_str(raw, "prompt", "")
        max_tokens = raw.get("max_tokens")
        if max_tokens is not None:
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
                raise BadInferRequest("max_tokens must be an integer")
            if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
                raise BadInferRequest(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
        temperature = raw.get("temperature")
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, int | float):
                raise BadInferRequest("temperature must be a number")
            if not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
                raise BadInferRequest("temperature must be between 0.0 and 2.0")
            temperature = float(temperature)
        stream = raw.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise BadInferRequest("stream must be a boolean")
        return cls(prompt, max_tokens, temperature, bool(stream))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": self.prompt}
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.stream:
            out["stream"] = True
        return out


@dataclass(frozen=True, slots=True)
class InferResponse:
    text: str
    tokens_generated: int
    duration_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens_generated": self.tokens_generated,
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> InferResponse:
        if not isinstance(raw, Mapping):
            raise BadInferRequest("InferResponse must be a JSON object")
        text = _req_str(raw, "text", "")
        out: dict[str, int] = {}
        for name in ("tokens_generated", "duration_ms"):
            if name not in raw:
                raise BadInferRequest(f"{name} is required")
            v = raw[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadInferRequest(f"{name} must be an unsigned integer")
            out[name] = v
        return cls(text, out["tokens_generated"], out["duration_ms"])
