"""Service-layer flows: several `with Session(...)` blocks in a row, each loading,
changing at depth and committing (or failing), then raw reads of what is stored."""

from __future__ import annotations

from typing import Any

import pytest

import uow

from ._docs import A5Addr, A5Line, A5Order, A5Stamped, A5StampLine
from ._h import emb, lanes_transactional, mem, reload, stored

C = "a5_order"


class Boom(Exception):
    pass


def _new_order(db: Any, **kw: Any) -> Any:
    with uow.Session(db) as s:
        o = A5Order(customer="ann", lines=[A5Line(sku="a", qty=1), A5Line(sku="b")], **kw)
        s.add(o)
    return o.id


def test_five_blocks_inc_push_append_fail_delete_readd(db: Any) -> None:
    oid = _new_order(db)
    # block 2: changes at depth, appended line changed in the same flush
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[0].qty += 3
        o.lines[0].peak = 7
        o.lines[1].tags.append("x")
        o.lines[1].labels.append("l")
        o.lines.append(A5Line(sku="c", qty=1))
        o.lines[2].qty += 1
        o.total += 4
        s.commit()
        assert stored(db, C, oid) == mem(o)
        assert stored(db, C, oid)["lines"][0]["qty"] == 4
        assert stored(db, C, oid)["lines"][2]["qty"] == 2
    before = stored(db, C, oid)
    # block 3: fails before leaving: nothing of it is written
    with pytest.raises(Boom), uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[2].qty += 5
        o.lines.append(A5Line(sku="d"))
        o.total += 100
        raise Boom
    assert stored(db, C, oid) == before
    # block 4: an element removed and another changed inside: the list is $set whole
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        assert emb(o.lines) == before["lines"]
        del o.lines[0]
        o.lines[0].qty += 1
        o.lines[1].tags.append("y")
        s.commit()
        assert stored(db, C, oid) == mem(o)
        assert [ln["sku"] for ln in stored(db, C, oid)["lines"]] == ["b", "c"]
        assert stored(db, C, oid)["lines"][0]["qty"] == 1
    # block 5: the removed line comes back at the end, then changed in a second flush
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines.append(A5Line(sku="a", qty=9))
        s.flush()
        o.lines[2].qty += 1
        o.lines[2].low = 3
        o.by_sku["a"] = A5Line(sku="a")
        s.commit()
        assert stored(db, C, oid) == mem(o)
    final = stored(db, C, oid)
    assert [ln["sku"] for ln in final["lines"]] == ["b", "c", "a"]
    assert final["lines"][2]["qty"] == 10
    assert final["lines"][2]["low"] == 3
    assert final["total"] == 4
    assert mem(reload(db, A5Order, oid)) == final


def test_two_flushes_in_one_block_inc_at_depth_sends_deltas_once(db: Any) -> None:
    oid = _new_order(db)
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[0].qty += 1
        o.total += 1
        s.flush()
        o.lines[0].qty += 2
        o.total += 2
        s.flush()
        o.lines[1].qty += 5
        o.lines[0].tags.append("t")
        s.flush()
        s.commit()
        assert stored(db, C, oid) == mem(o)
    got = stored(db, C, oid)
    assert got["lines"][0]["qty"] == 4
    assert got["lines"][1]["qty"] == 5
    assert got["total"] == 3
    assert got["lines"][0]["tags"] == ["t"]


def test_rollback_without_transaction_restores_last_flushed_at_depth(db: Any) -> None:
    """SPEC: rollback without a transaction puts every tracked document back to
    the last flushed snapshot; the next change is relative to what is stored."""
    oid = _new_order(db)
    s = uow.Session(db, transactional=False)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 2
    o.lines.append(A5Line(sku="c"))
    s.flush()
    flushed = stored(db, C, oid)
    o.lines[0].qty += 10
    o.lines[1].tags.append("lost")
    o.lines.append(A5Line(sku="lost"))
    o.addr.visits += 1
    s.rollback()
    assert mem(o) == flushed
    assert stored(db, C, oid) == flushed
    o.lines[0].qty += 1
    o.lines[2].qty += 1
    s.commit()
    assert stored(db, C, oid) == mem(o)
    assert stored(db, C, oid)["lines"][0]["qty"] == 4
    assert stored(db, C, oid)["lines"][2]["qty"] == 1
    s.close()


def test_exception_after_flush_without_transaction_keeps_flushed(db: Any) -> None:
    """SPEC: without transactions what an earlier flush wrote stays."""
    oid = _new_order(db)
    with pytest.raises(Boom), uow.Session(db, transactional=False) as s:
        o = s.get(A5Order, oid)
        o.lines[1].qty += 3
        o.lines[1].notes.append("n")
        s.flush()
        o.lines[0].qty += 50
        raise Boom
    got = stored(db, C, oid)
    assert got["lines"][1]["qty"] == 3
    assert got["lines"][1]["notes"] == ["n"]
    assert got["lines"][0]["qty"] == 1
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        assert mem(o) == got
        o.lines[0].qty += 1
    assert stored(db, C, oid)["lines"][0]["qty"] == 2


@pytest.mark.transactions
def test_exception_after_flush_in_transaction_writes_nothing(db: Any) -> None:
    oid = _new_order(db)
    before = stored(db, C, oid)
    with pytest.raises(Boom), uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[1].qty += 3
        o.lines.append(A5Line(sku="z"))
        s.add(A5Order(customer="new"))
        s.flush()
        o.lines[0].tags.append("t")
        s.flush()
        raise Boom
    assert stored(db, C, oid) == before
    assert db[C].count_documents({}) == 1


def test_delete_then_new_document_same_id_in_next_block(db: Any) -> None:
    oid = _new_order(db)
    db[C].update_one({"_id": oid}, {"$set": {"legacy": 1}})
    with uow.Session(db) as s:
        s.delete(s.get(A5Order, oid))
    assert db[C].count_documents({"_id": oid}) == 0
    with uow.Session(db) as s:
        n = A5Order(id=oid, customer="again", lines=[A5Line(sku="q", qty=2)])
        s.add(n)
        s.commit()
        assert stored(db, C, oid) == mem(n)
    with uow.Session(db) as s:
        n = s.get(A5Order, oid)
        n.lines[0].qty += 1
        n.lines[0].tags.append("t")
        s.commit()
        assert stored(db, C, oid) == mem(n)
        assert stored(db, C, oid)["lines"][0]["qty"] == 3


def test_delete_and_readd_same_id_in_one_flush_then_change(db: Any) -> None:
    """SPEC: delete + add of a new one with the same id before the flush is one replace."""
    oid = _new_order(db)
    with uow.Session(db) as s:
        old = s.get(A5Order, oid)
        old.lines[0].qty += 100
        s.delete(old)
        n = A5Order(id=oid, customer="fresh", lines=[A5Line(sku="n", qty=5)], total=7)
        s.add(n)
        s.commit()
        assert stored(db, C, oid) == mem(n)
        n.lines[0].qty += 1
        n.total += 1
        s.commit()
        assert stored(db, C, oid) == mem(n)
    assert stored(db, C, oid)["lines"] == [emb(A5Line(sku="n", qty=6))]
    assert stored(db, C, oid)["total"] == 8


def test_insert_front_after_inc_in_element_sets_whole_list_with_absolute_values(db: Any) -> None:
    oid = _new_order(db)
    db[C].update_one({"_id": oid}, {"$inc": {"lines.0.qty": 10}})  # stored 11
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[0].qty += 1
        o.lines.insert(0, A5Line(sku="front"))
        o.lines[2].tags.append("x")
        s.commit()
        assert stored(db, C, oid) == mem(o)
    assert [ln["qty"] for ln in stored(db, C, oid)["lines"]] == [0, 12, 0]


def test_pop_and_reappend_same_element_is_no_change(db: Any) -> None:
    oid = _new_order(db)
    before = stored(db, C, oid)
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        x = o.lines.pop()
        o.lines.append(x)
        o.history.append("h")
        o.history.pop()
        assert not s.is_dirty(o)
        r = s.flush()
        assert r.updated == 0
    assert stored(db, C, oid) == before


def test_dict_values_inc_push_add_remove_across_blocks(db: Any) -> None:
    oid = _new_order(db, by_sku={"a": A5Line(sku="a", qty=1), "b": A5Line(sku="b")})
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.by_sku["a"].qty += 2
        o.by_sku["a"].tags.append("t")
        del o.by_sku["b"]
        o.by_sku["c"] = A5Line(sku="c", qty=4)
        s.commit()
        assert stored(db, C, oid) == mem(o)
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.by_sku["c"].qty += 1
        o.by_sku["c"].labels.extend(["p", "q"])
        o.by_sku["a"].peak = 4
        o.by_sku["b"] = A5Line(sku="b", qty=9)
        s.commit()
        assert stored(db, C, oid) == mem(o)
    got = stored(db, C, oid)["by_sku"]
    assert sorted(got) == ["a", "b", "c"]
    assert got["a"]["qty"] == 3 and got["c"]["qty"] == 5 and got["b"]["qty"] == 9
    assert got["a"]["tags"] == ["t"]


def test_embedded_addr_inc_and_set_then_replaced(db: Any) -> None:
    oid = _new_order(db)
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.addr.visits += 1
        o.addr.zip = "0150"
        s.commit()
        assert stored(db, C, oid) == mem(o)
        o.addr = A5Addr(city="Bergen", visits=5)
        s.commit()
        assert stored(db, C, oid) == mem(o)
        o.addr.visits += 1
        s.commit()
        assert stored(db, C, oid) == mem(o)
    assert stored(db, C, oid)["addr"] == {"city": "Bergen", "zip": None, "visits": 6}


def test_stamps_in_list_and_dict_across_blocks(db: Any) -> None:
    with uow.Session(db) as s:
        d = A5Stamped(name="n", lines=[A5StampLine(sku="a")], by_key={"k": A5StampLine(sku="k")})
        s.add(d)
    did = d.id
    with uow.Session(db) as s:
        d = s.get(A5Stamped, did)
        d.lines[0].qty += 1
        d.lines.append(A5StampLine(sku="b", qty=2))
        d.by_key["k"].qty += 3
        s.commit()
        got = stored(db, "a5_stamped", did)
        assert got == mem(d)
        for el in [*got["lines"], got["by_key"]["k"]]:
            assert el["touched"] is not None
    with uow.Session(db) as s:
        d = s.get(A5Stamped, did)
        d.name = "m"
        s.commit()
        assert stored(db, "a5_stamped", did) == mem(d)
    assert mem(reload(db, A5Stamped, did)) == stored(db, "a5_stamped", did)


def test_audit_in_second_collection_and_order_change_in_one_block_then_failure(db: Any) -> None:
    oid = _new_order(db)
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[0].qty += 1
        o.status = "paid"
        from ._docs import A5Audit

        a = A5Audit(order_id=str(oid), entries=["paid"])
        s.add(a)
        s.commit()
        assert stored(db, C, oid) == mem(o)
        assert stored(db, "a5_audit", a.id) == mem(a)
    aid = a.id
    before_o, before_a = stored(db, C, oid), stored(db, "a5_audit", aid)
    with pytest.raises(Boom), uow.Session(db) as s:
        from ._docs import A5Audit

        o = s.get(A5Order, oid)
        a = s.get(A5Audit, aid)
        o.status = "refunded"
        a.entries.append("refunded")
        if not lanes_transactional(db):
            raise Boom
        s.flush()
        raise Boom
    assert stored(db, C, oid) == before_o
    assert stored(db, "a5_audit", aid) == before_a
