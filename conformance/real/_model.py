"""A tiny random-weight llama model, written with the ``gguf`` package at test time.

Why a model of our own: the real-engine tier needs *a* model that ``llama-server`` loads in well
under a second on a CPU, that is not downloaded (no network in CI, no licence questions) and
that exercises the wire paths that matter to adapters. The weights are noise (seeded), so the
text is gibberish, but everything around it — framing, key sets, timings, stop types, slot
bookkeeping, cancellation — is the real server's.

Wire-relevant choices:

* Architecture ``llama`` (the most common one; the llama.cpp adapter is written against it),
  ``n_layer=2``, ``n_embd=64``, 4 heads, ``n_ff=128``, context 512: about 300 KB in F16.
* Tokenizer ``llama`` (SentencePiece) with ``<unk>``/``<s>``/``</s>``, **all 256 byte tokens**
  ``<0x00>``..``<0xFF>`` (type BYTE) and a few hundred normal pieces (``▁``-prefixed words,
  letters, punctuation, some multi-byte characters). Random logits make the model pick byte
  tokens regularly, so multi-byte UTF-8 characters really arrive split over several tokens and
  the server's own partial-UTF-8 handling is on the wire.
* Scores decrease with the piece index (SPM merges prefer lower ids); types follow the
  ``gguf.TokenType`` values llama.cpp checks when it loads an SPM vocabulary.
* A ChatML chat template is embedded so ``/v1/chat/completions`` renders prompts without relying
  on a built-in fallback that differs between llama.cpp versions.

Tensor shapes follow the gguf convention: numpy shape is the reverse of ggml's ``ne`` (so the
token embedding is ``(n_vocab, n_embd)``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from llorch_conformance.adapters.api import ConfigError

__all__ = ["CHATML_TEMPLATE", "TinyModel", "tiny_vocab", "write_tiny_model"]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORDS = (
    "the", "a", "model", "token", "stream", "worker", "engine", "answer", "is", "of", "and",
    "to", "in", "that", "it", "with", "for", "on", "as", "be", "llama", "queue", "slot", "cache",
    "prompt", "reply", "value", "test", "Hello", "world", "data", "fast", "slow", "over", "Hi",
    "café", "naïve", "über", "日本", "語", "Ωmega",
)  # fmt: skip
_CHARS = (
    "é", "ü", "ß", "€", "中", "—", "…", "🙂", "🦙",
)  # fmt: skip
_PUNCT = tuple(".,!?:;-()'\"0123456789")
_LETTERS = tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class TinyModel:
    """What was written: the path and the facts a test may want to assert on."""

    path: Path
    seed: int
    n_vocab: int
    n_embd: int
    n_layer: int
    n_ctx_train: int
    size_bytes: int
    sha256: str


def tiny_vocab() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of the SPM vocabulary (deterministic, no randomness)."""
    import gguf

    tokens: list[str] = ["<unk>", "<s>", "</s>"]
    types: list[int] = [
        int(gguf.TokenType.UNKNOWN),
        int(gguf.TokenType.CONTROL),
        int(gguf.TokenType.CONTROL),
    ]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(int(gguf.TokenType.BYTE))
    pieces: list[str] = ["▁"]
    pieces += [f"▁{w}" for w in _WORDS]
    pieces += list(_WORDS)
    pieces += list(_CHARS) + list(_PUNCT) + list(_LETTERS)
    pieces += ["<|im_start|>", "<|im_end|>"]
    seen = set(tokens)
    for p in pieces:
        if p in seen:
            continue
        seen.add(p)
        tokens.append(p)
        types.append(
            int(gguf.TokenType.CONTROL) if p.startswith("<|") else int(gguf.TokenType.NORMAL)
        )
    scores = [0.0, 0.0, 0.0] + [0.0] * 256
    scores += [-float(i) for i in range(len(tokens) - len(scores))]
    return tokens, scores, types


def write_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_ff: int = 128,
    n_ctx_train: int = 512,
) -> TinyModel:
    """Write the tiny llama model to ``path`` (seeded: same seed, same bytes) and describe it."""
    try:
        import gguf
        import numpy as np
    except ImportError as exc:  # pragma: no cover - gguf is a test dependency
        raise ConfigError(f"writing the tiny model needs the 'gguf' package: {exc}") from None
    if n_embd % n_head:
        raise ConfigError("n_embd must be a multiple of n_head")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = tiny_vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.5).astype(np.float16)

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("llorch-tiny-llama")
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)

    ones = np.ones(n_embd, dtype=np.float32)
    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.attn_q.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_k.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_v.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_output.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff))
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", mat(n_vocab, n_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = out.read_bytes()
    return TinyModel(
        path=out,
        seed=seed,
        n_vocab=n_vocab,
        n_embd=n_embd,
        n_layer=n_layer,
        n_ctx_train=n_ctx_train,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
