"""Failure paths: DuplicateKeyError, FlushError.applied/not_applied, StaleDocumentError."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

import uow
from uow import ObjectState, Session

from ._h import raw
from ._models import Item, Uniq, UniqInc, Versioned

S = ObjectState


def ids(objs: Any) -> list[Any]:
    return [o.id for o in objs]


def seed_uniq(db: Any, *emails: str) -> list[Uniq]:
    s = Session(db)
    out = [Uniq(email=e) for e in emails]
    s.add_all(out)
    s.commit()
    s.close()
    return out


# ------------------------------------------------------------- DuplicateKeyError


def test_duplicate_key_error_content(db: Any) -> None:
    seed_uniq(db, "dup@x")
    s = Session(db, transactional=False)
    u = Uniq(email="dup@x")
    s.add(u)
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    e = ei.value
    assert isinstance(e, uow.FlushError) and isinstance(e, uow.UowError)
    assert e.document is u
    msg = str(e)
    assert "Uniq" in msg and str(u.id) in msg and "dup@x" in msg
    assert s.state(u) is S.PENDING
    assert u in e.not_applied
    assert list(e.applied) == []
    u.email = "ok@x"
    r = s.flush()
    assert r.inserted == 1
    s.commit()
    assert raw(db, u) == {"_id": u.id, "email": "ok@x", "n": 0}


def test_duplicate_key_on_update_content(db: Any) -> None:
    _a, b = seed_uniq(db, "a@x", "b@x")
    s = Session(db, transactional=False)
    bb = s.get(Uniq, b.id)
    bb.email = "a@x"
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    assert ei.value.document is bb
    assert "a@x" in str(ei.value) and str(b.id) in str(ei.value)
    assert s.is_dirty(bb)
    assert raw(db, b)["email"] == "b@x"
    bb.email = "c@x"
    s.commit()
    assert raw(db, b) == {"_id": b.id, "email": "c@x", "n": 0}


def test_duplicate_id_insert(db: Any) -> None:
    a = seed_uniq(db, "a@x")[0]
    s = Session(db, transactional=False)
    dup = Uniq(id=a.id, email="other@x")
    s.add(dup)
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    assert ei.value.document is dup
    assert str(a.id) in str(ei.value)


# ---------------------------------------------------- mid-flush, no transaction


def test_insert_batch_fails_midway_no_transaction(db: Any) -> None:
    seed_uniq(db, "taken@x")
    s = Session(db, transactional=False)
    a, b, c = Uniq(email="a@x"), Uniq(email="taken@x"), Uniq(email="c@x")
    s.add_all([a, b, c])
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    e = ei.value
    assert ids(e.applied) == [a.id]
    assert ids(e.not_applied) == [b.id, c.id]
    assert list(e.in_doubt) == []
    assert raw(db, a) is not None and raw(db, b) is None and raw(db, c) is None
    assert [s.state(x) for x in (a, b, c)] == [S.PERSISTENT, S.PENDING, S.PENDING]
    assert s.stats().pending_inserts == 2
    b.email = "b@x"
    r = s.flush()
    assert r.inserted == 2
    s.commit()
    assert db.a7_uniq.count_documents({}) == 4
    for x in (a, b, c):
        assert raw(db, x) == x.to_bson()


def test_update_batch_fails_midway_inc_not_reapplied(db: Any) -> None:
    s0 = Session(db)
    docs = [UniqInc(email=e, hits=10) for e in ("a@x", "b@x", "c@x", "taken@x")]
    s0.add_all(docs)
    s0.commit()
    s0.close()
    s = Session(db, transactional=False)
    a, b, c = (s.get(UniqInc, d.id) for d in docs[:3])
    a.hits += 1
    b.hits += 1
    b.email = "taken@x"
    c.hits += 1
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    e = ei.value
    assert ids(e.applied) == [a.id]
    assert set(ids(e.not_applied)) == {b.id, c.id}
    assert not s.is_dirty(a)
    assert s.is_dirty(b) and s.is_dirty(c)
    assert raw(db, a)["hits"] == 11 and raw(db, b)["hits"] == 10 and raw(db, c)["hits"] == 10
    b.email = "b2@x"
    r = s.flush()
    assert r.updated == 2
    s.commit()
    for x in (a, b, c):
        assert raw(db, x) == x.to_bson()
    assert [raw(db, x)["hits"] for x in (a, b, c)] == [11, 11, 11]


def test_failure_in_updates_leaves_deletes_queued(db: Any) -> None:
    _a, b, gone = seed_uniq(db, "a@x", "b@x", "gone@x")
    s = Session(db, transactional=False)
    bb = s.get(Uniq, b.id)
    gg = s.get(Uniq, gone.id)
    new = Uniq(email="new@x")
    s.add(new)
    bb.email = "a@x"
    s.delete(gg)
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    e = ei.value
    assert new in e.applied
    assert bb in e.not_applied and gg in e.not_applied
    assert s.state(new) is S.PERSISTENT
    assert s.state(gg) is S.DELETED
    assert raw(db, new) is not None and raw(db, gone) is not None
    bb.email = "b2@x"
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted) == (0, 1, 1)
    s.commit()
    assert raw(db, gone) is None
    assert raw(db, b)["email"] == "b2@x"
    assert db.a7_uniq.count_documents({}) == 3


def test_failure_in_first_collection_keeps_other_collections_queued(db: Any) -> None:
    seed_uniq(db, "taken@x")
    s = Session(db, transactional=False)
    u = Uniq(email="taken@x")
    s.add(u)
    it = Item(name="later")
    s.add(it)
    with pytest.raises(uow.FlushError) as ei:
        s.flush()
    assert it in ei.value.not_applied
    assert raw(db, it) is None
    assert s.state(it) is S.PENDING
    s.expunge(u)
    r = s.flush()
    assert r.inserted == 1
    s.commit()
    assert raw(db, it) is not None


def test_failed_flush_then_rollback_without_transaction(db: Any) -> None:
    seed_uniq(db, "taken@x")
    s = Session(db, transactional=False)
    a, b = Uniq(email="a@x"), Uniq(email="taken@x")
    s.add_all([a, b])
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    s.rollback()
    assert s.state(a) is S.PERSISTENT  # flushed, no transaction: stays
    assert s.state(b) is S.TRANSIENT
    assert not s.has_changes()
    s.commit()
    assert raw(db, a) is not None and raw(db, b) is None


# ---------------------------------------------------- mid-flush, transaction


@pytest.mark.transactions
def test_failure_inside_transaction_unflushes_everything(db: Any) -> None:
    s0 = Session(db)
    base = UniqInc(email="base@x", hits=1)
    gone = UniqInc(email="gone@x")
    s0.add_all([base, gone, UniqInc(email="taken@x")])
    s0.commit()
    s0.close()
    s = Session(db)
    bb = s.get(UniqInc, base.id)
    gg = s.get(UniqInc, gone.id)
    early = UniqInc(email="early@x")
    s.add(early)
    bb.hits = 3  # $inc 2 flushed inside the transaction
    s.delete(gg)
    s.flush()
    assert s.state(gg) is S.DETACHED
    bad = UniqInc(email="taken@x")
    s.add(bad)
    with pytest.raises(uow.DuplicateKeyError) as ei:
        s.flush()
    e = ei.value
    assert e.transaction_aborted
    assert "abort" in str(e).lower() or "transaction" in str(e).lower()
    assert s.state(early) is S.PENDING
    assert s.state(bad) is S.PENDING
    assert s.state(gg) is S.DELETED
    assert s.is_dirty(bb) and bb.hits == 3
    assert raw(db, early) is None and raw(db, gone) is not None and raw(db, base)["hits"] == 1
    bad.email = "fixed@x"
    s.commit()
    assert raw(db, base)["hits"] == 3
    assert raw(db, early) is not None and raw(db, bad) is not None
    assert raw(db, gone) is None
    for x in (bb, early, bad):
        assert raw(db, x) == x.to_bson()


@pytest.mark.transactions
def test_failure_inside_transaction_then_rollback(db: Any) -> None:
    s0 = Session(db)
    base, gone = UniqInc(email="base@x", hits=1), UniqInc(email="gone@x")
    s0.add_all([base, gone, UniqInc(email="taken@x")])
    s0.commit()
    s0.close()
    s = Session(db)
    bb, gg = s.get(UniqInc, base.id), s.get(UniqInc, gone.id)
    bb.hits = 5
    s.delete(gg)
    early = UniqInc(email="early@x")
    s.add(early)
    s.flush()
    s.add(UniqInc(email="taken@x"))
    with pytest.raises(uow.FlushError):
        s.flush()
    s.rollback()
    assert bb.hits == 1 and not s.is_dirty(bb)
    assert s.state(gg) is S.PERSISTENT
    assert s.state(early) is S.TRANSIENT
    assert not s.has_changes()
    s.commit()
    assert raw(db, gone) is not None and raw(db, early) is None


@pytest.mark.transactions
def test_with_block_failed_commit_rolls_back_in_transaction(db: Any) -> None:
    seed_uniq(db, "taken@x")
    with pytest.raises(uow.DuplicateKeyError):
        with Session(db) as s:
            ok = Uniq(email="ok@x")
            s.add(ok)
            s.flush()
            s.add(Uniq(email="taken@x"))
    assert raw(db, ok) is None


# --------------------------------------------------------------- versions


def test_version_bumped_on_update_and_stored(db: Any) -> None:
    s = Session(db)
    v = Versioned(name="a")
    s.add(v)
    s.commit()
    assert raw(db, v) == v.to_bson()
    v0 = v.version
    v.name = "b"
    s.commit()
    assert v.version == v0 + 1
    assert raw(db, v) == {"_id": v.id, "name": "b", "version": v0 + 1}


def test_stale_update(db: Any) -> None:
    s0 = Session(db)
    v = Versioned(name="a")
    s0.add(v)
    s0.commit()
    s0.close()
    s1, s2 = Session(db, transactional=False), Session(db, transactional=False)
    v1, v2 = s1.get(Versioned, v.id), s2.get(Versioned, v.id)
    v1.name = "one"
    s1.commit()
    v2.name = "two"
    other = Item(name="same-flush")
    s2.add(other)
    with pytest.raises(uow.StaleDocumentError) as ei:
        s2.flush()
    e = ei.value
    assert isinstance(e, uow.FlushError)
    assert "Versioned" in str(e) and str(v.id) in str(e)
    assert v2 in e.documents or v2 in e.not_applied or v2 in e.in_doubt
    stored = raw(db, v)
    assert stored["name"] == "one" and stored["version"] == v1.version
    # nothing of the flush silently skipped: the Item is applied or still queued
    assert (other in e.applied and raw(db, other) is not None) or (
        other in e.not_applied and s2.state(other) is S.PENDING and raw(db, other) is None
    )
    assert s2.is_dirty(v2)


def test_stale_delete(db: Any) -> None:
    s0 = Session(db)
    v = Versioned(name="a")
    s0.add(v)
    s0.commit()
    s0.close()
    s1, s2 = Session(db, transactional=False), Session(db, transactional=False)
    v1, v2 = s1.get(Versioned, v.id), s2.get(Versioned, v.id)
    v1.name = "one"
    s1.commit()
    s2.delete(v2)
    with pytest.raises(uow.StaleDocumentError):
        s2.flush()
    assert raw(db, v)["name"] == "one"
    assert s2.state(v2) is S.DELETED


def test_stale_then_refresh_and_retry(db: Any) -> None:
    s0 = Session(db)
    v = Versioned(name="a")
    s0.add(v)
    s0.commit()
    s0.close()
    s1, s2 = Session(db, transactional=False), Session(db, transactional=False)
    v1, v2 = s1.get(Versioned, v.id), s2.get(Versioned, v.id)
    v1.name = "one"
    s1.commit()
    v2.name = "two"
    with pytest.raises(uow.StaleDocumentError):
        s2.flush()
    s2.refresh(v2)
    assert v2.name == "one" and v2.version == v1.version
    v2.name = "two"
    s2.commit()
    assert raw(db, v) == {"_id": v.id, "name": "two", "version": v1.version + 1}


def test_version_key_missing_is_matched_by_absence(db: Any) -> None:
    oid = ObjectId()
    db.a7_ver.insert_one({"_id": oid, "name": "legacy"})
    s = Session(db)
    v = s.get(Versioned, oid)
    assert v is not None
    v.name = "new"
    s.commit()
    stored = db.a7_ver.find_one({"_id": oid})
    assert stored["name"] == "new"
    assert "version" in stored and stored["version"] == v.version


def test_version_key_missing_concurrent_set_is_stale(db: Any) -> None:
    oid = ObjectId()
    db.a7_ver.insert_one({"_id": oid, "name": "legacy"})
    s = Session(db, transactional=False)
    v = s.get(Versioned, oid)
    db.a7_ver.update_one({"_id": oid}, {"$set": {"version": 1, "name": "other"}})
    v.name = "mine"
    with pytest.raises(uow.StaleDocumentError):
        s.flush()
    assert db.a7_ver.find_one({"_id": oid})["name"] == "other"


@pytest.mark.transactions
def test_stale_inside_transaction_aborts_all(db: Any) -> None:
    s0 = Session(db)
    v = Versioned(name="a")
    s0.add(v)
    s0.commit()
    s0.close()
    s1, s2 = Session(db), Session(db)
    v1, v2 = s1.get(Versioned, v.id), s2.get(Versioned, v.id)
    v1.name = "one"
    s1.commit()
    early = Item(name="early")
    s2.add(early)
    s2.flush()
    v2.name = "two"
    with pytest.raises(uow.StaleDocumentError) as ei:
        s2.flush()
    assert ei.value.transaction_aborted
    assert s2.state(early) is S.PENDING
    assert raw(db, early) is None
