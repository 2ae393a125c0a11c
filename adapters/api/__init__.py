"""The WorkerAdapter contract (ADAPT-3000..3003): types, events, the error taxonomy and its table.

This is the lowest layer of llorch-conformance; it imports nothing else of ours. Implementation
lives in private ``_modules``; the names below are the whole public API.
"""

from ._enums import (
    Capability,
    DeterminismLevel,
    Engine,
    ErrorCode,
    EventKind,
    KVHint,
    PlacementMode,
    Priority,
    WorkerErrorKind,
    Workload,
)
from ._exceptions import (
    ConfigError,
    ConformanceFailure,
    HarnessError,
    InvalidTaskRequest,
    LlorchError,
    ProtocolError,
    SSEDecodeError,
    UsageError,
    WorkerError,
)
from ._grammar import check_stream, joined_text
from ._mapping import (
    ERROR_MAPPING,
    MappingRow,
    UpstreamCondition,
    error_for_condition,
    error_for_status,
    mapping_for_condition,
    mapping_for_status,
)
from ._types import (
    TASK_REQUEST_REQUIRED,
    Capabilities,
    PlacementOverrides,
    TaskRequest,
    TokenEvent,
    WorkerAdapter,
    WorkerHealth,
    WorkerProps,
)

__all__ = [
    "ERROR_MAPPING",
    "TASK_REQUEST_REQUIRED",
    "Capabilities",
    "Capability",
    "ConfigError",
    "ConformanceFailure",
    "DeterminismLevel",
    "Engine",
    "ErrorCode",
    "EventKind",
    "HarnessError",
    "InvalidTaskRequest",
    "KVHint",
    "LlorchError",
    "MappingRow",
    "PlacementMode",
    "PlacementOverrides",
    "Priority",
    "ProtocolError",
    "SSEDecodeError",
    "TaskRequest",
    "TokenEvent",
    "UpstreamCondition",
    "UsageError",
    "WorkerAdapter",
    "WorkerError",
    "WorkerErrorKind",
    "WorkerHealth",
    "WorkerProps",
    "Workload",
    "check_stream",
    "error_for_condition",
    "error_for_status",
    "joined_text",
    "mapping_for_condition",
    "mapping_for_status",
]
