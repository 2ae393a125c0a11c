"""Forked workers for ``llorch-conformance run``: collect once, then fork N children that run it.

Why not only pytest-xdist: every xdist worker is a fresh interpreter that imports pytest, the
suite and its dependencies and collects all the features again before it runs a scenario —
about a second of CPU per worker, paid on every run. On a 2-core machine that start-up was the
larger part of a one-adapter run, whose ~150 scenarios take a few seconds and mostly wait
(Retry-After, stalls, servers starting). A forked child starts with the parent's imports and
collected items already in memory, so it runs its first scenario within milliseconds, and more
workers than cores cost nothing but the scenarios' own CPU.

How it works (the shape of xdist's ``DSession``, with ``os.fork`` in place of execnet):

* the parent collects the session as a plain pytest run does, then :meth:`ForkPool.pytest_runtestloop`
  replaces pytest's loop: it forks the children and hands out item indices one at a time from one
  queue, the longest expected first (work-stealing by construction: a child asks for its next
  item only when it is about to need it);
* each child runs ``pytest_runtest_protocol`` for its item. The ``nextitem`` it passes is
  resolved only when pytest's teardown asks for it (:class:`_NextItem`): the child then asks the
  parent for its next item, so module- and session-scoped fixtures are kept or torn down exactly
  as in a serial run, and no item is promised to a child before that child is free;
* every report goes back serialised with pytest's own ``pytest_report_to_serializable``;
* the parent replays each report through ``pytest_runtest_logreport``: the plugin folds the
  verdicts, the progress line counts, ``--maxfail`` stops the hand-out — the controller side of
  an xdist run, unchanged;
* a child that dies mid-scenario makes that scenario a harness ``error`` naming the signal or
  exit code (its phases not yet reported are built in the parent, through the plugin's own
  ``pytest_runtest_makereport``, so the scenario is never lost from the results), and is
  replaced.

Forking is only safe from a single-threaded process: :func:`fork_safe` says whether this one is,
and when it is not the pool steps aside and pytest runs the items itself, serially (the runner
forks only where ``os.fork`` exists, and ``--parallel xdist`` still uses pytest-xdist).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import struct
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ForkPool", "fork_safe"]

_HEAD = struct.Struct("!I")
_NO_MORE = -1


def fork_safe() -> bool:
    """Can this process fork workers: a POSIX ``fork`` and no thread but the main one."""
    return hasattr(os, "fork") and sys.platform != "win32" and threading.active_count() == 1


# -- framing: a 4-byte length, then a JSON document -------------------------------------------
def _send(fd: int, obj: Any) -> None:
    data = json.dumps(obj, separators=(",", ":"), default=str).encode("utf-8")
    view = memoryview(_HEAD.pack(len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        b = os.read(fd, n)
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _recv(fd: int) -> Any:
    head = _read_exact(fd, _HEAD.size)
    if head is None:
        return None
    body = _read_exact(fd, _HEAD.unpack(head)[0])
    return None if body is None else json.loads(body)


@dataclass
class _Child:
    """The parent's view of one forked worker."""

    index: int
    pid: int
    to_child: int
    from_child: int
    given: int | None = None  # handed out, not finished
    running: int | None = None  # started, not finished
    phases: set[str] = field(default_factory=set)  # reported phases of ``running``
    done: bool = False  # told there is nothing more
    finished: int = 0  # items it ran to the end
    buffer: bytearray = field(default_factory=bytearray)
    crash_text: str = ""


class ForkPool:
    """pytest plugin: run the collected items in ``workers`` forked children."""

    def __init__(
        self,
        workers: int,
        parent_only: tuple[object, ...] = (),
        expected_s: Callable[[pytest.Item], float] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        # plugins that must see reports only in the parent (a progress line printed by every
        # child would count each scenario twice)
        self.parent_only = parent_only
        # how long an item is expected to take: the longest start first (a 1 s Retry-After
        # scenario handed out last would end the run 1 s after everything else)
        self.expected_s = expected_s
        self._basetemp: Path | None = None
        self._queue: deque[int] = deque()
        self._children: dict[int, _Child] = {}  # by the fd the parent reads
        self._stopping = False
        self._spawned = 0
        self._barren = 0  # workers in a row that died before finishing any item

    # -- parent -----------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            return None  # pytest's own loop reports the collection errors
        if session.config.option.collectonly or not session.items:
            return None
        if not fork_safe():
            return None  # threads running: a serial run, never a forked copy of a held lock
        self._queue = deque(self._order(session.items))
        self._prepare_basetemp(session.config)
        sel = selectors.DefaultSelector()
        try:
            for _ in range(min(self.workers, len(session.items))):
                self._spawn(session, sel)
            while self._children:
                for key, _ in sel.select():
                    self._on_readable(session, sel, key.data)
                if session.shouldfail or session.shouldstop:
                    self._stopping = True
        except BaseException:
            self._kill_all()
            raise
        finally:
            sel.close()
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def _order(self, items: list[pytest.Item]) -> list[int]:
        """Longest expected first (stable: equal ones keep the collection order)."""
        if self.expected_s is None:
            return list(range(len(items)))
        hint = self.expected_s
        return sorted(range(len(items)), key=lambda i: -hint(items[i]))

    def _prepare_basetemp(self, config: pytest.Config) -> None:
        """Create the session's base temporary directory once; each child takes a subdirectory
        (two children numbering ``tmp_path`` directories in one folder would race)."""
        factory = getattr(config, "_tmp_path_factory", None)
        self._basetemp = factory.getbasetemp() if factory is not None else None

    def _spawn(self, session: pytest.Session, sel: selectors.BaseSelector) -> None:
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        index = self._spawned
        self._spawned += 1
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(down_w)
            os.close(up_r)
            code = 1
            try:
                for other in self._children.values():  # the other children's pipes
                    os.close(other.to_child)
                    os.close(other.from_child)
                for plugin in self.parent_only:
                    session.config.pluginmanager.unregister(plugin)
                _Worker(session, index, down_r, up_w, self._basetemp).run()
                code = 0
            except BaseException:
                with contextlib.suppress(OSError):
                    _send(up_w, {"kind": "crash", "error": traceback.format_exc()[-4000:]})
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        child = _Child(index, pid, down_w, up_r)
        self._children[up_r] = child
        sel.register(up_r, selectors.EVENT_READ, child)

    def _hand_out(self, child: _Child) -> None:
        """Answer a child's request: its next item, or ``-1`` (nothing more)."""
        if self._queue and not self._stopping:
            child.given = self._queue.popleft()
            answer = child.given
        else:
            child.done = True
            answer = _NO_MORE
        with contextlib.suppress(OSError):  # it died: the read side sees EOF and handles it
            _send(child.to_child, answer)

    def _on_readable(
        self, session: pytest.Session, sel: selectors.BaseSelector, child: _Child
    ) -> None:
        try:
            chunk = os.read(child.from_child, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self._on_exit(session, sel, child)
            return
        child.buffer += chunk
        while len(child.buffer) >= _HEAD.size:
            (n,) = _HEAD.unpack_from(child.buffer)
            if len(child.buffer) < _HEAD.size + n:
                break
            msg = json.loads(bytes(child.buffer[_HEAD.size : _HEAD.size + n]))
            del child.buffer[: _HEAD.size + n]
            self._on_message(session, child, msg)

    def _on_message(self, session: pytest.Session, child: _Child, msg: dict[str, Any]) -> None:
        kind = msg.get("kind")
        hook = session.config.hook
        if kind == "next":
            self._hand_out(child)
        elif kind == "start":
            child.running = int(msg["index"])
            child.phases = set()
            item = session.items[child.running]
            hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        elif kind == "report":
            report = hook.pytest_report_from_serializable(config=session.config, data=msg["data"])
            child.phases.add(str(getattr(report, "when", "")))
            hook.pytest_runtest_logreport(report=report)
        elif kind == "finish":
            idx = int(msg["index"])
            item = session.items[idx]
            hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            child.running = None
            child.finished += 1
            self._barren = 0
            if child.given == idx:
                child.given = None
        elif kind == "crash":
            child.crash_text = str(msg.get("error", ""))

    def _on_exit(self, session: pytest.Session, sel: selectors.BaseSelector, child: _Child) -> None:
        sel.unregister(child.from_child)
        del self._children[child.from_child]
        _close_pipes(child)
        _, status = os.waitpid(child.pid, 0)
        running, given = child.running, child.given
        if given is not None and given != running:
            self._queue.appendleft(given)  # handed out, never started: someone else's now
        if running is not None:
            self._report_crash(session.items[running], child, status)
        clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and child.done
        if clean:
            return
        if not child.finished and running is None:
            self._barren += 1
            if self._barren >= max(3, self.workers):  # not one scenario's doing: the workers'
                raise RuntimeError(
                    f"forked workers die before running a scenario ({self._barren} in a row, "
                    f"last {_how(status)}): {_last_line(child.crash_text) or 'no message'}; "
                    "--parallel xdist or -j 1 runs without forking"
                )
        if self._queue and not self._stopping:
            self._spawn(session, sel)  # a replacement, so the run still ends

    def _report_crash(self, item: pytest.Item, child: _Child, status: int) -> None:
        """The phases of ``item`` the dead child did not report, as a harness error of it."""
        from llorch_conformance.adapters.api import HarnessError

        text = _last_line(child.crash_text)
        why = f"the worker process running this scenario died ({_how(status)})" + (
            f": {text}" if text else ""
        )

        def died() -> None:
            raise HarnessError(why)

        hook = item.ihook
        missing = [w for w in ("setup", "call", "teardown") if w not in child.phases]
        for when in missing:
            if when == "call" and "setup" in missing:
                continue  # a failed setup has no call phase
            fails = when != "teardown" or missing == ["teardown"]
            call = pytest.CallInfo.from_call(died if fails else lambda: None, when=when)  # type: ignore[arg-type]
            report = hook.pytest_runtest_makereport(item=item, call=call)
            hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    def _kill_all(self) -> None:
        for child in list(self._children.values()):
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(child.pid, 0)
            _close_pipes(child)
        self._children.clear()


def _close_pipes(child: _Child) -> None:
    for fd in (child.to_child, child.from_child):
        with contextlib.suppress(OSError):
            os.close(fd)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _die_with_parent() -> None:
    """On Linux, ask the kernel to kill this worker when the parent dies (a parent killed by a
    CI timeout must not leave workers running a hung scenario); elsewhere a worker ends when
    it next asks for work and finds the pipe closed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


class _NextItem:
    """The ``nextitem`` a child passes to ``pytest_runtest_protocol``, asked of the parent only
    when pytest's teardown needs it (``teardown_exact`` tests its truth, then its
    ``listchain()``): a child is never promised an item before it is free to run it."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self.index: int | None = None  # None: not asked yet

    def resolve(self) -> int:
        if self.index is None:
            self.index = self._worker.ask()
        return self.index

    def __bool__(self) -> bool:
        return self.resolve() != _NO_MORE

    def listchain(self) -> list[Any]:
        idx = self.resolve()
        return [] if idx == _NO_MORE else self._worker.session.items[idx].listchain()


class _Worker:
    """The child side: run the items the parent hands out, send the reports back."""

    def __init__(
        self, session: pytest.Session, index: int, rfd: int, wfd: int, basetemp: Path | None
    ) -> None:
        self.session = session
        self.index = index
        self.rfd = rfd
        self.wfd = wfd
        config = session.config
        # ^C is the parent's to handle (it stops the hand-out and kills the workers); a worker
        # that took it itself would end its scenario with a half-written report
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent()
        config.option.maxfail = 0  # the parent counts failures and stops the hand-out
        factory = getattr(config, "_tmp_path_factory", None)
        if factory is not None and basetemp is not None:
            factory._given_basetemp = basetemp / f"fork{index}"
            factory._basetemp = None
        config.pluginmanager.register(self, f"llorch-fork-worker-{index}")

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        config = self.session.config
        data = config.hook.pytest_report_to_serializable(config=config, report=report)
        _send(self.wfd, {"kind": "report", "data": data})

    def ask(self) -> int:
        """The parent's answer to "my next item?" (``-1``: none; also when the parent is gone)."""
        _send(self.wfd, {"kind": "next"})
        answer = _recv(self.rfd)
        return int(answer) if answer is not None else _NO_MORE

    def run(self) -> None:
        items = self.session.items
        current = self.ask()
        while current != _NO_MORE:
            nxt = _NextItem(self)
            _send(self.wfd, {"kind": "start", "index": current})
            items[current].config.hook.pytest_runtest_protocol(item=items[current], nextitem=nxt)
            _send(self.wfd, {"kind": "finish", "index": current})
            current = nxt.resolve()
