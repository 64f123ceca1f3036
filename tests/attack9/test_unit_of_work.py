"""`uow.configure`, `uow.unit_of_work` and joined blocks (SPEC: Service layers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import uow
from uow import Session

from ._models import Acct


def stored(db: Any, cls: type, oid: Any) -> Any:
    return db[cls._uow_meta.collection].find_one({"_id": oid})


@pytest.fixture
def configured(embedded_uri: str) -> Iterator[Any]:
    """uow configured on a fresh embedded store; returns a raw database on it."""
    from uow._backend import make_client

    uow.configure(embedded_uri, "a9svc")
    yield make_client(embedded_uri)["a9svc"]
    uow.configure()


@pytest.fixture
def configured_secantus(secantus_server: Any, secantus_client: Any) -> Iterator[Any]:
    import uuid

    name = f"a9svc_{uuid.uuid4().hex[:10]}"
    uow.configure(secantus_server.uri, name)
    yield secantus_client[name]
    uow.configure()
    secantus_client.drop_database(name)


def test_unit_of_work_context_commits(configured: Any) -> None:
    with uow.unit_of_work() as s:
        assert uow.current_session() is s
        a = Acct(name="a", balance=4)
        s.add(a)
    assert stored(configured, Acct, a.id) == {"_id": a.id, "name": "a", "balance": 4, "tags": []}
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_unit_of_work_decorator_commits_and_returns(configured: Any) -> None:
    @uow.unit_of_work
    def make(name: str) -> Acct:
        a = Acct(name=name)
        uow.current_session().add(a)
        return a

    a = make("x")
    assert stored(configured, Acct, a.id)["name"] == "x"


def test_unit_of_work_decorator_with_options(configured: Any) -> None:
    @uow.unit_of_work(max_requests=1)
    def two_queries() -> None:
        s = uow.current_session()
        s.count(Acct)
        s.count(Acct)

    with pytest.raises(uow.TooManyRequests):
        two_queries()


def test_unit_of_work_rolls_back_on_exception(configured: Any) -> None:
    with pytest.raises(RuntimeError), uow.unit_of_work() as s:
        a = Acct(name="a")
        s.add(a)
        raise RuntimeError
    assert stored(configured, Acct, a.id) is None


def test_unit_of_work_unknown_option_type_error(configured: Any) -> None:
    with pytest.raises(TypeError), uow.unit_of_work(not_an_option=1):
        pass


def test_unit_of_work_joins_current_session(db: Any) -> None:
    with Session(db) as s:
        with uow.unit_of_work() as j:
            assert j is s
            a = Acct(name="a")
            j.add(a)
        # a joined block neither commits nor rolls back: still pending, not written
        assert s.state(a) is uow.ObjectState.PENDING
        assert stored(db, Acct, a.id) is None
    assert stored(db, Acct, a.id) is not None


@pytest.mark.transactions
def test_unit_of_work_joined_does_not_commit_flushed_work(db: Any) -> None:
    with Session(db) as s:
        with uow.unit_of_work() as j:
            assert j is s
            a = Acct(name="a")
            j.add(a)
            j.flush()
        assert stored(db, Acct, a.id) is None  # still inside the open transaction
    assert stored(db, Acct, a.id) is not None


def test_unit_of_work_joined_exception_marks_session(db: Any) -> None:
    s = Session(db)
    with s:
        with pytest.raises(ValueError), uow.unit_of_work():
            a = Acct(name="a")
            s.add(a)
            raise ValueError
        # not rolled back by the joined block
        assert s.state(a) is uow.ObjectState.PENDING
        with pytest.raises(uow.TransactionError):
            s.commit()
        with pytest.raises(uow.TransactionError):
            s.commit()  # still, until rollback()
        s.rollback()
        assert s.state(a) is uow.ObjectState.TRANSIENT
        b = Acct(name="b")
        s.add(b)
        s.commit()
    assert stored(db, Acct, a.id) is None
    assert stored(db, Acct, b.id) is not None


def test_unit_of_work_joined_exception_outer_block_exit_raises(db: Any) -> None:
    """The outer with-block exits normally, so it commits: that commit must refuse."""
    with pytest.raises(uow.TransactionError), Session(db) as s:
        try:
            with uow.unit_of_work():
                a = Acct(name="a")
                s.add(a)
                raise ValueError
        except ValueError:
            pass
        c = Acct(name="c")
        s.add(c)
    assert stored(db, Acct, a.id) is None
    assert stored(db, Acct, c.id) is None
    assert s.closed


@pytest.mark.transactions
def test_unit_of_work_joined_exception_flushed_work_not_committed(db: Any) -> None:
    with pytest.raises(uow.TransactionError), Session(db) as s:
        a = Acct(name="a")
        s.add(a)
        s.flush()
        try:
            with uow.unit_of_work():
                b = Acct(name="b")
                s.add(b)
                s.flush()
                raise ValueError
        except ValueError:
            pass
    assert db[Acct._uow_meta.collection].count_documents({}) == 0


def test_unit_of_work_joined_decorator_marks(db: Any) -> None:
    @uow.unit_of_work
    def boom() -> None:
        uow.current_session().add(Acct(name="z"))
        raise LookupError

    with Session(db) as s:
        with pytest.raises(LookupError):
            boom()
        with pytest.raises(uow.TransactionError):
            s.commit()
        s.rollback()
    assert db[Acct._uow_meta.collection].count_documents({}) == 0


def test_unit_of_work_nested_unit_of_work_joins(configured: Any) -> None:
    with uow.unit_of_work() as outer:
        with uow.unit_of_work() as inner:
            assert inner is outer
            a = Acct(name="a")
            inner.add(a)
        assert stored(configured, Acct, a.id) is None
    assert stored(configured, Acct, a.id) is not None


def test_unit_of_work_nested_inner_exception_outer_raises(configured: Any) -> None:
    with pytest.raises(uow.TransactionError), uow.unit_of_work() as outer:
        try:
            with uow.unit_of_work():
                outer.add(Acct(name="a"))
                raise ValueError
        except ValueError:
            pass
    assert configured[Acct._uow_meta.collection].count_documents({}) == 0


def test_unit_of_work_secantus_rolls_back_flushed(configured_secantus: Any) -> None:
    with pytest.raises(RuntimeError), uow.unit_of_work() as s:
        a = Acct(name="a")
        s.add(a)
        s.flush()
        raise RuntimeError
    assert stored(configured_secantus, Acct, a.id) is None


@pytest.mark.transactions
def test_transaction_block_inside_marked_session_refuses(db: Any) -> None:
    """After a joined block's exception, a later s.transaction() must not commit either."""
    s = Session(db)
    with s:
        try:
            with uow.unit_of_work():
                s.add(Acct(name="a"))
                raise ValueError
        except ValueError:
            pass
        with pytest.raises(uow.TransactionError), s.transaction():
            s.add(Acct(name="b"))
        s.rollback()
    assert db[Acct._uow_meta.collection].count_documents({}) == 0
