"""Transactions over several collections, rollbacks after multi-statement updates,
documents loaded inside an aborted transaction, and run_in_transaction retries."""

from __future__ import annotations

from typing import Any

import pymongo.errors
import pytest

import uow

from ._docs import A5Audit, A5Counter, A5Line, A5Order, A5VOrder
from ._h import emb, insert_raw, mem, reload, stored, stored_or_none

pytestmark = pytest.mark.transactions
C = "a5_order"


def _transient() -> pymongo.errors.OperationFailure:
    return pymongo.errors.OperationFailure(
        "WriteConflict (injected)",
        code=112,
        details={"errorLabels": ["TransientTransactionError"], "code": 112, "errmsg": "x"},
    )


def _seed(db: Any) -> tuple[Any, Any]:
    with uow.Session(db) as s:
        o = A5Order(customer="ann", lines=[A5Line(sku="a", qty=1), A5Line(sku="b", qty=2)])
        a = A5Audit(order_id="x", entries=["e0"])
        s.add_all([o, a])
    return o.id, a.id


def test_flush_two_collections_rollback_then_change_again_commit(db: Any) -> None:
    oid, aid = _seed(db)
    before_o, before_a = stored(db, C, oid), stored(db, "a5_audit", aid)
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    a = s.get(A5Audit, aid)
    o.lines[0].qty += 5
    o.lines.append(A5Line(sku="c"))
    a.entries.append("e1")
    n = A5Audit(order_id="new")
    s.add(n)
    s.flush()
    s.delete(a)
    s.flush()
    s.rollback()
    assert stored(db, C, oid) == before_o
    assert stored(db, "a5_audit", aid) == before_a
    assert stored_or_none(db, "a5_audit", n.id) is None
    assert mem(o) == before_o
    assert mem(a) == before_a
    assert s.state(a) == uow.ObjectState.PERSISTENT
    assert s.state(n) == uow.ObjectState.TRANSIENT
    # again, and commit: every delta relative to the committed values
    o.lines[0].qty += 1
    o.lines[1].tags.append("t")
    a.entries.append("e2")
    s.commit()
    assert stored(db, C, oid) == mem(o)
    assert stored(db, "a5_audit", aid) == mem(a)
    assert stored(db, C, oid)["lines"][0]["qty"] == 2
    assert stored(db, "a5_audit", aid)["entries"] == ["e0", "e2"]
    s.close()


def test_rollback_after_two_statement_update_then_new_change(db: Any) -> None:
    """An update of one document that $inc'ed inside an element and $push'ed to the
    same list (two statements or two operators), rolled back: memory back to the
    committed values, the next flush relative to those."""
    oid, _ = _seed(db)
    committed = stored(db, C, oid)
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 3
    o.lines[0].tags.append("in")
    o.lines.append(A5Line(sku="c", qty=4))
    s.flush()
    o.lines[2].qty += 1
    o.lines[1].notes.append("n")
    s.flush()
    s.rollback()
    assert mem(o) == committed
    assert stored(db, C, oid) == committed
    o.lines[1].qty += 10
    o.lines.append(A5Line(sku="d"))
    s.commit()
    assert stored(db, C, oid) == mem(o)
    assert [ln["sku"] for ln in stored(db, C, oid)["lines"]] == ["a", "b", "d"]
    assert stored(db, C, oid)["lines"][0]["tags"] == []
    assert stored(db, C, oid)["lines"][1]["qty"] == 12
    s.close()


def test_document_loaded_inside_aborted_transaction_after_own_counter_update(db: Any) -> None:
    """A transient counter update (a $inc upsert) flushed inside a transaction, then the
    counter loaded inside it (it reads the transaction's value): after rollback it
    must read the committed value, not the aborted one."""
    cid = insert_raw(db, "a5_counter", {"hits": 5, "best": 1})
    s = uow.Session(db)
    o = A5Order(customer="x")
    s.add(o)
    s.flush()  # the transaction begins
    s.update(A5Counter(id=cid, hits=3, best=0))
    s.flush()
    c = s.get(A5Counter, cid)
    assert c.hits == 8
    s.rollback()
    assert stored(db, "a5_counter", cid) == {"_id": cid, "hits": 5, "best": 1}
    assert c.hits == 5
    assert mem(c) == stored(db, "a5_counter", cid)
    c.hits += 1
    s.commit()
    assert stored(db, "a5_counter", cid)["hits"] == 6
    s.close()


def test_document_first_loaded_in_aborted_transaction_then_changed_and_committed(db: Any) -> None:
    oid, aid = _seed(db)
    s = uow.Session(db)
    a = s.get(A5Audit, aid)
    a.entries.append("e1")
    s.flush()  # transaction open
    o = s.get(A5Order, oid)  # first loaded inside it
    o.lines[0].qty += 1
    s.flush()
    s.rollback()
    assert mem(o) == stored(db, C, oid)
    assert o.lines[0].qty == 1
    o.lines[0].qty += 2
    o.lines[1].tags.append("t")
    s.commit()
    assert stored(db, C, oid) == mem(o)
    assert stored(db, C, oid)["lines"][0]["qty"] == 3
    assert stored(db, "a5_audit", aid)["entries"] == ["e0"]
    s.close()


def test_query_fills_in_partial_doc_inside_aborted_transaction(db: Any) -> None:
    """SPEC: a document filled in by a later query inside the aborted transaction
    is put back to committed values or expired; never left with aborted values."""
    oid, _ = _seed(db)
    s = uow.Session(db)
    p = s.query(A5Order).fields("customer").filter(id=oid).one()
    p.customer = "bob"
    s.flush()  # transaction open; customer "bob" written in it
    full = s.query(A5Order).filter(id=oid).one()
    assert full is p
    p.lines[0].qty += 4
    s.flush()
    s.rollback()
    got = stored(db, C, oid)
    assert got["customer"] == "ann"
    assert p.customer == "ann"
    assert emb(p.lines) == got["lines"]
    p.total += 1
    s.commit()
    assert stored(db, C, oid) == {**got, "total": 1}
    s.close()


def test_deleted_in_aborted_transaction_is_back_and_can_change(db: Any) -> None:
    oid, _aid = _seed(db)
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 1
    s.flush()
    s.delete(o)
    s.flush()
    assert s.state(o) == uow.ObjectState.DETACHED
    s.rollback()
    assert s.state(o) == uow.ObjectState.PERSISTENT
    assert mem(o) == stored(db, C, oid)
    o.lines[1].qty += 1
    s.commit()
    assert stored(db, C, oid)["lines"][1]["qty"] == 3
    assert stored(db, C, oid)["lines"][0]["qty"] == 1
    s.close()


def test_run_in_transaction_retried_body_appends_once(db: Any) -> None:
    oid, aid = _seed(db)
    s = uow.Session(db)
    calls: list[int] = []

    def body() -> int:
        calls.append(1)
        o = s.get(A5Order, oid)
        a = s.get(A5Audit, aid)
        o.lines[0].qty += 1
        o.lines[1].tags.append("t")
        o.lines.append(A5Line(sku=f"try{len(calls)}"))
        a.entries.append("run")
        s.flush()
        if len(calls) == 1:
            raise _transient()
        return len(o.lines)

    assert s.run_in_transaction(body) == 3
    assert len(calls) == 2
    o = s.get(A5Order, oid)
    got = stored(db, C, oid)
    assert got == mem(o)
    assert [ln["sku"] for ln in got["lines"]] == ["a", "b", "try2"]
    assert got["lines"][0]["qty"] == 2
    assert got["lines"][1]["tags"] == ["t"]
    assert stored(db, "a5_audit", aid)["entries"] == ["e0", "run"]
    s.close()
    assert mem(reload(db, A5Order, oid)) == got


def test_run_in_transaction_retry_after_flush_inside_of_insert(db: Any) -> None:
    s = uow.Session(db)
    made: list[Any] = []

    def body() -> Any:
        o = A5Order(customer=f"c{len(made)}", lines=[A5Line(sku="a")])
        made.append(o)
        s.add(o)
        s.flush()
        o.lines[0].qty += 2
        s.flush()
        if len(made) == 1:
            raise _transient()
        return o

    o = s.run_in_transaction(body)
    assert db[C].count_documents({}) == 1
    assert stored(db, C, o.id) == mem(o)
    assert stored(db, C, o.id)["lines"][0]["qty"] == 2
    assert s.state(made[0]) == uow.ObjectState.TRANSIENT
    s.close()


def test_versioned_rollback_then_commit_bumps_once(db: Any) -> None:
    with uow.Session(db) as s:
        v = A5VOrder(customer="v", lines=[A5Line(sku="a")])
        s.add(v)
    vid = v.id
    s = uow.Session(db)
    v = s.get(A5VOrder, vid)
    v.lines[0].qty += 1
    s.flush()
    v.lines.append(A5Line(sku="b"))
    s.flush()
    s.rollback()
    assert v.version == 0
    assert mem(v) == stored(db, "a5_vorder", vid)
    v.lines[0].qty += 5
    s.commit()
    got = stored(db, "a5_vorder", vid)
    assert got == mem(v)
    assert got["version"] == 1
    assert got["lines"][0]["qty"] == 5
    s.close()


def test_transaction_block_joined_after_flush_then_exception(db: Any) -> None:
    oid, _aid = _seed(db)
    committed = stored(db, C, oid)
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 1
    s.flush()
    with pytest.raises(RuntimeError), s.transaction():
        o.lines.append(A5Line(sku="t"))
        s.flush()
        raise RuntimeError("x")
    assert stored(db, C, oid) == committed
    assert mem(o) == committed
    with s.transaction():
        o.lines[1].qty += 1
    assert stored(db, C, oid) == mem(o)
    assert stored(db, C, oid)["lines"][1]["qty"] == 3
    assert stored(db, C, oid)["lines"][0]["qty"] == 1
    s.close()


def test_two_transactional_sessions_conflict_then_redo(db: Any) -> None:
    oid, _ = _seed(db)
    s1, s2 = uow.Session(db), uow.Session(db)
    o1, o2 = s1.get(A5Order, oid), s2.get(A5Order, oid)
    o1.lines[0].qty += 1
    o1.lines.append(A5Line(sku="s1"))
    s1.flush()
    o2.lines[0].qty += 10
    o2.lines[1].tags.append("s2")
    with pytest.raises(uow.FlushError):
        s2.flush()
    s1.commit()
    s2.rollback()
    # s1 committed after s2 loaded: the committed snapshot s2 knows is older
    s2.refresh(o2)
    assert mem(o2) == stored(db, C, oid)
    o2.lines[0].qty += 10
    o2.lines[1].tags.append("s2")
    s2.commit()
    got = stored(db, C, oid)
    assert got == mem(o2)
    assert got["lines"][0]["qty"] == 12
    assert [ln["sku"] for ln in got["lines"]] == ["a", "b", "s1"]
    s1.refresh(o1)
    assert mem(o1) == got
    s1.close()
    s2.close()
