"""Latency and capacity profiles of a mock engine, and the latency model built on them.

``fast`` (the default) has no delays at all: tests run at full speed and wait on the journal.
``realistic`` approximates an 8B model in bf16 on one H100 under a vLLM-like scheduler:
prefill ≈ 25 ms + 0.05 ms per prompt token, decode ≈ 12 ms per token (≈ 80 tok/s per stream)
growing up to +60 % when every slot is busy, ±1.5 ms jitter, 64 slots and a queue of 256. These
are round numbers from public H100 serving benchmarks, not a measurement of any one engine.

User profiles are YAML or JSON files with the same keys; unknown keys are an error (a typo must
not silently fall back to a default).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from llorch_conformance.adapters.api import ConfigError

__all__ = ["PROFILES", "Profile", "load_profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    """Timing and capacity knobs. All times are milliseconds.

    * ``ttft_ms`` + ``ttft_per_prompt_token_ms`` × prompt tokens: time to the first chunk.
    * ``itl_ms``: inter-token latency; a chunk of *k* tokens takes *k* × ``itl_ms``.
    * ``jitter_ms``: seeded uniform jitter in ±``jitter_ms`` added to each step (never negative).
    * ``load_slowdown``: fractional ITL increase when all slots are busy (linear in occupancy).
    * ``slots`` / ``queue_size``: concurrent generations and waiting requests; beyond both the
      dialect's own overload answer is sent.
    * ``tokens_per_chunk``: tokens per streamed frame.
    * ``load_ms``: loading phase after start (each dialect's own loading behaviour).
    """

    name: str = "fast"
    ttft_ms: float = 0.0
    ttft_per_prompt_token_ms: float = 0.0
    itl_ms: float = 0.0
    jitter_ms: float = 0.0
    load_slowdown: float = 0.0
    slots: int = 64
    queue_size: int = 1024
    tokens_per_chunk: int = 1
    load_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ConfigError(f"profile {self.name!r}: slots must be >= 1")
        if self.queue_size < 0:
            raise ConfigError(f"profile {self.name!r}: queue_size must be >= 0")
        if self.tokens_per_chunk < 1:
            raise ConfigError(f"profile {self.name!r}: tokens_per_chunk must be >= 1")
        for f in ("ttft_ms", "ttft_per_prompt_token_ms", "itl_ms", "jitter_ms", "load_ms"):
            if getattr(self, f) < 0:
                raise ConfigError(f"profile {self.name!r}: {f} must be >= 0")

    @property
    def has_delays(self) -> bool:
        return bool(self.ttft_ms or self.ttft_per_prompt_token_ms or self.itl_ms or self.jitter_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def step_offsets(
        self,
        n_steps: int,
        prompt_tokens: int,
        chunk_sizes: list[int],
        busy_fraction: float,
        rng: random.Random | None,
    ) -> list[float]:
        """Seconds after the slot was granted at which each step (chunk) is due.

        Step 0 is the first chunk (time to first token); step *k* adds the ITL of its chunk.
        Offsets are absolute and non-decreasing so a sender sleeps until each deadline and
        errors never accumulate.
        """
        if n_steps <= 0:
            n_steps = 1
            chunk_sizes = [1]
        if not self.has_delays:
            return [0.0] * n_steps
        itl = self.itl_ms * (1.0 + self.load_slowdown * busy_fraction)
        t = self.ttft_ms + self.ttft_per_prompt_token_ms * prompt_tokens
        out: list[float] = []
        jitter = self.jitter_ms
        prev = 0.0
        for k in range(n_steps):
            if k > 0:
                t += itl * chunk_sizes[k]
            j = rng.uniform(-jitter, jitter) if (jitter and rng is not None) else 0.0
            v = max(prev, t + j)
            out.append(v / 1000.0)
            prev = v
        return out


PROFILES: dict[str, Profile] = {
    "fast": Profile(name="fast"),
    "realistic": Profile(
        name="realistic",
        ttft_ms=25.0,
        ttft_per_prompt_token_ms=0.05,
        itl_ms=12.0,
        jitter_ms=1.5,
        load_slowdown=0.6,
        slots=64,
        queue_size=256,
        tokens_per_chunk=1,
        load_ms=3000.0,
    ),
}

_FIELDS = {f.name for f in fields(Profile)}


def load_profile(name_or_path: str | Path | Profile | None = None, **overrides: Any) -> Profile:
    """Resolve a profile: a :class:`Profile`, a built-in name, or a YAML/JSON file path.

    A file may name a built-in ``base`` profile and override some keys. ``overrides`` are applied
    last (handy in tests: ``load_profile("fast", slots=1, queue_size=0)``).
    """
    if isinstance(name_or_path, Profile):
        prof = name_or_path
    elif name_or_path is None or (isinstance(name_or_path, str) and name_or_path in PROFILES):
        prof = PROFILES[name_or_path or "fast"]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(sorted(PROFILES))
            raise ConfigError(
                f"unknown profile {str(name_or_path)!r}: not one of {known} and not a file"
            )
        prof = _load_file(path)
    if overrides:
        bad = set(overrides) - _FIELDS
        if bad:
            raise ConfigError(f"unknown profile keys: {', '.join(sorted(bad))}")
        prof = replace(prof, **overrides)
    return prof


def _load_file(path: Path) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read profile {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (ValueError, Exception) as exc:
        raise ConfigError(f"profile {path} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"profile {path} must be a mapping of keys to values")
    base_name = data.pop("base", "fast")
    if base_name not in PROFILES:
        raise ConfigError(f"profile {path}: unknown base {base_name!r}")
    bad = set(data) - _FIELDS
    if bad:
        raise ConfigError(f"profile {path}: unknown keys {', '.join(sorted(bad))}")
    data.setdefault("name", path.stem)
    try:
        return replace(PROFILES[base_name], **data)
    except TypeError as exc:
        raise ConfigError(f"profile {path}: {exc}") from exc
