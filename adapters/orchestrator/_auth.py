"""Minimal auth (AUTH-1001..1008): one static bearer token, loopback rules, identity fingerprints.

Facts kept from the original ``auth-min`` crate: the ``Bearer `` prefix is case-sensitive, the
header is limited to 8192 bytes, the token is trimmed and must not contain control characters;
comparison is timing-safe (``hmac.compare_digest``); identities are logged as ``localhost`` or
``token:<fp6>`` and never as the token. DESIGN.md decides a token must have at least 16
characters. Error codes: 40101 ``MISSING_TOKEN``, 40102 ``BAD_TOKEN``, 40301
``NON_LOOPBACK_WITHOUT_TOKEN``.

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
