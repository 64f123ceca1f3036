"""expunge, clear_cache and a small cache_size with documents loaded by
query().all() and changed by plain assignment.

SPEC: "Eviction never loses a change: a document that is pending, dirty
(including in-place mutation) or deleted is never evicted, and a document the
user still holds stays the one identity"; "clear_cache() (forget clean
documents, even ones the user holds, which become DETACHED; documents with
unflushed changes stay)"; "Adding a DETACHED document ... tracks it again with
the snapshot it had when it was last stored: changes made while it was detached
are found and written at the next flush".
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import uow
from uow import Session

from ._h import SETTINGS, T0, Rec, all_stored, assert_stored_is_memory, mem, seed, stored

N = 40


def fc(s: Session) -> Any:
    """Flush and commit (the secantus lane is transactional): the FlushResult."""
    r = s.flush()
    s.commit()
    return r


def load(db: Any, n: int = N, **kw: Any) -> tuple[Session, list[Any]]:
    seed(db, Rec, n, i=lambda k: k)
    s = Session(db, **kw)
    objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
    assert len(objs) == n
    return s, objs


@pytest.mark.parametrize("size", [0, 2, 3])
def test_small_cache_all_changes_written(db: Any, size: int) -> None:
    s, objs = load(db, cache_size=size)
    for o in objs:
        o.s, o.f, o.b, o.d = f"s{o.i}", o.i / 3, True, T0
        o.i += 1000
    r = fc(s)
    assert r.updated == N
    s.commit()
    assert_stored_is_memory(db, objs)
    for o in objs:
        assert s.get(Rec, o.id) is o


@pytest.mark.parametrize("size", [0, 2])
def test_small_cache_changed_then_dropped_references(db: Any, size: int) -> None:
    s, objs = load(db, cache_size=size)
    oids = [o.id for o in objs]
    for o in objs:
        o.s = "dropped"
    del objs, o
    gc.collect()
    assert s.stats().pending_updates == N, "a dirty document must never be evicted"
    s.commit()
    raw = all_stored(db, Rec)
    assert all(raw[i]["s"] == "dropped" for i in oids)


@pytest.mark.parametrize("size", [0, 2])
def test_small_cache_changes_after_a_flush_are_written(db: Any, size: int) -> None:
    s, objs = load(db, cache_size=size)
    for o in objs:
        o.s = "one"
    fc(s)
    gc.collect()
    for o in objs:
        assert s.state(o) is uow.ObjectState.PERSISTENT
        assert s.get(Rec, o.id) is o
    # change again, back to the loaded value included
    for o in objs:
        o.s = "" if o.i % 2 else "two"
        o.i = -o.i
    r = fc(s)
    assert r.updated == N
    s.commit()
    assert_stored_is_memory(db, objs)


def test_small_cache_query_again_keeps_identity_and_changes(db: Any) -> None:
    s = Session(db, cache_size=2, autoflush=False)
    seed(db, Rec, 10, i=lambda k: k)
    objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
    for o in objs[:5]:
        o.s = "mine"
    again = sorted(s.query(Rec).all(), key=lambda o: o.i)
    assert [id(a) for a in again] == [id(o) for o in objs]
    assert [a.s for a in again] == ["mine"] * 5 + [""] * 5
    fc(s)
    assert_stored_is_memory(db, objs)


def test_expunged_change_not_written_until_added_back(db: Any) -> None:
    s, objs = load(db, 6)
    for o in objs:
        o.s = "new"
    out = objs[2]
    s.expunge(out)
    assert s.state(out) is uow.ObjectState.DETACHED
    r = fc(s)
    assert r.updated == 5
    assert stored(db, out)["s"] == ""
    out.i = 77
    s.add(out)
    assert s.state(out) is uow.ObjectState.PERSISTENT
    assert s.dirty_fields(out) == ["i", "s"]
    assert s.get(Rec, out.id) is out
    r = fc(s)
    assert r.updated == 1
    assert_stored_is_memory(db, objs)


def test_expunge_after_flush_then_add_writes_only_later_change(db: Any) -> None:
    s, objs = load(db, 3)
    objs[0].s = "flushed"
    fc(s)
    s.expunge(objs[0])
    objs[0].b = True
    db[Rec.__collection__].update_one({"_id": objs[0].id}, {"$set": {"f": 9.5}})
    s.add(objs[0])
    assert s.dirty_fields(objs[0]) == ["b"]
    fc(s)
    got = stored(db, objs[0])
    assert got["s"] == "flushed" and got["b"] is True
    assert got["f"] == 9.5, "a field not changed by the session must not be written"


def test_clear_cache_keeps_dirty_detaches_clean(db: Any) -> None:
    s, objs = load(db, 10)
    dirty, clean = objs[:5], objs[5:]
    for o in dirty:
        o.s, o.d = "d", T0
    s.clear_cache()
    for o in dirty:
        assert s.state(o) is uow.ObjectState.PERSISTENT
        assert s.get(Rec, o.id) is o
    for o in clean:
        assert s.state(o) is uow.ObjectState.DETACHED
    r = fc(s)
    assert r.updated == 5
    assert_stored_is_memory(db, objs)
    # a detached clean one changed and added back is written
    clean[0].s = "back"
    s.add(clean[0])
    assert s.get(Rec, clean[0].id) is clean[0]
    fc(s)
    assert_stored_is_memory(db, objs)


def test_clear_cache_after_flush_then_change_and_add(db: Any) -> None:
    s, objs = load(db, 4)
    for o in objs:
        o.s = "a"
    fc(s)
    s.clear_cache()
    assert all(s.state(o) is uow.ObjectState.DETACHED for o in objs)
    for o in objs:
        o.s = ""  # the value it had at load, not the one last stored
        s.add(o)
    assert all(s.dirty_fields(o) == ["s"] for o in objs)
    fc(s)
    assert_stored_is_memory(db, objs)


@SETTINGS
@given(
    size=st.sampled_from([0, 1, 2, 3, None]),
    plan=st.lists(
        st.tuples(
            st.integers(0, 11), st.sampled_from(["s", "i", "b", "append", "expunge", "clear"])
        ),
        max_size=25,
    ),
)
def test_cache_model(db: Any, size: int | None, plan: list[tuple[int, str]]) -> None:
    db[Rec.__collection__].delete_many({})
    seed(db, Rec, 12, i=lambda k: k)
    s = Session(db, cache_size=size)
    try:
        objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
        detached: set[int] = set()
        for k, what in plan:
            o = objs[k]
            if what == "s":
                o.s += "x"
            elif what == "i":
                o.i += 1
            elif what == "b":
                o.b = not o.b
            elif what == "append":
                o.tags.append(str(k))
            elif what == "expunge":
                if k not in detached:
                    s.expunge(o)
                    detached.add(k)
            else:
                dirty = {j for j, x in enumerate(objs) if j not in detached and s.is_dirty(x)}
                s.clear_cache()
                detached |= set(range(12)) - dirty
        for k in detached:
            s.add(objs[k])
        fc(s)
        assert_stored_is_memory(db, objs)
        assert not s.has_changes()
        for o in objs:
            assert s.get(Rec, o.id) is o
            assert stored(db, o) == mem(o)
    finally:
        s.close()
