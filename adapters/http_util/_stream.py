"""Reading a streaming response body incrementally, with a silence timer and mapped errors.

Choices, and where they come from:

* Incremental: each chunk is handed on as soon as httpx reads it (principle 4, HTU-1003); the body
  is never buffered. A compressed body is decoded by :func:`aiter_decoded` in bounded pieces
  (never httpx's one-call ``aiter_bytes`` decoding: a gzip bomb would block the loop and ignore
  the deadline); network chunks of an uncompressed body pass through unchanged.
* The inter-chunk timer is our own ``anyio.fail_after`` around each read (DESIGN.md: "stall longer
  than the decode timeout" → DECODE_TIMEOUT), so a caller can give a stream a tighter silence
  budget than the client's read timeout. When httpx's own per-read timeout is already at or below
  the budget on an HTTP/1.x connection, it is the timer (its ReadTimeout maps to the same
  DECODE_TIMEOUT) and ours is skipped: a cancel scope costs ~10 µs, more than decoding a token.
* A transport failure mid-body (reset, incomplete chunked body, h2 stream reset) → WORKER_RESET;
  the body ending in the middle of an SSE event is also a reset: bytes were lost. A clean end
  after a complete event is a normal end (engines like llama.cpp ``/completion``, TGI
  ``/generate_stream`` and Triton end streams by closing them; engine-dialects §0).
* The timer never spans a ``yield``: the consumer's own time is not the engine's silence.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable

import anyio
import httpx

from llorch_conformance.adapters.api import UpstreamCondition, WorkerError, error_for_condition

from ._decode import DEFAULT_LIMITS, DecodeLimits, aiter_decoded
from ._errors import error_from_exception
from ._sse import SSEDecoder, SSEEvent

__all__ = ["aiter_chunks", "aiter_sse"]


def _stall_error(timeout_s: float) -> WorkerError:
    return error_for_condition(
        UpstreamCondition.TIMEOUT,
        f"mid-stream: no bytes for {timeout_s:g} s (inter-chunk timeout)",
    )


def _read_timeout(response: httpx.Response) -> float | None:
    """The per-read timeout httpx/httpcore apply to this response's body reads, if known."""
    try:
        timeouts = response.request.extensions.get("timeout")
    except RuntimeError:  # a Response built without a request
        return None
    if isinstance(timeouts, dict):
        read = timeouts.get("read")
        if isinstance(read, int | float):
            return float(read)
    return None


async def aiter_chunks(
    response: httpx.Response,
    *,
    inter_chunk_timeout_s: float | None,
    secrets: Iterable[str] = (),
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> AsyncGenerator[bytes, None]:
    """Yield the body's byte chunks as they arrive (decoded, within ``limits``, if compressed).

    Silence longer than ``inter_chunk_timeout_s`` → :class:`WorkerError` DECODE_TIMEOUT; a
    transport error → the mapped :class:`WorkerError` (WORKER_RESET for resets and premature
    close, DECODE_TIMEOUT for the client's own read timeout); a body beyond ``limits`` →
    PROTOCOL. ``None`` disables our timer.
    """
    timer = inter_chunk_timeout_s
    if timer is not None:
        read = _read_timeout(response)
        if read is not None and read <= timer and response.http_version.startswith("HTTP/1"):
            # httpx already bounds every socket read by this (shorter or equal) timeout and we
            # map its ReadTimeout to the same DECODE_TIMEOUT: a second timer would change
            # nothing but cost a cancel scope (~10 µs) per chunk. Not on HTTP/2: there a read
            # may bring another stream's frames, so a silent stream would go unnoticed.
            timer = None
    # Closed explicitly so the stream is released even when our consumer stops early.
    chunks = aiter_decoded(response, limits)
    try:
        while True:
            try:
                if timer is None:
                    chunk = await chunks.__anext__()
                else:
                    with anyio.fail_after(timer):
                        chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _stall_error(inter_chunk_timeout_s or 0.0) from None
            except (
                httpx.TransportError,
                OSError,
                anyio.EndOfStream,
                anyio.BrokenResourceError,
            ) as exc:
                raise error_from_exception(exc, stage="stream", secrets=secrets) from exc
            if chunk:
                yield chunk
    finally:
        await chunks.aclose()


async def aiter_sse(
    response: httpx.Response,
    *,
    inter_chunk_timeout_s: float | None,
    decoder: SSEDecoder | None = None,
    secrets: Iterable[str] = (),
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> AsyncGenerator[SSEEvent, None]:
    """Yield each :class:`SSEEvent` of ``response`` as soon as its bytes have arrived.

    Errors as in :func:`aiter_chunks`; :class:`SSEDecodeError` from the decoder passes through; a
    body that ends inside an event raises WORKER_RESET. Pass your own ``decoder`` to read its
    ``comments``/``last_event_id`` afterwards or to set limits.
    """
    dec = decoder if decoder is not None else SSEDecoder()
    chunks = aiter_chunks(
        response, inter_chunk_timeout_s=inter_chunk_timeout_s, secrets=secrets, limits=limits
    )
    try:
        async for chunk in chunks:
            for event in dec.feed(chunk):
                yield event
    finally:
        await chunks.aclose()
    dec.close()
    if dec.truncated:
        raise error_for_condition(
            UpstreamCondition.RESET, "mid-stream: body ended inside an SSE event"
        )
