"""The rbee worker contract (reference §8) and the bridge that serves any adapter as a worker.

* the contract as data: :class:`WorkerInfo`, :class:`WorkerStatus`, :class:`WorkerHeartbeat`,
  :class:`HeartbeatAck`, :class:`InferRequest` / :class:`InferResponse` validators, recency
  (:func:`is_recent`) and the constants;
* :class:`HeartbeatSender` — the worker side of the heartbeat protocol (interval, capped
  jittered backoff while the queen is down, a final ``stopped`` beat);
* :class:`WorkerBridge` / :func:`run_worker_bridge` — a WorkerAdapter served as a worker, used by
  ``llorch-conformance worker``;
* :class:`ServedApp` / :func:`bind_socket` — uvicorn on a pre-bound socket in a thread (shared with
  the mock queen and mock worker in :mod:`mock_engines.rbee`).
"""

from ._bridge import (
    IMPLEMENTATION_NAMES,
    BridgeConfig,
    WorkerBridge,
    error_status,
    worker_app,
    worker_lifespan,
)
from ._contract import (
    HEARTBEAT_INTERVAL_SECS,
    HEARTBEAT_PATH,
    HEARTBEAT_TIMEOUT_SECS,
    MAX_TOKENS_LIMIT,
    WORKER_INFO_FIELDS,
    BadInferRequest,
    HeartbeatAck,
    InferRequest,
    InferResponse,
    WorkerApiSpec,
    WorkerHeartbeat,
    WorkerInfo,
    WorkerStatus,
    format_rfc3339,
    is_recent,
    parse_rfc3339_utc,
    whole_age,
)
from ._heartbeat import HeartbeatAttempt, HeartbeatSender
from ._runner import WorkerServer, run_worker_bridge
from ._serve import ServedApp, ServedHandle, bind_socket

__all__ = [
    "HEARTBEAT_INTERVAL_SECS",
    "HEARTBEAT_PATH",
    "HEARTBEAT_TIMEOUT_SECS",
    "IMPLEMENTATION_NAMES",
    "MAX_TOKENS_LIMIT",
    "WORKER_INFO_FIELDS",
    "BadInferRequest",
    "BridgeConfig",
    "HeartbeatAck",
    "HeartbeatAttempt",
    "HeartbeatSender",
    "InferRequest",
    "InferResponse",
    "ServedApp",
    "ServedHandle",
    "WorkerApiSpec",
    "WorkerBridge",
    "WorkerHeartbeat",
    "WorkerInfo",
    "WorkerServer",
    "WorkerStatus",
    "bind_socket",
    "error_status",
    "format_rfc3339",
    "is_recent",
    "parse_rfc3339_utc",
    "run_worker_bridge",
    "whole_age",
    "worker_app",
    "worker_lifespan",
]
