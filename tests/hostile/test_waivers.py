"""Hostile waiver files (issue 16 item 10): YAML bombs end in one line and exit 2, fast.

The issue's case is a billion-laughs file of 1e7 aliases (21 s, 578 MB before the fix); the
other bombs a YAML file can carry are here too: recursive aliases, merge keys through aliases,
deep nesting, huge integers and scalars, Python and other tags, several documents, a FIFO, a
huge or non-UTF-8 file, a lone surrogate. Each goes through ``diff --waivers`` as a command line
(``_cli_batch.py``: the CLI's ``main`` per case, one interpreter) and must answer exit 2 with one
line naming the file, within a time and memory the test measures and bounds generously (the
figures table prints them; a bomb expanded would take tens of seconds and hundreds of MiB).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.reports import write_bundle
from llorch_conformance.reports.gate import load_waivers
from llorch_conformance.reports.gate._waivers import MAX_WAIVER_BYTES
from tests.hostile._figures import HostileFigures
from tests.reports import _factory as f

BATCH = Path(__file__).with_name("_cli_batch.py")
ENTRY = "waivers:\n- requirement: ADAPT-3001\n  adapter: x\n  reason: abc\n  expires: {}\n"


def _laughs(levels: int = 7, width: int = 10) -> str:
    """``width ** levels`` references from a few hundred bytes (7 levels of 10: 1e7)."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\nwaivers: []\n"


BOMBS: dict[str, str | bytes] = {
    "billion laughs, 1e7 aliases": _laughs(7),
    "billion laughs, 1e9 aliases": _laughs(9),
    "recursive alias": "a: &a [*a, *a]\nwaivers: []\n",
    "merge key through an alias": "b: &b {adapter: x}\nwaivers:\n- <<: *b\n  reason: abc\n",
    "merge keys, nested aliases": "a: &a {x: 1}\nb: &b {<<: [*a, *a]}\nc: {<<: [*b, *b]}\n",
    "anchor on a waiver reused": "waivers:\n- &w {requirement: ADAPT-3001, adapter: x, "
    "reason: abc, expires: 2026-12-31}\n- *w\n",
    "deep flow nesting 100k": "waivers: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep block nesting": "waivers:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(200)),
    "integer of 5000 digits": "version: " + "9" * 5000 + "\nwaivers: []\n",
    "expiry of 5000 digits": ENTRY.format("9" * 5000),
    "float overflow": "version: 1e999\nwaivers: []\n",
    "python object tag": "waivers: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
    "python name tag": "waivers: !!python/name:os.system\n",
    "custom tag": "waivers: !evil payload\n",
    "set tag": "waivers: !!set {a, b}\n",
    "binary tag": "waivers: !!binary aGVsbG8=\n",
    "two documents": "waivers: []\n---\nwaivers: []\n",
    "complex key": "? [a, b]\n: c\nwaivers: []\n",
    "lone surrogate": ENTRY.replace("adapter: x", 'adapter: "\\ud800"').format("2026-12-31"),
    "not UTF-8": ENTRY.format("2026-12-31").encode() + b"# \xff\xfe\n",
    "UTF-16": ENTRY.format("2026-12-31").encode("utf-16"),
    "scalar of 1 MiB": "waivers: " + "a" * MAX_WAIVER_BYTES + "\n",
    "huge sparse file": b"",  # made sparse below
    "a FIFO": b"",  # made a FIFO below
    "not a mapping": "- a\n- b\n",
    "empty": "",
}


def _make(folder: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for i, (name, text) in enumerate(BOMBS.items()):
        p = folder / f"w{i:02d}.yaml"
        if name == "a FIFO":
            os.mkfifo(p)
        elif name == "huge sparse file":
            with open(p, "wb") as fh:
                fh.truncate(8 << 30)  # 8 GiB claimed, nothing on disk
        else:
            p.write_bytes(
                text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
            )
        paths[name] = p
    return paths


def test_every_bomb_is_refused_quickly_with_one_line(
    tmp_path: Path, hostile_figures: HostileFigures
) -> None:
    """In this process: each bomb raises ConfigError, one line naming the file, and none
    expands (time and peak memory stay far below an expanded bomb's)."""
    paths = _make(tmp_path)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worst = 0.0
    for name, p in paths.items():
        t0 = time.monotonic()
        with pytest.raises(ConfigError) as err:
            load_waivers(p)
        worst = max(worst, time.monotonic() - t0)
        msg = str(err.value)
        assert "\n" not in msg and str(p) in msg and len(msg) < 600, (name, msg[:300])
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    # an expanded 1e7-alias bomb took 21 s and 578 MB; bounds generous for a loaded CI machine
    assert worst < 15 and grown < 200, (worst, grown)
    hostile_figures.record("waivers: YAML bombs (in process)", len(paths), worst_latency_s=worst)


def test_bombs_through_the_cli_are_exit_2_and_one_line(
    tmp_path: Path, hostile_figures: HostileFigures
) -> None:
    """Through ``diff --waivers`` (the CLI's main, real exit codes): exit 2, one line."""
    good = write_bundle(f.results(), base=tmp_path / "pb", run_id="good").path
    paths = _make(tmp_path)
    jobs = [
        {"id": name, "argv": ["diff", str(good), str(good), "--waivers", str(p)], "timeout": 60}
        for name, p in paths.items()
    ]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")
    }
    proc = subprocess.run(
        [sys.executable, str(BATCH), str(tmp_path / "jobs.json"), str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "out.json").read_text())
    bad = []
    for r in results:
        lines = [ln for ln in r["err"].splitlines() if ln.strip()]
        p = str(paths[r["id"]])
        if r["rc"] != 2 or len(lines) != 1 or p not in lines[0] or r["out"]:
            bad.append(f"{r['id']}: rc {r['rc']}: {r['err'][-300:]} {r['traceback'][-500:]}")
    assert not bad, "\n".join(bad)
    assert not Path("/tmp/pwned").exists()
    worst = max(r["seconds"] for r in results)
    hostile_figures.record("waivers: YAML bombs (CLI)", len(results), worst_latency_s=worst)
