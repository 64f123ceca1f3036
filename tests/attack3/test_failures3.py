"""Failure paths: FlushError.applied / not_applied / in_doubt are exact against
what is stored; a failed flush keeps unapplied work queued, and a later flush
completes it with no duplicates and no double increments."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import ids, insert_raw, stored, stored_or_none
from .conftest import fail_point


class A3FLine(Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")


class A3FOrder(Document):
    __collection__ = "a3_f_orders"

    name: str
    n: int = field(default=0, on_update="$inc")
    lines: list[A3FLine] = field(factory=list)
    log: list[str] = field(factory=list, on_update="$push")


class A3FUser(Document):
    __collection__ = "a3_f_users"
    __indexes__ = [uow.Index("email", unique=True)]

    email: str
    n: int = field(default=0, on_update="$inc")


class A3FVer(Document):
    __collection__ = "a3_f_ver"

    name: str
    n: int = field(default=0, on_update="$inc")
    version: int = field(default=0, version=True)


def _order(name: str, n: int = 0) -> dict[str, Any]:
    return {"name": name, "n": n, "lines": [{"sku": "a", "qty": 1}], "log": ["l0"]}


def _exact(err: uow.FlushError, docs: list[Any], landed: Callable[[Any], bool]) -> None:
    applied, not_applied, in_doubt = ids(err.applied), ids(err.not_applied), ids(err.in_doubt)
    assert not (applied & not_applied) and not (applied & in_doubt)
    assert not (not_applied & in_doubt)
    assert ids(docs) <= applied | not_applied | in_doubt, "a queued document is unaccounted for"
    for d in docs:
        if id(d) in applied:
            assert landed(d), f"{d!r} listed as applied but its write is not stored"
        if id(d) in not_applied:
            assert not landed(d), f"{d!r} listed as not applied but its write is stored"


def _setup_mixed(db: Any, s: uow.Session) -> tuple[Any, ...]:
    s.ensure_indexes(A3FUser)
    insert_raw(db, "a3_f_users", {"email": "taken@x", "n": 0})
    o1 = s.get(A3FOrder, insert_raw(db, "a3_f_orders", _order("o1", 10)))
    o2 = s.get(A3FOrder, insert_raw(db, "a3_f_orders", _order("o2")))
    new_order = A3FOrder(name="new")
    s.add(new_order)
    dup = A3FUser(email="taken@x")
    s.add(dup)
    assert o1 is not None and o2 is not None
    o1.n += 1
    o1.lines[0].qty += 1
    o1.lines.append(A3FLine(sku="b"))
    o1.log.append("l1")
    s.delete(o2)
    return o1, o2, new_order, dup


def _check_mixed_done(db: Any, o1: Any, o2: Any, new_order: Any, dup: Any) -> None:
    raw = stored(db, "a3_f_orders", o1.id)
    assert raw["n"] == 11
    assert raw["lines"] == [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]
    assert raw["log"] == ["l0", "l1"]
    assert stored_or_none(db, "a3_f_orders", o2.id) is None
    assert db.a3_f_orders.count_documents({"name": "new"}) == 1
    assert stored(db, "a3_f_users", dup.id)["email"] == "fixed@x"
    assert db.a3_f_users.count_documents({}) == 2


def test_duplicate_insert_without_transaction_exact_then_completed(db: Any) -> None:
    s = uow.Session(db, transactional=False)
    o1, o2, new_order, dup = _setup_mixed(db, s)
    with pytest.raises(uow.DuplicateKeyError) as info:
        s.flush()
    err = info.value
    landed = {
        id(new_order): stored_or_none(db, "a3_f_orders", new_order.id) is not None,
        id(dup): stored_or_none(db, "a3_f_users", dup.id) is not None,
        id(o1): stored(db, "a3_f_orders", o1.id)["n"] == 11,
        id(o2): stored_or_none(db, "a3_f_orders", o2.id) is None,
    }
    _exact(err, [o1, o2, new_order, dup], lambda d: landed[id(d)])
    assert ids(err.applied) == {id(new_order)}
    assert ids(err.not_applied) == {id(dup), id(o1), id(o2)}
    assert list(err.in_doubt) == []
    dup.email = "fixed@x"
    s.flush()
    _check_mixed_done(db, o1, o2, new_order, dup)


@pytest.mark.transactions
def test_duplicate_insert_in_transaction_everything_unflushed_then_completed(db: Any) -> None:
    s = uow.Session(db)
    o1, o2, new_order, dup = _setup_mixed(db, s)
    with pytest.raises(uow.DuplicateKeyError) as info:
        s.flush()
    assert info.value.transaction_aborted
    assert stored_or_none(db, "a3_f_orders", new_order.id) is None
    assert s.state(new_order) is uow.ObjectState.PENDING
    assert s.state(o2) is uow.ObjectState.DELETED
    assert ids(info.value.applied) == set()
    dup.email = "fixed@x"
    s.commit()
    _check_mixed_done(db, o1, o2, new_order, dup)


@pytest.mark.transactions
def test_failure_in_second_flush_of_a_transaction_redoes_first_flush_once(db: Any) -> None:
    s = uow.Session(db)
    s.ensure_indexes(A3FUser)
    insert_raw(db, "a3_f_users", {"email": "taken@x", "n": 0})
    o1 = s.get(A3FOrder, insert_raw(db, "a3_f_orders", _order("o1", 10)))
    assert o1 is not None
    o1.n += 1
    o1.lines.append(A3FLine(sku="b"))
    s.flush()
    o1.lines[0].qty += 5
    dup = A3FUser(email="taken@x")
    s.add(dup)
    with pytest.raises(uow.FlushError):
        s.flush()
    dup.email = "fixed@x"
    s.commit()
    raw = stored(db, "a3_f_orders", o1.id)
    assert raw["n"] == 11
    assert raw["lines"] == [{"sku": "a", "qty": 6}, {"sku": "b", "qty": 0}]


def test_command_error_on_update_exact_then_completed(fdb: Any) -> None:
    s = uow.Session(fdb, transactional=False)
    o1 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o1", 10)))
    o2 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o2")))
    assert o1 is not None and o2 is not None
    new_order = A3FOrder(name="new")
    s.add(new_order)
    o1.n += 1
    o1.lines[0].qty += 1
    o1.lines.append(A3FLine(sku="b"))
    s.delete(o2)
    with fail_point(fdb.client, ["update"], errorCode=2), pytest.raises(uow.FlushError) as info:
        s.flush()
    err = info.value
    landed = {
        id(new_order): stored_or_none(fdb, "a3_f_orders", new_order.id) is not None,
        id(o1): stored(fdb, "a3_f_orders", o1.id)["n"] == 11,
        id(o2): stored_or_none(fdb, "a3_f_orders", o2.id) is None,
    }
    _exact(err, [o1, o2, new_order], lambda d: landed[id(d)])
    assert ids(err.applied) == {id(new_order)}
    assert ids(err.not_applied) == {id(o1), id(o2)}
    s.flush()
    raw = stored(fdb, "a3_f_orders", o1.id)
    assert raw["n"] == 11
    assert raw["lines"] == [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]
    assert stored_or_none(fdb, "a3_f_orders", o2.id) is None
    assert fdb.a3_f_orders.count_documents({"name": "new"}) == 1


def test_command_error_on_delete_updates_applied_once(fdb: Any) -> None:
    s = uow.Session(fdb, transactional=False)
    o1 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o1", 10)))
    o2 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o2")))
    assert o1 is not None and o2 is not None
    o1.n += 1
    o1.log.append("x")
    s.delete(o2)
    with fail_point(fdb.client, ["delete"], errorCode=2), pytest.raises(uow.FlushError) as info:
        s.flush()
    assert ids(info.value.applied) == {id(o1)}
    assert ids(info.value.not_applied) == {id(o2)}
    assert not s.is_dirty(o1)
    s.flush()
    raw = stored(fdb, "a3_f_orders", o1.id)
    assert raw["n"] == 11 and raw["log"] == ["l0", "x"]
    assert stored_or_none(fdb, "a3_f_orders", o2.id) is None


def test_lost_connection_on_update_in_doubt_then_advice_applies_once(fdb: Any) -> None:
    """The update command's connection is closed before any reply: its documents
    are in_doubt, the later delete not_applied, the earlier insert applied.
    Following the advice (refresh the in-doubt ones, redo their change, flush)
    applies every change exactly once."""
    s = uow.Session(fdb, transactional=False)
    o1 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o1", 10)))
    o2 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o2")))
    assert o1 is not None and o2 is not None
    new_order = A3FOrder(name="new")
    s.add(new_order)
    o1.n += 1
    o1.lines[0].qty += 1
    o1.lines.append(A3FLine(sku="b"))
    s.delete(o2)
    with (
        fail_point(fdb.client, ["update"], closeConnection=True),
        pytest.raises(uow.FlushError) as info,
    ):
        s.flush()
    err = info.value
    assert ids(err.applied) == {id(new_order)}
    assert ids(err.in_doubt) == {id(o1)}
    assert ids(err.not_applied) == {id(o2)}
    assert stored(fdb, "a3_f_orders", o1.id)["n"] == 10
    for doc in err.in_doubt:
        s.refresh(doc)
    o1.n += 1
    o1.lines[0].qty += 1
    o1.lines.append(A3FLine(sku="b"))
    s.flush()
    raw = stored(fdb, "a3_f_orders", o1.id)
    assert raw["n"] == 11
    assert raw["lines"] == [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]
    assert stored_or_none(fdb, "a3_f_orders", o2.id) is None
    assert fdb.a3_f_orders.count_documents({"name": "new"}) == 1


def test_lost_connection_then_plain_flush_never_doubles(fdb: Any) -> None:
    s = uow.Session(fdb, transactional=False)
    o1 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o1", 10)))
    assert o1 is not None
    o1.n += 1
    o1.log.append("x")
    with (
        fail_point(fdb.client, ["update"], closeConnection=True),
        pytest.raises(uow.FlushError),
    ):
        s.flush()
    # The write never reached the server; simulate that it did land after all.
    fdb.a3_f_orders.update_one({"_id": o1.id}, {"$inc": {"n": 1}, "$push": {"log": "x"}})
    with contextlib.suppress(uow.FlushError):
        s.flush()
    raw = stored(fdb, "a3_f_orders", o1.id)
    assert raw["n"] == 11 and raw["log"] == ["l0", "x"], "an in-doubt change applied twice"


@pytest.mark.transactions
def test_transient_write_error_in_transaction_unflushes_all_then_once(fdb: Any) -> None:
    s = uow.Session(fdb)
    o1 = s.get(A3FOrder, insert_raw(fdb, "a3_f_orders", _order("o1", 10)))
    assert o1 is not None
    new_order = A3FOrder(name="new")
    s.add(new_order)
    o1.n += 1
    o1.lines[0].qty += 1
    o1.lines.append(A3FLine(sku="b"))
    with (
        fail_point(
            fdb.client, ["update"], errorCode=112, errorLabels=["TransientTransactionError"]
        ),
        pytest.raises(uow.FlushError) as info,
    ):
        s.flush()
    assert info.value.transaction_aborted
    assert s.state(new_order) is uow.ObjectState.PENDING
    assert stored_or_none(fdb, "a3_f_orders", new_order.id) is None
    s.commit()
    raw = stored(fdb, "a3_f_orders", o1.id)
    assert raw["n"] == 11
    assert raw["lines"] == [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]
    assert fdb.a3_f_orders.count_documents({"name": "new"}) == 1


@pytest.mark.transactions
def test_run_in_transaction_transient_commit_retries_once_at_depth(fdb: Any) -> None:
    oid = insert_raw(fdb, "a3_f_orders", _order("o1", 10))
    s = uow.Session(fdb)
    calls: list[int] = []

    def work() -> int:
        calls.append(1)
        o = s.get(A3FOrder, oid)
        assert o is not None
        o.n += 1
        o.lines[0].qty += 1
        o.lines.append(A3FLine(sku="b"))
        o.log.append("x")
        return o.n

    with fail_point(
        fdb.client,
        ["commitTransaction"],
        errorCode=112,
        errorLabels=["TransientTransactionError"],
    ):
        result = s.run_in_transaction(work)
    assert len(calls) == 2
    assert result == 11
    raw = stored(fdb, "a3_f_orders", oid)
    assert raw["n"] == 11
    assert raw["lines"] == [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]
    assert raw["log"] == ["l0", "x"]


def test_stale_in_middle_of_versioned_batch_exact(db: Any) -> None:
    s = uow.Session(db, transactional=False)
    docs = [
        s.get(A3FVer, insert_raw(db, "a3_f_ver", {"name": f"v{i}", "n": 0, "version": 1}))
        for i in range(3)
    ]
    db.a3_f_ver.update_one({"_id": docs[1].id}, {"$set": {"version": 2}})  # type: ignore[union-attr]
    for d in docs:
        d.n += 1  # type: ignore[union-attr]
    with pytest.raises(uow.StaleDocumentError) as info:
        s.flush()
    err = info.value

    def landed(d: Any) -> bool:
        return bool(stored(db, "a3_f_ver", d.id)["n"] == 1)

    _exact(err, docs, landed)
    assert id(docs[1]) not in ids(err.applied)
    assert not landed(docs[1])
    # Follow the advice: refresh what is stale or in doubt, redo, flush.
    for d in [*list(err.in_doubt), docs[1]]:
        s.refresh(d)
        d.n += 1
    s.flush()
    assert [stored(db, "a3_f_ver", d.id)["n"] for d in docs] == [1, 1, 1]  # type: ignore[union-attr]


def test_validation_refusal_at_flush_sends_nothing_then_completes(db: Any) -> None:
    """A wrong value put in place by mutation is refused at flush; the other
    queued work stays queued and a corrected flush writes it once."""
    s = uow.Session(db, transactional=False)
    o1 = s.get(A3FOrder, insert_raw(db, "a3_f_orders", _order("o1", 10)))
    o2 = s.get(A3FOrder, insert_raw(db, "a3_f_orders", _order("o2")))
    assert o1 is not None and o2 is not None
    o1.n += 1
    o1.lines.append(A3FLine(sku="b"))
    o2.log.append(5)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    assert stored(db, "a3_f_orders", o1.id)["n"] in (10, 11)
    o2.log[-1] = "5"
    s.flush()
    assert stored(db, "a3_f_orders", o1.id)["n"] == 11
    assert stored(db, "a3_f_orders", o1.id)["lines"] == [
        {"sku": "a", "qty": 1},
        {"sku": "b", "qty": 0},
    ]
    assert stored(db, "a3_f_orders", o2.id)["log"] == ["l0", "5"]
