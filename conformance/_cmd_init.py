"""``llorch-conformance init NAME --dialect D``: scaffold a vendor adapter package that runs at once.

What it writes (``NAME/``, refused when it exists and is not empty)::

    pyproject.toml             the distribution NAME, its entry point in llorch_conformance.adapters
    <pkg>/__init__.py          __version__ (what runs report as the adapter's version)
    <pkg>/adapter.py           the factory ``make`` and an adapter skeleton full of TODOs
    tests/test_conformance.py  runs the suite against the adapter (fails until the TODOs are done)
    README.md                  the three commands to run it

Decisions:

* the skeleton *runs*: every method returns a well-formed value (a stream is ``started`` then one
  terminal ``error``), so the first ``run`` is a list of failures (exit 1), never a harness
  error (exit 2) — the failures are the to-do list;
* each TODO names the requirement IDs that fail until it is done, taken from the packaged
  feature tags of the adapter scope for that dialect (the areas a part of the adapter is judged
  by), so the names cannot drift from what a run reports;
* ``run --adapter <pkg>.adapter:make --dialect D`` works from the package's folder without
  ``pip install``: ``run`` imports a vendor module from the current directory when it is not
  installed (as ``python -m`` would); after ``pip install -e .`` the entry point name works too.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

__all__ = ["register", "todo_ids"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

#: The parts of an adapter (one TODO each) and the feature areas that judge them.
_PARTS: dict[str, tuple[str, ...]] = {
    "config": ("security", "errors"),
    "health": ("contract", "engines"),
    "submit": ("stream", "oracle", "determinism", "engines", "errors"),
    "cancel": ("cancel",),
    "logs": ("observability",),
}


def todo_ids(dialect: str) -> dict[str, list[str]]:
    """Part → the requirement IDs whose adapter-scope scenarios (for ``dialect``) judge it."""
    from ._catalogue import ID_PATTERN
    from ._cmd_explain import packaged_scenarios
    from ._guide import scope_of_area

    out: dict[str, list[str]] = {part: [] for part in _PARTS}
    for sc in packaged_scenarios():
        if scope_of_area(sc.area) != "adapter":
            continue
        wanted = {t.split(":", 1)[1] for t in sc.tags if t.startswith("dialect:")}
        if wanted and dialect not in wanted:
            continue
        ids = [t for t in sc.tags if ID_PATTERN.match(t)]
        for part, areas in _PARTS.items():
            if sc.area in areas:
                out[part].extend(i for i in ids if i not in out[part])
    return {part: sorted(ids) for part, ids in out.items()}


def register(sub: Any) -> None:
    from ._targets import KNOWN_DIALECTS

    p: argparse.ArgumentParser = sub.add_parser(
        "init",
        help="scaffold an adapter package (factory, entry point, a test running the suite)",
        description="Write NAME/: a Python package with an adapter factory for DIALECT, its "
        "entry point, a test that runs the suite and a README. It runs under 'run' at once "
        "(from its folder, without pip install) and fails; each TODO names the requirement IDs "
        "that fail until it is done.",
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="the distribution name (letters, digits, '-', '_'); the package is NAME with "
        "'-' → '_'",
    )
    p.add_argument(
        "--dialect",
        required=True,
        choices=KNOWN_DIALECTS,
        help="the engine API the adapter speaks",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("."),
        metavar="PARENT",
        help="where NAME/ is created (default: the current directory)",
    )
    p.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from llorch_conformance.adapters.api import UsageError

    from . import __version__

    name = str(args.name)
    if not _NAME.match(name):
        raise UsageError(
            f"init: {name[:60]!r} is not a package name (a letter, then letters, digits, '-', '_')"
        )
    pkg = name.replace("-", "_").lower()
    if pkg in {"llorch_conformance", "tests"}:
        raise UsageError(f"init: {name!r} would shadow a package of llorch-conformance")
    dest = Path(args.dir) / name
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"init: {dest} exists and is not empty; pick another NAME or --dir")
    todos = todo_ids(args.dialect)
    files = {
        "pyproject.toml": _PYPROJECT.format(name=name, pkg=pkg, version=__version__),
        f"{pkg}/__init__.py": _INIT.format(name=name),
        f"{pkg}/adapter.py": _adapter_source(pkg, args.dialect, todos),
        "tests/test_conformance.py": _TEST.format(pkg=pkg, dialect=args.dialect),
        "README.md": _README.format(name=name, pkg=pkg, dialect=args.dialect),
    }
    try:
        for rel, text in files.items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, "utf-8")
    except OSError as exc:
        raise UsageError(f"init: cannot write {dest}: {exc}") from None
    n_ids = len({i for ids in todos.values() for i in ids})
    print(f"created {dest}/ ({len(files)} files; {n_ids} requirement IDs named by its TODOs)")
    print(f"next:  cd {dest} && llorch-conformance run --adapter {pkg}.adapter:make --dialect "
          f"{args.dialect}")  # fmt: skip
    print(f"       llorch-conformance explain ID   (for each ID a TODO in {pkg}/adapter.py names)")
    return 0


def _wrap_ids(ids: list[str], indent: str) -> str:
    lines: list[str] = []
    line = ""
    for i in ids:
        if len(line) + len(i) + 2 > 76:
            lines.append(line.rstrip())
            line = ""
        line += i + ", "
    if line:
        lines.append(line.rstrip(", "))
    return "\n".join(f"{indent}#   {x}" for x in lines) if lines else f"{indent}#   (none)"


def _adapter_source(pkg: str, dialect: str, todos: dict[str, list[str]]) -> str:
    def todo(part: str, indent: str) -> str:
        return f"{indent}# TODO({part}): until done, these fail:\n" + _wrap_ids(todos[part], indent)

    return _ADAPTER.format(
        pkg=pkg,
        dialect=dialect,
        todo_config=todo("config", "        "),
        todo_health=todo("health", "        "),
        todo_submit=todo("submit", "        "),
        todo_cancel=todo("cancel", "        "),
        todo_logs=todo("logs", "        "),
    )


_PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "A WorkerAdapter for llama-orch, checked with llorch-conformance"
requires-python = ">=3.11"
dependencies = ["llorch-conformance>={version}", "httpx>=0.27"]

[project.optional-dependencies]
test = ["pytest>=8"]

# `llorch-conformance run --adapter {name}` finds the factory here once installed.
[project.entry-points."llorch_conformance.adapters"]
{name} = "{pkg}.adapter:make"

[tool.setuptools.packages.find]
include = ["{pkg}*"]
"""

_INIT = '''"""{name}: a WorkerAdapter (see {name}/adapter.py)."""

__version__ = "0.1.0"
'''

_ADAPTER = '''"""The {dialect} adapter of this package: ``make(base_url, **config)`` is the factory.

The whole contract: llorch-conformance's docs/writing-an-adapter.md. Each TODO below names the
requirement IDs that fail until it is done; ``llorch-conformance explain ID`` says how to meet
one, ``llorch-conformance run --adapter {pkg}.adapter:make --dialect {dialect} --lf`` reruns
what failed last time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from llorch_conformance.adapters.api import (
    Capabilities,
    TaskRequest,
    TokenEvent,
    WorkerError,
    WorkerErrorKind,
    WorkerHealth,
    WorkerProps,
)
from llorch_conformance.adapters.http_util import HttpClientConfig, RetryPolicy, build_client

__all__ = ["Adapter", "make"]

_LOG = logging.getLogger("{pkg}")
ENGINE = "{dialect}"


class Adapter:
    """One engine replica, reached over HTTP at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        http: HttpClientConfig | None = None,
        retry: RetryPolicy | None = None,
        model: str | None = None,
        api_key: str | None = None,
        pool_id: str = "default",
        replica_id: str = "r0",
        **_: Any,
    ) -> None:
{todo_config}
        #   Build every client from `http` (timeouts, TLS CA, no environment proxies) and retry
        #   what may be retried with `retry` (capped, jittered, seeded).
        self.base_url = base_url.rstrip("/")
        self.http = http or HttpClientConfig()
        self.retry = retry or RetryPolicy()
        self.model = model
        self.api_key = api_key
        self.pool_id = pool_id
        self.replica_id = replica_id
        self.client = build_client(self.http)

    async def health(self) -> WorkerHealth:
{todo_health}
        #   Ask the engine (health, props/slots, version) instead of answering blind.
        return WorkerHealth(live=True, ready=False)

    async def props(self) -> WorkerProps:
        return WorkerProps(slots_total=None, slots_free=None)

    async def capabilities(self) -> Capabilities:
        return Capabilities(engine=ENGINE, engine_version=await self.engine_version())

    async def engine_version(self) -> str:
        return "unknown"

    async def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
{todo_submit}
        #   Send the task to the engine; yield started, one token event per engine step
        #   ({{"t": text, "i": 0, 1, ...}}), then end (tokens_out, decode_time_ms, stop_reason) —
        #   or one error event with the taxonomy's code.
{todo_logs}
        #   Log completion with job_id, session_id, engine, engine_version, pool_id, replica_id,
        #   tokens_in, tokens_out, decode_time_ms as the record's extras.
        yield TokenEvent.started(
            engine=ENGINE,
            engine_version=await self.engine_version(),
            seed=request.seed,
            sampler_profile_version=request.sampler_profile_version,
        )
        yield TokenEvent.error(WorkerError(WorkerErrorKind.ADAPTER, "not implemented yet"))

    async def cancel(self, task_id: str) -> None:
{todo_cancel}
        #   Close the task's upstream response (and call the engine's cancel API if it has one).
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


def make(base_url: str, **config: Any) -> Adapter:
    """The factory the suite calls: ``(base_url, **config) -> WorkerAdapter``."""
    return Adapter(base_url, **config)


make.dialect = ENGINE  # type: ignore[attr-defined]  # so `run --adapter NAME` needs no --dialect
'''

_TEST = '''"""Runs the conformance suite against this package's adapter (fails until the TODOs are done)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def test_the_adapter_passes_the_conformance_suite() -> None:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, "-m", "llorch_conformance.conformance.cli", "run",
             "--adapter", "{pkg}.adapter:make", "--dialect", "{dialect}",
             "--out", out, "--no-progress"],
            cwd=HERE, capture_output=True, text=True, check=False,
            env={{**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
'''

_README = """# {name}

A llama-orch WorkerAdapter for the `{dialect}` engine API, checked with llorch-conformance.

```bash
llorch-conformance run --adapter {pkg}.adapter:make --dialect {dialect}   # from this folder
llorch-conformance run --adapter {pkg}.adapter:make --dialect {dialect} --lf   # rerun failures
llorch-conformance explain WA-INT-3001                                  # what an ID needs
pip install -e '.[test]' && pytest                                      # the suite as a test
llorch-conformance run --adapter {name}                                 # once installed
```

Start with the TODOs in `{pkg}/adapter.py`: each names the requirement IDs that fail until it is
done.
"""
