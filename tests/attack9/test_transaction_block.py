"""`with s.transaction():`, joined transactions, commit/rollback of `with Session` blocks."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Session

from ._models import Acct, Note


def stored(db: Any, cls: type, oid: Any) -> Any:
    return db[cls._uow_meta.collection].find_one({"_id": oid})


# ----------------------------------------------------------------- s.transaction()


def test_transaction_block_on_mongomock_raises_on_entry(mongomock_db: Any) -> None:
    s = Session(mongomock_db)
    a = Acct(name="a")
    s.add(a)
    with pytest.raises(uow.TransactionError), s.transaction():
        pytest.fail("the block body must not run without transactions")
    # Nothing was written, and the pending insert is still queued.
    assert stored(mongomock_db, Acct, a.id) is None
    assert s.state(a) is uow.ObjectState.PENDING


def test_transaction_error_is_uow_error() -> None:
    assert issubclass(uow.TransactionError, uow.UowError)


@pytest.mark.transactions
def test_transaction_block_commits_on_success(db: Any) -> None:
    s = Session(db)
    a = Acct(name="a", balance=5)
    with s.transaction():
        s.add(a)
        s.flush()
        # inside the transaction: not visible outside it yet
        assert stored(db, Acct, a.id) is None
    assert stored(db, Acct, a.id) == {"_id": a.id, "name": "a", "balance": 5, "tags": []}
    assert s.state(a) is uow.ObjectState.PERSISTENT
    assert not s.has_changes()


@pytest.mark.transactions
def test_transaction_block_flushes_what_is_left(db: Any) -> None:
    s = Session(db)
    a = Acct(name="a")
    with s.transaction():
        s.add(a)  # never flushed explicitly
    assert stored(db, Acct, a.id) is not None


@pytest.mark.transactions
def test_transaction_block_rolls_back_on_exception(db: Any) -> None:
    s = Session(db)
    keep = Acct(name="keep", balance=1)
    s.add(keep)
    s.commit()
    with pytest.raises(RuntimeError), s.transaction():
        keep.balance += 10
        n = Note(text="x")
        s.add(n)
        s.flush()
        raise RuntimeError("boom")
    assert stored(db, Acct, keep.id)["balance"] == 1
    assert stored(db, Note, n.id) is None
    # rollback(): tracked documents read what the database holds
    assert keep.balance == 1
    assert s.state(n) is uow.ObjectState.TRANSIENT
    assert not s.has_changes()
    # the session stays usable
    keep.balance += 2
    s.commit()
    assert stored(db, Acct, keep.id)["balance"] == 3


@pytest.mark.transactions
def test_transaction_block_joins_transaction_opened_by_earlier_flush_commit(db: Any) -> None:
    s = Session(db)
    a = Acct(name="a")
    s.add(a)
    s.flush()  # opens a transaction
    assert stored(db, Acct, a.id) is None
    with s.transaction():
        b = Acct(name="b")
        s.add(b)
    # the block commits everything since the last commit
    assert stored(db, Acct, a.id) is not None
    assert stored(db, Acct, b.id) is not None


@pytest.mark.transactions
def test_transaction_block_joins_transaction_opened_by_earlier_flush_rollback(db: Any) -> None:
    s = Session(db)
    a = Acct(name="a")
    s.add(a)
    s.flush()
    with pytest.raises(KeyError), s.transaction():
        s.add(Acct(name="b"))
        s.flush()
        raise KeyError("x")
    # the block rolls back everything since the last commit, the earlier flush included
    assert db[Acct._uow_meta.collection].count_documents({}) == 0
    assert s.state(a) is uow.ObjectState.TRANSIENT


@pytest.mark.transactions
def test_transaction_block_sequential_blocks_are_independent(db: Any) -> None:
    s = Session(db)
    a = Acct(name="a", balance=1)
    with s.transaction():
        s.add(a)
    with pytest.raises(ValueError), s.transaction():
        a.balance += 100
        s.flush()
        raise ValueError
    with s.transaction():
        a.balance += 1
    assert stored(db, Acct, a.id)["balance"] == 2
    assert a.balance == 2


@pytest.mark.transactions
def test_transaction_block_nested_inner_exception_caught_outer_commit(db: Any) -> None:
    """Nested s.transaction(): the inner block is joined (as a joined unit_of_work):
    its exception marks the session, and the outer block, left normally, rolls
    everything back and raises TransactionError: half a unit is never committed."""
    s = Session(db)
    a = Acct(name="a")
    with pytest.raises(uow.TransactionError, match="inside another one failed"):
        with s.transaction():
            s.add(a)
            s.flush()
            try:
                with s.transaction():
                    s.add(Acct(name="b"))
                    s.flush()
                    raise ValueError("inner")
            except ValueError:
                pass
            s.add(Acct(name="c"))
    assert list(db[Acct._uow_meta.collection].find()) == []
    assert s.state(a) is uow.ObjectState.TRANSIENT
    with s.transaction():  # the session is usable again
        s.add(Acct(name="d"))
    assert [d["name"] for d in db[Acct._uow_meta.collection].find()] == ["d"]


@pytest.mark.transactions
def test_transaction_block_rolls_back_on_base_exception(db: Any) -> None:
    s = Session(db)
    a = Acct(name="a")
    with pytest.raises(KeyboardInterrupt), s.transaction():
        s.add(a)
        s.flush()
        raise KeyboardInterrupt
    assert stored(db, Acct, a.id) is None


# ---------------------------------------------------------------- with Session(...)


def test_with_session_commits_on_success(db: Any) -> None:
    with Session(db) as s:
        a = Acct(name="a", balance=3)
        s.add(a)
    assert stored(db, Acct, a.id) == {"_id": a.id, "name": "a", "balance": 3, "tags": []}
    assert s.closed
    with pytest.raises(uow.SessionClosedError):
        s.get(Acct, a.id)


def test_with_session_rolls_back_unflushed_on_exception(db: Any) -> None:
    with pytest.raises(RuntimeError), Session(db) as s:
        a = Acct(name="a")
        s.add(a)
        raise RuntimeError
    assert stored(db, Acct, a.id) is None
    assert s.closed


@pytest.mark.transactions
def test_with_session_rolls_back_flushed_on_exception_with_transactions(db: Any) -> None:
    with pytest.raises(RuntimeError), Session(db) as s:
        a = Acct(name="a")
        s.add(a)
        s.flush()
        raise RuntimeError
    assert stored(db, Acct, a.id) is None


def test_with_session_flushed_stays_without_transactions(mongomock_db: Any) -> None:
    with pytest.raises(RuntimeError), Session(mongomock_db) as s:
        a = Acct(name="a")
        s.add(a)
        s.flush()
        b = Acct(name="b")
        s.add(b)
        raise RuntimeError
    assert stored(mongomock_db, Acct, a.id) is not None
    assert stored(mongomock_db, Acct, b.id) is None


def test_with_session_transactional_false_keeps_flushed_on_exception(secantus_db: Any) -> None:
    with pytest.raises(RuntimeError), Session(secantus_db, transactional=False) as s:
        a = Acct(name="a")
        s.add(a)
        s.flush()
        # without a transaction, the flush is visible at once
        assert stored(secantus_db, Acct, a.id) is not None
        raise RuntimeError
    assert stored(secantus_db, Acct, a.id) is not None


def test_transactional_false_transaction_block_raises(secantus_db: Any) -> None:
    s = Session(secantus_db, transactional=False)
    with pytest.raises(uow.TransactionError), s.transaction():
        pass
    with pytest.raises(uow.TransactionError):
        s.run_in_transaction(lambda: None)


def test_transactional_true_on_mongomock_raises_when_made(mongomock_db: Any) -> None:
    with pytest.raises(uow.TransactionError):
        Session(mongomock_db, transactional=True)


def test_transactional_true_on_secantus_works(secantus_db: Any) -> None:
    s = Session(secantus_db, transactional=True)
    a = Acct(name="a")
    s.add(a)
    s.flush()
    assert stored(secantus_db, Acct, a.id) is None
    s.commit()
    assert stored(secantus_db, Acct, a.id) is not None


def test_with_session_current_session(db: Any) -> None:
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    with Session(db) as outer:
        assert uow.current_session() is outer
        with Session(db) as inner:
            assert uow.current_session() is inner
        assert uow.current_session() is outer
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_with_session_current_session_restored_after_exception(db: Any) -> None:
    with Session(db) as outer:
        with pytest.raises(RuntimeError), Session(db):
            raise RuntimeError
        assert uow.current_session() is outer
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_with_session_commit_failure_propagates_and_closes(db: Any) -> None:
    """A commit that fails on leaving the block raises; the session is closed."""
    db[Acct._uow_meta.collection].create_index("name", unique=True)
    db[Acct._uow_meta.collection].insert_one({"_id": 1, "name": "dup", "balance": 0, "tags": []})
    with pytest.raises(uow.DuplicateKeyError), Session(db) as s:
        s.add(Acct(name="dup"))
    assert s.closed
    assert db[Acct._uow_meta.collection].count_documents({}) == 1


def test_current_session_in_other_thread_is_not_active(db: Any) -> None:
    import threading

    seen: list[Any] = []

    def probe() -> None:
        try:
            seen.append(uow.current_session())
        except uow.NoActiveSession:
            seen.append("none")

    with Session(db):
        t = threading.Thread(target=probe)
        t.start()
        t.join()
    assert seen == ["none"]


def test_session_connect_mongomock_roundtrip(embedded_uri: str) -> None:
    from uow._backend import make_client

    with Session.connect("a9db", embedded_uri) as s:
        a = Acct(name="ann", balance=2)
        s.add(a)
    raw = make_client(embedded_uri)["a9db"]
    assert stored(raw, Acct, a.id) == {"_id": a.id, "name": "ann", "balance": 2, "tags": []}
    with Session.connect("a9db", embedded_uri) as s2:
        again = s2.get(Acct, a.id)
        assert again is not None and again.balance == 2


def test_session_connect_secantus_commit_and_rollback(
    secantus_server: Any, secantus_client: Any
) -> None:
    import uuid

    name = f"a9_{uuid.uuid4().hex[:10]}"
    try:
        with Session.connect(name, secantus_server.uri) as s:
            a = Acct(name="a")
            s.add(a)
        assert stored(secantus_client[name], Acct, a.id) is not None
        with pytest.raises(RuntimeError), Session.connect(name, secantus_server.uri) as s:
            b = Acct(name="b")
            s.add(b)
            s.flush()
            raise RuntimeError
        assert stored(secantus_client[name], Acct, b.id) is None
    finally:
        secantus_client.drop_database(name)


def test_session_connect_closes_its_client(secantus_server: Any) -> None:
    s = Session.connect("a9_close", secantus_server.uri)
    client = s.database.client
    s.close()
    s.close()  # a second close does nothing
    with pytest.raises(Exception):  # noqa: B017 - pymongo's closed-client error
        client.a9_close.x.find_one({})


def test_session_connect_uses_env_uri(monkeypatch: pytest.MonkeyPatch, embedded_uri: str) -> None:
    from uow._backend import make_client

    monkeypatch.setenv("UOW_MONGODB_URI", embedded_uri)
    with Session.connect("a9env") as s:
        a = Acct(name="env")
        s.add(a)
    assert stored(make_client(embedded_uri)["a9env"], Acct, a.id) is not None
