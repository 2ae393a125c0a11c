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

* the noise model comes from the runs' own samples, and a change must stand out of it to gate:

  - one sample on either side (or a single pair) is no noise estimate at all: reported, never
    gated ("spread 0: one sample");
  - **p50** gates when the paired spread is positive (the allowance above already holds it), or
    when the spread is 0 because *every* stream moved the same way (a constant shift: the paired
    evidence is unanimous); a spread of 0 from ties (most pairs unchanged, a few moved) proves
    nothing and falls back to the rule for p99. With many samples a shift smaller than the
    per-sample spread is still proven when the medians' 95 % intervals (below) are disjoint and
    it exceeds ``max(max_regression_pct / 100 * base, min_delta_ms)``: the median of n samples
    is far less noisy than one sample;
  - **p99** (a tail: one scheduler hiccup moves it, and pairing does not describe tails) gates only
    when the distribution-free confidence intervals of the two quantiles are disjoint: the
    95 % interval of the q-quantile of n sorted samples is ``[x(l), x(u)]`` with
    ``l = floor(nq - 1.96 sqrt(nq(1-q)))`` and ``u = ceil(nq + 1.96 sqrt(nq(1-q)))`` (1-based
    order statistics, the normal approximation of the binomial); an interval whose rank falls
    outside the samples is unbounded, so a p99 needs several hundred samples to gate, and the
    new run's lower bound must exceed the base run's upper bound; below
    :data:`MIN_P99_SAMPLES` it is not even considered.

``mode`` decides what a timing regression does: ``gate`` (exit 1, the default), ``warn`` (reported
under its own heading, never failing — for shared CI runners whose load swings more than any
adapter change: a loaded machine slows *every* stream, which the statistics rightly call real),
``off`` (not computed).

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
    "quantile_bounds",
    "robust_spread",
]

_MAD_TO_SIGMA: Final = 1.4826
STATISTICS: Final = (50.0, 99.0)
_Z: Final = 1.96  # two-sided 95 % for the quantile bounds
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
        from llorch_conformance.adapters.api import UsageError

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


def quantile_bounds(values: Sequence[float], q: float) -> tuple[float | None, float | None]:
    """95 % distribution-free confidence bounds of the ``q``-quantile (module docstring);
    ``None`` where the rank falls outside the samples (the bound is not known)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return None, None
    half = _Z * math.sqrt(n * q * (1.0 - q))
    lo, hi = math.floor(n * q - half), math.ceil(n * q + half)
    return (xs[lo - 1] if lo >= 1 else None), (xs[hi - 1] if hi <= n else None)


def _stands_out(
    q: float, bs: Sequence[float], ns: Sequence[float], diffs: Sequence[float], spread: float
) -> tuple[bool, str]:
    """Is the change of the ``q``-quantile beyond the runs' own noise? (why not, if not)."""
    if min(len(bs), len(ns)) < 2 or len(diffs) < 2:
        return False, "spread 0: one sample is no noise estimate, not gated"
    if q <= 50.0:
        if spread > 0:
            return True, ""
        if diffs and min(diffs) > 0:
            return True, ""  # every stream slower by the same amount: unanimous
    if q > 50.0 and min(len(bs), len(ns)) < MIN_P99_SAMPLES:
        return False, f"p99 needs >= {MIN_P99_SAMPLES} samples: not gated"
    _, base_hi = quantile_bounds(bs, q / 100.0)
    new_lo, _ = quantile_bounds(ns, q / 100.0)
    if base_hi is None or new_lo is None:
        what = "spread 0 from ties; " if q <= 50.0 else ""
        return False, f"{what}too few samples to bound p{int(q)}: not gated"
    if new_lo <= base_hi:
        what = "spread 0 from ties; " if q <= 50.0 else ""
        return False, (
            f"{what}within noise: new p{int(q)} >= {new_lo:.1f} overlaps base <= {base_hi:.1f}"
        )
    return True, ""


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
                allowed = max(
                    policy.max_regression_pct / 100.0 * abs(bq),
                    policy.spread_k * spread,
                    policy.min_delta_ms,
                )
                real, why = _stands_out(q, bs, ns, diffs, spread)
                regression = delta > allowed and real
                if not regression and q <= 50.0 and min(len(bs), len(ns)) >= 2:
                    # Many samples: the median's own uncertainty is far below one sample's
                    # spread, so a shift the paired allowance calls noise can still be proven —
                    # when the two medians' confidence intervals are disjoint and the shift is
                    # beyond the percentage and the floor.
                    floor = max(policy.max_regression_pct / 100.0 * abs(bq), policy.min_delta_ms)
                    _, base_hi = quantile_bounds(bs, 0.5)
                    new_lo, _ = quantile_bounds(ns, 0.5)
                    if (
                        delta > floor
                        and base_hi is not None
                        and new_lo is not None
                        and new_lo > base_hi
                    ):
                        regression, why = (
                            True,
                            (
                                f"median intervals disjoint: new >= {new_lo:.1f} > base <= {base_hi:.1f}"
                            ),
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
                        regression=regression,
                        note=why if (delta > allowed and not real) or regression else "",
                    )
                )
    return out
