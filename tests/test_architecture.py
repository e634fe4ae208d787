"""The package structure docs/architecture.md describes, checked from the source itself.

Every import counts, at module top or inside a function: an import hidden in a function is
still a dependency.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clinic"
#: ``clinic.extensions`` (the unbound Flask extensions) belongs with ``clinic.core``: together they
#: are the infrastructure every domain builds on, and import no domain package.
FOUNDATION = "core"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, module: str) -> set[str]:
    """Every ``clinic.*`` module that ``path`` imports, relative imports resolved."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "clinic" or name.startswith("clinic.")}


def _package(module: str) -> str | None:
    """The top-level unit a module belongs to: ``core`` (with ``extensions``) or a domain package."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return FOUNDATION if parts[1] == "extensions" else parts[1]


def _package_graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the modules whose imports make that edge."""
    modules = _modules()
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, path in modules.items():
        source = _package(module)
        if source is None:  # clinic/__init__.py: the app factory wires every package together
            continue
        for target_module in _imports(path, module):
            target = _package(target_module)
            if target is not None and target != source:
                graph[source][target].add(module)
    return graph


def _cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One cycle of the package graph, as the list of packages around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_graph_has_no_cycle() -> None:
    graph = _package_graph()
    cycle = _cycle(graph)
    if cycle:
        edges = [f"{a} -> {b} (in {', '.join(sorted(graph[a][b]))})" for a, b in itertools.pairwise(cycle)]
        pytest.fail("the packages import each other in a cycle:\n" + "\n".join(edges))


def test_core_and_extensions_import_no_domain_package() -> None:
    wrong = {
        f"core -> {target} (in {', '.join(sorted(where))})" for target, where in _package_graph()[FOUNDATION].items()
    }
    assert not wrong, "core and extensions must not depend on a domain:\n" + "\n".join(sorted(wrong))


def test_no_api_module_imports_another_packages_api() -> None:
    wrong = []
    for module, path in _modules().items():
        if not module.endswith(".api"):
            continue
        for imported in _imports(path, module):
            if imported.endswith(".api") and _package(imported) != _package(module):
                wrong.append(f"{module} imports {imported}")
            elif ".api." in imported and _package(imported) != _package(module):
                wrong.append(f"{module} imports from {imported.rsplit('.', 1)[0]}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_checker_sees_a_cycle_and_a_hidden_import() -> None:
    """The checks above would fail on the mistakes they are for (so a pass means something)."""
    graph = {"scheduling": {"notify": {"clinic.scheduling.operations"}}, "notify": {"scheduling": {"x"}}}
    assert _cycle(graph) == ["notify", "scheduling", "notify"]
    assert _cycle({"a": {"b": set()}, "b": {}}) is None
    source = "def f():\n    from clinic.assessments.operations import x\n"
    hidden = Path(PACKAGE.parent / ".architecture-probe.py")
    try:
        hidden.write_text(source)
        assert "clinic.assessments.operations" in _imports(hidden, "clinic.clients.operations")
    finally:
        hidden.unlink()


def test_the_domains_are_layered_as_documented() -> None:
    """Every package imports only packages below it, in the order docs/architecture.md gives."""
    layers = [
        {"core"},
        {"console"},
        {"audit"},
        {"auth"},
        {"clients"},
        {"intake", "scheduling"},
        {"notify"},
        {"assessments"},
        {"plans"},
        {"dosing", "overdose"},
        {"reports", "system", "today", "fhir"},
        {"demo"},
    ]
    rank = {package: index for index, layer in enumerate(layers) for package in layer}
    graph = _package_graph()
    assert set(graph) <= set(rank), f"packages missing from the layering: {sorted(set(graph) - set(rank))}"
    upward = [
        f"{source} -> {target} (in {', '.join(sorted(where))})"
        for source, targets in graph.items()
        for target, where in targets.items()
        if rank[target] >= rank[source]
    ]
    assert not upward, "a package imports one at its own level or above:\n" + "\n".join(sorted(upward))
