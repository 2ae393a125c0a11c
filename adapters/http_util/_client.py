"""The shared HTTP client: explicit config in, a pooled ``httpx.AsyncClient`` out.

Wire facts and choices, and where they come from:

* Defaults are the original http-util client defaults (reference §2.4, HTU-1001): connect 5 s,
  request 30 s, pool idle 90 s, 8 idle connections per host, TLS verification on, HTTP/2 preferred
  (negotiated by ALPN over TLS, HTTP/1.1 otherwise; httpx never does h2c by itself).
* Nothing comes from the environment (HTU-EXP-1101, HTU-SEC-1401): ``trust_env=False`` so
  ``HTTP(S)_PROXY``, ``SSL_CERT_FILE`` and ``.netrc`` are ignored; a proxy is used only when
  ``HttpClientConfig.proxy`` names it. A CA file path in ``verify`` becomes an
  :class:`ssl.SSLContext` here (httpx 0.28 deprecates ``verify=<str>``).
* httpx has no "whole request" timeout, only per-operation ones; :func:`fetch` enforces
  ``total_timeout_s`` for non-streaming calls and :func:`open_stream` bounds the wait for response
  headers. Streams bound silence with :func:`aiter_sse`/:func:`aiter_chunks`' own timer.
* The config's ``repr`` redacts default headers and proxy credentials: configs end up in logs.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import anyio
import httpx

from llorch_conformance.adapters.api import ConfigError, UpstreamCondition, error_for_condition

from ._decode import ACCEPT_ENCODING, DecodeLimits, aiter_decoded
from ._errors import error_from_exception, error_from_response
from ._redact import redact_headers, redact_url

__all__ = ["HttpClientConfig", "bearer_header", "build_client", "fetch", "open_stream"]


@dataclass(frozen=True)
class HttpClientConfig:
    """Every knob of the shared client, explicit (never read from the environment)."""

    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 30.0  # request sent -> response headers / first body byte
    inter_chunk_timeout_s: float = 30.0  # max silence between body chunks of a stream
    total_timeout_s: float = 30.0  # whole non-streaming request
    max_connections: int = 100
    max_keepalive_connections: int = 8
    keepalive_expiry_s: float = 90.0
    http2: bool = True  # negotiated by ALPN over TLS; HTTP/1.1 fallback
    verify: bool | str | ssl.SSLContext = True  # False only when a test asks for it explicitly
    proxy: str | None = None  # explicit proxies only; trust_env is always False
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    max_body_bytes: int = 8 << 20  # decoded size of a non-streaming body (health, capabilities)
    max_decoded_bytes: int = 64 << 20  # decoded size of one compressed stream body
    max_decompression_ratio: float = 100.0  # decoded/compressed, past the first MiB

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout_s",
            "first_byte_timeout_s",
            "inter_chunk_timeout_s",
            "total_timeout_s",
            "keepalive_expiry_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(
                    f"HttpClientConfig.{name} must be a positive number, got {value!r}"
                )
        if (
            self.max_body_bytes < 1
            or self.max_decoded_bytes < 1
            or isinstance(self.max_decompression_ratio, bool)
            or not self.max_decompression_ratio >= 1
        ):
            raise ConfigError(
                "HttpClientConfig: max_body_bytes and max_decoded_bytes must be positive and "
                "max_decompression_ratio at least 1"
            )
        if self.max_connections < 1 or self.max_keepalive_connections < 0:
            raise ConfigError(
                "HttpClientConfig: max_connections must be >= 1 and max_keepalive_connections >= 0"
            )
        if isinstance(self.verify, str) and not os.path.exists(self.verify):
            raise ConfigError(f"HttpClientConfig.verify: CA bundle {self.verify!r} does not exist")
        # Freeze a private copy so a caller mutating its dict cannot change a live config.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def __repr__(self) -> str:
        proxy = redact_url(self.proxy) if self.proxy else None
        verify = self.verify if not isinstance(self.verify, ssl.SSLContext) else "<SSLContext>"
        return (
            f"HttpClientConfig(connect_timeout_s={self.connect_timeout_s}, "
            f"first_byte_timeout_s={self.first_byte_timeout_s}, "
            f"inter_chunk_timeout_s={self.inter_chunk_timeout_s}, "
            f"total_timeout_s={self.total_timeout_s}, max_connections={self.max_connections}, "
            f"max_keepalive_connections={self.max_keepalive_connections}, "
            f"keepalive_expiry_s={self.keepalive_expiry_s}, http2={self.http2}, "
            f"verify={verify!r}, proxy={proxy!r}, headers={redact_headers(self.headers)!r}, "
            f"max_body_bytes={self.max_body_bytes}, max_decoded_bytes={self.max_decoded_bytes}, "
            f"max_decompression_ratio={self.max_decompression_ratio})"
        )

    __str__ = __repr__

    def decode_limits(self) -> DecodeLimits:
        """The bounds on decoding a compressed stream body (``adapters.http_util._decode``)."""
        return DecodeLimits(
            max_bytes=self.max_decoded_bytes, max_ratio=self.max_decompression_ratio
        )

    def timeout(self) -> httpx.Timeout:
        """The per-operation httpx timeouts this config implies."""
        return httpx.Timeout(
            self.total_timeout_s,
            connect=self.connect_timeout_s,
            read=self.first_byte_timeout_s,
            pool=self.first_byte_timeout_s,
        )


def bearer_header(token: str | None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}``, or ``{}`` when no token is configured.

    The explicit form of the original ``with_bearer_if_configured`` (HTU-1005): the caller passes
    the token it was configured with; nothing is read from ``AUTH_TOKEN`` (HTU-EXP-1101). Use it
    for ``HttpClientConfig(headers=...)``; the config's repr redacts it.
    """
    if token is None or not token.strip():
        return {}
    if any(c in token for c in "\r\n"):
        raise ConfigError("bearer token must not contain line breaks")
    return {"Authorization": f"Bearer {token.strip()}"}


@functools.cache
def verifying_context(http2: bool = False) -> ssl.SSLContext:
    """The process's verifying TLS context of ``verify=True`` (httpx's default: certifi's
    bundle), built once; pass it as ``verify=`` to any httpx client.

    Why: httpx loads the CA bundle for every client it builds (~40 ms of CPU); a client per
    adapter, per heartbeat sender, per probe made that a quarter of a conformance run's CPU.
    One context per ALPN setting (``http2``): httpcore sets the ALPN list on the context at each
    connection, so clients with and without HTTP/2 must not share one. Verification is the same
    (same bundle, hostname checked, certificate required).
    """
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _ssl_context(verify: bool | str | ssl.SSLContext, http2: bool) -> bool | ssl.SSLContext:
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    if verify is True:
        return verifying_context(http2)
    return verify


def build_client(config: HttpClientConfig = HttpClientConfig()) -> httpx.AsyncClient:
    """A pooled ``httpx.AsyncClient`` configured from ``config`` only; the caller closes it.

    Share one client per adapter (HTU-PERF-1301): connection reuse, and HTTP/2 multiplexing when
    the server offers it, only happen inside one client.
    """
    return httpx.AsyncClient(
        http2=config.http2,
        verify=_ssl_context(config.verify, config.http2),
        proxy=config.proxy,
        trust_env=False,
        # Exactly the codings our bounded decoder handles (httpx would add any it can decode).
        headers={"Accept-Encoding": ACCEPT_ENCODING, **config.headers},
        limits=httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_keepalive_connections,
            keepalive_expiry=config.keepalive_expiry_s,
        ),
        timeout=config.timeout(),
        follow_redirects=False,
    )


def _stage_of(exc: BaseException) -> Literal["connect", "first_byte"]:
    return "connect" if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) else "first_byte"


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    total_timeout_s: float,
    secrets: Iterable[str] = (),
    max_body_bytes: int = 16 << 20,
    raise_for_status: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """One non-streaming request with the whole exchange bounded by ``total_timeout_s``.

    Returns the fully read response for a status below 400 (any status when
    ``raise_for_status`` is false). Raises the mapped :class:`WorkerError` for an error status
    (:func:`error_from_response`), a transport failure (:func:`error_from_exception`), running
    out of time (DECODE_TIMEOUT) or a body that decodes to more than ``max_body_bytes`` or
    expands like a compression bomb (PROTOCOL, with ``upstream_status``: never unbounded memory
    or a blocked event loop on a misbehaving engine). ``kwargs`` go to ``client.stream``. The
    returned response carries the decoded body (``Content-Encoding`` dropped,
    ``Content-Length`` set to it), status, headers, request and ``http_version``.
    """
    secrets = tuple(secrets)
    try:
        with anyio.fail_after(total_timeout_s):
            async with client.stream(method, url, **kwargs) as response:
                body = await _read_limited(response, max_body_bytes + 1)
    except TimeoutError:
        raise error_for_condition(
            UpstreamCondition.TIMEOUT, f"no complete response within {total_timeout_s:g} s"
        ) from None
    except (httpx.TransportError, OSError) as exc:
        raise error_from_exception(exc, stage=_stage_of(exc), secrets=secrets) from exc
    if response.status_code >= 400 and raise_for_status:
        raise error_from_response(response.status_code, response.headers, body, secrets=secrets)
    if len(body) > max_body_bytes:
        raise error_for_condition(
            UpstreamCondition.PROTOCOL,
            f"upstream {response.status_code}: body larger than {max_body_bytes} bytes",
            upstream_status=response.status_code,
        )
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_FRAMING]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
    )


_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` decoded bytes of the body, decoded in bounded steps (never a bomb)."""
    parts: list[bytes] = []
    size = 0
    # The decoder's own cap sits one piece above ours: this reader truncates, never fails, on
    # size (an error body's first 64 KiB are enough for a message); the ratio check still holds.
    pieces = aiter_decoded(response, DecodeLimits(max_bytes=max(limit, 1) + (64 << 10)))
    try:
        async for chunk in pieces:
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    finally:
        await pieces.aclose()
    return b"".join(parts)[:limit]


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    first_byte_timeout_s: float | None,
    secrets: Iterable[str] = (),
    max_error_body_bytes: int = 64 * 1024,
    **kwargs: Any,
) -> AsyncIterator[httpx.Response]:
    """Send a streaming request; yield the response once its headers arrived with status < 400.

    Waiting for the headers is bounded by ``first_byte_timeout_s`` (DECODE_TIMEOUT when exceeded,
    ``None``: the client's timeouts only). An error status is read (at most
    ``max_error_body_bytes``, within the same budget) and raised as the mapped
    :class:`WorkerError`, so the caller only ever streams a successful body. Leaving the block
    closes the response, which closes (or returns) the upstream connection — that is how a
    cancelled task stops the engine.
    """
    secrets = tuple(secrets)
    async with AsyncExitStack() as stack:
        try:
            with anyio.fail_after(first_byte_timeout_s):
                response = await stack.enter_async_context(client.stream(method, url, **kwargs))
                if response.status_code >= 400:
                    body = await _read_limited(response, max_error_body_bytes)
                    raise error_from_response(
                        response.status_code, response.headers, body, secrets=secrets
                    )
        except TimeoutError:
            raise error_for_condition(
                UpstreamCondition.TIMEOUT,
                f"before first byte: no response within {first_byte_timeout_s:g} s",
            ) from None
        except (httpx.TransportError, OSError) as exc:
            raise error_from_exception(exc, stage=_stage_of(exc), secrets=secrets) from exc
        yield response
