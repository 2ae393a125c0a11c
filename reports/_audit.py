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
import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from llorch_conformance.adapters.http_util import mask

__all__ = ["AuditHit", "audit_bundle", "audit_text", "secret_forms"]

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
    "private-key": ("private key-----",),
    "url-password": ("://",),
}
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

    def line_of(offset: int) -> int:
        # Computed only for hits (rare), so clean files cost one pass per pattern, not per line.
        return text.count("\n", 0, offset) + 1

    hits: list[AuditHit] = []
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        for name, form in secret_forms(secret):
            i = text.find(form)
            while i != -1:
                hits.append(AuditHit(rel, line_of(i), f"configured-secret:{name}", mask(secret)))
                i = text.find(form, i + len(form))
    low = text.lower()
    for rule, pat in _PATTERNS:
        if not any(lit in low for lit in _LITERALS[rule]):
            continue  # the pattern cannot match without its literal: skip the regex scan
        for m in pat.finditer(text):
            hits.append(AuditHit(rel, line_of(m.start("t")), rule, mask(m.group("t"))))
    hits.sort(key=lambda h: (h.line, h.rule))
    return hits


def audit_bundle(
    root: Path, secrets: Sequence[str] = (), *, skip: Iterable[str] = ()
) -> tuple[list[AuditHit], list[str]]:
    """Scan every file under ``root``: (hits, files not scanned because they are binary)."""
    skipped = set(skip)
    hits: list[AuditHit] = []
    binary: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in skipped:
            continue
        with path.open("rb") as fh:
            data = fh.read(_SCAN_LIMIT)
        if b"\x00" in data[:8192]:
            # Binary (a PNG screenshot): a secret cannot be searched as text; say so, don't guess.
            binary.append(rel)
            continue
        hits.extend(audit_text(data.decode("utf-8", "replace"), rel, secrets))
    return hits, binary
