"""Benchmark: the CI gate over proof bundles (load, diff, render, matrix).

For two synthetic runs shaped like the step library's evidence (``bench_bundle``'s generator:
one stream per scenario, N tokens, every 17th scenario failing), the second 10 % slower per
token, measures:

* ``load_bundle``: wall time per bundle and MB of ``results.json`` read per second (the timing
  samples are recomputed from every transcript, so this is the gate's dominant cost);
* ``diff_views`` + ``render_gate_markdown``: wall time, and timing samples compared per second;
* ``build_matrix`` over the loaded bundles.

Prints numbers and ratios; asserts nothing. Usage::

    python -m benches.bench_gate [--scenarios 100,400] [--tokens 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benches.bench_bundle import _results
from llorch_conformance.reports import write_bundle
from llorch_conformance.reports.gate import (
    build_matrix,
    diff_views,
    load_bundle,
    render_gate_markdown,
)


def _slower(res: object, factor: float) -> None:
    for s in res.scenarios:  # type: ignore[attr-defined]
        for st in s.evidence.get("streams", []):
            for rec in st["transcript"]:
                rec["t_ms"] = round(rec["t_ms"] * factor, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="100,400")
    ap.add_argument("--tokens", type=int, default=64)
    ns = ap.parse_args()
    print(f"{'scenarios':>9} {'results MB':>10} {'load s':>7} {'MB/s':>6} {'diff s':>7} "
          f"{'samples/s':>10} {'render s':>8} {'matrix s':>8} {'load/write':>10}")  # fmt: skip
    for n in (int(x) for x in ns.scenarios.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            base_res = _results(n, ns.tokens)
            new_res = _results(n, ns.tokens)
            _slower(new_res, 1.1)
            t0 = time.perf_counter()
            a = write_bundle(base_res, base=tmp, run_id="base").path
            write_s = time.perf_counter() - t0
            b = write_bundle(new_res, base=tmp, run_id="new").path
            mb = (a / "results.json").stat().st_size / 1e6
            t0 = time.perf_counter()
            va = load_bundle(a)
            load_s = time.perf_counter() - t0
            vb = load_bundle(b)
            t0 = time.perf_counter()
            report = diff_views(va, vb)
            diff_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            md = render_gate_markdown(report)
            render_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            build_matrix([va, vb])
            matrix_s = time.perf_counter() - t0
            samples = sum(t.samples_base + t.samples_new for t in report.timing) / 2  # p50+p99 rows
            print(
                f"{n:>9} {mb:>10.2f} {load_s:>7.3f} {mb / load_s:>6.1f} {diff_s:>7.3f} "
                f"{samples / diff_s:>10.0f} {render_s:>8.4f} {matrix_s:>8.4f} "
                f"{load_s / write_s:>10.2f}"
            )
            print(f"{'':>9} gate: exit {report.exit_code}, {len(report.timing_regressions())} "
                  f"timing regressions, {len(md)} Markdown chars")  # fmt: skip


if __name__ == "__main__":
    main()
