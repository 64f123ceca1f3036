"""Session options: max_requests, echo, concerns, read preference, no_tracking,
autoflush, cache_size."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from pymongo import ReadPreference, WriteConcern
from pymongo.read_concern import ReadConcern

import uow
from uow import Session

from ._models import Acct, Note


def stored(db: Any, cls: type, oid: Any) -> Any:
    return db[cls._uow_meta.collection].find_one({"_id": oid})


# ------------------------------------------------------------------ max_requests


def test_max_requests_refuses_the_one_over_the_limit(
    secantus_listened_db: Any, command_log: Any
) -> None:
    s = Session(secantus_listened_db, max_requests=3, transactional=False)
    for _ in range(3):
        s.count(Acct)
    n_sent = len(command_log)
    with pytest.raises(uow.TooManyRequests) as info:
        s.count(Acct)
    assert "3" in str(info.value)
    assert len(command_log) == n_sent  # the refused command was not sent
    assert s.stats().requests == 3


def test_max_requests_counts_transaction_commands_and_cleanup_allowed(
    secantus_listened_db: Any, command_log: Any
) -> None:
    s = Session(secantus_listened_db, max_requests=1)
    a = Acct(name="a")
    s.add(a)
    s.flush()  # 1: the insert that opens the transaction
    with pytest.raises(uow.TooManyRequests):
        s.commit()  # commitTransaction would be the 2nd
    assert "commitTransaction" not in command_log.names()
    assert stored(secantus_listened_db, Acct, a.id) is None
    s.rollback()  # clean-up is never refused
    assert "abortTransaction" in command_log.names()
    s.close()
    assert stored(secantus_listened_db, Acct, a.id) is None


def test_max_requests_counts_cursor_batches(secantus_listened_db: Any, command_log: Any) -> None:
    secantus_listened_db[Note._uow_meta.collection].insert_many(
        [{"text": str(i)} for i in range(150)]
    )
    s = Session(secantus_listened_db, max_requests=1, transactional=False)
    with pytest.raises(uow.TooManyRequests):
        list(s.query(Note))  # find + getMore
    assert "getMore" not in command_log.names()


def test_max_requests_flush_refused_keeps_queue(db: Any) -> None:
    s = Session(db, max_requests=1, transactional=False)
    a, n = Acct(name="a"), Note(text="n")
    s.add_all([a, n])
    with pytest.raises(uow.TooManyRequests):
        s.flush()  # two inserts needed
    # nothing queued is dropped: the one not sent is still pending
    assert s.state(n) is uow.ObjectState.PENDING or s.state(a) is uow.ObjectState.PENDING
    assert db[Note._uow_meta.collection].count_documents({}) == 0


def test_max_requests_none_is_unlimited(db: Any) -> None:
    s = Session(db, max_requests=None)
    for _ in range(30):
        s.count(Acct)
    assert s.stats().requests == 30


def test_max_requests_via_connect(embedded_uri: str) -> None:
    with (
        pytest.raises(uow.TooManyRequests),
        Session.connect("a9mr", embedded_uri, max_requests=2) as s,
    ):
        for _ in range(3):
            s.count(Acct)


# --------------------------------------------------------------------------- echo


def test_echo_logs_every_command_at_info(
    secantus_listened_db: Any, command_log: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uow")
    s = Session(secantus_listened_db, echo=True)
    s.add(Acct(name="a"))
    s.flush()
    s.count(Acct)
    s.commit()
    records = [r for r in caplog.records if r.name.startswith("uow") and r.levelno == logging.INFO]
    names = command_log.names()
    assert len(names) >= 3
    text = "\n".join(r.getMessage() for r in records)
    for name in ("insert", "commitTransaction"):
        assert name in text, text
    assert len(records) >= len(names), (names, text)


def test_echo_writes_to_stderr(db: Any, capfd: pytest.CaptureFixture[str]) -> None:
    s = Session(db, echo=True)
    s.add(Note(text="hello"))
    s.flush()
    err = capfd.readouterr().err
    assert "insert" in err


def test_no_echo_logs_nothing_at_info(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uow")
    s = Session(db)
    s.add(Note(text="q"))
    s.flush()
    s.count(Note)
    assert [
        r for r in caplog.records if r.levelno == logging.INFO and "insert" in r.getMessage()
    ] == []


# --------------------------------------------------------------- concerns / prefs


def test_write_concern_is_sent(secantus_listened_db: Any, command_log: Any) -> None:
    s = Session(
        secantus_listened_db, transactional=False, write_concern=WriteConcern(w=1, wtimeout=4321)
    )
    s.add(Note(text="x"))
    s.flush()
    (ins,) = command_log.of("insert")
    assert ins.get("writeConcern") == {"w": 1, "wtimeout": 4321}


def test_write_concern_on_commit_in_transaction(
    secantus_listened_db: Any, command_log: Any
) -> None:
    s = Session(secantus_listened_db, write_concern=WriteConcern(w="majority", wtimeout=4321))
    s.add(Note(text="x"))
    s.commit()
    (commit,) = command_log.of("commitTransaction")
    assert commit.get("writeConcern", {}).get("w") == "majority"
    (ins,) = command_log.of("insert")
    assert "writeConcern" not in ins  # not allowed on a statement inside a transaction


def test_read_concern_is_sent(secantus_listened_db: Any, command_log: Any) -> None:
    s = Session(secantus_listened_db, transactional=False, read_concern=ReadConcern("majority"))
    s.count(Note)
    list(s.query(Note))
    finds = command_log.of("find")
    assert finds
    assert finds[-1].get("readConcern", {}).get("level") == "majority"


def test_read_concern_in_transaction(secantus_listened_db: Any, command_log: Any) -> None:
    """SPEC: reads inside a transaction follow the transaction's."""
    s = Session(secantus_listened_db, read_concern=ReadConcern("majority"))
    s.add(Note(text="x"))
    s.flush()  # opens the transaction
    list(s.query(Note))
    s.commit()
    (ins,) = command_log.of("insert")
    assert ins.get("startTransaction") is True
    finds = command_log.of("find")
    assert finds and "readConcern" not in finds[-1]


def test_read_preference_is_sent(secantus_listened_db: Any, command_log: Any) -> None:
    s = Session(
        secantus_listened_db,
        transactional=False,
        read_preference=ReadPreference.SECONDARY_PREFERRED,
    )
    list(s.query(Note))
    finds = command_log.of("find")
    assert finds[-1].get("$readPreference", {}).get("mode") == "secondaryPreferred"


def test_read_preference_with_transaction_reads_follow_transaction(
    secantus_listened_db: Any, command_log: Any
) -> None:
    """A non-primary read preference must not break reads inside a transaction."""
    s = Session(secantus_listened_db, read_preference=ReadPreference.SECONDARY_PREFERRED)
    n = Note(text="x")
    s.add(n)
    s.flush()  # transaction open
    assert [x.text for x in s.query(Note)] == ["x"]
    assert s.count(Note) == 1
    s.commit()
    assert stored(secantus_listened_db, Note, n.id) == {"_id": n.id, "text": "x"}


def test_concern_options_via_connect(secantus_server: Any, secantus_client: Any) -> None:
    s = Session.connect(
        "a9_concerns",
        secantus_server.uri,
        write_concern=WriteConcern(w=1),
        read_concern=ReadConcern("local"),
        read_preference=ReadPreference.PRIMARY_PREFERRED,
    )
    try:
        n = Note(text="x")
        s.add(n)
        s.commit()
        assert s.get(Note, n.id) is n
        assert stored(secantus_client["a9_concerns"], Note, n.id) is not None
    finally:
        s.close()
        secantus_client.drop_database("a9_concerns")


# -------------------------------------------------------------------- no_tracking


def test_no_tracking_loads_untracked(db: Any) -> None:
    oid = (
        db[Acct._uow_meta.collection]
        .insert_one({"name": "a", "balance": 5, "tags": []})
        .inserted_id
    )
    s = Session(db, no_tracking=True)
    one = s.get(Acct, oid)
    two = s.query(Acct).first()
    assert one is not None and two is not None
    assert one is not two
    assert s.stats().identity_map_size == 0
    one.balance = 99
    one.tags.append("x")
    r = s.flush()
    assert r.round_trips == 0
    assert stored(db, Acct, oid) == {"_id": oid, "name": "a", "balance": 5, "tags": []}


def test_no_tracking_update_sends_values_with_set(db: Any) -> None:
    oid = (
        db[Acct._uow_meta.collection]
        .insert_one({"name": "a", "balance": 5, "tags": ["t"], "extra": 1})
        .inserted_id
    )
    s = Session(db, no_tracking=True)
    a = s.get(Acct, oid)
    assert a is not None
    a.balance = 7
    s.update(a)
    s.commit()
    got = stored(db, Acct, oid)
    assert got["balance"] == 7  # absolute, not 5 + 7
    assert got["extra"] == 1


def test_no_tracking_add_and_delete_work(db: Any) -> None:
    s = Session(db, no_tracking=True)
    a = Acct(name="new", balance=3)
    s.add(a)
    s.commit()
    assert stored(db, Acct, a.id) == {"_id": a.id, "name": "new", "balance": 3, "tags": []}
    loaded = s.get(Acct, a.id)
    assert loaded is not None
    s.delete(loaded)
    s.commit()
    assert stored(db, Acct, a.id) is None


# ---------------------------------------------------------------------- autoflush


def test_autoflush_true_query_sees_pending(db: Any) -> None:
    s = Session(db)
    s.add(Note(text="p"))
    assert s.count(Note) == 1
    assert [n.text for n in s.query(Note)] == ["p"]


def test_autoflush_false_query_does_not_flush(db: Any) -> None:
    s = Session(db, autoflush=False, transactional=False)
    n = Note(text="p")
    s.add(n)
    assert s.count(Note) == 0
    assert s.query(Note).all() == []
    assert s.state(n) is uow.ObjectState.PENDING
    assert s.stats().round_trips == 0
    assert stored(db, Note, n.id) is None
    s.flush()
    assert s.count(Note) == 1


def test_autoflush_false_commit_still_flushes(db: Any) -> None:
    s = Session(db, autoflush=False)
    n = Note(text="p")
    s.add(n)
    s.commit()
    assert stored(db, Note, n.id) == {"_id": n.id, "text": "p"}


# --------------------------------------------------------------------- cache_size


def test_cache_size_zero_forgets_unreferenced_clean(db: Any) -> None:
    oid = db[Note._uow_meta.collection].insert_one({"text": "x"}).inserted_id
    s = Session(db, cache_size=0)
    n = s.get(Note, oid)
    assert n is not None
    assert s.get(Note, oid) is n  # still referenced: the one identity
    del n
    gc.collect()
    before = s.stats().queries
    again = s.get(Note, oid)
    assert again is not None
    assert s.stats().queries == before + 1


def test_cache_size_zero_never_loses_dirty(db: Any) -> None:
    oid = (
        db[Acct._uow_meta.collection]
        .insert_one({"name": "a", "balance": 1, "tags": []})
        .inserted_id
    )
    s = Session(db, cache_size=0, transactional=False)
    a = s.get(Acct, oid)
    assert a is not None
    a.tags.append("kept")  # in-place mutation only
    a.balance += 4
    del a
    gc.collect()
    s.flush()
    assert stored(db, Acct, oid) == {"_id": oid, "name": "a", "balance": 5, "tags": ["kept"]}


def test_cache_size_small_lru(db: Any) -> None:
    ids = (
        db[Note._uow_meta.collection].insert_many([{"text": str(i)} for i in range(5)]).inserted_ids
    )
    s = Session(db, cache_size=2)
    for i in ids:
        s.get(Note, i)
    gc.collect()
    assert s.stats().identity_map_size <= 2
    before = s.stats().queries
    s.get(Note, ids[-1])  # most recent: a hit
    assert s.stats().queries == before


def test_cache_size_none_keeps_all(db: Any) -> None:
    ids = (
        db[Note._uow_meta.collection]
        .insert_many([{"text": str(i)} for i in range(50)])
        .inserted_ids
    )
    s = Session(db, cache_size=None)
    for i in ids:
        s.get(Note, i)
    gc.collect()
    before = s.stats().queries
    for i in ids:
        s.get(Note, i)
    assert s.stats().queries == before
    assert s.stats().identity_map_size == 50


def test_echo_one_line_per_command_many_sessions(
    secantus_listened_db: Any, command_log: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    secantus_listened_db[Note._uow_meta.collection].insert_many(
        [{"text": str(i)} for i in range(150)]
    )
    for _ in range(3):
        Session(secantus_listened_db, echo=True).close()
    capfd.readouterr()
    command_log.clear()
    s = Session(secantus_listened_db, echo=True)
    list(s.query(Note))
    s.add(Note(text="q"))
    s.flush()
    s.rollback()
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    names = command_log.names()
    assert names == ["find", "getMore", "insert", "abortTransaction"]
    assert len(err) == len(names), err
    for line, name in zip(err, names, strict=True):
        assert name in line
