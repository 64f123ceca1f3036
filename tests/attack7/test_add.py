"""add / add_all / save of new, persistent and detached documents; delete + re-add."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from tests._blackbox import assert_stored_is_memory
from uow import ObjectState, Session

from ._h import raw
from ._models import Item, Other

S = ObjectState


def stored_item(db: Any, name: str = "a", **kw: Any) -> Item:
    """An Item committed by a session that is then closed."""
    s = Session(db)
    it = Item(name=name, **kw)
    s.add(it)
    s.commit()
    s.close()
    return it


def test_add_new_is_pending_then_persistent(db: Any) -> None:
    s = Session(db)
    it = Item(name="a", qty=3, tags=["x"])
    assert s.state(it) is S.TRANSIENT
    s.add(it)
    assert s.state(it) is S.PENDING
    assert s.get(Item, it.id) is it  # a pending object is found too (and autoflush may run)
    s.commit()
    assert s.state(it) is S.PERSISTENT
    assert raw(db, it) == {"_id": it.id, "name": "a", "qty": 3, "tags": ["x"]}
    assert_stored_is_memory(db, it)


def test_add_persistent_is_noop(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    r1 = s.flush()
    assert r1.inserted == 1
    s.add(it)
    s.add_all([it, it])
    r2 = s.flush()
    assert (r2.inserted, r2.updated, r2.deleted, r2.round_trips) == (0, 0, 0, 0)
    s.commit()
    assert db.a7_items.count_documents({}) == 1


def test_add_twice_before_flush_inserts_once(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    s.add(it)
    assert s.stats().pending_inserts == 1
    r = s.flush()
    assert r.inserted == 1
    s.commit()
    assert db.a7_items.count_documents({}) == 1


def test_add_all_and_save(db: Any) -> None:
    s = Session(db)
    a, b, c = Item(name="a"), Item(name="b"), Other(name="c")
    s.add_all([a, b, c])
    assert [s.state(x) for x in (a, b, c)] == [S.PENDING] * 3
    d = Item(name="d")
    s.save(d)
    # save flushes: everything queued (a, b, c and d) is written
    for x in (a, b, c, d):
        assert s.state(x) is S.PERSISTENT
    s.commit()
    assert_stored_is_memory(db, a, b, c, d)


def test_add_all_accepts_generator(db: Any) -> None:
    s = Session(db)
    items = [Item(name=str(i)) for i in range(3)]
    s.add_all(x for x in items)
    s.commit()
    assert db.a7_items.count_documents({}) == 3


def test_save_of_persistent_changed_writes_change(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.save(it)
    it.name = "b"
    it.qty += 2
    s.save(it)
    assert not s.is_dirty(it)
    s.commit()
    assert raw(db, it) == {"_id": it.id, "name": "b", "qty": 2, "tags": []}


# ------------------------------------------------------------------ detached


def test_add_expunged_with_changes_made_while_detached(db: Any) -> None:
    s = Session(db)
    it = Item(name="a", qty=5, tags=["x"])
    s.add(it)
    s.commit()
    s.expunge(it)
    assert s.state(it) is S.DETACHED
    it.name = "b"
    it.qty = 7
    it.tags.append("y")
    s.add(it)
    assert s.state(it) is S.PERSISTENT
    assert s.is_dirty(it)
    assert s.dirty_fields(it) == ["name", "qty", "tags"]
    r = s.flush()
    assert r.inserted == 0 and r.updated == 1
    s.commit()
    assert raw(db, it) == {"_id": it.id, "name": "b", "qty": 7, "tags": ["x", "y"]}


def test_add_after_clear_cache_with_changes(db: Any) -> None:
    s = Session(db)
    it = Item(name="a", qty=5)
    s.add(it)
    s.commit()
    s.clear_cache()
    assert s.state(it) is S.DETACHED
    it.qty = 2  # $inc of -3 relative to the stored snapshot
    s.add(it)
    s.commit()
    assert raw(db, it)["qty"] == 2
    assert s.get(Item, it.id) is it


def test_add_from_closed_session_into_new_session(db: Any) -> None:
    it = stored_item(db, "a", qty=1)
    it.qty = 10
    it.tags.append("t")
    s2 = Session(db)
    assert s2.state(it) is S.DETACHED
    s2.add(it)
    assert s2.state(it) is S.PERSISTENT
    assert s2.get(Item, it.id) is it
    s2.commit()
    assert raw(db, it) == {"_id": it.id, "name": "a", "qty": 10, "tags": ["t"]}


def test_add_detached_unchanged_sends_nothing(db: Any) -> None:
    it = stored_item(db, "a")
    s2 = Session(db)
    s2.add(it)
    assert not s2.is_dirty(it)
    r = s2.flush()
    assert (r.inserted, r.updated, r.round_trips) == (0, 0, 0)


def test_add_detached_inc_is_relative_to_snapshot_not_to_stored(db: Any) -> None:
    """Changes made while detached are written relative to the last stored snapshot:
    with $inc, the delta since that snapshot is applied, so a concurrent
    increment is kept (the field's operator)."""
    it = stored_item(db, "a", qty=5)
    db.a7_items.update_one({"_id": it.id}, {"$inc": {"qty": 100}})  # someone else
    it.qty = 6
    s2 = Session(db)
    s2.add(it)
    s2.commit()
    assert raw(db, it)["qty"] == 106


def test_detached_document_held_by_other_session_is_detached_there(db: Any) -> None:
    s1 = Session(db)
    it = Item(name="a")
    s1.add(it)
    s1.commit()
    s2 = Session(db)
    assert s2.state(it) is S.DETACHED


def test_add_detached_conflicts_with_loaded_identity(db: Any) -> None:
    """The identity map promises one object per document: adding a detached copy
    while another object for the same id is loaded must not give two objects."""
    it = stored_item(db, "a")
    s2 = Session(db)
    loaded = s2.get(Item, it.id)
    assert loaded is not None and loaded is not it
    try:
        s2.add(it)
    except uow.UowError:
        return  # refusing is acceptable
    assert s2.get(Item, it.id) in (it, loaded)
    # whichever wins, flushing must not break or duplicate
    s2.commit()
    assert db.a7_items.count_documents({}) == 1


# ------------------------------------------------------------- delete / re-add


def test_delete_pending_insert_cancels_it(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    s.delete(it)
    assert s.stats().pending_inserts == 0
    assert s.stats().pending_deletes == 0
    r = s.flush()
    assert (r.inserted, r.deleted, r.round_trips) == (0, 0, 0)
    s.commit()
    assert db.a7_items.count_documents({}) == 0
    assert s.state(it) is S.TRANSIENT


def test_delete_then_add_new_object_same_id_is_one_replace(db: Any) -> None:
    old = stored_item(db, "a", qty=4, tags=["x"])
    db.a7_items.update_one({"_id": old.id}, {"$set": {"extra": 1}})
    s = Session(db)
    loaded = s.get(Item, old.id)
    assert loaded is not None
    s.delete(loaded)
    new = Item(id=old.id, name="b")
    s.add(new)
    r = s.flush()
    assert r.inserted + r.updated == 1
    assert r.deleted == 0
    s.commit()
    stored = raw(db, new)
    stored.pop("extra", None)  # SPEC ambiguous about unknown keys of a replaced document
    assert stored == {"_id": old.id, "name": "b", "qty": 0, "tags": []}
    assert s.get(Item, old.id) is new
    assert s.state(new) is S.PERSISTENT
    assert s.state(loaded) is S.DETACHED


def test_delete_then_add_same_object_cancels_delete(db: Any) -> None:
    it = stored_item(db, "a")
    s = Session(db)
    it2 = s.get(Item, it.id)
    s.delete(it2)
    assert s.state(it2) is S.DELETED
    try:
        s.add(it2)
    except uow.UowError as e:  # refusing is acceptable (SPEC is silent); say what to do
        assert "rollback" in str(e) or "flush" in str(e)
        return
    assert s.state(it2) is S.PERSISTENT
    r = s.flush()
    assert r.deleted == 0
    s.commit()
    assert raw(db, it2) is not None


def test_delete_flushed_then_add_new_same_id_inserts(db: Any) -> None:
    it = stored_item(db, "a")
    s = Session(db)
    loaded = s.get(Item, it.id)
    s.delete(loaded)
    s.flush()
    assert s.state(loaded) is S.DETACHED
    new = Item(id=it.id, name="z")
    s.add(new)
    r = s.flush()
    assert r.inserted == 1
    s.commit()
    assert raw(db, new) == {"_id": it.id, "name": "z", "qty": 0, "tags": []}


def test_delete_then_readd_new_object_changed_more_before_flush(db: Any) -> None:
    it = stored_item(db, "a", qty=9)
    s = Session(db)
    loaded = s.get(Item, it.id)
    s.delete(loaded)
    new = Item(id=it.id, name="b", qty=1)
    s.add(new)
    new.qty = 2  # changed while pending: the replace must carry 2, not a $inc
    new.tags.append("q")
    s.commit()
    stored = raw(db, new)
    stored.pop("extra", None)
    assert stored == {"_id": it.id, "name": "b", "qty": 2, "tags": ["q"]}


def test_delete_readd_then_delete_again(db: Any) -> None:
    it = stored_item(db, "a")
    s = Session(db)
    loaded = s.get(Item, it.id)
    s.delete(loaded)
    new = Item(id=it.id, name="b")
    s.add(new)
    s.delete(new)
    s.commit()
    assert raw(db, it) is None


@pytest.mark.parametrize("commit_first", [False, True])
def test_deleted_then_flushed_document_readded_is_reinserted(db: Any, commit_first: bool) -> None:
    """A document deleted by a flush is DETACHED; add() of it again inserts it
    again (after a flush without a transaction, or after the commit): nothing of
    it is stored, so tracking it as stored would write nothing."""
    it = stored_item(db, "a")
    s = Session(db, transactional=None if commit_first else False)
    loaded = s.get(Item, it.id)
    s.delete(loaded)
    if commit_first:
        s.commit()
    else:
        s.flush()
    assert s.state(loaded) is S.DETACHED
    s.add(loaded)
    assert s.state(loaded) is S.PENDING
    loaded.name = "again"
    s.commit()
    assert raw(db, loaded) == loaded.to_bson()
    assert s.state(loaded) is S.PERSISTENT


@pytest.mark.transactions
def test_deleted_in_open_transaction_readded_is_reinserted(db: Any) -> None:
    it = stored_item(db, "a")
    s = Session(db)
    loaded = s.get(Item, it.id)
    s.delete(loaded)
    s.flush()
    s.add(loaded)
    s.commit()
    assert raw(db, loaded) == loaded.to_bson()
