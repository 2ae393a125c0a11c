"""llorch_conformance.reports.allure_plugin: BDD scenarios and plain tests land in one Allure results folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

FEATURE = """\
Feature: Greeting
  @ADAPT-3001
  Scenario: Saying hello
    Given a greeter
    Then it says hello
"""

TESTS = """\
import pytest
from pytest_bdd import given, scenarios, then

scenarios("greet.feature")


@given("a greeter", target_fixture="greeter")
def greeter():
    return "hello"


@then("it says hello")
def says_hello(greeter):
    assert greeter == "hello"


def test_plain_pass():
    assert 1 + 1 == 2


def test_plain_fail():
    assert 1 + 1 == 3


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_plain_error(broken):
    pass


def test_plain_skip():
    pytest.skip("not today")
"""


def test_bdd_and_plain_tests_in_one_folder(tmp_path: Path) -> None:
    (tmp_path / "greet.feature").write_text(FEATURE)
    (tmp_path / "test_mix.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = tmp_path / "allure"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "llorch_conformance.reports.allure_plugin", "--llorch-allure", str(out),
         "-p", "no:cacheprovider", "-q", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in out.glob("*-result.json")]
    by = {r["name"]: r for r in results}
    assert set(by) == {
        "Saying hello",
        "test_plain_pass",
        "test_plain_fail",
        "test_plain_error",
        "test_plain_skip",
    }
    assert {n: r["status"] for n, r in by.items()} == {
        "Saying hello": "passed",
        "test_plain_pass": "passed",
        "test_plain_fail": "failed",
        "test_plain_error": "broken",
        "test_plain_skip": "skipped",
    }

    def labels(name: str) -> dict[str, list[str]]:
        d: dict[str, list[str]] = {}
        for x in by[name]["labels"]:
            d.setdefault(x["name"], []).append(x["value"])
        return d

    bdd = labels("Saying hello")
    assert bdd["framework"] == ["pytest-bdd"] and bdd["feature"] == ["Greeting"]
    assert labels("test_plain_pass")["framework"] == ["pytest"]
    assert "fixture broke" in by["test_plain_error"]["statusDetails"]["message"]
