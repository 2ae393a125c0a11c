"""What the OpenAI-shaped routes share: request parsing (vLLM, OpenAI: fields, types,
problems) and the end of a stream (llama.cpp, vLLM, OpenAI: ``data: [DONE]``).

Every dialect words its own error messages and renders its own chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._plan import GenerationPlan, chat_prompt
from .._wire import Frame, FrameKind, Headers, StreamReply

__all__ = ["DONE", "OaiParams", "Problem", "done_stream", "parse_oai"]

#: The OpenAI stream terminator, byte for byte the same on every OpenAI-shaped engine.
DONE = b"data: [DONE]\n\n"


def done_stream(
    frames: list[Frame],
    last: int,
    plan: GenerationPlan,
    headers: Headers,
    *,
    error_frames: Callable[[str], list[bytes]],
    token_frame: Callable[[str], bytes],
) -> StreamReply:
    """A 200 OpenAI-shaped stream: ``frames``, then ``[DONE]`` at step ``last``."""
    frames.append(Frame(DONE, last, FrameKind.TERMINAL))
    return StreamReply(
        200, headers, frames, plan, error_frames=error_frames, token_frame=token_frame
    )


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with a request: ``kind`` is ``missing`` or ``type``."""

    field: str
    kind: str
    expected: str
    got: str


@dataclass(frozen=True, slots=True)
class OaiParams:
    model: str | None
    prompt: str
    max_tokens: int | None
    stream: bool
    include_usage: bool
    stream_options_present: bool
    include_obfuscation: bool
    stop: tuple[str, ...]
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    ignore_eos: bool
    min_tokens: int


def _tname(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_oai(body: dict[str, Any], *, chat: bool) -> OaiParams | Problem:
    """Validate and extract the fields that matter; the first problem found is returned."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return Problem("model", "type", "string", _tname(model))
    if chat:
        messages = body.get("messages")
        if messages is None:
            return Problem("messages", "missing", "array", "null")
        if not isinstance(messages, list):
            return Problem("messages", "type", "array", _tname(messages))
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                return Problem(f"messages[{i}]", "type", "object", _tname(m))
            if not isinstance(m.get("role"), str):
                return Problem(f"messages[{i}].role", "missing", "string", _tname(m.get("role")))
        prompt = chat_prompt(messages)
    else:
        p = body.get("prompt")
        if p is None:
            return Problem("prompt", "missing", "string", "null")
        if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
            p = p[0]
        if not isinstance(p, str):
            return Problem("prompt", "type", "string", _tname(p))
        prompt = p
    max_tokens: int | None = None
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is None:
            continue
        if not _is_int(v):
            return Problem(key, "type", "integer", _tname(v))
        if v < 0:
            return Problem(key, "value", "integer >= 0", str(v))
        max_tokens = v
        break
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        return Problem("stream", "type", "boolean", _tname(stream))
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        return Problem("stream_options", "type", "object", _tname(so))
    include_usage = False
    include_obfuscation = True
    if isinstance(so, dict):
        iu = so.get("include_usage")
        if iu is not None and not isinstance(iu, bool):
            return Problem("stream_options.include_usage", "type", "boolean", _tname(iu))
        include_usage = bool(iu)
        io = so.get("include_obfuscation")
        if io is not None:
            include_obfuscation = bool(io)
    stop_raw = body.get("stop")
    stop: tuple[str, ...] = ()
    if isinstance(stop_raw, str):
        stop = (stop_raw,)
    elif isinstance(stop_raw, list):
        if not all(isinstance(s, str) for s in stop_raw):
            return Problem("stop", "type", "string or array of strings", "array")
        stop = tuple(stop_raw)
    elif stop_raw is not None:
        return Problem("stop", "type", "string or array of strings", _tname(stop_raw))
    nums: dict[str, float | None] = {}
    for key in ("temperature", "top_p"):
        v = body.get(key)
        if v is not None and not _is_num(v):
            return Problem(key, "type", "number", _tname(v))
        nums[key] = float(v) if v is not None else None
    ints: dict[str, int | None] = {}
    for key in ("seed", "top_k", "min_tokens"):
        v = body.get(key)
        if v is not None and not _is_int(v):
            return Problem(key, "type", "integer", _tname(v))
        ints[key] = v
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        return Problem("ignore_eos", "type", "boolean", _tname(ignore_eos))
    top_k = ints["top_k"]
    return OaiParams(
        model=model,
        prompt=prompt,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        stream_options_present=so is not None,
        include_obfuscation=include_obfuscation,
        stop=stop,
        temperature=nums["temperature"],
        top_p=nums["top_p"],
        top_k=top_k if top_k is not None and top_k > 0 else None,
        seed=ints["seed"],
        ignore_eos=ignore_eos,
        min_tokens=ints["min_tokens"] or 0,
    )
