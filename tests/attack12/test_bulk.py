"""Many documents loaded with query().all(), most changed by plain assignment,
some appended to in place, some deleted, a few new, in one flush.

SPEC: "Each (collection, kind) is one write command (insert_many, or one ordered
bulk_write ...), split only at the server's maxWriteBatchSize"; round_trips
counts "write commands sent by flushes"; "after a flush, the stored document
equals what the session holds".
"""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uow import Session

from ._h import SETTINGS, Cnt, Rec, all_stored, mem, seed

N = 1200


def big_change(s: Session, objs: list[Any], rng: random.Random) -> tuple[list[Any], list[Any]]:
    deleted: list[Any] = []
    kept: list[Any] = []
    for k, o in enumerate(objs):
        r = k % 24
        if r == 0:
            s.delete(o)
            deleted.append(o)
            continue
        kept.append(o)
        if r in (1, 2):
            o.tags.append(f"t{k}")
            if r == 2:
                o.s = f"both{k}"
        elif r != 3:  # r == 3: untouched
            o.s = f"s{k}"
            o.i = rng.randint(-(2**40), 2**40)
            o.f = rng.random()
            o.b = bool(k % 2)
            o.d = datetime.datetime(2000, 1, 1) + datetime.timedelta(milliseconds=k)
    return kept, deleted


def check_stored(db: Any, kept: list[Any], deleted: list[Any], new: list[Any]) -> None:
    raw = all_stored(db, Rec)
    assert len(raw) == len(kept) + len(new)
    assert all(raw.get(o.id) is None for o in deleted)
    bad = [o for o in kept + new if raw.get(o.id) != mem(o)]
    assert not bad, f"{len(bad)} differ: memory {mem(bad[0])!r} stored {raw.get(bad[0].id)!r}"


def test_big_mixed_flush_round_trips_and_stored(db: Any) -> None:
    seed(db, Rec, N, i=lambda k: k, tags=lambda k: [f"o{k}"])
    s = Session(db)
    objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
    kept, deleted = big_change(s, objs, random.Random(1))
    new = [Rec(s=f"n{k}") for k in range(7)]
    s.add_all(new)
    st0 = s.stats()
    assert st0.pending_updates == len(kept) - N // 24
    assert st0.pending_deletes == len(deleted)
    rt0 = st0.round_trips
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted) == (7, len(kept) - N // 24, len(deleted))
    assert r.round_trips == 3
    assert s.stats().round_trips - rt0 == 3
    s.commit()
    check_stored(db, kept, deleted, new)
    assert not s.has_changes()
    assert s.flush().round_trips == 0


def test_big_mixed_flush_commands_on_the_wire(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    seed(db, Rec, N, i=lambda k: k)
    seed(db, Cnt, 300, i=lambda k: k)
    s = Session(db)
    objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
    cnts = sorted(s.query(Cnt).all(), key=lambda o: o.i)
    kept, deleted = big_change(s, objs, random.Random(2))
    for c in cnts:
        c.s = "c"
        c.n += 1
    s.delete(cnts[-1])
    command_log.clear()
    s.flush()
    writes = [
        (c.name, c.command[c.name]) for c in command_log if c.name in ("insert", "update", "delete")
    ]
    assert writes == [
        ("update", Rec.__collection__),
        ("update", Cnt.__collection__),
        ("delete", Rec.__collection__),
        ("delete", Cnt.__collection__),
    ], writes
    # one update statement per changed document, each touching only its changed paths
    ups = command_log.of("update")
    stmts = ups[0]["updates"]
    assert len(stmts) == len(kept) - N // 24
    for st_ in stmts:
        assert set(st_["u"]) <= {"$set", "$push"}, st_
    s.commit()
    check_stored(db, kept, deleted, [])
    raw = all_stored(db, Cnt)
    assert all(raw[c.id] == mem(c) for c in cnts[:-1])
    assert all(raw[c.id]["n"] == 1 for c in cnts[:-1])


def test_big_flush_identical_assignment_sends_nothing(db: Any) -> None:
    seed(db, Rec, N, i=lambda k: k, s=lambda k: f"s{k}")
    s = Session(db)
    objs = s.query(Rec).all()
    for o in objs:
        o.s = str(o.s)  # equal value, new object
        o.i = int(o.i)
        o.f = 0.0
        o.b = False
    assert not s.has_changes()
    assert s.flush().round_trips == 0


@SETTINGS
@given(
    ops=st.lists(
        st.sampled_from(["keep", "assign", "append", "both", "delete", "assign_back"]),
        min_size=30,
        max_size=30,
    ),
    n_new=st.integers(0, 2),
)
def test_mixed_flush_hypothesis(db: Any, ops: list[str], n_new: int) -> None:
    db[Rec.__collection__].delete_many({})
    seed(db, Rec, len(ops), i=lambda k: k, tags=lambda k: ["a"])
    s = Session(db)
    try:
        objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
        kept, deleted, changed = [], [], 0
        for k, (o, op) in enumerate(zip(objs, ops, strict=True)):
            if op == "delete":
                s.delete(o)
                deleted.append(o)
                continue
            kept.append(o)
            if op in ("assign", "both"):
                o.s, o.b, o.f = f"x{k}", True, k + 0.25
            if op in ("append", "both"):
                o.tags.append("b")
            if op == "assign_back":
                o.i = -1
                o.i = k  # back to what is stored: no change
            changed += op in ("assign", "append", "both")
        new = [Rec(s="n") for _ in range(n_new)]
        s.add_all(new)
        r = s.flush()
        assert (r.inserted, r.updated, r.deleted) == (n_new, changed, len(deleted))
        assert r.round_trips == (n_new > 0) + (changed > 0) + (len(deleted) > 0)
        s.commit()
        check_stored(db, kept, deleted, new)
    finally:
        s.close()


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_flush_is_one_command_per_kind(db: Any, n: int) -> None:
    seed(db, Rec, 3 * n, i=lambda k: k)
    s = Session(db)
    objs = sorted(s.query(Rec).all(), key=lambda o: o.i)
    for o in objs[:n]:
        o.s = "a"
    for o in objs[n : 2 * n]:
        s.delete(o)
    new = [Rec(s="new") for _ in range(n)]
    s.add_all(new)
    r = s.flush()
    assert r.round_trips == 3
    s.commit()
    check_stored(db, objs[:n] + objs[2 * n :], objs[n : 2 * n], new)
