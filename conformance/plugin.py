"""The light pytest plugin of llorch-conformance (entry point ``pytest11`` ``conformance.plugin``).

Installing the package loads this module into every pytest run, so it keeps two promises
(the habit of Hypothesis's ``_hypothesis_pytestplugin``):

* importing it is cheap — only pytest and the pure-data catalogue; the step library, adapters,
  starlette/uvicorn and the mock engines are imported when the suite is used;
* it does nothing unless asked — it *activates* when a ``--llorch-*`` option is given or when a
  feature file of the suite is collected (a scenario carrying a catalogue requirement tag).
  Until then it only registers its marker names (so ``--strict-markers`` runs stay valid) and
  declines every hook.

What it does when active:

* feature tags: ``@<REQ-ID>`` → ``llorch_requirement`` mark; ``@per-run``, ``@dialect:<d>`` and
  ``@needs:<capability>`` → ``llorch_tag`` marks (never raw ``pytest.mark.<tag>``, which
  ``--strict-markers`` would refuse);
* targets: every scenario is parametrised over the selected adapters (``llorch_target``), or run
  once for ``@per-run`` scenarios; ``@dialect:`` scenarios run only on targets of that dialect;
  ``--llorch-orchestrator-url`` replaces the adapters by one black-box orchestrator target (the
  step library reports what it cannot control there as unsupported);
* status per scenario — pass, fail (``ConformanceFailure`` or ``AssertionError`` in a step),
  unsupported (:class:`Unsupported`), skipped, error (anything else) — with the failing
  requirement IDs and evidence, carried in ``report.user_properties`` so it survives
  pytest-xdist; the controller folds them into :class:`conformance.RunResults` and writes
  ``--llorch-results``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _pytest.outcomes import Skipped

from ._catalogue import ID_PATTERN, Level, get_requirement, is_known
from ._options import add_pytest_options, options_used

__all__ = [
    "NOT_APPLICABLE",
    "PER_RUN",
    "Unsupported",
    "observed_failure",
    "raised_by_adapter",
    "suite_module_path",
]

_PROP = "llorch"
_STEPS_PLUGIN = "llorch_conformance.steps._plugin"


class Unsupported(Skipped):
    """Raised (from the step library) when a scenario cannot apply to the target.

    It is a pytest skip, so a vendor's own pytest shows it as skipped with the reason, but the
    plugin reports it as ``unsupported``: the declaration (or the live-engine limitation) is the
    evidence, and it never counts as support.
    """

    def __init__(self, reason: str, *, declared: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(msg=f"unsupported: {reason}", pytrace=False)
        #: the adapter's declarations (``Capabilities.declared_unsupported``) that made the
        #: scenario unsupported; empty for black-box limits (live engine, orchestrator). The
        #: fold judges them by the declaration table (``conformance._declarations``).
        self.declared = tuple(declared)


class _RunOnce:
    """The parameter of ``@per-run`` scenarios (they are not per adapter)."""

    name = "*"
    dialect = None

    def __repr__(self) -> str:
        return "PER_RUN"


class _NotApplicable:
    """The parameter of ``@dialect:`` scenarios when no selected target speaks that dialect."""

    name = "-"
    dialect = None

    def __init__(self, dialects: tuple[str, ...]) -> None:
        self.dialects = dialects

    def __repr__(self) -> str:
        return f"NOT_APPLICABLE({', '.join(self.dialects)})"


PER_RUN = _RunOnce()
NOT_APPLICABLE = _NotApplicable


@dataclass
class _State:
    """Per-config state of an active plugin."""

    config: pytest.Config
    seed: int
    level: str
    requirements: tuple[str, ...]
    run_id: str
    targets: list[Any] = field(default_factory=list)  # conformance._targets.Target
    target_error: str | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )


_STATE = pytest.StashKey[_State]()
_CONFIGS: list[pytest.Config] = []


def suite_module_path() -> Path:
    """Path of the module that binds the packaged features (``steps/_suite.py``)."""
    from importlib.resources import files

    return Path(str(files("llorch_conformance.steps") / "_suite.py"))


# -- options -------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("llorch", "llorch-conformance (worker-adapter conformance suite)")
    g.addoption(
        "--llorch-suite", action="store_true", help="collect the packaged conformance suite"
    )
    add_pytest_options(g)  # --llorch-adapter ... --llorch-seed: the CLI's run options, one table
    g.addoption("--llorch-results", metavar="PATH", help="write results.json here")
    g.addoption("--llorch-run-id", metavar="ID", help=argparse.SUPPRESS)


def _options_used(config: pytest.Config) -> bool:
    """Any ``--llorch-*`` option given: the plugin activates."""
    opt = config.option
    return bool(opt.llorch_suite or opt.llorch_results or options_used(opt))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "llorch_requirement(rid): scenario proves this catalogue requirement"
    )
    config.addinivalue_line(
        "markers", "llorch_tag(name): llorch-conformance scenario tag (per-run, dialect:, needs:)"
    )
    _CONFIGS.append(config)
    if _options_used(config):
        _activate(config)
        if config.option.llorch_suite:
            suite = str(suite_module_path())
            explicit = config.args_source == pytest.Config.ArgsSource.ARGS
            config.args = [*config.args, suite] if explicit else [suite]


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _CONFIGS:
        _CONFIGS.remove(config)


def _activate(config: pytest.Config) -> _State:
    state = config.stash.get(_STATE, None)
    if state is not None:
        return state
    opt = config.option
    seed = (
        opt.llorch_seed if opt.llorch_seed is not None else int(os.environ.get("LLORCH_SEED", "0"))
    )
    run_id = (
        opt.llorch_run_id
        or os.environ.get("LLORCH_RUN_ID")
        or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    )
    state = _State(config, seed, opt.llorch_level, tuple(opt.llorch_requirement), run_id)
    for rid in state.requirements:
        if not is_known(rid):
            raise pytest.UsageError(f"--llorch-requirement {rid!r}: not a catalogue ID")
    config.stash[_STATE] = state
    from llorch_conformance.adapters.api import UsageError

    from ._targets import resolve_targets

    only = tuple(x for x in (opt.llorch_only or "").split(",") if x)
    try:
        state.targets = resolve_targets(
            adapter=opt.llorch_adapter,
            dialect=opt.llorch_dialect,
            engine_url=opt.llorch_engine_url,
            only=only,
            orchestrator_url=opt.llorch_orchestrator_url,
            orchestrator_pool=opt.llorch_orchestrator_pool,
            orchestrator_token_env=opt.llorch_orchestrator_token_env,
            # the controller probes; xdist workers trust it (one probe per run, not per worker)
            probe=not hasattr(config, "workerinput"),
            adapter_name=opt.llorch_adapter_name,
            adapter_version=opt.llorch_adapter_version,
        )
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    _register_steps(config.pluginmanager)
    return state


def _register_steps(pm: pytest.PytestPluginManager) -> None:
    """Register the step library (``steps._plugin``, then its ``STEP_PLUGINS`` in order) as
    ``-p``/``pytest_plugins`` would — a blocked (``-p no:NAME``) or registered name is left
    alone — except that pytest does not mark these modules for assertion rewriting.

    Why: a verdict of the step library is a ``ConformanceFailure`` raised by
    ``ScenarioContext.check``, never a bare ``assert``, so rewriting its ~20 modules changed no
    message and cost each session ~0.1 s where bytecode is not cached (``PYTHONDONTWRITEBYTECODE``,
    a read-only install): pytest reads, rewrites and compiles every marked module itself.
    The modules are imported by name: ``conformance`` never imports ``steps`` (an import
    contract); the steps plugin is what the suite uses when it runs.
    """
    import importlib

    if pm.is_blocked(_STEPS_PLUGIN) or pm.get_plugin(_STEPS_PLUGIN) is not None:
        return
    steps = importlib.import_module(_STEPS_PLUGIN)
    pm.register(steps, _STEPS_PLUGIN)
    for name in getattr(steps, "STEP_PLUGINS", ()):
        if not pm.is_blocked(name) and pm.get_plugin(name) is None:
            pm.register(importlib.import_module(name), name)


def active_state(config: pytest.Config) -> _State | None:
    """The plugin state of ``config`` when active (used by the step library)."""
    return config.stash.get(_STATE, None)


# -- feature tags --------------------------------------------------------------------------
_PLAIN_TAGS = frozenset({"per-run", "black-box"})


def _is_our_tag(tag: str) -> bool:
    return (
        bool(ID_PATTERN.match(tag)) or tag in _PLAIN_TAGS or tag.startswith(("dialect:", "needs:"))
    )


@pytest.hookimpl(tryfirst=True)
def pytest_bdd_apply_tag(tag: str, function: Any) -> Any:
    """Our tags become our marks; others fall through to pytest-bdd (``tryfirst``: the hook is
    firstresult and pytest-bdd's own implementation would otherwise win when ``-p`` loads us
    first)."""
    if not _is_our_tag(tag):
        return None
    if _CONFIGS:
        _activate(_CONFIGS[-1])
    if ID_PATTERN.match(tag):
        mark = pytest.mark.llorch_requirement(tag)
    else:
        mark = pytest.mark.llorch_tag(tag)
    marked = mark(function)
    existing = getattr(marked, "pytestmark", [])
    if not any(m.name == "usefixtures" and "llorch_ctx" in m.args for m in existing):
        marked = pytest.mark.usefixtures("llorch_target", "llorch_ctx")(marked)
    return marked


def item_requirements(item: pytest.Item) -> list[str]:
    seen: list[str] = []
    for m in item.iter_markers("llorch_requirement"):
        if m.args and m.args[0] not in seen:
            seen.append(str(m.args[0]))
    return sorted(seen)


def item_tags(item: pytest.Item | pytest.Function | Any) -> set[str]:
    return {str(m.args[0]) for m in item.iter_markers("llorch_tag") if m.args}


# -- collection ----------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "llorch_target" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash.get(_STATE, None)
    if state is None:
        return
    tags = {str(m.args[0]) for m in metafunc.definition.iter_markers("llorch_tag") if m.args}
    if "per-run" in tags:
        metafunc.parametrize("llorch_target", [PER_RUN], ids=["run"])
        return
    dialects = tuple(sorted(t.split(":", 1)[1] for t in tags if t.startswith("dialect:")))
    targets = [t for t in state.targets if not dialects or t.dialect in dialects]
    if not targets:
        metafunc.parametrize("llorch_target", [_NotApplicable(dialects)], ids=["n/a"])
        return
    metafunc.parametrize("llorch_target", targets, ids=[t.name for t in targets])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    levels = {Level.MUST} if state.level == "must" else {Level.MUST, Level.SHOULD, Level.MAY}
    scope = _scope(config)
    for item in items:
        ours = "llorch_target" in getattr(item, "fixturenames", ())
        if ours and scope != "all" and not _in_scope(item, scope):
            drop.append(item)
            continue
        reqs = item_requirements(item)
        if not reqs:
            keep.append(item)
            continue
        known = [get_requirement(r) for r in reqs if is_known(r)]
        if (state.requirements and not set(reqs) & set(state.requirements)) or (
            known and not any(r.level in levels for r in known)
        ):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _scope(config: pytest.Config) -> str:
    """``--llorch-scope``, else the vendor default: a vendor adapter (or a live engine) is judged
    on the adapter's scenarios, without the suite's self-checks; anything else on all."""
    opt = config.option
    if opt.llorch_scope is not None:
        return str(opt.llorch_scope)
    return "adapter" if opt.llorch_adapter or opt.llorch_engine_url else "all"


def _in_scope(item: pytest.Item, scope: str) -> bool:
    """Whether ``item`` belongs to ``scope`` (its feature area, conformance._guide.AREA_SCOPE).

    A narrowed scope also leaves out ``@dialect:`` scenarios no selected target speaks: they
    would only be rows of skips under a pseudo-adapter ``-``.
    """
    from ._guide import area_of, scope_of_area

    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("llorch_target"), _NotApplicable):
        return False
    return scope_of_area(area_of(_feature_path(item))) == scope


def _feature_path(item: pytest.Item) -> str:
    """The ``.feature`` file of a pytest-bdd item ('' when unknown); pytest-bdd keeps the scenario
    template of each test function in a registry (its own hooks read it the same way)."""
    try:
        from pytest_bdd.scenario import scenario_wrapper_template_registry as registry
    except ImportError:  # pragma: no cover - a pytest-bdd without the registry
        return ""
    try:
        template = registry.get(getattr(item, "obj", None))  # type: ignore[arg-type]
    except TypeError:  # not weak-referenceable: not a scenario function
        return ""
    return str(getattr(getattr(template, "feature", None), "filename", "") or "")


# -- statuses ------------------------------------------------------------------------------
#: Exceptions a *client* raises when the server it talks to broke the exchange (dropped the
#: connection, answered garbage, went silent). In a scenario the server is the system under test
#: or wraps it (the rbee worker bridge, the orchestrator facade around the adapter), so this is
#: the adapter's failure observed through a client, not the harness breaking (issue 13).
_CLIENT_SIDE: tuple[str, ...] = (
    "httpx.RemoteProtocolError",
    "httpx.ReadError",
    "httpx.WriteError",
    "httpx.ReadTimeout",
    "httpx.WriteTimeout",
    "httpx.PoolTimeout",
    "httpx.ConnectError",
    "httpx.ConnectTimeout",
    "httpx.DecodingError",
    "httpcore.RemoteProtocolError",
    "httpcore.ReadError",
    "httpcore.ReadTimeout",
    "h11.RemoteProtocolError",
)


def _qualname(exc: BaseException) -> str:
    mod = type(exc).__module__.split(".", 1)[0]
    return f"{mod}.{type(exc).__name__}"


def observed_failure(exc: BaseException) -> BaseException | None:
    """The client-side exception in ``exc``'s chain when the system under test broke an
    exchange a step observed through a client (see ``_CLIENT_SIDE``); ``None`` otherwise.

    Public for the step library: a step that talks to a server wrapping the adapter may call
    it to decide whether an exception is the adapter's failure (exit 1) or the harness's (2).
    """
    return next((cur for cur in _chain(exc) if _qualname(cur) in _CLIENT_SIDE), None)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during (cause, context, the members of
    an exception group), each once, depth first."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo.extend(e for e in (cur.__cause__, cur.__context__) if e is not None)
        if isinstance(cur, BaseExceptionGroup):
            todo.extend(cur.exceptions)


def _adapter_packages(target: Any) -> tuple[str, ...]:
    """Module prefixes of the adapter under test: its factory's module and top-level package."""
    mod = str(getattr(getattr(target, "factory", None), "__module__", "") or "")
    ns = "llorch_conformance."
    harness = tuple(ns + p for p in ("conformance", "steps", "mock_engines", "reports"))
    if not mod or mod.startswith(harness):
        return ()
    # A built-in adapter's package is llorch_conformance.adapters, never the whole namespace.
    top = ".".join(mod.split(".", 2)[:2]) if mod.startswith(ns) else mod.split(".", 1)[0]
    return tuple(dict.fromkeys((mod, top)))


def raised_by_adapter(exc: BaseException, target: Any) -> str | None:
    """Where the adapter under test raised ``exc`` (``module:line in function``), or ``None``.

    An exception whose traceback passes through the adapter's own code (a method that raised
    instead of answering, a stream that raised instead of ending with an ``error`` event) is
    the adapter's failure, not the harness breaking (issue 13).
    """
    packages = _adapter_packages(target)
    if not packages:
        return None
    for cur in _chain(exc):
        tb = cur.__traceback__
        where = None
        while tb is not None:
            name = str(tb.tb_frame.f_globals.get("__name__", ""))
            if any(name == p or name.startswith(p + ".") for p in packages):
                where = f"{name}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"
            tb = tb.tb_next
        if where is not None:
            return where
    return None


def _classify(
    call: pytest.CallInfo[None],
    when: str,
    *,
    under_test: bool = True,
    target: Any = None,
) -> tuple[str, str, list[str], list[str]]:
    """(status, message, failed requirement IDs, declarations) of one test phase."""
    exc = call.excinfo
    if exc is None:
        return "pass", "", [], []
    value = exc.value
    if isinstance(value, Unsupported):
        return (
            "unsupported",
            str(value.msg or "")[len("unsupported: ") :],
            [],
            list(getattr(value, "declared", ())),
        )
    if isinstance(value, Skipped):
        return "skipped", str(value.msg or ""), [], []
    from llorch_conformance.adapters.api import ConformanceFailure

    if isinstance(value, ConformanceFailure) and when == "call":
        reqs = list(getattr(value, "requirements", None) or [value.requirement])
        return "fail", str(value), reqs, []
    if isinstance(value, AssertionError) and when == "call":
        return "fail", str(value) or "assertion failed", [], []
    from llorch_conformance.adapters.api import HarnessError, UsageError

    if when == "call" and under_test and not isinstance(value, HarnessError | UsageError):
        where = raised_by_adapter(value, target)
        if where is not None:
            return (
                "fail",
                f"the adapter raised {type(value).__name__}: {value} ({where}) instead of "
                "answering or ending its stream with an error event"[:2000],
                [],
                [],
            )
    seen = observed_failure(value) if when == "call" and under_test else None
    if seen is not None:
        return (
            "fail",
            "the system under test broke an exchange observed through a client "
            f"({type(seen).__name__}: {seen})"[:2000],
            [],
            [],
        )
    return "error", f"{type(value).__name__}: {value}"[:2000], [], []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    try:
        report = yield
    except Exception as exc:
        # pytest could not render the failure (an adapter's exception can defeat its traceback
        # formatter, e.g. a recursion error inside ``ast.parse``): report it ourselves rather
        # than crash the session, which would turn an adapter bug into a harness error.
        report = _plain_report(item, call, exc)
    state = item.config.stash.get(_STATE, None)
    if state is None or "llorch_target" not in getattr(item, "fixturenames", ()):
        return report
    spec = getattr(item, "callspec", None)
    target = spec.params.get("llorch_target") if spec is not None else None
    status, message, failed, declared = _classify(
        call, call.when, under_test=_under_test(item), target=target
    )
    data: dict[str, Any] = {
        "when": call.when,
        "status": status,
        "message": message,
        "failed": failed,
        "declared": declared,
    }
    if call.when == "setup":
        target = getattr(item, "callspec", None)
        t = target.params.get("llorch_target") if target is not None else None
        scen = getattr(item.obj, "__scenario__", None) if hasattr(item, "obj") else None
        doc = (getattr(item, "obj", None).__doc__ or "") if hasattr(item, "obj") else ""
        feature, _, scenario = doc.partition(": ")
        example = getattr(target, "id", "") if target is not None else ""
        if "-" in example:  # outline: "<target>-<example values>"
            scenario = f"{scenario} [{example.split('-', 1)[1]}]"
        data["meta"] = {
            "requirements": item_requirements(item),
            "adapter": getattr(t, "name", "?"),
            "dialect": getattr(t, "dialect", None),
            "feature": getattr(scen, "feature", None) or feature,
            "scenario": scenario or item.name,
        }
    if call.when == "teardown":
        ev = getattr(item, "_llorch_evidence", None)
        if ev is not None:
            data["evidence"] = ev
    report.user_properties = [*report.user_properties, (_PROP, data)]
    return report


def _under_test(item: pytest.Item) -> bool:
    """Does this test run against a target (an adapter or an orchestrator), not run-wide?"""
    spec = getattr(item, "callspec", None)
    target = spec.params.get("llorch_target") if spec is not None else None
    return target is not None and target is not PER_RUN and not isinstance(target, _NotApplicable)


def _plain_report(item: pytest.Item, call: pytest.CallInfo[None], exc: Exception) -> Any:
    """A TestReport built without pytest's traceback formatter (see the makereport hook)."""
    err = call.excinfo.value if call.excinfo is not None else None
    longrepr = (
        f"{type(err).__name__}: {err}"[:4000] if err is not None else None
    ) or f"report failed: {type(exc).__name__}: {exc}"
    outcome = "passed" if call.excinfo is None else "failed"
    return pytest.TestReport(
        item.nodeid,
        item.location,
        {k: 1 for k in item.keywords},
        outcome,  # type: ignore[arg-type]
        longrepr if outcome == "failed" else None,
        call.when,  # type: ignore[arg-type]
        duration=call.duration,
        start=call.start,
        stop=call.stop,
        user_properties=list(item.user_properties),
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _CONFIGS:
        return
    state = _CONFIGS[-1].stash.get(_STATE, None)
    if state is None:
        return
    props = [v for k, v in report.user_properties if k == _PROP and isinstance(v, dict)]
    if not props:
        return
    data = props[-1]
    rec = state.records.setdefault(
        report.nodeid,
        {"status": "pass", "message": "", "failed": [], "declared": [], "duration": 0.0},
    )
    rec["duration"] += float(report.duration)
    if "meta" in data:
        rec["meta"] = data["meta"]
    if "evidence" in data:
        rec["evidence"] = data["evidence"]
    rank = {"fail": 5, "error": 4, "unsupported": 3, "skipped": 2, "pass": 1}
    if rank[data["status"]] > rank[rec["status"]]:
        rec["status"], rec["message"], rec["failed"], rec["declared"] = (
            data["status"],
            data["message"],
            data["failed"],
            data.get("declared", []),
        )


def build_results(config: pytest.Config) -> Any:
    """Fold the collected records into a :class:`conformance.RunResults`."""
    from ._results import RunResults, ScenarioResult

    state = config.stash[_STATE]
    res = RunResults(
        run_id=state.run_id,
        seed=state.seed,
        target={
            "targets": [t.describe() for t in state.targets],
            "requirements": list(state.requirements),
        },
        level=state.level,
        started_at=state.started_at,
        wall_time_s=time.monotonic() - state.started,
    )
    for nodeid, rec in state.records.items():
        meta = rec.get("meta", {})
        res.scenarios.append(
            ScenarioResult(
                nodeid=nodeid,
                feature=str(meta.get("feature", "")),
                scenario=str(meta.get("scenario", nodeid)),
                adapter=str(meta.get("adapter", "?")),
                dialect=meta.get("dialect"),
                requirements=list(meta.get("requirements", [])),
                status=rec["status"],
                duration_s=round(rec["duration"], 4),
                message=rec["message"],
                failed_requirements=list(rec["failed"]),
                evidence=rec.get("evidence", {}),
                declared=list(rec.get("declared", [])),
            )
        )
    return res


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    path = config.option.llorch_results
    if path:
        build_results(config).write(Path(path))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.records:
        return
    res = build_results(config)
    c = res.counts()
    line = ", ".join(f"{c[s]} {s}" for s in ("pass", "fail", "unsupported", "skipped", "error"))
    terminalreporter.write_sep("-", "llorch-conformance")
    terminalreporter.write_line(f"scenarios: {line}; seed {state.seed}")
    failing = res.failing()
    for v in failing[:20]:
        terminalreporter.write_line(f"FAIL {v.adapter} {v.requirement}: {v.message[:160]}")
    if len(failing) > 20:
        terminalreporter.write_line(
            f"... and {len(failing) - 20} more failing (adapter, requirement) pairs"
        )
    for v in res.verdicts():
        if v.status == "pass-declared":
            terminalreporter.write_line(f"PASS-DECLARED {v.adapter} {v.requirement}: {v.label}")


def evidence_json(obj: Any) -> Any:
    """Round-trip through JSON so evidence is safe to ship across xdist."""
    return json.loads(json.dumps(obj, default=str))
