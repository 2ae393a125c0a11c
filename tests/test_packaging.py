"""What ``pip install .`` installs: one top-level import package, complete, old names gone.

Why a test: the repository keeps its declared layout (``adapters/``, ``steps/`` … at the top)
while the installed names live under ``llorch_conformance`` through symlinks; a packaging change
that drops the links, a data file or the namespace would only show on a user's machine.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_NAMES = ("adapters", "mock_engines", "conformance", "reports", "steps", "features")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("llorch_conformance-*.whl")
    return whl


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        top_level = next(z.read(n) for n in names if n.endswith("dist-info/top_level.txt"))
    assert tops == {"llorch_conformance"}, tops
    assert top_level.decode().split() == ["llorch_conformance"]
    # the data files travel with the code
    assert any(n.endswith("reports/schemas/summary.schema.json") for n in names)
    assert any(n.endswith(".feature") for n in names)
    # every tracked Python file of the six packages is in the wheel
    tracked = subprocess.run(
        ["git", "ls-files", *(f"{p}/*.py" for p in OLD_NAMES)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    missing = [f for f in tracked if f"llorch_conformance/{f}" not in names]
    assert not missing, missing


def test_the_installed_tree_imports_under_the_namespace_only(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = (
        "import importlib, sys\n"
        "import llorch_conformance.conformance.cli as cli\n"
        "assert cli.__file__.startswith(sys.argv[1]), cli.__file__\n"
        "import llorch_conformance.steps._plugin, llorch_conformance.adapters.vllm\n"
        f"old = {OLD_NAMES!r}\n"
        "found = [n for n in old if importlib.util.find_spec(n) is not None]\n"
        "print(','.join(found))\n"
    )
    # an empty working directory: only the unpacked wheel can provide our names
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "", f"old top-level names still importable: {proc.stdout}"
