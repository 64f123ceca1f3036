"""The one rule every write obeys: after a flush, stored == what the session holds."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson import ObjectId

import uow
from uow import Document, Session, field

from ._h8 import assert_recent, assert_stored_is_memory, stored


class A8Line(uow.Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    hi: int = field(default=0, on_update="$max")
    lo: int = field(default=100, on_update="$min")


class A8Order(Document):
    __collection__ = "a8_orders"
    name: str = ""
    lines: list[A8Line] = field(factory=list)
    by_sku: dict[str, A8Line] = field(factory=dict)
    grid: list[list[int]] = field(factory=list)
    meta: dict[str, dict[str, list[int]]] = field(factory=dict)


class A8Counter(Document):
    __collection__ = "a8_counters"
    name: str = ""
    hits: int = field(default=5, on_update="$inc")
    best: int = field(default=0, on_update="$max")
    worst: int = field(default=0, on_update="$min")
    log: list[str] = field(factory=lambda: ["a"], on_update="$push")
    seen: list[str] = field(factory=list, on_update="$addToSet")
    whole: list[int] = field(factory=list, on_update="$set")
    touched: datetime.datetime | None = field(default=None, on_update="$currentDate")
    plain: list[str] = field(factory=lambda: ["a"])
    where: A8Line = field(factory=lambda: A8Line(sku="d", qty=1))


OID = ObjectId()


def _load(db: Any, cls: type, oid: Any, **kw: Any) -> Any:
    s = Session(db, **kw)
    obj = s.get(cls, oid)
    assert obj is not None
    return s, obj


# ------------------------------------------------------------ missing keys


def test_missing_inc_field_stores_default_plus_delta(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x"})
    s, c = _load(db, A8Counter, OID)
    assert c.hits == 5
    assert not s.is_dirty(c)
    c.hits += 1
    s.commit()
    assert stored(db, c)["hits"] == 6
    c.hits += 1
    s.commit()
    assert stored(db, c)["hits"] == 7


def test_missing_push_field_stores_default_plus_appended(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x"})
    s, c = _load(db, A8Counter, OID)
    c.log.append("b")
    c.plain.append("b")
    s.commit()
    doc = stored(db, c)
    assert doc["log"] == ["a", "b"]
    assert doc["plain"] == ["a", "b"]
    c.log.append("c")
    s.commit()
    assert stored(db, c)["log"] == ["a", "b", "c"]


def test_missing_embedded_one_key_changed_stores_whole(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x"})
    s, c = _load(db, A8Counter, OID)
    c.where.qty += 3
    s.commit()
    assert stored(db, c)["where"] == {"sku": "d", "qty": 4, "tags": [], "hi": 0, "lo": 100}


def test_missing_max_min_fields_set_whole(db: Any) -> None:
    # default 0; stored missing; $max to -3 would leave the key at -3 (server max
    # of missing is the value), and $min to 3 similarly: the rule says $set first.
    db.a8_counters.insert_one({"_id": OID})
    s, c = _load(db, A8Counter, OID)
    c.best = -3
    c.worst = 3
    s.commit()
    doc = stored(db, c)
    assert doc["best"] == -3 and doc["worst"] == 3
    assert c.best == -3 and c.worst == 3


def test_missing_addtoset_field(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID})
    s, c = _load(db, A8Counter, OID)
    c.seen.append("q")
    s.commit()
    assert stored(db, c)["seen"] == ["q"]


def test_missing_keys_untouched_fields_not_written(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x"})
    s, c = _load(db, A8Counter, OID)
    c.name = "y"
    s.commit()
    doc = stored(db, c)
    doc.pop("touched")  # $currentDate: the server sets it on every update
    assert doc == {"_id": OID, "name": "y"}


def test_missing_keys_in_embedded_inside_list(db: Any) -> None:
    # an element stored without keys its class added later: change of qty
    db.a8_orders.insert_one({"_id": OID, "lines": [{"sku": "a"}, {"sku": "b", "qty": 2}]})
    s, o = _load(db, A8Order, OID)
    assert o.lines[0].qty == 0
    o.lines[0].qty += 2
    o.lines[1].qty += 1
    s.commit()
    doc = stored(db, o)
    assert doc["lines"][0]["qty"] == 2
    assert doc["lines"][1]["qty"] == 3
    assert o.lines[0].qty == 2


def test_missing_keys_embedded_inside_list_push_to_missing_tags(db: Any) -> None:
    db.a8_orders.insert_one({"_id": OID, "lines": [{"sku": "a"}]})
    s, o = _load(db, A8Order, OID)
    o.lines[0].tags.append("t")
    s.commit()
    assert stored(db, o)["lines"][0]["tags"] == ["t"]


def test_missing_max_in_embedded_inside_list(db: Any) -> None:
    db.a8_orders.insert_one({"_id": OID, "lines": [{"sku": "a"}]})
    s, o = _load(db, A8Order, OID)
    o.lines[0].lo = 500  # default 100 -> 500 with $min: stored must be 500
    o.lines[0].hi = -7  # default 0 -> -7 with $max: stored must be -7
    s.commit()
    line = stored(db, o)["lines"][0]
    assert line["lo"] == 500
    assert line["hi"] == -7


# ------------------------------------------------------------- operators


def test_declared_operators_basic(db: Any) -> None:
    s = Session(db)
    c = A8Counter(name="x")
    s.add(c)
    s.commit()
    c.hits += 3
    c.best = 10
    c.worst = -10
    c.log.append("b")
    c.seen.extend(["z", "z2"])
    c.whole.append(1)
    c.name = "y"
    s.commit()
    doc = stored(db, c)
    assert doc["hits"] == 8
    assert doc["best"] == 10 and doc["worst"] == -10
    assert doc["log"] == ["a", "b"]
    assert doc["seen"] == ["z", "z2"]
    assert doc["whole"] == [1]
    assert_recent(doc["touched"])


def test_max_lower_than_stored_memory_vs_store(db: Any) -> None:
    # SPEC: after a flush the in-memory value is the one this session computed;
    # "$max": the server keeps the larger. Another session raised it meanwhile.
    s = Session(db)
    c = A8Counter(name="x", best=5)
    s.add(c)
    s.commit()
    s2, c2 = _load(db, A8Counter, c.id)
    c2.best = 50
    s2.commit()
    c.best = 7
    s.commit()
    assert stored(db, c)["best"] == 50


def test_list_removal_with_push_operator_falls_back_to_set(db: Any) -> None:
    s = Session(db)
    c = A8Counter(name="x", log=["a", "b", "c"], seen=["x", "y"])
    s.add(c)
    s.commit()
    c.log.remove("b")
    c.seen.reverse()
    s.commit()
    doc = stored(db, c)
    assert doc["log"] == ["a", "c"]
    assert doc["seen"] == ["y", "x"]


def test_addtoset_with_duplicate_in_memory(db: Any) -> None:
    # $addToSet with a value already stored: the server keeps one, memory has two.
    # The rule says stored == memory; SPEC says $addToSet is used for every change.
    s = Session(db)
    c = A8Counter(name="x", seen=["a"])
    s.add(c)
    s.commit()
    c.seen.append("a")
    s.commit()
    assert stored(db, c)["seen"] == c.seen


def test_currentdate_reloaded_on_next_read(db: Any) -> None:
    s = Session(db)
    c = A8Counter(name="x")
    s.add(c)
    s.commit()
    c.name = "y"
    s.commit()
    doc = stored(db, c)
    assert_recent(doc["touched"])
    assert c.touched == doc["touched"]


# ------------------------------------------------------------ partial docs


def test_partial_assign_unloaded_inc_field_is_set(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x", "hits": 40, "log": ["q"], "best": 9})
    s = Session(db)
    c = s.query(A8Counter).fields("name").one()
    with pytest.raises(uow.FieldNotLoaded):
        _ = c.hits
    c.hits = 3
    c.log = ["z"]
    c.best = 1
    s.commit()
    doc = stored(db, c)
    assert doc["hits"] == 3
    assert doc["log"] == ["z"]
    assert doc["best"] == 1
    assert doc["name"] == "x"


def test_partial_save_keeps_unloaded_fields(db: Any) -> None:
    db.a8_orders.insert_one(
        {
            "_id": OID,
            "name": "x",
            "lines": [{"sku": "a", "qty": 1}],
            "meta": {"k": {"z": [1]}},
            "extra": 5,
        }
    )
    s = Session(db)
    o = s.query(A8Order).fields(A8Order.name).one()
    o.name = "y"
    s.commit()
    assert stored(db, o) == {
        "_id": OID,
        "name": "y",
        "lines": [{"sku": "a", "qty": 1}],
        "meta": {"k": {"z": [1]}},
        "extra": 5,
    }


def test_partial_then_full_query_fills_in(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x", "hits": 40})
    s = Session(db)
    c = s.query(A8Counter).fields("name").one()
    c.name = "changed"
    c2 = s.query(A8Counter).one()
    assert c2 is c
    assert c.name == "changed"  # unflushed change kept (autoflush flushed it anyway)
    assert c.hits == 40
    c.hits += 1
    s.commit()
    assert stored(db, c)["hits"] == 41
    assert stored(db, c)["name"] == "changed"


def test_clone_partial_raises_naming_fields(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x", "hits": 40})
    s = Session(db)
    c = s.query(A8Counter).fields("name").one()
    with pytest.raises(uow.FieldNotLoaded) as ei:
        s.clone(c)
    assert "hits" in str(ei.value)


def test_partial_mutate_unloaded_list_raises(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": "x", "plain": ["q"]})
    s = Session(db)
    c = s.query(A8Counter).fields("name").one()
    with pytest.raises(AttributeError):
        c.plain.append("z")
    s.commit()
    assert stored(db, c)["plain"] == ["q"]


# ------------------------------------------------------ positional paths


def test_positional_paths_in_list_elements(db: Any) -> None:
    s = Session(db)
    o = A8Order(
        name="x",
        lines=[A8Line(sku="a", qty=1, tags=["p"]), A8Line(sku="b", qty=2)],
        grid=[[1, 2], [3]],
    )
    s.add(o)
    s.commit()
    o.lines[0].qty += 5
    o.lines[0].tags.append("q")
    o.lines[1].sku = "B"
    o.grid[0].append(9)
    o.grid[1][0] = 33
    s.commit()
    assert_stored_is_memory(db, o)
    doc = stored(db, o)
    assert doc["lines"][0]["qty"] == 6
    assert doc["grid"] == [[1, 2, 9], [33]]


def test_positional_concurrent_inc_on_elements(db: Any) -> None:
    s = Session(db)
    o = A8Order(lines=[A8Line(sku="a", qty=1)])
    s.add(o)
    s.commit()
    s2, o2 = _load(db, A8Order, o.id)
    o.lines[0].qty += 1
    o.lines[0].tags.append("from1")
    s.commit()
    o2.lines[0].qty += 10
    o2.lines[0].tags.append("from2")
    s2.commit()
    doc = stored(db, o)
    assert doc["lines"][0]["qty"] == 12
    assert doc["lines"][0]["tags"] == ["from1", "from2"]


def test_dict_value_embedded_inc_path(db: Any) -> None:
    s = Session(db)
    o = A8Order(by_sku={"a": A8Line(sku="a", qty=1)})
    s.add(o)
    s.commit()
    s2, o2 = _load(db, A8Order, o.id)
    o.by_sku["a"].qty += 1
    s.commit()
    o2.by_sku["a"].qty += 10
    s2.commit()
    assert stored(db, o)["by_sku"]["a"]["qty"] == 12


def test_list_reordered_and_changed_element_set_whole(db: Any) -> None:
    s = Session(db)
    o = A8Order(lines=[A8Line(sku="a", qty=1), A8Line(sku="b", qty=2)])
    s.add(o)
    s.commit()
    o.lines.reverse()
    o.lines[0].qty += 5  # was b: 2 -> 7
    s.commit()
    assert_stored_is_memory(db, o)
    assert [(x["sku"], x["qty"]) for x in stored(db, o)["lines"]] == [("b", 7), ("a", 1)]


def test_list_shrunk_then_changed_element(db: Any) -> None:
    s = Session(db)
    o = A8Order(lines=[A8Line(sku="a", qty=1), A8Line(sku="b", qty=2)])
    s.add(o)
    s.commit()
    o.lines.pop(0)
    o.lines[0].qty += 1
    s.commit()
    assert_stored_is_memory(db, o)


def test_element_change_and_append_same_flush(db: Any) -> None:
    s = Session(db)
    o = A8Order(lines=[A8Line(sku="a", qty=1)])
    s.add(o)
    s.commit()
    o.lines[0].qty += 1
    o.lines.append(A8Line(sku="b", qty=3))
    s.commit()
    assert_stored_is_memory(db, o)


def test_list_of_lists_element_replaced_and_appended(db: Any) -> None:
    s = Session(db)
    o = A8Order(grid=[[1], [2, 3]])
    s.add(o)
    s.commit()
    o.grid[1].pop()
    o.grid[0].append(4)
    o.grid.append([])
    s.commit()
    assert_stored_is_memory(db, o)


def test_same_embedded_object_in_two_elements(db: Any) -> None:
    s = Session(db)
    o = A8Order(lines=[A8Line(sku="a", qty=1), A8Line(sku="b", qty=1)])
    s.add(o)
    s.commit()
    shared = A8Line(sku="s", qty=1)
    o.lines[0] = shared
    o.lines[1] = shared
    s.commit()
    assert_stored_is_memory(db, o)
    shared.qty += 1  # both elements change in memory
    s.commit()
    assert_stored_is_memory(db, o)


# -------------------------------------------------------- legacy values


def test_legacy_wrong_type_loads_and_never_blocks_flush(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "name": 42, "hits": "many", "plain": "notalist"})
    s, c = _load(db, A8Counter, OID)
    assert c.name == 42
    assert c.hits == "many"
    c.best = 3
    s.commit()
    doc = stored(db, c)
    assert doc["name"] == 42 and doc["hits"] == "many" and doc["plain"] == "notalist"
    assert doc["best"] == 3


def test_legacy_wrong_type_in_list_element_keeps_it(db: Any) -> None:
    db.a8_orders.insert_one({"_id": OID, "lines": [{"sku": 5, "qty": "x"}, {"sku": "b", "qty": 1}]})
    s, o = _load(db, A8Order, OID)
    o.lines[1].qty += 1
    s.commit()
    doc = stored(db, o)
    assert doc["lines"][0] == {"sku": 5, "qty": "x"}
    assert doc["lines"][1]["qty"] == 2


def test_legacy_inc_field_assign_number_over_string(db: Any) -> None:
    # replacing a legacy string with a valid number: $inc from "many" cannot work
    db.a8_counters.insert_one({"_id": OID, "hits": "many"})
    s, c = _load(db, A8Counter, OID)
    c.hits = 3
    s.commit()
    assert stored(db, c)["hits"] == 3


def test_legacy_null_in_inc_field(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "hits": None})
    s, c = _load(db, A8Counter, OID)
    c.hits = 3
    s.commit()
    assert stored(db, c)["hits"] == 3


def test_legacy_list_push_field_stored_as_scalar(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "log": "legacy"})
    s, c = _load(db, A8Counter, OID)
    c.log = ["a", "b"]
    s.commit()
    assert stored(db, c)["log"] == ["a", "b"]


def test_legacy_embedded_stored_as_string(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "where": "legacy"})
    s, c = _load(db, A8Counter, OID)
    c.where = A8Line(sku="n")
    s.commit()
    assert stored(db, c)["where"] == {"sku": "n", "qty": 0, "tags": [], "hi": 0, "lo": 100}


# ----------------------------------------------------------- unknown keys


def test_unknown_keys_kept_at_every_depth(db: Any) -> None:
    db.a8_orders.insert_one(
        {
            "_id": OID,
            "name": "x",
            "top_extra": {"a": 1},
            "lines": [{"sku": "a", "qty": 1, "line_extra": [1, 2]}],
            "by_sku": {"k": {"sku": "k", "qty": 1, "dict_extra": True}},
            "meta": {"m": {"n": [1]}},
        }
    )
    s, o = _load(db, A8Order, OID)
    o.name = "y"
    o.lines[0].qty += 1
    o.by_sku["k"].qty += 1
    s.commit()
    doc = stored(db, o)
    assert doc["top_extra"] == {"a": 1}
    assert doc["lines"][0]["line_extra"] == [1, 2]
    assert doc["by_sku"]["k"]["dict_extra"] is True


def test_unknown_keys_kept_when_list_set_whole(db: Any) -> None:
    db.a8_orders.insert_one(
        {
            "_id": OID,
            "lines": [
                {"sku": "a", "qty": 1, "x": 1},
                {"sku": "b", "qty": 2, "x": 2},
            ],
        }
    )
    s, o = _load(db, A8Order, OID)
    o.lines.reverse()
    s.commit()
    doc = stored(db, o)
    # SPEC is silent on whether missing keys of elements are materialised by a
    # whole-list $set; the unknown keys must survive, in the new order.
    assert [(x["sku"], x["qty"], x["x"]) for x in doc["lines"]] == [("b", 2, 2), ("a", 1, 1)]


def test_unknown_keys_kept_when_element_removed(db: Any) -> None:
    db.a8_orders.insert_one(
        {
            "_id": OID,
            "lines": [
                {"sku": "a", "qty": 1, "x": 1},
                {"sku": "b", "qty": 2, "x": 2},
            ],
        }
    )
    s, o = _load(db, A8Order, OID)
    del o.lines[0]
    s.commit()
    assert [(x["sku"], x["qty"], x["x"]) for x in stored(db, o)["lines"]] == [("b", 2, 2)]


def test_unknown_keys_kept_on_replace_after_delete_add(db: Any) -> None:
    db.a8_orders.insert_one({"_id": OID, "name": "x", "extra": 1})
    s, o = _load(db, A8Order, OID)
    s.delete(o)
    n = A8Order(id=OID, name="new")
    s.add(n)
    s.commit()
    # a replace by a NEW object: the stored doc is what the new object holds
    assert stored(db, n) == n.to_bson()


def test_unknown_keys_embedded_moved_between_fields(db: Any) -> None:
    db.a8_orders.insert_one({"_id": OID, "lines": [{"sku": "a", "qty": 1, "x": 1}], "by_sku": {}})
    s, o = _load(db, A8Order, OID)
    o.by_sku["a"] = o.lines[0]
    s.commit()
    doc = stored(db, o)
    assert doc["lines"][0] == {"sku": "a", "qty": 1, "x": 1}
    # the moved element: its stored form is what to_bson says
    assert doc["by_sku"]["a"] == o.to_bson()["by_sku"]["a"]


def test_unknown_keys_inside_embedded_field_to_bson(db: Any) -> None:
    db.a8_counters.insert_one({"_id": OID, "where": {"sku": "a", "qty": 1, "zz": 9}})
    s, c = _load(db, A8Counter, OID)
    c.where.qty += 1
    s.commit()
    assert stored(db, c)["where"]["zz"] == 9
    assert stored(db, c)["where"]["qty"] == 2


def test_nested_dicts_of_lists(db: Any) -> None:
    db.a8_orders.insert_one({"_id": OID, "meta": {"a": {"b": [1, 2], "c": [3]}}})
    s, o = _load(db, A8Order, OID)
    o.meta["a"]["b"][1] = 20
    o.meta["a"]["c"].append(4)
    del o.meta["a"]["b"]
    o.meta["n"] = {"x": []}
    s.commit()
    assert stored(db, o)["meta"] == {"a": {"c": [3, 4]}, "n": {"x": []}}
