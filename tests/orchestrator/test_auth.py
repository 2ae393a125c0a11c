"""Minimal auth helpers (AUTH-1001..1008)."""

from __future__ import annotations

import pytest

from llorch_conformance.adapters.api import UsageError
from llorch_conformance.adapters.orchestrator import (
    AuthPolicy,
    check_bind,
    check_same_site,
    is_loopback,
    parse_bearer,
)

TOKEN = "0123456789abcdef-token"


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8080", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]:9000", True),
        ("localhost", True),
        ("LOCALHOST:80", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
        ("1" * 300, False),
    ],
)
def test_is_loopback(addr: str, expected: bool) -> None:
    assert is_loopback(addr) is expected


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("Bearer token with spaces", "token with spaces"),
        ("bearer abc", None),
        ("Bearer ", None),
        ("Bearer a\x01b", None),
        ("Basic abc", None),
        (None, None),
        ("Bearer " + "x" * 9000, None),
    ],
)
def test_parse_bearer(header: str | None, token: str | None) -> None:
    assert parse_bearer(header) == token


def test_bind_policy() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(UsageError, match="NON_LOOPBACK_WITHOUT_TOKEN"):
        check_bind("0.0.0.0", None)
    with pytest.raises(UsageError, match="at least 16"):
        check_bind("127.0.0.1", "short")
    with pytest.raises(UsageError, match="at least 16"):
        AuthPolicy(token="short")


def test_decisions_and_identity_fingerprint() -> None:
    p = AuthPolicy(token=TOKEN)
    ok = p.decide("Bearer " + TOKEN, "10.0.0.5")
    assert ok.ok and ok.identity.startswith("token:") and TOKEN not in ok.identity
    assert len(ok.identity) == len("token:") + 6
    bad = p.decide("Bearer nope-nope-nope-nope", "127.0.0.1")
    assert (bad.ok, bad.code, bad.message) == (False, 40102, "BAD_TOKEN")
    missing = p.decide(None, "127.0.0.1")
    assert (missing.ok, missing.code) == (False, 40101)
    assert AuthPolicy(token=TOKEN, optional=True).decide(None, "127.0.0.1").identity == "localhost"
    assert not AuthPolicy(token=TOKEN, optional=True).decide(None, "10.1.1.1").ok
    assert AuthPolicy().decide(None, "127.0.0.1").ok
    assert not AuthPolicy().decide(None, "10.1.1.1").ok


@pytest.mark.parametrize(
    ("host", "origin", "fetch_site", "code"),
    [
        ("127.0.0.1:8080", None, None, None),
        ("localhost:8080", "http://localhost:8080", None, None),
        ("[::1]:8080", "http://[::1]:8080", "same-origin", None),
        ("10.0.0.5:8080", None, None, None),  # the address the connection was accepted on
        ("orch.lan", None, None, None),  # an allowed name
        (None, None, None, None),  # HTTP/1.0 without Host: no browser sends that
        ("evil.example:8080", None, None, 40303),
        ("localhost.evil.example", None, None, 40303),
        ("h" * 300, None, None, 40303),
        ("127.0.0.1:8080", "http://evil.example", None, 40302),
        ("127.0.0.1:8080", "null", None, 40302),
        ("127.0.0.1:8080", "http://127.0.0.1:9999", None, 40302),  # another local origin
        ("127.0.0.1:8080", "file://", None, 40302),
        ("127.0.0.1:8080", None, "cross-site", 40302),
        (None, "http://127.0.0.1:8080", None, 40302),
    ],
)
def test_check_same_site(
    host: str | None, origin: str | None, fetch_site: str | None, code: int | None
) -> None:
    got = check_same_site(
        host,
        origin,
        sec_fetch_site=fetch_site,
        server_host="10.0.0.5",
        allowed_hosts=frozenset({"orch.lan"}),
    )
    assert (got.code if got else None) == code
    if got is not None:
        assert not got.ok and got.message in ("FOREIGN_ORIGIN", "FOREIGN_HOST")
