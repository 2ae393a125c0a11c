"""Timing regressions between two runs, judged against the spread both runs recorded.

The formula (one place, so reports can quote it):

* samples of a metric for one adapter are the values of the streams present in *both* runs
  (same adapter, feature, scenario and stream index), and only from scenarios that passed:
  ``ttft_ms`` and ``adapter_added_ms`` give one value per stream, ``itl_ms`` every gap between
  two token events of a stream;
* for each statistic ``q`` in p50, p99 (nearest rank): ``base = P_q(base samples)``,
  ``new = P_q(new samples)``, ``delta = new - base``;
* the spread is the robust standard deviation of the *paired* run-to-run differences:
  each sample is paired with the same sample of the other run (same stream; for ``itl_ms`` the
  same gap index), ``spread = 1.4826 * MAD(new_i - base_i)`` (MAD: median absolute deviation from
  the median). Both runs' noise is in it, while the differences *between* scenarios (a long plan
  and a short one) cancel, because every sample is compared with itself; and one scheduler hiccup
  cannot inflate it as it would a standard deviation;
* ``allowed = max(max_regression_pct / 100 * base, spread_k * spread, min_delta_ms)``; the
  metric regressed when ``delta > allowed``. ``min_delta_ms`` keeps sub-millisecond statistics
  (a mock engine's inter-token gap is ~0 ms) from turning scheduler noise into a verdict.

* p99 gates only with at least :data:`MIN_P99_SAMPLES` samples on each side: below that the
  nearest-rank p99 is simply the slowest sample, one scheduler hiccup; it is still reported.

``mode`` decides what a timing regression does: ``gate`` (exit 1, the default), ``warn`` (reported
under its own heading, never failing — for shared CI runners whose load swings more than any
adapter change), ``off`` (not computed).

Faster is never a regression. A uniform slowdown of every stream has a small spread and is
caught by the percentage; noisy streams widen the allowance by ``spread_k`` spreads.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from .._model import percentile
from ._view import TIMING_METRICS, BundleView

__all__ = [
    "MIN_P99_SAMPLES",
    "TimingChange",
    "TimingMode",
    "TimingPolicy",
    "compare_timings",
    "robust_spread",
]

_MAD_TO_SIGMA: Final = 1.4826
STATISTICS: Final = (50.0, 99.0)
MIN_P99_SAMPLES: Final = 10
TimingMode = Literal["gate", "warn", "off"]


@dataclass(frozen=True)
class TimingPolicy:
    """Thresholds of the timing gate (see the module docstring for the formula)."""

    max_regression_pct: float = 20.0
    spread_k: float = 3.0
    min_delta_ms: float = 1.0
    mode: TimingMode = "gate"

    def __post_init__(self) -> None:
        from adapters.api import UsageError

        if not (self.max_regression_pct >= 0 and math.isfinite(self.max_regression_pct)):
            raise UsageError(
                f"max regression must be a percentage >= 0, got {self.max_regression_pct}"
            )
        if not (self.spread_k >= 0 and math.isfinite(self.spread_k)):
            raise UsageError(f"spread factor must be >= 0, got {self.spread_k}")
        if self.mode not in ("gate", "warn", "off"):
            raise UsageError(f"timing mode must be gate, warn or off, got {self.mode!r}")
        if not (self.min_delta_ms >= 0 and math.isfinite(self.min_delta_ms)):
            raise UsageError(f"minimum delta must be >= 0 ms, got {self.min_delta_ms}")


@dataclass(frozen=True)
class TimingChange:
    adapter: str
    metric: str
    statistic: str  # "p50" | "p99"
    base_ms: float
    new_ms: float
    delta_ms: float
    allowed_ms: float
    spread_ms: float
    samples_base: int
    samples_new: int
    regression: bool
    note: str = ""

    @property
    def delta_pct(self) -> float | None:
        return None if self.base_ms == 0 else 100.0 * self.delta_ms / self.base_ms

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        pct = self.delta_pct
        d["delta_pct"] = None if pct is None else round(pct, 1)
        return d


def robust_spread(values: Sequence[float]) -> float:
    """``1.4826 * MAD``: a standard deviation estimate that one outlier cannot inflate."""
    if len(values) < 2:
        return 0.0
    med = statistics.median(values)
    return _MAD_TO_SIGMA * statistics.median(abs(v - med) for v in values)


def compare_timings(base: BundleView, new: BundleView, policy: TimingPolicy) -> list[TimingChange]:
    """Every (adapter, metric, statistic) both runs measured, with its verdict."""
    out: list[TimingChange] = []
    if policy.mode == "off":
        return out
    for metric in TIMING_METRICS:
        b_by, n_by = base.samples.get(metric, {}), new.samples.get(metric, {})
        for adapter in sorted(set(b_by) & set(n_by)):
            keys = sorted(set(b_by[adapter]) & set(n_by[adapter]))
            bs = [v for k in keys for v in b_by[adapter][k]]
            ns = [v for k in keys for v in n_by[adapter][k]]
            if not bs or not ns:
                continue
            diffs = [
                n - b
                for k in keys
                for b, n in zip(b_by[adapter][k], n_by[adapter][k], strict=False)
            ]
            spread = robust_spread(diffs)
            for q in STATISTICS:
                bq, nq = percentile(bs, q), percentile(ns, q)
                assert bq is not None and nq is not None  # non-empty samples
                delta = nq - bq
                few = q > 50 and min(len(bs), len(ns)) < MIN_P99_SAMPLES
                allowed = max(
                    policy.max_regression_pct / 100.0 * abs(bq),
                    policy.spread_k * spread,
                    policy.min_delta_ms,
                )
                out.append(
                    TimingChange(
                        adapter=adapter,
                        metric=metric,
                        statistic=f"p{int(q)}",
                        base_ms=round(bq, 3),
                        new_ms=round(nq, 3),
                        delta_ms=round(delta, 3),
                        allowed_ms=round(allowed, 3),
                        spread_ms=round(spread, 3),
                        samples_base=len(bs),
                        samples_new=len(ns),
                        regression=delta > allowed and not few,
                        note=f"p99 needs >= {MIN_P99_SAMPLES} samples: not gated" if few else "",
                    )
                )
    return out
