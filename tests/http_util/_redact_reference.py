"""The redaction oracle: every pattern of ``adapters.http_util._redact`` run by ``pattern.sub``
over the whole text, behind the same anchor-word pre-checks — ``redact`` as it was before it
learned to try each pattern only where its anchor word allows (issue 18).

The patterns and the mask are imported, not copied: the oracle checks *where* the patterns are
tried, which is the part ``redact`` now computes; what they match stays defined in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from llorch_conformance.adapters.http_util import _redact as r


def reference_redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``redact`` by whole-text substitution (slow, obviously the same as ``re.sub``)."""
    if not text:
        return text
    explicit = sorted(
        {s for s in secrets if s and len(s) >= r._MIN_EXPLICIT_SECRET}, key=len, reverse=True
    )
    if explicit:
        alternatives = "|".join(re.escape(s) for s in explicit)
        text = re.sub(
            f"(?P<m>{r._MASK_RE})|(?P<s>{alternatives})",
            lambda m: m.group("m") or r.mask(m.group("s")),
            text,
        )
    low = text.lower()
    if "://" in low and "@" in low:
        text = r._URL_USERINFO.sub(r._mask_userinfo, text)
    if "authorization" in low:
        text = r._AUTH_HEADER.sub(r._mask_group, text)
    if "bearer" in low:
        text = r._BEARER.sub(r._mask_group, text)
    if "api-key" in low:
        text = r._API_KEY_HEADER.sub(r._mask_group, text)
    if any(word in low for word in r._PAIR_ANCHORS):
        text = r._PAIR.sub(r._mask_group, text)
    if "sk-" in low or "hf_" in low:
        text = r._VENDOR_KEYS.sub(lambda m: r.mask(m.group("t")), text)
    return text
