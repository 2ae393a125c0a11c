"""Token ids and logprobs shared by the dialects that expose them (vLLM, llama.cpp).

The mock model's ids are :func:`mock_engines._plan.token_id` (vocabulary slots, else a hash
bucket). ``/tokenize`` remembers the texts of the hash-bucket ids it hands out so
``/detokenize`` and token-id prompts round-trip them. Logprobs are seeded by token and position:
stable across runs, plausible (negative, the chosen token first), not a model's.
"""

from __future__ import annotations

from .._plan import VOCAB, token_id

__all__ = ["alternatives", "logprob", "remember", "token_text"]

_ID_BASE = 1000
#: Texts of out-of-vocabulary ids handed out by ``/tokenize``; bounded, oldest dropped first.
_SEEN: dict[int, str] = {}
_SEEN_MAX = 65536


def token_text(tid: int) -> str:
    """The text of a token id: the vocabulary's, one ``/tokenize`` handed out, else U+FFFD."""
    i = tid - _ID_BASE
    if 0 <= i < len(VOCAB):
        return VOCAB[i]
    return _SEEN.get(tid, "\ufffd")


def remember(text: str) -> int:
    """The id of ``text`` (as :func:`token_id`), remembered for :func:`token_text`."""
    tid = token_id(text)
    if tid - _ID_BASE >= len(VOCAB) and tid not in _SEEN:
        if len(_SEEN) >= _SEEN_MAX:
            del _SEEN[next(iter(_SEEN))]
        _SEEN[tid] = text
    return tid


def logprob(tid: int, position: int) -> float:
    h = (tid * 2654435761 + (position + 1) * 40503) & 0xFFFFFFFF
    return -float((h >> 7) % 2048 + 1) / 512.0


def alternatives(text: str, tid: int, pos: int, k: int) -> list[tuple[str, int, float]]:
    """``(text, id, logprob)`` of the chosen token first, then ``k - 1`` other vocabulary entries."""
    out = [(text, tid, logprob(tid, pos))]
    i = (tid * 31 + pos) % len(VOCAB)
    while len(out) < max(1, k):
        t = VOCAB[i % len(VOCAB)]
        i += 7
        if all(t != o[0] for o in out):
            alt = token_id(t)
            out.append((t, alt, logprob(alt, pos)))
    return out
