"""No import cycles inside lib/codebench: every `import` statement, at module level or inside a
function, is an edge of the graph (only `if TYPE_CHECKING:` blocks are left out, they never run).
A cycle that only works because one side defers its import is still a cycle: the two modules
are one module in disguise, and the order they load in decides whether they work."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = "codebench"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph(root: Path = LIB / PACKAGE) -> dict[str, set[str]]:
    """module -> the codebench modules it imports (a `from pkg import name` that names a
    submodule counts as importing that submodule, not the package)."""
    files = {_module_name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` imports the submodule; `from pkg import name`, the module
                subs = [f"{base}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in files]
                if len(targets) < len(subs):
                    targets.append(base)
            for t in targets:
                while t and t not in files:  # `import codebench.x.y` -> nearest known module
                    t = t.rpartition(".")[0]
                if t and t != mod and t.split(".")[0] == PACKAGE:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_codebench_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["codebench.train.trainer"]  # really read the package
    found = cycles(graph)
    assert not found, "import cycles in lib/codebench:\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


@pytest.mark.parametrize(
    ("edges", "want"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(edges: dict, want: list) -> None:
    assert cycles(edges) == want


def test_function_level_and_relative_imports_are_edges(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from codebench.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from codebench import c\n"
        "from .. import a\n"
    )
    (pkg / "c.py").write_text("import codebench.sub.b\n")
    global LIB
    old, LIB = LIB, tmp_path
    try:
        graph = import_graph(pkg)
    finally:
        LIB = old
    assert "codebench.sub.b" in graph["codebench.a"]
    assert graph["codebench.sub.b"] == {"codebench.a"}  # not c (TYPE_CHECKING)
    assert cycles(graph) == [["codebench.a", "codebench.sub.b"]]
