"""Nesting of transaction blocks, run_in_transaction with earlier work, real write
conflicts between two sessions, contextvars, and commit failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

import uow
from uow import Session

from ._models import Acct, Note

TRANSIENT = ["TransientTransactionError"]


def stored(db: Any, cls: type, oid: Any) -> Any:
    return db[cls._uow_meta.collection].find_one({"_id": oid})


def texts(db: Any) -> list[str]:
    return sorted(d["text"] for d in db[Note._uow_meta.collection].find())


@pytest.mark.transactions
def test_nested_transaction_block_outer_exception_rolls_back_all(db: Any) -> None:
    """SPEC: `with s.transaction():` runs the block's flushes in one transaction."""
    s = Session(db)
    with pytest.raises(RuntimeError), s.transaction():
        s.add(Note(text="outer"))
        s.flush()
        with s.transaction():
            s.add(Note(text="inner"))
        raise RuntimeError("outer fails after the inner block")
    assert texts(db) == []


@pytest.mark.transactions
def test_run_in_transaction_inside_transaction_block_is_refused(db: Any) -> None:
    """Its retries would roll back the block's work: refused at entry, and the
    block, left by that error, rolls everything back."""
    s = Session(db)
    with pytest.raises(uow.TransactionError, match="inside a transaction"), s.transaction():
        s.add(Note(text="outer"))
        s.flush()
        s.run_in_transaction(lambda: s.add(Note(text="inner")))
    assert texts(db) == []
    s.save(Note(text="after"))
    s.commit()
    assert texts(db) == ["after"]


@pytest.mark.transactions
def test_run_in_transaction_commits_earlier_flushed_work(db: Any) -> None:
    """A transaction open from earlier flushes is joined and committed (no fault)."""
    s = Session(db)
    s.add(Note(text="before"))
    s.flush()
    s.run_in_transaction(lambda: s.add(Note(text="fn")))
    assert texts(db) == ["before", "fn"]


@pytest.mark.parametrize("pre_flush", [False, True])
def test_run_in_transaction_retry_refuses_to_drop_earlier_work(
    secantus_db: Any, failpoint: Callable[..., None], pre_flush: bool
) -> None:
    """Without a fault, work queued before run_in_transaction is committed with fn's.
    With one transient fault, the same call must not end with that work silently
    gone: the transient failure is raised (retryable), not retried without it."""
    s = Session(secantus_db)
    pre = Note(text="before")
    s.add(pre)
    if pre_flush:
        s.flush()
    failpoint(["insert"], code=112, labels=TRANSIENT, times=1)
    with pytest.raises(uow.TransactionError, match="queued before") as caught:
        s.run_in_transaction(lambda: s.save(Note(text="fn")))
    assert caught.value.retryable
    assert texts(secantus_db) == []
    # Nothing was retried behind the user's back; run again, it all lands.
    s.add(Note(text="before"))
    s.run_in_transaction(lambda: s.save(Note(text="fn")))
    assert texts(secantus_db) == ["before", "fn"]


@pytest.mark.transactions
def test_joined_unit_of_work_marks_session_run_in_transaction_refuses(db: Any) -> None:
    with Session(db) as s:
        try:
            with uow.unit_of_work():
                s.add(Note(text="half"))
                raise ValueError
        except ValueError:
            pass
        with pytest.raises(uow.TransactionError):
            s.run_in_transaction(lambda: s.add(Note(text="c")))
        s.rollback()
    assert texts(db) == []


def test_real_write_conflict_between_sessions(secantus_db: Any) -> None:
    raw = secantus_db[Acct._uow_meta.collection]
    oid = raw.insert_one({"name": "shared", "balance": 100, "tags": []}).inserted_id
    a_sess = Session(secantus_db)
    b_sess = Session(secantus_db, transaction_retry_s=0.3)
    a = a_sess.get(Acct, oid)
    assert a is not None
    a.balance += 1
    a_sess.flush()  # A holds the document in its open transaction
    attempts: list[int] = []

    def b_work() -> int:
        b = b_sess.get(Acct, oid)
        assert b is not None
        attempts.append(b.balance)
        b.balance += 10
        b_sess.flush()
        return b.balance

    with pytest.raises(uow.TransactionError) as info:
        b_sess.run_in_transaction(b_work)
    assert info.value.retryable is True
    assert len(attempts) >= 2
    assert set(attempts) == {100}
    assert raw.find_one({"_id": oid})["balance"] == 100
    a_sess.commit()
    assert raw.find_one({"_id": oid})["balance"] == 101
    attempts.clear()
    # B's identity map still holds 100 (no expiry on commit or rollback is promised);
    # the $inc is relative to what is stored, so A's +1 is kept.
    b_sess.run_in_transaction(b_work)
    assert raw.find_one({"_id": oid})["balance"] == 111


def test_real_write_conflict_in_transaction_block(secantus_db: Any) -> None:
    raw = secantus_db[Acct._uow_meta.collection]
    oid = raw.insert_one({"name": "shared", "balance": 0, "tags": []}).inserted_id
    a_sess, b_sess = Session(secantus_db), Session(secantus_db)
    a = a_sess.get(Acct, oid)
    b = b_sess.get(Acct, oid)
    assert a is not None and b is not None
    a.tags.append("a")
    a_sess.flush()
    with pytest.raises(uow.TransactionError) as info, b_sess.transaction():
        b.tags.append("b")
        b_sess.flush()
    assert info.value.retryable is True
    assert b.tags == []  # rolled back to what the database holds
    a_sess.commit()
    with b_sess.transaction():
        b_sess.refresh(b)
        b.tags.append("b")
    assert raw.find_one({"_id": oid})["tags"] == ["a", "b"]


def test_commit_transient_error_requeues(secantus_db: Any, failpoint: Callable[..., None]) -> None:
    s = Session(secantus_db)
    n = Note(text="t")
    s.add(n)
    failpoint(["commitTransaction"], code=112, labels=TRANSIENT, times=1)
    with pytest.raises(uow.TransactionError) as info:
        s.commit()
    assert info.value.retryable is True
    assert s.state(n) is uow.ObjectState.PENDING
    assert texts(secantus_db) == []
    s.commit()
    assert texts(secantus_db) == ["t"]


def test_with_session_commit_transient_error_raises_and_nothing_written(
    secantus_db: Any, failpoint: Callable[..., None]
) -> None:
    failpoint(["commitTransaction"], code=112, labels=TRANSIENT, times=1)
    with pytest.raises(uow.TransactionError), Session(secantus_db) as s:
        s.add(Note(text="t"))
    assert texts(secantus_db) == []
    assert s.closed


def test_close_with_uncommitted_transaction_warns(
    secantus_db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="uow")
    s = Session(secantus_db)
    s.add(Note(text="w"))
    s.add(Note(text="v"))
    s.flush()
    s.close()
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("uow")
    ]
    assert warnings and "2" in warnings[-1].getMessage()
    assert texts(secantus_db) == []


def test_with_session_error_path_does_not_warn(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="uow")
    with pytest.raises(RuntimeError), Session(db) as s:
        s.add(Note(text="w"))
        raise RuntimeError
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


def test_current_session_per_asyncio_task(db: Any) -> None:
    seen: dict[str, Any] = {}

    async def task(name: str, delay: float) -> None:
        with Session(db) as s:
            await asyncio.sleep(delay)
            seen[name] = uow.current_session() is s
            s.add(Note(text=name))
            await asyncio.sleep(delay)
            seen[name] = seen[name] and uow.current_session() is s

    async def main() -> None:
        await asyncio.gather(task("one", 0.02), task("two", 0.01))

    asyncio.run(main())
    assert seen == {"one": True, "two": True}
    assert texts(db) == ["one", "two"]


def test_closed_session_refuses_transaction_helpers(db: Any) -> None:
    s = Session(db)
    s.close()
    with pytest.raises(uow.SessionClosedError), s.transaction():
        pass
    with pytest.raises(uow.SessionClosedError):
        s.run_in_transaction(lambda: None)
    with pytest.raises(uow.SessionClosedError), s:
        pass
