"""Opt-in pytest plugin: Allure results for *every* test of a session — BDD scenarios and plain
tests — in one folder, written with ``allure-python-commons`` (see :mod:`reports._render_allure`).

Use::

    pytest -p llorch_conformance.reports.allure_plugin --llorch-allure DIR [--llorch-suite ...] tests/...

Why a plugin of our own: ``allure-pytest`` and ``allure-pytest-bdd`` cannot both be loaded in one
process (DESIGN.md), so neither can put plain tests and scenarios side by side. This one labels a
pytest-bdd scenario with its feature and scenario names and its tags (requirement IDs), and a
plain test with its module and test name. Statuses follow the suite's five: a conformance scenario
keeps the status the llorch plugin gave it (``unsupported`` included); for other tests an
``AssertionError`` in the test body is ``fail``, any other exception or a setup/teardown failure
is ``error`` (Allure "broken"), a skip is ``skipped``.

It is light and inert: nothing is imported or written unless ``--llorch-allure`` is given; under
pytest-xdist the controller writes (workers only attach labels to their reports).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ._model import feature_label

__all__ = ["pytest_addoption", "pytest_configure"]

_PROP = "llorch_allure"
_RANK = {"pass": 1, "skipped": 2, "unsupported": 3, "error": 4, "fail": 5}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("llorch").addoption(
        "--llorch-allure",
        metavar="DIR",
        help="write Allure results (BDD scenarios and plain tests) into DIR",
    )


@dataclass
class _Case:
    status: str = "pass"
    message: str = ""
    start_ms: int = 0
    duration_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


class _Recorder:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.cases: dict[str, _Case] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = self.cases.setdefault(report.nodeid, _Case(start_ms=int(time.time() * 1000)))
        case.duration_s += float(report.duration)
        for key, value in report.user_properties:
            if key == _PROP and isinstance(value, dict):
                case.meta.update(value)
        status, message = _status(report)
        llorch = [v for k, v in report.user_properties if k == "llorch" and isinstance(v, dict)]
        if llorch and llorch[-1].get("status") in _RANK:
            status, message = str(llorch[-1]["status"]), str(llorch[-1].get("message", ""))
        if _RANK[status] > _RANK[case.status]:
            case.status, case.message = status, message

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from ._render_allure import AllureCase, write_allure_results

        out = []
        for nodeid, c in self.cases.items():
            m = c.meta
            bdd = m.get("kind") == "bdd"
            module, _, name = nodeid.partition("::")
            out.append(
                AllureCase(
                    full_name=nodeid,
                    name=str(m.get("scenario") or name or nodeid),
                    status=c.status,
                    suite=str(m.get("suite") or module),
                    feature=str(m.get("feature") or module),
                    story=str(m.get("scenario") or name),
                    kind="bdd" if bdd else "plain",
                    start_ms=c.start_ms,
                    stop_ms=c.start_ms + int(c.duration_s * 1000),
                    message=c.message,
                    tags=list(m.get("tags", [])),
                )
            )
        write_allure_results(out, self.dest)


def _status(report: pytest.TestReport) -> tuple[str, str]:
    if report.passed:
        return "pass", ""
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        return "skipped", str(reason)
    text = report.longreprtext[-2000:]
    if report.when == "call" and "AssertionError" in text:
        return "fail", text
    return "error", text


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if call.when == "setup" and item.config.getoption("llorch_allure", None):
        fixturenames = getattr(item, "fixturenames", ())
        if "_pytest_bdd_example" in fixturenames:
            # pytest-bdd names its wrapper "Feature: Scenario" in the docstring (pytest-bdd 9).
            feature, scenario = _bdd_names(item)
            meta: dict[str, Any] = {
                "kind": "bdd",
                "feature": feature,
                "scenario": scenario,
                "tags": sorted(
                    str(m.args[0])
                    for name in ("llorch_requirement", "llorch_tag")
                    for m in item.iter_markers(name)
                    if m.args
                ),
            }
            params = getattr(getattr(item, "callspec", None), "params", {})
            target = params.get("llorch_target")
            if target is not None:
                meta["suite"] = str(getattr(target, "name", "conformance"))
        else:
            meta = {"kind": "plain", "suite": item.nodeid.partition("::")[0]}
        report.user_properties = [*report.user_properties, (_PROP, meta)]
    return report


def _bdd_names(item: pytest.Item) -> tuple[str, str]:
    """(feature name, scenario name) of a pytest-bdd test.

    pytest-bdd 9 keeps the template of each scenario function in a registry; its docstring
    ("<feature file>: <scenario>") is the fallback if that internal ever moves.
    """
    obj = getattr(item, "obj", None)
    try:
        from pytest_bdd.scenario import scenario_wrapper_template_registry as registry

        tmpl = registry.get(obj)  # type: ignore[arg-type]
    except (ImportError, TypeError):
        tmpl = None
    if tmpl is not None:
        feature = getattr(tmpl, "feature", None)
        fname = str(getattr(feature, "name", "") or "")
        return fname or feature_label(str(getattr(feature, "rel_filename", ""))), str(tmpl.name)
    doc = getattr(obj, "__doc__", None) or ""
    feature_text, sep, scenario = doc.partition(": ")
    return (feature_label(feature_text), scenario) if sep else ("", item.name)


def pytest_configure(config: pytest.Config) -> None:
    dest = config.getoption("llorch_allure", None)
    if dest and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(Path(dest)), "llorch-allure-recorder")
