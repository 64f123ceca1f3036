"""Harder lifecycle edges: explicit updates across an aborted transaction, validation
failures mid-flush, refresh inside a transaction, sessions sharing an object."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import committed, raw
from ._models import Counter, Item, Uniq, UniqInc

S = ObjectState


@pytest.mark.transactions
def test_explicit_update_flushed_in_aborted_transaction_is_requeued_once(db: Any) -> None:
    committed(db, Uniq(email="taken@x"))
    s = Session(db)
    s.update(Counter(id="k", hits=1), upsert=True)
    s.flush()
    s.add(Uniq(email="taken@x"))
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    assert ei.value.transaction_aborted
    # "every change since the last commit goes back to unflushed"
    assert s.stats().pending_updates == 1
    s.clear_queue()
    s.update(Counter(id="k", hits=1), upsert=True)
    s.commit()
    assert db.a7_counter.find_one({"_id": "k"})["hits"] == 1


@pytest.mark.transactions
def test_explicit_update_flushed_in_aborted_transaction_reflushed(db: Any) -> None:
    committed(db, Uniq(email="taken@x"))
    s = Session(db)
    s.update(Counter(id="k", hits=1), upsert=True)
    s.flush()
    bad = Uniq(email="taken@x")
    s.add(bad)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    bad.email = "free@x"
    s.commit()
    stored = db.a7_counter.find_one({"_id": "k"})
    assert stored is not None and stored["hits"] == 1


@pytest.mark.transactions
def test_replace_flushed_in_aborted_transaction_requeued(db: Any) -> None:
    committed(db, Uniq(email="taken@x"))
    old = Item(name="old", qty=5)
    committed(db, old)
    s = Session(db)
    loaded = s.get(Item, old.id)
    s.delete(loaded)
    new = Item(id=old.id, name="new", qty=1)
    s.add(new)
    s.flush()
    bad = Uniq(email="taken@x")
    s.add(bad)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    bad.email = "free@x"
    s.commit()
    assert raw(db, new) == {"_id": old.id, "name": "new", "qty": 1, "tags": []}
    assert s.get(Item, old.id) is new


@pytest.mark.transactions
def test_refresh_inside_transaction_then_rollback(db: Any) -> None:
    base = Item(name="committed", qty=1)
    committed(db, base)
    s = Session(db)
    it = s.get(Item, base.id)  # loaded before the transaction
    s.update(Item(id=base.id, name="aborted", qty=10), update_ops={"name": "$set"})
    s.flush()  # the transaction is open now
    s.refresh(it)
    assert (it.name, it.qty) == ("aborted", 11)
    s.rollback()
    assert (it.name, it.qty) == ("committed", 1)
    it.qty += 1
    s.commit()
    assert raw(db, base) == {"_id": base.id, "name": "committed", "qty": 2, "tags": []}


@pytest.mark.transactions
def test_committed_snapshot_after_flush_commit_flush_rollback(db: Any) -> None:
    base = Item(name="v0", qty=0)
    committed(db, base)
    s = Session(db)
    it = s.get(Item, base.id)
    it.name, it.qty = "v1", 1
    s.commit()
    it.name, it.qty = "v2", 2
    s.flush()
    it.name, it.qty = "v3", 3
    s.rollback()
    assert (it.name, it.qty) == ("v1", 1)
    it.qty = 4
    s.commit()
    assert raw(db, base) == {"_id": base.id, "name": "v1", "qty": 4, "tags": []}


def test_validation_failure_mid_flush_keeps_queue(db: Any) -> None:
    b = Item(name="b", tags=["x"])
    committed(db, b)
    s = Session(db, transactional=False)
    a = Item(name="a")
    s.add(a)
    bb = s.get(Item, b.id)
    bb.tags.append(1)  # wrong type put in place by mutation
    with pytest.raises(uow.ValidationError):
        s.flush()
    # whatever was sent before the refusal, memory and store agree
    if raw(db, a) is None:
        assert s.state(a) is S.PENDING
    else:
        assert s.state(a) is S.PERSISTENT
    bb.tags[-1] = "y"
    s.flush()
    assert raw(db, a) == a.to_bson()
    assert raw(db, bb)["tags"] == ["x", "y"]


def test_add_object_owned_by_other_open_session(db: Any) -> None:
    s1 = Session(db, transactional=False)
    it = Item(name="a")
    s1.add(it)
    s1.commit()
    s2 = Session(db, transactional=False)
    assert s2.state(it) is S.DETACHED
    try:
        s2.add(it)
    except uow.UowError:
        return  # like SQLAlchemy: already attached to another session
    # if adopted, exactly one session writes each change and nothing is duplicated
    it.name = "b"
    s2.commit()
    s1.commit()
    assert raw(db, it)["name"] == "b"


def test_close_warning_counts_explicit_update(db: Any, caplog: Any) -> None:
    s = Session(db, transactional=False)
    s.update(Counter(id="w", hits=1), upsert=True)
    caplog.set_level(logging.WARNING, logger="uow")
    s.close()
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 1 and "1" in msgs[0]


def test_save_of_detached(db: Any) -> None:
    it = Item(name="a", qty=1)
    committed(db, it)
    it.qty = 3
    s = Session(db, transactional=False)
    s.save(it)
    assert raw(db, it)["qty"] == 3
    assert s.state(it) is S.PERSISTENT


def test_expunge_after_failed_insert_then_retry_elsewhere(db: Any) -> None:
    committed(db, Uniq(email="taken@x"))
    s = Session(db, transactional=False)
    bad = Uniq(email="taken@x")
    s.add(bad)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    s.expunge(bad)
    assert s.state(bad) is S.TRANSIENT
    assert not s.has_changes()
    s.flush()
    assert db.a7_uniq.count_documents({}) == 1


def test_stats_after_failed_flush(db: Any) -> None:
    committed(db, Uniq(email="taken@x"))
    s = Session(db, transactional=False)
    s.add_all([Uniq(email="a@x"), Uniq(email="taken@x"), Uniq(email="c@x")])
    before = s.stats()
    with pytest.raises(uow.FlushError):
        s.flush()
    st = s.stats()
    assert st.pending_inserts == 2
    assert st.round_trips - before.round_trips == 1


def test_rollback_after_failed_update_without_transaction(db: Any) -> None:
    a, b = UniqInc(email="a@x", hits=1), UniqInc(email="b@x", hits=1)
    committed(db, a, b)
    s = Session(db, transactional=False)
    aa, bb = s.get(UniqInc, a.id), s.get(UniqInc, b.id)
    aa.hits = 5
    bb.email = "a@x"
    bb.hits = 7
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    s.rollback()
    # no transaction: aa's update was applied and stays; bb goes back to stored
    assert aa.hits == 5 and not s.is_dirty(aa)
    assert (bb.email, bb.hits) == ("b@x", 1)
    assert raw(db, a)["hits"] == 5 and raw(db, b) == {"_id": b.id, "email": "b@x", "hits": 1}


def test_delete_readd_replace_hits_unique_index(db: Any) -> None:
    old = Uniq(email="old@x", n=1)
    committed(db, old, Uniq(email="taken@x"))
    s = Session(db, transactional=False)
    loaded = s.get(Uniq, old.id)
    s.delete(loaded)
    new = Uniq(id=old.id, email="taken@x", n=2)
    s.add(new)
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    assert ei.value.document is new
    assert raw(db, old) == {"_id": old.id, "email": "old@x", "n": 1}
    new.email = "new@x"
    s.flush()
    assert raw(db, old) == {"_id": old.id, "email": "new@x", "n": 2}
    assert s.get(Uniq, old.id) is new


def test_get_after_expunge_of_dirty_reads_store(db: Any) -> None:
    it = Item(name="a")
    committed(db, it)
    s = Session(db)
    x = s.get(Item, it.id)
    x.name = "dirty"
    s.expunge(x)
    y = s.get(Item, it.id)
    assert y is not x and y.name == "a"
    with pytest.raises(uow.UowError):
        s.add(x)  # re-adding while y is the identity: refused, one object per id
    s.commit()
    assert db.a7_items.count_documents({}) == 1


@pytest.mark.transactions
@pytest.mark.parametrize(
    "how",
    [
        "clear_cache",
        "expunge",
        "close",
    ],
)
def test_detached_during_aborted_transaction_then_added(db: Any, how: str) -> None:
    """A document flushed inside a transaction, detached (clear_cache / expunge /
    close), then the transaction aborts. Its values were never durably stored, so
    add() must find them as changes: after the next flush the store equals memory."""
    base = Item(name="a", qty=1)
    committed(db, base)
    s = Session(db)
    x = s.get(Item, base.id)
    x.name, x.qty = "b", 5
    s.flush()
    if how == "clear_cache":
        s.clear_cache()
        s.rollback()
        s2 = s
    elif how == "expunge":
        s.expunge(x)
        s.rollback()
        s2 = s
    else:
        s.close()
        s2 = Session(db)
    assert s2.state(x) is S.DETACHED
    assert raw(db, base) == {"_id": base.id, "name": "a", "qty": 1, "tags": []}
    s2.add(x)
    s2.commit()
    assert raw(db, base) == x.to_bson()


def test_update_of_detached_uses_snapshot(db: Any) -> None:
    it = Item(name="a", qty=5)
    committed(db, it)
    s = Session(db)
    x = s.get(Item, it.id)
    s.expunge(x)
    x.qty = 7
    s.update(x)
    s.commit()
    assert raw(db, it)["qty"] == 7


def test_update_of_doc_from_closed_session_unchanged(db: Any) -> None:
    it = Item(name="a", qty=5)
    committed(db, it)
    s = Session(db)
    s.update(it)
    s.commit()
    assert raw(db, it) == {"_id": it.id, "name": "a", "qty": 5, "tags": []}


def test_delete_of_detached_document(db: Any) -> None:
    it = Item(name="a")
    committed(db, it)
    s = Session(db)
    s.delete(it)
    assert s.state(it) is S.DELETED
    s.commit()
    assert raw(db, it) is None
    assert s.state(it) is S.DETACHED


def test_delete_of_transient_refused(db: Any) -> None:
    s = Session(db)
    with pytest.raises(uow.UowError):
        s.delete(Item(name="t"))


def test_with_block_closed_inside(db: Any) -> None:
    with Session(db) as s:
        s.add(Item(name="a"))
        s.commit()
        s.close()
    assert s.closed
    assert db.a7_items.count_documents({}) == 1


def test_with_block_commit_inside_then_exception(db: Any) -> None:
    with pytest.raises(OSError):
        with Session(db) as s:
            s.add(Item(name="kept"))
            s.commit()
            s.add(Item(name="dropped"))
            s.flush()
            raise OSError
    names = sorted(d["name"] for d in db.a7_items.find())
    if s.transactional is False or "mongomock" in type(db.client).__module__:
        assert names == ["dropped", "kept"]
    else:
        assert names == ["kept"]


@pytest.mark.transactions
def test_rollback_inserted_then_deleted_in_transaction(db: Any) -> None:
    s = Session(db)
    n = Item(name="n")
    s.add(n)
    s.flush()
    s.delete(n)
    s.flush()
    s.rollback()
    assert s.state(n) is S.TRANSIENT
    assert s.get(Item, n.id) is None


@pytest.mark.transactions
def test_rollback_modified_then_deleted_in_transaction(db: Any) -> None:
    base = Item(name="a", qty=1)
    committed(db, base)
    s = Session(db)
    x = s.get(Item, base.id)
    x.name, x.qty = "b", 9
    s.flush()
    s.delete(x)
    s.flush()
    s.rollback()
    assert s.state(x) is S.PERSISTENT
    assert (x.name, x.qty) == ("a", 1)
    assert not s.is_dirty(x)
