"""The unit of work: adding, deleting, updating, flushing, committing, rolling back,
closing, the context manager, object states, the identity-map management calls,
inspection, and the session options (no_tracking, echo, max_requests, auto_ensure).

Every test taking ``db`` runs on the mongomock and the SecantusDB lanes. On
SecantusDB a session writes inside a transaction until it commits, so a test
that reads the database around the session commits first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import bson
import pytest

import uow
from uow import DuplicateKeyError, NoActiveSession, SessionClosedError, TooManyRequests, UowError
from uow._backend import make_client, reset_embedded
from uow._context import current_session
from uow._state import ObjectState
from uow.session import FlushResult, Session, SessionStats

from ._support import (
    Sessions,
    SxAccount,
    SxAddress,
    SxAnimal,
    SxCat,
    SxCounter,
    SxDog,
    SxFlat,
    SxOrder,
    SxPerson,
    insert_raw,
    sessions_on,
    stored,
    stored_one,
)

TRANSIENT = ObjectState.TRANSIENT
PENDING = ObjectState.PENDING
PERSISTENT = ObjectState.PERSISTENT
DELETED = ObjectState.DELETED
DETACHED = ObjectState.DETACHED


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


def _names(db: Any, collection: str) -> list[str]:
    return sorted(doc["name"] for doc in stored(db, collection))


# ------------------------------------------------------------------ add / save


def test_states_through_add_flush_delete_flush(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    assert s.state(ann) is TRANSIENT
    s.add(ann)
    assert s.state(ann) is PENDING
    assert s.flush() == FlushResult(inserted=1, round_trips=1)
    assert s.state(ann) is PERSISTENT
    s.delete(ann)
    assert s.state(ann) is DELETED
    assert s.flush() == FlushResult(deleted=1, round_trips=1)
    assert s.state(ann) is DETACHED
    s.commit()
    assert stored(sessions.db, "people") == []


def test_add_stores_the_document_on_commit(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann", tags=["a"], address=SxAddress(city="Oslo"), nick="A")
    s.add(ann)
    s.commit()
    assert stored(sessions.db, "people") == [
        {
            "_id": ann.id,
            "name": "ann",
            "age": 0,
            "visits": 0,
            "tags": ["a"],
            "labels": [],
            "scores": {},
            "address": {"city": "Oslo", "zip": None},
            "places": [],
            "nk": "A",
        }
    ]


def test_adding_a_persistent_document_is_a_no_op(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.save(ann)
    s.add(ann)
    s.add_all([ann, ann])
    assert s.state(ann) is PERSISTENT
    assert s.flush() == FlushResult()
    s.commit()
    assert len(stored(sessions.db, "people")) == 1


def test_add_all_queues_every_document_for_one_insert(sessions: Sessions) -> None:
    s = sessions.open()
    people = [SxPerson(name=name) for name in ("a", "b", "c")]
    s.add_all(people)
    assert [s.state(p) for p in people] == [PENDING] * 3
    assert s.flush() == FlushResult(inserted=3, round_trips=1)
    s.commit()
    assert _names(sessions.db, "people") == ["a", "b", "c"]


def test_save_adds_and_flushes(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    assert s.save(ann) == FlushResult(inserted=1, round_trips=1)
    assert s.state(ann) is PERSISTENT
    ann.age = 3
    assert s.save(ann) == FlushResult(updated=1, round_trips=1)
    s.commit()
    assert stored(sessions.db, "people")[0]["age"] == 3


def test_a_second_object_for_a_tracked_id_is_refused(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.save(ann)
    with pytest.raises(UowError, match="already in this session"):
        s.add(SxPerson(id=ann.id, name="impostor"))


def test_an_object_of_another_open_session_is_refused(sessions: Sessions) -> None:
    first, second = sessions.open(), sessions.open()
    ann = SxPerson(name="ann")
    first.add(ann)
    assert second.state(ann) is DETACHED
    with pytest.raises(UowError, match="another session"):
        second.add(ann)
    with pytest.raises(UowError, match="another session"):
        second.delete(ann)


# ----------------------------------------------------------------------- delete


def test_delete_removes_the_document(sessions: Sessions) -> None:
    (kept, gone) = insert_raw(sessions.db, "flats", [{"name": "kept"}, {"name": "gone"}])
    s = sessions.open()
    doc = s.get(SxFlat, gone)
    assert doc is not None
    s.delete(doc)
    s.delete(doc)  # twice: still one delete
    assert s.get(SxFlat, gone) is None  # a deleted document is not found
    assert s.stats().pending_deletes == 1
    assert s.flush() == FlushResult(deleted=1, round_trips=1)
    s.commit()
    assert [d["_id"] for d in stored(sessions.db, "flats")] == [kept]


def test_deleting_a_pending_insert_cancels_it(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.add(ann)
    s.delete(ann)
    assert s.state(ann) is TRANSIENT
    assert s.get(SxPerson, ann.id) is None
    assert s.flush() == FlushResult()
    s.commit()
    assert stored(sessions.db, "people") == []


def test_deleting_a_never_stored_document_is_refused(sessions: Sessions) -> None:
    s = sessions.open()
    with pytest.raises(UowError, match="never stored"):
        s.delete(SxPerson(name="ghost"))


def test_delete_then_add_with_the_same_id_is_one_replace(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "old", "n": 1, "extra": "x"}])
    s = sessions.open()
    old = s.get(SxFlat, doc_id)
    assert old is not None
    s.delete(old)
    new = SxFlat(id=doc_id, name="new", n=2)
    s.add(new)
    assert s.state(old) is DELETED
    assert s.state(new) is PENDING
    assert s.get(SxFlat, doc_id) is new  # the id now stands for the new object
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    assert s.state(old) is DETACHED
    assert s.state(new) is PERSISTENT
    assert s.get(SxFlat, doc_id) is new
    s.commit()
    assert stored(sessions.db, "flats") == [{"_id": doc_id, "name": "new", "n": 2}]


def test_delete_then_add_then_delete_again_deletes(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "old"}])
    s = sessions.open()
    old = s.get(SxFlat, doc_id)
    assert old is not None
    s.delete(old)
    new = SxFlat(id=doc_id, name="new")
    s.add(new)
    s.delete(new)  # cancels the re-insert; the delete stays
    assert s.state(new) is TRANSIENT
    assert s.state(old) is DELETED
    assert s.flush() == FlushResult(deleted=1, round_trips=1)
    s.commit()
    assert stored(sessions.db, "flats") == []


# ----------------------------------------------------------------------- update


def test_update_forces_an_update_of_a_clean_tracked_document(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "ann", "n": 1}])
    s = sessions.open()
    doc = s.get(SxFlat, doc_id)
    assert doc is not None
    assert s.flush() == FlushResult()
    s.update(doc)
    assert s.is_dirty(doc)
    assert s.stats().pending_updates == 1
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    assert not s.is_dirty(doc)
    assert s.flush() == FlushResult()
    s.commit()
    assert stored(sessions.db, "flats") == [{"_id": doc_id, "name": "ann", "n": 1}]


def test_update_operators_can_be_overridden(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "people", [{"name": "ann", "visits": 1}])
    s = sessions.open()
    ann = s.get(SxPerson, doc_id)
    assert ann is not None
    # Another writer adds 10 meanwhile: $inc (the declared operator) would keep
    # it; the override $set writes this session's value.
    sessions.db.people.update_one({"_id": doc_id}, {"$inc": {"visits": 10}})
    ann.visits = 5
    s.update(ann, visits="$set")
    s.commit()
    assert stored_one(sessions.db, "people", doc_id)["visits"] == 5  # type: ignore[index]

    s2 = sessions.open()
    again = s2.get(SxPerson, doc_id)
    assert again is not None
    sessions.db.people.update_one({"_id": doc_id}, {"$inc": {"visits": 10}})
    again.visits += 1  # declared $inc: the delta, so the other writer's 10 stay
    s2.commit()
    assert stored_one(sessions.db, "people", doc_id)["visits"] == 16  # type: ignore[index]
    assert again.visits == 6  # the value this session computed


def test_update_ops_take_query_fields(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "people", [{"name": "ann", "visits": 1}])
    s = sessions.open()
    ann = s.get(SxPerson, doc_id)
    assert ann is not None
    sessions.db.people.update_one({"_id": doc_id}, {"$inc": {"visits": 10}})
    ann.visits = 3
    s.update(ann, update_ops={SxPerson.visits: "$max"})
    s.commit()
    assert stored_one(sessions.db, "people", doc_id)["visits"] == 11  # type: ignore[index]


def test_update_refuses_unknown_fields_and_operators(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.save(ann)
    with pytest.raises(uow.ValidationError, match="no field"):
        s.update(ann, nope="$set")
    with pytest.raises(uow.ValidationError, match="not an operator"):
        s.update(ann, visits="$rename")


def test_update_of_an_untracked_document_upserts_and_increments(sessions: Sessions) -> None:
    s = sessions.open()
    counter = SxCounter(hits=3, note="first")
    s.update(counter, upsert=True)
    assert s.state(counter) is TRANSIENT
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.update(SxCounter(id=counter.id, hits=2, note="second"), upsert=True)
    s.commit()
    doc = stored_one(sessions.db, "counters", counter.id)
    assert doc is not None
    assert (doc["hits"], doc["note"]) == (5, "second")  # $inc adds the value


def test_update_of_an_untracked_document_without_upsert_creates_nothing(
    sessions: Sessions,
) -> None:
    s = sessions.open()
    s.update(SxCounter(hits=3))
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    assert stored(sessions.db, "counters") == []


def test_update_with_an_id_expression_targets_by_filter(sessions: Sessions) -> None:
    ann_id, bob_id = insert_raw(
        sessions.db, "flats", [{"name": "ann", "n": 1}, {"name": "bob", "n": 1}]
    )
    s = sessions.open()
    s.update(SxFlat(name="bob", n=7), id_expression=SxFlat.name == "bob", n="$set")
    s.update(SxFlat(name="ann", n=40), id_expression={"name": "ann"})
    s.commit()
    assert stored(sessions.db, "flats") == sorted(
        [{"_id": ann_id, "name": "ann", "n": 40}, {"_id": bob_id, "name": "bob", "n": 7}],
        key=lambda d: str(d["_id"]),
    )


# -------------------------------------------------------------- commit / rollback


def test_commit_makes_the_work_visible_to_another_session(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.add(ann)
    s.commit()
    other = sessions.open()
    loaded = other.get(SxPerson, ann.id)
    assert loaded is not None
    assert loaded is not ann
    assert loaded.name == "ann"


def test_rollback_drops_the_queue_and_restores_documents(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(
        name="ann", tags=["a"], scores={"x": 1}, labels={"l"}, address=SxAddress(city="Oslo")
    )
    bob = SxPerson(name="bob")
    s.add_all([ann, bob])
    s.commit()
    ann.name = "changed"
    ann.tags.append("b")
    ann.scores["y"] = 2
    ann.labels.add("m")
    ann.address.city = "Bergen"  # type: ignore[union-attr]
    s.delete(bob)
    carl = SxPerson(name="carl")
    s.add(carl)
    s.update(ann)

    s.rollback()

    assert (ann.name, ann.tags, ann.scores, ann.labels) == ("ann", ["a"], {"x": 1}, {"l"})
    assert ann.address == SxAddress(city="Oslo")
    assert s.state(ann) is PERSISTENT
    assert s.state(bob) is PERSISTENT
    assert s.state(carl) is TRANSIENT
    assert not s.is_dirty(ann)
    assert not s.has_changes()
    assert s.stats().pending_inserts == s.stats().pending_deletes == 0
    assert s.flush() == FlushResult()
    s.commit()
    assert _names(sessions.db, "people") == ["ann", "bob"]


def test_rollback_without_a_transaction_restores_the_last_flush(sessions: Sessions) -> None:
    # transactional=False on both lanes: the flushed write stays, as it would on
    # a server without transactions.
    s = sessions.open(transactional=False)
    ann = SxPerson(name="ann")
    s.save(ann)
    ann.name = "bob"
    s.flush()
    ann.name = "carl"
    ann.tags.append("x")
    s.rollback()
    assert (ann.name, ann.tags) == ("bob", [])
    assert s.state(ann) is PERSISTENT
    assert _names(sessions.db, "people") == ["bob"]


@pytest.mark.transactions
def test_rollback_in_a_transaction_restores_the_last_commit(sessions: Sessions) -> None:
    s = sessions.open()
    assert s.transactional
    ann, bob = SxPerson(name="ann"), SxPerson(name="bob")
    s.add_all([ann, bob])
    s.commit()
    ann.name = "flushed"
    s.delete(bob)
    carl = SxPerson(name="carl")
    s.add(carl)
    s.flush()
    assert s.state(bob) is DETACHED
    assert s.state(carl) is PERSISTENT

    s.rollback()

    assert ann.name == "ann"
    assert s.state(ann) is PERSISTENT
    assert s.state(bob) is PERSISTENT  # its delete was aborted
    assert s.get(SxPerson, bob.id) is bob
    assert s.state(carl) is TRANSIENT  # first inserted in the aborted transaction
    assert not s.has_changes()
    assert _names(sessions.db, "people") == ["ann", "bob"]


@pytest.mark.transactions
@pytest.mark.parametrize("same_object", [True, False], ids=["same-object", "new-object"])
def test_rollback_of_a_delete_and_re_add_in_a_transaction(
    sessions: Sessions, same_object: bool
) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.save(ann)
    s.commit()
    s.delete(ann)
    s.flush()
    again = ann if same_object else SxPerson(id=ann.id, name="again")
    s.add(again)
    s.flush()
    assert s.state(again) is PERSISTENT
    s.rollback()
    assert s.state(ann) is PERSISTENT
    assert s.get(SxPerson, ann.id) is ann
    if not same_object:
        assert s.state(again) is TRANSIENT
    assert ann.name == "ann"
    assert not s.has_changes()
    assert _names(sessions.db, "people") == ["ann"]


def test_rollback_brings_back_a_replaced_document(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "old"}])
    s = sessions.open()
    old = s.get(SxFlat, doc_id)
    assert old is not None
    s.delete(old)
    new = SxFlat(id=doc_id, name="new")
    s.add(new)
    s.rollback()
    assert s.state(old) is PERSISTENT
    assert s.state(new) is TRANSIENT
    assert s.get(SxFlat, doc_id) is old
    assert s.stats().identity_map_size == 1
    assert s.flush() == FlushResult()


# --------------------------------------------------------------- context manager


def test_with_block_commits_and_closes(sessions: Sessions) -> None:
    ann = SxPerson(name="ann")
    with Session(sessions.db) as s:
        s.add(ann)
    assert s.closed
    assert _names(sessions.db, "people") == ["ann"]
    assert sessions.open().state(ann) is DETACHED


def test_with_block_rolls_back_unflushed_work_on_an_exception(sessions: Sessions) -> None:
    ann = SxPerson(name="ann")
    with pytest.raises(RuntimeError, match="boom"), Session(sessions.db) as s:
        s.add(ann)
        raise RuntimeError("boom")
    assert s.closed
    assert stored(sessions.db, "people") == []
    assert sessions.open().state(ann) is TRANSIENT


def test_with_block_without_transaction_keeps_what_was_flushed(sessions: Sessions) -> None:
    # transactional=False: what an earlier flush wrote stays (no transaction to abort).
    with pytest.raises(RuntimeError), Session(sessions.db, transactional=False) as s:
        s.add(SxPerson(name="flushed"))
        s.flush()
        s.add(SxPerson(name="unflushed"))
        raise RuntimeError("boom")
    assert _names(sessions.db, "people") == ["flushed"]


@pytest.mark.transactions
def test_with_block_in_a_transaction_writes_nothing_on_an_exception(db: Any) -> None:
    with pytest.raises(RuntimeError), Session(db) as s:
        s.add(SxPerson(name="flushed"))
        s.flush()
        raise RuntimeError("boom")
    assert stored(db, "people") == []


def test_current_session_inside_and_outside_with_blocks(sessions: Sessions) -> None:
    with pytest.raises(NoActiveSession, match="no uow session is active"):
        current_session()
    with Session(sessions.db) as outer:
        assert current_session() is outer
        with Session(sessions.db) as inner:
            assert current_session() is inner
        assert current_session() is outer
    with pytest.raises(NoActiveSession):
        current_session()


def test_current_session_after_an_exception_in_the_block(sessions: Sessions) -> None:
    with pytest.raises(KeyError), Session(sessions.db):
        raise KeyError("x")
    with pytest.raises(NoActiveSession):
        current_session()


def test_current_session_is_per_thread(sessions: Sessions) -> None:
    seen: list[Any] = []

    def other_thread() -> None:
        try:
            seen.append(current_session())
        except NoActiveSession as exc:
            seen.append(exc)

    with Session(sessions.db) as s:
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert current_session() is s
    assert len(seen) == 1
    assert isinstance(seen[0], NoActiveSession)


def test_connect_on_the_embedded_backend(embedded_uri: str) -> None:
    # Session.connect with a mongomock:// host is about the embedded backend only.
    ann = SxPerson(name="ann")
    with Session.connect("shop", embedded_uri) as s:
        s.add(ann)
    with Session.connect("shop", embedded_uri) as again:
        found = again.get(SxPerson, ann.id)
        assert found is not None
        assert found.name == "ann"


def test_bad_options_are_refused(db: Any) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        Session(db, cache_size=-1)
    with pytest.raises(ValueError, match="max_requests"):
        Session(db, max_requests=-1)


# ------------------------------------------------------------------------ close


def test_close_twice_is_a_no_op_and_end_is_close(sessions: Sessions) -> None:
    s = sessions.open()
    s.close()
    s.close()
    s.end()
    assert s.closed
    t = sessions.open()
    t.end()
    assert t.closed
    with pytest.raises(SessionClosedError):
        t.flush()


def test_close_drops_unflushed_work_and_detaches(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.save(ann)
    s.commit()
    ann.name = "unflushed"
    bob = SxPerson(name="bob")
    s.add(bob)
    s.close()
    other = sessions.open()
    assert other.state(ann) is DETACHED  # stored, tracked by no open session
    assert other.state(bob) is TRANSIENT  # its insert was dropped
    assert _names(sessions.db, "people") == ["ann"]


CLOSED_CALLS = {
    "add": lambda s, p: s.add(SxPerson(name="x")),
    "state": lambda s, p: s.state(p),
    "add_all": lambda s, p: s.add_all([SxPerson(name="x")]),
    "save": lambda s, p: s.save(SxPerson(name="x")),
    "delete": lambda s, p: s.delete(p),
    "update": lambda s, p: s.update(p),
    "flush": lambda s, p: s.flush(),
    "commit": lambda s, p: s.commit(),
    "rollback": lambda s, p: s.rollback(),
    "expunge": lambda s, p: s.expunge(p),
    "expunge_all": lambda s, p: s.expunge_all(),
    "refresh": lambda s, p: s.refresh(p),
    "clear_queue": lambda s, p: s.clear_queue(),
    "clear_cache": lambda s, p: s.clear_cache(),
    "clone": lambda s, p: s.clone(p),
    "clear_collection": lambda s, p: s.clear_collection(SxPerson),
    "ensure_indexes": lambda s, p: s.ensure_indexes(SxAccount),
    "get_indexes": lambda s, p: s.get_indexes(SxAccount),
    "is_dirty": lambda s, p: s.is_dirty(p),
    "dirty_fields": lambda s, p: s.dirty_fields(p),
    "original_value": lambda s, p: s.original_value(p, "name"),
    "has_changes": lambda s, p: s.has_changes(),
    "what_changed": lambda s, p: s.what_changed(),
    "stats": lambda s, p: s.stats(),
    "get": lambda s, p: s.get(SxPerson, p.id),
    "query": lambda s, p: s.query(SxPerson),
    "filter": lambda s, p: s.filter(SxPerson, name="ann"),
    "all": lambda s, p: s.all(SxPerson),
    "count": lambda s, p: s.count(SxPerson),
    "remove_query": lambda s, p: s.remove_query(SxPerson),
    "dereference": lambda s, p: s.dereference(uow.Ref(SxPerson, p.id)),
    "enter": lambda s, p: s.__enter__(),
}


@pytest.mark.parametrize("call", CLOSED_CALLS.values(), ids=CLOSED_CALLS.keys())
def test_every_call_on_a_closed_session_raises(sessions: Sessions, call: Any) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.save(ann)
    s.close()
    with pytest.raises(SessionClosedError, match="closed"):
        call(s, ann)


def test_a_query_built_before_close_raises_when_run(sessions: Sessions) -> None:
    s = sessions.open()
    query = s.query(SxPerson)
    s.close()
    with pytest.raises(SessionClosedError):
        query.all()
    with pytest.raises(SessionClosedError):
        query.count()


# ----------------------------------------------------------------- expunge etc.


def test_expunge_detaches_and_drops_queued_work(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "ann"}])
    s = sessions.open()
    ann = s.get(SxFlat, doc_id)
    assert ann is not None
    ann.name = "changed"
    s.expunge(ann)
    assert s.state(ann) is DETACHED
    assert s.flush() == FlushResult()
    again = s.get(SxFlat, doc_id)
    assert again is not None
    assert again is not ann
    assert again.name == "ann"
    pending = SxFlat(name="pending")
    s.add(pending)
    s.expunge(pending)
    assert s.state(pending) is TRANSIENT
    assert s.flush() == FlushResult()
    with pytest.raises(UowError, match="not in this session"):
        s.expunge(pending)


def test_an_expunged_document_can_be_added_back(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "ann"}])
    s = sessions.open()
    ann = s.get(SxFlat, doc_id)
    assert ann is not None
    s.expunge(ann)
    s.add(ann)  # stored already: tracked again as it is now, not inserted
    assert s.state(ann) is PERSISTENT
    assert s.get(SxFlat, doc_id) is ann
    assert s.flush() == FlushResult()
    ann.n = 4
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    assert stored(sessions.db, "flats") == [{"_id": doc_id, "name": "ann", "n": 4}]


def test_a_document_of_a_closed_session_can_join_another(sessions: Sessions) -> None:
    first = sessions.open()
    ann = SxFlat(name="ann")
    first.save(ann)
    first.commit()
    first.close()
    second = sessions.open()
    assert second.state(ann) is DETACHED
    second.add(ann)
    assert second.state(ann) is PERSISTENT
    second.delete(ann)
    assert second.flush() == FlushResult(deleted=1, round_trips=1)
    second.commit()
    assert stored(sessions.db, "flats") == []


def test_expunge_all_forgets_everything(sessions: Sessions) -> None:
    insert_raw(sessions.db, "flats", [{"name": "a"}, {"name": "b"}])
    s = sessions.open()
    loaded = s.all(SxFlat)
    loaded[0].name = "changed"
    s.delete(loaded[1])
    pending = SxFlat(name="c")
    s.add(pending)
    s.expunge_all()
    assert [s.state(d) for d in loaded] == [DETACHED, DETACHED]
    assert s.state(pending) is TRANSIENT
    assert s.stats().identity_map_size == 0
    assert not s.has_changes()
    assert s.flush() == FlushResult()
    s.commit()
    assert _names(sessions.db, "flats") == ["a", "b"]


def test_refresh_reloads_and_never_autoflushes(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann", tags=["a"])
    s.save(ann)
    s.commit()
    sessions.db.people.update_one({"_id": ann.id}, {"$set": {"name": "server", "age": 7}})
    ann.name = "local"
    ann.tags.append("local")
    pending = SxPerson(name="pending")
    s.add(pending)
    trips = s.stats().round_trips
    s.refresh(ann)
    assert (ann.name, ann.age, ann.tags) == ("server", 7, ["a"])
    assert not s.is_dirty(ann)
    assert s.state(pending) is PENDING  # not flushed by refresh
    assert s.stats().round_trips == trips
    s.commit()
    assert _names(sessions.db, "people") == ["pending", "server"]


def test_refresh_of_a_document_gone_from_the_database(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "ann"}])
    s = sessions.open()
    ann = s.get(SxFlat, doc_id)
    assert ann is not None
    sessions.db.flats.delete_one({"_id": doc_id})
    with pytest.raises(uow.NotFound):
        s.refresh(ann)
    with pytest.raises(UowError, match="not a stored document"):
        s.refresh(SxFlat(name="new"))


def test_clear_queue_forgets_inserts_deletes_and_updates(sessions: Sessions) -> None:
    ids = insert_raw(sessions.db, "flats", [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    s = sessions.open()
    a, b, c = (s.get(SxFlat, i) for i in ids)
    assert a is not None and b is not None and c is not None
    new = SxFlat(name="new")
    s.add(new)
    s.delete(a)
    s.update(b)
    c.n = 5  # an in-memory change: it stays
    s.clear_queue()
    assert s.state(new) is TRANSIENT
    assert s.state(a) is PERSISTENT
    assert not s.is_dirty(b)
    assert s.is_dirty(c)
    assert s.stats().pending_inserts == s.stats().pending_deletes == 0
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    assert {d["name"]: d.get("n") for d in stored(sessions.db, "flats")} == {
        "a": None,
        "b": None,
        "c": 5,
    }


def test_clear_queue_keeps_the_changes_of_a_deleted_document(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "a", "n": 1}])
    s = sessions.open()
    a = s.get(SxFlat, doc_id)
    assert a is not None
    a.n = 2
    s.delete(a)
    s.clear_queue()
    assert s.state(a) is PERSISTENT
    assert s.is_dirty(a)  # the assignment made before delete() is still a change
    s.commit()
    assert stored_one(sessions.db, "flats", doc_id) == {"_id": doc_id, "name": "a", "n": 2}


def test_clear_queue_then_rollback_undoes_in_memory_changes(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "a", "n": 1}])
    s = sessions.open()
    a = s.get(SxFlat, doc_id)
    assert a is not None
    a.n = 2
    s.clear_queue()
    s.rollback()
    assert a.n == 1
    assert not s.is_dirty(a)


def test_clear_cache_detaches_clean_documents_only(sessions: Sessions) -> None:
    ids = insert_raw(sessions.db, "people", [{"name": "clean"}, {"name": "dirty"}])
    s = sessions.open()
    clean, dirty = (s.get(SxPerson, i) for i in ids)
    assert clean is not None and dirty is not None
    dirty.tags.append("x")  # in place: no assignment marks it
    pending = SxPerson(name="pending")
    s.add(pending)
    s.clear_cache()
    assert s.state(clean) is DETACHED
    assert s.state(dirty) is PERSISTENT
    assert s.state(pending) is PENDING
    assert s.stats().identity_map_size == 2
    queries = s.stats().queries
    reloaded = s.get(SxPerson, ids[0])
    assert reloaded is not None
    assert reloaded is not clean
    assert s.stats().queries == queries + 1
    assert s.get(SxPerson, ids[1]) is dirty
    s.commit()
    assert {d["name"]: d["tags"] for d in stored(sessions.db, "people") if "tags" in d} == {
        "dirty": ["x"],
        "pending": [],
    }


def test_clone_is_a_transient_deep_copy_with_a_new_id(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann", tags=["a"], address=SxAddress(city="Oslo"), scores={"x": 1})
    s.save(ann)
    copy = s.clone(ann)
    assert s.state(copy) is TRANSIENT
    assert copy.id != ann.id
    assert isinstance(copy.id, bson.ObjectId)
    assert (copy.name, copy.tags, copy.address, copy.scores) == (
        "ann",
        ["a"],
        SxAddress(city="Oslo"),
        {"x": 1},
    )
    copy.tags.append("b")
    copy.address.city = "Bergen"  # type: ignore[union-attr]
    copy.scores["y"] = 2
    assert ann.tags == ["a"]
    assert ann.address == SxAddress(city="Oslo")
    assert not s.is_dirty(ann)
    s.add(copy)
    s.commit()
    assert {d["_id"]: d["tags"] for d in stored(sessions.db, "people")} == {
        ann.id: ["a"],
        copy.id: ["a", "b"],
    }


def test_clear_collection_deletes_now_and_detaches(sessions: Sessions) -> None:
    insert_raw(sessions.db, "flats", [{"name": "a"}, {"name": "b"}])
    insert_raw(sessions.db, "orders", [{"item": "x"}])
    s = sessions.open()
    loaded = s.all(SxFlat)
    assert s.clear_collection(SxFlat) == 2
    assert [s.state(d) for d in loaded] == [DETACHED, DETACHED]
    assert s.stats().identity_map_size == 0
    s.commit()
    assert stored(sessions.db, "flats") == []
    assert len(stored(sessions.db, "orders")) == 1


def test_clear_collection_of_a_subclass_keeps_its_siblings(sessions: Sessions) -> None:
    s = sessions.open()
    s.add_all([SxAnimal(name="root"), SxDog(name="rex"), SxCat(name="tom")])
    s.flush()
    assert s.clear_collection(SxDog) == 1
    s.commit()
    assert _names(sessions.db, "animals") == ["root", "tom"]


# ------------------------------------------------------------------------ indexes


def _create_index_commands(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith("createIndexes "))


def test_ensure_and_get_indexes(sessions: Sessions) -> None:
    s = sessions.open(auto_ensure=False)
    assert s.ensure_indexes(SxAccount) == ["email_1"]
    indexes = s.get_indexes(SxAccount)
    assert list(indexes["email_1"]["key"]) == [("email", 1)]
    assert indexes["email_1"]["unique"] is True
    assert s.ensure_indexes(SxPerson) == []  # declares none


def test_auto_ensure_builds_indexes_once_per_collection_per_client(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="uow")
    first = sessions.open()
    first.save(SxAccount(email="a@x"))
    first.save(SxAccount(email="b@x"))
    first.commit()
    second = sessions.open()
    second.save(SxAccount(email="c@x"))
    second.commit()
    assert _create_index_commands(caplog) == 1
    assert "email_1" in second.get_indexes(SxAccount)
    second.add(SxAccount(email="a@x"))
    with pytest.raises(DuplicateKeyError, match="a@x"):
        second.flush()


def test_without_auto_ensure_no_index_is_built(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="uow")
    s = sessions.open(auto_ensure=False)
    s.save(SxAccount(email="a@x"))
    s.save(SxAccount(email="a@x"))  # no unique index: accepted
    s.commit()
    assert _create_index_commands(caplog) == 0
    assert "email_1" not in s.get_indexes(SxAccount)


def test_auto_ensure_builds_on_each_embedded_store() -> None:
    # Two mongomock:// stores are two servers, even though mongomock clients
    # compare equal (by their default address) and use the same database name.
    uris = [f"mongomock://ensure-{n}-{bson.ObjectId()}" for n in (1, 2)]
    try:
        for uri in uris:
            client = make_client(uri)
            with Session(client["same"]) as s:
                s.add(SxAccount(email="a@x"))
                s.flush()
                assert "email_1" in s.get_indexes(SxAccount)
                s.add(SxAccount(email="a@x"))
                with pytest.raises(DuplicateKeyError):
                    s.flush()
                s.rollback()
    finally:
        for uri in uris:
            reset_embedded(uri)


# --------------------------------------------------------------------- inspection


def test_inspection_of_a_changed_document(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann", address=SxAddress(city="Oslo"), scores={"x": 1})
    assert not s.is_dirty(ann)
    assert s.dirty_fields(ann) == []
    s.add(ann)
    assert not s.is_dirty(ann)  # pending: an insert, not a change
    assert s.what_changed() == {}
    assert s.has_changes()
    s.flush()
    assert not s.has_changes()
    assert not s.is_dirty(ann)

    ann.visits += 2
    ann.nick = "A"
    ann.tags.append("t")
    ann.address.city = "Bergen"  # type: ignore[union-attr]
    ann.scores["y"] = 2
    del ann.scores["x"]

    assert s.is_dirty(ann)
    assert s.has_changes()
    assert s.dirty_fields(ann) == ["address", "nick", "scores", "tags", "visits"]
    assert s.original_value(ann, "visits") == 0
    assert s.original_value(ann, "address") == SxAddress(city="Oslo")
    assert s.original_value(ann, "scores") == {"x": 1}
    assert s.original_value(ann, "nick") is None
    assert s.what_changed() == {
        ("people", ann.id): {
            "visits": (0, 2),
            "nick": (None, "A"),
            "tags": ([], ["t"]),
            "address.city": ("Oslo", "Bergen"),
            "scores.x": (1, None),
            "scores.y": (None, 2),
        }
    }
    with pytest.raises(AttributeError, match="no field"):
        s.original_value(ann, "nope")
    s.flush()
    assert not s.is_dirty(ann)
    assert s.what_changed() == {}
    assert s.original_value(ann, "visits") == 2


def test_stats_count_what_the_session_did(sessions: Sessions) -> None:
    s = sessions.open()
    assert s.stats() == SessionStats()
    a, b = SxPerson(name="a"), SxPerson(name="b")
    s.add_all([a, b])
    assert (s.stats().identity_map_size, s.stats().pending_inserts) == (2, 2)
    s.flush()
    stats = s.stats()
    assert (stats.pending_inserts, stats.round_trips, stats.flushes, stats.requests) == (0, 1, 1, 1)

    assert s.get(SxPerson, a.id) is a
    assert s.get(SxPerson, bson.ObjectId()) is None
    stats = s.stats()
    assert (stats.cache_hits, stats.cache_misses, stats.queries, stats.requests) == (1, 1, 1, 2)

    a.name = "changed"
    b.tags.append("x")
    assert s.stats().pending_updates == 2
    s.delete(b)
    stats = s.stats()
    assert (stats.pending_updates, stats.pending_deletes) == (1, 1)
    assert stats.identity_map_size == 2

    assert s.count(SxPerson) == 1  # autoflush: one update, one delete, then the count
    stats = s.stats()
    assert stats.as_dict() == {
        "identity_map_size": 1,
        "pending_inserts": 0,
        "pending_updates": 0,
        "pending_deletes": 0,
        "round_trips": 3,
        "flushes": 2,
        "queries": 2,
        "requests": 5,
        "cache_hits": 1,
        "cache_misses": 1,
    }
    s.flush()  # nothing to write: counted as a flush, sends nothing
    assert (s.stats().flushes, s.stats().round_trips, s.stats().requests) == (3, 3, 5)


# ------------------------------------------------------------------------ options


def test_no_tracking_loads_without_keeping_or_diffing(sessions: Sessions) -> None:
    ids = insert_raw(sessions.db, "flats", [{"name": "a", "n": 1}, {"name": "b", "n": 1}])
    s = sessions.open(no_tracking=True)
    first = s.get(SxFlat, ids[0])
    second = s.get(SxFlat, ids[0])
    assert first is not None and second is not None
    assert first is not second
    assert s.state(first) is DETACHED
    loaded = s.all(SxFlat)
    assert s.stats().identity_map_size == 0
    first.n = 99
    loaded[0].n = 99
    assert s.flush() == FlushResult()

    # add, delete and update still work
    s.delete(loaded[1])
    changed = s.get(SxFlat, ids[0])
    assert changed is not None
    changed.name = "renamed"
    s.update(changed, n="$set")
    s.add(SxFlat(name="c"))
    assert s.flush() == FlushResult(inserted=1, updated=1, deleted=1, round_trips=3)
    s.commit()
    assert {d["name"]: d["n"] for d in stored(sessions.db, "flats")} == {"renamed": 1, "c": 0}


def test_echo_logs_every_command_at_info_to_stderr(
    sessions: Sessions, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    uow_logger = logging.getLogger("uow")
    level = uow_logger.level
    s = sessions.open(echo=True)
    ann = SxPerson(name="ann")
    s.save(ann)
    s.query(SxPerson).filter(name="ann").all()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    db_name = sessions.db.name
    assert messages[0].startswith(f"insert {db_name}.people ")
    assert "'ann'" in messages[0]
    assert any(m.startswith(f"find {db_name}.people ") for m in messages)
    assert all(r.name == "uow" for r in caplog.records if r.levelno == logging.INFO)
    assert f"uow: insert {db_name}.people" in capsys.readouterr().err
    s.close()
    assert uow_logger.level == level  # as it was before the echo session
    handlers = len(uow_logger.handlers)
    caplog.clear()
    quiet = sessions.open()
    quiet.save(SxPerson(name="bob"))
    assert len(uow_logger.handlers) == handlers
    assert "bob" not in capsys.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_two_echo_sessions_print_each_command_once(
    sessions: Sessions, capsys: pytest.CaptureFixture[str]
) -> None:
    uow_logger = logging.getLogger("uow")
    handlers = list(uow_logger.handlers)
    first, second = sessions.open(echo=True), sessions.open(echo=True)
    first.save(SxPerson(name="ann"))
    assert capsys.readouterr().err.count("'ann'") == 1
    first.close()
    second.save(SxPerson(name="bob"))  # still echoing after the other one closed
    assert capsys.readouterr().err.count("'bob'") == 1
    second.close()
    assert uow_logger.handlers == handlers


def test_without_echo_commands_are_logged_at_debug_only(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="uow")
    s = sessions.open()
    s.save(SxPerson(name="ann"))
    records = [r for r in caplog.records if r.getMessage().startswith("insert ")]
    assert [r.levelno for r in records] == [logging.DEBUG]


def test_max_requests_refuses_the_command_over_the_limit(sessions: Sessions) -> None:
    ids = insert_raw(sessions.db, "flats", [{"name": n} for n in "abc"])
    s = sessions.open(max_requests=2)
    assert s.get(SxFlat, ids[0]) is not None
    assert s.get(SxFlat, ids[1]) is not None
    assert s.get(SxFlat, ids[0]) is not None  # an identity-map hit sends nothing
    with pytest.raises(TooManyRequests, match="max_requests=2") as caught:
        s.get(SxFlat, ids[2])
    assert caught.value.limit == 2
    assert s.stats().requests == 2
    s.close()  # clean-up is never refused


def test_max_requests_counts_writes_and_leaves_refused_work_queued(sessions: Sessions) -> None:
    # transactional=False so that the first write can be seen without a commit
    # (a commit is a command too, and would be refused).
    s = sessions.open(max_requests=1, transactional=False)
    first, second = SxFlat(name="first"), SxOrder(item="second")
    s.add_all([first, second])
    with pytest.raises(TooManyRequests, match="max_requests=1"):
        s.flush()
    assert s.state(first) is PERSISTENT
    assert s.state(second) is PENDING  # not sent, so not marked written
    assert s.stats().requests == 1
    assert _names(sessions.db, "flats") == ["first"]
    assert stored(sessions.db, "orders") == []


@pytest.mark.transactions
def test_max_requests_counts_the_commit(sessions: Sessions) -> None:
    s = sessions.open(max_requests=1)
    s.save(SxFlat(name="a"))
    with pytest.raises(TooManyRequests, match="commitTransaction"):
        s.commit()
    s.rollback()  # aborting is clean-up: never refused
    assert stored(sessions.db, "flats") == []
