"""``on_update="$currentDate"``. SPEC: "After a flush the in-memory value is the
one this session computed; a field the server decides ($currentDate) is
reloaded on its next read"; "$currentDate (the server sets it on every update
of the document)"; "after a flush, the stored document equals what the session
holds"."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from bson import ObjectId

import uow
from tests._blackbox import assert_recent
from uow import Session

from ._h import Ev, Stamp, stored

T0 = datetime.datetime(2001, 2, 3, 4, 5, 6)


def seed(db: Any, n: int = 1, **extra: Any) -> list[ObjectId]:
    docs = [
        {"_id": ObjectId(), "name": f"d{k}", "n": k, "at": T0, "evs": [{"what": "e", "at": T0}]}
        for k in range(n)
    ]
    for d in docs:
        d.update(extra)
    db.a13_stamp.insert_many(docs)
    return [d["_id"] for d in docs]


def test_insert_stores_value_held(db: Any) -> None:
    s = Session(db)
    o = Stamp(name="a", at=T0)
    s.add(o)
    s.commit()
    assert o.at == stored(db, o)["at"]


def test_read_inside_block_after_flush(db: Any) -> None:
    (oid,) = seed(db)
    with Session(db) as s:
        o = s.get(Stamp, oid)
        assert o is not None
        assert o.at == T0
        o.n = 10
        s.flush()
        held = (o.at, o.evs[0].at)
        assert not s.is_dirty(o) and not s.has_changes()
        s.commit()
        got = stored(db, o)
        assert_recent(got["at"])
        assert held == (got["at"], got["evs"][0]["at"])
        assert (o.at, o.evs[0].at) == held
    assert o.at == stored(db, o)["at"]


def test_read_after_with_block_that_flushed_on_exit(db: Any) -> None:
    (oid,) = seed(db)
    with Session(db) as s:
        o = s.get(Stamp, oid)
        assert o is not None
        o.n = 10  # flushed by the commit on leaving the block
    got = stored(db, o)
    assert_recent(got["at"])
    assert o.n == 10
    assert o.at == got["at"]


def test_read_never_read_before_flush(db: Any) -> None:
    (_oid,) = seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.name = "x"  # `at` never read
    s.flush()
    held = o.at
    s.commit()
    got = stored(db, o)
    assert got["at"] != T0
    assert held == got["at"] == o.at


def test_read_after_expunge(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 5
    s.commit()
    s.expunge(o)
    got = stored(db, o)
    assert_recent(got["at"])
    assert o.at == got["at"]


def test_read_after_close(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 5
    s.commit()
    s.close()
    got = stored(db, o)
    assert_recent(got["at"])
    assert o.at == got["at"]
    assert o.evs[0].at == got["evs"][0]["at"]


def test_read_after_clear_cache(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 5
    s.commit()
    s.clear_cache()
    assert s.state(o) is uow.ObjectState.DETACHED
    assert o.at == stored(db, o)["at"]


def test_read_after_rollback_of_flush(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 5
    s.flush()
    s.rollback()
    got = stored(db, o)
    assert o.n == got["n"]
    assert o.at == got["at"]  # T0 with a transaction, the server's now without
    s.commit()
    assert stored(db, o) == got


def test_rollback_after_reading_reloaded_value(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 5
    s.flush()
    assert o.at != T0
    s.rollback()
    got = stored(db, o)
    assert (o.n, o.at) == (got["n"], got["at"])


def test_many_documents_at_once(db: Any) -> None:
    seed(db, 40)
    s = Session(db)
    objs = s.query(Stamp).sort(Stamp.n.asc()).all()
    for o in objs:
        o.n += 100
    s.flush()
    held = {o.id: (o.n, o.at, o.evs[0].at) for o in objs}
    assert not s.has_changes()
    s.commit()
    raw = {d["_id"]: d for d in db.a13_stamp.find()}
    assert len(raw) == 40
    for o in objs:
        r = raw[o.id]
        assert held[o.id] == (r["n"], r["at"], r["evs"][0]["at"])
        assert r["at"] != T0


def test_reloaded_value_is_not_a_change(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 5
    s.commit()
    first = o.at
    assert not s.is_dirty(o) and s.dirty_fields(o) == []
    time.sleep(0.01)
    result = s.flush()
    assert result.updated == 0
    s.commit()
    assert stored(db, o)["at"] == first


def test_two_flushes_read_the_second_value(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 1
    s.flush()
    a1 = o.at
    assert a1 is not None and a1 != T0
    time.sleep(0.01)
    o.n = 2
    assert o.at == a1  # before the flush: the value read
    s.flush()
    a2 = o.at
    s.commit()
    got = stored(db, o)
    assert got["at"] > a1
    assert a2 == got["at"] == o.at


def test_assigned_value_is_replaced_by_servers(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.at = datetime.datetime(1999, 1, 1)
    assert s.dirty_fields(o) == ["at"]
    s.commit()
    got = stored(db, o)
    assert_recent(got["at"])
    assert o.at == got["at"]


def test_tz_aware_session_reload(db: Any) -> None:
    seed(db)
    s = Session(db, tz_aware=True)
    o = s.query(Stamp).one()
    assert o.at is not None and o.at.tzinfo is not None
    o.n = 3
    s.flush()
    assert o.at is not None and o.at.tzinfo is not None
    s.commit()
    assert o.at.replace(tzinfo=None) == stored(db, o)["at"]
    assert o.evs[0].at is not None and o.evs[0].at.tzinfo is not None


def test_partial_load_then_flush(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).fields("name").one()
    o.name = "p"
    s.commit()
    got = stored(db, o)
    assert got["name"] == "p" and got["n"] == 0
    assert got["evs"][0]["what"] == "e"
    try:
        value = o.at
    except uow.FieldNotLoaded:
        pass
    else:
        assert value == got["at"]
    s.commit()
    assert stored(db, o)["n"] == 0


def test_partial_load_with_current_date_field(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).fields("at").one()
    assert o.at == T0
    o.n = 9  # not loaded: $set
    s.commit()
    got = stored(db, o)
    assert got["n"] == 9 and got["name"] == "d0"
    assert o.at == got["at"] and got["at"] != T0
    with pytest.raises(uow.FieldNotLoaded):
        o.name


def test_refresh_after_flush(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.n = 4
    s.commit()
    s.refresh(o)
    assert o.at == stored(db, o)["at"] != T0


def test_embedded_current_date_in_new_element(db: Any) -> None:
    (oid,) = seed(db)
    s = Session(db)
    o = s.get(Stamp, oid)
    assert o is not None
    o.evs.append(Ev(what="new", at=T0))
    o.ev = Ev(what="one")
    s.flush()
    held = ([(e.what, e.at) for e in o.evs], o.ev.at, o.at)
    s.commit()
    got = stored(db, o)
    assert held == ([(e["what"], e["at"]) for e in got["evs"]], got["ev"]["at"], got["at"])
    assert [e.what for e in o.evs] == [e["what"] for e in got["evs"]]
    assert [e.at for e in o.evs] == [e["at"] for e in got["evs"]]
    assert o.ev is not None and o.ev.at == got["ev"]["at"]
    assert o.at == got["at"]


def test_delete_after_flush_without_reading(db: Any) -> None:
    seed(db, 2)
    s = Session(db)
    a, b = s.query(Stamp).sort(Stamp.n.asc()).all()
    a.n = 7
    b.n = 8
    s.flush()
    s.delete(a)
    s.commit()
    assert db.a13_stamp.count_documents({}) == 1
    assert b.at == stored(db, b)["at"]
    assert s.state(a) is uow.ObjectState.DETACHED


def test_assigned_embedded_value_is_replaced_by_servers(db: Any) -> None:
    seed(db)
    s = Session(db)
    o = s.query(Stamp).one()
    o.evs[0].at = datetime.datetime(1999, 1, 1)
    s.commit()
    assert not s.has_changes()
    got = stored(db, o)
    assert_recent(got["evs"][0]["at"])
    assert (o.at, o.evs[0].at) == (got["at"], got["evs"][0]["at"])


def test_with_block_error_after_flush(db: Any) -> None:
    # Without a transaction the flushed update stays, so `at` must be reloaded;
    # in one, it is aborted and `at` is as stored before.
    seed(db)
    with pytest.raises(RuntimeError), Session(db) as s:
        o = s.query(Stamp).one()
        o.n = 5
        s.flush()
        raise RuntimeError("boom")
    got = stored(db, o)
    assert (o.n, o.at) == (got["n"], got["at"])


def test_cache_size_zero_keeps_reload(db: Any) -> None:
    seed(db, 3)
    s = Session(db, cache_size=0)
    objs = s.query(Stamp).all()
    for o in objs:
        o.n += 1
    s.flush()
    held = [(o.n, o.at) for o in objs]
    s.commit()
    raw = {d["_id"]: d for d in db.a13_stamp.find()}
    assert held == [(raw[o.id]["n"], raw[o.id]["at"]) for o in objs]
    assert all(at != T0 for _, at in held)
