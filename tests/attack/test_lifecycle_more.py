"""Lifecycle corners: expunge/add, identity conflicts, close/add, clear_cache,
cache_size 0/1 with many documents changed in place, no_tracking, remove_query,
clear_collection, rollback without transactions, with-blocks, unit_of_work."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import insert_raw, stored, stored_or_none


class LcLine(Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc")


class LcDoc(Document):
    __collection__ = "lc_docs"

    name: str
    n: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    log: list[str] = field(factory=list, on_update="$push")
    lines: list[LcLine] = field(factory=list)


def _doc(db: Any, **v: Any) -> Any:
    return insert_raw(
        db,
        "lc_docs",
        {"name": "d", "n": 0, "tags": [], "log": [], "lines": [{"sku": "a", "qty": 0}], **v},
    )


def test_expunge_dirty_then_get_new_object_then_add_old(db: Any) -> None:
    """Two objects for one document: the expunged (with unflushed changes) and
    a fresh one from get(). As SQLAlchemy does, add() of the old one is refused
    (one object per document); the tracked one is written."""
    doc_id = _doc(db)
    s = uow.Session(db)
    old = s.get(LcDoc, doc_id)
    old.n += 1
    old.tags.append("old")
    s.expunge(old)
    new = s.get(LcDoc, doc_id)
    assert new is not old
    new.n += 10
    with pytest.raises(uow.UowError, match="already in this session"):
        s.add(old)
    s.commit()
    raw = stored(db, "lc_docs", doc_id)
    assert raw["n"] == new.n == 10
    assert raw["tags"] == new.tags == []
    assert s.state(old) == uow.ObjectState.DETACHED
    assert s.state(new) == uow.ObjectState.PERSISTENT
    s.close()


def test_clear_cache_then_query_then_add_the_detached_one(db: Any) -> None:
    doc_id = _doc(db)
    s = uow.Session(db)
    old = s.get(LcDoc, doc_id)
    s.clear_cache()
    assert s.state(old) == uow.ObjectState.DETACHED
    new = s.query(LcDoc).one()
    assert new is not old
    old.n += 1
    with pytest.raises(uow.UowError, match="already in this session"):
        s.add(old)
    s.commit()
    assert stored(db, "lc_docs", doc_id)["n"] == new.n == 0
    assert s.state(old) == uow.ObjectState.DETACHED
    assert s.state(new) == uow.ObjectState.PERSISTENT
    s.close()


def test_expunge_add_expunge_add_changes_once(db: Any) -> None:
    doc_id = _doc(db)
    s = uow.Session(db)
    d = s.get(LcDoc, doc_id)
    d.n += 1
    d.log.append("a")
    s.expunge(d)
    s.add(d)
    s.expunge(d)
    d.n += 1
    d.lines[0].qty += 1
    s.add(d)
    s.commit()
    raw = stored(db, "lc_docs", doc_id)
    assert raw["n"] == d.n == 2
    assert raw["log"] == ["a"]
    assert raw["lines"][0]["qty"] == 1
    s.close()


def test_flushed_then_detached_by_close_then_added_twice_to_new_sessions(db: Any) -> None:
    doc_id = _doc(db)
    s = uow.Session(db)
    d = s.get(LcDoc, doc_id)
    d.n += 1
    s.commit()
    s.close()
    d.n += 1
    s2 = uow.Session(db)
    s2.add(d)
    s2.commit()
    s2.close()
    d.n += 1
    d.log.append("x")
    s3 = uow.Session(db)
    s3.add(d)
    s3.commit()
    raw = stored(db, "lc_docs", doc_id)
    assert raw["n"] == d.n == 3
    assert raw["log"] == ["x"]
    s3.close()


def test_object_of_an_open_session_added_to_another(db: Any) -> None:
    """SPEC: DETACHED includes "when it belongs to another session". Adding it
    to a second session while the first is open is refused (the same +1 must
    not be applied by two sessions); the owning session still writes it."""
    doc_id = _doc(db)
    s1 = uow.Session(db)
    d = s1.get(LcDoc, doc_id)
    d.n += 1
    s2 = uow.Session(db)
    with pytest.raises(uow.UowError, match="belongs to another session"):
        s2.add(d)
    assert s2.state(d) == uow.ObjectState.DETACHED
    s2.commit()
    assert stored(db, "lc_docs", doc_id)["n"] == 0
    s1.commit()
    assert stored(db, "lc_docs", doc_id)["n"] == 1


@pytest.mark.parametrize("cache_size", [0, 1])
def test_many_documents_changed_in_place_while_iterating_small_cache(
    db: Any, cache_size: int
) -> None:
    db["lc_docs"].insert_many(
        [
            {"name": f"d{i}", "n": 0, "tags": [], "log": [], "lines": [{"sku": "a", "qty": 0}]}
            for i in range(24)
        ]
    )
    s = uow.Session(db, cache_size=cache_size)
    for d in s.query(LcDoc).sort(LcDoc.name.asc()):
        i = int(d.name[1:])
        if i % 2 == 0:
            d.lines[0].qty += 1
            d.tags.append("t")
        if i % 3 == 0:
            d.n += 1
        del d
        gc.collect()
    s.commit()
    assert db["lc_docs"].count_documents({}) == 24
    for raw in db["lc_docs"].find():
        i = int(raw["name"][1:])
        assert raw["lines"][0]["qty"] == (1 if i % 2 == 0 else 0), raw
        assert raw["tags"] == (["t"] if i % 2 == 0 else [])
        assert raw["n"] == (1 if i % 3 == 0 else 0)
    s.close()


def test_autoflush_in_the_middle_of_an_iteration_does_not_double(db: Any) -> None:
    db["lc_docs"].insert_many(
        [{"name": f"d{i}", "n": 0, "tags": [], "log": [], "lines": []} for i in range(30)]
    )
    s = uow.Session(db, cache_size=2)
    for d in s.query(LcDoc):
        d.n += 1
        d.log.append("x")
        s.query(LcDoc).filter(name="d0").first()  # autoflush mid-iteration
    s.commit()
    assert db["lc_docs"].count_documents({}) == 30
    for raw in db["lc_docs"].find():
        assert raw["n"] == 1 and raw["log"] == ["x"], raw
    s.close()


def test_no_tracking_add_and_delete_and_update(db: Any) -> None:
    a = _doc(db, name="a")
    b = _doc(db, name="b")
    s = uow.Session(db, no_tracking=True)
    da = s.get(LcDoc, a)
    db_b = s.get(LcDoc, b)
    s.delete(db_b)
    new = LcDoc(name="new", n=3)
    s.add(new)
    da.tags.append("x")  # not tracked: nothing written without update()
    s.commit()
    assert stored(db, "lc_docs", a)["tags"] == []
    assert stored_or_none(db, "lc_docs", b) is None
    assert stored(db, "lc_docs", new.id)["n"] == 3
    s.update(da)
    s.commit()
    assert stored(db, "lc_docs", a)["tags"] == ["x"]
    # a no_tracking get returns a fresh object each time
    again = s.get(LcDoc, a)
    assert again is not da
    assert again.tags == ["x"]
    s.close()


def test_no_tracking_new_doc_added_then_changed_then_flushed(db: Any) -> None:
    """Reading chosen: add() in a no_tracking session inserts the values the
    object has at flush time; later in-place changes are not tracked."""
    s = uow.Session(db, no_tracking=True)
    d = LcDoc(name="x")
    s.add(d)
    d.n = 4
    s.commit()
    assert stored(db, "lc_docs", d.id)["n"] == 4
    s.close()


def test_remove_query_detaches_and_later_add_does_not_resurrect_silently(db: Any) -> None:
    doc_id = _doc(db)
    s = uow.Session(db)
    d = s.get(LcDoc, doc_id)
    d.n += 1
    removed = s.remove_query(LcDoc).filter(name="d").execute()
    assert removed == 1
    assert s.state(d) == uow.ObjectState.DETACHED
    # "a delete by filter, now": the session reads it gone (inside its transaction
    # where the server has them; the raw store is checked after the commit)
    assert s.count(LcDoc) == 0
    assert s.get(LcDoc, doc_id) is None
    s.commit()
    assert stored_or_none(db, "lc_docs", doc_id) is None
    s.close()


def test_remove_query_with_autoflush_off_and_a_dirty_match(db: Any) -> None:
    """Reading chosen: without autoflush the removed document's unflushed
    change is gone with it; the commit must not resurrect it by an upsert or
    fail."""
    doc_id = _doc(db)
    keep = _doc(db, name="keep")
    s = uow.Session(db, autoflush=False)
    d = s.get(LcDoc, doc_id)
    k = s.get(LcDoc, keep)
    d.n += 1
    k.n += 1
    s.remove_query(LcDoc).filter(name="d").execute()
    s.commit()
    assert stored_or_none(db, "lc_docs", doc_id) is None
    assert stored(db, "lc_docs", keep)["n"] == 1
    s.close()


def test_remove_query_of_pending_insert(db: Any) -> None:
    s = uow.Session(db)
    d = LcDoc(name="gone")
    s.add(d)
    n = s.remove_query(LcDoc).filter(name="gone").execute()
    assert n == 1
    s.commit()
    assert stored_or_none(db, "lc_docs", d.id) is None
    assert s.state(d) == uow.ObjectState.DETACHED
    s.close()


def test_clear_collection_then_get_then_add_new(db: Any) -> None:
    """clear_collection deletes everything now: tracked documents of the class
    become DETACHED and are no longer found by get() (as remove_query)."""
    doc_id = _doc(db)
    s = uow.Session(db)
    d = s.get(LcDoc, doc_id)
    s.clear_collection(LcDoc)
    assert s.count(LcDoc) == 0
    assert s.state(d) == uow.ObjectState.DETACHED
    got = s.get(LcDoc, doc_id)
    assert got is None, "get() returns a document clear_collection deleted"
    s.add(LcDoc(name="after"))
    s.commit()
    assert db["lc_docs"].count_documents({}) == 1
    s.close()


def test_clear_collection_with_a_dirty_tracked_document(db: Any) -> None:
    """Its queued change must not resurrect it (an update of a missing
    document matches nothing) and must not fail the commit."""
    doc_id = _doc(db)
    s = uow.Session(db)
    d = s.get(LcDoc, doc_id)
    d.n += 1
    d.tags.append("x")
    s.clear_collection(LcDoc)
    s.commit()
    raw = stored_or_none(db, "lc_docs", doc_id)
    # either autoflushed and then cleared, or the change dropped with it
    assert raw is None
    s.close()


def test_rollback_without_transaction_pending_delete_and_insert_and_changes(db: Any) -> None:
    a = _doc(db, name="a")
    b = _doc(db, name="b")
    s = uow.Session(db, transactional=False)
    da, dbb = s.get(LcDoc, a), s.get(LcDoc, b)
    da.n += 1
    da.lines[0].qty += 1
    s.flush()
    da.n += 5
    da.lines.append(LcLine(sku="z"))
    s.delete(dbb)
    new = LcDoc(name="new")
    s.add(new)
    s.rollback()
    assert da.n == 1 and len(da.lines) == 1 and da.lines[0].qty == 1
    assert s.state(dbb) == uow.ObjectState.PERSISTENT
    assert s.state(new) == uow.ObjectState.TRANSIENT
    s.commit()
    assert stored(db, "lc_docs", a)["n"] == 1
    assert stored(db, "lc_docs", a)["lines"] == [{"sku": "a", "qty": 1}]
    assert stored_or_none(db, "lc_docs", b) is not None
    assert stored_or_none(db, "lc_docs", new.id) is None
    # after the rollback, new changes are relative to the flushed snapshot
    da.n += 1
    s.commit()
    assert stored(db, "lc_docs", a)["n"] == 2
    s.close()


def test_with_block_exception_then_object_reused_in_new_session(db: Any) -> None:
    doc_id = _doc(db)
    d = None
    with pytest.raises(RuntimeError):
        with uow.Session(db) as s:
            d = s.get(LcDoc, doc_id)
            d.n += 1
            d.log.append("lost")
            raise RuntimeError("boom")
    assert stored(db, "lc_docs", doc_id)["n"] == 0
    # the rolled-back object, added to a new session, writes nothing it lost
    with uow.Session(db) as s2:
        s2.add(d)
        d.n += 2
    raw = stored(db, "lc_docs", doc_id)
    assert raw["n"] == d.n == 2, f"stored {raw['n']}, memory {d.n}"
    assert raw["log"] == d.log == []


def test_unit_of_work_join_exception_marks_outer(db: Any) -> None:
    doc_id = _doc(db)
    with uow.Session(db, transactional=False) as s:
        d = s.get(LcDoc, doc_id)
        d.n += 1
        with pytest.raises(ValueError):
            with uow.unit_of_work() as inner:
                assert inner is s
                d.tags.append("inner")
                raise ValueError("x")
        with pytest.raises(uow.TransactionError):
            s.commit()
        s.rollback()
        d.n += 3
        s.commit()
    raw = stored(db, "lc_docs", doc_id)
    assert raw["n"] == d.n == 3
    assert raw["tags"] == d.tags == []


def test_unit_of_work_decorator_join_success_does_not_commit_early(db: Any) -> None:
    doc_id = _doc(db)

    @uow.unit_of_work()
    def service() -> None:
        s = uow.current_session()
        s.get(LcDoc, doc_id).n += 1

    with uow.Session(db) as s:
        service()
        service()
        d = s.get(LcDoc, doc_id)
        assert d.n == 2
    assert stored(db, "lc_docs", doc_id)["n"] == 2


@pytest.mark.transactions
def test_unit_of_work_join_exception_in_transaction_nothing_written(db: Any) -> None:
    doc_id = _doc(db)
    s = uow.Session(db)
    with pytest.raises(uow.TransactionError):
        with s:
            d = s.get(LcDoc, doc_id)
            d.n += 1
            s.flush()
            with pytest.raises(ValueError, match="x"):
                with uow.unit_of_work():
                    d.n += 1
                    s.flush()
                    raise ValueError("x")
    # the with-block's commit raised TransactionError, so it rolled back
    assert stored(db, "lc_docs", doc_id)["n"] == 0
