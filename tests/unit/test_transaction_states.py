"""``uow.transaction.Transaction`` alone: its states, and which calls each accepts.

No database: the driver session, the channel, the tracker and the in-doubt
registry are stand-ins that record what the transaction asked of them (as
SQLAlchemy's test_session_state_change.py tests its state machine apart).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import OperationFailure, PyMongoError, WriteConcernError

from uow.exceptions import TooManyRequests, TransactionError
from uow.transaction import IllegalStateChange, Transaction, TxState


def _labelled(label: str, exc: PyMongoError | None = None) -> PyMongoError:
    error = exc if exc is not None else PyMongoError(label)
    error._add_error_label(label)
    return error


class FakeDriverSession:
    def __init__(self) -> None:
        self.calls: list[str] = []
        #: what each commit_transaction raises, in turn (None: it succeeds)
        self.commit_outcomes: list[BaseException | None] = []
        self.abort_fails = False

    def start_transaction(self, **options: Any) -> None:
        self.calls.append("start")

    def commit_transaction(self) -> None:
        self.calls.append("commit")
        outcome = self.commit_outcomes.pop(0) if self.commit_outcomes else None
        if outcome is not None:
            raise outcome

    def abort_transaction(self) -> None:
        self.calls.append("abort")
        if self.abort_fails:
            raise PyMongoError("connection lost")


class FakeChannel:
    def __init__(self) -> None:
        self.driver_session = FakeDriverSession()
        self.sent: list[str] = []
        self.refuse = False

    def send(self, command: str, collection: str, call: Callable[[], Any], detail: Any) -> Any:
        if self.refuse:
            raise TooManyRequests("max_requests=0 reached", limit=0)
        self.sent.append(command)
        return call()

    def send_unlimited(self, command: str, call: Callable[[], Any]) -> None:
        self.sent.append(command)
        call()


class FakeTracker:
    def __init__(self) -> None:
        self.tx_ops: list[Any] = ["op1", "op2"]
        self.requeued = 0

    def requeue_transaction(self) -> list[Any]:
        self.requeued += 1
        return ["doc"]


class FakeDoubts:
    def __init__(self) -> None:
        self.added: list[tuple[bool, list[Any]]] = []

    def add(self, atomic: bool, ops: list[Any]) -> None:
        self.added.append((atomic, ops))


def _transaction(enabled: bool = True, retry_s: float = 5.0) -> Transaction:
    return Transaction(
        FakeChannel(),  # type: ignore[arg-type]
        FakeTracker(),  # type: ignore[arg-type]
        FakeDoubts(),  # type: ignore[arg-type]
        enabled=enabled,
        supported=True,
        options={},
        retry_s=retry_s,
    )


def _driver(tx: Transaction) -> FakeDriverSession:
    return tx._channel.driver_session  # type: ignore[no-any-return]


def test_a_new_transaction_is_none_and_begins_once() -> None:
    tx = _transaction()
    assert tx.state is TxState.NONE and not tx.active
    tx.begin_if_needed()
    assert tx.state is TxState.ACTIVE and tx.active
    tx.begin_if_needed()  # joined, not begun again
    assert _driver(tx).calls == ["start"]
    with pytest.raises(IllegalStateChange, match=r"begin\(\) needs NONE; .* is ACTIVE"):
        tx.begin()


def test_a_session_without_transactions_never_begins_one() -> None:
    tx = _transaction(enabled=False)
    tx.begin_if_needed()
    assert tx.state is TxState.NONE and _driver(tx).calls == []
    with pytest.raises(TransactionError, match="transactional=False"):
        tx.require("transaction()")


@pytest.mark.parametrize("method", ["commit", "abort", "failed"])
def test_commit_abort_and_failed_need_an_open_transaction(method: str) -> None:
    tx = _transaction()
    with pytest.raises(IllegalStateChange, match="needs ACTIVE"):
        getattr(tx, method)()
    assert tx.state is TxState.NONE and _driver(tx).calls == []


def test_a_commit_that_lands_ends_the_transaction() -> None:
    tx = _transaction()
    tx.begin()
    assert tx.commit() is None
    assert tx.state is TxState.NONE
    assert _driver(tx).calls == ["start", "commit"]


def test_a_commit_of_unknown_outcome_is_retried() -> None:
    tx = _transaction()
    tx.begin()
    _driver(tx).commit_outcomes = [_labelled("UnknownTransactionCommitResult"), None]
    assert tx.commit() is None
    assert tx.state is TxState.NONE
    assert _driver(tx).calls == ["start", "commit", "commit"]


def test_a_commit_still_unknown_at_the_time_limit_queues_everything_as_in_doubt() -> None:
    tx = _transaction(retry_s=0.0)
    tx.begin()
    _driver(tx).commit_outcomes = [_labelled("UnknownTransactionCommitResult")]
    with pytest.raises(TransactionError, match="outcome of commitTransaction is unknown") as info:
        tx.commit()
    assert not info.value.retryable
    assert tx.state is TxState.NONE
    assert tx._tracker.requeued == 1  # type: ignore[attr-defined]
    assert tx._doubts.added == [(True, ["op1", "op2"])]  # type: ignore[attr-defined]


def test_a_transient_commit_failure_requeues_and_is_retryable() -> None:
    tx = _transaction()
    tx.begin()
    _driver(tx).commit_outcomes = [
        _labelled("TransientTransactionError", OperationFailure("aborted", 251))
    ]
    with pytest.raises(TransactionError, match="could not commit") as info:
        tx.commit()
    assert info.value.retryable
    assert tx.state is TxState.NONE
    assert tx._tracker.requeued == 1  # type: ignore[attr-defined]
    assert "abort" not in _driver(tx).calls  # a commit was sent: nothing to abort


def test_a_commit_whose_write_concern_failed_returns_the_error() -> None:
    tx = _transaction()
    tx.begin()
    concern = WriteConcernError("waiting for replication timed out", 64)
    _driver(tx).commit_outcomes = [concern]
    assert tx.commit() is concern
    assert tx.state is TxState.NONE
    assert tx._tracker.requeued == 0  # type: ignore[attr-defined]


def test_a_commit_refused_before_it_was_sent_leaves_the_transaction_active() -> None:
    tx = _transaction()
    tx.begin()
    tx._channel.refuse = True  # type: ignore[attr-defined]
    with pytest.raises(TooManyRequests):
        tx.commit()
    assert tx.state is TxState.ACTIVE
    tx._channel.refuse = False  # type: ignore[attr-defined]
    assert tx.commit() is None
    assert tx.state is TxState.NONE


def test_abort_ends_the_transaction_even_when_the_command_fails() -> None:
    tx = _transaction()
    tx.begin()
    _driver(tx).abort_fails = True
    tx.abort()
    assert tx.state is TxState.NONE
    assert _driver(tx).calls == ["start", "abort"]
    tx.begin()  # a new one may begin
    assert tx.state is TxState.ACTIVE


def test_failed_aborts_and_requeues_the_work() -> None:
    tx = _transaction()
    tx.begin()
    assert tx.failed() == ["doc"]
    assert tx.state is TxState.NONE
    assert _driver(tx).calls == ["start", "abort"]
    assert tx._tracker.requeued == 1  # type: ignore[attr-defined]


def test_failed_after_a_commit_was_sent_does_not_abort() -> None:
    tx = _transaction()
    tx.begin()
    tx.failed(abort=False)
    assert tx.state is TxState.NONE
    assert _driver(tx).calls == ["start"]


def test_rollback_only_refuses_commits_until_cleared() -> None:
    tx = _transaction()
    tx.check_can_commit()
    tx.rollback_only = "a joined unit of work failed"
    with pytest.raises(TransactionError, match="cannot commit: a joined unit of work failed"):
        tx.check_can_commit()
    tx.rollback_only = None
    tx.check_can_commit()
