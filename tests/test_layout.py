"""The package's layout: sub-packages by stage, imports that flow one way, modules a reader can hold in mind.

The import graph is read from the source (every import that runs, function-level ones included; imports
under `if TYPE_CHECKING:` are for annotations only and do not count).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "npgen"
MAX_LINES = 500
MAX_API_LINES = 300


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of npgen (a package by its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def runtime_imports(tree: ast.AST):
    """Import statements that run: everywhere but under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from runtime_imports(child)


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """(module -> the npgen modules it imports, private names imported from another module)."""
    known = modules()

    def owner(name: str) -> str:
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    graph, private = {}, []
    for name, path in known.items():
        edges = set()
        for node in runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {owner(a.name) for a in node.names if a.name.startswith("npgen")}
            elif node.module and node.module.startswith("npgen"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    edges.add(target if target in known else owner(node.module))
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target not in known:
                        private.append(f"{name} imports {target}")
        graph[name] = edges - {name}
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def stage(module: str) -> str:
    """The sub-package a module belongs to (npgen.rule.sampler -> npgen.rule), or the module itself at the top."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_import_graph_has_no_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_stages_import_each_other_one_way():
    graph, _ = import_graph()
    subpackages = {m for m, p in modules().items() if p.name == "__init__.py" and m != "npgen"}
    between = {}
    for module, imported in graph.items():
        for other in imported:
            if stage(module) in subpackages and stage(other) in subpackages and stage(module) != stage(other):
                between.setdefault(stage(module), set()).add(stage(other))
    assert len(subpackages) >= 4
    assert cycles(between) == []


def test_no_private_name_is_imported_across_modules():
    _, private = import_graph()
    assert private == []


def test_modules_stay_small_and_the_api_thin():
    lines = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in lines.items() if n > MAX_LINES} == {}
    assert lines["npgen.api"] <= MAX_API_LINES


def test_test_only_references_live_in_the_tests():
    shipped = [
        f"{name}.{node.name}"
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_reference")
    ]
    assert shipped == []


def test_the_checks_catch_what_they_look_for():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse(
        "from npgen.x import _private\nif TYPE_CHECKING:\n    from npgen.y import z\ndef f():\n    import npgen.w\n"
    )
    assert [type(n).__name__ for n in runtime_imports(tree)] == ["ImportFrom", "Import"]
