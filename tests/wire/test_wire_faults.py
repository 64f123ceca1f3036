"""Wire faults a real server will not produce on demand, scripted with mockupdb.

Each test plays the server: it receives the commands uow sends and chooses the
reply (a hang-up after the server "applied" part of a batch, a write-concern
error, an ``UnknownTransactionCommitResult`` on commit). Each states what the
user is told and proves, by the commands the server received and by a second
flush, that no change is lost or applied twice.

The client calls run on a worker thread (``_call``) while the test answers on its
own; see the mockupdb traps in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pymongo
import pytest

from uow import Document, FlushError, TransactionError, field
from uow._state import ObjectState
from uow.session import FlushResult, Session

if TYPE_CHECKING:
    from mockupdb import MockupDB, Request

PENDING = ObjectState.PENDING
PERSISTENT = ObjectState.PERSISTENT

DB = "shop"


class WfItem(Document):
    __collection__ = "items"

    name: str
    n: int = 0


class WfCounter(Document):
    __collection__ = "counters"

    hits: int = field(default=0, on_update="$inc")


class WfVersioned(Document):
    __collection__ = "versioned"

    name: str
    version: int = field(default=0, version=True)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def _call(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    return pool.submit(fn, *args)


def _next(server: MockupDB, name: str) -> Request:
    """The next command the client sends; it must be ``name``."""
    request = server.receives(timeout=5)
    assert request.command_name == name, request
    return request


def _cursor(collection: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cursor": {"id": 0, "ns": f"{DB}.{collection}", "firstBatch": docs}, "ok": 1}


def _stored_flush(server: MockupDB, pool: ThreadPoolExecutor, s: Session) -> None:
    """Flush what is queued, the server accepting every insert."""
    future = _call(pool, s.flush)
    request = _next(server, "insert")
    request.ok(n=len(request["documents"]))
    future.result(timeout=5)


def _assert_nothing_sent(server: MockupDB) -> None:
    assert not server.got(timeout=0.3), "the client sent a command"


# --------------------------------------------------- lost connection, no transaction


def test_hang_up_after_half_an_insert_is_settled_by_the_next_flush(
    mock_server: MockupDB, mock_client: pymongo.MongoClient[Any], pool: ThreadPoolExecutor
) -> None:
    """Without a transaction, retryable writes off: the connection drops after the
    server stored the first two of four documents.

    The user is told: FlushError, "the outcome is unknown"; every document is still
    PENDING. The next flush reads back which ids are stored (one find), marks those
    two written, and inserts only the other two: nothing is lost, nothing is sent
    twice (a blind re-send would have hit duplicate keys)."""
    s = Session(mock_client[DB], transactional=False)
    items = [WfItem(name=f"i{k}") for k in range(4)]
    s.add_all(items)
    ids = [item.id for item in items]

    future = _call(pool, s.flush)
    insert = _next(mock_server, "insert")
    sent = insert["documents"]
    assert [doc["_id"] for doc in sent] == ids
    insert.hangup()  # the server applied sent[:2], then the connection died
    error = future.exception(timeout=5)
    assert isinstance(error, FlushError)
    assert "outcome is unknown" in str(error)
    assert isinstance(error.cause, pymongo.errors.AutoReconnect)
    assert error.applied == [] and error.not_applied == [] and error.in_doubt == items
    assert [s.state(item) for item in items] == [PENDING] * 4

    future = _call(pool, s.flush)
    find = _next(mock_server, "find")
    assert find["filter"] == {"_id": {"$in": ids}}
    find.reply(_cursor("items", sent[:2]))
    insert = _next(mock_server, "insert")
    assert [doc["_id"] for doc in insert["documents"]] == ids[2:]
    insert.ok(n=2)
    assert future.result(timeout=5) == FlushResult(inserted=2, round_trips=1)
    assert [s.state(item) for item in items] == [PERSISTENT] * 4
    assert s.flush() == FlushResult()  # nothing left: no command at all
    _assert_nothing_sent(mock_server)
    s.close()


def test_a_hang_up_is_retried_once_by_pymongo_with_retryable_writes(
    mock_server: MockupDB, pool: ThreadPoolExecutor
) -> None:
    """With retryable writes on (pymongo's default, and uow's in production), the
    driver sends the very same command again, with the same session id and
    txnNumber: a real server recognises it and applies each write once.

    The user is told nothing: the flush succeeds."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        mock_server.uri,
        replicaSet="rs0",
        retryWrites=True,
        serverSelectionTimeoutMS=5000,
        socketTimeoutMS=10_000,
    )
    try:
        s = Session(client[DB], transactional=False)
        items = [WfItem(name=f"i{k}") for k in range(4)]
        s.add_all(items)
        future = _call(pool, s.flush)
        first = _next(mock_server, "insert")
        first.hangup()
        retry = _next(mock_server, "insert")
        assert retry["lsid"] == first["lsid"]
        assert retry["txnNumber"] == first["txnNumber"]
        assert retry["documents"] == first["documents"]
        retry.ok(n=4)
        assert future.result(timeout=5) == FlushResult(inserted=4, round_trips=1)
        assert [s.state(item) for item in items] == [PERSISTENT] * 4
        s.close()
    finally:
        client.close()


def test_an_unknown_inc_is_never_sent_twice(
    mock_server: MockupDB, mock_client: pymongo.MongoClient[Any], pool: ThreadPoolExecutor
) -> None:
    """Without a transaction: the connection drops after the server applied the
    first two of four ``$inc`` updates.

    uow cannot tell from the documents whether an unversioned ``$inc`` landed, so
    the next flush refuses (FlushError, nothing sent) instead of counting twice.
    The user refreshes the documents, sees which increments are there, and
    applies the missing ones: each counter ends up incremented exactly once."""
    s = Session(mock_client[DB], transactional=False)
    counters = [WfCounter() for _ in range(4)]
    s.add_all(counters)
    _stored_flush(mock_server, pool, s)

    for counter in counters:
        counter.hits += 1
    future = _call(pool, s.flush)
    update = _next(mock_server, "update")
    assert [u["u"] for u in update["updates"]] == [{"$inc": {"hits": 1}}] * 4
    update.hangup()  # applied to counters[:2]
    error = future.exception(timeout=5)
    assert isinstance(error, FlushError) and "outcome is unknown" in str(error)
    assert all(s.is_dirty(counter) for counter in counters)

    future = _call(pool, s.flush)
    refused = future.exception(timeout=5)
    assert isinstance(refused, FlushError)
    assert "cannot be checked" in str(refused) and "Nothing was sent" in str(refused)
    assert refused.documents == counters
    _assert_nothing_sent(mock_server)

    for position, counter in enumerate(counters):
        future = _call(pool, s.refresh, counter)
        find = _next(mock_server, "find")
        find.reply(_cursor("counters", [{"_id": counter.id, "hits": 1 if position < 2 else 0}]))
        future.result(timeout=5)
    assert [counter.hits for counter in counters] == [1, 1, 0, 0]
    for counter in counters[2:]:
        counter.hits += 1  # the increments that were missing
    future = _call(pool, s.flush)
    update = _next(mock_server, "update")
    assert [u["q"]["_id"] for u in update["updates"]] == [c.id for c in counters[2:]]
    assert [u["u"] for u in update["updates"]] == [{"$inc": {"hits": 1}}] * 2
    update.ok(n=2, nModified=2)
    assert future.result(timeout=5) == FlushResult(updated=2, round_trips=1)
    s.close()


def test_an_unknown_versioned_update_is_read_back_not_sent_twice(
    mock_server: MockupDB, mock_client: pymongo.MongoClient[Any], pool: ThreadPoolExecutor
) -> None:
    """A versioned document tells: the next flush reads the versions back, adopts
    the two updates that landed (version 1 stored) and re-sends the other two,
    still conditional on the version loaded."""
    s = Session(mock_client[DB], transactional=False)
    docs = [WfVersioned(name=f"v{k}") for k in range(4)]
    s.add_all(docs)
    _stored_flush(mock_server, pool, s)

    for doc in docs:
        doc.name += "!"
    future = _call(pool, s.flush)
    update = _next(mock_server, "update")
    # Version 0 is also the version of a document stored without the key.
    first_version = {"$in": [0, None]}
    assert [u["q"]["version"] for u in update["updates"]] == [first_version] * 4
    update.hangup()
    assert isinstance(future.exception(timeout=5), FlushError)
    assert [doc.version for doc in docs] == [0] * 4  # not known to be written

    future = _call(pool, s.flush)
    find = _next(mock_server, "find")
    find.reply(
        _cursor(
            "versioned",
            [{"_id": d.id, "name": d.name, "version": 1} for d in docs[:2]]
            + [{"_id": d.id, "name": d.name[:-1], "version": 0} for d in docs[2:]],
        )
    )
    update = _next(mock_server, "update")
    assert [u["q"] for u in update["updates"]] == [
        {"_id": d.id, "version": first_version} for d in docs[2:]
    ]
    update.ok(n=2, nModified=2)
    assert future.result(timeout=5) == FlushResult(updated=2, round_trips=1)
    assert [doc.version for doc in docs] == [1] * 4
    assert not any(s.is_dirty(doc) for doc in docs)
    s.close()


# ---------------------------------------------------- lost connection, in a transaction


def test_hang_up_in_a_transaction_aborts_it_and_the_retry_writes_everything_once(
    mock_server: MockupDB, mock_client: pymongo.MongoClient[Any], pool: ThreadPoolExecutor
) -> None:
    """In a transaction: the connection drops after the server applied half of
    the insert. Whatever it applied belongs to a transaction that is aborted
    (uow sends abortTransaction) and can never commit.

    The user is told: FlushError with ``transaction_aborted``, the driver's
    TransientTransactionError as the cause; every document is PENDING again.
    Committing again sends all four in a new transaction (a higher txnNumber),
    committed once."""
    s = Session(mock_client[DB])
    assert s.transactional
    items = [WfItem(name=f"i{k}") for k in range(4)]
    s.add_all(items)

    future = _call(pool, s.flush)
    insert = _next(mock_server, "insert")
    assert insert["startTransaction"] is True and insert["autocommit"] is False
    first_txn = insert["txnNumber"]
    insert.hangup()
    abort = _next(mock_server, "abortTransaction")
    assert abort["txnNumber"] == first_txn
    abort.ok()
    error = future.exception(timeout=5)
    assert isinstance(error, FlushError) and error.transaction_aborted
    assert error.cause is not None
    assert error.cause.has_error_label("TransientTransactionError")  # type: ignore[attr-defined]
    assert [s.state(item) for item in items] == [PENDING] * 4

    future = _call(pool, s.commit)
    insert = _next(mock_server, "insert")
    assert insert["startTransaction"] is True
    assert insert["txnNumber"] > first_txn
    assert [doc["_id"] for doc in insert["documents"]] == [item.id for item in items]
    insert.ok(n=4)
    commit = _next(mock_server, "commitTransaction")
    assert commit["txnNumber"] == insert["txnNumber"]
    commit.ok()
    future.result(timeout=5)
    assert [s.state(item) for item in items] == [PERSISTENT] * 4
    s.close()


# -------------------------------------------------------------------- write concern


def test_a_write_concern_error_marks_the_batch_written_and_keeps_the_rest_queued(
    mock_server: MockupDB, mock_client: pymongo.MongoClient[Any], pool: ThreadPoolExecutor
) -> None:
    """The server applied the insert but could not satisfy its write concern.

    The user is told: FlushError naming the four documents as applied, its
    ``writeConcernErrors`` in the cause. They are PERSISTENT and never sent
    again; the update batch after it was not sent and stays queued, and the next
    flush sends only that."""
    s = Session(mock_client[DB], transactional=False)
    old = WfItem(name="old")
    s.add(old)
    _stored_flush(mock_server, pool, s)

    items = [WfItem(name=f"i{k}") for k in range(4)]
    s.add_all(items)
    old.n = 5
    future = _call(pool, s.flush)
    insert = _next(mock_server, "insert")
    insert.ok(
        n=4,
        writeConcernError={
            "code": 64,
            "codeName": "WriteConcernTimeout",
            "errmsg": "waiting for replication timed out",
            "errInfo": {"wtimeout": True},
        },
    )
    error = future.exception(timeout=5)
    assert isinstance(error, FlushError)
    assert "write concern was not satisfied" in str(error)
    assert error.applied == items
    assert error.not_applied == [old]
    assert isinstance(error.cause, pymongo.errors.BulkWriteError)
    assert error.cause.details["writeConcernErrors"][0]["code"] == 64
    assert [s.state(item) for item in items] == [PERSISTENT] * 4
    assert s.is_dirty(old)

    future = _call(pool, s.flush)
    update = _next(mock_server, "update")
    assert [u["q"]["_id"] for u in update["updates"]] == [old.id]
    update.ok(n=1, nModified=1)
    assert future.result(timeout=5) == FlushResult(updated=1, round_trips=1)
    s.close()


# -------------------------------------------------------------- unknown commit result


def _unknown_commit(request: Request) -> None:
    request.command_err(
        code=64,
        errmsg="waiting for replication timed out",
        codeName="WriteConcernTimeout",
        errorLabels=["UnknownTransactionCommitResult"],
    )


def _store_counter_in_a_transaction(
    server: MockupDB, pool: ThreadPoolExecutor, s: Session
) -> WfCounter:
    counter = WfCounter()
    s.add(counter)
    future = _call(pool, s.commit)
    _next(server, "insert").ok(n=1)
    _next(server, "commitTransaction").ok()
    future.result(timeout=5)
    return counter


def test_an_unknown_commit_result_is_retried_and_commits_once(
    mock_server: MockupDB, mock_client: pymongo.MongoClient[Any], pool: ThreadPoolExecutor
) -> None:
    """commitTransaction answers UnknownTransactionCommitResult: uow sends it again
    (committing twice is safe: the server commits a transaction once).

    The user is told nothing: commit() returns. The writes were sent once."""
    s = Session(mock_client[DB])
    counter = _store_counter_in_a_transaction(mock_server, pool, s)
    counter.hits += 1
    item = WfItem(name="new")
    s.add(item)

    future = _call(pool, s.commit)
    insert = _next(mock_server, "insert")
    insert.ok(n=1)
    update = _next(mock_server, "update")
    assert update["updates"][0]["u"] == {"$inc": {"hits": 1}}
    update.ok(n=1, nModified=1)
    first = _next(mock_server, "commitTransaction")
    _unknown_commit(first)
    second = _next(mock_server, "commitTransaction")
    assert second["txnNumber"] == first["txnNumber"] == insert["txnNumber"]
    second.ok()
    future.result(timeout=5)
    assert s.state(item) is PERSISTENT and not s.is_dirty(counter)
    assert s.flush() == FlushResult()
    _assert_nothing_sent(mock_server)
    s.close()


@pytest.mark.parametrize("committed", [True, False], ids=["had-committed", "had-not"])
def test_an_unknown_commit_outcome_past_the_time_limit_is_settled_by_the_next_flush(
    mock_server: MockupDB,
    mock_client: pymongo.MongoClient[Any],
    pool: ThreadPoolExecutor,
    committed: bool,
) -> None:
    """The commit's outcome stays unknown past ``transaction_retry_s``.

    The user is told: TransactionError (not retryable) saying the outcome is
    unknown; the transaction's changes are queued again, in doubt. The next flush
    reads back the inserted document: if it is stored the transaction committed,
    so everything in it (the ``$inc`` too, which alone could not be checked) is
    marked written and nothing is sent; if not, all of it is sent again, in a new
    transaction. Either way each change is applied once."""
    s = Session(mock_client[DB], transaction_retry_s=0)
    counter = _store_counter_in_a_transaction(mock_server, pool, s)
    counter.hits += 1
    item = WfItem(name="new")
    s.add(item)

    future = _call(pool, s.commit)
    _next(mock_server, "insert").ok(n=1)
    _next(mock_server, "update").ok(n=1, nModified=1)
    _unknown_commit(_next(mock_server, "commitTransaction"))
    error = future.exception(timeout=5)
    assert isinstance(error, TransactionError) and not error.retryable
    assert "outcome of commitTransaction is unknown" in str(error)
    assert s.state(item) is PENDING and s.is_dirty(counter)

    future = _call(pool, s.commit)
    find = _next(mock_server, "find")
    assert find["filter"] == {"_id": {"$in": [item.id]}}
    find.reply(_cursor("items", [{"_id": item.id, "name": "new", "n": 0}] if committed else []))
    if not committed:
        insert = _next(mock_server, "insert")
        assert insert["startTransaction"] is True
        assert [doc["_id"] for doc in insert["documents"]] == [item.id]
        insert.ok(n=1)
        update = _next(mock_server, "update")
        assert update["updates"][0]["u"] == {"$inc": {"hits": 1}}
        update.ok(n=1, nModified=1)
        _next(mock_server, "commitTransaction").ok()
    future.result(timeout=5)
    _assert_nothing_sent(mock_server)
    assert s.state(item) is PERSISTENT
    assert counter.hits == 1 and not s.is_dirty(counter)
    s.close()


def test_a_document_inserted_and_incremented_in_a_transaction_of_unknown_outcome(
    mock_server: MockupDB, mock_client: pymongo.MongoClient[Any], pool: ThreadPoolExecutor
) -> None:
    """Inserted in one flush, incremented in the next, the same transaction; its
    commit's outcome stays unknown. The next flush finds the document stored: the
    transaction committed, so the insert and the ``$inc`` both landed, and
    nothing is sent again (the increment counts once)."""
    s = Session(mock_client[DB], transaction_retry_s=0)
    counter = WfCounter()
    s.add(counter)
    future = _call(pool, s.flush)
    _next(mock_server, "insert").ok(n=1)
    future.result(timeout=5)
    counter.hits += 1
    future = _call(pool, s.commit)
    update = _next(mock_server, "update")
    assert update["updates"][0]["u"] == {"$inc": {"hits": 1}}
    update.ok(n=1, nModified=1)
    _unknown_commit(_next(mock_server, "commitTransaction"))
    assert isinstance(future.exception(timeout=5), TransactionError)
    assert s.state(counter) is PENDING

    future = _call(pool, s.flush)
    _next(mock_server, "find").reply(_cursor("counters", [{"_id": counter.id, "hits": 1}]))
    assert future.result(timeout=5) == FlushResult()
    _assert_nothing_sent(mock_server)
    assert s.state(counter) is PERSISTENT and not s.is_dirty(counter)
    assert counter.hits == 1
    s.close()
