"""SPEC "Transactions and concurrency", errors, "Service layers", "Scale"."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import ReadPreference
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

import uow
from uow import Document, Session, field, service
from uow._backend import reset_embedded

from ._h import insert_raw, stored, stored_or_none

S = uow.ObjectState


class A4TItem(Document):
    __collection__ = "a4_t_items"
    name: str = ""
    n: int = 0


class A4TCode(Document):
    __collection__ = "a4_t_codes"
    code: str = field(unique=True)


class A4TVer(Document):
    __collection__ = "a4_t_ver"
    name: str = ""
    version: int = field(default=0, version=True)


class A4TShard(Document):
    __collection__ = "a4_t_shard"
    __shard_key__ = ("tenant_id",)
    tenant_id: str = ""
    name: str = ""


@pytest.fixture(autouse=True)
def _keep_default() -> Iterator[None]:
    before = service._snapshot()
    yield
    service._restore(before)


@pytest.fixture
def mm_uri() -> Iterator[str]:
    uri = f"mongomock://a4-{uuid.uuid4().hex}"
    yield uri
    reset_embedded(uri)


# ---------------------------------------------------------------- transactions


def test_a4_transactional_true_without_server_support(mm_uri: str) -> None:
    with pytest.raises(uow.TransactionError):
        Session.connect("a4", mm_uri, transactional=True)


def test_a4_transaction_entry_without_support(mm_uri: str) -> None:
    s = Session.connect("a4", mm_uri)
    with pytest.raises(uow.TransactionError) as err, s.transaction():
        pass
    assert hasattr(err.value, "retryable")
    with pytest.raises(uow.TransactionError):
        s.run_in_transaction(lambda: None)
    s.close()


@pytest.mark.transactions
def test_a4_transactional_true_on_server(db: Any) -> None:
    s = Session(db, transactional=True)
    s.add(A4TItem(name="a"))
    s.flush()
    assert db["a4_t_items"].count_documents({}) == 0
    s.commit()
    assert db["a4_t_items"].count_documents({}) == 1
    s.close()


@pytest.mark.transactions
def test_a4_transactional_false_never_uses_one(db: Any) -> None:
    s = Session(db, transactional=False)
    a = A4TItem(name="a")
    s.add(a)
    s.flush()
    assert stored(db, "a4_t_items", a.id)["name"] == "a"
    s.close()


@pytest.mark.transactions
def test_a4_transaction_block(db: Any) -> None:
    s = Session(db)
    a, b = A4TItem(name="a"), A4TItem(name="b")
    with s.transaction():
        s.add(a)
        s.flush()
        assert stored_or_none(db, "a4_t_items", a.id) is None
        s.add(b)  # flushed when the block is left
    assert stored(db, "a4_t_items", a.id)["name"] == "a"
    assert stored(db, "a4_t_items", b.id)["name"] == "b"
    c = A4TItem(name="c")
    with pytest.raises(KeyError), s.transaction():
        s.add(c)
        s.flush()
        raise KeyError("x")
    assert stored_or_none(db, "a4_t_items", c.id) is None
    assert s.state(c) is S.TRANSIENT
    s.close()


@pytest.mark.transactions
def test_a4_transaction_block_joins_open_transaction(db: Any) -> None:
    s = Session(db)
    a = A4TItem(name="a")
    s.add(a)
    s.flush()  # opens the transaction
    with pytest.raises(KeyError), s.transaction():
        s.add(A4TItem(name="b"))
        raise KeyError("x")
    assert stored_or_none(db, "a4_t_items", a.id) is None
    s.close()


@pytest.mark.transactions
def test_a4_run_in_transaction(db: Any) -> None:
    s = Session(db)

    def work(name: str, *, n: int) -> str:
        s.add(A4TItem(name=name, n=n))
        return f"{name}:{n}"

    assert s.run_in_transaction(work, "r", n=3) == "r:3"
    doc = db["a4_t_items"].find_one({"name": "r"})
    assert doc is not None and doc["n"] == 3
    s.close()


@pytest.mark.transactions
def test_a4_flush_failure_inside_transaction_requeues_all(db: Any) -> None:
    s = Session(db)
    s.ensure_indexes(A4TCode)
    s.save(A4TCode(code="taken"))
    s.commit()
    first = A4TCode(code="first")
    s.add(first)
    s.flush()
    dup = A4TCode(code="taken")
    s.add(dup)
    with pytest.raises(uow.FlushError):
        s.flush()
    assert s.state(first) is S.PENDING
    assert s.state(dup) is S.PENDING
    dup.code = "fixed"
    s.commit()
    assert db["a4_t_codes"].count_documents({}) == 3
    s.close()


def test_a4_flush_error_applied_and_requeued(db: Any) -> None:
    s = Session(db, transactional=False)
    s.ensure_indexes(A4TCode)
    s.save(A4TCode(code="taken"))
    a, dup, c = A4TCode(code="a"), A4TCode(code="taken"), A4TCode(code="c")
    s.add_all([a, dup, c])
    with pytest.raises(uow.DuplicateKeyError) as err:
        s.flush()
    e = err.value
    assert isinstance(e, uow.FlushError)
    assert e.cause is not None
    assert a in e.applied
    assert dup in e.not_applied and c in e.not_applied
    assert a not in e.not_applied
    assert list(e.in_doubt) == []
    assert "A4TCode" in str(e) and str(dup.id) in str(e) and "taken" in str(e)
    assert s.state(a) is S.PERSISTENT
    assert s.state(c) is S.PENDING
    dup.code = "fixed"
    r = s.flush()
    assert r.inserted == 2
    assert db["a4_t_codes"].count_documents({}) == 4
    s.close()


def test_a4_version_field(db: Any) -> None:
    s0 = Session(db)
    v = A4TVer(name="a")
    s0.save(v)
    s0.commit()
    assert stored(db, "a4_t_ver", v.id)["version"] == 0
    s0.close()
    s1, s2 = Session(db), Session(db)
    x1, x2 = s1.get(A4TVer, v.id), s2.get(A4TVer, v.id)
    assert x1 is not None and x2 is not None
    x2.name = "two"
    s2.commit()
    assert stored(db, "a4_t_ver", v.id)["version"] == 1
    assert x2.version == 1
    x1.name = "one"
    with pytest.raises(uow.StaleDocumentError):
        s1.commit()
    assert stored(db, "a4_t_ver", v.id)["name"] == "two"
    s1.rollback()
    s1.delete(x1)
    with pytest.raises(uow.StaleDocumentError):
        s1.flush()
    assert stored_or_none(db, "a4_t_ver", v.id) is not None
    s1.close()
    s2.close()


def test_a4_version_missing_key(db: Any) -> None:
    oid = insert_raw(db, "a4_t_ver", {"name": "legacy"})
    s = Session(db)
    x = s.get(A4TVer, oid)
    assert x is not None
    x.name = "new"
    s.commit()
    assert stored(db, "a4_t_ver", oid) == {"_id": oid, "name": "new", "version": 1}
    s.close()


def test_a4_too_many_requests(db: Any) -> None:
    s0 = Session(db)
    items = [A4TItem(name=str(i)) for i in range(4)]
    s0.add_all(items)
    s0.commit()
    s0.close()
    s = Session(db, max_requests=2)
    s.get(A4TItem, items[0].id)
    s.get(A4TItem, items[1].id)
    with pytest.raises(uow.TooManyRequests) as err:
        s.get(A4TItem, items[2].id)
    assert "2" in str(err.value)
    s.close()


@pytest.mark.parametrize(
    "options",
    [
        {"read_preference": ReadPreference.PRIMARY},
        {"read_concern": ReadConcern("majority")},
        {"write_concern": WriteConcern(w=1)},
    ],
    ids=["read_preference", "read_concern", "write_concern"],
)
def test_a4_session_concern_options(db: Any, options: dict[str, Any]) -> None:
    s = Session(db, **options)
    a = A4TItem(name="rc")
    s.add(a)
    s.commit()
    assert stored(db, "a4_t_items", a.id)["name"] == "rc"
    assert s.count(A4TItem) == 1
    s.close()


@pytest.mark.parametrize(
    "options",
    [
        {"read_preference": ReadPreference.PRIMARY},
        {"read_concern": ReadConcern("majority")},
        {"write_concern": WriteConcern(w=1)},
    ],
    ids=["read_preference", "read_concern", "write_concern"],
)
def test_a4_connect_concern_options_on_mongomock(mm_uri: str, options: dict[str, Any]) -> None:
    with Session.connect("a4", mm_uri, **options) as s:
        s.add(A4TItem(name="rc"))
    with Session.connect("a4", mm_uri) as check:
        assert [i.name for i in check.all(A4TItem)] == ["rc"]


def test_a4_shard_key_in_filters(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uow")
    s = Session(db, echo=True)
    x, y = A4TShard(tenant_id="t1", name="a"), A4TShard(tenant_id="t1", name="b")
    s.add_all([x, y])
    s.commit()
    caplog.clear()
    x.name = "changed"
    s.delete(y)
    s.commit()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "uow")
    assert f"'q': {{'_id': {x.id!r}, 'tenant_id': 't1'}}" in text
    assert f"{{'_id': {y.id!r}, 'tenant_id': 't1'}}" in text
    s.close()


# ---------------------------------------------------------------- service layers


def test_a4_configure_and_unit_of_work(mm_uri: str) -> None:
    uow.configure(uri=mm_uri, database="a4svc")
    with uow.unit_of_work() as s:
        assert uow.current_session() is s
        s.add(A4TItem(name="ctx"))

    @uow.unit_of_work()
    def service_call(name: str) -> Session:
        uow.current_session().add(A4TItem(name=name))
        return uow.current_session()

    service_call("deco")
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    with Session.connect("a4svc", mm_uri) as check:
        assert sorted(i.name for i in check.all(A4TItem)) == ["ctx", "deco"]


def test_a4_unit_of_work_rolls_back_on_error(mm_uri: str) -> None:
    uow.configure(mm_uri, "a4svc", transactional=False)
    with pytest.raises(ValueError), uow.unit_of_work() as s:
        s.add(A4TItem(name="dropped"))
        raise ValueError("x")
    with Session.connect("a4svc", mm_uri) as check:
        assert check.all(A4TItem) == []


def test_a4_unit_of_work_session_options(mm_uri: str) -> None:
    uow.configure(uri=mm_uri, database="a4svc")
    with uow.unit_of_work(max_requests=7, autoflush=False) as s:
        assert s.max_requests == 7
        s.add(A4TItem(name="x"))
        assert s.count(A4TItem) == 0


def test_a4_unit_of_work_joins(db: Any) -> None:
    @uow.unit_of_work()
    def joined(name: str) -> Session:
        uow.current_session().add(A4TItem(name=name))
        return uow.current_session()

    @uow.unit_of_work()
    def failing() -> None:
        uow.current_session().add(A4TItem(name="half"))
        raise LookupError("x")

    with Session(db) as outer:
        assert joined("a") is outer
        assert uow.current_session() is outer
        with pytest.raises(LookupError):
            failing()
        with pytest.raises(uow.TransactionError):
            outer.commit()
        outer.rollback()
        outer.add(A4TItem(name="after"))
    assert sorted(d["name"] for d in db["a4_t_items"].find()) == ["after"]


def test_a4_flask_extension(mm_uri: str) -> None:
    from flask import Flask

    from uow.contrib.flask import UnitOfWork

    for later in (False, True):
        app = Flask(f"a4app{later}")
        app.config.update(UOW_URI=mm_uri, UOW_DATABASE="a4fl", UOW_OPTIONS={"max_requests": 50})
        if later:
            UnitOfWork().init_app(app)
        else:
            UnitOfWork(app)

        @app.post("/ok/<name>")
        def ok(name: str) -> tuple[str, int]:
            uow.current_session().add(A4TItem(name=name))
            assert uow.current_session().max_requests == 50
            return "ok", 201

        @app.post("/bad/<name>")
        def bad(name: str) -> tuple[str, int]:
            uow.current_session().add(A4TItem(name=name))
            return "no", 503

        client = app.test_client()
        assert client.post(f"/ok/k{later}").status_code == 201
        assert client.post(f"/bad/d{later}").status_code == 503
    with Session.connect("a4fl", mm_uri) as check:
        assert sorted(i.name for i in check.all(A4TItem)) == ["kFalse", "kTrue"]


def test_a4_django_middleware(mm_uri: str) -> None:
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.test.utils import override_settings

    from uow.contrib.django import UnitOfWorkMiddleware

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["testserver"],
            DATABASES={},
            INSTALLED_APPS=[],
            ROOT_URLCONF=__name__,
        )
        django.setup()

    def view_ok(request: Any) -> HttpResponse:
        uow.current_session().add(A4TItem(name="kept"))
        return HttpResponse(status=200)

    def view_5xx(request: Any) -> HttpResponse:
        uow.current_session().add(A4TItem(name="dropped"))
        return HttpResponse(status=500)

    def view_raises(request: Any) -> HttpResponse:
        uow.current_session().add(A4TItem(name="raised"))
        raise KeyError("x")

    with override_settings(UOW={"URI": mm_uri, "DATABASE": "a4dj", "OPTIONS": {}}):
        assert UnitOfWorkMiddleware(view_ok)(RequestFactory().post("/")).status_code == 200
        assert UnitOfWorkMiddleware(view_5xx)(RequestFactory().post("/")).status_code == 500
        with pytest.raises(KeyError):
            UnitOfWorkMiddleware(view_raises)(RequestFactory().post("/"))
    with Session.connect("a4dj", mm_uri) as check:
        assert [i.name for i in check.all(A4TItem)] == ["kept"]


urlpatterns: list[Any] = []
