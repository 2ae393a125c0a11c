"""``real-engine`` and the venv lookup: bad input is one clear line (exit 2), never a start."""

from __future__ import annotations

from pathlib import Path

import pytest

from llorch_conformance.conformance.cli import main as cli_main
from llorch_conformance.conformance.real import (
    EngineUnavailable,
    find_triton_venv,
    find_vllm_venv,
    real_home,
)


def _venv(path: Path) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").write_text("#!/bin/sh\n")
    return path


def test_venv_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LLORCH_REAL_HOME", str(home))
    monkeypatch.delenv("LLORCH_VLLM_VENV", raising=False)
    monkeypatch.delenv("LLORCH_TRITON_VENV", raising=False)
    assert real_home() == home
    with pytest.raises(EngineUnavailable, match="vllm-venv"):
        find_vllm_venv()
    cached = _venv(home / "vllm-venv")
    assert find_vllm_venv() == cached
    env = _venv(tmp_path / "env-venv")
    monkeypatch.setenv("LLORCH_VLLM_VENV", str(env))
    assert find_vllm_venv() == env
    given = _venv(tmp_path / "given")
    assert find_vllm_venv(given) == given
    # an explicit path that is no venv is an error, not a reason to use another one
    with pytest.raises(EngineUnavailable, match="no bin/python"):
        find_vllm_venv(tmp_path / "nowhere")
    with pytest.raises(EngineUnavailable, match="Triton"):
        find_triton_venv()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "vllm", "--venv", "/nonexistent/venv"], "has no bin/python"),
        (["--engine", "triton", "--model", "/nonexistent/repo"], "does not exist"),
        (["--engine", "llamacpp", "--port", "70000"], "is not a TCP port"),
    ],
)
def test_real_engine_refuses_bad_input(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli_main(["real-engine", *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_real_engine_refuses_an_unknown_engine(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["real-engine", "--engine", "tgi"])
    assert exc.value.code == 2
    assert "invalid choice: 'tgi'" in capsys.readouterr().err
