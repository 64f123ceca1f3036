"""More SPEC sentences: round trips, requests, cache bounds, contexts, lookups as data."""

from __future__ import annotations

import decimal
import gc
import logging
import threading
import weakref
from typing import Any

import bson
import pytest

import uow
from uow import Document, Session, field

from ._h import stored, stored_or_none

S = uow.ObjectState


class A4MItem(Document):
    __collection__ = "a4_m_items"
    name: str = ""
    n: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class A4MAddr(uow.Embedded):
    city: str = ""


class A4MUser(Document):
    __collection__ = "a4_m_users"
    name: str = ""
    address: A4MAddr | None = None


class A4MPost(Document):
    __collection__ = "a4_m_posts"
    author: uow.Ref[A4MUser] | None = None


def test_a4_one_write_command_per_collection_and_kind(db: Any) -> None:
    s = Session(db)
    items = [A4MItem(name=str(i)) for i in range(1500)]
    s.add_all(items)
    r = s.flush()
    assert (r.inserted, r.round_trips) == (1500, 1)
    for it in items[:3]:
        it.n += 1
    items[3].name = "x"
    r = s.flush()
    assert (r.updated, r.round_trips) == (4, 1)
    for it in items[10:13]:
        s.delete(it)
    r = s.flush()
    assert (r.deleted, r.round_trips) == (3, 1)
    s.commit()
    assert db["a4_m_items"].count_documents({}) == 1497
    s.close()


def test_a4_flush_with_nothing_changed_sends_nothing(db: Any) -> None:
    s = Session(db)
    a = A4MItem(name="a")
    s.add(a)
    s.commit()
    before = s.stats().requests
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted, r.round_trips) == (0, 0, 0, 0)
    assert s.stats().requests == before
    s.close()


def test_a4_requests_count_every_command(db: Any) -> None:
    s = Session(db, auto_ensure=False)
    s.add(A4MItem())
    s.flush()
    s.commit()
    st = s.stats()
    assert st.round_trips == 1
    assert st.requests >= 1
    base = st.requests
    s.count(A4MItem)
    assert s.stats().requests == base + 1
    s.close()


@pytest.mark.transactions
def test_a4_requests_count_transaction_commands(db: Any) -> None:
    s = Session(db, auto_ensure=False)
    s.add(A4MItem())
    s.flush()
    mid = s.stats().requests
    s.commit()
    assert s.stats().requests == mid + 1  # commitTransaction
    s.close()


def test_a4_max_requests_not_sent_and_limit_in_message(db: Any) -> None:
    s = Session(db, max_requests=1, auto_ensure=False)
    a = A4MItem(name="a")
    s.add(a)
    s.flush()
    b = A4MItem(name="b")
    s.add(b)
    with pytest.raises(uow.TooManyRequests) as err:
        s.flush()
    assert "1" in str(err.value)
    assert stored_or_none(db, "a4_m_items", b.id) is None
    s.rollback()  # clean-up is never refused
    s.close()


@pytest.mark.transactions
def test_a4_max_requests_cleanup_never_refused(db: Any) -> None:
    s = Session(db, max_requests=1, auto_ensure=False)
    a = A4MItem(name="a")
    s.add(a)
    s.flush()  # the one request; a transaction is open
    with pytest.raises(uow.TooManyRequests):
        s.commit()
    s.rollback()
    s.close()
    assert stored_or_none(db, "a4_m_items", a.id) is None


def test_a4_cache_size_bounds_clean_documents(db: Any) -> None:
    s = Session(db)
    s.add_all([A4MItem(name=str(i)) for i in range(6)])
    s.commit()
    s.close()
    s2 = Session(db, cache_size=2)
    refs = [weakref.ref(x) for x in s2.query(A4MItem)]
    gc.collect()
    alive = [r for r in refs if r() is not None]
    assert len(alive) == 2
    assert s2.stats().identity_map_size == 2
    s2.close()


def test_a4_current_session_per_thread(db: Any) -> None:
    seen: list[Any] = []

    def other() -> None:
        try:
            uow.current_session()
            seen.append("found")
        except uow.NoActiveSession:
            seen.append("none")

    with Session(db) as s:
        assert uow.current_session() is s
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen == ["none"]


def test_a4_close_in_with_error_path_does_not_warn(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="uow")
    with pytest.raises(RuntimeError), Session(db) as s:
        s.add(A4MItem())
        raise RuntimeError("x")
    assert not [r for r in caplog.records if r.name == "uow" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "lookups",
    [
        {"name": {"$ne": None}},
        {"name__ne": {"$gt": ""}},
        {"name__in": [{"$ne": None}]},
        {"address__city": {"$exists": True}},
        {"address": {"$ne": None}},
    ],
    ids=["eq", "ne", "in", "nested", "embedded"],
)
def test_a4_lookup_value_is_data(db: Any, lookups: dict[str, Any]) -> None:
    s = Session(db)
    s.add(A4MUser(name="x", address=A4MAddr(city="c")))
    s.commit()
    with pytest.raises(uow.ValidationError):
        s.filter(A4MUser, **lookups)
    s.close()


def test_a4_what_changed_excludes_pending_inserts(db: Any) -> None:
    s = Session(db)
    s.add(A4MItem())
    assert s.what_changed() == {}
    assert s.has_changes()
    s.close()


def test_a4_original_value_after_flush(db: Any) -> None:
    s = Session(db)
    a = A4MItem(name="a")
    s.add(a)
    s.flush()
    a.name = "b"
    s.flush()
    a.name = "c"
    assert s.original_value(a, "name") == "b"
    s.close()


def test_a4_ref_refuses_other_class(db: Any) -> None:
    with pytest.raises(uow.ValidationError):
        A4MPost(author=A4MItem())  # type: ignore[arg-type]
    p = A4MPost()
    with pytest.raises(uow.ValidationError):
        p.author = A4MItem()  # type: ignore[assignment]
    u = A4MUser(name="u")
    p.author = u  # type: ignore[assignment]
    assert isinstance(p.author, uow.Ref) and p.author.id == u.id
    p.author = u.id  # type: ignore[assignment]
    assert p.author.id == u.id


def test_a4_refresh_reads_server_values(db: Any) -> None:
    s = Session(db)
    a = A4MItem(name="a", tags=["x"])
    s.add(a)
    s.commit()
    db["a4_m_items"].update_one({"_id": a.id}, {"$set": {"tags": ["server"], "n": 9}})
    a.tags.append("local")
    s.refresh(a)
    assert a.tags == ["server"] and a.n == 9
    assert not s.is_dirty(a)
    s.close()


def test_a4_remove_query_runs_now(db: Any) -> None:
    s = Session(db, transactional=False)
    a = A4MItem(name="gone")
    s.add(a)
    s.commit()
    assert s.remove_query(A4MItem).filter(A4MItem.name == "gone").execute() == 1
    assert stored_or_none(db, "a4_m_items", a.id) is None
    assert s.state(a) is S.DETACHED
    assert s.get(A4MItem, a.id) is None
    s.close()


def test_a4_get_unknown_id_returns_none(db: Any) -> None:
    s = Session(db)
    assert s.get(A4MItem, bson.ObjectId()) is None
    s.close()


def test_a4_commit_flushes(db: Any) -> None:
    s = Session(db)
    a = A4MItem(name="a")
    s.add(a)
    s.commit()
    assert stored(db, "a4_m_items", a.id)["name"] == "a"
    assert s.state(a) is S.PERSISTENT
    s.close()


class A4MKinds(Document):
    __collection__ = "a4_m_kinds"
    price: decimal.Decimal = decimal.Decimal("1")
    addr: A4MAddr | None = None
    st: set[str] = field(factory=set)
    author: uow.Ref[A4MUser] | None = None


def test_a4_what_changed_values_are_the_attribute_values(db: Any) -> None:
    """what_changed's paths are attribute names: its (old, new) are what the attributes
    held and hold (as original_value() and the attribute give them), not the BSON forms."""
    s = Session(db)
    u = A4MUser(name="u")
    k = A4MKinds()
    s.add_all([u, k])
    s.commit()
    k.price = decimal.Decimal("2.5")
    k.addr = A4MAddr(city="x")
    k.st.add("a")
    k.author = u  # type: ignore[assignment]
    changes = s.what_changed()[("a4_m_kinds", k.id)]
    assert changes["price"] == (decimal.Decimal("1"), decimal.Decimal("2.5"))
    assert changes["addr"] == (None, A4MAddr(city="x"))
    assert changes["st"] == (set(), {"a"})
    assert changes["price"][0] == s.original_value(k, "price")
    assert changes["st"][0] == s.original_value(k, "st")
    s.close()


def test_a4_session_on_a_database_does_not_close_its_client(db: Any) -> None:
    s = Session(db)
    s.add(A4MItem(name="a"))
    s.commit()
    s.close()
    assert db["a4_m_items"].count_documents({}) == 1  # the caller's client still works


@pytest.mark.transactions
def test_a4_joined_unit_of_work_does_not_commit(db: Any) -> None:
    @uow.unit_of_work()
    def joined() -> None:
        uow.current_session().add(A4MItem(name="joined"))
        uow.current_session().flush()

    with Session(db) as outer:
        joined()
        assert db["a4_m_items"].count_documents({}) == 0
        assert outer.has_changes() or outer.stats().round_trips == 1
    assert db["a4_m_items"].count_documents({}) == 1


def test_a4_count_with_subclasses(db: Any) -> None:
    from .test_a4_reading import A4RAnimal, A4RDog

    s = Session(db)
    s.add_all([A4RAnimal(name="a"), A4RDog(name="d"), A4RDog(name="e")])
    s.commit()
    assert s.count(A4RAnimal) == 3
    assert s.count(A4RDog) == 2
    assert s.query(A4RAnimal, exclude_subclasses=True).count() == 1
    s.close()


def test_a4_db_name_paths_use_attribute_names(db: Any) -> None:
    from .test_a4_documents import A4DocUser

    s = Session(db)
    u = A4DocUser(name="n", email="e@x")
    s.add(u)
    s.commit()
    u.email = "f@x"
    assert s.dirty_fields(u) == ["email"]
    assert s.what_changed() == {("a4_doc_users", u.id): {"email": ("e@x", "f@x")}}
    assert s.original_value(u, "email") == "e@x"
    assert s.query(A4DocUser).filter(email="x").raw() == {"mail": "x"}
    s.commit()
    s.close()
    s2 = Session(db)
    part = s2.query(A4DocUser).fields("email").one()
    assert part.email == "f@x"
    with pytest.raises(uow.FieldNotLoaded):
        _ = part.name
    s2.close()


@pytest.mark.transactions
def test_a4_rollback_of_document_loaded_in_aborted_transaction(db: Any) -> None:
    s0 = Session(db)
    y = A4MItem(name="y", n=1)
    s0.add(y)
    s0.commit()
    s0.close()
    s = Session(db)
    s.update(A4MItem(id=y.id, name="aborted", n=5))  # a transient change: $inc 5
    s.flush()
    loaded = s.get(A4MItem, y.id)
    assert loaded is not None
    assert (loaded.n, loaded.name) == (6, "aborted")
    s.rollback()
    assert (loaded.n, loaded.name) == (1, "y")
    assert stored(db, "a4_m_items", y.id)["n"] == 1
    s.close()


@pytest.mark.transactions
def test_a4_rollback_after_failed_flush_restores_deleted(db: Any) -> None:
    from .test_a4_txn_service import A4TCode

    s = Session(db)
    s.ensure_indexes(A4TCode)
    keep, taken = A4TCode(code="keep"), A4TCode(code="taken")
    s.add_all([keep, taken])
    s.commit()
    s.delete(keep)
    s.flush()
    s.add(A4TCode(code="taken"))
    with pytest.raises(uow.FlushError) as err:
        s.flush()
    assert s.state(keep) is S.DELETED
    assert "transaction" in str(err.value).lower()
    s.rollback()
    assert s.state(keep) is S.PERSISTENT
    assert stored(db, "a4_t_codes", keep.id)["code"] == "keep"
    s.close()
