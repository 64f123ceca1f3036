"""Transactions: when one is used, where it begins and ends, the transaction()
block and run_in_transaction() with pymongo's retry rules, the session's
concerns, the driver session every command carries, and ``__shard_key__``.

Tests taking ``db`` and marked ``transactions`` run on every lane with
transactions (SecantusDB, and a real MongoDB when configured); mongomock has
none, so it is not among their lanes. Fault tests use SecantusDB's
``failCommand`` fail points through a client of their own (``fdb``, see
_faults.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pymongo
import pytest
from pymongo.client_session import ClientSession
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from uow import Document, FlushError, Index, TransactionError, field
from uow._state import ObjectState
from uow.session import FlushResult, Session

from ._faults import FIXTURES, Recorder, fail_point
from ._support import Sessions, sessions_on, stored

# The fault fixtures (recorder, faulty, fdb, fsessions), made visible to pytest here.
recorder_fixture, faulty_fixture, fdb_fixture, fsessions_fixture = FIXTURES

if TYPE_CHECKING:
    from pymongo.database import Database

    from tests.conftest import CommandLog

TRANSIENT = ObjectState.TRANSIENT
PENDING = ObjectState.PENDING
PERSISTENT = ObjectState.PERSISTENT
DELETED = ObjectState.DELETED

# failCommand error codes: WriteConflict carries TransientTransactionError;
# WriteConcernTimeout on a commit means its outcome is unknown.
WRITE_CONFLICT = 112
WRITE_CONCERN_TIMEOUT = 64
UNSATISFIABLE_WRITE_CONCERN = 100


class TxItem(Document):
    __collection__ = "items"

    name: str
    n: int = 0


class TxCounter(Document):
    __collection__ = "counters"

    hits: int = field(default=0, on_update="$inc")


class TxAccount(Document):
    __collection__ = "accounts"
    __indexes__ = [Index("email", unique=True)]

    email: str


class TxTenantDoc(Document):
    __collection__ = "tenant_docs"
    __shard_key__ = ("tenant",)

    tenant: str
    body: str = ""


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


def _names(db: Any, collection: str = "items") -> list[str]:
    return sorted(doc["name"] for doc in stored(db, collection))


def _hits(db: Any) -> list[int]:
    return [doc["hits"] for doc in stored(db, "counters")]


# --------------------------------------------------------- when a transaction is used


def test_transactional_none_uses_them_where_the_server_has_them(
    secantus_db: Database[Any], mongomock_db: Any
) -> None:
    with Session(secantus_db) as s:
        assert s.transactional
        assert isinstance(s.driver_session, ClientSession)
    with Session(mongomock_db) as s:
        assert not s.transactional
        assert s.driver_session is None


def test_transactions_demanded_where_there_are_none(
    secantus_db: Database[Any], mongomock_db: Any
) -> None:
    with pytest.raises(TransactionError, match="no transactions"):
        Session(mongomock_db, transactional=True)
    for s in (Session(mongomock_db), Session(secantus_db, transactional=False)):
        with pytest.raises(TransactionError, match=r"transaction\(\)"):
            with s.transaction():
                pass  # pragma: no cover - never entered
        with pytest.raises(TransactionError, match="run_in_transaction"):
            s.run_in_transaction(lambda: None)
        s.close()


def test_a_transaction_begins_at_the_first_flush_and_ends_at_commit(
    secantus_listened_db: Database[Any], command_log: CommandLog, secantus_client: Any
) -> None:
    db = secantus_listened_db
    outside = secantus_client[db.name]
    with Session(db) as s:
        item = TxItem(name="a")
        s.add(item)
        assert command_log.names() == []  # add() sends nothing, begins nothing
        s.flush()
        item.n = 1
        s.flush()
        assert _names(outside) == []  # not visible outside before the commit
        s.commit()
        assert _names(outside) == ["a"]
        item.n = 2
        s.commit()
    insert, update, commit, update2, commit2 = (c.command for c in command_log)
    assert insert["startTransaction"] is True and insert["autocommit"] is False
    assert "startTransaction" not in update and update["txnNumber"] == insert["txnNumber"]
    assert commit["commitTransaction"] == 1 and commit["txnNumber"] == insert["txnNumber"]
    assert update2["startTransaction"] is True
    assert update2["txnNumber"] > insert["txnNumber"] == commit["txnNumber"]
    assert commit2["txnNumber"] == update2["txnNumber"]
    assert command_log.names() == [
        "insert",
        "update",
        "commitTransaction",
        "update",
        "commitTransaction",
    ]


def test_a_commit_with_nothing_written_sends_no_transaction_command(
    secantus_listened_db: Database[Any], command_log: CommandLog
) -> None:
    with Session(secantus_listened_db) as s:
        s.all(TxItem)
        s.commit()
    assert command_log.names() == ["find"]


def test_every_command_of_the_session_carries_its_driver_session(
    secantus_listened_db: Database[Any], command_log: CommandLog
) -> None:
    """Reads, writes, cursor batches, counts, index commands, commits: all carry
    the session's lsid, so the server orders them causally."""
    db = secantus_listened_db
    db["items"].insert_many([{"name": f"n{k}", "n": k} for k in range(150)])
    command_log.clear()
    with Session(db) as s:
        lsid = s.driver_session.session_id
        s.ensure_indexes(TxAccount)
        s.get_indexes(TxAccount)
        assert len(s.all(TxItem)) == 150  # find + getMore
        assert s.count(TxItem, n__gte=10) == 140
        first = s.query(TxItem).sort("n").first()
        assert first is not None
        first.n = -1
        s.add(TxItem(name="new"))
        s.flush()
        s.refresh(first)
        assert s.remove_query(TxItem).filter(n__lt=5).execute() == 6  # -1 and 0..4
        s.commit()
        s.add(TxAccount(email="a@x"))
        s.flush()
        s.rollback()
    names = command_log.names()
    for expected in (
        "createIndexes",
        "listIndexes",
        "find",
        "getMore",
        "aggregate",
        "insert",
        "update",
        "delete",
        "commitTransaction",
        "abortTransaction",
    ):
        assert expected in names, names
    for command in command_log:
        assert command.command.get("lsid") == lsid, command.name


def test_index_commands_run_beside_an_open_transaction(
    secantus_listened_db: Database[Any], command_log: CommandLog
) -> None:
    """MongoDB refuses listIndexes (and most index builds) in a transaction."""
    with Session(secantus_listened_db) as s:
        s.add(TxItem(name="a"))
        s.flush()
        assert s.ensure_indexes(TxAccount) == ["email_1"]
        assert "email_1" in s.get_indexes(TxAccount)
    (list_indexes, *_) = command_log.of("listIndexes")
    assert "txnNumber" not in list_indexes


def test_reads_after_a_write_wait_for_it_causal_consistency(
    secantus_listened_db: Database[Any], command_log: CommandLog
) -> None:
    with Session(secantus_listened_db, transactional=False) as s:
        s.add(TxItem(name="a"))
        s.flush()
        s.count(TxItem)
    aggregate = command_log.of("aggregate")[-1]
    assert "afterClusterTime" in aggregate["readConcern"]


def test_session_concerns_go_to_the_transaction_and_to_plain_commands(
    secantus_listened_db: Database[Any], command_log: CommandLog
) -> None:
    """A transaction's commands must not carry concerns of their own: the
    session's read concern goes on its first command, its write concern on the
    commit. Without a transaction every command carries them."""
    concerns: dict[str, Any] = {
        "write_concern": WriteConcern(w="majority", wtimeout=5000),
        "read_concern": ReadConcern("majority"),
        "read_preference": ReadPreference.SECONDARY_PREFERRED,
    }
    with Session(secantus_listened_db, **concerns) as s:
        s.add(TxItem(name="a"))
        s.flush()
        s.all(TxItem)
    insert, find, commit = (c.command for c in command_log)
    assert insert["readConcern"] == {"level": "majority"} and "writeConcern" not in insert
    assert "readConcern" not in find and "$readPreference" not in find  # the transaction's
    assert commit["writeConcern"] == {"w": "majority", "wtimeout": 5000}

    command_log.clear()
    with Session(secantus_listened_db, transactional=False, **concerns) as s:
        s.add(TxItem(name="b"))
        s.flush()
        s.all(TxItem)
    insert, find = (c.command for c in command_log)
    assert insert["writeConcern"] == {"w": "majority", "wtimeout": 5000}
    assert find["readConcern"]["level"] == "majority"
    assert find["$readPreference"] == {"mode": "secondaryPreferred"}


def test_updates_and_deletes_target_the_shard_key_as_loaded(
    secantus_listened_db: Database[Any], command_log: CommandLog
) -> None:
    db = secantus_listened_db
    with Session(db, transactional=False) as s:
        moved, gone = TxTenantDoc(tenant="t1", body="x"), TxTenantDoc(tenant="t2")
        s.add_all([moved, gone])
        s.flush()
        moved.tenant = "t9"  # the filter still says where the document is now
        moved.body = "y"
        s.delete(gone)
        s.flush()
        untracked = TxTenantDoc(tenant="t3", body="z")
        s.update(untracked, upsert=True)
        s.flush()
    (update,) = command_log.of("update")[:1]
    assert update["updates"][0]["q"] == {"_id": moved.id, "tenant": "t1"}
    (delete,) = command_log.of("delete")
    assert delete["deletes"][0]["q"] == {"_id": gone.id, "tenant": "t2"}
    upsert = command_log.of("update")[1]
    assert upsert["updates"][0]["q"] == {"_id": untracked.id, "tenant": "t3"}
    assert sorted((d["tenant"], d["body"]) for d in db["tenant_docs"].find()) == [
        ("t3", "z"),
        ("t9", "y"),
    ]


# ------------------------------------------------------------ blocks that end early


@pytest.mark.transactions
@pytest.mark.parametrize("block", ["session", "transaction"])
def test_a_block_that_raises_after_a_flush_leaves_nothing(sessions: Sessions, block: str) -> None:
    db = sessions.db
    seed = Session(db)
    kept, changed = TxItem(name="kept"), TxItem(name="changed")
    seed.add_all([kept, changed])
    seed.commit()
    seed.close()

    s = sessions.open()
    new = TxItem(name="new")
    with pytest.raises(RuntimeError, match="boom"):
        with s if block == "session" else s.transaction():
            s.add(new)
            got_kept = s.get(TxItem, kept.id)
            got_changed = s.get(TxItem, changed.id)
            assert got_kept is not None and got_changed is not None
            got_changed.n = 7
            s.delete(got_kept)
            s.flush()
            raise RuntimeError("boom")
    assert _names(db) == ["changed", "kept"]
    assert {d["name"]: d["n"] for d in stored(db, "items")} == {"changed": 0, "kept": 0}
    if block == "transaction":  # the session is still open, rolled back
        assert s.state(new) is TRANSIENT
        assert s.state(got_kept) is PERSISTENT
        assert got_changed.n == 0 and not s.has_changes()


@pytest.mark.transactions
def test_a_transaction_block_commits_and_joins_an_open_transaction(sessions: Sessions) -> None:
    s = sessions.open()
    s.add(TxItem(name="before"))
    s.flush()  # opens the transaction the block joins
    with s.transaction():
        s.add(TxItem(name="inside"))
    assert _names(sessions.db) == ["before", "inside"]
    with pytest.raises(KeyError):
        with s.transaction():
            s.add(TxItem(name="dropped"))
            s.flush()
            raise KeyError("x")
    assert _names(sessions.db) == ["before", "inside"]


@pytest.mark.transactions
def test_run_in_transaction_returns_what_fn_returned(sessions: Sessions) -> None:
    s = sessions.open()

    def work(name: str) -> TxItem:
        item = TxItem(name=name)
        s.add(item)
        return item

    item = s.run_in_transaction(work, "a")
    assert s.state(item) is PERSISTENT
    assert _names(sessions.db) == ["a"]


# ------------------------------------------------------------ retries at the commit


def test_an_unknown_commit_result_is_retried_and_commits_once(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any], recorder: Recorder
) -> None:
    s = fsessions.open()
    counter = TxCounter()
    s.add(counter)
    s.commit()
    recorder.clear()
    counter.hits += 1
    s.add(TxItem(name="a"))
    with fail_point(
        faulty,
        ["commitTransaction"],
        times=2,
        errorCode=WRITE_CONCERN_TIMEOUT,
        errorLabels=["UnknownTransactionCommitResult"],
    ):
        with s.transaction():
            pass
    assert recorder.names() == [
        "insert",
        "update",
        "commitTransaction",
        "commitTransaction",
        "commitTransaction",
    ]
    assert len({c["txnNumber"] for c in recorder.of("commitTransaction")}) == 1
    assert _hits(fsessions.db) == [1] and _names(fsessions.db) == ["a"]
    assert not s.has_changes()


def test_a_transient_commit_error_runs_the_work_again_and_commits_once(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    """run_in_transaction: the commit is refused with TransientTransactionError,
    so fn runs again on a rolled-back session and its work commits once."""
    seed = fsessions.open(transactional=False)
    counter_id = TxCounter().id
    seed.add(TxCounter(id=counter_id))
    seed.flush()
    s = fsessions.open()
    calls = []

    def work() -> int:
        calls.append(1)
        counter = s.get(TxCounter, counter_id)
        assert counter is not None
        counter.hits += 1
        s.add(TxItem(name=f"try{len(calls)}"))
        return counter.hits

    with fail_point(faulty, ["commitTransaction"], errorCode=WRITE_CONFLICT):
        assert s.run_in_transaction(work) == 1
    assert len(calls) == 2
    assert _hits(fsessions.db) == [1]
    assert _names(fsessions.db) == ["try2"]


def test_a_transient_commit_error_in_a_block_rolls_back_and_is_retryable(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    s = fsessions.open()
    item = TxItem(name="a")
    with fail_point(faulty, ["commitTransaction"], errorCode=WRITE_CONFLICT):
        with pytest.raises(TransactionError) as caught:
            with s.transaction():
                s.add(item)
    assert caught.value.retryable
    assert s.state(item) is TRANSIENT
    assert _names(fsessions.db) == []


def test_a_transient_write_error_in_a_block_is_retryable(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    s = fsessions.open()
    with fail_point(faulty, ["insert"], errorCode=WRITE_CONFLICT):
        with pytest.raises(TransactionError) as caught:
            with s.transaction():
                s.add(TxItem(name="a"))
                s.flush()
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, FlushError)
    assert _names(fsessions.db) == []
    s.run_in_transaction(lambda: s.add(TxItem(name="b")))
    assert _names(fsessions.db) == ["b"]


def test_run_in_transaction_gives_up_at_its_time_limit(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    s = fsessions.open(transaction_retry_s=0.3)
    calls = []

    def work() -> None:
        calls.append(1)
        s.add(TxItem(name="a"))

    with fail_point(faulty, ["commitTransaction"], times=None, errorCode=WRITE_CONFLICT):
        with pytest.raises(TransactionError, match="gave up after") as caught:
            s.run_in_transaction(work)
    assert caught.value.retryable
    assert len(calls) > 1
    assert _names(fsessions.db) == []
    assert not s.has_changes()


@pytest.mark.transactions
def test_run_in_transaction_raises_what_fn_raised_after_a_rollback(sessions: Sessions) -> None:
    s = sessions.open()
    calls = []

    def work() -> None:
        calls.append(1)
        s.add(TxItem(name="a"))
        s.flush()
        raise LookupError("not retried")

    with pytest.raises(LookupError):
        s.run_in_transaction(work)
    assert len(calls) == 1
    assert _names(sessions.db) == [] and not s.has_changes()


def test_an_unknown_commit_past_the_time_limit_then_a_flush_sends_what_is_missing(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any], recorder: Recorder
) -> None:
    """The commit's outcome stays unknown: TransactionError, and the work queued
    again as in doubt. (SecantusDB's fail point refuses the commit before running
    it, so here it had not committed; tests/wire has the case where it had.) The
    next flush reads back, finds nothing stored, and sends everything once."""
    s = fsessions.open(transaction_retry_s=0)
    item = TxItem(name="a")
    s.add(item)
    with fail_point(
        faulty,
        ["commitTransaction"],
        times=None,
        errorCode=WRITE_CONCERN_TIMEOUT,
        errorLabels=["UnknownTransactionCommitResult"],
    ):
        with pytest.raises(TransactionError, match="outcome of commitTransaction is unknown"):
            s.commit()
    assert s.state(item) is PENDING
    recorder.clear()
    s.commit()
    assert recorder.names() == ["find", "insert", "commitTransaction"]
    assert _names(fsessions.db) == ["a"]


def test_a_write_concern_error_at_commit_means_committed_not_durable(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any], recorder: Recorder
) -> None:
    """The commit was applied; only its write concern failed (not a timeout, so
    not an unknown outcome). TransactionError says so; nothing is queued again."""
    s = fsessions.open()
    item = TxItem(name="a")
    s.add(item)
    with fail_point(
        faulty,
        ["commitTransaction"],
        writeConcernError={"code": UNSATISFIABLE_WRITE_CONCERN, "errmsg": "not enough nodes"},
    ):
        with pytest.raises(TransactionError, match="committed, but its write concern") as caught:
            s.commit()
    assert not caught.value.retryable
    assert s.state(item) is PERSISTENT and not s.has_changes()
    assert _names(fsessions.db) == ["a"]
    recorder.clear()
    s.commit()
    assert recorder.names() == []


# --------------------------------------------- aborted transactions keep every change


def test_documents_written_in_a_transaction_survive_its_abort_even_evicted(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    """cache_size=0 keeps no clean document alive; a document flushed in a
    transaction must stay alive until it ends, or an abort loses its change."""
    seed = fsessions.open(transactional=False)
    seed.add_all([TxItem(name=f"i{k}") for k in range(3)])
    seed.flush()
    s = fsessions.open(cache_size=0)
    for item in s.all(TxItem):
        item.n = 5
    s.flush()
    gc.collect()
    with fail_point(faulty, ["commitTransaction"], errorCode=WRITE_CONFLICT):
        with pytest.raises(TransactionError):
            s.commit()
    gc.collect()
    assert s.has_changes()
    s.commit()
    assert [d["n"] for d in stored(fsessions.db, "items")] == [5, 5, 5]


def test_an_untracked_update_of_an_aborted_transaction_is_queued_again(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    s = fsessions.open()
    counter = TxCounter(hits=2)
    s.update(counter, upsert=True)
    s.flush()
    with fail_point(faulty, ["commitTransaction"], errorCode=WRITE_CONFLICT):
        with pytest.raises(TransactionError):
            s.commit()
    assert s.has_changes()
    s.commit()
    assert _hits(fsessions.db) == [2]  # upserted once, incremented once


def test_inserted_then_deleted_in_an_aborted_transaction_leaves_nothing_to_do(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    s = fsessions.open()
    item = TxItem(name="a")
    s.add(item)
    s.flush()
    s.delete(item)
    s.flush()
    with fail_point(faulty, ["commitTransaction"], errorCode=WRITE_CONFLICT):
        with pytest.raises(TransactionError, match="unflushed again"):
            s.commit()
    assert s.state(item) is TRANSIENT
    assert not s.has_changes()
    assert s.flush() == FlushResult()
    s.commit()
    assert _names(fsessions.db) == []


def test_a_failed_flush_in_a_transaction_unflushes_the_earlier_ones_too(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    seed = fsessions.open(transactional=False)
    gone = TxItem(name="gone")
    seed.add(gone)
    seed.flush()
    s = fsessions.open()
    first = TxItem(name="first")
    s.add(first)
    s.flush()
    doomed = s.get(TxItem, gone.id)
    assert doomed is not None
    s.delete(doomed)
    s.flush()
    later = TxItem(name="later")
    s.add(later)
    with fail_point(faulty, ["insert"], errorCode=WRITE_CONFLICT):
        with pytest.raises(FlushError) as caught:
            s.flush()
    error = caught.value
    assert error.transaction_aborted and error.applied == []
    assert set(map(id, error.not_applied)) == {id(first), id(doomed), id(later)}
    assert "every change since the last commit is unflushed again" in str(error)
    assert [s.state(first), s.state(doomed), s.state(later)] == [PENDING, DELETED, PENDING]
    s.commit()
    assert _names(fsessions.db) == ["first", "later"]


@pytest.mark.transactions
@pytest.mark.parametrize("how", ["remove_query", "clear_collection"])
def test_deletes_by_filter_run_in_the_transaction_and_roll_back(
    sessions: Sessions, how: str
) -> None:
    s = sessions.open()
    kept, gone = TxItem(name="kept"), TxItem(name="gone")
    s.add_all([kept, gone])
    s.commit()
    if how == "remove_query":
        assert s.remove_query(TxItem).filter(name="gone").execute() == 1
    else:
        assert s.clear_collection(TxItem) == 2
    assert s.state(gone) is ObjectState.DETACHED
    # Not committed: another client still sees both documents.
    assert sorted(doc["name"] for doc in stored(sessions.db, "items")) == ["gone", "kept"]
    s.rollback()
    assert s.state(gone) is PERSISTENT
    assert s.get(TxItem, gone.id) is gone
    assert sorted(doc["name"] for doc in stored(sessions.db, "items")) == ["gone", "kept"]


@pytest.mark.transactions
def test_a_delete_by_filter_commits_with_the_session(sessions: Sessions) -> None:
    s = sessions.open()
    s.add_all([TxItem(name="a"), TxItem(name="b")])
    s.commit()
    assert s.remove_query(TxItem).filter(name="a").execute() == 1
    s.commit()
    assert [doc["name"] for doc in stored(sessions.db, "items")] == ["b"]
