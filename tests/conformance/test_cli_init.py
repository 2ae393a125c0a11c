"""``llorch-conformance init``: the scaffold runs under ``run`` at once, from its folder without
pip install, fails (exit 1, never a harness error), and every failing ID is named by a TODO."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from llorch_conformance.conformance import RunResults


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")
    }
    env.pop("LLORCH_PROOF_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "llorch_conformance.conformance.cli", *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=cwd, check=False,
    )  # fmt: skip


def test_init_scaffold_runs_at_once_and_its_todos_name_the_failures(tmp_path: Path) -> None:
    made = _cli(tmp_path, "init", "acme-llama", "--dialect", "llamacpp")
    assert made.returncode == 0, made.stderr
    pkg = tmp_path / "acme-llama"
    meta = tomllib.loads((pkg / "pyproject.toml").read_text("utf-8"))
    eps = meta["project"]["entry-points"]["llorch_conformance.adapters"]
    assert eps == {"acme-llama": "acme_llama.adapter:make"}
    assert (pkg / "tests" / "test_conformance.py").is_file()
    src = (pkg / "acme_llama" / "adapter.py").read_text("utf-8")
    compile(src, "adapter.py", "exec")
    named = set(re.findall(r"\b[A-Z][A-Z-]*-\d{4}[a-z]?\b", src))
    # from the package's folder, not installed: the module is found in the current directory
    run = _cli(pkg, "run", "--adapter", "acme_llama.adapter:make", "--dialect", "llamacpp",
               "--out", str(tmp_path / "out"), "-j", "2", "--no-progress")  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    (res_path,) = (tmp_path / "out" / "conformance").glob("*/results.json")
    res = RunResults.read(res_path)
    assert not res.errors(), [(s.scenario, s.message) for s in res.errors()]
    failing = {v.requirement for v in res.verdicts() if v.status == "fail"}
    assert failing, "a skeleton cannot pass"
    assert failing <= named, sorted(failing - named)
    # identity: the package's __version__, its name
    (t,) = res.target["targets"]
    assert (t["name"], t["version"]) == ("acme_llama", "0.1.0")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["init", "9lives", "--dialect", "vllm"], "is not a package name"),
        (["init", "ok", "--dialect", "nope"], "invalid choice"),
        (["init", "llorch_conformance", "--dialect", "vllm"], "would shadow"),
    ],
)
def test_init_bad_input_is_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    p = _cli(tmp_path, *args)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "keep.txt").write_text("mine")
    p = _cli(tmp_path, "init", "acme", "--dialect", "vllm")
    assert p.returncode == 2 and "exists and is not empty" in p.stderr
    assert (tmp_path / "acme" / "keep.txt").read_text() == "mine"
