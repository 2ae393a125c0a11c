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
from collections.abc import Callable, Iterable, Iterator, Mapping

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
    # a pattern only runs when its anchor word occurs at all. Where it runs, it is tried only
    # at the places its anchor word allows (see _Folded): the same result as ``pattern.sub``
    # over the whole text, at C speed instead of a regex attempt at every character.
    low = text.lower()
    folded = _Folded(text, low)
    if "://" in low and "@" in low:
        text = folded.sub(_URL_USERINFO, _mask_userinfo, _url_starts)
    if "authorization" in low:
        text = folded.sub(_AUTH_HEADER, _mask_group, _auth_starts)
    if "bearer" in low:
        text = folded.sub(_BEARER, _mask_group, _bearer_starts)
    if "api-key" in low:
        text = folded.sub(_API_KEY_HEADER, _mask_group, _api_key_starts)
    if any(word in low for word in _PAIR_ANCHORS):
        text = folded.sub(_PAIR, _mask_group, _pair_starts)
    if "sk-" in low or "hf_" in low:
        text = folded.sub(_VENDOR_KEYS, lambda m: mask(m.group("t")), _vendor_starts)
    return text


# --- where a pattern can match ---------------------------------------------------------------
# ``pattern.sub`` tries a match at every position of the text; with IGNORECASE and no literal
# prefix the regex engine cannot skip ahead, so a 1 MB transcript costs ~70 ms per pattern even
# when nothing matches (the key-name pattern ran on nearly every evidence text, because "token"
# is in every usage record). Each pattern below has a literal anchor that every match contains
# at a known offset, so the positions where a match can start are computable from the
# anchor's occurrences, found by ``str.find`` on a case-folded copy. Trying the pattern only
# there, left to right, skipping positions inside a previous match, is exactly what ``sub``
# does: a position that cannot start a match would only have failed.
#
# The case fold ("low2": ``str.lower`` plus U+017F LONG S -> "s" and U+0131 DOTLESS I -> "i")
# is checked against the regex engine over every code point by tests/http_util/test_redact.py:
# (1) a character matches a pattern letter case-insensitively only if it folds to that letter;
# (2) it matches ``[a-z0-9_-]`` case-insensitively iff it folds into ``[a-z0-9_-]``, and such a
# character is always ``[\w-]``; (3) only U+0130 lowers to more than one character — a text
# containing it keeps the whole-text ``sub`` (positions would shift).

# A run of characters a key name of _PAIR can consist of, in folded text.
_NAME_RUN = re.compile(r"[a-z0-9_-]*")


class _Folded:
    """The current text and its case fold, refreshed after a substitution changed the text."""

    def __init__(self, text: str, low: str) -> None:
        self.text = text
        self._low: str | None = low  # text.lower(), while the text is unchanged
        self._low2: str | None = None
        self._rev: str | None = None

    def low2(self) -> str:
        if self._low2 is None:
            low = self._low if self._low is not None else self.text.lower()
            self._low2 = low.replace("\u017f", "s").replace("\u0131", "i")
        return self._low2

    def reversed_low2(self) -> str:
        if self._rev is None:
            self._rev = self.low2()[::-1]
        return self._rev

    def sub(
        self,
        pattern: re.Pattern[str],
        repl: Callable[[re.Match[str]], str],
        starts: Callable[[_Folded], Iterable[int]],
    ) -> str:
        """``pattern.sub(repl, text)``, trying matches only at ``starts(self)``."""
        text = self.text
        if len(self.low2()) != len(text):  # U+0130: folded positions would not be text positions
            out = pattern.sub(repl, text)
        else:
            pieces: list[str] = []
            done = 0
            for pos in sorted(set(starts(self))):
                if pos < done or pos < 0:
                    continue
                m = pattern.match(text, pos)
                if m is not None:
                    pieces += (text[done:pos], repl(m))
                    done = m.end()
            if not pieces:
                return text
            pieces.append(text[done:])
            out = "".join(pieces)
        if out != text:
            self.text, self._low, self._low2, self._rev = out, None, None, None
        return out


def _find_all(hay: str, word: str) -> Iterator[int]:
    """Every index of ``word`` in ``hay``, overlapping ones included."""
    i = hay.find(word)
    while i >= 0:
        yield i
        i = hay.find(word, i + 1)


def _url_starts(f: _Folded) -> Iterator[int]:
    # "\b<scheme of 1..32 characters>://": a match starts 1..32 characters before "://".
    for i in _find_all(f.low2(), "://"):
        yield from range(i - 32, i)


def _auth_starts(f: _Folded) -> Iterator[int]:
    for i in _find_all(f.low2(), "authorization"):  # "authorization" or "proxy-authorization"
        yield from (i, i - 6)


def _bearer_starts(f: _Folded) -> Iterator[int]:
    return _find_all(f.low2(), "bearer")


def _api_key_starts(f: _Folded) -> Iterator[int]:
    for i in _find_all(f.low2(), "api-key"):  # "api-key" or "x-api-key"
        yield from (i, i - 2)


def _pair_starts(f: _Folded) -> Iterator[int]:
    # Every key name _PAIR knows contains an anchor word and consists of [a-z0-9_-] characters;
    # its look-behind (?<![\w-]) makes the name start where such a run of characters starts, so
    # a match starts at the run's first character or at a quote just before it. One run is
    # measured once however many anchors it holds (linear in the text).
    low2 = f.low2()
    n = len(low2)
    hits = sorted(i for word in _PAIR_ANCHORS for i in _find_all(low2, word))
    run_end = -1
    for i in hits:
        if i < run_end:
            continue
        start = i - _run_length(f.reversed_low2(), n - i)
        run_end = i + _run_length(low2, i)
        yield from (start, start - 1)


def _run_length(folded: str, pos: int) -> int:
    """Length of the run of key-name characters at ``pos`` of ``folded``."""
    m = _NAME_RUN.match(folded, pos)
    return m.end() - pos if m else 0


def _vendor_starts(f: _Folded) -> Iterator[int]:
    # _VENDOR_KEYS is case-sensitive: its matches start exactly at "sk-" or "hf_".
    yield from _find_all(f.text, "sk-")
    yield from _find_all(f.text, "hf_")


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
