"""Concurrency: optimistic concurrency with ``field(version=True)``, and sessions
on many threads sharing one client.

A versioned update or delete is conditional on the version loaded and bumps it;
a lost race raises StaleDocumentError naming the documents, and nothing of that
flush is silently skipped. The load tests run 8 threads, each with its own
session on one shared SecantusDB client, and count every increment.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import bson
import pymongo
import pytest

from uow import Document, FlushError, StaleDocumentError, TransactionError, field
from uow._state import ObjectState
from uow.session import FlushResult, Session

from ._support import Sessions, insert_raw, sessions_on, stored, stored_one

PERSISTENT = ObjectState.PERSISTENT
DELETED = ObjectState.DELETED

THREADS = 8
INCREMENTS = 500
#: The first backoff after a lost race; it doubles with each one in a row.
BACKOFF_S = 0.003


class CcVersioned(Document):
    __collection__ = "versioned"

    name: str
    n: int = 0
    version: int = field(default=0, version=True)


class CcCounter(Document):
    __collection__ = "counters"

    hits: int = field(default=0, on_update="$inc")


class CcPlain(Document):
    __collection__ = "plain"

    name: str


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


def _seed(db: Any, *docs: Document) -> None:
    with Session(db) as seed:
        seed.add_all(docs)


# ---------------------------------------------------------------- lost races


def test_two_sessions_update_one_versioned_document_and_exactly_one_wins(
    sessions: Sessions,
) -> None:
    """On every lane, with the lane's default (a transaction per commit where
    there are transactions)."""
    db = sessions.db
    doc = CcVersioned(name="start")
    _seed(db, doc)
    first, second = sessions.open(), sessions.open()
    mine, theirs = first.get(CcVersioned, doc.id), second.get(CcVersioned, doc.id)
    assert mine is not None and theirs is not None
    mine.name = "first"
    theirs.name = "second"
    first.commit()
    with pytest.raises(StaleDocumentError) as caught:
        second.commit()
    error = caught.value
    assert error.documents == [theirs]
    assert repr(theirs.id) in str(error) and "CcVersioned" in str(error)
    assert error.transaction_aborted is second.transactional
    assert stored_one(db, "versioned", doc.id) == {
        "_id": doc.id,
        "name": "first",
        "n": 0,
        "version": 1,
    }
    assert theirs.version == 0 and second.is_dirty(theirs)
    # Reload and apply the change again: it lands on top of the winner's.
    second.refresh(theirs)
    assert theirs.name == "first" and theirs.version == 1
    theirs.name = "second"
    second.commit()
    assert stored_one(db, "versioned", doc.id)["version"] == 2  # type: ignore[index]


@pytest.mark.transactions
def test_two_open_transactions_on_one_versioned_document(sessions: Sessions) -> None:
    """Both flush before either commits: the second write conflicts
    (TransientTransactionError) and its transaction is aborted; once the first
    commits, running the second again finds the version changed."""
    db = sessions.db
    doc = CcVersioned(name="start")
    _seed(db, doc)
    first, second = sessions.open(), sessions.open()
    mine, theirs = first.get(CcVersioned, doc.id), second.get(CcVersioned, doc.id)
    assert mine is not None and theirs is not None
    mine.name = "first"
    first.flush()
    theirs.name = "second"
    with pytest.raises(TransactionError) as conflict:
        with second.transaction():
            second.flush()
    assert conflict.value.retryable
    first.commit()
    theirs.name = "second"  # the block rolled back: the change is made again
    with pytest.raises(StaleDocumentError):
        second.commit()
    assert stored_one(db, "versioned", doc.id)["name"] == "first"  # type: ignore[index]


def test_a_lost_race_in_a_batch_without_a_transaction_skips_nothing_silently(
    sessions: Sessions,
) -> None:
    """Three versioned updates, the middle one stale, then a delete batch: the
    other two updates landed; the stale one and the delete (not sent) stay
    queued, and the error says which is which."""
    db = sessions.db
    a, b, c = (CcVersioned(name=n) for n in "abc")
    gone = CcPlain(name="gone")
    _seed(db, a, b, c, gone)
    other = sessions.open(transactional=False)
    theirs = other.get(CcVersioned, b.id)
    assert theirs is not None
    s = sessions.open(transactional=False)
    docs = [s.get(CcVersioned, x.id) for x in (a, b, c)]
    doomed = s.get(CcPlain, gone.id)
    assert doomed is not None and all(d is not None for d in docs)
    mine_a, mine_b, mine_c = docs  # type: ignore[misc]
    theirs.n = 99
    other.flush()
    for doc in docs:
        doc.n = 1  # type: ignore[union-attr]
    s.delete(doomed)
    with pytest.raises(StaleDocumentError) as caught:
        s.flush()
    error = caught.value
    assert error.documents == [mine_b]
    assert error.applied == [mine_a, mine_c]
    assert error.not_applied == [mine_b, doomed]
    assert "1 other" not in str(error) and "2 other write(s) of this batch landed" in str(error)
    assert [mine_a.version, mine_b.version, mine_c.version] == [1, 0, 1]
    assert s.is_dirty(mine_b) and not s.is_dirty(mine_a)
    assert s.state(doomed) is DELETED
    rows = {row["name"]: (row["n"], row["version"]) for row in stored(db, "versioned")}
    assert rows == {"a": (1, 1), "b": (99, 1), "c": (1, 1)}
    assert stored(db, "plain") != []
    s.refresh(mine_b)
    mine_b.n += 1
    assert s.flush() == FlushResult(updated=1, deleted=1, round_trips=2)
    assert stored_one(db, "versioned", b.id)["n"] == 100  # type: ignore[index]
    assert stored(db, "plain") == []


@pytest.mark.transactions
def test_a_lost_race_in_a_transaction_undoes_the_whole_flush(sessions: Sessions) -> None:
    db = sessions.db
    a, b = CcVersioned(name="a"), CcVersioned(name="b")
    _seed(db, a, b)
    s = sessions.open()
    mine_a, mine_b = s.get(CcVersioned, a.id), s.get(CcVersioned, b.id)
    assert mine_a is not None and mine_b is not None
    with Session(db) as other:
        theirs = other.get(CcVersioned, b.id)
        assert theirs is not None
        theirs.n = 99
    new = CcPlain(name="new")
    s.add(new)
    mine_a.n = 1
    mine_b.n = 1
    with pytest.raises(StaleDocumentError) as caught:
        s.flush()
    error = caught.value
    assert error.transaction_aborted and error.applied == []
    assert error.documents == [mine_b]
    assert set(map(id, error.not_applied)) == {id(new), id(mine_a), id(mine_b)}
    assert [mine_a.version, mine_b.version] == [0, 0]
    assert stored(db, "plain") == []
    assert {r["name"]: r["n"] for r in stored(db, "versioned")} == {"a": 0, "b": 99}


def test_a_stale_versioned_delete_is_refused(sessions: Sessions) -> None:
    db = sessions.db
    doc = CcVersioned(name="x")
    _seed(db, doc)
    s = sessions.open()
    mine = s.get(CcVersioned, doc.id)
    assert mine is not None
    with Session(db) as other:
        theirs = other.get(CcVersioned, doc.id)
        assert theirs is not None
        theirs.n = 5
    s.delete(mine)
    with pytest.raises(StaleDocumentError):
        s.commit()
    assert stored_one(db, "versioned", doc.id) is not None


def test_an_update_of_a_document_deleted_meanwhile_is_a_lost_race(sessions: Sessions) -> None:
    """Not versioned, but the update matched nothing: not silently skipped."""
    db = sessions.db
    doc = CcPlain(name="x")
    _seed(db, doc)
    s = sessions.open()
    mine = s.get(CcPlain, doc.id)
    assert mine is not None
    db["plain"].delete_one({"_id": doc.id})
    mine.name = "y"
    with pytest.raises(StaleDocumentError) as caught:
        s.commit()
    assert caught.value.documents == [mine]


def test_a_stored_document_without_the_version_key_is_matched_by_its_absence(
    sessions: Sessions,
) -> None:
    db = sessions.db
    (id_,) = insert_raw(db, "versioned", [{"name": "legacy", "n": 0}])
    s = sessions.open()
    doc = s.get(CcVersioned, id_)
    assert doc is not None and doc.version == 0
    doc.n = 1
    s.commit()
    assert stored_one(db, "versioned", id_) == {"_id": id_, "name": "legacy", "n": 1, "version": 1}
    db["versioned"].update_one({"_id": id_}, {"$unset": {"version": ""}})
    other = sessions.open()
    stale = other.get(CcVersioned, id_)
    assert stale is not None
    db["versioned"].update_one({"_id": id_}, {"$set": {"version": 7}})
    stale.n = 2
    with pytest.raises(StaleDocumentError):
        other.commit()


# ------------------------------------------------------------------------ load


def _run_threads(work: Callable[[int], None]) -> float:
    """Run ``work(i)`` on THREADS threads at once; re-raise the first failure."""
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.perf_counter() - began
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    if errors:
        raise errors[0]
    return elapsed


def test_load_concurrent_inc_counters_lose_nothing(
    secantus_server: Any, secantus_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """8 threads, each with its own session on one shared client, each flushing
    500 increments of one ``$inc`` counter: exactly 4,000 counted."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        secantus_server.uri, retryWrites=False, maxPoolSize=THREADS
    )
    db = client[secantus_db.name]
    counter_id = bson.ObjectId()
    _seed(db, CcCounter(id=counter_id))

    def work(_: int) -> None:
        with Session(db, transactional=False) as s:
            counter = s.get(CcCounter, counter_id)
            assert counter is not None
            for _ in range(INCREMENTS):
                counter.hits += 1
                s.flush()

    try:
        elapsed = _run_threads(work)
        assert stored_one(db, "counters", counter_id) == {
            "_id": counter_id,
            "hits": THREADS * INCREMENTS,
        }
    finally:
        client.close()
    with capsys.disabled():
        print(f"\n$inc load: {THREADS * INCREMENTS} increments in {elapsed:.2f} s")


def test_load_versioned_read_modify_write_loses_no_update(
    secantus_server: Any, secantus_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same with a plain field read, incremented in Python and written back:
    only the version guards it. A lost race raises StaleDocumentError; the
    thread reloads and tries again. Exactly 4,000 increments survive."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        secantus_server.uri, retryWrites=False, maxPoolSize=THREADS
    )
    db = client[secantus_db.name]
    doc_id = bson.ObjectId()
    _seed(db, CcVersioned(id=doc_id, name="shared"))
    conflicts = [0] * THREADS

    def work(i: int) -> None:
        with Session(db, transactional=False) as s:
            doc = s.get(CcVersioned, doc_id)
            assert doc is not None
            done = in_a_row = 0
            while done < INCREMENTS:
                doc.n = doc.n + 1  # read, modify, write
                try:
                    s.flush()
                except StaleDocumentError as exc:
                    assert exc.documents == [doc] and not exc.applied
                    conflicts[i] += 1
                    in_a_row += 1
                    # Back off (jittered, growing) so the threads take turns.
                    time.sleep(random.uniform(0, BACKOFF_S * 2 ** min(in_a_row, 6)))
                    s.refresh(doc)
                else:
                    done += 1
                    in_a_row = 0

    try:
        elapsed = _run_threads(work)
        final = stored_one(db, "versioned", doc_id)
    finally:
        client.close()
    assert final is not None
    assert final["n"] == THREADS * INCREMENTS
    assert final["version"] == THREADS * INCREMENTS
    assert sum(conflicts) > 0  # the races happened, and every one was caught
    with capsys.disabled():
        print(
            f"\nversioned load: {THREADS * INCREMENTS} increments, "
            f"{sum(conflicts)} conflicts retried, in {elapsed:.2f} s"
        )


def test_flush_errors_are_flush_errors() -> None:
    """StaleDocumentError is a FlushError: one ``except`` catches every failed flush."""
    assert issubclass(StaleDocumentError, FlushError)
