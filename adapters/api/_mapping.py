"""The error-mapping table of DESIGN.md, kept here once.

Every adapter, the HTTP layer, the host and the harness's expectations read this table; nobody
re-types it. Rows are data so the proof bundle can print them (``error_mapping_table.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ._enums import ErrorCode, WorkerErrorKind
from ._exceptions import WorkerError

__all__ = [
    "ERROR_MAPPING",
    "MappingRow",
    "UpstreamCondition",
    "error_for_condition",
    "error_for_status",
    "mapping_for_condition",
    "mapping_for_status",
]


class UpstreamCondition(StrEnum):
    """Upstream conditions that are not plain HTTP statuses."""

    INVALID_REQUEST = "invalid_request"  # 400 / 422 / validation error event
    AUTH = "auth"  # 401 / 403
    MODEL_NOT_FOUND = "model_not_found"  # 404
    OVERLOADED = "overloaded"  # 429, 503, loading, overloaded event
    SERVER_ERROR = "server_error"  # other 5xx
    RESET = "reset"  # connection reset / EOF before the terminal frame
    CONNECT_FAILED = "connect_failed"  # connect refused / DNS failure
    TIMEOUT = "timeout"  # no first byte / stall longer than the decode timeout
    DEADLINE = "deadline"  # deadline_ms exceeded
    PROTOCOL = "protocol"  # malformed frame / protocol violation
    ADAPTER_BUG = "adapter_bug"  # a bug inside the adapter


@dataclass(frozen=True, slots=True)
class MappingRow:
    condition: UpstreamCondition
    upstream: str
    kind: WorkerErrorKind
    code: ErrorCode
    retriable: bool
    uses_retry_after: bool = False


ERROR_MAPPING: tuple[MappingRow, ...] = (
    MappingRow(
        UpstreamCondition.INVALID_REQUEST,
        "400 / 422 / validation error event",
        WorkerErrorKind.ADAPTER,
        ErrorCode.INVALID_PARAMS,
        False,
    ),
    MappingRow(
        UpstreamCondition.AUTH, "401 / 403", WorkerErrorKind.ADAPTER, ErrorCode.INTERNAL, False
    ),
    MappingRow(
        UpstreamCondition.MODEL_NOT_FOUND,
        "404 model not found",
        WorkerErrorKind.POOL_UNAVAILABLE,
        ErrorCode.POOL_UNAVAILABLE,
        False,
    ),
    MappingRow(
        UpstreamCondition.OVERLOADED,
        "429, 503, loading, overloaded event",
        WorkerErrorKind.POOL_UNAVAILABLE,
        ErrorCode.POOL_UNAVAILABLE,
        True,
        True,
    ),
    MappingRow(
        UpstreamCondition.SERVER_ERROR,
        "other 5xx",
        WorkerErrorKind.WORKER_RESET,
        ErrorCode.WORKER_RESET,
        True,
    ),
    MappingRow(
        UpstreamCondition.RESET,
        "reset or EOF before the terminal frame",
        WorkerErrorKind.WORKER_RESET,
        ErrorCode.WORKER_RESET,
        True,
    ),
    MappingRow(
        UpstreamCondition.CONNECT_FAILED,
        "connect refused / DNS failure",
        WorkerErrorKind.POOL_UNAVAILABLE,
        ErrorCode.POOL_UNAVAILABLE,
        True,
    ),
    MappingRow(
        UpstreamCondition.TIMEOUT,
        "no first byte / stall longer than the decode timeout",
        WorkerErrorKind.DECODE_TIMEOUT,
        ErrorCode.DECODE_TIMEOUT,
        True,
    ),
    MappingRow(
        UpstreamCondition.DEADLINE,
        "deadline_ms exceeded",
        WorkerErrorKind.DEADLINE_UNMET,
        ErrorCode.DEADLINE_UNMET,
        False,
    ),
    MappingRow(
        UpstreamCondition.PROTOCOL,
        "malformed frame, protocol violation",
        WorkerErrorKind.ADAPTER,
        ErrorCode.INTERNAL,
        False,
    ),
    MappingRow(
        UpstreamCondition.ADAPTER_BUG,
        "bug inside the adapter",
        WorkerErrorKind.INTERNAL,
        ErrorCode.INTERNAL,
        False,
    ),
)

_BY_CONDITION = {row.condition: row for row in ERROR_MAPPING}


def mapping_for_condition(condition: UpstreamCondition) -> MappingRow:
    return _BY_CONDITION[condition]


def _condition_for_status(status: int) -> UpstreamCondition | None:
    if status in (400, 422):
        return UpstreamCondition.INVALID_REQUEST
    if status in (401, 403):
        return UpstreamCondition.AUTH
    if status == 404:
        return UpstreamCondition.MODEL_NOT_FOUND
    if status in (429, 503):
        return UpstreamCondition.OVERLOADED
    if 500 <= status <= 599:
        return UpstreamCondition.SERVER_ERROR
    if 400 <= status <= 499:
        # Other client errors (405, 409, 413, ...): the adapter built a request the engine
        # refuses; retrying the same bytes cannot help.
        return UpstreamCondition.INVALID_REQUEST
    return None


def mapping_for_status(status: int) -> MappingRow | None:
    """The row for an upstream HTTP status, or ``None`` for a success or informational status."""
    cond = _condition_for_status(status)
    return None if cond is None else _BY_CONDITION[cond]


def error_for_condition(
    condition: UpstreamCondition,
    message: str,
    *,
    retry_after_ms: int | None = None,
    upstream_status: int | None = None,
) -> WorkerError:
    """Build the :class:`WorkerError` the table prescribes for ``condition``."""
    row = _BY_CONDITION[condition]
    return WorkerError(
        row.kind,
        message,
        code=row.code,
        retriable=row.retriable,
        retry_after_ms=retry_after_ms if row.uses_retry_after else None,
        upstream_status=upstream_status,
    )


def error_for_status(
    status: int, message: str, *, retry_after_ms: int | None = None
) -> WorkerError:
    """Build the :class:`WorkerError` for a non-success upstream HTTP status.

    Raises ``ValueError`` for statuses below 400: those are not errors.
    """
    cond = _condition_for_status(status)
    if cond is None:
        raise ValueError(f"HTTP status {status} is not an error status")
    return error_for_condition(cond, message, retry_after_ms=retry_after_ms, upstream_status=status)
