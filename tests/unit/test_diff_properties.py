"""The one diff, as a property: applying its update to what is stored gives what memory holds.

A stored document (possibly missing keys the class declares, as after a schema
change) is loaded, changed by a random sequence of assignments and in-place
mutations at any depth, and diffed. The update is applied to the stored
document by mongomock's update engine; the result must equal the new snapshot
(keys the stored document still lacks stay missing), and the new snapshot must
equal what memory holds.
"""

from __future__ import annotations

from typing import Any

import mongomock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uow import Document, Embedded, field
from uow._diff import (
    loaded_snapshot,
    snapshot_and_update,
    stored_form,
    updated_snapshot,
    whole_update,
)
from uow._stored import copy_stored


class DpLine(Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc")
    peak: int = field(default=0, on_update="$max")
    tags: list[str] = field(factory=list)


class DpBox(Embedded):
    label: str = "box"
    lines: list[DpLine] = field(factory=list)


class DpOrder(Document):
    __collection__ = "dp_orders"
    name: str = ""
    count: int = field(default=5, on_update="$inc")
    tags: list[str] = field(factory=lambda: ["a"])
    labels: set[str] = field(factory=set)
    lines: list[DpLine] = field(factory=list)
    by_sku: dict[str, DpLine] = field(factory=dict)
    grid: list[list[int]] = field(factory=list)
    box: DpBox = field(factory=DpBox)
    pushed: list[int] = field(factory=list, on_update="$push")
    notes: dict[str, list[str]] = field(factory=dict)


words = st.sampled_from(["a", "b", "c", "d"])
small = st.integers(min_value=0, max_value=5)
lines = st.builds(DpLine, sku=words, qty=small, peak=small, tags=st.lists(words, max_size=2))
orders = st.builds(
    DpOrder,
    name=words,
    count=small,
    tags=st.lists(words, max_size=3),
    labels=st.sets(words, max_size=2),
    lines=st.lists(lines, max_size=3),
    by_sku=st.dictionaries(words, lines, max_size=2),
    grid=st.lists(st.lists(small, max_size=2), max_size=2),
    box=st.builds(DpBox, label=words, lines=st.lists(lines, max_size=2)),
    pushed=st.lists(small, max_size=2),
    notes=st.dictionaries(words, st.lists(words, max_size=2), max_size=2),
)

#: Keys a stored document may lack: top-level fields, and keys of embedded documents.
TOP_KEYS = ["name", "count", "tags", "labels", "lines", "by_sku", "grid", "box", "pushed", "notes"]
LINE_KEYS = ["sku", "qty", "peak", "tags"]


def _drop_keys(raw: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """``raw`` as stored before some fields existed: keys left out at any depth."""
    for key in data.draw(st.lists(st.sampled_from(TOP_KEYS), max_size=3, unique=True)):
        raw.pop(key, None)
    line_holders: list[dict[str, Any]] = [
        *raw.get("lines", []),
        *raw.get("by_sku", {}).values(),
        *raw.get("box", {}).get("lines", []),
    ]
    for line in line_holders:
        for key in data.draw(st.lists(st.sampled_from(LINE_KEYS), max_size=2, unique=True)):
            line.pop(key, None)
    if "box" in raw and data.draw(st.booleans()):
        raw["box"].pop("label", None)
    return raw


def _mutate(order: DpOrder, data: st.DataObject) -> None:
    """One random change, as a user would write it."""
    choice = data.draw(st.integers(min_value=0, max_value=17))
    word = data.draw(words)
    number = data.draw(small)
    if choice == 0:
        order.count += number
    elif choice == 1:
        order.tags.append(word)
    elif choice == 2 and order.tags:
        order.tags.pop(0)
    elif choice == 3:
        order.labels.add(word)
    elif choice == 4 and order.lines:
        order.lines[number % len(order.lines)].qty += number
    elif choice == 5 and order.lines:
        order.lines[number % len(order.lines)].tags.append(word)
    elif choice == 6 and order.lines:
        line = order.lines[number % len(order.lines)]
        line.peak = line.peak + number  # $max: only a larger value is what is stored
    elif choice == 7:
        order.lines.append(DpLine(sku=word))
    elif choice == 8:
        order.lines.reverse()
    elif choice == 9 and order.by_sku:
        key = sorted(order.by_sku)[number % len(order.by_sku)]
        order.by_sku[key].qty += 1
    elif choice == 10:
        # A new value in place of another: its $max field only grows (the server
        # keeps the larger; a smaller one is not what would be stored).
        before = order.by_sku.get(word)
        order.by_sku[word] = DpLine(sku=word, qty=number, peak=before.peak if before else 0)
    elif choice == 11 and order.grid:
        order.grid[number % len(order.grid)].append(number)
    elif choice == 12:
        order.grid.append([number])
    elif choice == 13 and order.box.lines:
        order.box.lines[number % len(order.box.lines)].qty += 1
    elif choice == 14:
        order.box.label = word
    elif choice == 15:
        order.pushed.append(number)
    elif choice == 16:
        order.notes.setdefault(word, []).append(word)
    elif choice == 17:
        order.name = word


def _apply(raw: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    collection = mongomock.MongoClient().db.docs
    collection.insert_one(copy_stored(raw))
    if update:
        collection.update_one({"_id": raw["_id"]}, update)
    stored: dict[str, Any] = collection.find_one({"_id": raw["_id"]})
    return stored


def _as_set(doc: dict[str, Any]) -> dict[str, Any]:
    """A set field is stored as an array whose order means nothing."""
    if "labels" in doc:
        doc["labels"] = sorted(doc["labels"])
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=orders, data=st.data())
def test_the_update_turns_what_is_stored_into_what_memory_holds(
    order: DpOrder, data: st.DataObject
) -> None:
    meta = DpOrder._uow_meta
    raw = _drop_keys(copy_stored(order.to_bson()), data)
    loaded = DpOrder._uow_load(copy_stored(raw))
    old = loaded_snapshot(meta, loaded, raw)
    # The snapshot knows what is stored, defaults apart.
    assert _as_set(stored_form(old)) == _as_set(copy_stored(raw))
    for _ in range(data.draw(st.integers(min_value=0, max_value=4))):
        _mutate(loaded, data)
    new, update = whole_update(meta, loaded, old)
    fused_new, fused_update = snapshot_and_update(meta, loaded, old, tuple(meta.by_key))
    assert fused_update == update
    if fused_new is None:  # $set values only: the snapshot is left to be made
        fused_new = updated_snapshot(old, fused_update)
    assert stored_form(fused_new) == stored_form(new)
    assert _as_set(_apply(raw, update)) == _as_set(stored_form(new))
    # And the snapshot, defaults filled in, is what memory holds.
    again = DpOrder._uow_load(stored_form(new))
    assert _as_set(again.to_bson()) == _as_set(loaded.to_bson())


def test_a_default_is_no_change_and_a_change_of_it_is_written_whole() -> None:
    order = DpOrder(name="x")
    raw = order.to_bson()
    del raw["count"], raw["tags"]
    loaded = DpOrder._uow_load(copy_stored(raw))
    old = loaded_snapshot(DpOrder._uow_meta, loaded, raw)
    assert whole_update(DpOrder._uow_meta, loaded, old)[1] == {}
    loaded.count += 1
    loaded.tags.append("b")
    new, update = whole_update(DpOrder._uow_meta, loaded, old)
    assert update == {"$set": {"count": 6, "tags": ["a", "b"]}}
    loaded.count += 1
    assert whole_update(DpOrder._uow_meta, loaded, new)[1] == {"$inc": {"count": 1}}


def test_operators_at_depth_use_positional_paths() -> None:
    order = DpOrder(lines=[DpLine(sku="a", qty=1)], by_sku={"a": DpLine(qty=2)}, grid=[[1]])
    raw = order.to_bson()
    loaded = DpOrder._uow_load(copy_stored(raw))
    old = loaded_snapshot(DpOrder._uow_meta, loaded, raw)
    loaded.lines[0].qty += 2
    loaded.lines[0].tags.append("t")
    loaded.by_sku["a"].qty += 1
    loaded.grid[0].append(2)
    _, update = whole_update(DpOrder._uow_meta, loaded, old)
    assert update == {
        "$inc": {"lines.0.qty": 2, "by_sku.a.qty": 1},
        "$push": {"lines.0.tags": {"$each": ["t"]}, "grid.0": {"$each": [2]}},
    }


def test_a_list_reversed_after_an_append_is_set_whole() -> None:
    """Found by the property above: [p1, p0] + append p0, reversed, was diffed
    positionally (``$max`` 0 over a stored 1 at ``lines.0.peak``: nothing stored)."""
    order = DpOrder(lines=[DpLine(sku="a", peak=1), DpLine(sku="a", peak=0)])
    meta = DpOrder._uow_meta
    raw = copy_stored(order.to_bson())
    loaded = DpOrder._uow_load(copy_stored(raw))
    old = loaded_snapshot(meta, loaded, raw)
    loaded.lines.append(DpLine(sku="a"))
    loaded.lines.reverse()
    new, update = whole_update(meta, loaded, old)
    assert "lines" in update.get("$set", {})
    assert _as_set(_apply(raw, update)) == _as_set(stored_form(new))
    assert [line["peak"] for line in _apply(raw, update)["lines"]] == [0, 0, 1]
