"""The house's layering, checked from the source: plugins use only the public faces,
and the core's modules import each other without a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_FACES = {"gateway.contract", "gateway.contract.schema", "gateway.contract.sandbox"}
PLUGIN_SOURCES = sorted(ROOT.glob("plugins/*/brokergraph_*/**/*.py"))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(tree: ast.Module, *, module_level_only: bool) -> Iterator[str]:
    """Every module an import statement names (``from a import b`` may name ``a.b``).

    With ``module_level_only``, imports under ``if TYPE_CHECKING:`` and inside
    functions are left out: they do not run when the module is imported.
    """

    def visit(nodes: list[ast.stmt]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield node.module
                yield from (f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if not (module_level_only and _is_type_checking(node)):
                    yield from visit(node.body)
                yield from visit(node.orelse)
            elif isinstance(node, ast.Try):
                for part in (node.body, node.orelse, node.finalbody):
                    yield from visit(part)
                for handler in node.handlers:
                    yield from visit(handler.body)
            elif not module_level_only and hasattr(node, "body"):
                yield from visit(list(getattr(node, "body", [])))
                yield from visit(list(getattr(node, "orelse", [])))

    yield from visit(tree.body)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / "gateway").rglob("*.py"))}


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_faces_of_the_gateway(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = set(core_modules())
    outside = set()
    for name in imported_modules(tree, module_level_only=False):
        if name == "gateway" or name.startswith("gateway."):
            # ``from gateway.contract import X`` also yields "gateway.contract.X": a name
            # of the face, not a module, unless a module of that name exists.
            face_name = name not in known and name.rsplit(".", 1)[0] in PUBLIC_FACES
            if name in PUBLIC_FACES or face_name:
                continue
            outside.add(name)
    assert not outside, f"{path.name} imports outside the public faces: {sorted(outside)}"


def test_plugins_exist_to_be_checked() -> None:
    assert len(PLUGIN_SOURCES) > 20


def _parents(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(2, len(parts)):
        yield ".".join(parts[:end])


def core_import_graph() -> dict[str, set[str]]:
    """Module → the core modules its import runs (packages' ``__init__`` included)."""
    modules = core_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target in imported_modules(tree, module_level_only=True):
            for candidate in (*_parents(target), target):
                # A module's own packages are not edges: Python runs them first anyway.
                own_package = name.startswith(candidate + ".")
                if candidate in modules and candidate not in (name, "gateway") and not own_package:
                    graph[name].add(candidate)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module are the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_core_has_no_import_cycle() -> None:
    graph = core_import_graph()
    assert len(graph) > 50
    assert strongly_connected(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
