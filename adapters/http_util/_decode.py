"""Bounded, incremental ``Content-Encoding`` decoding: a compressed body can never be a bomb.

Why not httpx's own decoding: ``Response.aiter_bytes`` hands every raw chunk to
``zlib.decompressobj().decompress(chunk)`` without ``max_length`` (``httpx._decoders``), so one
64 KiB read of a gzip bomb becomes ~64 MiB in one blocking call, and a stream of them ignores
``deadline_ms`` and starves every other task on the event loop (issue 16 item 3). Here the raw
body (``aiter_raw``) goes through our own decoder instead:

* each step produces at most ``DecodeLimits.step_bytes`` (64 KiB) of output — zlib's
  ``decompress(data, max_length)`` and brotli's ``process(data, output_buffer_limit)`` keep the
  rest of the input for the next step — and :func:`aiter_decoded` yields to the event loop
  between steps, so a cancel scope (the task's deadline, ``cancel``) interrupts decoding and
  other tasks keep running;
* the decoded size is capped (``max_bytes``) and so is the expansion ratio (``max_ratio``, once
  more than ``ratio_floor_bytes`` came out: a few small frames compress well legitimately),
  measured against the compressed bytes the decompressor actually *used* — not those received,
  which a fast sender makes the whole bomb at once, letting it expand a hundredfold; either
  limit is the PROTOCOL row of the mapping table, because the engine sent something no engine
  sends;
* supported codings are exactly the ones advertised in :data:`ACCEPT_ENCODING`: ``gzip``,
  ``deflate`` (zlib-wrapped, or raw as some servers send it) and ``br`` when the ``brotli``
  module is importable. Like httpx, an unknown coding is passed through as it is; unlike httpx,
  a chain of several codings is refused (no engine stacks them; each layer would multiply the
  ratio).

Identity bodies pass through untouched and unchecked here (no copy on the per-token path); the
callers that need a cap on them (non-stream reads) count bytes themselves.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import anyio
import httpx

from llorch_conformance.adapters.api import (
    ConfigError,
    UpstreamCondition,
    WorkerError,
    error_for_condition,
)

__all__ = ["ACCEPT_ENCODING", "DEFAULT_LIMITS", "BodyDecoder", "DecodeLimits", "aiter_decoded"]

_brotli: ModuleType | None
try:  # the C bindings; optional, as in httpx (untyped, hence imported by name)
    _brotli = importlib.import_module("brotli")
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

#: The codings this module decodes, in the form of an ``Accept-Encoding`` header value.
ACCEPT_ENCODING: Final = "gzip, deflate, br" if _brotli is not None else "gzip, deflate"
_IDENTITY: Final = frozenset({"", "identity"})


@dataclass(frozen=True)
class DecodeLimits:
    """How far a compressed body may expand (see the module docstring)."""

    max_bytes: int = 64 << 20
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 << 20
    step_bytes: int = 64 << 10

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.ratio_floor_bytes, self.step_bytes) < 1 or self.max_ratio < 1:
            raise ConfigError("DecodeLimits: sizes must be positive and max_ratio at least 1")


#: The defaults, for argument defaults.
DEFAULT_LIMITS: Final = DecodeLimits()


def _protocol(message: str, status: int | None) -> WorkerError:
    return error_for_condition(UpstreamCondition.PROTOCOL, message, upstream_status=status)


class BodyDecoder:
    """One body's decoder: ``feed`` raw bytes, then take bounded ``pieces`` until none is left.

    ``encoding`` is the response's ``Content-Encoding`` value; ``status`` (optional) goes into
    the errors as ``upstream_status``. Limits are checked after every piece, so memory and CPU
    per call are bounded by ``step_bytes`` whatever the input.
    """

    __slots__ = (
        "_brotli",
        "_coding",
        "_limits",
        "_more",
        "_pending",
        "_status",
        "_zlib",
        "bytes_consumed",
        "bytes_in",
        "bytes_out",
    )

    def __init__(
        self, encoding: str | None, limits: DecodeLimits = DEFAULT_LIMITS, status: int | None = None
    ) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",")]
        known = [c for c in codings if c in ("gzip", "x-gzip", "deflate", "br")]
        if len(known) > 1:
            raise _protocol(
                f"chained Content-Encoding {(encoding or '')[:60]!r} is not supported", status
            )
        self._coding = known[0] if known else "identity"
        if self._coding == "br" and _brotli is None:
            raise _protocol("Content-Encoding br without brotli support (not advertised)", status)
        self._limits = limits
        self._status = status
        self._pending = b""
        self._more = False  # the last step filled its output: more may come without input
        self._zlib: zlib._Decompress | None = None
        self._brotli: Any = None
        if self._coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        # deflate: zlib-wrapped or raw, told by the first two bytes (see ``pieces``)
        elif self._coding == "br":
            assert _brotli is not None
            self._brotli = _brotli.Decompressor()
        self.bytes_in = 0
        self.bytes_consumed = 0  # compressed bytes the decompressor has actually used
        self.bytes_out = 0

    @property
    def identity(self) -> bool:
        """True when the body is not compressed (nothing to decode)."""
        return self._coding == "identity"

    def feed(self, raw: bytes) -> None:
        self.bytes_in += len(raw)
        self._pending = self._pending + raw if self._pending else raw

    def pieces(self) -> Iterator[bytes]:
        """Decoded output of what was fed, at most ``step_bytes`` per piece, limits checked."""
        if self.identity:
            data, self._pending = self._pending, b""
            if data:
                self.bytes_out += len(data)
                yield data
            return
        if self._coding == "deflate" and self._zlib is None:
            if len(self._pending) < 2:
                return  # the format is told by the first two bytes
            self._zlib = zlib.decompressobj(_deflate_wbits(self._pending))
        while self._pending or self._more:
            before = (len(self._pending), self.bytes_consumed)
            piece = self._step()
            if piece:
                self._count(len(piece))
                yield piece
            elif (len(self._pending), self.bytes_consumed) == before:
                return  # no progress without more input: wait for the next feed

    def _step(self) -> bytes:
        step = self._limits.step_bytes
        data, self._pending = self._pending, b""
        try:
            if self._zlib is not None:
                out = self._zlib.decompress(data, step)
                self._pending = self._zlib.unconsumed_tail
                self.bytes_consumed += len(data) - len(self._pending)
                self._more = len(out) >= step and not self._zlib.eof
                if self._zlib.eof:
                    self._pending = b""  # trailing bytes after the stream end: ignored, as httpx
                return out
            dec = self._brotli
            assert dec is not None
            if not dec.can_accept_more_data():
                self._pending, data = data, b""
            self.bytes_consumed += len(data)  # brotli buffers what it takes
            piece: bytes = dec.process(data, output_buffer_limit=step)
            # Output may wait inside even when more input is accepted: ask until a short piece.
            self._more = len(piece) >= step and not dec.is_finished()
            return piece
        except (zlib.error, ValueError) as exc:
            raise _protocol(
                f"body is not valid {self._coding}: {exc}"[:200], self._status
            ) from None
        except Exception as exc:  # brotli.error is a plain Exception subclass
            if _brotli is not None and isinstance(exc, _brotli.error):
                raise _protocol(f"body is not valid br: {exc}"[:200], self._status) from None
            raise

    def _count(self, n: int) -> None:
        self.bytes_out += n
        limits = self._limits
        if self.bytes_out > limits.max_bytes:
            raise _protocol(
                f"{self._coding} body decodes to more than {limits.max_bytes} bytes", self._status
            )
        if self.bytes_out > limits.ratio_floor_bytes and self.bytes_out > limits.max_ratio * max(
            self.bytes_consumed, 1
        ):
            raise _protocol(
                f"{self._coding} body expands more than {limits.max_ratio:g}x "
                f"({self.bytes_consumed} bytes → {self.bytes_out}+)",
                self._status,
            )


async def aiter_decoded(
    response: httpx.Response, limits: DecodeLimits = DEFAULT_LIMITS
) -> AsyncGenerator[bytes, None]:
    """The body of ``response``, decoded in bounded pieces, yielding to the loop between them.

    Transport errors pass through unmapped (the callers map them with their stage); decoding
    errors and limits raise the PROTOCOL :class:`WorkerError`.
    """
    decoder = BodyDecoder(
        response.headers.get("content-encoding"), limits, status=response.status_code
    )
    raw = response.aiter_raw()
    try:
        if decoder.identity:
            async for chunk in raw:
                yield chunk
            return
        async for chunk in raw:
            decoder.feed(chunk)
            for piece in decoder.pieces():
                # Before every piece: let other tasks run and let a cancel scope (deadline,
                # cancel) interrupt a long expansion, even when the caller finds no frame in it.
                await anyio.lowlevel.checkpoint()
                yield piece
    finally:
        await raw.aclose()  # type: ignore[attr-defined]


def _deflate_wbits(head: bytes) -> int:
    """``deflate`` is zlib-wrapped per RFC 9110, but servers often send raw deflate (httpx
    retries raw on a zlib error): a valid zlib header (method 8, header checksum) says which."""
    cmf, flg = head[0], head[1]
    wrapped = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
