"""ARCHITECTURE.md's import rules, enforced: who may import whom.

Why a test: layering erodes one convenient import at a time. Every ``import`` in the packages
(lazy ones inside functions included) is read with :mod:`ast` and checked against the table of
ARCHITECTURE.md; a new edge that the page does not allow fails here, naming the file and line.
"""

from __future__ import annotations

import ast
import subprocess
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


# --- import-linter contracts and the unit graph ------------------------------------------------

#: ARCHITECTURE.md's units: the first prefix that matches names a module's unit. The entry points
#: (CLI sub-commands) are a unit of their own above everything they wire together.
UNITS: list[tuple[str, str]] = [
    ("conformance.cli", "entry"),
    ("conformance._cmd_", "entry"),
    ("conformance.rbee._cli", "entry"),
    ("conformance.real._cli", "entry"),
    ("reports._cli", "entry"),
    ("reports.gate._cli", "entry"),
    ("mock_engines._cli", "entry"),
    ("mock_engines._proxy_cli", "entry"),
    ("adapters.orchestrator._cli", "entry"),
    ("adapters.rbee_worker._cli", "entry"),
    ("__main__", "entry"),
    ("adapters.api", "adapters.api"),
    ("adapters.http_util", "adapters.http_util"),
    ("adapters.host", "adapters.host"),
    ("adapters.orchestrator", "adapters.orchestrator"),
    ("adapters.rbee_worker", "adapters.rbee_worker"),
    ("adapters.mock", "adapters.mock"),
    ("adapters", "adapters"),
    ("mock_engines.rbee", "mock_engines.rbee"),
    ("mock_engines", "mock_engines"),
    ("conformance.rbee", "conformance.rbee"),
    ("conformance.real", "conformance.real"),
    ("conformance", "conformance"),
    ("steps", "steps"),
    ("features", "features"),
    ("reports.gate", "reports.gate"),
    ("reports", "reports"),
]


def _unit(module: str) -> str:
    short = module.removeprefix("llorch_conformance.")
    for prefix, unit in UNITS:
        if short == prefix or short.startswith(prefix if prefix.endswith("_") else prefix + "."):
            return unit
    return "root"


def test_import_contracts_hold() -> None:
    """pyproject's [tool.importlinter] contracts (private modules, forbidden edges) all kept."""
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), "import-linter is not installed (pip install -e '.[test]')"
    proc = subprocess.run(
        [str(exe), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_no_import_cycle_between_units() -> None:
    """Every import (lazy ones included), folded to ARCHITECTURE.md's units, forms no cycle."""
    import grimp

    graph = grimp.build_graph("llorch_conformance", cache_dir=None)
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for mod in graph.modules:
        for imported in graph.find_modules_directly_imported_by(mod):
            a, b = _unit(mod), _unit(imported)
            if a != b:
                edges.setdefault(a, set()).add(b)
                where.setdefault((a, b), f"{mod} -> {imported}")
    cycles = [scc for scc in _strongly_connected(edges) if len(scc) > 1]
    detail = [
        f"{sorted(scc)}: "
        + "; ".join(where[(a, b)] for a in scc for b in edges.get(a, ()) if b in scc)
        for scc in cycles
    ]
    assert not cycles, "import cycles between units:\n" + "\n".join(detail)


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative enough for a graph of ~20 units)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc: set[str] = set()
            while True:
                w = stack.pop()
                on.discard(w)
                scc.add(w)
                if w == v:
                    break
            out.append(scc)

    for v in sorted({*edges, *(w for ws in edges.values() for w in ws)}):
        if v not in index:
            visit(v)
    return out
