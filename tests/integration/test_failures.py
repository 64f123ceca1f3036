"""What a failed flush does: the error (FlushError, DuplicateKeyError), what it
says was and was not applied, what stays queued, and the corrected flush that
finishes the work with nothing stored twice. With and without a transaction.

Tests taking ``db`` run on the mongomock and SecantusDB lanes (with
``transactional=False`` where they are about writing without a transaction);
those marked ``transactions`` only where there are transactions. Faults a real
server produces only on demand (a dropped connection, a write-concern error, a
transient error) come from SecantusDB's fail points (``fsessions``, _faults.py);
tests/wire has those that need a scripted server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from uow import (
    Document,
    DuplicateKeyError,
    FlushError,
    Index,
    TooManyRequests,
    ValidationError,
    field,
)
from uow._state import ObjectState
from uow.session import FlushResult, Session

from ._faults import FIXTURES, Recorder, fail_point
from ._support import Sessions, sessions_on, stored

# The fault fixtures (recorder, faulty, fdb, fsessions), made visible to pytest here.
recorder_fixture, faulty_fixture, fdb_fixture, fsessions_fixture = FIXTURES

PENDING = ObjectState.PENDING
PERSISTENT = ObjectState.PERSISTENT
DELETED = ObjectState.DELETED

WRITE_CONCERN_TIMEOUT = 64
DOCUMENT_VALIDATION_FAILURE = 121


class FlAccount(Document):
    __collection__ = "accounts"
    __indexes__ = [Index("email", unique=True)]

    email: str
    n: int = 0


class FlItem(Document):
    __collection__ = "items"

    name: str
    n: int = 0
    tags: list[str] = field(factory=list)


class FlCounter(Document):
    __collection__ = "counters"

    hits: int = field(default=0, on_update="$inc")


class FlVersioned(Document):
    __collection__ = "versioned"

    name: str
    version: int = field(default=0, version=True)


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


def _emails(db: Any) -> list[str]:
    return sorted(doc["email"] for doc in stored(db, "accounts"))


def _seed_taken(db: Any) -> None:
    """An account with email "taken", stored before the test's session."""
    with Session(db) as seed:
        seed.add(FlAccount(email="taken"))


# --------------------------------------------------------------------- duplicate key


@pytest.mark.transactions
def test_a_duplicate_in_the_middle_of_1000_inserts_in_a_transaction(sessions: Sessions) -> None:
    """Nothing becomes visible, all 1,000 stay queued; fixing the offending
    document, one flush stores all 1,000 exactly once."""
    db = sessions.db
    _seed_taken(db)
    s = sessions.open()
    accounts = [FlAccount(email=f"a{k}") for k in range(1000)]
    accounts[500].email = "taken"
    s.add_all(accounts)
    with pytest.raises(DuplicateKeyError) as caught:
        s.flush()
    error = caught.value
    assert error.document is accounts[500]
    assert "taken" in str(error) and repr(accounts[500].id) in str(error)
    assert error.transaction_aborted and error.applied == []
    assert set(map(id, error.not_applied)) == set(map(id, accounts))
    assert _emails(db) == ["taken"]
    assert {s.state(a) for a in accounts} == {PENDING}

    accounts[500].email = "fixed"
    assert s.flush() == FlushResult(inserted=1000, round_trips=1)
    s.commit()
    rows = stored(db, "accounts")
    assert len(rows) == 1001
    assert len({row["_id"] for row in rows}) == 1001
    assert {row["_id"] for row in rows} >= {a.id for a in accounts}


def test_a_duplicate_in_the_middle_of_1000_inserts_without_a_transaction(
    sessions: Sessions,
) -> None:
    """The 500 before it landed and are clean; it and the 499 after stay queued;
    the corrected flush sends only those 500."""
    db = sessions.db
    _seed_taken(db)
    s = sessions.open(transactional=False)
    accounts = [FlAccount(email=f"a{k}") for k in range(1000)]
    accounts[500].email = "taken"
    s.add_all(accounts)
    with pytest.raises(DuplicateKeyError) as caught:
        s.flush()
    error = caught.value
    assert error.document is accounts[500] and not error.transaction_aborted
    assert error.applied == accounts[:500]
    assert error.not_applied == accounts[500:]
    assert len(stored(db, "accounts")) == 501
    assert [s.state(a) for a in accounts] == [PERSISTENT] * 500 + [PENDING] * 500

    accounts[500].email = "fixed"
    assert s.flush() == FlushResult(inserted=500, round_trips=1)
    rows = stored(db, "accounts")
    assert len(rows) == len({row["_id"] for row in rows}) == 1001


def test_a_write_error_is_mapped_back_across_split_batches(sessions: Sessions) -> None:
    """The server numbers the statements of the whole bulk write; with the plan
    split at maxWriteBatchSize the error still names the right document."""
    db = sessions.db
    s = sessions.open(transactional=False)
    accounts = [FlAccount(email=f"a{k}") for k in range(10)]
    s.add_all(accounts)
    s.flush()
    s._max_batch = 4  # batches [0-3] [4-7] [8-9]
    for position, account in enumerate(accounts):
        account.n = position + 1
    accounts[6].email = "a9"  # refused: a9 is taken (by the last one, not yet changed)
    with pytest.raises(DuplicateKeyError) as caught:
        s.flush()
    error = caught.value
    assert error.document is accounts[6]
    assert error.applied == accounts[:6]  # the first batch, and two of the second
    assert error.not_applied == accounts[6:]  # the rest of it, and the third batch
    assert [s.is_dirty(a) for a in accounts] == [False] * 6 + [True] * 4
    by_email = {row["email"]: row["n"] for row in stored(db, "accounts")}
    assert [by_email[f"a{k}"] for k in range(10)] == [1, 2, 3, 4, 5, 6, 0, 0, 0, 0]
    accounts[6].email = "a6"
    assert s.flush() == FlushResult(updated=4, round_trips=1)
    by_email = {row["email"]: row["n"] for row in stored(db, "accounts")}
    assert [by_email[f"a{k}"] for k in range(10)] == list(range(1, 11))


# --------------------------------------------------------------- another write error


def test_another_write_error_names_its_document_and_what_landed(
    secantus_db: Any,
) -> None:
    """A document refused by the collection's validator: FlushError (not a
    DuplicateKeyError) naming it; the error's ``applied`` is exactly what the
    database holds; a corrected flush stores each document once."""
    secantus_db.create_collection("items", validator={"n": {"$gte": 0}})
    with Session(secantus_db, transactional=False) as s:
        items = [FlItem(name=f"i{k}", n=k) for k in range(3)]
        items[1].n = -1
        s.add_all(items)
        with pytest.raises(FlushError) as caught:
            s.flush()
        error = caught.value
        assert type(error) is FlushError
        assert error.documents == [items[1]]
        assert f"code {DOCUMENT_VALIDATION_FAILURE}" in str(error)
        stored_names = {row["name"] for row in stored(secantus_db, "items")}
        # The server says how many it stored; uow believes it (a server may refuse
        # the whole insert command, as SecantusDB does here, or store the prefix).
        assert {item.name for item in error.applied} == stored_names
        assert [s.state(i) is PERSISTENT for i in items] == [i.name in stored_names for i in items]
        items[1].n = 1
        s.flush()
        assert sorted(row["name"] for row in stored(secantus_db, "items")) == ["i0", "i1", "i2"]

        for item in items:
            item.n += 10
        items[1].n = -5  # an update refused in the middle of the batch
        with pytest.raises(FlushError) as caught:
            s.flush()
        assert caught.value.applied == [items[0]] and caught.value.documents == [items[1]]
        assert caught.value.not_applied == items[1:]
        assert [row["n"] for row in stored(secantus_db, "items")] == [10, 1, 2]
        items[1].n = 11
        s.flush()
        assert [row["n"] for row in stored(secantus_db, "items")] == [10, 11, 12]


# ------------------------------------------------------------------ write concern


def test_a_write_concern_error_keeps_what_was_applied_and_queues_the_rest(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any], recorder: Recorder
) -> None:
    s = fsessions.open(transactional=False)
    old = FlItem(name="old")
    s.add(old)
    s.flush()
    new = [FlItem(name=f"new{k}") for k in range(3)]
    s.add_all(new)
    old.n = 5
    recorder.clear()
    with fail_point(
        faulty,
        ["insert"],
        writeConcernError={"code": WRITE_CONCERN_TIMEOUT, "errmsg": "replication timed out"},
    ):
        with pytest.raises(FlushError, match="write concern was not satisfied") as caught:
            s.flush()
    error = caught.value
    assert error.applied == new and error.not_applied == [old]
    assert [s.state(item) for item in new] == [PERSISTENT] * 3
    assert s.is_dirty(old)
    assert recorder.names() == ["insert"]
    recorder.clear()
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    assert recorder.names() == ["update"]
    rows = stored(fsessions.db, "items")
    assert sorted((r["name"], r["n"]) for r in rows) == [
        ("new0", 0),
        ("new1", 0),
        ("new2", 0),
        ("old", 5),
    ]


# ----------------------------------------------------------------- lost connection


def test_sessions_made_by_connect_keep_pymongos_retryable_writes(secantus_server: Any) -> None:
    """A dropped connection is first pymongo's to retry (once, recognised by the
    server): uow never turns retryable writes off."""
    with Session.connect("uow_retry_writes", secantus_server.uri) as s:
        assert s.database.client.options.retry_writes is True


def test_a_connection_lost_before_the_insert_without_a_transaction(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any], recorder: Recorder
) -> None:
    """The outcome is unknown to uow: everything stays queued, in doubt. The next
    flush reads back which ids are stored (none: the server never ran it) and
    inserts them, once."""
    s = fsessions.open(transactional=False)
    items = [FlItem(name=f"i{k}") for k in range(3)]
    s.add_all(items)
    with fail_point(faulty, ["insert"], closeConnection=True):
        with pytest.raises(FlushError, match="outcome is unknown") as caught:
            s.flush()
    assert isinstance(caught.value.cause, pymongo.errors.AutoReconnect)
    # SPEC: a write whose outcome cannot be known is in in_doubt (still queued).
    assert caught.value.applied == [] and caught.value.not_applied == []
    assert caught.value.in_doubt == items
    assert [s.state(i) for i in items] == [PENDING] * 3
    recorder.clear()
    assert s.flush() == FlushResult(inserted=3, round_trips=1)
    assert recorder.names() == ["find", "insert"]
    assert len(stored(fsessions.db, "items")) == 3


def test_a_connection_lost_in_a_transaction(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    """The transaction is aborted (whatever the server did in it is discarded):
    FlushError with ``transaction_aborted``; a new commit stores everything once."""
    s = fsessions.open()
    items = [FlItem(name=f"i{k}") for k in range(3)]
    s.add_all(items)
    with fail_point(faulty, ["insert"], closeConnection=True):
        with pytest.raises(FlushError) as caught:
            s.flush()
    assert caught.value.transaction_aborted
    cause = caught.value.cause
    assert isinstance(cause, pymongo.errors.ConnectionFailure)
    assert cause.has_error_label("TransientTransactionError")
    assert [s.state(i) for i in items] == [PENDING] * 3
    s.commit()
    assert len(stored(fsessions.db, "items")) == 3


def test_an_inc_whose_outcome_is_unknown_is_refused_until_refreshed(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any], recorder: Recorder
) -> None:
    """Without a transaction, an unversioned $inc cannot be checked: the next
    flush sends nothing and says so; after refresh() the user sees the stored
    value (here: the increment never ran) and applies it once."""
    s = fsessions.open(transactional=False)
    counter, other = FlCounter(), FlItem(name="other")
    s.add_all([counter, other])
    s.flush()
    counter.hits += 1
    with fail_point(faulty, ["update"], closeConnection=True):
        with pytest.raises(FlushError, match="outcome is unknown"):
            s.flush()
    other.n = 1  # other work waits too: nothing is sent while the $inc is in doubt
    recorder.clear()
    with pytest.raises(FlushError, match="cannot be checked") as caught:
        s.flush()
    assert caught.value.documents == [counter]
    assert recorder.names() == []
    s.refresh(counter)
    assert counter.hits == 0
    counter.hits += 1
    assert s.flush() == FlushResult(updated=2, round_trips=2)
    assert [row["hits"] for row in stored(fsessions.db, "counters")] == [1]


def test_rollback_forgets_writes_of_unknown_outcome(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    s = fsessions.open(transactional=False)
    counter = FlCounter()
    s.add(counter)
    s.flush()
    counter.hits += 1
    with fail_point(faulty, ["update"], closeConnection=True):
        with pytest.raises(FlushError):
            s.flush()
    s.rollback()
    assert counter.hits == 0 and not s.has_changes()
    assert s.flush() == FlushResult()


# ------------------------------------------------------------------- request limit


@pytest.mark.transactions
def test_too_many_requests_in_the_middle_of_a_transactional_flush(sessions: Sessions) -> None:
    """The refused command is not sent; the batches before it are written in the
    open transaction, the rest stay queued, and the transaction stays open."""
    s = sessions.open()
    s.ensure_indexes(FlAccount)  # built now: the flush below sends only its writes
    item, account = FlItem(name="a"), FlAccount(email="a@x")
    s.add_all([item, account])
    s.max_requests = s.stats().requests + 1  # room for one write command
    with pytest.raises(TooManyRequests, match="max_requests"):
        s.flush()
    assert s.state(item) is PERSISTENT and s.state(account) is PENDING
    assert stored(sessions.db, "items") == []  # written in the open transaction only
    s.max_requests = None
    s.commit()
    assert [row["name"] for row in stored(sessions.db, "items")] == ["a"]
    assert _emails(sessions.db) == ["a@x"]


# -------------------------------------------------------------- nothing goes missing


def test_a_change_made_while_pending_and_another_after_the_insert_are_both_stored(
    sessions: Sessions,
) -> None:
    s = sessions.open(transactional=False)
    flat = FlVersioned(name="a")  # no mutable field: only assignments mark it
    s.add(flat)
    flat.name = "b"  # while pending: goes with the insert
    s.flush()
    flat.name = "c"  # after the insert: an update
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    assert [row["name"] for row in stored(sessions.db, "versioned")] == ["c"]


# ----------------------------------------------------------------- ValidationError


def test_a_validation_error_at_flush_sends_nothing_and_changes_nothing(
    sessions: Sessions,
) -> None:
    s = sessions.open(transactional=False)
    versioned, item = FlVersioned(name="v"), FlItem(name="i")
    s.add_all([versioned, item])
    s.flush()
    versioned.name = "v2"
    item.tags.append(3)  # type: ignore[arg-type]  # wrong in place: refused at flush
    requests = s.stats().requests
    with pytest.raises(ValidationError, match="tags"):
        s.flush()
    assert s.stats().requests == requests
    assert versioned.version == 0  # not bumped by the flush that sent nothing
    assert s.is_dirty(versioned) and s.is_dirty(item)
    item.tags[0] = "3"
    assert s.flush() == FlushResult(updated=2, round_trips=2)
    assert versioned.version == 1
    assert stored(sessions.db, "versioned")[0]["version"] == 1
