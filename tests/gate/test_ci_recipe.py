"""End to end: ``docs/ci/gate.sh`` with two vendor adapter variants against a baseline it made.

The baseline is made by the same script in release mode (no ``BASELINE``) from the good
variant; then the script gates both variants against it, concurrently. Only the variant that
drops the last token must fail, and the reason must be a status regression.

Selection: ``--requirement ADAPT-3001`` (six scenarios, the stream grammar and the plan oracle),
~10 s per run here. The recipe runs with its defaults (no ``GATE_ARGS``): the two gated runs
share a loaded 2-core machine with each other and with other tests, which is exactly the shared
runner the recipe's default (``TIMING=warn``: timings reported, not gating) is made for; timing
gating itself is proven on constructed bundles in ``test_diff.py``. This test is about the
recipe and status gating.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._vendor import BAD, GOOD

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "docs" / "ci" / "gate.sh"
RUN_ARGS = [
    "--adapter",
    "acme:acme_llamacpp",
    "--dialect",
    "llamacpp",
    "--requirement",
    "ADAPT-3001",
    "-j",
    "1",
]
TIMEOUT_S = 240


def _env(tmp: Path, variant: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLORCH_", "GITHUB_"))}
    cli = Path(sys.executable).parent / "llorch-conformance"
    env.update(
        LLORCH=str(cli),
        PYTHONPATH=os.pathsep.join([str(variant), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        **extra,
    )
    return env


def _variant(tmp: Path, name: str, source: str) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "acme.py").write_text(source, "utf-8")
    return d


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_gate_script_fails_the_regressed_variant_only(tmp_path: Path) -> None:
    if shutil.which("bash") is None:  # pragma: no cover - CI images have bash
        pytest.skip("bash not installed")
    good, bad = _variant(tmp_path, "good", GOOD), _variant(tmp_path, "bad", BAD)

    base = subprocess.run(
        ["bash", str(GATE), *RUN_ARGS],
        env=_env(tmp_path, good, GATE_OUT=str(tmp_path / "release")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert base.returncode == 0, base.stderr + base.stdout
    baseline = tmp_path / "release" / "bundle"
    assert (baseline / "summary.json").is_file()
    assert (tmp_path / "release" / "verify.log").is_file()

    gate_env = {"BASELINE": str(baseline)}  # the recipe's defaults, nothing else
    procs = {
        name: subprocess.Popen(
            ["bash", str(GATE), *RUN_ARGS],
            env=_env(tmp_path, src, GATE_OUT=str(tmp_path / name), **gate_env),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, src in (("change-good", good), ("change-bad", bad))
    }
    out: dict[str, tuple[int, str, str]] = {}
    try:
        for name, p in procs.items():
            so, se = p.communicate(timeout=TIMEOUT_S)
            out[name] = (p.returncode, so, se)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()

    rc, so, se = out["change-good"]
    assert rc == 0, se + so
    assert "no regressions" in so
    rc, so, se = out["change-bad"]
    assert rc == 1, se + so
    assert "Status regressions" in so
    gate = json.loads((tmp_path / "change-bad" / "results" / "gate.json").read_text("utf-8"))
    kinds = {(c["adapter"], c["kind"]) for c in gate["status_changes"] if c["gating"]}
    assert ("acme_llamacpp", "newly failing") in kinds
    assert gate["policy"]["timing_mode"] == "warn"  # the recipe's default
    good_gate = json.loads((tmp_path / "change-good" / "results" / "gate.json").read_text("utf-8"))
    assert good_gate["exit_code"] == 0 and good_gate["counts"]["gating_regressions"] == 0
    # Both gated runs kept a verifiable bundle as the artifact.
    for name in ("change-good", "change-bad"):
        assert (tmp_path / name / "bundle" / "manifest.json").is_file()
        assert (tmp_path / name / "results" / "gate.md").is_file()


def test_github_workflow_runs_the_same_script_and_keeps_the_bundle() -> None:
    import yaml

    wf = yaml.safe_load((ROOT / "docs" / "ci" / "github-actions.yml").read_text("utf-8"))
    gate, release = wf["jobs"]["gate"], wf["jobs"]["baseline"]
    runs = [s.get("run", "") for s in gate["steps"]]
    assert any("gate.sh" in r and "$ADAPTER" in r for r in runs)
    assert any("BASELINE=" in r for r in runs)  # the release baseline is fetched and used
    assert wf["env"]["TIMING"] == "warn"  # safe on shared hosted runners by default
    uploads = [
        s for s in gate["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")
    ]
    assert uploads and uploads[0]["if"] == "always()" and uploads[0]["with"]["path"] == "gate-out/"
    assert any("gate.sh" in s.get("run", "") for s in release["steps"])
    assert any("gh release upload" in s.get("run", "") for s in release["steps"])
