"""commit / rollback with and without transactions; with-blocks; s.transaction()."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import raw
from ._models import Counter, Item

S = ObjectState


def committed_item(db: Any, **kw: Any) -> Item:
    s = Session(db)
    it = Item(**{"name": "a", **kw})
    s.add(it)
    s.commit()
    s.close()
    return it


# ---------------------------------------------------------------- no transaction


def test_rollback_without_transaction_restores_last_flushed(db: Any) -> None:
    transactional = False
    base = committed_item(db, qty=1)
    s = Session(db, transactional=transactional)
    it = s.get(Item, base.id)
    it.name = "flushed"
    s.flush()
    it.name = "unflushed"
    it.qty = 50
    it.tags.append("t")
    new = Item(name="new")
    s.add(new)
    s.rollback()
    assert (it.name, it.qty, it.tags) == ("flushed", 1, [])
    assert not s.is_dirty(it)
    assert s.state(new) is S.TRANSIENT
    assert s.state(it) is S.PERSISTENT
    assert raw(db, it) == {"_id": it.id, "name": "flushed", "qty": 1, "tags": []}
    assert raw(db, new) is None
    assert not s.has_changes()
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted) == (0, 0, 0)


def test_with_block_exception_without_transaction_keeps_flushed(db: Any) -> None:
    base = committed_item(db)
    with pytest.raises(KeyError):
        with Session(db, transactional=False) as s:
            it = s.get(Item, base.id)
            it.name = "flushed"
            s.flush()
            it.name = "dropped"
            s.add(Item(name="dropped-insert"))
            raise KeyError("boom")
    assert raw(db, base)["name"] == "flushed"
    assert db.a7_items.count_documents({}) == 1
    assert s.closed


def test_with_block_success_commits_and_closes(db: Any) -> None:
    with Session(db) as s:
        it = Item(name="a")
        s.add(it)
        assert uow.current_session() is s
    assert s.closed
    assert raw(db, it) == {"_id": it.id, "name": "a", "qty": 0, "tags": []}
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_with_connect_block(embedded_uri: str) -> None:
    with Session.connect("a7db", embedded_uri) as s:
        it = Item(name="a")
        s.add(it)
    with Session.connect("a7db", embedded_uri) as s2:
        got = s2.get(Item, it.id)
        assert got is not None and got.name == "a"
    assert s.closed and s2.closed


def test_nested_with_blocks_restore_current(db: Any) -> None:
    with Session(db) as outer:
        with Session(db) as inner:
            assert uow.current_session() is inner
        assert uow.current_session() is outer
        with pytest.raises(ValueError):
            with Session(db) as inner2:
                assert uow.current_session() is inner2
                raise ValueError
        assert uow.current_session() is outer


# -------------------------------------------------------------- transactions


@pytest.mark.transactions
def test_rollback_with_transaction_restores_committed(db: Any) -> None:
    base = committed_item(db, qty=1)
    s = Session(db)
    it = s.get(Item, base.id)
    it.name = "flushed"
    it.qty += 1
    new = Item(name="new")
    s.add(new)
    s.flush()
    assert s.state(new) is S.PERSISTENT
    assert raw(db, it)["name"] == "a"  # invisible outside until commit
    s.rollback()
    assert (it.name, it.qty) == ("a", 1)
    assert s.state(new) is S.TRANSIENT
    assert s.state(it) is S.PERSISTENT
    assert raw(db, new) is None
    assert s.get(Item, new.id) is None
    # flushing again afterwards writes nothing stale
    r = s.flush()
    s.commit()
    assert (r.inserted, r.updated) == (0, 0)
    assert raw(db, it) == {"_id": it.id, "name": "a", "qty": 1, "tags": []}


@pytest.mark.transactions
def test_rollback_transaction_then_change_again_uses_committed_snapshot(db: Any) -> None:
    base = committed_item(db, qty=10)
    s = Session(db)
    it = s.get(Item, base.id)
    it.qty = 15
    s.flush()
    s.rollback()
    assert it.qty == 10
    it.qty = 12  # $inc +2 relative to committed 10
    s.commit()
    assert raw(db, it)["qty"] == 12


@pytest.mark.transactions
def test_rollback_brings_back_deleted_as_persistent(db: Any) -> None:
    base = committed_item(db)
    s = Session(db)
    it = s.get(Item, base.id)
    s.delete(it)
    s.flush()
    assert s.state(it) is S.DETACHED
    s.rollback()
    assert s.state(it) is S.PERSISTENT
    assert s.get(Item, base.id) is it
    it.name = "after"
    s.commit()
    assert raw(db, it)["name"] == "after"


@pytest.mark.transactions
def test_rollback_of_document_first_loaded_inside_aborted_transaction(db: Any) -> None:
    base = committed_item(db, name="committed", qty=1)
    s = Session(db)
    # a write this session does not track, inside the transaction
    s.update(Item(id=base.id, name="aborted", qty=5), update_ops={"name": "$set"})
    s.flush()
    loaded = s.get(Item, base.id)  # first loaded inside the transaction
    assert loaded is not None
    assert (loaded.name, loaded.qty) == ("aborted", 6)
    s.rollback()
    assert (loaded.name, loaded.qty) == ("committed", 1)
    loaded.tags.append("z")
    s.commit()
    assert raw(db, base) == {"_id": base.id, "name": "committed", "qty": 1, "tags": ["z"]}


@pytest.mark.transactions
def test_rollback_of_document_filled_by_later_query_inside_transaction(db: Any) -> None:
    base = committed_item(db, name="committed", qty=1, tags=["c"])
    s = Session(db)
    part = s.query(Item).fields("name").first()
    assert part is not None and part.id == base.id
    s.update(
        Item(id=base.id, name="x", qty=5, tags=["aborted"]),
        update_ops={"tags": "$set", "name": "$set"},
    )
    s.flush()
    full = s.query(Item).first()  # fills in qty and tags inside the transaction
    assert full is part
    assert part.qty == 6 and part.tags == ["aborted"]
    s.rollback()
    assert part.qty == 1
    assert part.tags == ["c"]


@pytest.mark.transactions
def test_rollback_of_document_first_inserted_in_transaction_becomes_transient(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    s.flush()
    it.name = "b"
    s.flush()
    s.rollback()
    assert s.state(it) is S.TRANSIENT
    s.add(it)
    assert s.state(it) is S.PENDING
    s.commit()
    assert raw(db, it) == {"_id": it.id, "name": "b", "qty": 0, "tags": []}


@pytest.mark.transactions
def test_with_block_exception_with_transaction_writes_nothing(db: Any) -> None:
    base = committed_item(db)
    with pytest.raises(RuntimeError):
        with Session(db) as s:
            it = s.get(Item, base.id)
            it.name = "flushed-in-txn"
            s.add(Item(name="other"))
            s.flush()
            raise RuntimeError
    assert raw(db, base)["name"] == "a"
    assert db.a7_items.count_documents({}) == 1


@pytest.mark.transactions
def test_commit_makes_flushed_visible(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    s.flush()
    assert raw(db, it) is None
    s.commit()
    assert raw(db, it) is not None
    # a second transaction after commit
    it.name = "b"
    s.flush()
    assert raw(db, it)["name"] == "a"
    s.commit()
    assert raw(db, it)["name"] == "b"


@pytest.mark.transactions
def test_transaction_block_joins_open_transaction_and_rolls_back_all(db: Any) -> None:
    base = committed_item(db)
    s = Session(db)
    it = s.get(Item, base.id)
    it.name = "before-block"
    s.flush()  # opens the transaction
    with pytest.raises(ZeroDivisionError):
        with s.transaction():
            it.qty = 3
            s.flush()
            1 / 0
    assert raw(db, base) == {"_id": base.id, "name": "a", "qty": 0, "tags": []}
    assert (it.name, it.qty) == ("a", 0)
    assert not s.closed


@pytest.mark.transactions
def test_transaction_block_commits_everything_since_last_commit(db: Any) -> None:
    base = committed_item(db)
    s = Session(db)
    it = s.get(Item, base.id)
    it.name = "before-block"
    s.flush()
    with s.transaction():
        it.qty = 3
        new = Item(name="in-block")
        s.add(new)
    assert raw(db, base) == {"_id": base.id, "name": "before-block", "qty": 3, "tags": []}
    assert raw(db, new) is not None
    assert not s.has_changes()


def test_transaction_block_on_server_without_transactions(db: Any) -> None:
    s = Session(db, transactional=False)
    with pytest.raises(uow.TransactionError):
        with s.transaction():
            s.add(Item(name="x"))
    with pytest.raises(uow.TransactionError):
        s.run_in_transaction(lambda: None)


@pytest.mark.not_mongomock
def test_transactional_true_ok_on_replica_set(db: Any) -> None:
    s = Session(db, transactional=True)
    s.add(Item(name="a"))
    s.commit()


def test_transactional_true_refused_on_mongomock(mongomock_db: Any) -> None:
    with pytest.raises(uow.TransactionError):
        Session(mongomock_db, transactional=True)


@pytest.mark.transactions
def test_run_in_transaction_returns_and_commits(db: Any) -> None:
    s = Session(db)

    def work(name: str) -> Item:
        it = Item(name=name)
        s.add(it)
        return it

    it = s.run_in_transaction(work, "x")
    assert raw(db, it)["name"] == "x"


@pytest.mark.transactions
def test_upsert_then_rollback_counter(db: Any) -> None:
    s = Session(db)
    s.update(Counter(id="r1", hits=1), upsert=True)
    s.flush()
    s.rollback()
    assert db.a7_counter.find_one({"_id": "r1"}) is None
    assert s.get(Counter, "r1") is None
