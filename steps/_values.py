"""Value checks: the numbers and strings an adapter reports must be right, not only present.

The grammar (``adapters.api.check_stream``) says which keys an event has and their types; these
checks say whether the values can be true: counts are non-negative integers that agree with the
tokens the caller received (on every ending — ``end``, cancelled ``end`` and ``error``), metrics
carry numbers where the contract says numbers, log fields match the task, the stream and the
engine, and no adapter log record carries anything shaped like a secret.

Where the contract says what a field is:

* ``metrics`` (seed 000 §2, reference §4.7/§5.5): ``latency_first_token_ms``,
  ``latency_decode_ms``, ``tokens_out`` — and the orchestrator's additive fields
  ``on_time_probability`` (a probability), ``queue_depth``, ``tokens_budget_remaining``,
  ``time_budget_remaining_ms``, ``cost_budget_remaining`` — are numbers; ``kv_warmth`` is a
  boolean, ``human`` a string, ``prep`` an object. Any other key of a metrics event must be a
  number too ("metrics frames carry numbers"): a string, an object or ``null`` fails.
* ``end``: ``tokens_out`` and ``decode_time_ms`` (and any ``tokens_in``/``usage`` counts) are
  non-negative integers; ``tokens_out`` is the number of token events delivered.
* logs (README_LLM fields, ADAPT-3004/WA-INT-3007): ``job_id``/``session_id`` are the task's,
  ``engine`` names the engine, ``engine_version`` is the engine's version, ``tokens_out`` the
  delivered tokens, ``tokens_in`` the engine's prompt token count, ``decode_time_ms`` a
  non-negative number, ``pool_id``/``replica_id`` non-empty strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "count_problems",
    "is_count",
    "is_nonneg_number",
    "log_value_problems",
    "metrics_problems",
    "secret_shaped",
    "version_matches",
]

#: Metrics keys the contract defines as numbers.
_NUMERIC_METRICS = frozenset(
    {
        "latency_first_token_ms",
        "latency_decode_ms",
        "tokens_out",
        "tokens_in",
        "decode_time_ms",
        "queue_depth",
        "tokens_budget_remaining",
        "time_budget_remaining_ms",
        "cost_budget_remaining",
        "on_time_probability",
    }
)
#: Metrics keys the contract types otherwise.
_TYPED_METRICS: dict[str, type | tuple[type, ...]] = {
    "kv_warmth": bool,
    "human": str,
    "prep": dict,
}
#: Count fields of an ending (``end``/``error`` data and ``usage``): non-negative integers.
_COUNT_KEYS = ("tokens_out", "tokens_in", "prompt_tokens", "completion_tokens", "total_tokens")


def is_count(v: object) -> bool:
    """A non-negative integer (a bool is not a count)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_nonneg_number(v: object) -> bool:
    return (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(float(v))
        and v >= 0
    )


def count_problems(kind: str, data: Mapping[str, Any], delivered: int) -> list[str]:
    """Problems with the counts of one terminal event that followed ``delivered`` token events."""
    out: list[str] = []
    sources: list[tuple[str, Mapping[str, Any]]] = [(kind, data)]
    usage = data.get("usage")
    if isinstance(usage, Mapping):
        sources.append((f"{kind}.usage", usage))
    elif usage is not None:
        out.append(f"{kind}.usage is {type(usage).__name__}, not an object of counts")
    for where, src in sources:
        for key in _COUNT_KEYS:
            if key in src and src[key] is not None and not is_count(src[key]):
                out.append(f"{where}.{key} = {src[key]!r} is not a non-negative integer")
    if kind == "end":
        if not is_count(data.get("tokens_out")):
            out.append(f"end.tokens_out = {data.get('tokens_out')!r} is not a non-negative integer")
        elif data["tokens_out"] != delivered:
            out.append(
                f"end.tokens_out = {data['tokens_out']} but {delivered} token events were delivered"
            )
        dt = data.get("decode_time_ms", data.get("decode_ms"))
        if not is_nonneg_number(dt):
            out.append(f"end.decode_time_ms = {dt!r} is not a non-negative number")
    elif kind == "error":
        t = data.get("tokens_out")
        if t is not None and is_count(t) and t != delivered:
            out.append(f"error.tokens_out = {t} but {delivered} token events were delivered")
    return out


def metrics_problems(data: Mapping[str, Any], delivered: int) -> list[str]:
    """Problems with one metrics event (types per the contract; counts against the stream)."""
    out: list[str] = []
    for key, value in data.items():
        typed = _TYPED_METRICS.get(key)
        if typed is not None:
            if not isinstance(value, typed):
                out.append(
                    f"metrics.{key} = {value!r:.60} is not a {getattr(typed, '__name__', typed)}"
                )
            continue
        if not is_nonneg_number(value):
            out.append(f"metrics.{key} = {value!r:.60} is not a non-negative number")
            continue
        if key == "on_time_probability" and value > 1:
            out.append(f"metrics.on_time_probability = {value!r} is not a probability")
        if key in ("tokens_out",) and (not is_count(value) or value > delivered):
            out.append(
                f"metrics.tokens_out = {value!r} but only {delivered} token events were delivered"
            )
    return out


_HEX_BUILD = re.compile(r"\+[0-9a-f]{7,40}")


def version_matches(adapter_says: object, accepted: Iterable[str]) -> bool:
    """Does the adapter's ``engine_version`` equal what the engine reports?

    ``accepted`` are the engine's own version strings (``steps._checks.engine_versions``):
    the adapter's value must be one of them, or one of them plus the engine's build hash (TGI's
    ``/info`` reports ``version`` and ``sha``: ``3.3.6+db931fc``).
    """
    if not isinstance(adapter_says, str) or not adapter_says:
        return False
    for own in accepted:
        if not own:
            continue
        if adapter_says == own:
            return True
        rest = adapter_says[len(own) :]
        if adapter_says.startswith(own) and _HEX_BUILD.fullmatch(rest):
            return True
    return False


def log_value_problems(
    fields: Mapping[str, Any],
    *,
    task_id: str,
    session_id: str,
    engines: Iterable[str],
    engine_versions: list[str] | None,
    delivered: int | None,
    prompt_tokens: int | None,
) -> list[str]:
    """Problems with the values of one log record of the task (module docstring).

    A field that is absent or ``None`` is "not known when this record was written" (a submit
    record has no token counts yet); the callers demand non-null fields on the completion
    record. Every value that is there must be right.
    """
    fields = {k: v for k, v in fields.items() if v is not None}
    out: list[str] = []
    if fields.get("job_id") != task_id:
        out.append(f"job_id = {fields.get('job_id')!r}, the task is {task_id!r}")
    if "session_id" in fields and fields.get("session_id") != session_id:
        out.append(f"session_id = {fields.get('session_id')!r}, the task's is {session_id!r}")
    names = {e for e in engines if e}
    if "engine" in fields and names and fields.get("engine") not in names:
        out.append(f"engine = {fields.get('engine')!r}, expected one of {sorted(names)}")
    if (
        "engine_version" in fields
        and engine_versions
        and not version_matches(fields.get("engine_version"), engine_versions)
    ):
        out.append(
            f"engine_version = {fields.get('engine_version')!r}, the engine reports "
            f"{' or '.join(engine_versions)!r}"
        )
    if "tokens_out" in fields:
        t = fields.get("tokens_out")
        if not is_count(t):
            out.append(f"tokens_out = {t!r} is not a non-negative integer")
        elif delivered is not None and t != delivered:
            out.append(f"tokens_out = {t}, but {delivered} token events were delivered")
    if "decode_time_ms" in fields and not is_nonneg_number(fields.get("decode_time_ms")):
        out.append(
            f"decode_time_ms = {fields.get('decode_time_ms')!r} is not a non-negative number"
        )
    if "tokens_in" in fields:
        t = fields.get("tokens_in")
        if not is_count(t):
            out.append(f"tokens_in = {t!r} is not a non-negative integer")
        elif prompt_tokens is not None and t != prompt_tokens:
            out.append(f"tokens_in = {t}, the engine counted {prompt_tokens} prompt tokens")
    for key in ("pool_id", "replica_id"):
        if key in fields and not (isinstance(fields[key], str) and fields[key].strip()):
            out.append(f"{key} = {fields[key]!r} is not a non-empty string")
    return out


def secret_shaped(texts: Iterable[str]) -> list[str]:
    """Texts in which the project's redactor finds something secret-shaped (bearer tokens,
    API-key headers and pairs, URL credentials, ``sk-``/``hf_`` keys): the redactor's own
    patterns (``adapters.http_util.redact``), so what it would mask must never be logged raw.
    Returns the offending fragments, each masked."""
    from llorch_conformance.adapters.http_util import redact

    found: list[str] = []
    for text in texts:
        red = redact(text)
        if red == text:
            continue
        # Show where: the first differing window, masked.
        i = next((k for k, (a, b) in enumerate(zip(text, red, strict=False)) if a != b), 0)
        found.append(red[max(0, i - 40) : i + 40])
    return found
