"""Issue 15, the run itself: one output root with sizes and --keep, --lf, -x/--maxfail, live
counts, adapter identity, pool_id/replica_id for the factory, ``show`` of a saved run (also of
hostile ones). Real runs through the CLI in a subprocess, kept to a few scenarios each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import HERE, run_dirs, run_results

_BROKEN = ("--adapter", "broken_adapters:drop_last_token", "--dialect", "llamacpp")
_QUICK = ("-j", "1", "--no-progress")


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    for k in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS", "LLORCH_PROOF_DIR", "LLORCH_RUN_ID"):
        full.pop(k, None)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llorch_conformance.conformance.cli", *args],
        capture_output=True, text=True, timeout=300, env=full, cwd=cwd, check=False,
    )  # fmt: skip


def _tail(p: subprocess.CompletedProcess[str]) -> str:
    return p.stdout[-2500:] + p.stderr[-1500:]


def test_one_output_root_sizes_and_keep(tmp_path: Path) -> None:
    root = tmp_path / "out"
    first = cli(
        tmp_path, "run", "--only", "mock", "--requirement", "ORCH-3058", "--out", str(root), *_QUICK
    )
    assert first.returncode == 0, _tail(first)
    (run1,) = run_dirs(root)
    # results and bundle together, results.json once; nothing else written in the cwd
    assert (run1 / "results.json").is_file() and (run1 / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in root.iterdir()) == [".llorch-runs", "conformance"]
    assert f"run directory: {run1} (" in first.stdout and " files, " in first.stdout
    assert f"output root: {root} (1 run(s), " in first.stdout
    # --requirement chose one ID: no list of the 130 others that "did not run"
    assert "no scenario ran in this selection" not in first.stdout
    assert cli(tmp_path, "verify", str(run1)).returncode == 0
    # things this tool did not write are never touched by --keep
    (root / "conformance" / "mine").mkdir()
    (root / "conformance" / "mine" / "results.json").write_text(
        '{"schema": "llorch-conformance/results/1"}'
    )
    (root / "notes.txt").write_text("keep me")
    second = cli(
        tmp_path,
        "run",
        "--only",
        "mock",
        "--requirement",
        "ORCH-3058",
        "--proof-dir",
        str(root),
        *_QUICK,
    )
    assert second.returncode == 0, _tail(second)
    assert "output root" in second.stdout and "(2 run(s)" in second.stdout
    third = cli(tmp_path, "run", "--only", "mock", "--requirement", "ORCH-3058", *_QUICK, "--keep", "1",
                env={"LLORCH_PROOF_DIR": str(root)})  # fmt: skip
    assert third.returncode == 0, _tail(third)
    assert "removed 2 older run" in third.stdout
    left = sorted(p.name for p in (root / "conformance").iterdir())
    assert "mine" in left and len(left) == 2, left
    assert (root / "notes.txt").read_text() == "keep me"
    assert run_results(root).run_id in left


def test_last_failed_and_maxfail(tmp_path: Path) -> None:
    root = str(tmp_path / "out")
    nothing = cli(tmp_path, "run", *_BROKEN, "--lf", "--out", root, *_QUICK)
    assert nothing.returncode == 2 and "--lf: no previous run under" in nothing.stderr
    first = cli(tmp_path, "run", *_BROKEN, "--requirement", "WA-INT-3001", "--out", root, *_QUICK)
    assert first.returncode == 1, _tail(first)
    assert "no scenario ran in this selection" not in first.stdout
    assert "PB-1001" not in first.stdout and "WKR-1001" not in first.stdout  # adapter scope
    res = run_results(Path(root))
    failed = sorted(s.nodeid.split("::", 1)[1] for s in res.scenarios if s.status == "fail")
    assert len(failed) >= 2 and len(failed) < len(res.scenarios)
    # live counts on the (plain) progress line
    c = res.counts()
    assert (
        f"{len(res.scenarios)}/{len(res.scenarios)}  {c['pass']} passed  {c['fail']} failed"
        in first.stderr
    )
    # --collect-only --lf lists exactly the failed scenarios
    listed = cli(tmp_path, "run", *_BROKEN, "--lf", "--collect-only", "--out", root)
    assert listed.returncode == 0, _tail(listed)
    assert f"{len(failed)} scenario(s) selected" in listed.stdout
    # -x stops at the first failure; the rerun is of the failures only
    again = cli(tmp_path, "run", *_BROKEN, "--lf", "-x", "--out", root, *_QUICK)
    assert again.returncode == 1, _tail(again)
    assert f"rerunning {len(failed)} failed scenario(s)" in again.stdout
    assert "stopped after 1 failing scenario(s)" in again.stdout
    rerun = run_results(Path(root))
    assert [s.status for s in rerun.scenarios] == ["fail"]
    assert rerun.scenarios[0].nodeid.split("::", 1)[1] in failed
    # like pytest: the failures -x did not get to stay "last failed" for the next --lf
    still = cli(tmp_path, "run", *_BROKEN, "--lf", "--collect-only", "--out", root)
    assert f"{len(failed)} scenario(s) selected" in still.stdout, _tail(still)
    # --maxfail N lets N fail
    two = cli(tmp_path, "run", *_BROKEN, "--requirement", "WA-INT-3001", "--maxfail", "2",
              "--out", root, *_QUICK)  # fmt: skip
    assert two.returncode == 1
    assert sum(s.status == "fail" for s in run_results(Path(root)).scenarios) == 2


def _fake_distribution(site: Path) -> None:
    pkg = site / "acme_adapter"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from config_probe import make\n\n__all__ = ['make']\n", "utf-8"
    )
    info = site / "acme_adapter-1.4.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-adapter\nVersion: 1.4.0\n")
    (info / "top_level.txt").write_text("acme_adapter\n")
    (info / "RECORD").write_text("acme_adapter/__init__.py,,\n")


def test_identity_defaults_to_the_installed_distribution(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _fake_distribution(site)
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(HERE), os.environ.get("PYTHONPATH", "")])}
    p = cli(tmp_path, "run", "--adapter", "acme_adapter:make", "--dialect", "llamacpp",
            "--requirement", "ADAPT-3000", "--collect-only", env=env)  # fmt: skip
    assert p.returncode == 0, _tail(p)
    assert "adapter acme-adapter 1.4.0, dialect llamacpp, acme_adapter:make" in p.stdout
    assert p.stdout.splitlines()[0].startswith("acme-adapter ")
    # no distribution: the module's __version__, the package as the name
    q = cli(tmp_path, "run", "--adapter", "config_probe:make", "--dialect", "llamacpp",
            "--requirement", "ADAPT-3000", "--collect-only")  # fmt: skip
    assert "adapter config_probe 0.7.1," in q.stdout, _tail(q)


def test_identity_flags_reach_table_results_and_bundle(tmp_path: Path) -> None:
    root = tmp_path / "out"
    log = tmp_path / "config.log"
    p = cli(tmp_path, "run", "--adapter", "config_probe:make", "--dialect", "llamacpp",
            "--requirement", "ADAPT-3000", "--adapter-name", "acme", "--adapter-version", "2.0.0-rc1",
            "--out", str(root), *_QUICK, env={"LLORCH_TEST_CONFIG_LOG": str(log)})  # fmt: skip
    assert p.returncode == 0, _tail(p)
    assert "adapter acme 2.0.0-rc1, dialect llamacpp" in p.stdout
    assert "┃ acme" in p.stdout  # the table's column
    res = run_results(root)
    (t,) = res.target["targets"]
    assert (t["adapter_name"], t["adapter_version"]) == ("acme", "2.0.0-rc1")
    assert {s.adapter for s in res.scenarios} == {"acme"}
    # the factory was given pool_id and replica_id (it refuses to build without them)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls and all(c["pool_id"] and c["replica_id"] for c in calls)
    shown = cli(tmp_path, "show", str(run_dirs(root)[-1]))
    assert shown.returncode == 0 and "target acme 2.0.0-rc1" in shown.stdout


def test_show_prints_failures_and_verdicts(tmp_path: Path) -> None:
    root = tmp_path / "out"
    run = cli(
        tmp_path, "run", *_BROKEN, "--requirement", "WA-INT-3001", "--out", str(root), *_QUICK
    )
    assert run.returncode == 1
    bundle = run_dirs(root)[-1]
    p = cli(tmp_path, "show", str(bundle))
    assert p.returncode == 0, _tail(p)
    assert "FAIL [drop_last_token]" in p.stdout and "evidence :" in p.stdout
    assert "fail        MUST   drop_last_token" in p.stdout and "WA-INT-3001" in p.stdout
    assert "verdict: FAIL (exit 1" in p.stdout
    assert cli(tmp_path, "show", str(bundle), "--exit-code").returncode == 1


def _write_results(d: Path, raw: object) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "results.json").write_text(json.dumps(raw), "utf-8")
    return d


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d, "no results.json"),
        (lambda d: _write_results(d, [1, 2]), "not a llorch-conformance results file"),
        (lambda d: _write_results(d, {"schema": "x"}), "not a llorch-conformance results file"),
        (
            lambda d: _write_results(
                d,
                {
                    "schema": "llorch-conformance/results/1",
                    "run_id": "r",
                    "seed": 0,
                    "scenarios": [{"status": "rm -rf"}],
                },
            ),
            "unknown status",
        ),
        (lambda d: (d / "results.json").write_bytes(b"\xff\xfe{") and d, "cannot be read"),
        (lambda d: (d / "results.json").symlink_to("/etc/passwd") or d, "no results.json"),
        (lambda d: (d / "results.json").write_text("[" * 100000) and d, "cannot be read"),
    ],
)
def test_show_refuses_a_bad_bundle_in_one_line(tmp_path: Path, make: object, needle: str) -> None:
    d = tmp_path / "b"
    d.mkdir()
    make(d)  # type: ignore[operator]
    p = cli(tmp_path, "show", str(d))
    assert p.returncode == 2, _tail(p)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr[-500:]


def test_show_keeps_terminal_escapes_out(tmp_path: Path) -> None:
    raw = {
        "schema": "llorch-conformance/results/1", "run_id": "r\x1b]0;pwned\x07", "seed": 0,
        "target": {"targets": [{"name": "x\x1b[31m", "dialect": "llamacpp", "origin": "vendor"}]},
        "scenarios": [{
            "nodeid": "a::b", "feature": "f", "scenario": "s\x1b[2J", "adapter": "x\x1b[31m",
            "dialect": "llamacpp", "requirements": ["ADAPT-3001"], "status": "fail",
            "message": "boom \x1b[2J\x9b31m", "failed_requirements": ["ADAPT-3001"],
            "evidence": {"path": "../../../../etc/passwd"},
        }],
    }  # fmt: skip
    d = _write_results(tmp_path / "b", raw)
    p = cli(tmp_path, "show", str(d))
    assert p.returncode == 0, _tail(p)
    assert "\x1b" not in p.stdout and "\x9b" not in p.stdout and "\x07" not in p.stdout
    assert "ADAPT-3001" in p.stdout


def test_verify_of_a_directory_that_is_not_a_bundle_is_one_line(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i}.json").write_text("{}")
    p = cli(tmp_path, "verify", str(tmp_path))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "not a proof bundle" in p.stderr
