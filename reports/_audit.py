"""Redaction audit: before a bundle is finished, every file is scanned for secrets.

What is looked for, and why:

* the run's configured secrets (API keys, bearer tokens) in the forms a leak takes in practice:
  raw, JSON-escaped, URL-encoded, base64 (``Basic`` credentials, data URLs) and hex. The bundle
  writer has already run :func:`adapters.http_util.redact` over every record, so a raw hit means
  the redaction pipeline was bypassed, and an encoded hit means something re-encoded a secret;
* common secret patterns that are high-confidence by shape (a bare ``Authorization``/``Bearer``
  value, ``sk-``/``hf_`` keys, GitHub and Slack tokens, AWS access key ids, PEM private keys,
  URL passwords). Generic ``token=`` pairs are deliberately *not* patterns here: ``{"token": ...}``
  is a legitimate wire frame field of several dialects and would drown real hits.

Masks (``****<fp6>``) never count. A hit is reported with file, line, rule and the secret's
mask — never the secret. What happens on a hit (the run fails, who is blamed) is decided by
:func:`reports.write_bundle`; this module only finds.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from llorch_conformance.adapters.http_util import mask

__all__ = [
    "AuditHit",
    "FileDigest",
    "audit_bundle",
    "audit_files",
    "audit_text",
    "list_files",
    "pattern_matches",
    "secret_forms",
]

_MASK: Final = r"\*{4}[0-9a-f]{6}"
_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "authorization-header",
        re.compile(
            rf"\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:(?:bearer|basic|token)[ \t]+)?+(?!{_MASK})(?P<t>[A-Za-z0-9._~+/=\-]{{8,}})",
            re.IGNORECASE,
        ),
    ),
    (
        "bearer-token",
        re.compile(rf"\bbearer[ \t]+(?!{_MASK})(?P<t>[A-Za-z0-9._~+/\-]{{16,}}=*)", re.IGNORECASE),
    ),
    (
        "x-api-key-header",
        re.compile(
            rf"\bx-api-key[\"']?[ \t]*[:=][ \t]*[\"']?(?!{_MASK})(?P<t>[^\s\"',;&]{{8,}})",
            re.IGNORECASE,
        ),
    ),
    ("openai-key", re.compile(r"(?<![\w-])(?P<t>sk-[A-Za-z0-9_\-]{16,})")),
    ("huggingface-token", re.compile(r"(?<![\w-])(?P<t>hf_[A-Za-z0-9]{20,})")),
    (
        "github-token",
        re.compile(r"(?<![\w-])(?P<t>(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}))"),
    ),
    ("slack-token", re.compile(r"(?<![\w-])(?P<t>xox[abprs]-[A-Za-z0-9-]{10,})")),
    ("aws-access-key-id", re.compile(r"(?<![A-Z0-9])(?P<t>(?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Z0-9])")),
    ("private-key", re.compile(r"(?P<t>-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----)")),
    (
        "url-password",
        re.compile(
            rf"\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:(?!{_MASK})(?P<t>[^/\s@]{{3,}})@", re.IGNORECASE
        ),
    ),
)
#: Literals (lower case) one of which every match of a pattern contains: a cheap prefilter.
_LITERALS: Final[dict[str, tuple[str, ...]]] = {
    "authorization-header": ("authorization",),
    "bearer-token": ("bearer",),
    "x-api-key-header": ("x-api-key",),
    "openai-key": ("sk-",),
    "huggingface-token": ("hf_",),
    "github-token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "slack-token": ("xox",),
    "aws-access-key-id": ("akia", "asia"),
    "private-key": ("-----begin ",),
    "url-password": ("://",),
}
#: Where a match can start relative to an occurrence of its literal (in the lower-cased text):
#: ``n`` means at offsets ``-n .. 0`` (``proxy-`` before ``authorization``), absent means at the
#: literal itself; ``None`` means the match starts at the beginning of the run of URL-scheme characters that
#: ends at the literal (``https`` before ``://``), whose length has no bound.
_STARTS: Final[dict[str, int | None]] = {
    "authorization-header": len("proxy-"),
    "url-password": None,
}
#: Characters matching an ASCII letter of a pattern under IGNORECASE whose ``lower()`` is not that
#: letter (dotless i, long s; dotted capital I changes the length). A text holding one is scanned
#: by whole-text ``finditer`` per pattern, so the anchor scan below never misses what it could.
_CASE_ODD: Final = ("\u0131", "\u017f")
_SCHEME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+.-")
_LITERAL_RULES: Final = tuple((lit, rule) for rule, lits in _LITERALS.items() for lit in lits)
#: Any literal: one C-level search finds the next place where one starts.
_ANCHOR: Final = re.compile("|".join(re.escape(lit) for lit, _ in _LITERAL_RULES))
_NEWLINE: Final = re.compile("\n")
#: Files above this size are scanned in their first part only (transcripts are capped well below).
_SCAN_LIMIT: Final = 32 * 1024 * 1024


@dataclass(frozen=True)
class AuditHit:
    """One secret found: where, by which rule, and its mask (never the secret itself)."""

    file: str
    line: int
    rule: str
    masked: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule} ({self.masked})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def secret_forms(secret: str) -> list[tuple[str, str]]:
    """The spellings of ``secret`` a leak may take: (form name, text)."""
    raw = secret.encode("utf-8", "surrogatepass")
    forms = [
        ("raw", secret),
        ("json-escaped", json.dumps(secret)[1:-1]),
        ("url-encoded", urllib.parse.quote(secret, safe="")),
        ("base64", base64.b64encode(raw).decode().rstrip("=")),
        ("base64url", base64.urlsafe_b64encode(raw).decode().rstrip("=")),
        ("hex", raw.hex()),
    ]
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for name, text in forms:
        if len(text) >= 4 and text not in seen:
            seen.add(text)
            out.append((name, text))
    return out


def audit_text(text: str, rel: str, secrets: Sequence[str] = ()) -> list[AuditHit]:
    """Hits in one text; line numbers are 1-based. Whole-text scans, so big bundles stay fast."""
    return _audit_text(text, rel, _searches(secrets))


#: What is searched for one configured secret: (rule, spelling, mask of the secret).
_Search = tuple[str, str, str]


def _searches(secrets: Sequence[str]) -> list[_Search]:
    """The spellings of every configured secret, computed once per audit (not per file: a
    bundle has thousands of files, and each secret six encodings and a hash)."""
    return [
        (f"configured-secret:{name}", form, mask(secret))
        for secret in secrets
        if secret and len(secret) >= 4
        for name, form in secret_forms(secret)
    ]


def _audit_text(text: str, rel: str, searches: Sequence[_Search]) -> list[AuditHit]:
    newlines: list[int] = []

    def line_of(offset: int) -> int:
        # Only for hits: clean files cost one pass per pattern, not per line. The newlines are
        # listed once per text, on the first hit: a secret leaked into every record of a big
        # transcript (thousands of hits) must not cost a count from the start for each one.
        if not newlines:
            newlines.extend(m.start() for m in _NEWLINE.finditer(text))
            newlines.append(len(text))  # a sentinel: the list is never empty again
        return bisect.bisect_left(newlines, offset) + 1

    hits: list[AuditHit] = []
    for rule, form, masked in searches:
        i = text.find(form)
        while i != -1:
            hits.append(AuditHit(rel, line_of(i), rule, masked))
            i = text.find(form, i + len(form))
    for rule, m in pattern_matches(text):
        hits.append(AuditHit(rel, line_of(m.start("t")), rule, mask(m.group("t"))))
    hits.sort(key=lambda h: (h.line, h.rule))
    return hits


def pattern_matches(text: str) -> list[tuple[str, re.Match[str]]]:
    """Every match of every pattern: exactly what ``pat.finditer(text)`` yields for each.

    Why not ``finditer`` over the whole text: a bundle is ~30 MB in thousands of files and each
    pattern's literal occurs in most of them (``://`` in every URL), so ten whole-text regex
    scans per file were the largest cost of writing a bundle. Instead the regex is tried only
    where a match can start — at the occurrences of its literal (one C-level search of the
    lower-cased text for any literal) — in ascending order, continuing after each match as ``finditer`` does; every
    match contains its literal at a known offset from its start, so none is missed. A text the
    lower-casing cannot align (characters whose lower case is longer, or that match an ASCII
    letter under IGNORECASE without lower-casing to it) gets the plain whole-text scan.
    """
    low = text.lower()
    out: list[tuple[str, re.Match[str]]] = []
    if len(low) != len(text) or any(c in text for c in _CASE_ODD):
        for rule, pat in _PATTERNS:
            out.extend((rule, m) for m in pat.finditer(text))
        return out
    starts = _candidate_starts(low)
    for rule, pat in _PATTERNS:
        pos = 0
        for s in sorted(starts.get(rule, ())):
            if s < pos:
                continue
            m = pat.match(text, s)
            if m is not None:
                out.append((rule, m))
                pos = max(m.end(), s + 1)
    return out


def _candidate_starts(low: str) -> dict[str, set[int]]:
    """Per rule, the positions where a match may start (see :func:`pattern_matches`).

    One regex search over the text finds every position where some literal starts (restarting
    one past each find, so overlapping occurrences are seen); every literal is then checked at
    that position, so a literal that is a prefix of another cannot hide it.
    """
    found: dict[str, set[int]] = {}
    i = -1
    while (m := _ANCHOR.search(low, i + 1)) is not None:
        i = m.start()
        for lit, rule in _LITERAL_RULES:
            if not low.startswith(lit, i):
                continue
            back = _STARTS.get(rule, 0)
            if back is None:
                j = i
                while j > 0 and low[j - 1] in _SCHEME_CHARS:
                    j -= 1
                found.setdefault(rule, set()).update(range(j, i))
            else:
                found.setdefault(rule, set()).update(range(max(0, i - back), i + 1))
    return found


def audit_bundle(
    root: Path, secrets: Sequence[str] = (), *, skip: Iterable[str] = ()
) -> tuple[list[AuditHit], list[str]]:
    """Scan every file under ``root``: (hits, files not scanned because they are binary)."""
    hits, binary, _ = audit_files(root, secrets, skip=skip)
    return hits, binary


def list_files(root: Path) -> list[str]:
    """``root``'s files as relative POSIX paths: what ``rglob("*")`` + ``is_file()`` lists.

    Why not ``rglob``: building and relativising a ``Path`` per file cost ~0.1 s per walk of a
    full run's bundle, walked three times. Same set: symbolic links to directories are not
    descended (``os.walk`` without ``followlinks``), a name counts when ``isfile`` (which follows
    a link) says so, dot files included. Unordered; callers sort as they need.
    """
    out: list[str] = []
    base = os.fspath(root)
    for dirpath, _dirs, names in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        out.extend(prefix + n for n in names if os.path.isfile(os.path.join(dirpath, n)))
    return out


#: What :func:`audit_files` learnt of a file read whole: SHA-256, size, and the ``stat`` identity
#: (``st_ino``, ``st_mtime_ns``) that says whether the file is still the one that was read.
FileDigest = tuple[str, int, int, int]


def audit_files(
    root: Path, secrets: Sequence[str] = (), *, skip: Iterable[str] = ()
) -> tuple[list[AuditHit], list[str], dict[str, FileDigest]]:
    """:func:`audit_bundle` plus the digest of every file it read whole.

    Why: the manifest hashes every file of the bundle right after the audit has read them all;
    handing the digests on saves reading ~30 MB twice. A digest is only good while the file's
    ``stat`` identity is unchanged, which the manifest checks before using it.
    """
    skipped = set(skip)
    searches = _searches(secrets)
    hits: list[AuditHit] = []
    binary: list[str] = []
    digests: dict[str, FileDigest] = {}
    for rel in sorted(list_files(root), key=lambda r: r.split("/")):
        if rel in skipped:
            continue
        path = root / rel
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read(_SCAN_LIMIT)
        if len(data) == st.st_size:
            digests[rel] = (hashlib.sha256(data).hexdigest(), st.st_size, st.st_ino, st.st_mtime_ns)
        if b"\x00" in data[:8192]:
            # Binary (a PNG screenshot): a secret cannot be searched as text; say so, don't guess.
            binary.append(rel)
            continue
        hits.extend(_audit_text(data.decode("utf-8", "replace"), rel, searches))
    return hits, binary, digests
