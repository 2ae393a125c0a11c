"""Bounded Content-Encoding decoding (issue 16 item 3): a real decoder that cannot be a bomb."""

from __future__ import annotations

import gzip
import time
import zlib

import pytest

from llorch_conformance.adapters.api import WorkerError
from llorch_conformance.adapters.http_util import (
    ACCEPT_ENCODING,
    BodyDecoder,
    DecodeLimits,
    HttpClientConfig,
)
from llorch_conformance.adapters.http_util._decode import _brotli

PAYLOAD = b"".join(b'data: {"content":"tok %d","stop":false}\n\n' % i for i in range(3000))


def _encodings() -> list[tuple[str, bytes]]:
    out = [
        ("gzip", gzip.compress(PAYLOAD)),
        ("x-gzip", gzip.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)),  # zlib-wrapped, as the RFC says
        ("deflate", zlib.compress(PAYLOAD)[2:-4]),  # raw deflate, as some servers send it
        ("identity", PAYLOAD),
        ("x-unknown", PAYLOAD),  # like httpx: an unknown coding passes through
    ]
    if _brotli is not None:
        out.append(("br", _brotli.compress(PAYLOAD)))
    return out


def _decode(decoder: BodyDecoder, data: bytes, chunk: int) -> bytes:
    out = bytearray()
    for i in range(0, len(data), chunk):
        decoder.feed(data[i : i + chunk])
        for piece in decoder.pieces():
            assert len(piece) <= max(DecodeLimits().step_bytes, chunk)
            out += piece
    return bytes(out)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
@pytest.mark.parametrize(
    ("coding", "data"), _encodings(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_advertised_coding_round_trips_in_any_chunking(
    coding: str, data: bytes, chunk: int
) -> None:
    assert _decode(BodyDecoder(coding), data, chunk) == PAYLOAD


def test_accept_encoding_names_exactly_what_is_decoded() -> None:
    assert ACCEPT_ENCODING.startswith("gzip, deflate")
    assert ("br" in ACCEPT_ENCODING) == (_brotli is not None)


def _newline_bomb(size: int, wbits: int = 31) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(comp.compress(b"\n" * (1 << 20)) for _ in range(size >> 20)) + comp.flush()


@pytest.mark.parametrize(("coding", "wbits"), [("gzip", 31), ("deflate", 15)])
def test_a_bomb_stops_at_the_ratio_after_bounded_steps(coding: str, wbits: int) -> None:
    bomb = _newline_bomb(64 << 20, wbits)
    decoder = BodyDecoder(coding, status=200)
    decoder.feed(bomb)  # the whole bomb at once, as a fast sender delivers it
    worst = 0.0
    with pytest.raises(WorkerError) as caught:
        pieces = decoder.pieces()
        while True:
            t = time.perf_counter()
            next(pieces)
            worst = max(worst, time.perf_counter() - t)
    err = caught.value
    assert err.code.value == "INTERNAL" and not err.retriable
    assert err.upstream_status == 200
    assert "expands more than 100x" in err.message
    assert decoder.bytes_out <= 2 << 20  # stopped just past the 1 MiB floor, not at 64 MiB
    print(f"{coding} bomb: stopped at {decoder.bytes_out} bytes, worst step {worst * 1e3:.2f} ms")


def test_the_byte_cap_holds_for_bodies_that_compress_only_moderately() -> None:
    import random

    rng = random.Random(5)
    text = b"".join(rng.choice([b"alpha ", b"beta ", b"gamma\n"]) for _ in range(400_000))
    limits = DecodeLimits(max_bytes=1 << 20, max_ratio=1000)
    decoder = BodyDecoder("gzip", limits)
    decoder.feed(gzip.compress(text))
    with pytest.raises(WorkerError, match="decodes to more than 1048576 bytes"):
        for _ in decoder.pieces():
            pass


def test_chained_codings_and_corrupt_bodies_are_protocol_errors() -> None:
    with pytest.raises(WorkerError, match="chained Content-Encoding"):
        BodyDecoder("gzip, deflate")
    decoder = BodyDecoder("gzip", status=200)
    decoder.feed(b"\x1f\x8b\x08\x00garbage-not-gzip" * 10)
    with pytest.raises(WorkerError, match="not valid gzip") as caught:
        list(decoder.pieces())
    assert caught.value.code.value == "INTERNAL"


def test_limits_are_validated_and_come_from_the_client_config() -> None:
    from llorch_conformance.adapters.api import ConfigError

    with pytest.raises(ConfigError):
        DecodeLimits(max_ratio=0.5)
    with pytest.raises(ConfigError):
        HttpClientConfig(max_body_bytes=0)
    limits = HttpClientConfig(max_decoded_bytes=5 << 20, max_decompression_ratio=20).decode_limits()
    assert (limits.max_bytes, limits.max_ratio) == (5 << 20, 20)
    assert "max_decompression_ratio=20" in repr(HttpClientConfig(max_decompression_ratio=20))
