"""SPEC "Session": construction, the with-block, unit of work, inspection, identity map."""

from __future__ import annotations

import gc
import logging
import uuid
from typing import Any

import pytest

import uow
from uow import Document, Session, field
from uow._backend import reset_embedded

from ._h import insert_raw, stored, stored_or_none

S = uow.ObjectState


class A4SItem(Document):
    __collection__ = "a4_s_items"
    name: str = ""
    n: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    b: int = 0


class A4SOther(Document):
    __collection__ = "a4_s_other"
    name: str = ""


@pytest.fixture
def mm_uri() -> Any:
    uri = f"mongomock://a4-{uuid.uuid4().hex}"
    yield uri
    reset_embedded(uri)


def _echo_ops(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split(" ")[0]
        for r in caplog.records
        if r.name == "uow" and r.levelno == logging.INFO
    ]


# ---------------------------------------------------------------- connect / with


def test_a4_connect_host_from_env(monkeypatch: pytest.MonkeyPatch, mm_uri: str) -> None:
    monkeypatch.setenv("UOW_MONGODB_URI", mm_uri)
    with Session.connect("a4db") as s:
        s.add(A4SItem(name="env"))
    with Session.connect("a4db", mm_uri) as s2:
        assert [x.name for x in s2.all(A4SItem)] == ["env"]


def test_a4_connect_explicit_mongomock_host(mm_uri: str) -> None:
    s = Session.connect("a4db", mm_uri)
    s.add(A4SItem(name="a"))
    s.flush()
    s.commit()
    s.close()
    with Session.connect("a4db", host=mm_uri) as s2:
        assert s2.count(A4SItem) == 1


def test_a4_with_commits_closes_and_is_current(db: Any) -> None:
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    with Session(db) as s:
        assert uow.current_session() is s
        with Session(db) as inner:
            assert uow.current_session() is inner
        assert uow.current_session() is s
        item = A4SItem(name="w")
        s.add(item)
    assert stored(db, "a4_s_items", item.id)["name"] == "w"
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    with pytest.raises(uow.SessionClosedError):
        s.add(A4SItem())


def test_a4_with_rolls_back_unflushed_work(db: Any) -> None:
    item = A4SItem(name="x")
    with pytest.raises(RuntimeError), Session(db) as s:
        s.add(item)
        raise RuntimeError("boom")
    assert stored_or_none(db, "a4_s_items", item.id) is None
    with pytest.raises(uow.SessionClosedError):
        s.flush()


@pytest.mark.transactions
def test_a4_with_block_is_one_transaction(db: Any) -> None:
    item = A4SItem(name="x")
    with pytest.raises(RuntimeError), Session(db) as s:
        s.add(item)
        s.flush()
        raise RuntimeError("boom")
    assert stored_or_none(db, "a4_s_items", item.id) is None


def test_a4_without_transactions_flushed_work_stays(db: Any) -> None:
    a, b = A4SItem(name="a"), A4SItem(name="b")
    with pytest.raises(RuntimeError), Session(db, transactional=False) as s:
        s.add(a)
        s.flush()
        s.add(b)
        raise RuntimeError("boom")
    assert stored(db, "a4_s_items", a.id)["name"] == "a"
    assert stored_or_none(db, "a4_s_items", b.id) is None


def test_a4_script_style(db: Any) -> None:
    s = Session(db)
    s.add(A4SItem(name="s"))
    r = s.flush()
    s.commit()
    s.close()
    assert r.inserted == 1 and r.round_trips == 1
    assert db["a4_s_items"].count_documents({}) == 1


# ---------------------------------------------------------------- options


def test_a4_no_tracking(db: Any) -> None:
    oid = insert_raw(db, "a4_s_items", {"name": "a", "n": 5, "tags": []})
    s = Session(db, no_tracking=True)
    x = s.get(A4SItem, oid)
    y = s.get(A4SItem, oid)
    assert x is not None and y is not None
    assert x is not y
    x.name = "changed"
    assert s.flush().updated == 0
    assert stored(db, "a4_s_items", oid)["name"] == "a"
    db["a4_s_items"].update_one({"_id": oid}, {"$set": {"n": 100}})
    s.update(x)
    s.commit()
    doc = stored(db, "a4_s_items", oid)
    assert doc["n"] == 5  # the loaded value, absolute
    assert doc["name"] == "changed"
    new = A4SItem(name="new")
    s.add(new)
    s.delete(y)
    s.commit()
    assert stored_or_none(db, "a4_s_items", oid) is None
    assert stored(db, "a4_s_items", new.id)["name"] == "new"
    s.close()


def test_a4_echo_to_stderr(db: Any, capfd: pytest.CaptureFixture[str]) -> None:
    s = Session(db, echo=True)
    item = A4SItem(name="echoed")
    s.add(item)
    s.flush()
    err = capfd.readouterr().err
    assert "insert" in err and "echoed" in err
    s.close()


def test_a4_echo_logs_info_on_uow_logger(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uow")
    s = Session(db, echo=True)
    s.add(A4SItem(name="x"))
    s.flush()
    s.count(A4SItem)
    ops = _echo_ops(caplog)
    assert "insert" in ops
    assert len(ops) >= 2
    s.close()


# ---------------------------------------------------------------- unit of work


def test_a4_add_persistent_is_noop_and_save(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a")
    assert s.state(a) is S.TRANSIENT
    s.add(a)
    assert s.state(a) is S.PENDING
    s.save(a)
    s.commit()
    assert s.state(a) is S.PERSISTENT
    assert stored(db, "a4_s_items", a.id)["name"] == "a"
    s.add(a)
    assert s.flush().inserted == 0
    b, c = A4SItem(name="b"), A4SItem(name="c")
    s.add_all([b, c])
    r = s.flush()
    assert (r.inserted, r.round_trips) == (2, 1)
    s.close()


def test_a4_add_detached_tracks_changes(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a", n=1)
    s.save(a)
    s.commit()
    s.expunge(a)
    assert s.state(a) is S.DETACHED
    a.name = "changed"
    a.n += 2
    s.add(a)
    assert s.state(a) is S.PERSISTENT
    r = s.flush()
    assert r.updated == 1 and r.inserted == 0
    s.commit()
    doc = stored(db, "a4_s_items", a.id)
    assert doc["name"] == "changed" and doc["n"] == 3
    s.close()


def test_a4_add_detached_from_closed_session(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a")
    s.save(a)
    s.commit()
    s.close()
    db["a4_s_items"].update_one({"_id": a.id}, {"$set": {"b": 9}})
    a.n += 4
    s2 = Session(db)
    s2.add(a)
    s2.commit()
    doc = stored(db, "a4_s_items", a.id)
    assert doc["n"] == 4 and doc["b"] == 9
    s2.close()


def test_a4_delete_pending_cancels_insert(db: Any) -> None:
    s = Session(db)
    a = A4SItem()
    s.add(a)
    s.delete(a)
    r = s.flush()
    assert (r.inserted, r.deleted, r.round_trips) == (0, 0, 0)
    assert stored_or_none(db, "a4_s_items", a.id) is None
    s.close()


def test_a4_delete_then_add_same_id_replaces(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="old", tags=["x"])
    s.save(a)
    s.commit()
    db["a4_s_items"].update_one({"_id": a.id}, {"$set": {"unknown": 1}})
    s.delete(a)
    assert s.state(a) is S.DELETED
    b = A4SItem(id=a.id, name="new")
    s.add(b)
    r = s.flush()
    assert r.inserted == 0
    assert r.round_trips == 1
    s.commit()
    doc = stored(db, "a4_s_items", a.id)
    assert doc["name"] == "new" and doc["tags"] == []
    assert s.get(A4SItem, a.id) is b
    s.close()


def test_a4_update_tracked_forces_update(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a")
    s.save(a)
    s.commit()
    db["a4_s_items"].update_one({"_id": a.id}, {"$set": {"name": "server"}})
    s.update(a)
    r = s.flush()
    assert r.updated == 1
    s.commit()
    assert stored(db, "a4_s_items", a.id)["name"] == "a"
    s.close()


def test_a4_update_transient_counter(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="c", n=0)
    s.save(a)
    s.commit()
    s.close()
    s2 = Session(db)
    delta = A4SItem(id=a.id, name="c", n=3)
    s2.update(delta)
    s2.commit()
    s2.update(A4SItem(id=a.id, name="c", n=2))
    s2.commit()
    assert stored(db, "a4_s_items", a.id)["n"] == 5
    new_id = A4SItem().id
    s2.update(A4SItem(id=new_id, name="up", n=4), upsert=True)
    s2.commit()
    doc = stored(db, "a4_s_items", new_id)
    assert doc["n"] == 4 and doc["name"] == "up"
    missing = A4SItem(name="nope", n=1)
    s2.update(missing)
    s2.commit()
    assert stored_or_none(db, "a4_s_items", missing.id) is None
    s2.close()


def test_a4_update_ops_kwargs_and_id_expression(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a", n=10, b=10)
    s.save(a)
    s.commit()
    s.close()
    s2 = Session(db)
    s2.update(A4SItem(id=a.id, name="a", n=3, b=5), update_ops={A4SItem.n: "$set"}, b="$inc")
    s2.commit()
    doc = stored(db, "a4_s_items", a.id)
    assert doc["n"] == 3 and doc["b"] == 15
    s2.update(
        A4SItem(name="z", n=1, b=0), id_expression=A4SItem.name == "a", update_ops={"b": "$max"}
    )
    s2.commit()
    doc = stored(db, "a4_s_items", a.id)
    assert doc["name"] == "z" and doc["n"] == 4 and doc["b"] == 15
    s2.update(A4SItem(name="y", n=0, b=0), id_expression={"name": "z"})
    s2.commit()
    assert stored(db, "a4_s_items", a.id)["name"] == "y"
    s2.close()


def test_a4_flush_order(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uow")
    s = Session(db, echo=True)
    o1, i1 = A4SOther(name="o"), A4SItem(name="i")
    s.add_all([o1, i1])
    s.flush()
    caplog.clear()
    s.delete(o1)
    i1.name = "changed"
    s.add(A4SItem(name="later"))  # a4_s_other was queued first (the delete)
    s.add(A4SOther(name="later"))
    r = s.flush()
    msgs = [r.getMessage() for r in caplog.records if r.name == "uow" and r.levelno == logging.INFO]
    heads = [" ".join(m.split(" ")[:2]) for m in msgs]
    coll = db.name
    assert heads == [
        f"insert {coll}.a4_s_other",
        f"insert {coll}.a4_s_items",
        f"update {coll}.a4_s_items",
        f"delete {coll}.a4_s_other",
    ], heads
    assert (r.inserted, r.updated, r.deleted, r.round_trips) == (2, 1, 1, 4)
    s.close()


def test_a4_close_end_and_closed_errors(db: Any) -> None:
    s = Session(db)
    for i in range(3):
        s.add(A4SItem(name=str(i)))
    s.commit()
    it = iter(s.query(A4SItem))
    next(it)
    s.end()
    s.close()
    with pytest.raises(uow.SessionClosedError):
        next(it)
    for call in (
        s.flush,
        s.commit,
        lambda: s.get(A4SItem, 1),
        lambda: s.query(A4SItem),
        lambda: s.add(A4SItem()),
        s.stats,
        s.rollback,
    ):
        with pytest.raises(uow.SessionClosedError):
            call()


def test_a4_close_warns_of_dropped_changes(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="uow")
    s = Session(db)
    a = A4SItem()
    s.save(a)
    s.commit()
    a.name = "x"
    s.add(A4SItem())
    s.add(A4SItem())
    caplog.clear()
    s.close()
    warnings = [r for r in caplog.records if r.name == "uow" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "3" in warnings[0].getMessage()


def test_a4_close_clean_does_not_warn(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="uow")
    s = Session(db)
    s.add(A4SItem())
    s.commit()
    s.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a4_rollback_without_transaction(db: Any) -> None:
    s = Session(db, transactional=False)
    a = A4SItem(name="a")
    s.save(a)
    s.commit()
    a.name = "flushed"
    s.flush()
    a.name = "unflushed"
    b = A4SItem()
    s.add(b)
    s.rollback()
    assert a.name == "flushed"
    assert s.state(b) is S.TRANSIENT
    assert s.state(a) is S.PERSISTENT
    assert not s.has_changes()
    s.close()


@pytest.mark.transactions
def test_a4_rollback_with_transaction(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a")
    s.save(a)
    s.commit()
    a.name = "flushed"
    b = A4SItem(name="b")
    s.add(b)
    s.flush()
    s.rollback()
    assert a.name == "a"
    assert s.state(b) is S.TRANSIENT
    assert stored_or_none(db, "a4_s_items", b.id) is None
    assert stored(db, "a4_s_items", a.id)["name"] == "a"
    s.close()


def test_a4_expunge_refresh_clear_queue(db: Any) -> None:
    s = Session(db)
    a, b = A4SItem(name="a"), A4SItem(name="b")
    s.add_all([a, b])
    s.commit()
    s.expunge(a)
    assert s.state(a) is S.DETACHED
    s.expunge_all()
    assert s.state(b) is S.DETACHED
    x = s.get(A4SItem, a.id)
    assert x is not None and x is not a
    x.name = "local"
    db["a4_s_items"].update_one({"_id": a.id}, {"$set": {"name": "server"}})
    pending = A4SItem(name="pending")
    s.add(pending)
    s.refresh(x)  # never autoflushes
    assert x.name == "server"
    assert stored_or_none(db, "a4_s_items", pending.id) is None
    assert not s.is_dirty(x)
    y = s.get(A4SItem, b.id)
    assert y is not None
    y.name = "kept in memory"
    s.delete(x)
    s.clear_queue()
    assert s.state(pending) is S.TRANSIENT
    assert s.state(x) is S.PERSISTENT
    assert y.name == "kept in memory" and s.is_dirty(y)
    r = s.flush()
    assert (r.inserted, r.deleted, r.updated) == (0, 0, 1)
    s.commit()
    assert stored(db, "a4_s_items", a.id)["name"] == "server"
    s.close()


def test_a4_clear_cache(db: Any) -> None:
    s = Session(db)
    clean, dirty = A4SItem(name="c"), A4SItem(name="d")
    s.add_all([clean, dirty])
    s.commit()
    dirty.tags.append("t")
    s.clear_cache()
    assert s.state(clean) is S.DETACHED
    assert s.state(dirty) is S.PERSISTENT
    again = s.get(A4SItem, clean.id)
    assert again is not clean
    s.commit()
    assert stored(db, "a4_s_items", dirty.id)["tags"] == ["t"]
    s.close()


def test_a4_clone(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a", tags=["x"])
    s.save(a)
    s.commit()
    c = s.clone(a)
    assert type(c) is A4SItem
    assert c.id != a.id
    assert c.name == "a" and c.tags == ["x"]
    assert c.tags is not a.tags
    assert s.state(c) is S.TRANSIENT
    s.close()


def test_a4_clear_collection_and_indexes(db: Any) -> None:
    s = Session(db)
    s.add_all([A4SItem(), A4SItem(), A4SOther()])
    s.commit()
    s.clear_collection(A4SItem, A4SOther)
    s.commit()
    assert db["a4_s_items"].count_documents({}) == 0
    assert db["a4_s_other"].count_documents({}) == 0
    s.close()


# ---------------------------------------------------------------- inspection


def test_a4_inspection(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a", n=1, tags=["x"])
    s.save(a)
    s.commit()
    assert not s.is_dirty(a) and not s.has_changes()
    a.tags.append("y")
    a.name = "b"
    a.n += 1
    assert s.is_dirty(a)
    assert s.dirty_fields(a) == ["n", "name", "tags"]
    assert s.original_value(a, "name") == "a"
    assert s.original_value(a, "tags") == ["x"]
    assert s.has_changes()
    changed = s.what_changed()
    assert changed == {
        ("a4_s_items", a.id): {
            "n": (1, 2),
            "name": ("a", "b"),
            "tags": (["x"], ["x", "y"]),
        }
    }
    st = s.stats()
    assert st.pending_updates == 1
    assert st.identity_map_size == 1
    s.close()


def test_a4_what_changed_dotted_path(db: Any) -> None:
    from .test_a4_operators import A4OpAddr, A4Ops

    s = Session(db)
    o = A4Ops(addr=A4OpAddr(city="Oslo"))
    s.save(o)
    o.addr.city = "Rome"
    assert s.what_changed() == {("a4_ops", o.id): {"addr.city": ("Oslo", "Rome")}}
    assert s.dirty_fields(o) == ["addr"]
    s.close()


def test_a4_stats_counts(db: Any) -> None:
    s = Session(db)
    a, b, c = A4SItem(), A4SItem(), A4SItem()
    s.add_all([a, b])
    st = s.stats()
    assert (st.pending_inserts, st.identity_map_size) == (2, 2)
    s.flush()
    s.add(c)
    a.name = "x"
    s.update(b)
    s.delete(b)
    st = s.stats()
    assert st.pending_inserts == 1
    assert st.pending_deletes == 1
    assert st.identity_map_size == 3
    assert st.round_trips == 1 and st.flushes == 1
    s.commit()
    s.close()
    s2 = Session(db)
    q0 = s2.stats().queries
    assert s2.get(A4SItem, a.id) is not None
    assert s2.get(A4SItem, a.id) is not None
    st = s2.stats()
    assert st.queries == q0 + 1
    assert st.cache_hits == 1 and st.cache_misses == 1
    s2.count(A4SItem)
    s2.query(A4SItem).all()
    assert s2.stats().queries == q0 + 3
    s2.close()


def test_a4_stats_round_trips_exclude_index_builds(db: Any) -> None:
    from .test_a4_documents import A4Unique

    s = Session(db)
    s.add(A4Unique(code="z"))
    s.flush()
    st = s.stats()
    assert st.round_trips == 1
    assert st.requests >= 2
    s.close()


def test_a4_state_other_session(db: Any) -> None:
    s1, s2 = Session(db), Session(db)
    a = A4SItem()
    s1.save(a)
    assert s2.state(a) is S.DETACHED
    s1.delete(a)
    assert s1.state(a) is S.DELETED
    s1.flush()
    assert s1.state(a) is S.DETACHED
    s1.close()
    s2.close()


# ---------------------------------------------------------------- identity map


def test_a4_identity_map_everywhere(db: Any) -> None:
    s = Session(db)
    a = A4SItem(name="a")
    s.save(a)
    s.commit()
    s.close()
    s2 = Session(db)
    x = s2.get(A4SItem, a.id)
    assert x is not None
    x.name = "local"
    assert s2.query(A4SItem).first() is x
    assert s2.filter(A4SItem, name="local") == [x]
    assert s2.all(A4SItem) == [x]
    assert x.name == "local"
    s2.close()


def test_a4_query_does_not_overwrite_unflushed(db: Any) -> None:
    s = Session(db, autoflush=False)
    a = A4SItem(name="a")
    s.save(a)
    s.commit()
    a.name = "local"
    db["a4_s_items"].update_one({"_id": a.id}, {"$set": {"name": "server", "b": 3}})
    got = s.query(A4SItem).all()
    assert got == [a]
    assert a.name == "local"
    s.close()


def test_a4_cache_size_zero_keeps_held_and_dirty(db: Any) -> None:
    s = Session(db)
    items = [A4SItem(name=str(i)) for i in range(3)]
    s.add_all(items)
    s.commit()
    ids = [i.id for i in items]
    del items
    s.close()
    s2 = Session(db, cache_size=0)
    held = s2.get(A4SItem, ids[0])
    dirty = s2.get(A4SItem, ids[1])
    assert held is not None and dirty is not None
    dirty.tags.append("t")
    dirty_id = id(dirty)
    del dirty
    gc.collect()
    s2.get(A4SItem, ids[2])
    gc.collect()
    assert s2.get(A4SItem, ids[0]) is held
    d2 = s2.get(A4SItem, ids[1])
    assert d2 is not None and id(d2) == dirty_id and d2.tags == ["t"]
    s2.commit()
    assert stored(db, "a4_s_items", ids[1])["tags"] == ["t"]
    s2.close()


def test_a4_cache_size_none_keeps_all(db: Any) -> None:
    s = Session(db)
    items = [A4SItem(name=str(i)) for i in range(3)]
    s.add_all(items)
    s.commit()
    ids = [i.id for i in items]
    s.close()
    s2 = Session(db, cache_size=None)
    for i in ids:
        s2.get(A4SItem, i)
    gc.collect()
    assert s2.stats().identity_map_size == 3
    q = s2.stats().queries
    for i in ids:
        s2.get(A4SItem, i)
    assert s2.stats().queries == q
    s2.close()
