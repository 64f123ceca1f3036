"""Queue and inspection interplay with changes at depth."""

from __future__ import annotations

from typing import Any

import uow

from ._docs import A5Line, A5Order
from ._h import insert_raw, mem, stored, stored_or_none

C = "a5_order"


def test_clear_queue_keeps_depth_changes_drops_insert_and_delete(db: Any) -> None:
    a = insert_raw(db, C, {"customer": "a", "lines": [{"sku": "a", "qty": 1, "x": 1}]})
    b = insert_raw(db, C, {"customer": "b"})
    s = uow.Session(db, transactional=False)
    oa, ob = s.get(A5Order, a), s.get(A5Order, b)
    oa.lines[0].qty += 2
    oa.lines.append(A5Line(sku="n"))
    s.delete(ob)
    n = A5Order(customer="new")
    s.add(n)
    s.clear_queue()
    assert s.state(n) == uow.ObjectState.TRANSIENT
    s.flush()
    assert stored(db, C, a)["lines"][0] == {"sku": "a", "qty": 3, "x": 1}
    assert stored(db, C, a)["lines"][1]["sku"] == "n"
    assert stored_or_none(db, C, n.id) is None
    assert stored(db, C, b) == {"_id": b, "customer": "b"}
    oa.lines[0].qty += 5
    s.rollback()
    assert oa.lines[0].qty == 3
    s.close()


def test_what_changed_paths_at_depth_then_flush_clears(db: Any) -> None:
    oid = insert_raw(db, C, {"customer": "a", "lines": [{"sku": "a", "qty": 1}]})
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 1
    changed = s.what_changed()
    assert changed == {(C, oid): {"lines.0.qty": (1, 2)}}
    assert s.dirty_fields(o) == ["lines"]
    s.flush()
    assert s.what_changed() == {}
    assert not s.has_changes()
    s.close()


def test_pop_front_and_reappend_moves_unknown_key_with_element(db: Any) -> None:
    oid = insert_raw(
        db, C, {"customer": "a", "lines": [{"sku": "a", "x": 1}, {"sku": "b", "x": 2}]}
    )
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines.append(o.lines.pop(0))
    o.lines[1].qty += 1
    s.commit()
    got = stored(db, C, oid)
    assert [(ln["sku"], ln["x"]) for ln in got["lines"]] == [("b", 2), ("a", 1)]
    assert got["lines"][1]["qty"] == 1
    s.close()


def test_forced_update_of_dirty_doc_at_depth_sends_once(db: Any) -> None:
    with uow.Session(db) as s:
        o = A5Order(customer="c", lines=[A5Line(sku="a", qty=1)])
        s.add(o)
    s = uow.Session(db)
    o = s.get(A5Order, o.id)
    o.lines[0].qty += 2
    o.lines[0].tags.append("t")
    s.update(o)
    s.update(o)
    s.commit()
    assert stored(db, C, o.id) == mem(o)
    assert stored(db, C, o.id)["lines"][0]["qty"] == 3
    assert stored(db, C, o.id)["lines"][0]["tags"] == ["t"]
    s.close()


def test_new_document_changed_between_flushes_in_block_with_failure_later(db: Any) -> None:
    s = uow.Session(db, transactional=False)
    o = A5Order(customer="c", lines=[A5Line(sku="a")])
    s.add(o)
    s.flush()
    o.lines[0].qty += 1
    o.lines.append(A5Line(sku="b", qty=2))
    s.flush()
    o.lines[1].qty += 1
    o.lines[0].notes.append("x")
    s.rollback()
    assert mem(o) == stored(db, C, o.id)
    assert [(ln.sku, ln.qty) for ln in o.lines] == [("a", 1), ("b", 2)]
    s.close()
