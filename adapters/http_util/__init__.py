"""The shared HTTP layer of the adapters (http-util; ORCH-3610..3613, HTU-1001..1005).

One place for what every engine adapter needs on the wire:

* a pooled, explicitly configured client (:class:`HttpClientConfig`, :func:`build_client`,
  :func:`fetch`, :func:`open_stream`) — TLS verification on, no environment, HTTP/2 by ALPN;
  :func:`verifying_context` is its CA bundle, loaded once per process;
* capped full-jitter retries for idempotent operations with an evidence timeline
  (:class:`RetryPolicy`, :func:`retry_async`, :class:`RetryTimeline`);
* an incremental, byte-level SSE decoder and streaming readers with a silence timer
  (:class:`SSEDecoder`, :func:`aiter_sse`, :func:`aiter_chunks`);
* bounded ``Content-Encoding`` decoding (gzip, deflate, br) in small steps that yield to the
  event loop, with a cap on decoded bytes and on the expansion ratio (:class:`DecodeLimits`,
  :class:`BodyDecoder`, :func:`aiter_decoded`; never a decompression bomb);
* redaction in the project's one style, ``****<fp6>`` (:func:`redact` and friends);
* upstream failure → :class:`adapters.api.WorkerError` via the one mapping table
  (:func:`error_from_response`, :func:`error_from_exception`, :func:`parse_retry_after`).

It imports only :mod:`adapters.api` of ours, and never reads the environment (HTU-EXP-1101).
"""

from ._client import (
    HttpClientConfig,
    bearer_header,
    build_client,
    fetch,
    open_stream,
    verifying_context,
)
from ._decode import ACCEPT_ENCODING, BodyDecoder, DecodeLimits, aiter_decoded
from ._errors import (
    error_from_exception,
    error_from_response,
    is_non_retriable_status,
    is_retriable_status,
    parse_retry_after,
    retry_after_from_headers,
)
from ._redact import fp6, mask, redact, redact_headers, redact_url
from ._retry import RetryPolicy, RetryRecord, RetryTimeline, retry_async
from ._sse import SSEDecoder, SSEEvent
from ._stream import aiter_chunks, aiter_sse

__all__ = [
    "ACCEPT_ENCODING",
    "BodyDecoder",
    "DecodeLimits",
    "HttpClientConfig",
    "RetryPolicy",
    "RetryRecord",
    "RetryTimeline",
    "SSEDecoder",
    "SSEEvent",
    "aiter_chunks",
    "aiter_decoded",
    "aiter_sse",
    "bearer_header",
    "build_client",
    "error_from_exception",
    "error_from_response",
    "fetch",
    "fp6",
    "is_non_retriable_status",
    "is_retriable_status",
    "mask",
    "open_stream",
    "parse_retry_after",
    "redact",
    "redact_headers",
    "redact_url",
    "retry_after_from_headers",
    "retry_async",
    "verifying_context",
]
