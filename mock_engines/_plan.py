"""The generation plan: the cross-dialect oracle of what a mock engine "generates".

A plan is a pure function of ``(prompt, seed, max_tokens, stop, sampling knobs)``. Every dialect
renders the same plan, so the same request sent to the llama.cpp, vLLM, TGI, OpenAI or Triton mock
yields the same token texts and the same stop reason; only the envelope differs. That is what
lets the harness demand identical normalised adapter events from every adapter.

Choices (and why):

* Randomness comes from ``random.Random`` seeded with a SHA-256 of the inputs, never from
  ``hash()`` (which is salted per process): a plan is stable across processes and machines.
* ``temperature == 0`` means greedy decoding, so the request seed is ignored (as on real engines:
  llama.cpp, vLLM and TGI all ignore the seed under greedy sampling).
* The vocabulary deliberately contains multi-byte UTF-8 (2, 3 and 4 bytes), whitespace-only
  tokens (space, newline, tab) and separators that naive line splitters mishandle (U+2028,
  U+0085): adapters must pass them through untouched.
* Stop strings are excluded from the output (llama.cpp, vLLM, OpenAI and TGI's OpenAI routes do
  the same). The token that completes a stop string is trimmed to the text before the match and
  dropped when that leaves it empty; ``completion_tokens`` still counts every generated token,
  as the engines' usage does.
* ``tokenize`` is a small regex tokenizer (GPT-2 style pieces: optional leading space + word, a
  single digit, a single punctuation mark or symbol, whitespace runs). It backs usage counts.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "EOS_TOKEN_ID",
    "MAX_CONTEXT",
    "VOCAB",
    "GenerationPlan",
    "StopReason",
    "chat_prompt",
    "make_plan",
    "token_id",
    "tokenize",
]

StopReason = Literal["length", "eos", "stop"]

#: Context size of the mock model: an unlimited ``max_tokens`` still ends here (as ``length``).
MAX_CONTEXT = 4096
#: Id reported for the end-of-sequence token (llama-family ``</s>``).
EOS_TOKEN_ID = 2
_ID_BASE = 1000

# Weighted vocabulary. Words carry their leading space as real BPE vocabularies do.
_WORDS = (
    " the", " a", " model", " token", " stream", " worker", " engine", " answer", " is", " of",
    " and", " to", " in", " that", " it", " with", " for", " on", " as", " be", " orchestra",
    " llama", " queue", " slot", " cache", " prompt", " reply", " value", " test", " light",
    "ing", "ed", "s", "ly", " Hello", " world", " data", " fast", " slow", " over",
)  # fmt: skip
_PUNCT = (",", ".", "!", "?", ":", ";", "-", "(", ")", '"', "'", "0", "1", "2", "42")
_MULTIBYTE = (
    " café", "é", "ü", " naïve", "ß", "€", " 日本", "語", "中", " 🙂", "🦙", "𝛑", " Ωmega", "—", "…",
)  # fmt: skip
_WHITESPACE = (" ", "\n", "\t", "  ", "\n\n")
_SEPARATORS = ("\u2028", "\u0085")

VOCAB: tuple[str, ...] = _WORDS + _PUNCT + _MULTIBYTE + _WHITESPACE + _SEPARATORS
_WEIGHTS: tuple[float, ...] = (
    (10.0,) * len(_WORDS)
    + (3.0,) * len(_PUNCT)
    + (3.0,) * len(_MULTIBYTE)
    + (2.0,) * len(_WHITESPACE)
    + (0.5,) * len(_SEPARATORS)
)
_CUM_WEIGHTS: tuple[float, ...] = tuple(sum(_WEIGHTS[: i + 1]) for i in range(len(_WEIGHTS)))
_VOCAB_INDEX: dict[str, int] = {t: i for i, t in enumerate(VOCAB)}

_TOKEN_RE = re.compile(r" ?[^\W\d_]+| ?\d| ?(?:[^\w\s]|_)|\s+(?!\S)|\s+|[\s\S]", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into the mock model's tokens (the basis of every usage count).

    The pieces concatenate back to ``text`` exactly; whitespace is kept, never dropped.
    """
    return _TOKEN_RE.findall(text)


def token_id(text: str) -> int:
    """A stable id for a token text: its vocabulary slot, or a hash bucket for other text."""
    idx = _VOCAB_INDEX.get(text)
    if idx is not None:
        return _ID_BASE + idx
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return _ID_BASE + len(VOCAB) + int.from_bytes(digest[:3], "big")


class ChatPrompt(str):
    """A templated chat prompt that remembers the conversation's plain text (``plan_text``).

    Usage counts come from the templated text (real engines count template tokens too), but the
    plan is drawn from ``plan_text`` — the messages' contents joined by newlines — so a chat with
    one user message gets exactly the plan of a completion of that message. That is what lets the
    cross-dialect oracle compare a chat-route adapter (OpenAI) with completion-route adapters.
    """

    __slots__ = ("plan_text",)
    plan_text: str

    def __new__(cls, templated: str, plan_text: str) -> ChatPrompt:
        obj = super().__new__(cls, templated)
        obj.plan_text = plan_text
        return obj


def chat_prompt(messages: Sequence[Mapping[str, object]]) -> str:
    """Render chat messages into the one prompt text every dialect uses for chat routes.

    A fixed, engine-neutral template keeps usage counts and plans identical across dialects.
    Non-string ``content`` (OpenAI content parts) contributes its ``text`` parts. The result is a
    :class:`ChatPrompt`: its plan comes from the contents alone (see there).
    """
    parts: list[str] = []
    texts: list[str] = []
    for msg in messages:
        role = str(msg.get("role", "user"))
        content = msg.get("content")
        if isinstance(content, list):
            text = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        elif content is None:
            text = ""
        else:
            text = str(content)
        parts.append(f"<|{role}|>\n{text}\n")
        texts.append(text)
    parts.append("<|assistant|>\n")
    return ChatPrompt("".join(parts), "\n".join(texts))


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """What the engine will emit for one request: the oracle every dialect renders.

    ``tokens`` are the emitted texts in order (one per engine step); ``token_ids`` match them
    one to one. ``completion_tokens`` counts generated tokens, which can exceed ``len(tokens)``
    when a stop string swallowed the tail of the last one.
    """

    prompt: str
    seed: int
    max_tokens: int | None
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    stop_reason: StopReason
    stop_string: str | None
    prompt_tokens: int
    completion_tokens: int
    stop: tuple[str, ...] = field(default=())
    #: The sampling knobs the plan was drawn with (the engine's parsed view of the request, so
    #: the harness can compare what an adapter forwarded with what its task asked for).
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    ignore_eos: bool = False
    min_tokens: int = 0

    @property
    def text(self) -> str:
        """All emitted text joined."""
        return "".join(self.tokens)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _rng_for(
    prompt: str,
    seed: int,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
) -> random.Random:
    greedy = temperature is not None and temperature <= 0.0
    key = "|".join(
        (
            "llorch-plan-v1",
            "greedy" if greedy else f"seed={seed}",
            "" if greedy or temperature is None else f"t={round(temperature, 4)}",
            "" if greedy or top_p is None else f"p={round(top_p, 4)}",
            "" if greedy or top_k is None else f"k={top_k}",
            prompt,
        )
    )
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def make_plan(
    prompt: str,
    *,
    seed: int,
    max_tokens: int | None,
    stop: Sequence[str] = (),
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    ignore_eos: bool = False,
    min_tokens: int = 0,
) -> GenerationPlan:
    """Build the deterministic plan for one request (same inputs → same plan, in every process).

    ``max_tokens`` ``None`` or negative means "no limit" (the mock context of
    :data:`MAX_CONTEXT` tokens still applies). Without ``ignore_eos`` the model "wants" to stop
    after a seeded natural length of 4..96 tokens (stop reason ``eos``); ``max_tokens`` cuts it
    short (``length``); a stop string found in the text ends it earlier (``stop``).
    """
    if max_tokens is not None and max_tokens == 0:
        limit = 0
    elif max_tokens is None or max_tokens < 0:
        limit = MAX_CONTEXT
    else:
        limit = min(max_tokens, MAX_CONTEXT)
    stops = tuple(s for s in stop if s)
    rng = _rng_for(getattr(prompt, "plan_text", prompt), seed, temperature, top_p, top_k)
    natural = rng.randint(4, 96)
    if ignore_eos:
        natural = MAX_CONTEXT + 1
    natural = max(natural, min_tokens)
    prompt_tokens = len(tokenize(prompt))

    # One batched draw: random.choices(k=n) consumes the RNG exactly like n single draws.
    n = min(limit, natural)
    pieces = rng.choices(VOCAB, cum_weights=_CUM_WEIGHTS, k=n)
    stop_reason: StopReason = "length" if limit <= natural else "eos"
    stop_string: str | None = None
    texts: list[str] = pieces
    generated = n
    if stops:
        longest = max(len(s) for s in stops)
        text_so_far = ""
        for idx, piece in enumerate(pieces):
            before = len(text_so_far)
            text_so_far += piece
            # Search only where a new match can start: stops may span token boundaries.
            window_start = max(0, before - longest + 1)
            best: tuple[int, str] | None = None
            for s in stops:
                pos = text_so_far.find(s, window_start)
                if pos != -1 and (best is None or pos < best[0]):
                    best = (pos, s)
            if best is None:
                continue
            cut, stop_string = best
            stop_reason = "stop"
            generated = idx + 1
            # Trim emitted tokens to the text before the match.
            kept: list[str] = []
            acc = 0
            for t in pieces[: idx + 1]:
                if acc + len(t) <= cut:
                    kept.append(t)
                    acc += len(t)
                else:
                    rest = t[: cut - acc]
                    if rest:
                        kept.append(rest)
                    break
            texts = kept
            break
    return GenerationPlan(
        prompt=prompt,
        seed=seed,
        max_tokens=max_tokens,
        tokens=tuple(texts),
        token_ids=tuple(token_id(t) for t in texts),
        stop_reason=stop_reason,
        stop_string=stop_string,
        prompt_tokens=prompt_tokens,
        completion_tokens=generated,
        stop=stops,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        ignore_eos=ignore_eos,
        min_tokens=min_tokens,
    )
