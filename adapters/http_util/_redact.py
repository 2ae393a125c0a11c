"""Secret redaction in one style: a secret becomes ``****`` + the first 6 hex digits of its SHA-256.

Wire facts and choices, and where they come from:

* The style (``****<fp6>``, ``"test"`` → ``****9f86d0``) and the 8192-byte cut-off of the hash input
  (``first 8192 bytes + b"[truncated]"``) are the original http-util / ``auth_min::token_fp6``
  behaviour (reference §2.4); DESIGN.md makes it the one style everywhere (HTU-1004,
  HTU-SEC-1402, HTU-ERR-4001).
* Patterns cover what actually travels in our transcripts: ``Authorization``/``Proxy-Authorization``
  headers (Bearer, Basic, Token or a raw credential), ``Bearer X`` anywhere, ``X-API-Key`` /
  ``api-key`` headers (OpenAI-on-Azure style), ``key=…``/``token: …``/JSON ``"api_key": "…"``
  pairs and query parameters, URL userinfo, OpenAI ``sk-…`` keys and Hugging Face ``hf_…`` tokens.
* Key names are matched *exactly* (``token``, ``api_key``, ``client_secret``, ``*_api_key`` …),
  never by substring: request bodies are full of ``max_tokens``/``tokens_out`` and llama.cpp's
  ``/props`` has ``eos_token``, which must stay readable in transcripts.
* Idempotent: every pattern refuses to start a secret on an existing mask, so
  ``redact(redact(s)) == redact(s)``; explicit secrets are never re-masked inside a mask either.
* Why the fingerprint and not a bare ``****``: two transcripts can be compared ("same key was
  used") without revealing the key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

import httpx

__all__ = ["fp6", "mask", "redact", "redact_headers", "redact_url"]

_FP_LIMIT = 8192
_MASK_RE = r"\*{4}[0-9a-f]{6}"
_NOT_MASK = rf"(?!{_MASK_RE})"
# Explicit secrets shorter than this are ignored: masking every "ab" would garble the text and a
# three-character "secret" protects nothing.
_MIN_EXPLICIT_SECRET = 4


def fp6(secret: str) -> str:
    """First 6 lowercase hex digits of SHA-256 of ``secret`` (long secrets: first 8192 bytes + tag)."""
    raw = secret.encode("utf-8", "surrogatepass")
    if len(raw) > _FP_LIMIT:
        raw = raw[:_FP_LIMIT] + b"[truncated]"
    return hashlib.sha256(raw).hexdigest()[:6]


def mask(secret: str) -> str:
    """The replacement text of one secret: ``"****" + fp6(secret)``."""
    return "****" + fp6(secret)


# --- patterns ------------------------------------------------------------------------------------
# Characters of a credential in a header or after "Bearer": RFC 6750 b64token plus common extras.
_TOKEN_CHARS = r"[A-Za-z0-9._~+/=\-:]+"

# "Authorization: Bearer X" / "Proxy-Authorization: Basic X" / "Authorization: X". The scheme
# group is possessive (?+) so an already-masked "Bearer ****abcdef" is not re-read as the
# credential "Bearer".
_AUTH_HEADER = re.compile(
    rf"(?P<pre>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest)\s+)?+)"
    rf"{_NOT_MASK}(?P<t>[^\s\"',;]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(rf"(?P<pre>\bbearer\s+){_NOT_MASK}(?P<t>{_TOKEN_CHARS})", re.IGNORECASE)
_API_KEY_HEADER = re.compile(
    rf"(?P<pre>\b(?:x-api-key|api-key)[\"']?\s*[:=]\s*[\"']?){_NOT_MASK}(?P<t>[^\s\"',;&]+)",
    re.IGNORECASE,
)
# Sensitive key names, matched whole (see module docstring for why not by substring).
_KEY_NAMES = (
    r"(?:[a-z0-9]+[_-])*(?:api[_-]?key|secret|password|passwd|client[_-]?secret|secret[_-]?key)"
    r"|key|token|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|bearer[_-]?token"
    r"|hf[_-]?token|session[_-]?token|security[_-]?token|sig|signature|credentials?"
)
_PAIR = re.compile(
    rf"(?P<pre>(?<![\w-])[\"']?(?:{_KEY_NAMES})[\"']?\s*[:=]\s*(?P<q>[\"']?))"
    rf"{_NOT_MASK}(?P<t>[^\s\"'&,;#{{}}\[\])]+)",
    re.IGNORECASE,
)
# Every name _PAIR can match contains one of these (lowercase) words.
_PAIR_ANCHORS = ("key", "token", "secret", "passw", "sig", "credential")
_URL_USERINFO = re.compile(
    rf"(?P<pre>\b[a-z][a-z0-9+.\-]{{0,31}}://)(?P<user>[^/\s:@?#]*)(?::{_NOT_MASK}(?P<pw>[^/\s@?#]*))?@",
    re.IGNORECASE,
)
_VENDOR_KEYS = re.compile(r"(?<![\w-])(?P<t>sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,})")


def _mask_group(m: re.Match[str]) -> str:
    return m.group("pre") + mask(m.group("t"))


def _mask_userinfo(m: re.Match[str]) -> str:
    user, pw = m.group("user"), m.group("pw")
    if pw is not None:
        return f"{m.group('pre')}{user}:{mask(pw) if pw else ''}@"
    if not user or re.fullmatch(_MASK_RE, user):
        return m.group(0)
    # "https://TOKEN@host": a lone user part is very often a token.
    return f"{m.group('pre')}{mask(user)}@"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every secret in ``text`` with ``****<fp6>``; idempotent.

    Explicit ``secrets`` (at least 4 characters) are replaced wherever they occur, longest first;
    then the built-in patterns run. Text without anything secret-looking is returned unchanged.
    """
    if not text:
        return text
    explicit = sorted(
        {s for s in secrets if s and len(s) >= _MIN_EXPLICIT_SECRET}, key=len, reverse=True
    )
    if explicit:
        alternatives = "|".join(re.escape(s) for s in explicit)
        text = re.sub(
            f"(?P<m>{_MASK_RE})|(?P<s>{alternatives})",
            lambda m: m.group("m") or mask(m.group("s")),
            text,
        )
    # Cheap substring pre-checks keep redaction of big transcripts (mostly token JSON) fast:
    # a pattern only runs when its anchor word occurs at all.
    low = text.lower()
    if "://" in low and "@" in low:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    if "authorization" in low:
        text = _AUTH_HEADER.sub(_mask_group, text)
    if "bearer" in low:
        text = _BEARER.sub(_mask_group, text)
    if "api-key" in low:
        text = _API_KEY_HEADER.sub(_mask_group, text)
    if any(word in low for word in _PAIR_ANCHORS):
        text = _PAIR.sub(_mask_group, text)
    if "sk-" in low or "hf_" in low:
        text = _VENDOR_KEYS.sub(lambda m: mask(m.group("t")), text)
    return text


_SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
_SENSITIVE_PARTS = ("token", "secret", "key")
_SCHEMES = ("bearer ", "basic ", "token ", "digest ")


def _is_sensitive_header(name: str) -> bool:
    low = name.lower()
    return low in _SENSITIVE_HEADERS or any(p in low for p in _SENSITIVE_PARTS)


def _redact_header_value(name: str, value: str) -> str:
    if not _is_sensitive_header(name):
        return redact(value)
    if re.fullmatch(_MASK_RE, value):
        return value
    low = value.lower()
    for scheme in _SCHEMES:
        if low.startswith(scheme):
            cred = value[len(scheme) :].strip()
            if not cred or re.fullmatch(_MASK_RE, cred):
                return value
            # Same fingerprint as redact("Authorization: Bearer X") gives for X.
            return value[: len(scheme)] + mask(cred)
    return mask(value)


def redact_headers(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    """A plain dict copy of ``headers`` with credential-bearing values masked.

    Masked by name: authorization, proxy-authorization, x-api-key, api-key, cookie, set-cookie and
    any name containing ``token``, ``secret`` or ``key``. Every other value still goes through
    :func:`redact` (a ``Location`` can carry a URL with a password). Repeated headers in an
    :class:`httpx.Headers` are joined with ``", "`` as HTTP allows.
    """
    items: Iterable[tuple[str, str]]
    if isinstance(headers, httpx.Headers):
        merged: dict[str, list[str]] = {}
        for k, v in headers.multi_items():
            merged.setdefault(k, []).append(v)
        items = ((k, ", ".join(vs)) for k, vs in merged.items())
    else:
        items = headers.items()
    return {k: _redact_header_value(k, v) for k, v in items}


_SENSITIVE_QUERY = re.compile(
    rf"(?:{_KEY_NAMES})"
    r"|(?:.*[_-])?(?:token|secret|password|passwd|signature|credentials?|api[_-]?key|key|sig)",
    re.IGNORECASE,
)


def redact_url(url: str | httpx.URL) -> str:
    """``url`` as text with userinfo and sensitive query parameter values masked.

    Query names are judged more broadly than in free text: any name whose last ``_``/``-`` part
    is token, secret, password, signature, credential, key or sig (``X-Amz-Security-Token``,
    ``eos_token``), but not ``max_tokens``. The rest of the URL is kept byte for byte.
    """
    text = str(url)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    head, sep, rest = text.partition("?")
    if not sep:
        return text
    query, hsep, fragment = rest.partition("#")
    parts = []
    for param in query.split("&"):
        name, eq, value = param.partition("=")
        if eq and value and _SENSITIVE_QUERY.fullmatch(name) and not re.fullmatch(_MASK_RE, value):
            param = f"{name}={mask(value)}"
        parts.append(param)
    return f"{head}?{'&'.join(parts)}{hsep}{fragment}"
