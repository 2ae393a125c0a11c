"""The independent oracle: what a task must produce, computed from the task alone.

Why independent: the mock engine's journal records the plan of the request the *adapter* sent.
An expectation read from there follows whatever the adapter asked for, so an adapter that drops
``max_tokens``, the stop sequences, the seed or the prompt still "reproduces the plan". Here the
expected plan is computed from the :class:`~adapters.api.TaskRequest` and the engine's documented
defaults only — the adapter cannot steer it. The journal is still read, but as *evidence of what
the adapter forwarded*, compared field by field with the task (:func:`forwarded_problems`).

Engine facts the oracle needs (reference/engine-dialects.md): a plan is a pure function of
prompt, seed, max_tokens, stop and the sampling knobs (``mock_engines.make_plan``); greedy
sampling ignores the seed; TGI decodes greedily unless the request asks for sampling
(``do_sample`` or a non-neutral knob); a chat with one user message plans like a completion of
that message. ``determinism: strict`` asks for greedy sampling (OC-TEST-7002), so any greedy
request the adapter sends gives the strict plan.

Task seeds: every scenario's task carries a seed derived from the run seed and the scenario
(:func:`derive_task_seed`), never the engine's default seed, so a dropped seed changes the
tokens (the engine falls back to its own seed) and is caught by the plan check as well as by the
forwarded-parameters check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llorch_conformance.adapters.api import DeterminismLevel, TaskRequest

__all__ = [
    "FORWARD_IDS",
    "Mismatch",
    "chat_requested",
    "derive_task_seed",
    "engine_params",
    "expected_plan",
    "forwarded_problems",
    "task_prompt",
    "task_stops",
]

#: Requirements a wrongly forwarded task breaks: ``submit`` maps the TaskRequest (ADAPT-3000)
#: and the per-engine "completion against the native API" requirements.
FORWARD_IDS: tuple[str, ...] = (
    "ADAPT-3000",
    "OC-ADAPT-5001",
    "OC-ADAPT-5020",
    "OC-ADAPT-5040",
    "OC-ADAPT-5060",
    "OC-ADAPT-OAI-6001",
)
#: A dropped or changed seed also breaks the determinism requirements.
SEED_IDS: tuple[str, ...] = ("ADAPT-3000", "OC-TEST-7002", "WA-INT-3006", "OC-ADAPT-5010")
#: Greedy settings under ``determinism: strict``.
GREEDY_IDS: tuple[str, ...] = ("OC-TEST-7002",)

#: Seeds stay within 31 bits: every engine's seed field takes them (llama.cpp uint32, TGI u64).
_SEED_SPAN = 2**31 - 2


def derive_task_seed(run_seed: int, scenario_key: str) -> int:
    """A task seed for one scenario: stable per (run seed, scenario), never the run seed itself.

    The mock engines are started with the run seed as their default; a task seed that differs
    makes "the adapter dropped the seed" visible in the tokens.
    """
    digest = hashlib.sha256(f"llorch-task-seed|{run_seed}|{scenario_key}".encode()).digest()
    seed = 1 + int.from_bytes(digest[:8], "big") % _SEED_SPAN
    if seed == run_seed:
        seed = 1 + seed % _SEED_SPAN
    return seed


def task_prompt(req: TaskRequest) -> str:
    """The prompt text a task asks for (``inputs`` joined by newlines when there is no prompt)."""
    if req.prompt is not None:
        return req.prompt
    return "\n".join(req.inputs or ())


def task_stops(req: TaskRequest) -> tuple[str, ...]:
    raw = req.extra.get("stop")
    if not raw:
        return ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(str(s) for s in raw if s)


def chat_requested(req: TaskRequest) -> bool:
    return req.extra.get("endpoint") == "chat"


def engine_params(req: TaskRequest) -> dict[str, Any]:
    """``extra.engine_params`` flattened: top-level keys plus those of nested objects (TGI's and
    Triton's ``parameters``)."""
    raw = req.extra.get("engine_params")
    out: dict[str, Any] = {}
    if not isinstance(raw, Mapping):
        return out
    for key, value in raw.items():
        if isinstance(value, Mapping):
            out.update({str(k): v for k, v in value.items()})
        else:
            out[str(key)] = value
    return out


def _num(params: Mapping[str, Any], key: str) -> float | None:
    v = params.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _tgi_samples(params: Mapping[str, Any]) -> bool:
    """TGI samples only when asked (``do_sample`` or a non-neutral knob); else it is greedy."""
    t, p, k = _num(params, "temperature"), _num(params, "top_p"), _num(params, "top_k")
    typical = _num(params, "typical_p")
    return bool(
        params.get("do_sample") is True
        or (t is not None and t != 1.0)
        or (k is not None and k != 0)
        or (p is not None and p < 1.0)
        or (typical is not None and typical < 1.0)
    )


def expected_plan(req: TaskRequest, dialect: str, engine_seed: int) -> Any:
    """The plan the engine generates when it receives exactly what the task asks for."""
    from llorch_conformance.mock_engines import chat_prompt, make_plan

    params = engine_params(req)
    prompt = task_prompt(req)
    if chat_requested(req) and dialect in ("vllm", "openai"):
        prompt = chat_prompt([{"role": "user", "content": prompt}])
    temperature = _num(params, "temperature")
    top_p = _num(params, "top_p")
    k = _num(params, "top_k")
    top_k = int(k) if k is not None and k > 0 else None
    if req.determinism is DeterminismLevel.STRICT:
        temperature, top_p, top_k = 0.0, 1.0, None
    elif dialect == "tgi" and not _tgi_samples(params):
        temperature, top_p, top_k = 0.0, None, None
    min_tokens = params.get("min_tokens", 0)
    return make_plan(
        prompt,
        seed=req.seed if req.seed is not None else engine_seed,
        max_tokens=req.max_tokens,
        stop=task_stops(req),
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        ignore_eos=params.get("ignore_eos") is True,
        min_tokens=min_tokens if isinstance(min_tokens, int) else 0,
    )


@dataclass(frozen=True)
class Mismatch:
    """One task field the engine did not receive as asked, and the requirements that breaks."""

    field: str
    want: Any
    got: Any
    ids: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.field}: task asked for {self.want!r}, the engine received {self.got!r}"


def forwarded_problems(req: TaskRequest, parsed: Any, dialect: str) -> list[Mismatch]:
    """Compare the engine's parsed view of the adapter's request (a journal plan) with the task."""
    out: list[Mismatch] = []
    prompt = task_prompt(req)
    got_text = str(getattr(parsed.prompt, "plan_text", parsed.prompt))
    if chat_requested(req) and dialect in ("vllm", "openai"):
        want_chat = chat_prompt_text(prompt)
        if str(parsed.prompt) != want_chat:
            out.append(
                Mismatch("messages", [{"role": "user", "content": prompt}], got_text, FORWARD_IDS)
            )
    elif got_text != prompt:
        out.append(Mismatch("prompt", _short(prompt), _short(got_text), FORWARD_IDS))
    if parsed.max_tokens != req.max_tokens:
        out.append(Mismatch("max_tokens", req.max_tokens, parsed.max_tokens, FORWARD_IDS))
    if req.seed is not None and parsed.seed != req.seed:
        out.append(Mismatch("seed", req.seed, parsed.seed, SEED_IDS))
    stops = task_stops(req)
    if tuple(parsed.stop) != stops:
        out.append(Mismatch("stop", list(stops), list(parsed.stop), FORWARD_IDS))
    params = engine_params(req)
    if params.get("ignore_eos") is True and not parsed.ignore_eos:
        out.append(Mismatch("engine_params.ignore_eos", True, parsed.ignore_eos, FORWARD_IDS))
    if req.determinism is DeterminismLevel.STRICT:
        greedy = parsed.temperature is not None and parsed.temperature <= 0.0
        if not greedy:
            out.append(Mismatch("temperature (strict)", 0.0, parsed.temperature, GREEDY_IDS))
        if parsed.top_p is not None and parsed.top_p < 0.999:
            out.append(Mismatch("top_p (strict)", 1.0, parsed.top_p, GREEDY_IDS))
    else:
        for knob in ("temperature", "top_p"):
            want = _num(params, knob)
            got = getattr(parsed, knob)
            if want is not None and (got is None or abs(float(got) - want) > 1e-9):
                out.append(Mismatch(f"engine_params.{knob}", want, got, FORWARD_IDS))
    return out


def chat_prompt_text(prompt: str) -> str:
    from llorch_conformance.mock_engines import chat_prompt

    return str(chat_prompt([{"role": "user", "content": prompt}]))


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "…"
