"""A list changed inside its elements AND appended to in one flush: the changes go
on positional paths, the append as `$push`; another writer's concurrent append or
`$inc` survives; stored equals memory afterwards (and after a reload)."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import emb, insert_raw, reload, stored


class A3Line(Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    price: int = 0
    tags: list[str] = field(factory=list)


class A3Box(Embedded):
    label: str = ""
    lines: list[A3Line] = field(factory=list)


class A3Order(Document):
    __collection__ = "a3_orders"

    name: str
    lines: list[A3Line] = field(factory=list)
    grid: list[list[int]] = field(factory=list)
    by_key: dict[str, list[A3Line]] = field(factory=dict)
    box: A3Box | None = None
    notes: list[str] = field(factory=list)
    hits: int = field(default=0, on_update="$inc")


class A3VOrder(Document):
    __collection__ = "a3_vorders"

    name: str
    lines: list[A3Line] = field(factory=list)
    version: int = field(default=0, version=True)


class A3DbnLine(Embedded):
    sku: str = field(db_name="s")
    qty: int = field(default=0, on_update="$inc", db_name="q")


class A3DbnOrder(Document):
    __collection__ = "a3_dbn_orders"

    name: str
    lines: list[A3DbnLine] = field(factory=list, db_name="ls")


def _line(sku: str, qty: int = 0, price: int = 0, tags: list[str] | None = None) -> dict[str, Any]:
    return {"sku": sku, "qty": qty, "price": price, "tags": list(tags or [])}


def _raw_order(**values: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "o",
        "lines": [_line("a", 1, 10, ["x"]), _line("b", 2, 20)],
        "grid": [[1, 2], [3]],
        "by_key": {"k": [_line("c", 3, 30)]},
        "box": {"label": "B", "lines": [_line("d", 4, 40)]},
        "notes": ["n1"],
        "hits": 0,
    }
    doc.update(values)
    return doc


def _assert_order_matches(db: Any, o: A3Order) -> None:
    raw = stored(db, "a3_orders", o.id)
    assert raw["lines"] == emb(o.lines)
    assert raw["grid"] == o.grid
    assert raw["by_key"] == emb(o.by_key)
    assert raw["box"] == emb(o.box)
    assert raw["notes"] == o.notes
    assert raw["hits"] == o.hits
    again = reload(db, A3Order, o.id)
    assert emb(again.lines) == emb(o.lines)
    assert emb(again.by_key) == emb(o.by_key)
    assert emb(again.box) == emb(o.box)
    assert again.grid == o.grid


def test_set_inside_element_and_append_in_one_flush(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].price = 11
    o.lines.append(A3Line(sku="z", qty=5))
    s.commit()
    _assert_order_matches(db, o)
    assert stored(db, "a3_orders", oid)["lines"][2] == _line("z", 5)


def test_inc_inside_element_and_append_keeps_concurrent_inc(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    db.a3_orders.update_one({"_id": oid}, {"$inc": {"lines.0.qty": 100}})
    o.lines[0].qty += 2
    o.lines.append(A3Line(sku="z"))
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["lines"][0]["qty"] == 103
    assert [line["sku"] for line in raw["lines"]] == ["a", "b", "z"]


def test_change_inside_and_append_keeps_concurrent_append(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    db.a3_orders.update_one({"_id": oid}, {"$push": {"lines": _line("other", 9)}})
    o.lines[1].price = 21
    o.lines.append(A3Line(sku="mine", qty=1))
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert [line["sku"] for line in raw["lines"]] == ["a", "b", "other", "mine"]
    assert raw["lines"][1]["price"] == 21
    assert raw["lines"][3] == _line("mine", 1)


def test_inner_list_append_and_outer_append_in_one_flush(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].tags.append("y")
    o.lines.append(A3Line(sku="z", tags=["t"]))
    s.commit()
    _assert_order_matches(db, o)


def test_inner_list_append_and_outer_append_keep_concurrent_inner_push(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    db.a3_orders.update_one({"_id": oid}, {"$push": {"lines.0.tags": "theirs"}})
    o.lines[0].tags.append("mine")
    o.lines.append(A3Line(sku="z"))
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["lines"][0]["tags"] == ["x", "theirs", "mine"]
    assert [line["sku"] for line in raw["lines"]] == ["a", "b", "z"]


def test_list_of_lists_inner_change_and_outer_append(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.grid[0][1] = 20
    o.grid[1].append(4)
    o.grid.append([5, 6])
    s.commit()
    _assert_order_matches(db, o)
    assert stored(db, "a3_orders", oid)["grid"] == [[1, 20], [3, 4], [5, 6]]


def test_dict_value_list_change_inside_and_append(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    db.a3_orders.update_one({"_id": oid}, {"$inc": {"by_key.k.0.qty": 10}})
    o.by_key["k"][0].qty += 1
    o.by_key["k"].append(A3Line(sku="e", qty=7))
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["by_key"]["k"] == [_line("c", 14, 30), _line("e", 7)]


def test_nested_embedded_list_change_inside_and_append(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    assert o.box is not None
    db.a3_orders.update_one({"_id": oid}, {"$push": {"box.lines": _line("other")}})
    o.box.lines[0].qty += 3
    o.box.lines.append(A3Line(sku="mine"))
    o.box.label = "C"
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["box"]["label"] == "C"
    assert raw["box"]["lines"] == [_line("d", 7, 40), _line("other"), _line("mine")]


def test_change_inside_and_append_and_top_level_inc_and_push_all_at_once(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    db.a3_orders.update_one({"_id": oid}, {"$inc": {"hits": 5}, "$push": {"notes": "theirs"}})
    o.hits += 1
    o.notes.append("mine")
    o.lines[0].qty += 1
    o.lines[1].tags.append("q")
    o.lines.append(A3Line(sku="z"))
    o.grid.append([9])
    o.grid[0].append(0)
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["hits"] == 6
    assert raw["notes"] == ["n1", "theirs", "mine"]
    assert raw["lines"] == [_line("a", 2, 10, ["x"]), _line("b", 2, 20, ["q"]), _line("z")]
    assert raw["grid"] == [[1, 2, 0], [3], [9]]


def test_change_inside_and_append_then_change_appended_next_flush(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="z", qty=1))
    s.commit()
    o.lines[2].qty += 4
    o.lines[2].tags.append("late")
    o.lines[1].price = 99
    s.commit()
    _assert_order_matches(db, o)
    assert stored(db, "a3_orders", oid)["lines"][2] == _line("z", 5, 0, ["late"])


def test_appended_element_changed_before_flush_is_pushed_as_changed(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    new = A3Line(sku="z", qty=1)
    o.lines.append(new)
    o.lines[0].qty += 1
    new.qty += 2
    new.tags.append("t")
    s.commit()
    _assert_order_matches(db, o)
    assert stored(db, "a3_orders", oid)["lines"][2] == _line("z", 3, 0, ["t"])


def test_two_sessions_each_change_inside_and_append(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s1, s2 = uow.Session(db), uow.Session(db)
    o1, o2 = s1.get(A3Order, oid), s2.get(A3Order, oid)
    o1.lines[0].qty += 1
    o1.lines.append(A3Line(sku="one"))
    o2.lines[0].qty += 10
    o2.lines[1].qty += 100
    o2.lines.append(A3Line(sku="two"))
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_orders", oid)
    assert [line["qty"] for line in raw["lines"]] == [12, 102, 0, 0]
    assert [line["sku"] for line in raw["lines"]] == ["a", "b", "one", "two"]


def test_versioned_change_inside_and_append_bumps_once(db: Any) -> None:
    oid = insert_raw(db, "a3_vorders", {"name": "v", "lines": [_line("a", 1)], "version": 3})
    s = uow.Session(db)
    o = s.get(A3VOrder, oid)
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="b"))
    s.commit()
    raw = stored(db, "a3_vorders", oid)
    assert raw["version"] == 4 == o.version
    assert raw["lines"] == emb(o.lines) == [_line("a", 2), _line("b")]


def test_versioned_change_inside_and_append_lost_race_applies_nothing(db: Any) -> None:
    oid = insert_raw(db, "a3_vorders", {"name": "v", "lines": [_line("a", 1)], "version": 3})
    s = uow.Session(db)
    o = s.get(A3VOrder, oid)
    db.a3_vorders.update_one({"_id": oid}, {"$set": {"version": 4}})
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="b"))
    with pytest.raises(uow.StaleDocumentError):
        s.commit()
    raw = stored(db, "a3_vorders", oid)
    assert raw["lines"] == [_line("a", 1)], "half of a stale update was applied"
    assert raw["version"] == 4


def test_versioned_missing_version_key_change_inside_and_append(db: Any) -> None:
    """A stored document without the version key: matched by absence; its first
    update sets the key (SPEC). Both statements of the update must apply."""
    oid = insert_raw(db, "a3_vorders", {"name": "v", "lines": [_line("a", 1)]})
    s = uow.Session(db)
    o = s.get(A3VOrder, oid)
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="b"))
    s.commit()
    raw = stored(db, "a3_vorders", oid)
    assert raw["lines"] == [_line("a", 2), _line("b")]
    assert raw["version"] == o.version


def test_db_name_change_inside_and_append(db: Any) -> None:
    oid = insert_raw(db, "a3_dbn_orders", {"name": "d", "ls": [{"s": "a", "q": 1}]})
    s = uow.Session(db)
    o = s.get(A3DbnOrder, oid)
    db.a3_dbn_orders.update_one({"_id": oid}, {"$inc": {"ls.0.q": 10}})
    o.lines[0].qty += 1
    o.lines.append(A3DbnLine(sku="b", qty=2))
    s.commit()
    raw = stored(db, "a3_dbn_orders", oid)
    assert raw["ls"] == [{"s": "a", "q": 12}, {"s": "b", "q": 2}]
    assert "lines" not in raw


def test_missing_inner_key_change_inside_and_append(db: Any) -> None:
    """An element stored without `tags` (legacy): the append to its tags is a $set
    of the whole default-based list; the outer append is a $push."""
    raw0 = _raw_order(lines=[{"sku": "a", "qty": 1, "price": 0}])
    oid = insert_raw(db, "a3_orders", raw0)
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].tags.append("t")
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="z"))
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["lines"] == [_line("a", 2, 0, ["t"]), _line("z")]


def test_missing_inc_key_in_element_and_append(db: Any) -> None:
    """`qty` missing in the stored element: the first change is a $set of its value
    (default 0 + 3 = 3), whatever the concurrent state of other keys."""
    oid = insert_raw(db, "a3_orders", _raw_order(lines=[{"sku": "a", "price": 1, "tags": []}]))
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].qty += 3
    o.lines.append(A3Line(sku="z", qty=1))
    s.commit()
    assert stored(db, "a3_orders", oid)["lines"] == [_line("a", 3, 1), _line("z", 1)]
    o.lines[0].qty += 1
    s.commit()
    assert stored(db, "a3_orders", oid)["lines"][0]["qty"] == 4


def test_unknown_keys_in_elements_kept_through_change_and_append(db: Any) -> None:
    raw0 = _raw_order(lines=[{**_line("a", 1), "legacy": {"deep": [1]}}])
    oid = insert_raw(db, "a3_orders", raw0)
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="z"))
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["lines"][0] == {**_line("a", 2), "legacy": {"deep": [1]}}
    assert raw["lines"][1] == _line("z")


@pytest.mark.transactions
def test_change_inside_and_append_rolled_back_then_redone(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="z"))
    s.flush()
    s.rollback()
    assert stored(db, "a3_orders", oid)["lines"] == _raw_order()["lines"]
    assert emb(o.lines) == _raw_order()["lines"]
    o.lines[0].qty += 5
    o.lines.append(A3Line(sku="y"))
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert [line["qty"] for line in raw["lines"]] == [6, 2, 0]
    assert [line["sku"] for line in raw["lines"]] == ["a", "b", "y"]
    assert raw["lines"] == emb(o.lines)


@pytest.mark.transactions
def test_change_inside_and_append_two_flushes_one_commit(db: Any) -> None:
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db)
    o = s.get(A3Order, oid)
    o.lines[0].qty += 1
    o.lines.append(A3Line(sku="z"))
    s.flush()
    o.lines[2].qty += 1
    o.lines.append(A3Line(sku="y"))
    s.flush()
    s.commit()
    raw = stored(db, "a3_orders", oid)
    assert raw["lines"] == emb(o.lines)
    assert [line["qty"] for line in raw["lines"]] == [2, 2, 1, 0]


def test_second_statement_fails_then_fixed_flush_does_not_double_inc(db: Any) -> None:
    """The positional `$inc` lands but the `$push` fails (another writer made
    `lines` an object keyed "0", "1"): FlushError; once `lines` is an array again,
    flushing again must not apply the `$inc` twice and must push once.
    Reading: `applied`/`not_applied` exact, nothing applied twice (SPEC, failures)."""
    oid = insert_raw(db, "a3_orders", _raw_order())
    s = uow.Session(db, transactional=False)
    o = s.get(A3Order, oid)
    db.a3_orders.update_one(
        {"_id": oid}, {"$set": {"lines": {"0": _line("a", 1, 10, ["x"]), "1": _line("b", 2, 20)}}}
    )
    o.lines[0].qty += 2
    o.lines.append(A3Line(sku="z"))
    with pytest.raises(uow.FlushError):
        s.flush()
    after_fail = stored(db, "a3_orders", oid)["lines"]
    # Put the list back as an array holding whatever the first statement did.
    db.a3_orders.update_one({"_id": oid}, {"$set": {"lines": [after_fail["0"], after_fail["1"]]}})
    s.flush()
    raw = stored(db, "a3_orders", oid)
    assert [line["sku"] for line in raw["lines"]] == ["a", "b", "z"]
    assert raw["lines"][0]["qty"] == 3, "the $inc was applied twice (or never)"
