"""Render Allure results to one offline HTML file with the npm ``allure-commandline`` package.

    python -m llorch_conformance.reports.allure_html RESULTS_DIR OUT_DIR [--cache DIR]

``RESULTS_DIR`` is a bundle's ``allure-results/`` or what ``-p llorch_conformance.reports.allure_plugin
--llorch-allure DIR`` wrote; ``OUT_DIR/index.html`` is the single self-contained report
(``allure generate --single-file``). Analytics are switched off (``ALLURE_NO_ANALYTICS=true``) and the result is checked to
load no external script. ``allure-commandline`` (Allure 2, needs Java 17) is installed
with npm into ``--cache`` (default ``.tox/allure-npm``) on first use. ``tox -e allure`` runs this
after writing results for the project's plain tests and a conformance run in one folder.

This is a convenience for humans: proof bundles never depend on it (``report.html`` is the
bundle's own offline report).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["main", "render"]

PACKAGE = "allure-commandline@2"


def _allure(cache: Path) -> Path:
    exe = cache / "node_modules" / ".bin" / "allure"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("allure_html: npm is not installed (apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", PACKAGE],
        check=True,
        timeout=600,
    )
    return exe


def render(results: Path, out: Path, *, cache: Path) -> Path:
    """``out/index.html`` from ``results``; raises ``SystemExit`` with a clear line on failure."""
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise SystemExit(f"allure_html: {results} holds no Allure results (*-result.json)")
    if shutil.which("java") is None:
        raise SystemExit(
            "allure_html: allure-commandline needs Java 17 (apt-get install openjdk-17-jre-headless)"
        )
    exe = _allure(cache)
    # Allure 2 embeds Google Analytics unless told not to; "true" (not "1") disables it in both
    # the generator and the HTML template (allure2 Analytics.md, PR 3333).
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
    subprocess.run(
        [str(exe), "generate", "--single-file", "--clean", "-o", str(out), str(results)],
        check=True,
        timeout=600,
        env=env,
    )
    index = out / "index.html"
    if not index.is_file():
        raise SystemExit(f"allure_html: allure wrote no {index}")
    external = re.findall(
        r"""<script[^>]+src=["']?(?:https?:)?//[^"' >]+""", index.read_text("utf-8", "replace")
    )
    if external:
        raise SystemExit(f"allure_html: {index} is not offline, it loads {external[0]!r}")
    return index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m llorch_conformance.reports.allure_html",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("results", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--cache", type=Path, default=Path(".tox") / "allure-npm")
    args = p.parse_args(argv)
    index = render(args.results, args.out, cache=args.cache)
    print(f"allure report: {index}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
