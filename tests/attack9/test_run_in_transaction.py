"""`run_in_transaction`, retries and TransactionError.retryable, with fail points."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import uow
from uow import Session

from ._models import Acct, Note

TRANSIENT = ["TransientTransactionError"]
UNKNOWN = ["UnknownTransactionCommitResult"]


def stored(db: Any, cls: type, oid: Any) -> Any:
    return db[cls._uow_meta.collection].find_one({"_id": oid})


def test_run_in_transaction_mongomock_raises_on_entry(mongomock_db: Any) -> None:
    s = Session(mongomock_db)
    calls: list[int] = []
    with pytest.raises(uow.TransactionError) as info:
        s.run_in_transaction(lambda: calls.append(1))
    assert calls == []
    assert info.value.retryable is False


@pytest.mark.transactions
def test_run_in_transaction_returns_and_commits(db: Any) -> None:
    s = Session(db)

    def work(name: str, *, balance: int) -> Acct:
        a = Acct(name=name, balance=balance)
        s.add(a)
        return a

    a = s.run_in_transaction(work, "ann", balance=7)
    assert isinstance(a, Acct)
    assert stored(db, Acct, a.id) == {"_id": a.id, "name": "ann", "balance": 7, "tags": []}
    assert s.state(a) is uow.ObjectState.PERSISTENT
    assert not s.has_changes()


@pytest.mark.transactions
def test_run_in_transaction_other_exception_propagates_no_retry(db: Any) -> None:
    s = Session(db)
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        s.add(Note(text="x"))
        s.flush()
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        s.run_in_transaction(work)
    assert calls == [1]
    assert db[Note._uow_meta.collection].count_documents({}) == 0
    assert not s.has_changes()


def test_run_in_transaction_retries_transient_write(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    a = Acct(name="a", balance=100)
    s.add(a)
    s.commit()
    failpoint(["update"], code=112, labels=TRANSIENT, times=1)
    seen: list[int] = []

    def work() -> str:
        seen.append(a.balance)  # the session was rolled back: starts from the DB
        a.balance -= 30
        s.add(Note(text=f"try{len(seen)}"))
        s.flush()
        return "done"

    assert s.run_in_transaction(work) == "done"
    assert seen == [100, 100]
    assert stored(secantus_db, Acct, a.id)["balance"] == 70
    assert a.balance == 70
    notes = [d["text"] for d in secantus_db[Note._uow_meta.collection].find()]
    assert notes == ["try2"]


def test_run_in_transaction_retries_transient_commit(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    failpoint(["commitTransaction"], code=112, labels=TRANSIENT, times=1)
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        s.add(Note(text=f"n{len(calls)}"))

    s.run_in_transaction(work)
    assert len(calls) == 2
    assert [d["text"] for d in secantus_db[Note._uow_meta.collection].find()] == ["n2"]


def test_run_in_transaction_retries_unknown_commit_result(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    failpoint(["commitTransaction"], code=64, labels=UNKNOWN, times=1)
    calls: list[int] = []

    def work() -> Note:
        calls.append(1)
        n = Note(text="once")
        s.add(n)
        return n

    n = s.run_in_transaction(work)
    assert calls == [1]  # only the commit is retried
    assert list(secantus_db[Note._uow_meta.collection].find()) == [{"_id": n.id, "text": "once"}]
    assert s.state(n) is uow.ObjectState.PERSISTENT


def test_run_in_transaction_gives_up_after_retry_window(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db, transaction_retry_s=0.5)
    failpoint(["insert"], code=112, labels=TRANSIENT, times=None)
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        s.add(Note(text="x"))
        s.flush()

    start = time.monotonic()
    with pytest.raises(uow.TransactionError) as info:
        s.run_in_transaction(work)
    elapsed = time.monotonic() - start
    assert info.value.retryable is True
    assert len(calls) >= 2
    assert elapsed < 10
    assert secantus_db[Note._uow_meta.collection].count_documents({}) == 0


def test_run_in_transaction_zero_retry_window(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db, transaction_retry_s=0)
    failpoint(["insert"], code=112, labels=TRANSIENT, times=None)
    with pytest.raises(uow.TransactionError) as info:
        s.run_in_transaction(lambda: s.save(Note(text="x")))
    assert info.value.retryable is True


def test_run_in_transaction_non_transient_server_error_not_retried(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    failpoint(["insert"], code=2, times=1)  # BadValue, no label
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        s.add(Note(text="x"))
        s.flush()

    with pytest.raises(uow.UowError):
        s.run_in_transaction(work)
    assert calls == [1]
    assert secantus_db[Note._uow_meta.collection].count_documents({}) == 0


# ------------------------------------------------------------ s.transaction() faults


def test_transaction_block_unknown_commit_result_retried(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    failpoint(["commitTransaction"], code=64, labels=UNKNOWN, times=2)
    with s.transaction():
        n = Note(text="x")
        s.add(n)
    assert stored(secantus_db, Note, n.id) == {"_id": n.id, "text": "x"}
    assert s.state(n) is uow.ObjectState.PERSISTENT


def test_commit_unknown_commit_result_retried(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    n = Note(text="x")
    s.add(n)
    failpoint(["commitTransaction"], code=64, labels=UNKNOWN, times=1)
    s.commit()
    assert stored(secantus_db, Note, n.id) == {"_id": n.id, "text": "x"}


def test_transaction_block_transient_commit_rolls_back_retryable(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    a = Acct(name="a", balance=1)
    s.add(a)
    s.commit()
    failpoint(["commitTransaction"], code=112, labels=TRANSIENT, times=1)
    with pytest.raises(uow.TransactionError) as info, s.transaction():
        a.balance += 5
        n = Note(text="x")
        s.add(n)
    assert info.value.retryable is True
    assert stored(secantus_db, Acct, a.id)["balance"] == 1
    assert stored(secantus_db, Note, n.id) is None
    # rolled back: memory reads what the database holds
    assert a.balance == 1
    assert s.state(n) is uow.ObjectState.TRANSIENT
    assert not s.has_changes()
    # and the block can simply be run again
    with s.transaction():
        a.balance += 5
    assert stored(secantus_db, Acct, a.id)["balance"] == 6


def test_transaction_block_transient_flush_rolls_back_retryable(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db)
    failpoint(["insert"], code=112, labels=TRANSIENT, times=1)
    with pytest.raises(uow.TransactionError) as info, s.transaction():
        n = Note(text="x")
        s.add(n)
        s.flush()
    assert info.value.retryable is True
    assert stored(secantus_db, Note, n.id) is None
    assert s.state(n) is uow.ObjectState.TRANSIENT


def test_transaction_block_transient_flush_inside_caught_by_user(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    """The user catches a failed flush inside the block. SPEC: the server aborted the
    whole transaction and every change since the last commit is unflushed again, so
    leaving the block flushes all of it again and commits: nothing lost, nothing twice."""
    s = Session(secantus_db)
    first = Note(text="first")
    a = Acct(name="a", balance=0)
    with s.transaction():
        s.add(first)
        s.flush()
        s.add(a)
        s.flush()
        a.balance += 1
        failpoint(["update"], code=112, labels=TRANSIENT, times=1)
        with pytest.raises(uow.UowError):
            s.flush()
        assert s.state(first) is uow.ObjectState.PENDING
        assert s.state(a) is uow.ObjectState.PENDING
    assert list(secantus_db[Note._uow_meta.collection].find()) == [
        {"_id": first.id, "text": "first"}
    ]
    assert stored(secantus_db, Acct, a.id) == {"_id": a.id, "name": "a", "balance": 1, "tags": []}
    assert a.balance == 1


def test_transaction_error_retryable_attribute_default() -> None:
    err = uow.TransactionError("x")
    assert err.retryable is False


def test_run_in_transaction_rolls_back_before_each_attempt_pending(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    """Work queued before run_in_transaction and not flushed: what happens to it is
    SPEC-silent; but each attempt starts from what the database holds."""
    s = Session(secantus_db)
    a = Acct(name="a", balance=10)
    s.add(a)
    s.commit()
    failpoint(["update"], code=112, labels=TRANSIENT, times=1)
    seen: list[list[str]] = []

    def work() -> None:
        seen.append(list(a.tags))
        a.tags.append("t")
        s.flush()

    s.run_in_transaction(work)
    assert seen == [[], []]
    assert stored(secantus_db, Acct, a.id)["tags"] == ["t"]
    assert a.tags == ["t"]


def test_unknown_commit_result_persisting_gives_up_then_in_doubt_resolves(
    secantus_db: Any, failpoint: Callable[..., None], secantus_client: Any
) -> None:
    s = Session(secantus_db, transaction_retry_s=0.3)
    a = Acct(name="a", balance=1)
    s.add(a)
    s.commit()
    a.balance += 5
    n = Note(text="x")
    s.add(n)
    failpoint(["commitTransaction"], code=64, labels=UNKNOWN, times=None)
    start = time.monotonic()
    with pytest.raises(uow.TransactionError):
        s.commit()
    assert time.monotonic() - start < 10
    secantus_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    # the commit never happened (the fail point answers before running it):
    assert stored(secantus_db, Acct, a.id)["balance"] == 1
    assert stored(secantus_db, Note, n.id) is None
    s.commit()  # in doubt: read back, then send only what is missing
    assert stored(secantus_db, Acct, a.id)["balance"] == 6
    assert list(secantus_db[Note._uow_meta.collection].find()) == [{"_id": n.id, "text": "x"}]
    assert a.balance == 6


def test_run_in_transaction_unknown_commit_gives_up(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    s = Session(secantus_db, transaction_retry_s=0.3)
    failpoint(["commitTransaction"], code=64, labels=UNKNOWN, times=None)
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        s.add(Note(text="x"))

    with pytest.raises(uow.TransactionError):
        s.run_in_transaction(work)
    assert calls == [1]  # never called again for an unknown commit result


def test_with_session_too_many_requests_at_exit_cleans_up(
    secantus_listened_db: Any, command_log: Any
) -> None:
    with pytest.raises(uow.TooManyRequests), Session(secantus_listened_db, max_requests=1) as s:
        s.add(Note(text="x"))
        s.flush()
    assert s.closed
    assert "abortTransaction" in command_log.names()
    assert secantus_listened_db[Note._uow_meta.collection].count_documents({}) == 0


def test_stats_dereference_hit_counts_as_cache_hit(db: Any) -> None:
    class Owner(uow.Document):
        __collection__ = "a9_owner"
        acct: uow.Ref[Acct]

    s = Session(db)
    a = Acct(name="a")
    s.add(a)
    s.add(Owner(acct=a))
    s.commit()
    o = s.query(Owner).first()
    assert o is not None
    before = s.stats()
    assert s.dereference(o.acct) is a
    after = s.stats()
    assert after.queries == before.queries
    assert after.requests == before.requests
    assert after.cache_hits == before.cache_hits + 1
