"""The import graph of ``src/gradleak`` is a stack: no circle between files or packages.

Every import counts, wherever it is written: at module top, inside a function, under
``if TYPE_CHECKING``, through ``importlib.import_module("...")``, and any string constant that
names a gradleak module (the way a list of packages to import by name hides an arrow). A
package is the first sub-package under ``gradleak`` (``gradleak.experiments.store`` belongs to
``experiments``; a top-level module such as ``gradleak.cli`` is its own package).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import gradleak

ROOT = Path(gradleak.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = ["gradleak", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, importer: str) -> str:
    """The module an ``ImportFrom`` names, with relative imports resolved."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def _named(node: ast.AST, importer: str) -> Iterable[str]:
    """Every module name an AST node imports or names."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        module = _absolute(node, importer)
        for alias in node.names:
            submodule = f"{module}.{alias.name}"
            yield submodule if submodule in MODULES else module
    elif (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != "gradleak"
    ):
        # import_module("gradleak.x"), or a list of names imported later. The bare root name is
        # a folder's or the distribution's name (~/.cache/gradleak, resources.files("gradleak"));
        # a real import of the root package is an Import node, counted above.
        yield node.value


def imports_of(module: str) -> set[str]:
    """The gradleak modules ``module`` imports (itself excluded)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found = set()
    for node in ast.walk(tree):
        for name in _named(node, module):
            # ``import gradleak.a.b`` or a name of an attribute: keep its longest module prefix.
            parts = name.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            target = ".".join(parts)
            if target and target != module:
                found.add(target)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gradleak"


FILE_GRAPH = {module: imports_of(module) for module in MODULES}
PACKAGE_GRAPH: dict[str, set[str]] = {}
for _module, _targets in FILE_GRAPH.items():
    _edges = PACKAGE_GRAPH.setdefault(package_of(_module), set())
    _edges.update(package_of(t) for t in _targets if package_of(t) != package_of(_module))


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The graph's circles: its strongly connected components of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graphs are small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def a_circle(graph: dict[str, set[str]], component: frozenset[str]) -> str:
    """One shortest circle through the component's first node, as ``a -> b -> a``."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node] & component):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return " -> ".join([*reversed(path), start])
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"no circle through {start}")


def test_the_scan_sees_every_kind_of_import() -> None:
    """Guards the scanner itself: arrows known to exist, each written another way."""
    assert "gradleak.experiments.backends.base" in FILE_GRAPH["gradleak.experiments.store"]
    assert "gradleak.experiments.runner" in FILE_GRAPH["gradleak.experiments.backends.base"]
    assert {"gradleak.commands.sweep", "gradleak.commands.train"} <= FILE_GRAPH["gradleak.cli"]
    assert "gradleak.attacks" in FILE_GRAPH["gradleak.experiments.preflight"]  # `import a.b`
    assert "experiments" in PACKAGE_GRAPH["commands"]


def test_no_circle_between_files() -> None:
    circles = strongly_connected(FILE_GRAPH)
    assert not circles, "\n".join(a_circle(FILE_GRAPH, c) for c in circles)


def test_no_circle_between_packages() -> None:
    circles = strongly_connected(PACKAGE_GRAPH)
    assert not circles, "\n".join(a_circle(PACKAGE_GRAPH, c) for c in circles)
