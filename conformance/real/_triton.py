"""Real Triton (``tritonserver`` 2.51.0 from the ``nvidia-pytriton`` 0.7.0 wheel) on loopback.

The wheel carries the real ``tritonserver`` binary, ``libtritonserver``, the python backend and
python-backend stubs per Python version; it is installed ``--no-deps`` with ``numpy<2`` into its
own venv (``.ci/run``: ``${LLORCH_REAL_HOME:-~/.cache/llorch-real}/triton-venv``). Two facts of
that wheel (reference/real-engines.md):

* the stub for the venv's Python must be copied into ``backends/python/`` (done here, once,
  idempotently: :func:`prepare_triton`);
* the venv's ``bin`` must come first on ``PATH`` so the stub finds numpy; without it every model
  fails with "No module named 'numpy'" and the server exits.

Models are python-backend LLM-like models shaped like Triton's vLLM backend
(:mod:`conformance.real._triton_model`, decoupled streaming through ``generate_stream``); the
repository written by :func:`write_triton_repo` has ``tiny`` (streams until EOS or
``max_tokens``) and ``tiny_fails`` (fails after 3 tokens, so errors inside a 200 stream are the
real server's bytes). Readiness is ``GET /v2/health/ready`` → 200 (3-5 s).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llorch_conformance.adapters.api import HarnessError

from ._proc import EngineProcess, EngineUnavailable, find_venv, free_port

__all__ = [
    "ENV_TRITON_VENV",
    "TRITON_MODELS",
    "TritonInstall",
    "TritonServer",
    "find_triton_venv",
    "prepare_triton",
    "write_triton_repo",
]

ENV_TRITON_VENV = "LLORCH_TRITON_VENV"

#: Models of the default repository: name → config parameters of the python model.
TRITON_MODELS: Mapping[str, Mapping[str, str]] = {
    "tiny": {"max_model_len": "4096", "token_delay_ms": "2", "eos_per_mille": "25"},
    "tiny_fails": {
        "max_model_len": "4096",
        "token_delay_ms": "2",
        "eos_per_mille": "0",
        "fail_after_tokens": "3",
    },
}

_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [
  {{ name: "text_input" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "stream" data_type: TYPE_BOOL dims: [ 1 ] optional: true }},
  {{ name: "sampling_parameters" data_type: TYPE_STRING dims: [ 1 ] optional: true }},
  {{ name: "exclude_input_in_output" data_type: TYPE_BOOL dims: [ 1 ] optional: true }},
  {{ name: "return_finish_reason" data_type: TYPE_BOOL dims: [ 1 ] optional: true }},
  {{ name: "return_cumulative_logprob" data_type: TYPE_BOOL dims: [ 1 ] optional: true }},
  {{ name: "return_num_input_tokens" data_type: TYPE_BOOL dims: [ 1 ] optional: true }},
  {{ name: "return_num_output_tokens" data_type: TYPE_BOOL dims: [ 1 ] optional: true }}
]
output [
  {{ name: "text_output" data_type: TYPE_STRING dims: [ -1 ] }},
  {{ name: "finish_reason" data_type: TYPE_STRING dims: [ -1 ] }},
  {{ name: "cumulative_logprob" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "num_input_tokens" data_type: TYPE_UINT32 dims: [ 1 ] }},
  {{ name: "num_output_tokens" data_type: TYPE_UINT32 dims: [ -1 ] }}
]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
{parameters}"""


def write_triton_repo(
    out_dir: str | Path, models: Mapping[str, Mapping[str, str]] = TRITON_MODELS
) -> Path:
    """Write a model repository (one python model per entry of ``models``); returns it."""
    repo = Path(out_dir)
    source = Path(__file__).with_name("_triton_model.py").read_text(encoding="utf-8")
    for name, params in models.items():
        if not name.replace("_", "").replace("-", "").isalnum():
            raise HarnessError(f"Triton model name {name!r} is not a plain name")
        d = repo / name
        (d / "1").mkdir(parents=True, exist_ok=True)
        (d / "1" / "model.py").write_text(source, encoding="utf-8")
        param_text = "".join(
            f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n'
            for k, v in params.items()
        )
        (d / "config.pbtxt").write_text(
            _CONFIG.format(name=name, parameters=param_text), encoding="utf-8"
        )
    return repo


def find_triton_venv(venv: str | Path | None = None) -> Path:
    """The pytriton venv: ``venv``, ``$LLORCH_TRITON_VENV``, then the cache's ``triton-venv``."""
    return find_venv(venv, ENV_TRITON_VENV, "triton-venv", "Triton (nvidia-pytriton)")


@dataclass(frozen=True, slots=True)
class TritonInstall:
    """Where the wheel's pieces are."""

    venv: Path
    binary: Path
    backends: Path


def prepare_triton(venv: str | Path | None = None) -> TritonInstall:
    """Find ``tritonserver`` in the venv and copy the python-backend stub into place if needed."""
    root = find_triton_venv(venv)
    found = sorted(root.glob("lib/python3*/site-packages/pytriton/tritonserver"))
    if not found:
        raise EngineUnavailable(f"{root} has no pytriton/tritonserver (nvidia-pytriton missing)")
    base = found[-1]
    pyver = base.parts[-4].removeprefix("python")  # lib/python3.11/site-packages/...
    binary = base / "bin" / "tritonserver"
    if not binary.is_file():
        raise EngineUnavailable(f"no tritonserver binary at {binary}")
    stub = base / "backends" / "python" / "triton_python_backend_stub"
    if not stub.exists():
        src = base / "python_backend_stubs" / pyver / "triton_python_backend_stub"
        if not src.is_file():
            raise EngineUnavailable(f"no python-backend stub for Python {pyver} at {src}")
        tmp = stub.with_name(stub.name + f".{os.getpid()}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, stub)  # atomic: parallel starts never see half a stub
    return TritonInstall(venv=root, binary=binary, backends=base / "backends")


class TritonServer(EngineProcess):
    """A running ``tritonserver`` serving a model repository (context manager, or start/stop).

    HTTP on ``port``; gRPC and metrics on their own free ports (``metrics_url`` serves the
    ``nv_*`` families, which are not on the HTTP port).
    """

    label = "tritonserver"
    ready_path = "/v2/health/ready"
    term_grace = 15.0

    def __init__(
        self,
        model_repository: str | Path,
        *,
        venv: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
    ) -> None:
        self.model_repository = Path(model_repository)
        super().__init__(
            host=host,
            port=port,
            log_path=log_path or self.model_repository.parent / "tritonserver.log",
        )
        self.install = prepare_triton(venv)
        self.grpc_port = 0
        self.metrics_port = 0

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def _pick_ports(self, retry: bool) -> None:
        super()._pick_ports(retry)
        ports = {self.port}
        for attr in ("grpc_port", "metrics_port"):
            p = free_port(self.host)
            while p in ports:
                p = free_port(self.host)
            ports.add(p)
            setattr(self, attr, p)

    def command(self) -> list[str]:
        return [
            str(self.install.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={self.install.backends}",
            f"--http-address={self.host}",
            "--http-port",
            str(self.port),
            f"--grpc-address={self.host}",
            "--grpc-port",
            str(self.grpc_port),
            "--metrics-port",
            str(self.metrics_port),
            "--allow-gpu-metrics=false",
            "--log-verbose=0",
        ]

    def environment(self) -> Mapping[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PATH"] = f"{self.install.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.install.venv)
        return env

    def start(self, timeout: float = 120.0) -> TritonServer:
        if not self.model_repository.is_dir():
            raise HarnessError(f"Triton model repository {self.model_repository} does not exist")
        return super().start(timeout)
