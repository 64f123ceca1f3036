"""state(), is_dirty, dirty_fields, original_value, has_changes, what_changed, stats;
clear_queue, clear_cache, expunge, expunge_all, refresh, clone."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import raw
from ._models import Item, Other

S = ObjectState


def committed(s: Session, *objs: Any) -> None:
    s.add_all(objs)
    s.commit()


def test_dirty_inspection(db: Any) -> None:
    s = Session(db)
    it = Item(name="a", qty=1, tags=["x"])
    committed(s, it)
    assert not s.is_dirty(it) and s.dirty_fields(it) == [] and not s.has_changes()
    it.tags.append("y")
    it.name = "b"
    assert s.is_dirty(it)
    assert s.dirty_fields(it) == ["name", "tags"]
    assert s.original_value(it, "name") == "a"
    assert s.original_value(it, "tags") == ["x"]
    assert s.has_changes()
    wc = s.what_changed()
    key = ("a7_items", it.id)
    assert set(wc) == {key}
    assert wc[key]["name"] == ("a", "b")
    assert wc[key]["tags"] == (["x"], ["x", "y"])
    # the original value is a copy: mutating it does not change the snapshot
    orig = s.original_value(it, "tags")
    orig.append("zzz")
    assert s.original_value(it, "tags") == ["x"]
    # setting back to the original value is not a change
    it.name = "a"
    it.tags.pop()
    assert not s.is_dirty(it) and s.what_changed() == {}


def test_pending_insert_is_not_dirty_but_is_change(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    assert s.has_changes()
    assert s.what_changed() == {}  # only persistent documents
    st = s.stats()
    assert (st.pending_inserts, st.pending_updates, st.pending_deletes) == (1, 0, 0)
    assert st.identity_map_size == 1


def test_stats_counts(db: Any) -> None:
    s = Session(db, transactional=False)
    a, b, c = Item(name="a"), Item(name="b"), Other(name="c")
    committed(s, a, b, c)
    st = s.stats()
    assert st.identity_map_size == 3
    assert st.flushes >= 1 and st.round_trips == 2
    a.name = "x"
    s.delete(b)
    s.add(Item(name="n"))
    st = s.stats()
    assert (st.pending_inserts, st.pending_updates, st.pending_deletes) == (1, 1, 1)
    assert st.identity_map_size == 4
    d = st.as_dict()
    assert d["pending_inserts"] == 1 and d["identity_map_size"] == 4
    for k in (
        "identity_map_size",
        "pending_inserts",
        "pending_updates",
        "pending_deletes",
        "round_trips",
        "flushes",
        "queries",
        "requests",
        "cache_hits",
        "cache_misses",
    ):
        assert isinstance(d[k], int), k
    before = s.stats()
    r = s.flush()
    after = s.stats()
    assert r.round_trips == 3
    assert after.round_trips - before.round_trips == 3
    assert after.flushes - before.flushes == 1
    assert (after.pending_inserts, after.pending_updates, after.pending_deletes) == (0, 0, 0)
    assert after.identity_map_size == 3  # b left after the flush that deleted it


def test_stats_queries_and_cache(db: Any) -> None:
    s = Session(db, transactional=False)
    a = Item(name="a")
    committed(s, a)
    s.expunge_all()
    base = s.stats()
    got = s.get(Item, a.id)  # miss: a query
    st = s.stats()
    assert st.queries - base.queries == 1
    assert st.cache_misses - base.cache_misses == 1
    assert s.get(Item, a.id) is got  # hit: no query
    st2 = s.stats()
    assert st2.queries == st.queries
    assert st2.cache_hits - st.cache_hits == 1
    s.count(Item)
    assert s.stats().queries == st2.queries + 1


def test_state_transitions(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    assert s.state(it) is S.TRANSIENT
    s.add(it)
    assert s.state(it) is S.PENDING
    s.flush()
    assert s.state(it) is S.PERSISTENT
    s.delete(it)
    assert s.state(it) is S.DELETED
    s.flush()
    assert s.state(it) is S.DETACHED
    s.commit()
    assert s.state(it) is S.DETACHED


def test_clear_queue(db: Any) -> None:
    s = Session(db)
    a, b, c = Item(name="a"), Item(name="b"), Item(name="c", qty=1)
    committed(s, a, b, c)
    new = Item(name="new")
    s.add(new)
    s.delete(b)
    s.update(c)
    a.name = "dirty"
    s.clear_queue()
    assert s.state(new) is S.TRANSIENT
    assert s.state(b) is S.PERSISTENT
    assert s.is_dirty(a)
    st = s.stats()
    assert (st.pending_inserts, st.pending_deletes) == (0, 0)
    assert st.pending_updates == 1  # only a's in-memory change
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted) == (0, 1, 0)
    s.commit()
    assert raw(db, a)["name"] == "dirty"
    assert raw(db, b) is not None
    assert raw(db, new) is None
    assert s.get(Item, new.id) is None
    s.rollback()
    assert a.name == "dirty"


def test_clear_queue_then_rollback_undoes_memory(db: Any) -> None:
    s = Session(db)
    a = Item(name="a")
    committed(s, a)
    a.name = "dirty"
    s.clear_queue()
    s.rollback()
    assert a.name == "a"
    assert not s.is_dirty(a)


def test_clear_queue_of_delete_of_pending_readded_object(db: Any) -> None:
    """delete of a stored doc + add of a new object with the same id, then clear_queue:
    the replacement insert is forgotten; the old document must still be tracked or at
    least the store untouched and a later get must read the stored document."""
    s = Session(db)
    old = Item(name="old")
    committed(s, old)
    s.delete(old)
    new = Item(id=old.id, name="new")
    s.add(new)
    s.clear_queue()
    assert s.state(new) is S.TRANSIENT
    got = s.get(Item, old.id)
    assert got is not None and got.name == "old"
    s.commit()
    assert raw(db, old) == {"_id": old.id, "name": "old", "qty": 0, "tags": []}


def test_clear_cache(db: Any) -> None:
    s = Session(db, transactional=False)
    clean, dirty, gone = Item(name="clean"), Item(name="dirty"), Item(name="del")
    committed(s, clean, dirty, gone)
    dirty.tags.append("x")  # in-place mutation only
    s.delete(gone)
    pend = Item(name="pending")
    s.add(pend)
    s.clear_cache()
    assert s.state(clean) is S.DETACHED
    assert s.state(dirty) is S.PERSISTENT
    assert s.state(gone) is S.DELETED
    assert s.state(pend) is S.PENDING
    again = s.get(Item, clean.id)
    assert again is not None and again is not clean
    s.commit()
    assert raw(db, dirty)["tags"] == ["x"]
    assert raw(db, gone) is None
    assert raw(db, pend) is not None


def test_expunge(db: Any) -> None:
    s = Session(db)
    a = Item(name="a")
    committed(s, a)
    a.name = "changed"
    s.expunge(a)
    assert s.state(a) is S.DETACHED
    assert not s.has_changes()
    s.commit()
    assert raw(db, a)["name"] == "a"
    other = s.get(Item, a.id)
    assert other is not a and other.name == "a"


def test_expunge_pending_and_deleted(db: Any) -> None:
    s = Session(db)
    a = Item(name="a")
    committed(s, a)
    p = Item(name="p")
    s.add(p)
    s.delete(a)
    s.expunge(p)
    s.expunge(a)
    assert s.state(p) is S.TRANSIENT
    assert s.stats().pending_inserts == 0 and s.stats().pending_deletes == 0
    s.commit()
    assert raw(db, p) is None
    assert raw(db, a) is not None


def test_expunge_all(db: Any) -> None:
    s = Session(db)
    a, b = Item(name="a"), Item(name="b")
    committed(s, a, b)
    a.name = "x"
    s.add(Item(name="c"))
    s.expunge_all()
    assert s.stats().identity_map_size == 0
    assert not s.has_changes()
    s.commit()
    assert db.a7_items.count_documents({}) == 2
    assert raw(db, a)["name"] == "a"


def test_expunge_transient_raises_or_noop(db: Any) -> None:
    s = Session(db)
    with contextlib.suppress(uow.UowError):
        s.expunge(Item(name="z"))


def test_refresh_discards_and_never_autoflushes(db: Any) -> None:
    s = Session(db, transactional=False)
    a = Item(name="a", qty=1)
    committed(s, a)
    db.a7_items.update_one({"_id": a.id}, {"$set": {"name": "server", "qty": 9}})
    a.name = "local"
    pend = Item(name="pending")
    s.add(pend)
    before = s.stats().flushes
    s.refresh(a)
    assert (a.name, a.qty) == ("server", 9)
    assert not s.is_dirty(a)
    assert s.stats().flushes == before
    assert raw(db, pend) is None
    assert s.state(pend) is S.PENDING
    a.qty += 1
    s.commit()
    assert raw(db, a) == {"_id": a.id, "name": "server", "qty": 10, "tags": []}


def test_refresh_of_document_deleted_on_server(db: Any) -> None:
    s = Session(db, transactional=False)
    a = Item(name="a")
    committed(s, a)
    db.a7_items.delete_one({"_id": a.id})
    with pytest.raises(uow.NotFound):
        s.refresh(a)


def test_refresh_of_pending_document(db: Any) -> None:
    s = Session(db)
    p = Item(name="p")
    s.add(p)
    try:
        s.refresh(p)
    except uow.UowError:
        pass
    else:
        pytest.fail("refresh of a never-stored document should raise")
    assert raw(db, p) is None  # and never autoflushed


def test_clone(db: Any) -> None:
    s = Session(db)
    a = Item(name="a", qty=3, tags=["x"])
    committed(s, a)
    c = s.clone(a)
    assert c is not a and c.id != a.id
    assert s.state(c) is S.TRANSIENT
    assert (c.name, c.qty, c.tags) == ("a", 3, ["x"])
    c.tags.append("y")  # deep copy
    assert a.tags == ["x"]
    s.add(c)
    s.commit()
    assert raw(db, c) == {"_id": c.id, "name": "a", "qty": 3, "tags": ["x", "y"]}
    assert not s.is_dirty(a)


def test_clone_of_partial_raises(db: Any) -> None:
    s = Session(db)
    a = Item(name="a", qty=3)
    committed(s, a)
    s.expunge_all()
    part = s.query(Item).fields("name").first()
    with pytest.raises(uow.FieldNotLoaded) as ei:
        s.clone(part)
    assert "qty" in str(ei.value) and "tags" in str(ei.value)


def test_clone_keeps_unknown_keys_or_not_but_is_valid(db: Any) -> None:
    s = Session(db)
    a = Item(name="a")
    committed(s, a)
    db.a7_items.update_one({"_id": a.id}, {"$set": {"extra": 1}})
    s.expunge_all()
    loaded = s.get(Item, a.id)
    c = s.clone(loaded)
    s.add(c)
    s.commit()
    assert raw(db, c)["name"] == "a"
