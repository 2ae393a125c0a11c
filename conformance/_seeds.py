"""The determinism seed corpus (OC-TEST-7003): 64 stable integer seeds.

Taken from the original determinism suite's ``seeds.txt`` (``# 64 seeded prompts (integers)``,
then 1001..1064); kept as data here so a run can be replayed seed by seed.
"""

from __future__ import annotations

__all__ = ["SEED_CORPUS"]

SEED_CORPUS: tuple[int, ...] = tuple(range(1001, 1065))
