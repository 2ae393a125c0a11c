"""ARCHITECTURE.md's import rules, enforced: who may import whom.

Why a test: layering erodes one convenient import at a time. Every ``import`` in the packages
(lazy ones inside functions included) is read with :mod:`ast` and checked against the table of
ARCHITECTURE.md; a new edge that the page does not allow fails here, naming the file and line.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_OURS = ("adapters", "mock_engines", "conformance", "steps", "reports", "features")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in ``path`` (relative imports resolved)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]  # the package a relative import starts from (also for __init__)
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, _short(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = _short(node.module or "")
            yield node.lineno, mod
            for alias in node.names:  # ``from adapters import host`` imports adapters.host
                yield node.lineno, f"{mod}.{alias.name}"


def _short(mod: str) -> str:
    """``llorch_conformance.adapters.api`` → ``adapters.api`` (the rules name the folders)."""
    return mod.removeprefix("llorch_conformance.")


def _ours(mod: str) -> str | None:
    return mod if mod.split(".", 1)[0] in _OURS else None


def _under(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


#: (files under, imports that are never allowed from there, why) — ARCHITECTURE.md "Import rules".
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("adapters", ("conformance", "steps", "reports", "features"),
     "nothing below the harness imports conformance, steps or reports"),
    ("mock_engines", ("conformance", "steps", "reports", "features"),
     "nothing below the harness imports conformance, steps or reports"),
    ("adapters/api", ("adapters.http_util", "adapters.host", "adapters.orchestrator",
                      "adapters.rbee_worker", "adapters._base", "adapters.mock", "mock_engines"),
     "adapters.api is the contract: the standard library only"),
    ("adapters/http_util", ("adapters.host", "adapters.orchestrator", "adapters.rbee_worker",
                            "adapters._base", "adapters.mock", "mock_engines"),
     "adapters.http_util sits on adapters.api only"),
    ("adapters/host", ("adapters.orchestrator", "adapters.rbee_worker", "mock_engines"),
     "adapters.host: adapters.api, adapters.http_util"),
    ("reports", ("steps", "features"), "reports read results and bundles, never the steps"),
]  # fmt: skip


def _files(under: str) -> list[Path]:
    return sorted((ROOT / under).rglob("*.py"))


@pytest.mark.parametrize(("under", "banned", "why"), RULES, ids=[r[0] for r in RULES])
def test_import_rules_of_architecture_md(under: str, banned: tuple[str, ...], why: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {mod}"
        for path in _files(under)
        for line, mod in _imports(path)
        if _ours(mod) and _under(mod, *banned)
    ]
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_the_contract_imports_the_standard_library_only() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {mod}"
        for path in _files("adapters/api")
        for line, mod in _imports(path)
        if mod.split(".", 1)[0] not in stdlib and not _under(mod, "adapters.api", "adapters")
    ]
    assert not bad, "adapters.api may import the standard library only:\n" + "\n".join(bad)


def test_the_engine_adapters_never_import_the_mock_engines() -> None:
    """Only adapters.mock may use the mock engines' plan and fault catalogue."""
    engines = [
        ROOT / "adapters" / f"{n}.py" for n in ("llamacpp", "vllm", "tgi", "triton", "openai")
    ]
    engines += [ROOT / "adapters" / "_base.py", ROOT / "adapters" / "_oai.py"]
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in engines
        for line, mod in _imports(p)
        if _under(mod, "mock_engines")
    ]
    assert not bad, "\n".join(bad)
