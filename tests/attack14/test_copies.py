"""Copies of documents: copy.copy, copy.deepcopy and pickle. docs/session.md:
"A copy of a stored document (copy.copy, copy.deepcopy, pickle) is detached too
and carries the snapshot it was last committed with: added to a session (one
that does not hold the original), its changes are written with the fields' own
operators (a $inc field adds what the copy added). A copy of a document that is
not stored is transient, as the original." SPEC: "after a flush, the stored
document equals what the session holds"."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import Item, Line, mem

COPIERS: list[Any] = [
    pytest.param(copy.deepcopy, id="deepcopy"),
    pytest.param(lambda o: pickle.loads(pickle.dumps(o)), id="pickle"),
]
ALL_COPIERS: list[Any] = [*COPIERS, pytest.param(copy.copy, id="copy")]


def _seed(db: Any, **kw: Any) -> Item:
    with Session(db) as s:
        it = Item(code=kw.pop("code", "a"), **kw)
        s.add(it)
    return it


def _stored(db: Any, it: Any) -> dict[str, Any]:
    return db[type(it)._uow_meta.collection].find_one({"_id": it.id})


@pytest.mark.parametrize("dup", ALL_COPIERS)
def test_copy_of_persistent_is_detached(db: Any, dup: Callable[[Any], Any]) -> None:
    _seed(db, n=1)
    s = Session(db)
    it = s.query(Item).one()
    c = dup(it)
    assert c is not it
    assert c.id == it.id
    assert s.state(it) is ObjectState.PERSISTENT
    assert s.state(c) is ObjectState.DETACHED
    assert s.get(Item, it.id) is it
    s.close()


@pytest.mark.parametrize("dup", ALL_COPIERS)
def test_copy_of_pending_and_transient_is_transient(db: Any, dup: Callable[[Any], Any]) -> None:
    s = Session(db)
    t = Item(code="t")
    p = Item(code="p")
    s.add(p)
    assert s.state(dup(t)) is ObjectState.TRANSIENT
    cp = dup(p)
    assert s.state(cp) is ObjectState.TRANSIENT
    s.commit()
    assert s.state(p) is ObjectState.PERSISTENT
    # the copy taken while pending stays transient: adding it elsewhere inserts,
    # which collides with the stored original
    s2 = Session(db)
    s2.add(cp)
    with pytest.raises(uow.DuplicateKeyError):
        s2.flush()
    assert db.a14_item.count_documents({}) == 1


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_changes_written_with_operators(db: Any, dup: Callable[[Any], Any]) -> None:
    _seed(
        db,
        n=3,
        hi=5,
        log=["x"],
        bag=["b"],
        tags=["t"],
        lines=[Line(sku="s", qty=1)],
        extra={"k": 1},
    )
    s = Session(db)
    it = s.query(Item).one()
    c = dup(it)
    s.close()
    c.n += 2
    c.hi = 9
    c.log.append("y")
    c.bag.append("c")
    c.tags.append("u")
    c.lines[0].qty += 4
    c.lines[0].tags.append("q")
    c.extra["j"] = 2
    with Session(db) as s2:
        s2.add(c)
        assert s2.state(c) is ObjectState.PERSISTENT
        assert s2.dirty_fields(c) == ["bag", "extra", "hi", "lines", "log", "n", "tags"]
    got = _stored(db, c)
    assert got == mem(c)
    assert got["n"] == 5
    assert got["log"] == ["x", "y"]
    assert got["lines"][0]["qty"] == 5


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_inc_is_relative_to_concurrent_writer(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=3, log=["x"], name="orig")
    s = Session(db)
    c = dup(s.get(Item, it.id))
    s.close()
    # another client changes the stored document
    db.a14_item.update_one(
        {"_id": it.id}, {"$inc": {"n": 10}, "$push": {"log": "other"}, "$set": {"name": "theirs"}}
    )
    c.n += 1
    c.log.append("mine")
    with Session(db) as s2:
        s2.add(c)
    got = _stored(db, c)
    # the copy's own changes are added to the stored values, nothing else is touched
    assert got["n"] == 14
    assert got["log"] == ["x", "other", "mine"]
    assert got["name"] == "theirs"


@pytest.mark.parametrize("dup", COPIERS)
def test_unchanged_copy_writes_nothing(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=3)
    s = Session(db)
    c = dup(s.get(Item, it.id))
    s.close()
    db.a14_item.update_one({"_id": it.id}, {"$set": {"name": "theirs", "n": 50}})
    with Session(db) as s2:
        s2.add(c)
        assert not s2.is_dirty(c)
        assert s2.flush().round_trips == 0
    assert _stored(db, c)["name"] == "theirs"
    assert _stored(db, c)["n"] == 50


@pytest.mark.parametrize("dup", COPIERS)
def test_add_copy_into_session_holding_original(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=3)
    s = Session(db)
    orig = s.get(Item, it.id)
    c = dup(orig)
    c.n += 1
    orig.n += 2
    try:
        s.add(c)
    except uow.UowError:
        pass  # refusing is fine: one object per stored document
    else:
        # accepted: whatever the session now holds must be what is stored
        assert s.get(Item, it.id) in (orig, c)
    s.commit()
    held = s.get(Item, it.id)
    got = _stored(db, it)
    assert got == mem(held)
    assert got["n"] in (5, 6)
    s.close()


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_taken_after_commit_carries_new_snapshot(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=1, log=["a"])
    s = Session(db)
    orig = s.get(Item, it.id)
    orig.n += 4
    orig.log.append("b")
    s.commit()
    c = dup(orig)
    s.close()
    assert c.n == 5
    with Session(db) as s2:
        s2.add(c)
        assert not s2.is_dirty(c)
        c.n += 1
    assert _stored(db, c) == mem(c)
    assert c.n == 6


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_taken_before_original_changed(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=1, log=["a"], name="n0")
    s = Session(db)
    orig = s.get(Item, it.id)
    c = dup(orig)
    orig.n += 4
    orig.log.append("b")
    orig.name = "n1"
    s.commit()
    s.close()
    c.tags.append("t")
    with Session(db) as s2:
        s2.add(c)
        assert s2.dirty_fields(c) == ["tags"]
    got = _stored(db, c)
    assert got["n"] == 5
    assert got["log"] == ["a", "b"]
    assert got["name"] == "n1"
    assert got["tags"] == ["t"]


@pytest.mark.transactions
@pytest.mark.parametrize("dup", COPIERS)
def test_copy_taken_between_flush_and_commit_is_not_doubled(
    db: Any, dup: Callable[[Any], Any]
) -> None:
    it = _seed(db, n=1, log=["a"])
    s = Session(db)
    orig = s.get(Item, it.id)
    orig.n += 4
    orig.log.append("b")
    s.flush()
    c = dup(orig)  # holds n=5, log [a, b]: what the transaction wrote
    s.commit()
    s.close()
    assert _stored(db, it)["n"] == 5
    with Session(db) as s2:
        s2.add(c)
    got = _stored(db, c)
    assert got == mem(c)
    assert got["n"] == 5
    assert got["log"] == ["a", "b"]


@pytest.mark.transactions
@pytest.mark.parametrize("dup", COPIERS)
def test_copy_of_aborted_write(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=1, log=["a"])
    s = Session(db)
    orig = s.get(Item, it.id)
    orig.n += 4
    orig.log.append("b")
    s.flush()
    c = dup(orig)
    s.rollback()
    assert orig.n == 1
    s.close()
    assert _stored(db, it)["n"] == 1
    # the copy holds the aborted values; it is compared with what is stored
    assert c.n == 5
    with Session(db) as s2:
        s2.add(c)
        assert s2.is_dirty(c)
    got = _stored(db, c)
    assert got == mem(c)
    assert got["n"] == 5
    assert got["log"] == ["a", "b"]


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_of_flushed_uncommitted_then_close(
    db: Any, dup: Callable[[Any], Any], request: pytest.FixtureRequest
) -> None:
    """The original session flushes, a copy is taken, the session closes without
    committing (on a server with transactions the write is dropped)."""
    it = _seed(db, n=1)
    s = Session(db)
    orig = s.get(Item, it.id)
    orig.n += 4
    s.flush()
    c = dup(orig)
    s.close()
    stored_n = _stored(db, it)["n"]  # 1 with a transaction, 5 without
    with Session(db) as s2:
        s2.add(c)
    got = _stored(db, c)
    assert got == mem(c)
    assert got["n"] == 5
    assert stored_n in (1, 5)


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_of_partial_document(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, name="nm", n=3, log=["a"], tags=["t"])
    s = Session(db)
    part = s.query(Item).fields("name").one()
    c = dup(part)
    s.close()
    with pytest.raises(uow.FieldNotLoaded):
        _ = c.n
    assert c.name == "nm"
    c.name = "nm2"
    c.n = 7  # not loaded: written with $set of the assigned value
    with Session(db) as s2:
        s2.add(c)
    got = _stored(db, it)
    assert got["name"] == "nm2"
    assert got["n"] == 7
    assert got["log"] == ["a"]
    assert got["tags"] == ["t"]
    assert got["code"] == "a"


@pytest.mark.parametrize("dup", COPIERS)
def test_clone_of_partial_copy_refuses(db: Any, dup: Callable[[Any], Any]) -> None:
    _seed(db, name="nm")
    s = Session(db)
    c = dup(s.query(Item).fields("name").one())
    with pytest.raises(uow.FieldNotLoaded):
        s.clone(c)
    s.close()


@pytest.mark.parametrize("dup", COPIERS)
def test_update_of_copy_sets_values(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=3, log=["a"], bag=["b"])
    s = Session(db)
    c = dup(s.get(Item, it.id))
    s.close()
    with Session(db) as s2:
        s2.update(c)
    got = _stored(db, it)
    assert got["n"] == 3
    assert got["log"] == ["a"]
    assert got["bag"] == ["b"]
    assert got == mem(c)


@pytest.mark.parametrize("dup", COPIERS)
def test_update_of_changed_copy(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=3, log=["a"])
    s = Session(db)
    c = dup(s.get(Item, it.id))
    s.close()
    c.n += 1
    c.log.append("b")
    with Session(db) as s2:
        s2.update(c)
    got = _stored(db, it)
    assert got["n"] == 4
    assert got["log"] == ["a", "b"]


@pytest.mark.parametrize("dup", COPIERS)
def test_delete_of_copy(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db)
    s = Session(db)
    c = dup(s.get(Item, it.id))
    s.close()
    with Session(db) as s2:
        s2.delete(c)
        assert s2.state(c) is ObjectState.DELETED
        s2.flush()
        assert s2.state(c) is ObjectState.DETACHED
    assert db.a14_item.count_documents({}) == 0


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_of_deleted_document(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=2)
    s = Session(db)
    orig = s.get(Item, it.id)
    s.delete(orig)
    c = dup(orig)
    s.commit()
    s.close()
    assert db.a14_item.count_documents({}) == 0
    # stored nowhere: adding the copy inserts it again, as it holds
    with Session(db) as s2:
        s2.add(c)
        assert s2.state(c) is ObjectState.PENDING
    assert _stored(db, it) == mem(c)


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_of_deleted_after_delete_landed(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=2, log=["a"])
    s = Session(db)
    orig = s.get(Item, it.id)
    s.delete(orig)
    s.commit()
    c = dup(orig)
    s.close()
    c.n += 1
    with Session(db) as s2:
        s2.add(c)
        assert s2.state(c) is ObjectState.PENDING
    got = _stored(db, it)
    assert got == mem(c)
    assert got["n"] == 3


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_of_copy_in_two_sessions(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=0, log=[])
    s = Session(db)
    orig = s.get(Item, it.id)
    a, b = dup(orig), dup(orig)
    s.close()
    a.n += 1
    a.log.append("a")
    b.n += 2
    b.log.append("b")
    with Session(db) as s1:
        s1.add(a)
    with Session(db) as s2:
        s2.add(b)
    got = _stored(db, it)
    assert got["n"] == 3
    assert got["log"] == ["a", "b"]


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_of_detached_document(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=1)
    s = Session(db)
    orig = s.get(Item, it.id)
    s.expunge(orig)
    orig.n += 1  # changed while detached
    c = dup(orig)
    s.close()
    with Session(db) as s2:
        s2.add(c)
        assert s2.dirty_fields(c) == ["n"]
    assert _stored(db, it)["n"] == 2
    assert c.n == 2


def test_shallow_copy_shares_lists_but_not_tracking(db: Any) -> None:
    it = _seed(db, tags=["a"])
    s = Session(db)
    orig = s.get(Item, it.id)
    c = copy.copy(orig)
    c.name = "copy"
    s.commit()
    # the original is not changed by the copy's assignment
    assert orig.name == ""
    assert _stored(db, it)["name"] == ""
    s.close()
    with Session(db) as s2:
        s2.add(c)
    assert _stored(db, it)["name"] == "copy"
    assert _stored(db, it) == mem(c)


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_keeps_unknown_keys(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, lines=[Line(sku="a")])
    db.a14_item.update_one({"_id": it.id}, {"$set": {"legacy": 1, "lines.0.old": 2}})
    s = Session(db)
    c = dup(s.get(Item, it.id))
    s.close()
    c.lines.insert(0, Line(sku="z"))  # list set whole
    c.name = "x"
    with Session(db) as s2:
        s2.add(c)
    got = _stored(db, it)
    assert got["legacy"] == 1
    assert got["lines"][1] == {"sku": "a", "qty": 0, "tags": [], "old": 2}
    assert got["lines"][0] == {"sku": "z", "qty": 0, "tags": []}


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_added_then_failed_flush_then_retry(db: Any, dup: Callable[[Any], Any]) -> None:
    it = _seed(db, n=1, log=["a"])
    _seed(db, code="taken")
    s = Session(db)
    c = dup(s.get(Item, it.id))
    s.close()
    c.n += 2
    c.log.append("b")
    s2 = Session(db)
    s2.add(c)
    bad = Item(code="taken")
    s2.add(bad)
    with pytest.raises(uow.DuplicateKeyError):
        s2.flush()
    bad.code = "fresh"
    s2.commit()
    got = _stored(db, it)
    assert got["n"] == 3
    assert got["log"] == ["a", "b"]
    assert got == mem(c)
    assert db.a14_item.count_documents({"code": "fresh"}) == 1
    s2.close()
