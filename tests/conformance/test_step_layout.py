"""The step library's layout: one step module per feature area (``conformance`` never importing
``steps`` is an import contract in pyproject, checked by tests/test_architecture.py)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from llorch_conformance.features import AREAS
from llorch_conformance.steps._plugin import STEP_MODULES, STEP_PLUGINS

ROOT = Path(__file__).resolve().parents[2]


def test_every_feature_area_has_its_step_module() -> None:
    assert set(STEP_MODULES) == {"", *AREAS}, (
        "STEP_MODULES must name one module per features/<area>"
    )
    assert tuple(f"llorch_conformance.steps.{m}" for m in STEP_MODULES.values()) == STEP_PLUGINS
    for name in STEP_PLUGINS:
        assert importlib.import_module(name).__doc__, f"{name} says what it holds"


def test_no_module_outside_the_list_defines_steps() -> None:
    """A step in a helper module would be registered only by accident of an import."""
    listed = set(STEP_MODULES.values())
    stray = []
    for path in sorted((ROOT / "steps").glob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        decorated = any(
            isinstance(d, ast.Call) and getattr(d.func, "id", "") in {"given", "when", "then"}
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            for d in node.decorator_list
        )
        if decorated and path.stem not in listed:
            stray.append(path.name)
    assert not stray, f"step definitions outside STEP_MODULES: {stray}"
