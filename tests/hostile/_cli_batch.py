"""Run many ``llorch-conformance`` command lines in ONE interpreter, each as the CLI would.

Usage: ``python _cli_batch.py JOBS.json OUT.json``. JOBS is a list of ``{"id", "argv"}`` (and an
optional ``cwd``); for
each, ``conformance.cli.main(argv)`` runs with stdout/stderr captured as strict UTF-8 text (as a
terminal would encode them: a lone surrogate that could not be printed fails here too), under a
per-job alarm (a hang is a result, not a stuck suite). An exception escaping ``main`` is what
the real CLI would die of with a traceback and exit 1: it is recorded as ``rc: "traceback"``.

Why a batch: one interpreter start-up for hundreds of hostile bundles keeps the corpus within
its CI budget; ``main`` is the console script's whole body, so the exit code is the CLI's.
This file imports only the installed package (it runs from a temporary working directory).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import traceback
from typing import Any


def _alarm(_signum: int, _frame: Any) -> None:
    raise TimeoutError("the command did not finish in time (a hang)")


def main() -> None:
    from llorch_conformance.conformance.cli import main as cli_main

    with open(sys.argv[1], encoding="utf-8") as fh:
        jobs = json.load(fh)
    results = []
    signal.signal(signal.SIGALRM, _alarm)
    real_out, real_err = sys.stdout, sys.stderr
    for job in jobs:
        out_b, err_b = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_b, encoding="utf-8", errors="strict", write_through=True)
        err = io.TextIOWrapper(err_b, encoding="utf-8", errors="strict", write_through=True)
        rc: int | str
        tb = ""
        t0 = time.monotonic()
        signal.alarm(int(job.get("timeout", 20)))
        home = os.getcwd()
        if job.get("cwd"):
            os.chdir(job["cwd"])
        sys.stdout, sys.stderr = out, err
        try:
            try:
                rc = int(cli_main(job["argv"]))
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # what would reach the terminal as a traceback
            rc, tb = "traceback", traceback.format_exc()
        finally:
            signal.alarm(0)
            sys.stdout, sys.stderr = real_out, real_err
            os.chdir(home)
        results.append(
            {
                "id": job["id"],
                "rc": rc,
                "out": out_b.getvalue().decode("utf-8", "replace"),
                "err": err_b.getvalue().decode("utf-8", "replace"),
                "traceback": tb,
                "seconds": round(time.monotonic() - t0, 3),
            }
        )
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()
