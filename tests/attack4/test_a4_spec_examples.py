"""SPEC's code blocks run as written (db fixture / mongomock:// URIs), their comments asserted."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

import uow
from uow import Document, Session, field
from uow._backend import reset_embedded

from ._h import stored, stored_or_none


class A4ExAddress(uow.Embedded):
    city: str
    zip: str | None = None


class A4ExUser(Document):
    __collection__ = "a4_users"  # default: snake_case of the class name
    __indexes__ = [uow.Index("email", unique=True)]
    name: str
    email: str
    visits: int = field(default=0, on_update="$inc")
    last_seen: datetime | None = field(default=None, on_update="$max")
    tags: list[str] = field(factory=list)
    address: A4ExAddress | None = None
    version: int = field(default=0, version=True)  # optimistic concurrency, opt-in


@pytest.fixture
def mm_uri() -> Iterator[str]:
    uri = f"mongomock://a4-{uuid.uuid4().hex}"
    yield uri
    reset_embedded(uri)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "uow" and r.levelno == logging.INFO]


def test_a4_spec_intro_example(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uow")
    with Session(db, echo=True) as s:  # commit on success, rollback on error
        User = A4ExUser  # SPEC's name
        u = User(name="ann", email="ann@x.io")
        s.add(u)
        caplog.clear()
        result = s.flush()  # one insert round trip
        assert result.round_trips == 1
        assert result.inserted == 1
        ops = [m.split(" ")[0] for m in _messages(caplog)]
        assert [op for op in ops if op != "createIndexes"] == ["insert"]  # index builds aside
        same = s.get(User, u.id)
        assert same is u  # identity map
        caplog.clear()
        u.visits += 1  # persisted as {"$inc": {"visits": 1}}
        u.tags.append("vip")  # {"$push": {"tags": {"$each": ["vip"]}}}
        for old in s.query(User).filter(User.visits > 10, name__startswith="a"):
            s.delete(old)
    # the query autoflushed the update
    text = "\n".join(_messages(caplog))
    assert "'$inc': {'visits': 1}" in text
    assert "'$push': {'tags': {'$each': ['vip']}}" in text
    doc = stored(db, "a4_users", u.id)
    assert doc == {
        "_id": u.id,
        "name": "ann",
        "email": "ann@x.io",
        "visits": 1,
        "last_seen": None,
        "tags": ["vip"],
        "address": None,
        "version": 1,
    }
    info = db["a4_users"].index_information()
    assert any(list(v["key"]) == [("email", 1)] and v.get("unique") for v in info.values()), info


def test_a4_spec_intro_query_deletes(db: Any) -> None:
    with Session(db) as s:
        for name, visits in (("ann", 11), ("amy", 3), ("bob", 20)):
            s.add(A4ExUser(name=name, email=f"{name}@x.io", visits=visits))
    with Session(db) as s:
        for old in s.query(A4ExUser).filter(A4ExUser.visits > 10, name__startswith="a"):
            s.delete(old)
    assert sorted(d["name"] for d in db["a4_users"].find()) == ["amy", "bob"]


@pytest.mark.transactions
def test_a4_spec_intro_exception_with_transactions(db: Any) -> None:
    u = A4ExUser(name="ann", email="ann@x.io")
    with pytest.raises(RuntimeError), Session(db) as s:
        s.add(u)
        s.flush()
        raise RuntimeError("inside")
    # the whole block is one transaction and nothing is written
    assert stored_or_none(db, "a4_users", u.id) is None


def test_a4_spec_intro_exception_without_transactions(mm_uri: str) -> None:
    u = A4ExUser(name="ann", email="ann@x.io")
    later = A4ExUser(name="bob", email="bob@x.io")
    with pytest.raises(RuntimeError), Session.connect("shop", mm_uri) as s:
        s.add(u)
        s.flush()
        s.add(later)
        raise RuntimeError("inside")
    # what an earlier flush wrote stays and only the unflushed work is dropped
    with Session.connect("shop", mm_uri) as check:
        assert [x.name for x in check.all(A4ExUser)] == ["ann"]


def test_a4_spec_script_style(mm_uri: str) -> None:
    s = Session.connect("db", mm_uri)
    s.add(A4ExUser(name="ann", email="a@x.io"))
    s.flush()
    s.commit()
    s.close()
    s.close()  # a second close() does nothing
    with Session.connect("db", mm_uri) as check:
        assert check.count(A4ExUser) == 1


def test_a4_spec_service_layer_style(mm_uri: str) -> None:
    from uow import service

    before = service._snapshot()
    try:
        uow.configure(uri=mm_uri, database="db")

        @uow.unit_of_work()
        def create(name: str) -> None:
            uow.current_session().add(A4ExUser(name=name, email=f"{name}@x.io"))

        create("ann")
        with uow.unit_of_work() as s:
            assert [x.name for x in s.all(A4ExUser)] == ["ann"]
    finally:
        service._restore(before)


def test_a4_spec_session_signature_block(db: Any) -> None:
    s = Session(
        db,
        cache_size=10_000,
        autoflush=True,
        tz_aware=False,
        timezone=None,
        auto_ensure=True,
        transactional=None,
        no_tracking=False,
        max_requests=None,
        echo=False,
        transaction_retry_s=120.0,
        read_preference=None,
        read_concern=None,
        write_concern=None,
    )
    s.add(A4ExUser(name="ann", email="a@x.io"))
    s.commit()
    s.close()
    assert db["a4_users"].count_documents({}) == 1


def test_a4_spec_connect_signature_block(mm_uri: str) -> None:
    s = Session.connect(
        "shop",
        mm_uri,
        replica_set=None,
        cache_size=None,
        autoflush=False,
        tz_aware=True,
        auto_ensure=False,
        transactional=None,
        no_tracking=False,
        max_requests=100,
        echo=False,
        transaction_retry_s=5.0,
    )
    s.add(A4ExUser(name="ann", email="a@x.io"))
    s.commit()
    assert s.count(A4ExUser) == 1
    s.close()


def test_a4_spec_tz_aware(db: Any) -> None:
    s = Session(db, tz_aware=True)
    u = A4ExUser(name="t", email="t@x.io", last_seen=datetime(2024, 1, 1, 12))
    s.add(u)
    s.commit()
    s.close()
    s2 = Session(db, tz_aware=True)
    back = s2.get(A4ExUser, u.id)
    assert back is not None and back.last_seen is not None
    assert back.last_seen.tzinfo is not None
    s2.close()
