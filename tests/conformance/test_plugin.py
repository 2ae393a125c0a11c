"""The pytest plugin, black-box with pytester: light, inert for other suites, right statuses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_importing_the_plugin_is_light() -> None:
    code = textwrap.dedent(
        """
        import sys
        import llorch_conformance.conformance.plugin
        heavy = ["starlette", "uvicorn", "llorch_conformance.mock_engines", "llorch_conformance.steps",
                 "httpx", "llorch_conformance.adapters.llamacpp"]
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "", f"the plugin imports heavy modules: {out.stdout}"


def test_plugin_is_inert_for_other_test_suites(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = --strict-markers --strict-config\n")
    pytester.makepyfile(
        test_plain="""
        def test_other_project(request):
            pm = request.config.pluginmanager
            assert pm.get_plugin("llorch_conformance.steps._plugin") is None
            assert request.config.option.llorch_results is None
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "scenarios:" not in out and "- llorch-conformance -" not in out


def test_other_projects_bdd_tags_still_work(pytester: pytest.Pytester) -> None:
    """A foreign feature's tags stay pytest-bdd's business (the plugin declines them)."""
    pytester.makeini("[pytest]\nmarkers =\n    smoke: foreign tag\n")
    pytester.makefile(
        ".feature", other="Feature: other\n\n  @smoke\n  Scenario: foreign\n    Given nothing\n"
    )
    pytester.makepyfile(
        test_other="""
        from pytest_bdd import given, scenarios
        scenarios("other.feature")

        @given("nothing")
        def nothing():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "smoke")
    result.assert_outcomes(passed=1)


def test_suite_runs_inside_a_vendors_pytest(pytester: pytest.Pytester, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    result = pytester.runpytest_subprocess(
        "--llorch-suite", "--llorch-only", "mock", "--llorch-requirement", "ORCH-3058",
        "--llorch-results", str(results), "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*llorch-conformance*", "scenarios: 1 pass, 0 fail*"])
    data = json.loads(results.read_text("utf-8"))
    [scenario] = data["scenarios"]
    assert scenario["status"] == "pass" and scenario["requirements"] == ["ORCH-3058"]
    assert scenario["adapter"] == "mock" and scenario["evidence"]["streams"]


def test_declared_unsupported_is_reported_unsupported(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        declares="""
        import dataclasses
        from llorch_conformance.adapters import BUILTIN_ADAPTERS

        class NoCancel:
            def __init__(self, base_url, **config):
                self.inner = BUILTIN_ADAPTERS["mock"](base_url, **config)
            def __getattr__(self, name):
                return getattr(self.inner, name)
            async def capabilities(self):
                caps = await self.inner.capabilities()
                return dataclasses.replace(caps, declared_unsupported=("cancel",))

        def factory(base_url, **config):
            return NoCancel(base_url, **config)
        """
    )
    results = tmp_path / "results.json"
    result = pytester.runpytest_subprocess(
        "--llorch-suite", "--llorch-adapter", "declares:factory", "--llorch-dialect", "mock",
        "--llorch-requirement", "WA-INT-3002", "--llorch-results", str(results), "-p", "no:cacheprovider",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-2000:]
    data = json.loads(results.read_text("utf-8"))
    cancel = [s for s in data["scenarios"] if s["scenario"].startswith("Cancel in flight")]
    assert cancel and cancel[0]["status"] == "unsupported"
    assert "declares 'cancel' unsupported" in cancel[0]["message"]


def test_unknown_requirement_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--llorch-requirement", "NOPE-0001", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*NOPE-0001*not a catalogue ID*"])


def test_results_are_gathered_across_xdist_workers(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    results = tmp_path / "results.json"
    result = pytester.runpytest_subprocess(
        "--llorch-suite", "--llorch-only", "mock,llamacpp", "--llorch-requirement", "ADAPT-3003",
        "--llorch-results", str(results), "-p", "no:cacheprovider", "-n", "2",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-2000:]
    data = json.loads(results.read_text("utf-8"))
    adapters = sorted({s["adapter"] for s in data["scenarios"]})
    assert adapters == ["llamacpp", "mock"]
    assert all(s["status"] == "pass" and s["evidence"] for s in data["scenarios"])
