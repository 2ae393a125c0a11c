"""Minimal auth (AUTH-1001..1008): one static bearer token, loopback rules, identity fingerprints.

Facts kept from the original ``auth-min`` crate: the ``Bearer `` prefix is case-sensitive, the
header is limited to 8192 bytes, the token is trimmed and must not contain control characters;
comparison is timing-safe (``hmac.compare_digest``); identities are logged as ``localhost`` or
``token:<fp6>`` and never as the token. DESIGN.md decides a token must have at least 16
characters. Error codes: 40101 ``MISSING_TOKEN``, 40102 ``BAD_TOKEN``, 40301
``NON_LOOPBACK_WITHOUT_TOKEN``, and (this project's, issue 16 item 11) 40302 ``FOREIGN_ORIGIN``
and 40303 ``FOREIGN_HOST``.

**Cross-site requests** (:func:`check_same_site`): a request let in on loopback trust alone (no
token presented) may come from a browser on the same machine — a page of another site posting a
``text/plain`` form (CSRF), or a page whose name was re-pointed at 127.0.0.1 (DNS rebinding). A
browser cannot be stopped from *sending* those, so the facade refuses them: the ``Host`` header
must name a loopback host (``localhost``, ``127.0.0.0/8``, ``[::1]``), the address the connection
was accepted on, or an explicitly allowed name; an ``Origin`` header, when present, must be the
facade's own origin (same scheme-less authority as ``Host``; ``null`` is foreign); and
``Sec-Fetch-Site: cross-site`` is refused. A token cannot be attached by a browser on its own, so
requests that present the token skip these checks.

Deliberately *wider* than the original: every address of 127.0.0.0/8 counts as loopback (the
original only knew ``127.0.0.1``), because the whole range is loopback on every platform we run.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from llorch_conformance.adapters.api import UsageError
from llorch_conformance.adapters.http_util import fp6

__all__ = [
    "MIN_TOKEN_LEN",
    "AuthDecision",
    "AuthPolicy",
    "check_bind",
    "check_same_site",
    "is_loopback",
    "parse_bearer",
]

MIN_TOKEN_LEN = 16
_MAX_HEADER = 8192


def is_loopback(host: str | None) -> bool:
    """True for loopback addresses (``127.0.0.0/8``, ``::1``) and ``localhost``, with or without port."""
    if not host or len(host) > 256:
        return False
    h = host.strip()
    if h.lower() == "localhost" or h.lower().startswith("localhost:"):
        return True
    if h.startswith("["):  # [::1]:port
        h = h[1 : h.find("]")] if "]" in h else h[1:]
    elif h.count(":") == 1:  # ipv4:port
        h = h.split(":", 1)[0]
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _host_part(authority: str) -> str:
    """``host`` of ``host[:port]`` / ``[v6][:port]``, lower-cased, brackets kept off."""
    a = authority.strip().lower()
    if a.startswith("["):
        return a[1 : a.find("]")] if "]" in a else a[1:]
    return a.split(":", 1)[0] if a.count(":") == 1 else a


def check_same_site(
    host_header: str | None,
    origin: str | None,
    *,
    sec_fetch_site: str | None = None,
    server_host: str | None = None,
    allowed_hosts: frozenset[str] = frozenset(),
) -> AuthDecision | None:
    """Why a token-less request looks cross-site (a refusing decision), or None when it is not.

    ``server_host`` is the local address the connection was accepted on (``scope["server"]``);
    ``allowed_hosts`` are extra host names (lower-case, no port) an operator vouches for.
    """
    if host_header is not None:
        if len(host_header) > 256:
            return AuthDecision(False, "localhost", 40303, "FOREIGN_HOST")
        name = _host_part(host_header)
        trusted = (
            is_loopback(host_header)
            or (server_host is not None and name == server_host.lower())
            or name in allowed_hosts
        )
        if not trusted:
            return AuthDecision(False, "localhost", 40303, "FOREIGN_HOST")
    if (sec_fetch_site or "").strip().lower() == "cross-site":
        return AuthDecision(False, "localhost", 40302, "FOREIGN_ORIGIN")
    if origin is not None:
        o = origin.strip().lower()
        scheme, sep, rest = o.partition("://")
        own = (host_header or "").strip().lower()
        if not sep or scheme not in ("http", "https") or not own or rest.rstrip("/") != own:
            return AuthDecision(False, "localhost", 40302, "FOREIGN_ORIGIN")
    return None


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when malformed."""
    if header is None or len(header.encode()) > _MAX_HEADER:
        return None
    h = header.strip()
    if not h.startswith("Bearer "):
        return None
    token = h[len("Bearer ") :].strip()
    if not token or any(ord(c) < 32 or ord(c) == 127 for c in token):
        return None
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token (AUTH-1002), and weak tokens."""
    if token is not None and len(token) < MIN_TOKEN_LEN:
        raise UsageError(f"the API token must have at least {MIN_TOKEN_LEN} characters")
    if not is_loopback(host) and not token:
        raise UsageError(
            f"refusing to bind non-loopback address {host!r} without a token "
            "(40301 NON_LOOPBACK_WITHOUT_TOKEN): set LLORCH_API_TOKEN"
        )


@dataclass(frozen=True, slots=True)
class AuthDecision:
    ok: bool
    identity: str
    code: int | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """``token`` None: loopback clients only. ``optional``: loopback may skip the token (AUTH-1004)."""

    token: str | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_LEN:
            raise UsageError(f"the API token must have at least {MIN_TOKEN_LEN} characters")

    def decide(self, authorization: str | None, client_host: str | None) -> AuthDecision:
        loopback = is_loopback(client_host)
        if self.token is None:
            if loopback:
                return AuthDecision(True, "localhost")
            return AuthDecision(False, "anonymous", 40101, "MISSING_TOKEN")
        presented = parse_bearer(authorization)
        if presented is None:
            if loopback and self.optional:
                return AuthDecision(True, "localhost")
            return AuthDecision(False, "anonymous", 40101, "MISSING_TOKEN")
        ident = f"token:{fp6(presented)}"
        if hmac.compare_digest(presented.encode(), self.token.encode()):
            return AuthDecision(True, ident)
        return AuthDecision(False, ident, 40102, "BAD_TOKEN")
