"""The tree's architecture, checked from the source: no import cycles and no upward imports.

Every import of every module under src/opbench counts -- at module level, inside functions and under
`TYPE_CHECKING` -- since an import hidden in a function is still a dependency. `from pkg import name` depends on
`pkg.name` when that is a module, else on `pkg` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# Layers, lowest first: a module may import its own layer and the layers below, never one above. The first
# name of a module below `opbench` picks its layer; `(package)` is `opbench/__init__.py`, the public facade.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "defaults", "errors", "paths", "interrupts", "registry", "data", "machine"),  # leaves
    ("catalog",),  # what is measured, framework-neutral
    ("backends",),  # the framework adapters
    ("results",),  # the result model, run files, the store, importers
    ("engine",),  # the measurement path: timing, verification, worker processes, passes
    ("analysis",),  # reasoning over stored results: comparison, significance, steps
    ("studies",),  # what a user runs that produces results: dtypes, sweep, calibrate, roofline, noise
    ("report",),  # tables, plots, HTML
    ("site",),  # the published site
    ("commands",),  # one module per CLI command: parse -> call -> render
    ("api", "cli", "__main__", "testing", "(package)"),  # the front ends
)
# Modules that sit in the lowest layer whatever their package, because they import nothing of opbench but the
# leaves (checked below): the statistical model, read by the result model (the ~ mark), the engine and the
# comparison; the timing modes, which the adapters, the engine and the result model all name.
LEAF_MODULES = ("opbench.analysis.significance", "opbench.engine.modes")


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str = "opbench") -> dict[str, dict[str, int]]:
    """module -> {imported module of the same package: line of the first such import}."""
    paths = {module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}

    def owner(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        deps: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    up = here[: len(here) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            for target in targets:
                dep = owner(target) if target.split(".")[0] == package else None
                if dep is not None and dep != name:
                    deps.setdefault(dep, node.lineno)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def layer(module: str) -> int:
    if module in LEAF_MODULES:
        return 0
    first = module.split(".")[1] if "." in module else "(package)"
    for i, names in enumerate(LAYERS):
        if first in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: give it one")


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    return [f"{m} (layer {'/'.join(LAYERS[layer(m)])}) imports {d} (layer {'/'.join(LAYERS[layer(d)])}), line {ln}"
            for m, deps in sorted(graph.items()) for d, ln in sorted(deps.items()) if layer(d) > layer(m)]


GRAPH = import_graph(SRC)


def test_the_graph_sees_the_whole_package() -> None:
    assert len(GRAPH) > 80 and "opbench.engine.runner" in GRAPH and "opbench.results.store" in GRAPH
    assert "opbench.engine.worker" in GRAPH["opbench.engine.runner"]  # module-level import
    assert "opbench.engine.runner" in GRAPH["opbench.commands.run"]


def test_there_is_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports(GRAPH) == []


def test_the_leaf_modules_import_only_leaves() -> None:
    assert {m: sorted(d for d in GRAPH[m] if layer(d) > 0) for m in LEAF_MODULES} == {m: [] for m in LEAF_MODULES}


def test_the_lower_layers_never_import_commands_reports_or_the_cli() -> None:
    lower = ("opbench.engine", "opbench.results", "opbench.catalog", "opbench.backends")
    upper = ("opbench.commands", "opbench.report", "opbench.cli", "opbench.api", "opbench.site")
    bad = [f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith(lower)
           for d in deps if d.startswith(upper) or d == "opbench"]
    assert bad == []


def test_only_the_front_ends_import_the_public_facade() -> None:
    """`opbench/__init__.py` names the API; a module that imported it would depend on everything."""
    assert [m for m, deps in GRAPH.items() if "opbench" in deps and layer(m) < len(LAYERS) - 1] == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "opbench" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "__init__.py": "",
        "engine/__init__.py": "",
        "engine/runner.py": "from opbench.engine.worker import Worker\n",
        "engine/worker.py": "def measure():\n    from opbench.engine import runner\n",
        "results/__init__.py": "",
        "results/files.py": "from . import model\nfrom ..report.tables import table\n",
        "results/model.py": "",
        "report/__init__.py": "",
        "report/tables.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import opbench.results.files\n",
    })
    graph = import_graph(root)
    assert graph["opbench.engine.worker"] == {"opbench.engine.runner": 2}
    assert graph["opbench.results.files"] == {"opbench.results.model": 1, "opbench.report.tables": 2}
    assert cycles(graph) == [["opbench.engine.runner", "opbench.engine.worker"],
                             ["opbench.report.tables", "opbench.results.files"]]
    assert upward_imports(graph) == ["opbench.results.files (layer results) imports opbench.report.tables "
                                     "(layer report), line 2"]


def test_a_module_outside_every_layer_is_named(tmp_path: Path) -> None:
    graph = import_graph(_write(tmp_path, {"__init__.py": "", "newpkg/__init__.py": "import opbench.errors\n",
                                           "errors.py": ""}))
    with pytest.raises(AssertionError, match=r"opbench\.newpkg is in no layer"):
        upward_imports(graph)
