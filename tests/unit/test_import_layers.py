"""uow's modules import one way: no cycles, no imports hidden in functions (#18).

Reads every module of the package with ``ast`` (nothing is imported), builds the
graph of module-level imports between uow modules, leaving out type-only imports
under ``if TYPE_CHECKING:``, and fails on a cycle; and fails on an import of a uow
module inside a function or class body, the way cycles used to be dodged.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "uow"

#: Modules allowed a function-local import of another uow module: none.
PENDING: frozenset[str] = frozenset()


def _modules(package: Path) -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(package.glob("*.py"))
    }


def _uow_targets(node: ast.Import | ast.ImportFrom, names: set[str]) -> set[str]:
    """The uow modules an import statement names (``from . import x`` included)."""
    found: set[str] = set()
    if isinstance(node, ast.ImportFrom):
        if node.level == 1 and node.module is None:  # from . import x
            found |= {alias.name for alias in node.names if alias.name in names}
        elif node.level == 1 and node.module is not None:
            found.add(node.module.split(".")[0])
        elif node.level == 0 and node.module and node.module.split(".")[0] == "uow":
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found |= {alias.name for alias in node.names if alias.name in names}
    else:
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "uow" and len(parts) > 1:
                found.add(parts[1])
    return found & names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module, names: set[str]) -> set[str]:
    """What a module imports when it is imported: its top-level statements, into
    ``if``/``try`` blocks, except the body of ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(_uow_targets(node, names))
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _nested_imports(tree: ast.Module, names: set[str]) -> list[tuple[int, str]]:
    """(line, module) of each uow import inside a function or class body."""
    found: list[tuple[int, str]] = []
    for scope in ast.walk(tree):
        if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for node in ast.walk(scope):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found += [(node.lineno, target) for target in _uow_targets(node, names)]
    return sorted(set(found))


def import_graph(package: Path) -> dict[str, set[str]]:
    trees = _modules(package)
    names = set(trees)
    return {name: _module_level_imports(tree, names) - {name} for name, tree in trees.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, a]``), or None."""
    done: set[str] = set()
    path: list[str] = []

    def walk(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        path.append(name)
        for target in sorted(graph.get(name, ())):
            cycle = walk(target)
            if cycle:
                return cycle
        path.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = walk(name)
        if cycle:
            return cycle
    return None


def function_local_imports(package: Path, pending: frozenset[str]) -> list[str]:
    trees = _modules(package)
    names = set(trees)
    return [
        f"uow/{name}.py:{line} imports uow.{target} inside a function or class"
        for name, tree in trees.items()
        if name not in pending
        for line, target in _nested_imports(tree, names)
    ]


def test_uow_modules_import_one_way() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_uow_module_imported_inside_a_function() -> None:
    assert function_local_imports(PACKAGE, PENDING) == []


def test_the_model_layer_sits_below_the_session() -> None:
    graph = import_graph(PACKAGE)
    model = {"exceptions", "_stored", "operators", "_ref", "_types", "fields", "_meta"}
    model |= {"query", "_runtime", "_codegen", "_model", "document"}
    session = {"session", "_state", "_identity", "_plan", "_persistence", "_reading"}
    for name in model:
        assert not graph[name] & session, f"{name} imports {graph[name] & session}"


# ---------------------------------------------------------- the test can fail


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "uow"
    package.mkdir()
    for name, source in files.items():
        (package / f"{name}.py").write_text(source, encoding="utf-8")
    return package


def test_a_cycle_is_found(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "a": "from .b import x\n",
            "b": "from typing import TYPE_CHECKING\nfrom . import c\n",
            "c": "import uow.a\n",
        },
    )
    assert find_cycle(import_graph(package)) == ["a", "b", "c", "a"]


def test_type_only_imports_make_no_cycle(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "a": "from .b import x\n",
            "b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n",
        },
    )
    assert find_cycle(import_graph(package)) is None


def test_a_function_local_import_is_found(tmp_path: Path) -> None:
    source = "def f():\n    from .b import x\n    return x\n"
    package = _package(tmp_path, {"a": source, "b": "x = 1\n", "session": source})
    assert function_local_imports(package, frozenset({"session"})) == [
        "uow/a.py:2 imports uow.b inside a function or class"
    ]
