"""One engine process on loopback: spawn in its own session, wait for readiness, stop cleanly.

The one lifecycle of :class:`~conformance.real.LlamaServer`, :class:`~conformance.real.VllmServer`
and :class:`~conformance.real.TritonServer`: a subclass gives its command, environment, readiness
path, poll pace and stop grace (``LlamaServer`` also records every readiness answer through
:meth:`EngineProcess._observe`, the 503s it sees while loading). The choices:

* loopback only, ports picked by binding port 0 just before the start; when the engine still
  loses the race ("address already in use" in its log) the start is retried on new ports;
* the process runs in its own session, so :meth:`EngineProcess.stop` signals its whole process
  group (vLLM forks an engine core and a worker; Triton starts one stub per model instance):
  SIGTERM, a bounded wait, then SIGKILL — nothing is left behind and nothing else is touched;
* readiness is one HTTP GET answering 200, polled with a bounded deadline; an engine that exits
  while starting, or is not ready by the deadline, fails with one clear message naming it and
  the last lines of its log (stdout/stderr go to a log file, never to the test output).

Venues (where the engine's Python environment lives) are found by :func:`find_venv`: an
explicit path first, then one environment variable, then the shared cache folder
``${LLORCH_REAL_HOME:-~/.cache/llorch-real}/<name>``, which ``.ci/run`` installs into. Only this
harness layer reads those variables; adapters never do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

import httpx

from llorch_conformance._serving import StartStop
from llorch_conformance.adapters.api import HarnessError

__all__ = [
    "EngineProcess",
    "EngineUnavailable",
    "find_venv",
    "free_port",
    "real_home",
    "stop_process_group",
]

ENV_HOME = "LLORCH_REAL_HOME"


class EngineUnavailable(HarnessError):
    """An engine (binary, venv, backend stub) could not be found or cannot run here; ``str()``
    says why."""


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


def real_home() -> Path:
    """The cache folder shared by clones on one machine (``$LLORCH_REAL_HOME`` overrides)."""
    env = os.environ.get(ENV_HOME)
    return Path(env) if env else Path.home() / ".cache" / "llorch-real"


def find_venv(explicit: str | Path | None, env_var: str, name: str, what: str) -> Path:
    """The venv holding an engine: explicit path, ``$env_var``, then ``real_home()/name``.

    An explicit path that is not a venv is an error, not a reason to look elsewhere. Raises :class:`EngineUnavailable` naming every place looked at when none has a
    ``bin/python``.
    """
    if explicit is not None:  # an explicit choice is never second-guessed
        if (Path(explicit) / "bin" / "python").exists():
            return Path(explicit)
        raise EngineUnavailable(f"{what} venv {explicit} has no bin/python")
    tried: list[str] = []
    candidates: list[tuple[str, Path]] = []
    env = os.environ.get(env_var)
    if env:
        candidates.append((f"${env_var}", Path(env)))
    candidates.append(
        (f"${ENV_HOME}/{name}" if os.environ.get(ENV_HOME) else "cache", real_home() / name)
    )
    for label, path in candidates:
        if (path / "bin" / "python").exists():
            return path
        tried.append(f"{label} {path} has no bin/python")
    raise EngineUnavailable(
        f"no {what} venv: " + "; ".join(tried) + f" (.ci/run installs it; or set ${env_var})"
    )


class _Exited(Exception):
    pass


class EngineProcess(StartStop):
    """Base of the managed engines; subclasses give the command, env and readiness path."""

    #: Human name used in messages (``vLLM``, ``tritonserver``).
    label = "engine"
    #: The GET that answers 200 once the engine serves.
    ready_path = "/health"
    #: How long ``stop`` waits after SIGTERM before SIGKILL (seconds).
    term_grace = 20.0
    #: Readiness polling: the first pause, the longest pause, one probe's timeout (seconds).
    poll_first_s = 0.05
    poll_max_s = 0.5
    probe_timeout_s = 5.0
    #: Words in the exit message of a start that lost the race for its port (retried).
    port_race_words: tuple[str, ...] = ("address already in use", "bind")

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, log_path: Path | None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._t0 = 0.0
        #: Seconds from spawn to ready of the last successful start.
        self.start_seconds: float | None = None

    # -- subclass hooks -------------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> Mapping[str, str]:
        return dict(os.environ)

    def _pick_ports(self, retry: bool) -> None:
        if self.port == 0 or retry:
            self.port = free_port(self.host)

    def _secrets(self) -> Sequence[str]:
        return ()

    def _observe(self, t: float, status: int | None, body: bytes = b"") -> None:
        """One readiness probe's answer, ``t`` seconds after the spawn (``None``: refused)."""

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        text = "\n".join(lines[-n:])
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "****")
        return text

    def start(self, timeout: float = 600.0) -> Self:
        """Start and wait until ``ready_path`` answers 200 (bounded by ``timeout`` seconds)."""
        if self._proc is not None:
            return self
        if self.log_path is None:
            raise HarnessError(f"{self.label}: no log path")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        last_error = ""
        for attempt in range(3):
            self._pick_ports(attempt > 0)
            self._spawn()
            try:
                self._wait_ready(deadline, timeout)
                self.start_seconds = time.monotonic() - self._t0
                return self
            except _Exited as exc:
                last_error = str(exc)
                self._reap()
                low = last_error.lower()
                if not any(word in low for word in self.port_race_words):
                    break
            except BaseException:
                self._reap()
                raise
        raise HarnessError(f"{self.label} did not start: {last_error}")

    def _spawn(self) -> None:
        assert self.log_path is not None
        self._log_file = self.log_path.open("ab")
        self._t0 = time.monotonic()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=dict(self.environment()),
            start_new_session=True,
        )

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        with httpx.Client(timeout=self.probe_timeout_s, trust_env=False) as client:
            delay = self.poll_first_s
            while True:
                rc = proc.poll()
                if rc is not None:
                    raise _Exited(f"exited with status {rc}; log tail:\n{self.log_tail()}")
                t = time.monotonic() - self._t0
                try:
                    r = client.get(f"{self.base_url}{self.ready_path}")
                    self._observe(t, r.status_code, r.content)
                    if r.status_code == 200:
                        return
                except httpx.TransportError:
                    self._observe(t, None)
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"{self.label} at {self.base_url} not ready after {timeout:.0f} s "
                        f"(GET {self.ready_path} never answered 200); log tail:\n{self.log_tail()}"
                    )
                time.sleep(delay)  # polling a child process: there is no event to wait on
                delay = min(self.poll_max_s, delay * 1.5)

    def _reap(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None:
            stop_process_group(proc, grace=self.term_grace)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> int | None:
        """Stop the engine's process group (SIGTERM, bounded wait, SIGKILL); its exit status."""
        proc = self._proc
        self._reap()
        return proc.returncode if proc is not None else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} pid={self.pid}>"
