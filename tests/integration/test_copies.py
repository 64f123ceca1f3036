"""Copies of documents (``copy.copy``, ``copy.deepcopy``, ``pickle``).

A copy of a stored document is ``DETACHED`` (SPEC: "not tracked by this session,
though it was stored") and carries the snapshot it was last stored with, so
``add()`` of it in a session writes what was changed, with the fields' own
operators, as ``add()`` of the detached original would. A copy of a document
that is not stored is ``TRANSIENT``, as the original.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from tests._blackbox import assert_stored_is_memory
from uow import Document, ObjectState, Session, UowError, field


class Copied(Document):
    __collection__ = "copies"
    name: str
    visits: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


COPIES: dict[str, Callable[[Any], Any]] = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": lambda doc: pickle.loads(pickle.dumps(doc)),
}


def _stored(db: Any, doc: Copied) -> dict[str, Any]:
    found = db.copies.find_one({"_id": doc.id})
    assert found is not None
    return dict(found)


@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_copy_of_a_stored_document_writes_its_changes_when_added(db: Any, how: str) -> None:
    with Session(db) as s:
        s.add(Copied(name="a", visits=5, tags=["x"]))
    with Session(db) as s:
        (loaded,) = s.query(Copied).all()
        made = COPIES[how](loaded)
        assert s.state(made) is ObjectState.DETACHED
    # Another client's increment meanwhile: the copy's $inc adds to it.
    db.copies.update_one({"_id": loaded.id}, {"$inc": {"visits": 10}})
    made.visits += 1
    made.tags.append("y")
    with Session(db) as s:
        s.add(made)
        assert s.dirty_fields(made) == ["tags", "visits"]
    assert _stored(db, made) == {"_id": made.id, "name": "a", "visits": 16, "tags": ["x", "y"]}
    # Memory is what is stored but the counter, which holds this session's value
    # (the other client's +10 reaches memory on a refresh).
    assert {**_stored(db, made), "visits": made.visits} == made.to_bson()


@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_copy_of_a_new_document_is_new(db: Any, how: str) -> None:
    s = Session(db)
    pending = Copied(name="p")
    s.add(pending)
    made = COPIES[how](pending)
    assert s.state(made) is ObjectState.TRANSIENT
    s.close()
    with Session(db) as other:
        other.add(made)
    assert _stored(db, made) == {"_id": made.id, "name": "p", "visits": 0, "tags": []}
    assert_stored_is_memory(db, made)


def test_a_copy_cannot_join_the_session_holding_its_original(db: Any) -> None:
    with Session(db) as s:
        s.add(Copied(name="a"))
    with Session(db) as s:
        (loaded,) = s.query(Copied).all()
        made = copy.deepcopy(loaded)
        with pytest.raises(UowError, match="already in this session"):
            s.add(made)
        made.name = "b"  # nothing of it is written: it is not tracked
    assert _stored(db, loaded)["name"] == "a"


@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_copy_of_a_document_loaded_without_tracking_is_detached_like_it(
    db: Any, how: str
) -> None:
    with Session(db) as s:
        s.add(Copied(name="a", visits=5))
    with Session(db, no_tracking=True) as s:
        (loaded,) = s.query(Copied).all()
        made = COPIES[how](loaded)
        assert s.state(made) is s.state(loaded) is ObjectState.DETACHED
    with Session(db) as s:
        s.add(made)  # tracked as it is, like the original (docs/session.md)
        assert s.state(made) is ObjectState.PERSISTENT
        made.tags.append("t")
    assert _stored(db, made) == {"_id": made.id, "name": "a", "visits": 5, "tags": ["t"]}
    assert_stored_is_memory(db, made)


# ---------------------------------------------- copies made inside a transaction
#
# A copy made after a flush and before its transaction ends cannot know yet what
# is stored: the flush if the transaction commits, the last committed document if
# it is aborted. It carries both, and the transaction's end settles it (a pickle
# unpickled afterwards in the same process learns how it ended).


def _seeded(db: Any) -> Copied:
    with Session(db) as s:
        doc = Copied(name="a", visits=1, tags=["x"])
        s.add(doc)
    return doc


def _flushed_change(s: Session, doc: Copied) -> Copied:
    loaded = s.get(Copied, doc.id)
    assert loaded is not None
    loaded.visits += 4
    loaded.tags.append("y")
    s.flush()
    return loaded


@pytest.mark.transactions
@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("end", ["rollback", "close"])
def test_a_copy_made_before_an_abort_writes_what_the_abort_undid(
    db: Any, how: str, end: str
) -> None:
    doc = _seeded(db)
    s = Session(db)
    made = COPIES[how](_flushed_change(s, doc))
    getattr(s, end)()
    s.close()
    assert _stored(db, doc) == {"_id": doc.id, "name": "a", "visits": 1, "tags": ["x"]}
    with Session(db) as other:
        other.add(made)
        assert other.dirty_fields(made) == ["tags", "visits"]
    assert _stored(db, made) == {"_id": doc.id, "name": "a", "visits": 5, "tags": ["x", "y"]}
    assert_stored_is_memory(db, made)


@pytest.mark.transactions
@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_copy_made_before_a_commit_takes_the_flush_as_stored(db: Any, how: str) -> None:
    doc = _seeded(db)
    s = Session(db)
    made = COPIES[how](_flushed_change(s, doc))
    s.commit()
    s.close()
    with Session(db) as other:
        other.add(made)
        assert not other.is_dirty(made)
        assert other.flush().round_trips == 0
    assert _stored(db, made) == {"_id": doc.id, "name": "a", "visits": 5, "tags": ["x", "y"]}
    assert_stored_is_memory(db, made)


@pytest.mark.transactions
def test_a_pickle_made_before_an_abort_and_loaded_after_it_writes_what_the_abort_undid(
    db: Any,
) -> None:
    doc = _seeded(db)
    s = Session(db)
    pickled = pickle.dumps(_flushed_change(s, doc))
    s.rollback()
    s.close()
    made = pickle.loads(pickled)  # after the transaction ended
    with Session(db) as other:
        other.add(made)
    assert _stored(db, made)["visits"] == 5
    assert_stored_is_memory(db, made)


@pytest.mark.transactions
@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_copy_of_a_document_inserted_in_an_aborted_transaction_is_new(
    db: Any, how: str
) -> None:
    s = Session(db)
    doc = Copied(name="n", visits=2)
    s.add(doc)
    s.flush()
    made = COPIES[how](doc)
    assert s.state(made) is ObjectState.DETACHED  # stored, as far as anyone knows yet
    s.rollback()
    s.close()
    assert db.copies.find_one({"_id": doc.id}) is None
    assert Session(db).state(made) is ObjectState.TRANSIENT
    with Session(db) as other:
        other.add(made)  # inserted: nothing of it was stored
    assert _stored(db, made) == {"_id": doc.id, "name": "n", "visits": 2, "tags": []}
    assert_stored_is_memory(db, made)


@pytest.mark.transactions
def test_a_copy_added_elsewhere_while_the_transaction_is_open_is_left_as_added(
    db: Any,
) -> None:
    doc = _seeded(db)
    s = Session(db)
    made = copy.deepcopy(_flushed_change(s, doc))
    other = Session(db)
    other.add(made)  # the other session decides now: against the flushed snapshot
    s.rollback()
    s.close()
    assert other.state(made) is ObjectState.PERSISTENT
    assert not other.is_dirty(made)
    other.close()


@pytest.mark.transactions
def test_a_copy_made_before_a_failed_flush_aborted_the_transaction_writes_what_it_undid(
    db: Any,
) -> None:
    doc = _seeded(db)
    taken = _seeded(db)  # an id the next flush collides with
    s = Session(db)
    made = copy.copy(_flushed_change(s, doc))
    s.add(Copied(id=taken.id, name="duplicate"))
    with pytest.raises(UowError) as failed:
        s.flush()  # the server aborts the transaction: the first flush is undone too
    assert getattr(failed.value, "transaction_aborted", False)
    s.close()
    assert _stored(db, doc)["visits"] == 1
    with Session(db) as other:
        other.add(made)
    assert _stored(db, made) == {"_id": doc.id, "name": "a", "visits": 5, "tags": ["x", "y"]}
    assert_stored_is_memory(db, made)
