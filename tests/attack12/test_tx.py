"""Plain-field changes of documents loaded with query().all(), under transactions.

SPEC: "rollback(): abort any open transaction, drop the queue, and put every
tracked document back to what the database now holds: with a transaction, the
last committed snapshot"; "with s.transaction(): ... an exception does what
rollback() does"; "When a flush fails inside a transaction, ... every change
since the last commit, not only that flush's, goes back to unflushed (the
documents keep their in-memory values)"; TransientTransactionError at commit:
"commit() re-queues everything".
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import uow
from uow import Session

from ._h import (
    PLAIN,
    SETTINGS,
    T0,
    TRANSIENT,
    VALUES,
    Cnt,
    Rec,
    all_stored,
    assert_stored_is_memory,
    failpoint,
    mem,
    seed,
    stored,
)

__all__ = ["failpoint"]

pytestmark = pytest.mark.transactions


def loaded(db: Any, n: int = 5, cls: type = Rec, **kw: Any) -> tuple[Session, list[Any]]:
    seed(db, cls, n, s=lambda k: f"v{k}", i=lambda k: k)
    s = Session(db, **kw)
    objs = s.query(cls).all()
    assert len(objs) == n
    return s, sorted(objs, key=lambda o: o.i)


def change(objs: list[Any], tag: str = "x") -> None:
    for k, o in enumerate(objs):
        o.s = f"{tag}{k}"
        o.i = 1000 + k
        if isinstance(o, Rec):
            o.f = 1.5 + k
            o.b = True
            o.d = T0


def test_raise_in_transaction_block_after_flush_restores_stored_values(db: Any) -> None:
    s, objs = loaded(db)
    before = {o.id: mem(o) for o in objs}
    with pytest.raises(RuntimeError), s.transaction():
        change(objs)
        s.flush()
        raise RuntimeError("boom")
    assert all_stored(db, Rec) == before
    for o in objs:
        assert mem(o) == before[o.id], "after the abort the object must hold what is stored"
        assert not s.is_dirty(o)
        assert s.state(o) is uow.ObjectState.PERSISTENT
    assert not s.has_changes()
    # the same change again must be written: it is a change against what is stored
    change(objs)
    assert all(s.is_dirty(o) for o in objs)
    s.commit()
    assert_stored_is_memory(db, objs)


def test_flush_then_rollback_then_same_assignment_is_written(db: Any) -> None:
    s, objs = loaded(db)
    before = {o.id: mem(o) for o in objs}
    change(objs)
    s.flush()  # opens the transaction
    s.rollback()
    assert all_stored(db, Rec) == before
    assert [mem(o) for o in objs] == [before[o.id] for o in objs]
    change(objs)
    r = s.flush()
    assert r.updated == len(objs)
    s.commit()
    assert_stored_is_memory(db, objs)


def test_rollback_goes_back_to_last_commit_not_last_flush(db: Any) -> None:
    s, objs = loaded(db)
    change(objs, "c")
    s.commit()
    committed = {o.id: mem(o) for o in objs}
    change(objs, "a")
    s.flush()
    change(objs[:2], "b")
    s.flush()
    s.rollback()
    assert all_stored(db, Rec) == committed
    assert [mem(o) for o in objs] == [committed[o.id] for o in objs]
    # assign the aborted values again: written
    change(objs, "a")
    s.commit()
    assert_stored_is_memory(db, objs)


def test_transient_error_at_commit_requeues_and_second_commit_writes_once(
    db: Any, failpoint: Any
) -> None:
    s, objs = loaded(db, cls=Cnt)
    change(objs)
    for o in objs:
        o.n += 1
    s.flush()
    want = [mem(o) for o in objs]
    failpoint(["commitTransaction"], code=112, labels=TRANSIENT, times=1)
    with pytest.raises(uow.TransactionError) as caught:
        s.commit()
    assert caught.value.retryable is True
    assert [stored(db, o)["s"] for o in objs] == [f"v{k}" for k in range(len(objs))]
    # re-queued, in-memory values kept
    assert [mem(o) for o in objs] == want
    assert all(s.is_dirty(o) for o in objs)
    s.commit()
    assert_stored_is_memory(db, objs)
    assert [stored(db, o)["n"] for o in objs] == [1] * len(objs), "a $inc applied twice"
    assert not s.has_changes()


def test_transient_error_at_commit_in_block_rolls_back(db: Any, failpoint: Any) -> None:
    s, objs = loaded(db)
    before = {o.id: mem(o) for o in objs}
    failpoint(["commitTransaction"], code=112, labels=TRANSIENT, times=1)
    with pytest.raises(uow.TransactionError) as caught, s.transaction():
        change(objs)
    assert caught.value.retryable is True
    assert all_stored(db, Rec) == before
    assert [mem(o) for o in objs] == [before[o.id] for o in objs]
    assert not s.has_changes()
    change(objs)
    with s.transaction():
        pass
    assert_stored_is_memory(db, objs)


def test_failed_second_flush_requeues_first_flush_changes(db: Any, failpoint: Any) -> None:
    s, objs = loaded(db, n=6, cls=Cnt)
    first, second = objs[:3], objs[3:]
    change(first, "f")
    for o in first:
        o.n += 2
    s.flush()
    change(second, "g")
    failpoint(["update"], code=2, times=1)
    with pytest.raises(uow.FlushError) as caught:
        s.flush()
    err = caught.value
    assert err.transaction_aborted
    assert list(err.applied) == []
    assert {id(o) for o in err.not_applied} >= {id(o) for o in objs}
    # nothing of the transaction stored, every object keeps its in-memory value and is dirty
    assert [stored(db, o)["s"] for o in objs] == [f"v{k}" for k in range(6)]
    assert all(s.is_dirty(o) for o in objs), [s.dirty_fields(o) for o in objs]
    assert s.dirty_fields(first[0]) == ["i", "n", "s"]
    s.commit()
    assert_stored_is_memory(db, objs)
    assert [stored(db, o)["n"] for o in objs] == [2, 2, 2, 0, 0, 0]


def test_failed_flush_then_rollback_restores_committed(db: Any, failpoint: Any) -> None:
    s, objs = loaded(db)
    before = {o.id: mem(o) for o in objs}
    change(objs[:2])
    s.flush()
    change(objs[2:])
    failpoint(["update"], code=2, times=1)
    with pytest.raises(uow.FlushError):
        s.flush()
    s.rollback()
    assert [mem(o) for o in objs] == [before[o.id] for o in objs]
    assert not s.has_changes()
    change(objs)
    s.commit()
    assert_stored_is_memory(db, objs)


# ------------------------------------------------------------- a model, by hypothesis

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"),
            st.integers(0, 3),
            st.sampled_from(PLAIN).flatmap(lambda f: st.tuples(st.just(f), VALUES[f])),
        ),
        st.tuples(st.sampled_from(["flush", "commit", "rollback", "block_ok", "block_raise"])),
    ),
    min_size=1,
    max_size=14,
)


@SETTINGS
@given(ops=OPS)
def test_model_of_flush_commit_rollback(db: Any, ops: list[Any]) -> None:
    db[Rec.__collection__].delete_many({})
    seed(db, Rec, 4, s=lambda k: f"v{k}", i=lambda k: k)
    s = Session(db)
    try:
        objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
        memory = [mem(o) for o in objs]
        committed = [dict(m) for m in memory]

        def check() -> None:
            raw = all_stored(db, Rec)
            assert [raw[o.id] for o in objs] == committed
            assert [mem(o) for o in objs] == memory

        for op in ops:
            if op[0] == "set":
                _, k, (name, value) = op
                setattr(objs[k], name, value)
                memory[k][name] = value
            elif op[0] == "flush":
                s.flush()
            elif op[0] == "commit":
                s.commit()
                committed = [dict(m) for m in memory]
                assert not s.has_changes()
            elif op[0] == "rollback":
                s.rollback()
                memory = [dict(c) for c in committed]
                assert not s.has_changes()
            elif op[0] == "block_ok":
                with s.transaction():
                    objs[0].s = objs[0].s + "!"
                    memory[0]["s"] = objs[0].s
                committed = [dict(m) for m in memory]
            else:
                with pytest.raises(RuntimeError), s.transaction():
                    objs[1].i = objs[1].i // 2 + 1
                    s.flush()
                    raise RuntimeError
                memory = [dict(c) for c in committed]
            check()
        s.commit()
        committed = [dict(m) for m in memory]
        check()
    finally:
        s.close()
