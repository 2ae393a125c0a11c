"""Enumerations of the contract: request enums, WorkerError kinds and orchestrator error codes.

Wire values are the original ones (``contracts/openapi/data.yaml``); ``Engine`` is extended with
``openai`` and ``mock`` as this project decided.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Capability",
    "DeterminismLevel",
    "Engine",
    "ErrorCode",
    "EventKind",
    "KVHint",
    "PlacementMode",
    "Priority",
    "WorkerErrorKind",
    "Workload",
]


class Workload(StrEnum):
    COMPLETION = "completion"
    EMBEDDING = "embedding"
    RERANK = "rerank"


class Engine(StrEnum):
    LLAMACPP = "llamacpp"
    VLLM = "vllm"
    TGI = "tgi"
    TRITON = "triton"
    OPENAI = "openai"
    MOCK = "mock"


class Priority(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"


class DeterminismLevel(StrEnum):
    STRICT = "strict"
    BEST_EFFORT = "best_effort"


class KVHint(StrEnum):
    REUSE = "reuse"
    COLD = "cold"


class PlacementMode(StrEnum):
    PIN = "pin"
    PREFER = "prefer"
    AUTO = "auto"


class EventKind(StrEnum):
    """Kinds of :class:`TokenEvent` (ADAPT-3001)."""

    STARTED = "started"
    TOKEN = "token"
    METRICS = "metrics"
    END = "end"
    ERROR = "error"


class WorkerErrorKind(StrEnum):
    """The six WorkerError variants of ADAPT-3002."""

    DEADLINE_UNMET = "DEADLINE_UNMET"
    POOL_UNAVAILABLE = "POOL_UNAVAILABLE"
    DECODE_TIMEOUT = "DECODE_TIMEOUT"
    WORKER_RESET = "WORKER_RESET"
    INTERNAL = "INTERNAL"
    ADAPTER = "ADAPTER"


class ErrorCode(StrEnum):
    """The orchestrator ``ErrorKind`` set; the ``code`` of error events and envelopes."""

    ADMISSION_REJECT = "ADMISSION_REJECT"
    QUEUE_FULL_DROP_LRU = "QUEUE_FULL_DROP_LRU"
    INVALID_PARAMS = "INVALID_PARAMS"
    POOL_UNREADY = "POOL_UNREADY"
    POOL_UNAVAILABLE = "POOL_UNAVAILABLE"
    REPLICA_EXHAUSTED = "REPLICA_EXHAUSTED"
    DECODE_TIMEOUT = "DECODE_TIMEOUT"
    WORKER_RESET = "WORKER_RESET"
    INTERNAL = "INTERNAL"
    DEADLINE_UNMET = "DEADLINE_UNMET"
    MODEL_DEPRECATED = "MODEL_DEPRECATED"
    UNTRUSTED_ARTIFACT = "UNTRUSTED_ARTIFACT"

    @classmethod
    def from_kind(cls, kind: WorkerErrorKind) -> ErrorCode:
        """Default code for a kind when the mapping table does not say otherwise."""
        if kind is WorkerErrorKind.ADAPTER:
            return cls.INTERNAL
        return cls(kind.value)


class Capability(StrEnum):
    """What an adapter may declare unsupported (``Capabilities.declared_unsupported``).

    The suite's vocabulary, like Gateway API's named features: scenarios that need one are
    tagged ``@needs:<value>`` and are not run against an adapter that declares it; the
    declaration table (``conformance._declarations``) then judges the declaration per
    requirement. A StrEnum so a vendor's plain strings (``"cancel"``) keep working.
    """

    CANCEL = "cancel"
    API_KEY = "api_key"
    TLS = "tls"
    DEADLINE = "deadline"
    METRICS_SCRAPE = "metrics_scrape"
    RETRIES = "retries"
    CONNECTION_REUSE = "connection_reuse"
