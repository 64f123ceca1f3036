"""The package's layout rules, read from its source.

1. A document's tracking state (its ``_uow_state``, status, snapshots, pins in the
   identity map) changes only in ``uow/_tracker.py``: every other module asks the
   tracker through a named transition. (``_state.py`` and ``_identity.py`` hold
   the records themselves; ``document.py`` gives an unpickled copy no state, and
   adds a field's bit to the mask of a document already marked modified, a call
   less per assignment: the first assignment is ``Tracker.on_modified``.)
2. The session's modules import one way, down the layers, and never inside a
   function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "uow"

#: Where a document's state may change: the tracker, and the records' own modules.
STATE_OWNERS = {"_tracker.py", "_state.py", "_identity.py", "document.py"}

STATE_CHANGES = {
    "sets _uow_state": re.compile(r"object\.__setattr__\(.*_uow_state|\bset_state\("),
    # ``x.snapshot = ...`` on anything but ``self`` (a WriteOp sets its own).
    "assigns a DocState field": re.compile(
        r"(?<!\bself)\.(snapshot|committed|status|modified|assigned|pinned|expired) [|&+-]?=(?!=)"
    ),
    "changes the identity map": re.compile(
        r"\b_?map\.(hold|add_clean|add_inserted|add_loaded|release|discard|forget_dead|clear)\("
    ),
    "makes an identity map": re.compile(r"\bIdentityMap\("),
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_scan_sees_the_tracker_change_state() -> None:
    # The patterns are live: each finds something in the one module allowed to.
    source = (PACKAGE / "_tracker.py").read_text()
    for what, pattern in STATE_CHANGES.items():
        assert pattern.search(source), f"no line of _tracker.py {what}: a stale pattern?"


@pytest.mark.parametrize("what", sorted(STATE_CHANGES))
def test_document_state_changes_only_in_the_tracker(what: str) -> None:
    pattern = STATE_CHANGES[what]
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in _modules()
        if path.name not in STATE_OWNERS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line.split("#", 1)[0])
    ]
    assert not offenders, f"outside _tracker.py, a line {what}:\n" + "\n".join(offenders)


# Layers of the session side, bottom to top (a module imports only from lower
# ones; the model layer, 0, is every module not named here).
LAYERS = {
    "_identity": 1,
    "_state": 1.5,
    "_plan": 2,
    "_tracker": 3,
    "_channel": 3,
    "_flush": 4,
    "_indoubt": 5,
    "_persistence": 5,
    "_reading": 5,
    "transaction": 5,
    "session": 6,
    "service": 7,
    "_context": 0,
}


def _uow_imports(tree: ast.Module) -> list[tuple[str, ast.stmt, bool]]:
    """(imported uow module, statement, under TYPE_CHECKING) for each import."""
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(inner) for inner in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                assert name is not None
                found.append((name.split(".")[0], node, id(node) in type_only))
    return found


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_session_modules_import_down_the_layers_only(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    rank = LAYERS[module]
    for imported, _node, type_only in _uow_imports(tree):
        if type_only:
            continue
        below = LAYERS.get(imported, 0)
        assert below < rank or (below == rank == 0), (
            f"uow.{module} (layer {rank}) imports uow.{imported} (layer {below}) at run time"
        )


# _state's diff functions import from the model layer inside (to be replaced by _diff).
@pytest.mark.parametrize("module", sorted(set(LAYERS) - {"_state"}))
def test_session_modules_import_nothing_of_uow_inside_a_function(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.level >= 1:
                    pytest.fail(f"uow.{module}.{node.name} imports uow.{inner.module} inside")
