"""`stats()` counters compared with the commands actually sent (CommandListener)."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Session

from ._models import Acct, Note

WRITES = {"insert", "update", "delete"}


def sent(command_log: Any, since: int = 0) -> list[str]:
    return command_log.names()[since:]


def test_stats_fresh_session_zero(db: Any) -> None:
    st = Session(db).stats()
    assert st.as_dict() == {
        "identity_map_size": 0,
        "pending_inserts": 0,
        "pending_updates": 0,
        "pending_deletes": 0,
        "round_trips": 0,
        "flushes": 0,
        "queries": 0,
        "requests": 0,
        "cache_hits": 0,
        "cache_misses": 0,
    }


def test_stats_flush_round_trips_match_commands(
    secantus_listened_db: Any, command_log: Any
) -> None:
    s = Session(secantus_listened_db)
    s.add_all([Acct(name="a"), Acct(name="b"), Note(text="n")])
    st = s.stats()
    assert (st.pending_inserts, st.identity_map_size) == (3, 3)
    command_log.clear()
    result = s.flush()
    names = sent(command_log)
    assert [n for n in names if n in WRITES] == ["insert", "insert"]
    assert result.round_trips == 2
    assert result.inserted == 3
    st = s.stats()
    assert st.round_trips == 2
    assert st.flushes == 1
    assert st.pending_inserts == 0
    assert st.requests == len(names), names
    s.commit()
    names = sent(command_log)
    assert "commitTransaction" in names
    st = s.stats()
    assert st.round_trips == 2  # a commit is not a flush write
    assert st.requests == len(names), names


def test_stats_requests_counts_every_command(secantus_listened_db: Any, command_log: Any) -> None:
    raw = secantus_listened_db[Acct._uow_meta.collection]
    raw.insert_many([{"name": f"n{i}", "balance": i, "tags": []} for i in range(250)])
    command_log.clear()
    s = Session(secantus_listened_db, transactional=False)
    got = list(s.query(Acct))
    assert len(got) == 250
    names = sent(command_log)
    assert names.count("getMore") >= 1, names
    st = s.stats()
    assert st.queries == 1  # one query, not one per batch
    assert st.requests == len(names), names
    assert st.round_trips == 0
    assert s.count(Acct, balance__gte=100) == 150
    assert s.stats().queries == 2
    assert s.stats().requests == len(sent(command_log))


def test_stats_get_hits_and_misses(secantus_listened_db: Any, command_log: Any) -> None:
    raw = secantus_listened_db[Acct._uow_meta.collection]
    oid = raw.insert_one({"name": "x", "balance": 1, "tags": []}).inserted_id
    command_log.clear()
    s = Session(secantus_listened_db)
    first = s.get(Acct, oid)
    assert first is not None
    st = s.stats()
    assert (st.queries, st.cache_misses, st.cache_hits) == (1, 1, 0)
    assert st.requests == len(sent(command_log))
    before = len(sent(command_log))
    assert s.get(Acct, oid) is first
    st = s.stats()
    assert (st.queries, st.cache_misses, st.cache_hits) == (1, 1, 1)
    assert len(sent(command_log)) == before  # no query on a hit
    assert st.requests == before
    # a miss for an id that does not exist is a query too
    from bson import ObjectId

    assert s.get(Acct, ObjectId()) is None
    st = s.stats()
    assert (st.queries, st.cache_misses) == (2, 2)
    assert st.requests == len(sent(command_log))


def test_stats_get_pending_is_hit(db: Any) -> None:
    s = Session(db)
    a = Acct(name="a")
    s.add(a)
    assert s.get(Acct, a.id) is a
    st = s.stats()
    assert (st.cache_hits, st.queries, st.requests) == (1, 0, 0)


def test_stats_flush_nothing_changed_sends_nothing(
    secantus_listened_db: Any, command_log: Any
) -> None:
    s = Session(secantus_listened_db)
    a = Acct(name="a")
    s.add(a)
    s.commit()
    before_requests = s.stats().requests
    before_log = len(sent(command_log))
    r = s.flush()
    assert r.round_trips == 0
    assert (r.inserted, r.updated, r.deleted) == (0, 0, 0)
    assert s.stats().round_trips == 1
    assert s.stats().requests == before_requests
    assert len(sent(command_log)) == before_log


def test_stats_pending_counts(db: Any) -> None:
    s = Session(db)
    a, b, c, d = Acct(name="a"), Acct(name="b"), Acct(name="c"), Acct(name="d")
    s.add_all([a, b, c, d])
    s.commit()
    a.balance += 1
    b.tags.append("x")
    s.update(c)  # explicit update of a clean document
    s.update(a)  # explicit update of a dirty one: still one per document
    s.delete(d)
    s.add(Note(text="new"))
    st = s.stats()
    assert st.identity_map_size == 5
    assert st.pending_inserts == 1
    assert st.pending_updates == 3
    assert st.pending_deletes == 1


def test_stats_round_trips_exclude_index_builds(
    secantus_listened_db: Any, command_log: Any
) -> None:
    class Indexed(uow.Document):
        __collection__ = "a9_indexed"
        __indexes__ = [uow.Index("email", unique=True)]
        email: str

    s = Session(secantus_listened_db, transactional=False)
    s.add(Indexed(email="a@x"))
    s.flush()
    names = sent(command_log)
    assert "createIndexes" in names, names
    st = s.stats()
    assert st.round_trips == 1
    assert st.requests == len(names), names


def test_stats_updates_and_deletes_one_command_each(
    secantus_listened_db: Any, command_log: Any
) -> None:
    s = Session(secantus_listened_db, transactional=False)
    docs = [Acct(name=f"n{i}") for i in range(5)]
    s.add_all(docs)
    s.flush()
    command_log.clear()
    for d in docs[:3]:
        d.balance += 2
    s.delete(docs[3])
    s.delete(docs[4])
    r = s.flush()
    names = sent(command_log)
    assert [n for n in names if n in WRITES] == ["update", "delete"]
    assert (r.updated, r.deleted, r.round_trips) == (3, 2, 2)
    assert s.stats().round_trips == 3
    stored = {
        d["name"]: d["balance"] for d in secantus_listened_db[Acct._uow_meta.collection].find()
    }
    assert stored == {"n0": 2, "n1": 2, "n2": 2}


@pytest.mark.transactions
def test_stats_rollback_counts_abort_as_request(db: Any) -> None:
    s = Session(db)
    s.add(Acct(name="a"))
    s.flush()
    before = s.stats().requests
    s.rollback()
    assert s.stats().requests == before + 1  # abortTransaction


def test_stats_requests_on_mongomock(mongomock_db: Any) -> None:
    s = Session(mongomock_db)
    s.add(Note(text="a"))
    s.flush()
    assert s.count(Note) == 1
    assert len(s.query(Note).all()) == 1
    st = s.stats()
    assert (st.round_trips, st.flushes, st.queries, st.requests) == (1, 1, 2, 3)
