"""The layout stays easy to follow: no two modules import each other, directly or around a
circle, in the Rust core (`use crate::...`), its bindings (`use super::...` in rust/py/) or the
Python package (imports of `tasc_rs.*`, those only for type checking included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def rust_graph(folder: Path, prefix: str) -> dict[str, set[str]]:
    """Module -> modules its code names as `{prefix}::module` (tests and comments left out)."""
    graph: dict[str, set[str]] = {}
    for path in folder.rglob("*.rs"):
        rel = path.relative_to(folder).with_suffix("")
        parts = [p for p in rel.parts if p not in ("mod", "lib")]
        if not parts or (folder.name == "rust" and parts[0] == "py"):
            continue
        name = parts[0]
        code = path.read_text().split("#[cfg(test)]")[0]
        text = "\n".join(line.split("//")[0] for line in code.splitlines())
        used = set(re.findall(rf"\b{prefix}::(\w+)", text)) - {name}
        graph.setdefault(name, set()).update(used)
    return graph


def python_graph() -> dict[str, set[str]]:
    pkg = ROOT / "python" / "tasc_rs"
    graph: dict[str, set[str]] = {}
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d.startswith("tasc_rs.") and d != name}
    # a package's __init__ re-exports its modules: only module -> module edges count
    return {
        k: {d for d in v if not any(m.startswith(d + ".") for m in graph)} for k, v in graph.items()
    }


def test_the_rust_core_has_no_import_circle() -> None:
    assert cycles(rust_graph(ROOT / "rust", "crate")) == []


def test_the_bindings_have_no_import_circle() -> None:
    assert cycles(rust_graph(ROOT / "rust" / "py", "super")) == []


def test_the_python_package_has_no_import_circle() -> None:
    graph = python_graph()
    assert "tasc_rs.ft.enrichment" in graph and "tasc_rs.multitask" in graph
    assert cycles(graph) == []


def test_the_check_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
