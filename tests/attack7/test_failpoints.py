"""Failures injected with SecantusDB's failCommand: in_doubt, not_applied, commit errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import committed, raw
from ._models import Item, UniqInc

S = ObjectState


@contextlib.contextmanager
def failpoint(db: Any, commands: list[str], **data: Any) -> Iterator[None]:
    admin = db.client.admin
    admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": commands, **data},
        }
    )
    try:
        yield
    finally:
        admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def test_error_code_on_insert_is_not_applied(secantus_db: Any) -> None:
    db = secantus_db
    s = Session(db, transactional=False, auto_ensure=False)
    a, b = Item(name="a"), Item(name="b")
    s.add_all([a, b])
    with failpoint(db, ["insert"], errorCode=2):
        with pytest.raises(uow.FlushError) as ei:
            s.flush()
    e = ei.value
    assert list(e.applied) == [] and list(e.in_doubt) == []
    assert set(e.not_applied) == {a, b}
    assert s.state(a) is S.PENDING and s.state(b) is S.PENDING
    r = s.flush()
    assert r.inserted == 2
    assert raw(db, a) == a.to_bson() and raw(db, b) == b.to_bson()


def test_lost_connection_on_insert_in_doubt_then_reconciled(secantus_db: Any) -> None:
    db = secantus_db
    s = Session(db, transactional=False, auto_ensure=False)
    a, b = Item(name="a"), Item(name="b")
    s.add_all([a, b])
    with failpoint(db, ["insert"], closeConnection=True):
        with pytest.raises(uow.FlushError) as ei:
            s.flush()
    assert set(ei.value.in_doubt) == {a, b}
    s.flush()
    assert db.a7_items.count_documents({}) == 2
    assert raw(db, a) == a.to_bson() and raw(db, b) == b.to_bson()
    assert s.state(a) is S.PERSISTENT


def test_lost_connection_on_set_update_in_doubt_then_reconciled(secantus_db: Any) -> None:
    db = secantus_db
    it = Item(name="a")
    committed(db, it)
    s = Session(db, transactional=False, auto_ensure=False)
    x = s.get(Item, it.id)
    x.name = "b"
    with failpoint(db, ["update"], closeConnection=True):
        with pytest.raises(uow.FlushError) as ei:
            s.flush()
    assert list(ei.value.in_doubt) == [x]
    s.flush()
    assert raw(db, it) == {"_id": it.id, "name": "b", "qty": 0, "tags": []}
    assert not s.is_dirty(x)


def test_lost_connection_on_inc_refused_then_refresh(secantus_db: Any) -> None:
    db = secantus_db
    it = UniqInc(email="a@x", hits=1)
    committed(db, it)
    s = Session(db, transactional=False)
    x = s.get(UniqInc, it.id)
    x.hits += 1
    with failpoint(db, ["update"], closeConnection=True):
        with pytest.raises(uow.FlushError) as ei:
            s.flush()
    assert list(ei.value.in_doubt) == [x]
    with pytest.raises(uow.FlushError):
        s.flush()  # refused: could apply the $inc twice
    assert raw(db, it)["hits"] == 1
    s.refresh(x)
    assert x.hits == 1
    x.hits += 1
    s.flush()
    assert raw(db, it)["hits"] == 2


def test_lost_connection_on_delete_in_doubt_then_reconciled(secantus_db: Any) -> None:
    db = secantus_db
    it = Item(name="a")
    committed(db, it)
    s = Session(db, transactional=False, auto_ensure=False)
    x = s.get(Item, it.id)
    s.delete(x)
    with failpoint(db, ["delete"], closeConnection=True):
        with pytest.raises(uow.FlushError) as ei:
            s.flush()
    assert list(ei.value.in_doubt) == [x]
    s.flush()
    assert raw(db, it) is None
    assert s.state(x) is S.DETACHED


def test_transaction_block_transient_commit_error(secantus_db: Any) -> None:
    db = secantus_db
    s = Session(db)
    it = Item(name="a")
    with failpoint(
        db, ["commitTransaction"], errorCode=251, errorLabels=["TransientTransactionError"]
    ):
        with pytest.raises(uow.TransactionError) as ei:
            with s.transaction():
                s.add(it)
    assert ei.value.retryable is True
    assert raw(db, it) is None
    assert s.state(it) is S.TRANSIENT
    assert not s.closed


def test_transaction_block_unknown_commit_result_is_retried(secantus_db: Any) -> None:
    db = secantus_db
    s = Session(db)
    it = Item(name="a")
    with failpoint(
        db, ["commitTransaction"], errorCode=64, errorLabels=["UnknownTransactionCommitResult"]
    ):
        with s.transaction():
            s.add(it)
    assert raw(db, it) == it.to_bson()
    assert s.state(it) is S.PERSISTENT


def test_run_in_transaction_retries_transient(secantus_db: Any) -> None:
    db = secantus_db
    s = Session(db)
    calls: list[int] = []

    def work() -> Item:
        calls.append(1)
        it = Item(name=f"try{len(calls)}")
        s.add(it)
        return it

    with failpoint(
        db, ["commitTransaction"], errorCode=251, errorLabels=["TransientTransactionError"]
    ):
        it = s.run_in_transaction(work)
    assert len(calls) == 2
    assert db.a7_items.count_documents({}) == 1
    assert raw(db, it)["name"] == "try2"


def test_plain_commit_transient_error(secantus_db: Any) -> None:
    db = secantus_db
    base = Item(name="base", qty=1)
    committed(db, base)
    s = Session(db)
    x = s.get(Item, base.id)
    x.qty = 5
    new = Item(name="new")
    s.add(new)
    with failpoint(
        db, ["commitTransaction"], errorCode=251, errorLabels=["TransientTransactionError"]
    ):
        with pytest.raises(uow.UowError):
            s.commit()
    # the transaction is gone: nothing stored; memory must not claim it was
    assert raw(db, base)["qty"] == 1 and raw(db, new) is None
    assert s.state(new) in (S.PENDING, S.TRANSIENT)
    if s.state(new) is S.PENDING:
        # changes went back to unflushed: committing again writes them
        s.commit()
        assert raw(db, base)["qty"] == 5 and raw(db, new) is not None
    else:
        assert x.qty == 1


def test_unknown_commit_result_max_time_expired(
    secantus_listened_db: Any, command_log: Any
) -> None:
    """SPEC: "A commit that ends in UnknownTransactionCommitResult is retried".
    pymongo's own with_transaction does not retry a MaxTimeMSExpired commit; if
    uow follows it, its message must not claim it retried for 120 s."""
    db = secantus_listened_db
    s = Session(db, auto_ensure=False)
    it = Item(name="a")
    with failpoint(
        db, ["commitTransaction"], errorCode=50, errorLabels=["UnknownTransactionCommitResult"]
    ):
        command_log.clear()
        try:
            with s.transaction():
                s.add(it)
        except uow.TransactionError as e:
            commits = command_log.of("commitTransaction")
            assert len(commits) == 1
            assert "retrying" not in str(e), str(e)
            assert "MaxTimeMSExpired" in str(e), str(e)
            return
    assert len(command_log.of("commitTransaction")) == 2
    assert raw(db, it) == it.to_bson()
