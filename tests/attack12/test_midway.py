"""A flush that fails midway, after plain-field changes of documents loaded with
query().all().

SPEC: "A failed flush raises uow.FlushError carrying the cause and what was and
was not applied; whatever was not applied stays queued, so fixing the cause and
flushing again finishes the work. Nothing queued is ever dropped silently.
applied and not_applied are exact"; flush order: "inserts, then updates, then
deletes"; each (collection, kind) one ordered write command.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import uow
from uow import Session

from ._h import (
    SETTINGS,
    Rec,
    Uniq,
    all_stored,
    assert_stored_is_memory,
    failpoint,
    ids,
    mem,
    seed,
    stored,
)

__all__ = ["failpoint"]


def partition(err: uow.FlushError, docs: list[Any]) -> tuple[set[int], set[int]]:
    applied, not_applied, in_doubt = ids(err.applied), ids(err.not_applied), ids(err.in_doubt)
    assert not in_doubt, "an ordered write refused by the server has a known outcome"
    assert not (applied & not_applied)
    assert ids(docs) <= applied | not_applied, "a queued document in neither list"
    return applied, not_applied


def load_uniq(db: Any, n: int, **kw: Any) -> tuple[Session, list[Any]]:
    s = Session(db, transactional=False, **kw)
    s.ensure_indexes(Uniq)
    seed(db, Uniq, n, email=lambda k: f"e{k}", i=lambda k: k)
    objs = sorted(s.query(Uniq).all(), key=lambda o: o.i)
    return s, objs


@pytest.mark.parametrize("bad", [0, 2, 4])
def test_duplicate_in_update_batch_stops_there(db: Any, bad: int) -> None:
    s, objs = load_uniq(db, 5)
    for k, o in enumerate(objs):
        o.s = f"x{k}"
        o.i = 100 + k
    objs[bad].email = "e4" if bad != 4 else "e0"  # collides with a stored one
    with pytest.raises(uow.DuplicateKeyError) as caught:
        s.flush()
    applied, not_applied = partition(caught.value, objs)
    assert caught.value.document is objs[bad]
    assert applied == ids(objs[:bad])
    assert not_applied == ids(objs[bad:])
    raw = all_stored(db, Uniq)
    for k, o in enumerate(objs):
        if k < bad:
            assert raw[o.id] == mem(o)
            assert not s.is_dirty(o), "a document whose write landed must be clean"
        else:
            assert raw[o.id] == {"_id": o.id, "email": f"e{k}", "s": "", "i": k}
            assert s.is_dirty(o)
    objs[bad].email = "fixed"
    r = s.flush()
    assert r.updated == 5 - bad
    assert_stored_is_memory(db, objs)
    assert not s.has_changes()


def test_duplicate_in_insert_batch_keeps_updates_queued(db: Any) -> None:
    s, objs = load_uniq(db, 4)
    for k, o in enumerate(objs):
        o.s = f"y{k}"
    new = [Uniq(email="n0"), Uniq(email="n1"), Uniq(email="e2"), Uniq(email="n3")]
    s.add_all(new)
    with pytest.raises(uow.DuplicateKeyError) as caught:
        s.flush()
    applied, not_applied = partition(caught.value, objs + new)
    assert applied == ids(new[:2])
    assert not_applied == ids(new[2:]) | ids(objs)
    assert [s.state(n) for n in new] == [uow.ObjectState.PERSISTENT] * 2 + [
        uow.ObjectState.PENDING
    ] * 2
    assert [stored(db, o)["s"] for o in objs] == [""] * 4, "updates come after inserts"
    assert stored(db, new[3]) is None
    new[2].email = "n2"
    r = s.flush()
    assert (r.inserted, r.updated) == (2, 4)
    assert_stored_is_memory(db, objs + new)
    assert db[Uniq.__collection__].count_documents({}) == 8


@pytest.mark.not_mongomock
def test_failpoint_on_update_after_inserts(db: Any, failpoint: Any) -> None:
    s = Session(db, transactional=False)
    seed(db, Rec, 4, i=lambda k: k)
    objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
    for o in objs:
        o.s, o.f, o.b = "z", 2.5, True
    new = [Rec(s="new", i=10 + k) for k in range(3)]
    s.add_all(new)
    failpoint(["update"], code=2, times=1)
    with pytest.raises(uow.FlushError) as caught:
        s.flush()
    applied, not_applied = partition(caught.value, objs + new)
    assert applied == ids(new)
    assert not_applied == ids(objs)
    assert all(not s.is_dirty(n) and s.state(n) is uow.ObjectState.PERSISTENT for n in new)
    assert all(s.is_dirty(o) for o in objs)
    assert all(stored(db, o)["s"] == "" for o in objs)
    r = s.flush()
    assert (r.inserted, r.updated) == (0, 4)
    assert_stored_is_memory(db, objs + new)
    assert db[Rec.__collection__].count_documents({}) == 7


@pytest.mark.not_mongomock
def test_failpoint_on_insert_sends_nothing_after(db: Any, failpoint: Any) -> None:
    s = Session(db, transactional=False)
    seed(db, Rec, 3, i=lambda k: k)
    objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
    gone = objs.pop()
    s.delete(gone)
    for o in objs:
        o.i += 100
    new = [Rec(s="new")]
    s.add_all(new)
    failpoint(["insert"], code=2, times=1)
    with pytest.raises(uow.FlushError) as caught:
        s.flush()
    applied, not_applied = partition(caught.value, objs + new + [gone])
    assert applied == set()
    assert not_applied == ids([*objs, *new, gone])
    assert stored(db, gone) is not None
    assert s.state(gone) is uow.ObjectState.DELETED
    assert [stored(db, o)["i"] for o in objs] == [0, 1]
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted) == (1, 2, 1)
    assert stored(db, gone) is None
    assert_stored_is_memory(db, objs + new)


@pytest.mark.transactions
def test_duplicate_in_update_batch_in_transaction_requeues_all(db: Any) -> None:
    s = Session(db)
    s.ensure_indexes(Uniq)
    seed(db, Uniq, 4, email=lambda k: f"e{k}", i=lambda k: k)
    objs = sorted(s.query(Uniq).all(), key=lambda o: o.i)
    objs[0].s = "first"
    s.flush()
    for k, o in enumerate(objs):
        o.i = 50 + k
    objs[2].email = "e3"
    with pytest.raises(uow.DuplicateKeyError) as caught:
        s.flush()
    assert caught.value.transaction_aborted
    assert list(caught.value.applied) == []
    assert ids(caught.value.not_applied) >= ids(objs)
    assert all(s.is_dirty(o) for o in objs)
    assert [stored(db, o)["i"] for o in objs] == [0, 1, 2, 3]
    assert stored(db, objs[0])["s"] == ""
    objs[2].email = "e2b"
    s.commit()
    assert_stored_is_memory(db, objs)


@SETTINGS
@given(
    bad=st.integers(0, 7),
    changed=st.lists(st.booleans(), min_size=8, max_size=8),
    n_new=st.integers(0, 3),
)
def test_duplicate_update_anywhere_hypothesis(
    db: Any, bad: int, changed: list[bool], n_new: int
) -> None:
    db[Uniq.__collection__].delete_many({})
    s, objs = load_uniq(db, 8)
    try:
        changed[bad] = True
        for k, o in enumerate(objs):
            if changed[k]:
                o.s = f"c{k}"
        objs[bad].email = "e0" if bad else "e1"
        new = [Uniq(email=f"new{k}") for k in range(n_new)]
        s.add_all(new)
        dirty = [o for k, o in enumerate(objs) if changed[k]]
        with pytest.raises(uow.DuplicateKeyError) as caught:
            s.flush()
        applied, not_applied = partition(caught.value, dirty + new)
        pos = dirty.index(objs[bad])
        assert applied == ids(new) | ids(dirty[:pos])
        assert not_applied == ids(dirty[pos:])
        for o in dirty[:pos] + new:
            assert stored(db, o) == mem(o)
            assert not s.is_dirty(o)
        objs[bad].email = "ok"
        s.flush()
        assert_stored_is_memory(db, objs + new)
        assert not s.has_changes()
    finally:
        s.close()
