"""Benchmark: writing, auditing and verifying a proof bundle.

Measures, for synthetic runs shaped like the step library's evidence (one stream per scenario,
N tokens, the engine's wire frames, a retry record):

* ``write_bundle`` wall and CPU time per run, CPU ms per scenario (all renderers, audit, manifest,
  statement) — CPU time because the machine is shared and wall time is noisy;
* the redaction audit alone: MB scanned per CPU second;
* ``verify_bundle``: CPU time and MB hashed and checked per CPU second;
* what ``run`` does around the bundle (issue 18): ``RunResults.write`` and ``RunResults.read`` of
  the run's ``results.json`` (CPU s) and :func:`adapters.http_util.redact` over every scenario's
  evidence text, as the writer redacts it (MB per CPU second).

Prints numbers and ratios; asserts nothing. Usage::

    python benches/bench_bundle.py [--scenarios 100,400] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from llorch_conformance.adapters.http_util import redact
from llorch_conformance.conformance._results import RunResults, ScenarioResult
from llorch_conformance.reports import audit_bundle, verify_bundle, write_bundle


def _evidence(i: int, tokens: int) -> dict[str, Any]:
    tr: list[dict[str, Any]] = [{"t_ms": 1.0, "kind": "started", "data": {"engine": "llamacpp"}}]
    frames = []
    for k in range(tokens):
        tr.append({"t_ms": 5.0 + k, "kind": "token", "data": {"t": f" tok{k}", "i": k}})
        frames.append(f'data: {{"content":" tok{k}","stop":false,"id_slot":0}}\n\n')
    tr.append(
        {
            "t_ms": 6.0 + tokens,
            "kind": "end",
            "data": {"tokens_out": tokens, "decode_time_ms": tokens},
        }
    )
    return {
        "seed": 7,
        "streams": [{"transcript": tr, "raised": None, "hung": False, "duration_ms": 7.0 + tokens, "t0": 100.0}],
        "retry_timelines": [[{"attempt": 1, "delay_ms": 50, "reason": "upstream 503", "code": "POOL_UNAVAILABLE"}]],
        "journal": [
            {
                "id": 1, "method": "POST", "path": "/completion", "generation": True, "status": 200,
                "headers": [["authorization", "Bearer ****9f86d0"]], "body": '{"prompt":"hi"}',
                "t_received": 100.001, "t_first_byte": 100.003, "frames": frames,
            }
        ],
        "logs": [{"level": "INFO", "logger": "llorch.adapters", "message": f"scenario {i} done"}],
    }  # fmt: skip


def _results(n: int, tokens: int) -> RunResults:
    adapters = ("llamacpp", "vllm", "tgi", "openai", "triton")
    reqs = ("ADAPT-3001", "WA-INT-3001", "HTU-1003")
    scenarios = [
        ScenarioResult(
            nodeid=f"steps/_suite.py::test_s{i}[{adapters[i % 5]}]",
            feature="grammar",
            scenario=f"scenario {i}",
            adapter=adapters[i % 5],
            dialect=adapters[i % 5],
            requirements=[reqs[i % 3]],
            status="pass" if i % 17 else "fail",
            duration_s=0.01,
            message="" if i % 17 else "wrong token",
            evidence=_evidence(i, tokens),
        )
        for i in range(n)
    ]
    return RunResults(run_id="bench", seed=7, target={"targets": []}, scenarios=scenarios)


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _around(res: RunResults, tmp: Path) -> tuple[float, float, float]:
    """CPU s of writing and reading results.json, and redaction MB per CPU second."""
    c = time.process_time()
    path = res.write(tmp / "results.json")
    write_cpu = time.process_time() - c
    c = time.process_time()
    RunResults.read(path)
    read_cpu = time.process_time() - c
    texts = [json.dumps(s.evidence, ensure_ascii=False) for s in res.scenarios]
    c = time.process_time()
    for text in texts:
        redact(text)
    redact_cpu = time.process_time() - c
    return write_cpu, read_cpu, sum(map(len, texts)) / 1e6 / max(redact_cpu, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="100,400")
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    print(
        f"{'scenarios':>9} {'files':>6} {'MB':>6} {'write s':>8} {'cpu s':>6} {'cpu ms/scen':>11} "
        f"{'audit MB/cpu-s':>14} {'verify cpu s':>12} {'verify MB/cpu-s':>15} "
        f"{'results w/r cpu s':>17} {'redact MB/cpu-s':>15}"
    )
    for n in (int(x) for x in args.scenarios.split(",")):
        res = _results(n, args.tokens)
        with tempfile.TemporaryDirectory() as tmp:
            t, c = time.perf_counter(), time.process_time()
            out = write_bundle(res, base=tmp, run_id=f"b{n}")
            write_s, write_cpu = time.perf_counter() - t, time.process_time() - c
            size = _size(out.path)
            c = time.process_time()
            audit_bundle(out.path, ["s3cr3t-token-xyz-0123"])
            audit_cpu = time.process_time() - c
            c = time.process_time()
            rep = verify_bundle(out.path)
            verify_cpu = time.process_time() - c
            assert rep.ok, rep.problems[:3]
            res_write_cpu, res_read_cpu, redact_rate = _around(res, Path(tmp))
            files = sum(1 for p in out.path.rglob("*") if p.is_file())
            mb = size / 1e6
            print(
                f"{n:>9} {files:>6} {mb:>6.1f} {write_s:>8.2f} {write_cpu:>6.2f} "
                f"{1000 * write_cpu / n:>11.1f} {mb / audit_cpu:>14.1f} {verify_cpu:>12.2f} "
                f"{mb / verify_cpu:>15.1f} {f'{res_write_cpu:.2f}/{res_read_cpu:.2f}':>17} "
                f"{redact_rate:>15.1f}"
            )


if __name__ == "__main__":
    main()
