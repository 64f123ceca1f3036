"""``_stages.in_stages``: an update cut into statements MongoDB accepts (no two paths
of one statement where one lies under the other), nothing lost or added."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from uow._stages import in_stages


def _paths(statement: dict[str, Any]) -> list[str]:
    return [path for written in statement.values() for path in written]


def _overlap(paths: list[str]) -> bool:
    return any(
        a == b or b.startswith(a + ".")
        for i, a in enumerate(paths)
        for j, b in enumerate(paths)
        if i != j
    )


def _merged(stages: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for stage in stages:
        for operator, written in stage.items():
            for path, value in written.items():
                assert path not in merged.get(operator, {}), "a path sent twice"
                merged.setdefault(operator, {})[path] = value
    return merged


def test_an_update_without_overlaps_is_one_statement() -> None:
    update = {"$set": {"a": 1, "b.c": 2}, "$push": {"tags": {"$each": [1]}}}
    assert in_stages(update) == [update]
    assert in_stages(update)[0] is update


def test_a_push_goes_after_the_changes_inside_its_list() -> None:
    update = {"$inc": {"lines.0.qty": 1}, "$push": {"lines": {"$each": [{"sku": "b"}]}}}
    assert in_stages(update) == [
        {"$inc": {"lines.0.qty": 1}},
        {"$push": {"lines": {"$each": [{"sku": "b"}]}}},
    ]


def test_pushes_at_three_levels_take_three_statements() -> None:
    update = {
        "$push": {
            "g": {"$each": [[]]},
            "g.0": {"$each": [{}]},
            "g.0.0.tags": {"$each": ["y"]},
        }
    }
    stages = in_stages(update)
    assert [_paths(stage) for stage in stages] == [["g.0.0.tags"], ["g.0"], ["g"]]


def test_a_date_goes_after_the_write_that_makes_its_place() -> None:
    update = {
        "$push": {"lines": {"$each": [{"at": None}]}},
        "$currentDate": {"updated": True, "lines.0.at": True, "lines.1.at": True},
    }
    stages = in_stages(update)
    assert stages == [
        {"$push": {"lines": {"$each": [{"at": None}]}}, "$currentDate": {"updated": True}},
        {"$currentDate": {"lines.0.at": True, "lines.1.at": True}},
    ]


_PARTS = st.sampled_from(["a", "b", "0", "1"])
_PATHS = st.lists(_PARTS, min_size=1, max_size=4).map(".".join)


@st.composite
def _updates(draw: st.DrawFn) -> dict[str, Any]:
    """Updates shaped as the diff makes them: leaves set or incremented, lists
    pushed to (possibly above changed leaves), dates anywhere below the top."""
    update: dict[str, Any] = {}
    leaves = draw(st.lists(_PATHS, max_size=6, unique=True))
    pushes = draw(st.lists(_PATHS, max_size=3, unique=True))
    dates = draw(st.lists(_PATHS.filter(lambda p: "." in p), max_size=4, unique=True))
    taken: set[str] = set()
    for path in leaves:
        # The diff never writes one leaf twice or a leaf above another leaf.
        if any(path == t or path.startswith(t + ".") or t.startswith(path + ".") for t in taken):
            continue
        taken.add(path)
        update.setdefault(draw(st.sampled_from(["$set", "$inc"])), {})[path] = 1
    for path in pushes:
        if path in taken or any(path.startswith(t + ".") for t in taken):
            continue  # a push never lies under or at a leaf written
        taken.add(path)
        update.setdefault("$push", {})[path] = {"$each": [1]}
    chosen: list[str] = []
    for path in dates:
        if any(t.startswith(path + ".") for t in taken) or any(
            d.startswith(path + ".") or path.startswith(d + ".") for d in chosen
        ):
            continue  # a date is a leaf: nothing lies under it
        chosen.append(path)
        update.setdefault("$currentDate", {})[path] = True
    return update


@given(_updates())
def test_every_statement_is_accepted_and_nothing_is_lost(update: dict[str, Any]) -> None:
    stages = in_stages(update)
    assert all(not _overlap(_paths(stage)) for stage in stages)
    assert _merged(stages) == update
    # A date comes after every write above it.
    order = {
        (operator, path): index
        for index, stage in enumerate(stages)
        for operator, written in stage.items()
        for path in written
    }
    for path in update.get("$currentDate", {}):
        for (operator, other), index in order.items():
            if operator != "$currentDate" and (path == other or path.startswith(other + ".")):
                assert order[("$currentDate", path)] > index
