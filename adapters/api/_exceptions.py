"""The one exception tree of llorch-conformance.

Everything the suite raises on purpose derives from :class:`LlorchError`. The tree keeps two
families apart, because a conformance suite must never confuse them (DESIGN.md principle 7):

* a **failure** — the system under test misses a requirement (exit code 1);
* an **error** — the harness itself is broken or was used wrongly (exit code 2).

Adapter-level errors (:class:`WorkerError`) are neither: they are *data* an adapter produces and
the suite judges. They live in the same tree so callers can catch "anything of ours" at once::

    LlorchError
    ├── WorkerError                 adapter-facing taxonomy (kind, code, retriable, retry_after_ms)
    │   └── InvalidTaskRequest      a TaskRequest broke a rule; names the field and the rule
    ├── ProtocolError               bytes on the wire broke a framing rule
    │   └── SSEDecodeError          event-stream too large / undecodable (adapters.http_util)
    ├── HarnessError                the harness or its usage is broken (exit 2)
    │   ├── UsageError              bad command-line arguments or API use
    │   └── ConfigError             a bad config, profile, cassette or bundle file
    └── ConformanceFailure          a requirement was not met (exit 1)

Why the root lives in ``adapters.api``: it is the lowest layer; every other package may import it
and it imports nothing of ours.
"""

from __future__ import annotations

from typing import Any

from ._enums import ErrorCode, WorkerErrorKind

__all__ = [
    "ConfigError",
    "ConformanceFailure",
    "HarnessError",
    "InvalidTaskRequest",
    "LlorchError",
    "ProtocolError",
    "SSEDecodeError",
    "UsageError",
    "WorkerError",
]


class LlorchError(Exception):
    """Root of every exception llorch-conformance raises deliberately."""


class WorkerError(LlorchError):
    """An adapter-level failure in the WorkerError taxonomy of ADAPT-3002.

    ``kind`` is one of the six original variants; ``code`` is the orchestrator ``ErrorKind`` that
    goes on the wire; ``retriable`` and ``retry_after_ms`` are advisory hints for the caller
    (HTU-ERR-4003/4004). ``message`` must already be redacted and short.
    """

    def __init__(
        self,
        kind: WorkerErrorKind,
        message: str,
        *,
        code: ErrorCode | None = None,
        retriable: bool = False,
        retry_after_ms: int | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code if code is not None else ErrorCode.from_kind(kind)
        self.retriable = retriable
        self.retry_after_ms = retry_after_ms
        self.message = message
        self.upstream_status = upstream_status

    def to_event_data(self) -> dict[str, Any]:
        """Payload of the terminal ``error`` event: ``{code, retriable, retry_after_ms?, message}``."""
        data: dict[str, Any] = {"code": self.code.value, "retriable": self.retriable}
        if self.retry_after_ms is not None:
            data["retry_after_ms"] = self.retry_after_ms
        data["message"] = self.message
        return data

    @classmethod
    def from_event_data(cls, data: dict[str, Any]) -> WorkerError:
        """Rebuild an error from a terminal ``error`` event's payload.

        Used by layers above an adapter (the host) that must reason about an error they only saw
        as an event. Unknown codes become ``INTERNAL`` rather than raising: the caller is judging
        someone else's output and must not crash on it.
        """
        try:
            code = ErrorCode(str(data.get("code")))
        except ValueError:
            code = ErrorCode.INTERNAL
        try:
            kind = WorkerErrorKind(code.value)
        except ValueError:
            kind = WorkerErrorKind.ADAPTER
        ra = data.get("retry_after_ms")
        return cls(
            kind,
            str(data.get("message", "")),
            code=code,
            retriable=data.get("retriable") is True,
            retry_after_ms=ra if isinstance(ra, int) and not isinstance(ra, bool) else None,
        )

    def __repr__(self) -> str:
        return (
            f"WorkerError(kind={self.kind.value}, code={self.code.value}, "
            f"retriable={self.retriable}, retry_after_ms={self.retry_after_ms}, "
            f"message={self.message!r})"
        )


class InvalidTaskRequest(WorkerError):
    """A TaskRequest (or a dict meant to become one) broke a rule.

    ``field`` names the offending field (dotted for nested fields), ``rule`` says what was
    expected, so that a vendor reading a failing run sees at once what to fix.
    """

    def __init__(self, field: str, rule: str, value: Any = None) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(
            WorkerErrorKind.ADAPTER,
            f"invalid TaskRequest field {field!r}: {rule} (got {shown})",
            code=ErrorCode.INVALID_PARAMS,
            retriable=False,
        )
        self.field = field
        self.rule = rule


class ProtocolError(LlorchError):
    """Bytes on the wire broke a framing rule (malformed frame, oversize line, ...)."""


class SSEDecodeError(ProtocolError):
    """The SSE decoder refused its input (an over-long line or event); never an unbounded buffer."""


class HarnessError(LlorchError):
    """The harness is broken or was used wrongly. Maps to exit code 2, never to a verdict."""


class UsageError(HarnessError):
    """Bad command-line arguments or wrong use of the public API."""


class ConfigError(HarnessError):
    """A config, profile, cassette, waiver or bundle file is unreadable or invalid.

    The message names the file and what was wrong with it.
    """


class ConformanceFailure(LlorchError):
    """A requirement was not met by the system under test.

    ``requirement`` is the catalogue ID (e.g. ``ADAPT-3001``); ``title`` a one-line summary.
    """

    def __init__(self, requirement: str, title: str, detail: str = "") -> None:
        text = f"{requirement}: {title}" + (f" — {detail}" if detail else "")
        super().__init__(text)
        self.requirement = requirement
        self.title = title
        self.detail = detail
