"""``on_update="$currentDate"`` fields, top level and inside embedded documents.
docs/flush.md: "the server chose their value, so they are emptied and the first
read of one loads them with one find ... If the session lets go of it first
(close(), the end of a with block, expunge(), clear_cache()), it reads them
then ... so no document outside a session holds a date the store no longer
has." SPEC: "after a flush, the stored document equals what the session holds"."""

from __future__ import annotations

import copy
import datetime
import gc
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import Stamp, Stamped, assert_recent

OLD = datetime.datetime(2000, 1, 1)
COPIERS: list[Any] = [
    pytest.param(copy.deepcopy, id="deepcopy"),
    pytest.param(lambda o: pickle.loads(pickle.dumps(o)), id="pickle"),
]


def _seed(db: Any, count: int = 1) -> list[Stamped]:
    with Session(db) as s:
        docs = [
            Stamped(
                code=f"c{i}",
                at=OLD,
                one=Stamp(at=OLD),
                stamps=[Stamp(at=OLD)],
                by={"k": Stamp(at=OLD)},
            )
            for i in range(count)
        ]
        s.add_all(docs)
    return docs


def _stored(db: Any, doc: Any) -> Any:
    return db.a14_stamped.find_one({"_id": doc.id})


def _same_dates(db: Any, doc: Stamped) -> None:
    got = _stored(db, doc)
    assert doc.at == got["at"]
    assert (doc.one.at if doc.one else None) == (got["one"]["at"] if got["one"] else None)
    assert [x.at for x in doc.stamps] == [x["at"] for x in got["stamps"]]
    assert {k: v.at for k, v in doc.by.items()} == {k: v["at"] for k, v in got["by"].items()}
    assert doc.name == got["name"]
    assert doc.n == got["n"]


def test_assigned_value_replaced_by_server(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    mine = datetime.datetime(2010, 5, 5)
    doc.at = mine
    doc.one.at = mine
    s.flush()
    assert doc.at != mine
    assert_recent(doc.at)
    s.commit()
    _same_dates(db, doc)
    assert_recent(_stored(db, doc)["one"]["at"])
    s.close()


def test_partial_load_then_assign_is_set(db: Any) -> None:
    (_d,) = _seed(db)
    s = Session(db)
    p = s.query(Stamped).fields("name").one()
    mine = datetime.datetime(2011, 1, 1)
    p.at = mine
    s.commit()
    assert _stored(db, p)["at"] == mine
    assert p.at == mine
    assert _stored(db, p)["stamps"][0]["at"] == OLD
    s.close()
    assert p.at == mine


def test_partial_load_without_date_then_other_change(db: Any) -> None:
    (_d,) = _seed(db)
    s = Session(db)
    p = s.query(Stamped).fields("name").one()
    p.name = "x"
    s.commit()
    stored = _stored(db, p)
    assert stored["name"] == "x"
    assert_recent(stored["at"])
    # the server set it: reading it gives the stored value (or refuses as not
    # loaded), never the loader's default or the old value
    try:
        held = p.at
    except uow.FieldNotLoaded:
        held = "not loaded"
    assert held in (stored["at"], "not loaded")
    s.close()


LET_GO = ["commit", "close", "expunge", "clear_cache", "with", "expunge_all"]


@pytest.mark.parametrize("how", LET_GO)
def test_read_after_letting_go(db: Any, how: str) -> None:
    (d,) = _seed(db)
    if how == "with":
        with Session(db) as s:
            doc = s.get(Stamped, d.id)
            doc.name = "w"
            doc.stamps.append(Stamp(note="n"))
    else:
        s = Session(db)
        doc = s.get(Stamped, d.id)
        doc.name = "w"
        doc.stamps.append(Stamp(note="n"))
        s.commit()
        if how == "close":
            s.close()
        elif how == "expunge":
            s.expunge(doc)
            assert s.state(doc) is ObjectState.DETACHED
        elif how == "expunge_all":
            s.expunge_all()
        elif how == "clear_cache":
            s.clear_cache()
            assert s.state(doc) is ObjectState.DETACHED
    assert_recent(doc.at)
    _same_dates(db, doc)


def test_read_after_with_block_exception(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    s.commit()
    with pytest.raises(RuntimeError), s:
        doc.name = "w"
        doc.stamps.append(Stamp(note="n"))
        s.flush()
        raise RuntimeError("boom")
    # with a transaction nothing was written; without one the flush stays
    _same_dates(db, doc)


def test_read_after_rollback(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.name = "r"
    doc.by["j"] = Stamp(note="j")
    s.flush()
    s.rollback()
    _same_dates(db, doc)
    s.close()
    _same_dates(db, doc)


def test_rollback_in_transaction_restores_old_dates(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.name = "r"
    s.flush()
    assert_recent(doc.at)
    s.rollback()
    stored = _stored(db, doc)
    if stored["name"] == "":  # the flush was in a transaction
        assert doc.at == OLD
        assert doc.stamps[0].at == OLD
    _same_dates(db, doc)
    s.close()


def test_many_documents_one_query(db: Any) -> None:
    docs = _seed(db, 60)
    s = Session(db)
    held = s.query(Stamped).all()
    for x in held:
        x.n += 1
    rt0 = s.stats().round_trips
    res = s.flush()
    assert res.updated == 60
    assert s.stats().round_trips - rt0 == 1
    q0 = s.stats().queries
    dates = [x.at for x in held]
    assert s.stats().queries - q0 == 1
    # the embedded dates came back with the flush: no query
    assert all(x.stamps[0].at == dates[0] or x.stamps[0].at for x in held)
    assert s.stats().queries - q0 == 1
    s.commit()
    for x in held:
        _same_dates(db, x)
    assert len(docs) == 60
    s.close()


def test_many_documents_read_at_close(db: Any) -> None:
    _seed(db, 25)
    s = Session(db)
    held = s.query(Stamped).all()
    for x in held:
        x.name = "c"
    s.commit()
    q0 = s.stats().queries
    s.close()
    for x in held:
        _same_dates(db, x)
    assert q0 >= 1


def test_flush_result_round_trips_match_stats(db: Any) -> None:
    _seed(db, 5)
    s = Session(db)
    for x in s.query(Stamped).all():
        x.n += 1
    rt0 = s.stats().round_trips
    res = s.flush()
    assert s.stats().round_trips - rt0 == 1  # one update command
    assert res.round_trips == s.stats().round_trips - rt0
    s.commit()
    assert db.a14_stamped.count_documents({"n": 1}) == 5
    s.close()


def test_small_cache(db: Any) -> None:
    docs = _seed(db, 12)
    s = Session(db, cache_size=1)
    for d in docs:
        s.get(Stamped, d.id).name = "s"
    s.flush()
    gc.collect()
    kept = s.get(Stamped, docs[0].id)
    assert_recent(kept.at)
    s.commit()
    gc.collect()
    for d in docs:
        x = s.get(Stamped, d.id)
        assert x.name == "s"
        _same_dates(db, x)
    s.close()


def test_small_cache_held_documents(db: Any) -> None:
    docs = _seed(db, 12)
    s = Session(db, cache_size=0)
    held = [s.get(Stamped, d.id) for d in docs]
    for x in held:
        x.stamps[0].note = "z"
    s.commit()
    gc.collect()
    for x in held:
        _same_dates(db, x)
    s.close()
    for x in held:
        _same_dates(db, x)


def test_embedded_dates_after_flush(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    keep_list = doc.stamps
    doc.stamps.append(Stamp(note="a"))
    doc.by["new"] = Stamp(note="b")
    doc.one = Stamp(note="c")
    s.flush()
    assert doc.stamps is keep_list
    assert doc.stamps[1].at is not None
    assert_recent(doc.stamps[1].at)
    s.commit()
    _same_dates(db, doc)
    # a change through the held list after the flush is still found
    keep_list[0].note = "later"
    s.commit()
    assert _stored(db, doc)["stamps"][0]["note"] == "later"
    _same_dates(db, doc)
    s.close()


def test_list_set_whole_stamps_every_element(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.stamps.insert(0, Stamp(note="first"))
    s.commit()
    stored = _stored(db, doc)
    assert [x["note"] for x in stored["stamps"]] == ["first", ""]
    for x in stored["stamps"]:
        assert_recent(x["at"])
    _same_dates(db, doc)
    s.close()


def test_deleted_by_other_client_before_read(db: Any) -> None:
    docs = _seed(db, 3)
    s = Session(db)
    held = [s.get(Stamped, d.id) for d in docs]
    for x in held:
        x.n += 1
    s.commit()
    db.a14_stamped.delete_one({"_id": docs[0].id})
    _ = held[0].at  # stored nowhere: any value, but no error
    _same_dates(db, held[1])
    _same_dates(db, held[2])
    held[1].name = "again"
    s.commit()
    assert db.a14_stamped.count_documents({}) == 2
    assert _stored(db, held[0]) is None
    _same_dates(db, held[1])
    s.close()


def test_deleted_by_other_client_before_close(db: Any) -> None:
    docs = _seed(db, 2)
    s = Session(db)
    held = [s.get(Stamped, d.id) for d in docs]
    for x in held:
        x.n += 1
    s.commit()
    db.a14_stamped.delete_one({"_id": docs[0].id})
    s.close()
    _ = held[0].at
    _same_dates(db, held[1])
    assert db.a14_stamped.count_documents({}) == 1


def test_no_tracking_update_keeps_other_fields(db: Any) -> None:
    (_d,) = _seed(db)
    s = Session(db, no_tracking=True)
    doc = s.query(Stamped).one()
    assert s.state(doc) is ObjectState.DETACHED
    doc.name = "nt"
    doc.n = 4
    s.update(doc)
    s.commit()
    stored = _stored(db, doc)
    assert stored["name"] == "nt"
    assert stored["n"] == 4
    assert_recent(stored["at"])
    s.close()


def test_no_tracking_read_dates(db: Any) -> None:
    docs = _seed(db, 3)
    with Session(db) as s:
        for d in docs:
            s.get(Stamped, d.id).name = "x"
    s2 = Session(db, no_tracking=True)
    for x in s2.query(Stamped).all():
        _same_dates(db, x)
    s2.close()


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_after_commit_reads_stored_date(db: Any, dup: Callable[[Any], Any]) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.name = "x"
    s.commit()
    c = dup(doc)
    s.close()
    assert c.at == _stored(db, d)["at"]
    _same_dates(db, c)


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_after_flush_read_in_new_session(db: Any, dup: Callable[[Any], Any]) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.name = "x"
    s.commit()
    c = dup(doc)
    s.close()
    with Session(db) as s2:
        s2.add(c)
        assert s2.state(c) is ObjectState.PERSISTENT
        assert c.at == _stored(db, d)["at"]
    _same_dates(db, c)


@pytest.mark.parametrize("dup", COPIERS)
def test_copy_taken_after_reading_dates(db: Any, dup: Callable[[Any], Any]) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.name = "x"
    s.commit()
    _ = doc.at
    c = dup(doc)
    s.close()
    _same_dates(db, c)
    c.n += 2
    with Session(db) as s2:
        s2.add(c)
    _same_dates(db, c)
    assert _stored(db, c)["n"] == 2


@pytest.mark.transactions
def test_close_without_commit_restores_embedded_dates(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.name = "dropped"
    s.flush()
    s.close()  # the transaction is aborted: nothing of the flush is stored
    stored = _stored(db, doc)
    assert stored["name"] == ""
    assert doc.at == OLD
    assert doc.one.at == OLD
    assert doc.stamps[0].at == OLD
    assert doc.by["k"].at == OLD


@pytest.mark.transactions
def test_close_without_commit_restores_top_level_date(db: Any) -> None:
    (d,) = _seed(db)
    s = Session(db)
    doc = s.get(Stamped, d.id)
    doc.name = "dropped"
    s.flush()
    s.close()
    assert doc.at == OLD == _stored(db, doc)["at"]
