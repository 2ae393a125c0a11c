"""Turning upstream HTTP failures into :class:`WorkerError` through the one mapping table.

Wire facts and choices, and where they come from:

* Status → kind/code/retriable is :func:`adapters.api.error_for_status` (DESIGN.md table,
  HTU-ERR-4002); nothing here re-types the table.
* ``Retry-After`` is delta-seconds or an HTTP-date (RFC 9110 §10.2.3). We also accept fractional
  seconds (some proxies send ``1.5``) and the OpenAI-style ``retry-after-ms`` header, which the
  official SDK prefers when present (reference engine-dialects §4.2). ``x-ratelimit-reset-*`` is a
  quota window (``6m0s``), not a Retry-After, and is ignored on purpose.
* Error envelopes recognised (engine-dialects §0/§2.4/§3.5/§5.2): OpenAI/vLLM/llama.cpp
  ``{"error":{"message"}}``, TGI/Triton ``{"error":"…"}``, old vLLM flat ``{"message"}``,
  FastAPI/Starlette ``{"detail": "…" | [{"msg"}]}``; anything else: the first line of the text.
* Messages are short (≤ 200 chars) and redacted before truncation (HTU-ERR-4001/4003).
"""

from __future__ import annotations

import email.utils
import json
import math
import socket
import ssl
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal

import anyio
import httpx

from llorch_conformance.adapters.api import (
    ProtocolError,
    UpstreamCondition,
    UsageError,
    WorkerError,
    error_for_condition,
    error_for_status,
)

from ._redact import redact

__all__ = [
    "MAX_MESSAGE_CHARS",
    "error_from_exception",
    "error_from_response",
    "is_non_retriable_status",
    "is_retriable_status",
    "parse_retry_after",
    "retry_after_from_headers",
]

MAX_MESSAGE_CHARS = 200
_BODY_SNIFF_BYTES = 64 * 1024
_NON_RETRIABLE = frozenset({400, 401, 403, 404, 422})


def is_retriable_status(status: int) -> bool:
    """429 or any 5xx: the same request may succeed later (original http-util rule)."""
    return status == 429 or 500 <= status <= 599


def is_non_retriable_status(status: int) -> bool:
    """400, 401, 403, 404, 422: retrying the same request cannot help (original http-util rule).

    Statuses in neither set (e.g. 409, 425) are for the caller to judge.
    """
    return status in _NON_RETRIABLE


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> int | None:
    """``Retry-After`` → milliseconds (never negative), or ``None`` when absent or junk.

    Delta-seconds may be fractional (``"1.5"`` → 1500); surrounding whitespace is ignored. An
    HTTP-date is measured from ``now`` (default: the current UTC time); a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text[0].isdigit() or text[0] == ".":
        try:
            seconds = float(text)
        except ValueError:
            return None
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return round(seconds * 1000)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ref = now if now is not None else datetime.now(UTC)
    if ref.tzinfo is None:
        ref = ref.replace(tzinfo=UTC)
    return max(0, round((when - ref).total_seconds() * 1000))


def _parse_retry_after_ms(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        ms = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(ms) or ms < 0:
        return None
    return round(ms)


def retry_after_from_headers(
    headers: Mapping[str, str] | httpx.Headers, *, now: datetime | None = None
) -> int | None:
    """Retry hint of a response in ms: ``retry-after-ms`` if valid, else ``Retry-After``."""
    lowered: Mapping[str, str]
    if isinstance(headers, httpx.Headers):
        lowered = headers
    else:
        # A plain mapping: match names case-insensitively without httpx.Headers, which refuses
        # non-ASCII values that a hand-built mapping may carry.
        lowered = {str(k).lower(): v for k, v in headers.items()}
    ms = _parse_retry_after_ms(lowered.get("retry-after-ms"))
    if ms is not None:
        return ms
    return parse_retry_after(lowered.get("retry-after"), now=now)


def _shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _envelope_message(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    err = doc.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        if isinstance(msg, str) and msg:
            return msg
    elif isinstance(err, str) and err:
        return err
    msg = doc.get("message")
    if isinstance(msg, str) and msg:
        return msg
    detail = doc.get("detail")
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list):
        msgs = [d.get("msg") for d in detail if isinstance(d, dict)]
        joined = "; ".join(m for m in msgs if isinstance(m, str) and m)
        if joined:
            return joined
    return None


def _body_message(body: bytes | str) -> str | None:
    raw = body[:_BODY_SNIFF_BYTES] if body else body
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    if not text:
        return None
    if text[0] in "{[":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        found = _envelope_message(doc)
        if found:
            return found
    first = text.splitlines()[0] if text else ""
    return first or None


def error_from_response(
    status: int,
    headers: Mapping[str, str] | httpx.Headers,
    body: bytes | str,
    *,
    secrets: Iterable[str] = (),
) -> WorkerError:
    """The :class:`WorkerError` for an upstream error response (status ≥ 400).

    ``message`` reads ``"upstream <status>: <engine message>"``, redacted and at most 200 chars;
    ``retry_after_ms`` comes from the headers where the table uses it (429/503).
    """
    if status < 400:
        raise UsageError(f"error_from_response: HTTP {status} is not an error status")
    found = _body_message(body)
    if found is None:
        try:
            found = HTTPStatus(status).phrase
        except ValueError:
            found = "error"
    secrets = tuple(secrets)
    message = _shorten(f"upstream {status}: {redact(found, secrets)}")
    return error_for_status(status, message, retry_after_ms=retry_after_from_headers(headers))


_Stage = Literal["connect", "first_byte", "stream"]
_STAGE_TEXT = {"connect": "connect", "first_byte": "before first byte", "stream": "mid-stream"}


def _condition_for(exc: BaseException, stage: _Stage) -> UpstreamCondition:
    # Order matters: httpx timeouts are TransportErrors, ConnectTimeout is a TimeoutException.
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | socket.gaierror):
        return UpstreamCondition.CONNECT_FAILED
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return UpstreamCondition.TIMEOUT
    if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UpstreamCondition.ADAPTER_BUG
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A certificate we refuse will not become acceptable by retrying.
        return UpstreamCondition.PROTOCOL
    if isinstance(exc, ProtocolError):
        return UpstreamCondition.PROTOCOL
    if isinstance(
        exc,
        httpx.RemoteProtocolError
        | httpx.ReadError
        | httpx.WriteError
        | httpx.NetworkError
        | httpx.ProxyError
        | anyio.EndOfStream
        | anyio.BrokenResourceError
        | anyio.ClosedResourceError,
    ):
        return UpstreamCondition.RESET
    if isinstance(exc, ConnectionRefusedError):
        return UpstreamCondition.CONNECT_FAILED
    if isinstance(exc, OSError):
        return UpstreamCondition.CONNECT_FAILED if stage == "connect" else UpstreamCondition.RESET
    return UpstreamCondition.ADAPTER_BUG


def _tls_refusal(exc: BaseException) -> bool:
    """True when a TLS handshake failure sits in the cause chain (httpx → httpcore → ssl)."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        if isinstance(cur, ssl.SSLError):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


def error_from_exception(
    exc: BaseException,
    *,
    stage: _Stage,
    secrets: Iterable[str] = (),
) -> WorkerError:
    """Map a transport-level exception to the :class:`WorkerError` the table prescribes.

    Connect refused / DNS failure / connect timeout → POOL_UNAVAILABLE (retriable); read or pool
    timeout and stalls → DECODE_TIMEOUT; reset, premature close, remote protocol error →
    WORKER_RESET; a refused TLS certificate or our own :class:`ProtocolError` → ADAPTER/INTERNAL
    (not retriable); anything unrecognised → INTERNAL. A :class:`WorkerError` is returned as is.
    """
    if isinstance(exc, WorkerError):
        return exc
    condition = _condition_for(exc, stage)
    if condition is UpstreamCondition.CONNECT_FAILED and _tls_refusal(exc):
        condition = UpstreamCondition.PROTOCOL
    detail = str(exc) or type(exc).__name__
    text = f"{_STAGE_TEXT[stage]}: {type(exc).__name__}: {redact(detail, tuple(secrets))}"
    return error_for_condition(condition, _shorten(text))
