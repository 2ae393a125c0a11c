"""Write a tiny random-weight Hugging Face llama model directory for real vLLM.

This file is a **standalone script** run with the vLLM venv's interpreter (which has torch,
transformers and tokenizers); the project's own venv needs none of them. It imports only the
standard library at module level, so importing it from the project is harmless, and it is run as::

    <vllm-venv>/bin/python -m llorch_conformance.conformance.real._hf_writer OUT_DIR --seed N     (cwd = repo)
    <vllm-venv>/bin/python .../conformance/real/_hf_writer.py OUT_DIR --seed N

What it writes (about 600 KB):

* ``config.json`` + ``model.safetensors``: ``LlamaConfig`` hidden 64, 2 layers, **2 heads**
  (head_dim 32: vLLM's CPU attention kernels accept 32, 64, 80, ...; head_dim 16 starts and then
  kills the engine on the first request), intermediate 128, context 4096 (the suite's tasks ask for ctx 4096), random weights from a
  seeded generator (same seed, same tensors).
* ``tokenizer.json``: a byte-level BPE (GPT-2 style, all 256 byte symbols in the alphabet) of
  about 512 tokens trained on a fixed word list with multi-byte characters, so random logits
  pick partial UTF-8 byte tokens and vLLM's own held-back-UTF-8 behaviour is on the wire.
* ``tokenizer_config.json`` with special tokens and a ChatML ``chat_template``, so
  ``/v1/chat/completions`` renders prompts without a hub lookup.
* ``generation_config.json`` (bos/eos), so vLLM does not search the hub for one.

Prints one JSON line describing what was written (the caller parses it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]

_WORDS = [
    "the",
    "a",
    "model",
    "token",
    "stream",
    "worker",
    "engine",
    "answer",
    "is",
    "of",
    "and",
    "to",
    "in",
    "that",
    "it",
    "with",
    "for",
    "on",
    "as",
    "be",
    "llama",
    "queue",
    "slot",
    "cache",
    "prompt",
    "reply",
    "value",
    "test",
    "Hello",
    "world",
    "data",
    "fast",
    "slow",
    "over",
    "Hi",
    "café",
    "naïve",
    "über",
    "日本",
    "語",
    "Ωmega",
    "é",
    "ü",
    "ß",
    "€",
    "中",
    "—",
    "…",
    "🙂",
    "🦙",
    "user",
    "assistant",
    "system",
    "orchestrator",
    "pool",
    "replica",
    "adapter",
    "conformance",
    "scenario",
    "deadline",
    "cancel",
    "retry",
    "health",
    "ready",
    "metrics",
]


def _corpus() -> list[str]:
    """A deterministic training corpus (word pairs and sentences) for the BPE trainer."""
    lines: list[str] = []
    n = len(_WORDS)
    for i in range(n):
        for j in range(0, n, 7):
            lines.append(f"{_WORDS[i]} {_WORDS[(i + j) % n]} {_WORDS[(i * 3 + j) % n]}.")
    return lines


def write(out: Path, *, seed: int, vocab_size: int = 512, max_len: int = 4096) -> dict[str, object]:
    # Only the vLLM venv has these (the project's venv and its type checker do not).
    import torch  # type: ignore[import-not-found, unused-ignore]
    from tokenizers import (  # type: ignore[import-not-found, unused-ignore]
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import (  # type: ignore[import-not-found, unused-ignore]
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    out.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(str(out))
    # The template also goes into tokenizer_config.json (older transformers read it only there).
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["chat_template"] = CHATML_TEMPLATE
    tc["model_max_length"] = max_len
    tc_path.write_text(json.dumps(tc, indent=2) + "\n")
    n_vocab = len(fast)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=n_vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_len,
        rms_norm_eps=1e-5,
        bos_token_id=fast.convert_tokens_to_ids("<s>"),
        eos_token_id=fast.convert_tokens_to_ids("</s>"),
        pad_token_id=fast.convert_tokens_to_ids("</s>"),
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger-than-default weights: livelier, less repetitive text
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.5)
    model.save_pretrained(str(out), safe_serialization=True)
    model.generation_config.save_pretrained(str(out))
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return {
        "path": str(out),
        "seed": seed,
        "n_vocab": n_vocab,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "head_dim": 32,
        "max_position_embeddings": max_len,
        "size_bytes": size,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--max-len", type=int, default=4096)
    args = ap.parse_args(argv)
    info = write(args.out, seed=args.seed, vocab_size=args.vocab_size, max_len=args.max_len)
    sys.stdout.write(json.dumps(info) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
