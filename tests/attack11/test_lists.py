"""Legacy values inside lists of embedded documents and nested lists.

SPEC: "Stored values of another type than declared (legacy data) load as they
are and never block a flush: a flush validates what this session changed, not
what it merely loaded"; "a wrong value put in place by in-place mutation is
refused at flush" (ValidationError naming class, field, expected, got);
"Unknown stored keys are kept at every depth, inside embedded documents and list
elements too"; after a flush, stored == memory.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from bson import ObjectId
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

import uow
from uow import Document, Session, field

from ._h import SETTINGS, assert_stored_equals_memory, stored, tag, tag_stored

COLL = "a11_orders"


class Item(uow.Embedded):
    sku: str = ""
    qty: int = 0
    price: float = 0.0
    tags: list[str] = field(factory=list)


class Order(Document):
    __collection__ = COLL
    name: str = ""
    items: list[Item] = field(factory=list)
    grid: list[list[int]] = field(factory=list)
    by: dict[str, Item] = field(factory=dict)


def legacy_items() -> list[dict[str, Any]]:
    return [
        {"sku": 1, "qty": "2", "price": 1, "tags": ["a", 3], "uid": "u0"},
        {"sku": "b", "qty": Int64(5), "price": True, "tags": [], "uid": "u1"},
        {"sku": None, "qty": 2.0, "price": 2.5, "tags": [None, "c"], "uid": "u2"},
    ]


RAW: dict[str, Any] = {
    "name": 7,
    "items": legacy_items(),
    "grid": [[1, "x"], [2.0], [Int64(3), True]],
    "by": {"k": {"sku": 5, "qty": 1.5, "price": "p", "tags": [1], "uid": "bk"}},
}


def load(db: Any, raw: dict[str, Any] | None = None) -> tuple[Session, Any, dict[str, Any]]:
    raw = copy.deepcopy(RAW if raw is None else raw)
    oid = ObjectId()
    db[COLL].insert_one({"_id": oid, **raw})
    s = Session(db)
    obj = s.get(Order, oid)
    assert obj is not None
    return s, obj, raw


def check_items(db: Any, obj: Any, uids: dict[int, str]) -> None:
    """Stored items equal memory by BSON type, and each element's unknown key
    follows the element it was loaded with."""
    doc = stored(db, obj)
    assert tag_stored(doc["items"], obj.items) == tag(obj.items)
    for mem, st_el in zip(obj.items, doc["items"], strict=False):
        assert st_el.get("uid") == uids.get(id(mem)), (st_el, mem)


def uid_map(obj: Any) -> dict[int, str]:
    return {id(el): f"u{i}" for i, el in enumerate(obj.items)}


def test_change_one_element_keeps_legacy_elsewhere(db: Any) -> None:
    s, obj, raw = load(db)
    obj.items[1].qty = 6
    s.commit()
    doc = stored(db, obj)
    assert tag(doc["items"][1]["qty"]) == tag(6)
    want = raw["items"]
    want[1]["qty"] = 6
    assert tag(doc["items"]) == tag(want)
    assert tag(doc["grid"]) == tag(raw["grid"]) and tag(doc["by"]) == tag(raw["by"])
    assert tag(doc["name"]) == tag(7)


@pytest.mark.parametrize(
    "op",
    [
        "reverse",
        "pop0",
        "pop_last",
        "insert0",
        "insert_mid",
        "swap",
        "replace1",
        "clear",
        "del_slice",
    ],
)
def test_reshape_list_with_legacy_elements(db: Any, op: str) -> None:
    s, obj, raw = load(db)
    uids = uid_map(obj)
    new = Item(sku="n", qty=1, price=0.5, tags=["t"])
    if op == "reverse":
        obj.items.reverse()
    elif op == "pop0":
        obj.items.pop(0)
    elif op == "pop_last":
        obj.items.pop()
    elif op == "insert0":
        obj.items.insert(0, new)
    elif op == "insert_mid":
        obj.items.insert(1, new)
    elif op == "swap":
        obj.items[0], obj.items[2] = obj.items[2], obj.items[0]
    elif op == "replace1":
        obj.items[1] = new
    elif op == "clear":
        obj.items.clear()
    elif op == "del_slice":
        del obj.items[0:2]
    obj.items and setattr(obj.items[-1], "sku", "last")
    s.commit()
    check_items(db, obj, uids)
    doc = stored(db, obj)
    assert tag(doc["grid"]) == tag(raw["grid"])
    assert s.flush().round_trips == 0


@pytest.mark.parametrize("n", [1, 2, 3])
def test_insert_before_legacy_element(db: Any, n: int) -> None:
    items = [{"sku": "a", "tags": []} for _ in range(n - 1)] + [
        {"sku": "c", "tags": [None], "uid": "L"}
    ]
    s, obj, _raw = load(db, {"items": items})
    obj.items.insert(n - 1, Item(sku="new"))
    s.commit()
    doc = stored(db, obj)
    assert doc["items"][n - 1]["sku"] == "new"
    # The moved element keeps its legacy value and its unknown key; the fields it
    # lacked may be written with the defaults the session holds (the list changed).
    moved = doc["items"][n]
    assert {k: moved[k] for k in ("sku", "tags", "uid")} == {"sku": "c", "tags": [None], "uid": "L"}
    assert moved.get("qty", 0) == obj.items[n].qty and moved.get("price", 0.0) == obj.items[n].price


def test_append_to_tags_of_element_holding_legacy_tag(db: Any) -> None:
    s, obj, _raw = load(db)
    obj.items[0].tags.append("b")
    obj.items[2].tags.append("d")
    s.commit()
    doc = stored(db, obj)
    assert tag(doc["items"][0]["tags"]) == tag(["a", 3, "b"])
    assert tag(doc["items"][2]["tags"]) == tag([None, "c", "d"])
    assert tag(doc["items"][0]["sku"]) == tag(1) and doc["items"][0]["uid"] == "u0"


def test_remove_from_tags_leaving_only_legacy_value(db: Any) -> None:
    s, obj, _raw = load(db)
    obj.items[0].tags.remove("a")  # what is left, [3], was merely loaded
    s.commit()
    assert tag(stored(db, obj)["items"][0]["tags"]) == tag([3])


def test_nested_list_legacy_then_change(db: Any) -> None:
    s, obj, _raw = load(db)
    obj.grid[0].append(5)
    obj.grid[1][0] = 9
    obj.grid[2].reverse()
    s.commit()
    doc = stored(db, obj)
    assert tag(doc["grid"]) == tag([[1, "x", 5], [9], [True, Int64(3)]])
    assert tag(doc["grid"]) == tag(obj.grid)


def test_dict_of_embedded_legacy_then_change(db: Any) -> None:
    s, obj, _raw = load(db)
    obj.by["k"].sku = "fixed"
    obj.by["new"] = Item(sku="z")
    s.commit()
    doc = stored(db, obj)
    assert tag(doc["by"]["k"]["qty"]) == tag(1.5) and doc["by"]["k"]["uid"] == "bk"
    assert doc["by"]["k"]["sku"] == "fixed"
    assert tag_stored(doc["by"], obj.by) == tag(obj.by)


BAD_MUTATIONS = {
    "int_in_element_tags": (lambda o: o.items[1].tags.append(3), ("items", "tags")),
    "int_in_legacy_element_tags": (lambda o: o.items[0].tags.append(4), ("items", "tags")),
    "str_in_grid": (lambda o: o.grid[1].append("y"), ("grid",)),
    "str_in_legacy_grid_row": (lambda o: o.grid[0].append("y"), ("grid",)),
    "dict_item_in_items": (lambda o: o.items.append({"sku": "x"}), ("items",)),
    "int_in_dict_value_tags": (lambda o: o.by["k"].tags.append(2), ("by", "tags")),
    "wrong_row_in_grid": (lambda o: o.grid.insert(0, ["q"]), ("grid",)),
}


@pytest.mark.parametrize("case", sorted(BAD_MUTATIONS))
def test_wrong_value_put_by_session_is_refused(db: Any, case: str) -> None:
    mutate, words = BAD_MUTATIONS[case]
    s, obj, _raw = load(db)
    before = stored(db, obj)
    obj.name = "also changed"
    mutate(obj)
    with pytest.raises(uow.ValidationError) as info:
        s.flush()
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert "Order" in msg
    s.rollback()
    assert stored(db, obj) == before


def test_wrong_value_removed_then_flush_works(db: Any) -> None:
    s, obj, _raw = load(db)
    obj.items[1].tags.append(3)
    obj.items[1].tags.append("ok")
    with pytest.raises(uow.ValidationError):
        s.flush()
    obj.items[1].tags.remove(3)
    s.commit()
    assert tag(stored(db, obj)["items"][1]["tags"]) == tag(["ok"])
    assert_stored_equals_memory(db, obj, ("items",))


# ---------------------------------------------------------------- hypothesis


def ops_strategy(with_insert: bool) -> Any:
    return st.lists(
        st.one_of(
            st.tuples(st.just("reverse")),
            st.tuples(st.just("pop"), st.integers(0, 5)),
            *(
                [st.tuples(st.just("insert"), st.integers(0, 5), st.text("xyz", max_size=2))]
                if with_insert
                else []
            ),
            st.tuples(st.just("sku"), st.integers(0, 5), st.text("xyz", max_size=2)),
            st.tuples(st.just("qty"), st.integers(0, 5), st.integers(-2, 2)),
            st.tuples(st.just("price"), st.integers(0, 5), st.sampled_from([1.0, 1, 2.5])),
            st.tuples(st.just("tag"), st.integers(0, 5), st.text("xyz", max_size=2)),
            st.tuples(st.just("untag"), st.integers(0, 5)),
            st.tuples(st.just("grid"), st.integers(0, 3), st.integers(0, 3)),
        ),
        min_size=1,
        max_size=5,
    )


@SETTINGS
@given(rounds=st.lists(ops_strategy(False), min_size=1, max_size=3))
def test_property_list_ops_over_legacy(db: Any, rounds: list[Any]) -> None:
    run_ops(db, rounds)


@SETTINGS
@given(rounds=st.lists(ops_strategy(True), min_size=1, max_size=3))
def test_property_list_ops_with_inserts_over_legacy(db: Any, rounds: list[Any]) -> None:
    run_ops(db, rounds)


def run_ops(db: Any, rounds: list[Any]) -> None:
    db[COLL].delete_many({})
    s, obj, _raw = load(db)
    uids = uid_map(obj)
    try:
        for ops in rounds:
            for op in ops:
                n = len(obj.items)
                kind = op[0]
                if kind == "reverse":
                    obj.items.reverse()
                elif kind == "insert":
                    obj.items.insert(op[1] % (n + 1), Item(sku=op[2]))
                elif kind == "grid":
                    if obj.grid:
                        obj.grid[op[1] % len(obj.grid)].append(op[2])
                elif n == 0:
                    continue
                elif kind == "pop":
                    obj.items.pop(op[1] % n)
                elif kind == "sku":
                    obj.items[op[1] % n].sku = op[2]
                elif kind == "qty":
                    obj.items[op[1] % n].qty = op[2]
                elif kind == "price":
                    obj.items[op[1] % n].price = op[2]
                elif kind == "tag":
                    obj.items[op[1] % n].tags.append(op[2])
                elif kind == "untag":
                    t = obj.items[op[1] % n].tags
                    if t:
                        t.pop()
            s.commit()
            check_items(db, obj, uids)
            doc = stored(db, obj)
            assert tag(doc["grid"]) == tag(obj.grid)
            assert tag(doc["name"]) == tag(7)
            assert s.flush().round_trips == 0
    finally:
        s.close()
