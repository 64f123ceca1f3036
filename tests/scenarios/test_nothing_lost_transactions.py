"""Nothing lost with transactions: issue #17 families 10 (partial documents
filled in inside an aborted transaction), 11 (documents first loaded inside an
aborted transaction), 12 (replace rolled back), 13 (insert then delete rolled
back), and SPEC's "Transactions and concurrency" section: a failed flush
inside a transaction puts every change since the last commit back to
unflushed; `rollback()` reads what the database holds; version conflicts.

All tests are marked `transactions` (SecantusDB lane; mongomock has none).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import uow
from uow import Document, field

from ._nl import ids, insert_raw, stored, stored_or_none

pytestmark = pytest.mark.transactions


class NltUser(Document):
    __collection__ = "nlt_users"
    __indexes__ = [uow.Index("email", unique=True)]

    name: str
    email: str
    visits: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    log: list[str] = field(factory=list, on_update="$push")
    score: int = 0


class NltVer(Document):
    __collection__ = "nlt_vers"

    name: str
    n: int = field(default=0, on_update="$inc")
    version: int = field(default=0, version=True)


FULL = {
    "name": "ann",
    "email": "ann@x.io",
    "visits": 10,
    "tags": ["a", "b"],
    "log": ["l"],
    "score": 7,
    "extra": "keep",
}


def _user(db: Any, **values: Any) -> Any:
    return insert_raw(db, "nlt_users", {**FULL, **values})


def _open_transaction(s: uow.Session, db: Any) -> Any:
    """Flush a write to another document so that a transaction is open."""
    other = NltUser(name="opener", email=f"opener-{id(s)}@x.io")
    s.add(other)
    s.flush()
    assert stored_or_none(db, "nlt_users", other.id) is None, "the flush was not in a transaction"
    return other


# =============================== family 10: partial document filled in, rollback


def test_partial_filled_in_by_full_query_inside_aborted_transaction(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    user = s.query(NltUser).filter(NltUser.id == doc_id).fields("name").first()
    _open_transaction(s, db)
    full = s.query(NltUser).filter(NltUser.id == doc_id).first()
    assert full is user and user.visits == 10
    s.rollback()
    # committed values, never defaults
    assert user.visits == 10 and user.tags == ["a", "b"] and user.score == 7
    user.visits += 1
    s.commit()
    s.close()
    raw = stored(db, "nlt_users", doc_id)
    assert raw == {**FULL, "_id": doc_id, "visits": 11}


def test_partial_filled_in_and_changed_inside_aborted_transaction(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    user = s.query(NltUser).filter(NltUser.id == doc_id).fields("name").first()
    _open_transaction(s, db)
    s.query(NltUser).filter(NltUser.id == doc_id).first()
    user.visits += 5
    user.tags.append("c")
    user.score = 0
    s.flush()
    s.rollback()
    assert (user.visits, user.tags, user.score) == (10, ["a", "b"], 7)
    user.name = "bob"
    s.save(user)
    s.commit()
    s.close()
    assert stored(db, "nlt_users", doc_id) == {**FULL, "_id": doc_id, "name": "bob"}


def test_partial_filled_in_then_rollback_then_save_never_clears(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    user = s.query(NltUser).filter(NltUser.id == doc_id).fields("name").first()
    _open_transaction(s, db)
    s.query(NltUser).filter(NltUser.id == doc_id).first()
    s.rollback()
    s.save(user)
    s.update(user)
    s.commit()
    s.close()
    assert stored(db, "nlt_users", doc_id) == {**FULL, "_id": doc_id}


def test_partial_rollback_without_fill_in_still_not_loaded_and_not_cleared(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    user = s.query(NltUser).filter(NltUser.id == doc_id).fields("name").first()
    _open_transaction(s, db)
    user.name = "in-txn"
    s.flush()
    s.rollback()
    assert user.name == "ann"
    with pytest.raises(uow.FieldNotLoaded):
        _ = user.visits
    user.name = "after"
    s.commit()
    s.close()
    assert stored(db, "nlt_users", doc_id) == {**FULL, "_id": doc_id, "name": "after"}


# ======================== family 11: first loaded inside an aborted transaction


def test_document_first_loaded_inside_aborted_transaction_is_put_back(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    _open_transaction(s, db)
    user = s.get(NltUser, doc_id)
    user.visits += 1
    user.log.append("m")
    s.flush()
    s.rollback()
    assert user.visits == 10 and user.log == ["l"]
    user.visits += 1
    user.log.append("n")
    s.commit()
    s.close()
    raw = stored(db, "nlt_users", doc_id)
    assert raw["visits"] == 11 and raw["log"] == ["l", "n"]


def test_document_first_loaded_inside_aborted_transaction_then_another_writer(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    _open_transaction(s, db)
    user = s.get(NltUser, doc_id)
    user.visits += 1
    s.flush()
    s.rollback()
    db["nlt_users"].update_one({"_id": doc_id}, {"$inc": {"visits": 10}})
    user.visits += 1
    s.commit()
    s.close()
    assert stored(db, "nlt_users", doc_id)["visits"] == 21


def test_document_loaded_before_changed_in_transaction_goes_back_to_committed(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    user = s.get(NltUser, doc_id)
    user.visits += 1
    s.commit()  # committed: 11
    user.visits += 1
    s.flush()  # in a transaction: 12
    user.visits += 1  # unflushed: 13
    s.rollback()
    assert user.visits == 11
    user.visits += 1
    s.commit()
    s.close()
    assert stored(db, "nlt_users", doc_id)["visits"] == 12


def test_rollback_of_a_transaction_with_no_flush_keeps_nothing_of_it(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    user = s.get(NltUser, doc_id)
    user.visits += 1
    s.rollback()
    assert user.visits == 10 and not s.is_dirty(user)
    s.commit()
    s.close()
    assert stored(db, "nlt_users", doc_id)["visits"] == 10


# ============================================ family 12: replace, rolled back


def test_replace_rolled_back_then_change_of_replaced_object_is_written(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    old = s.get(NltUser, doc_id)
    s.delete(old)
    new = NltUser(id=doc_id, name="new", email="new@x.io")
    s.add(new)
    s.flush()
    s.rollback()
    states = (s.state(old), s.state(new))
    got_old = s.get(NltUser, doc_id) is old
    values = (old.name, old.visits)
    old.name = "ann2"
    old.visits += 1
    s.commit()
    s.close()
    # the stored result first, then the states that explain it
    assert stored(db, "nlt_users", doc_id) == {**FULL, "_id": doc_id, "name": "ann2", "visits": 11}
    assert values == ("ann", 10)
    assert states == (uow.ObjectState.PERSISTENT, uow.ObjectState.TRANSIENT)
    assert got_old


def test_replace_of_object_inserted_in_the_aborted_transaction_leaves_no_phantom(db: Any) -> None:
    s = uow.Session(db)
    first = NltUser(name="first", email="first@x.io")
    s.add(first)
    s.flush()  # opens the transaction
    s.delete(first)
    second = NltUser(id=first.id, name="second", email="second@x.io")
    s.add(second)
    s.flush()
    s.rollback()
    phantom = s.get(NltUser, first.id)
    states = (s.state(first), s.state(second))
    s.commit()
    assert stored_or_none(db, "nlt_users", first.id) is None
    # and the session still works: add the second again
    s.add(second)
    s.commit()
    s.close()
    assert stored(db, "nlt_users", first.id)["name"] == "second"
    assert phantom is None, f"get() after rollback returned a phantom: {phantom!r}"
    assert states == (uow.ObjectState.TRANSIENT, uow.ObjectState.TRANSIENT)


def test_failed_flush_does_not_turn_a_replace_into_a_colliding_insert(db: Any) -> None:
    doc_id = _user(db)
    insert_raw(db, "nlt_users", {"name": "taken", "email": "taken@x.io"})
    s = uow.Session(db)
    s.ensure_indexes(NltUser)
    old = s.get(NltUser, doc_id)
    s.delete(old)
    new = NltUser(id=doc_id, name="new", email="new@x.io")
    s.add(new)
    dup = NltUser(name="dup", email="taken@x.io")
    s.add(dup)
    with pytest.raises(uow.FlushError):
        s.flush()
    # the transaction is aborted; everything back to unflushed
    assert s.state(new) == uow.ObjectState.PENDING or s.state(new) == uow.ObjectState.PERSISTENT
    dup.email = "dup@x.io"
    s.flush()  # must not collide with the stored `old`
    s.commit()
    s.close()
    raw = stored(db, "nlt_users", doc_id)
    assert raw["name"] == "new" and raw["email"] == "new@x.io"
    assert db["nlt_users"].count_documents({}) == 3


def test_failed_flush_after_a_flushed_replace_then_fix(db: Any) -> None:
    """The replace was flushed (inside the transaction); a later flush fails,
    aborting the transaction; the replace must be sent again as a replace."""
    doc_id = _user(db)
    insert_raw(db, "nlt_users", {"name": "taken", "email": "taken@x.io"})
    s = uow.Session(db)
    s.ensure_indexes(NltUser)
    old = s.get(NltUser, doc_id)
    s.delete(old)
    new = NltUser(id=doc_id, name="new", email="new@x.io")
    s.add(new)
    s.flush()
    dup = NltUser(name="dup", email="taken@x.io")
    s.add(dup)
    with pytest.raises(uow.FlushError):
        s.flush()
    dup.email = "dup@x.io"
    s.commit()
    s.close()
    raw = stored(db, "nlt_users", doc_id)
    assert raw["name"] == "new" and "visits" in raw and raw["visits"] == 0
    assert stored(db, "nlt_users", dup.id)["email"] == "dup@x.io"


# ============================= family 13: insert then delete, rolled back


def test_insert_then_delete_in_one_transaction_rolled_back(db: Any) -> None:
    s = uow.Session(db)
    a = NltUser(name="a", email="a@x.io")
    s.add(a)
    s.flush()
    s.delete(a)
    s.flush()
    s.rollback()
    state = s.state(a)
    got = s.get(NltUser, a.id)
    b = NltUser(name="b", email="b@x.io")
    s.add(b)
    s.commit()
    s.add(a)
    s.commit()
    s.close()
    assert stored(db, "nlt_users", b.id)["name"] == "b"
    assert stored(db, "nlt_users", a.id)["name"] == "a", (
        "add() after the rollback did not insert it"
    )
    assert state != uow.ObjectState.PERSISTENT
    assert state == uow.ObjectState.TRANSIENT
    assert got is None


def test_insert_then_delete_unflushed_delete_rolled_back(db: Any) -> None:
    s = uow.Session(db)
    a = NltUser(name="a", email="a@x.io")
    s.add(a)
    s.flush()
    s.delete(a)
    s.rollback()
    assert s.state(a) == uow.ObjectState.TRANSIENT
    s.commit()
    s.close()
    assert stored_or_none(db, "nlt_users", a.id) is None


# ================== a failed flush in a transaction: all back to unflushed


def test_failed_flush_puts_earlier_flushed_increments_back_exactly_once(db: Any) -> None:
    doc_id = _user(db)
    insert_raw(db, "nlt_users", {"name": "taken", "email": "taken@x.io"})
    s = uow.Session(db)
    s.ensure_indexes(NltUser)
    user = s.get(NltUser, doc_id)
    user.visits += 1
    user.log.append("x")
    s.flush()  # in the transaction
    user.visits += 1
    dup = NltUser(name="dup", email="taken@x.io")
    s.add(dup)
    with pytest.raises(uow.FlushError) as caught:
        s.flush()
    assert getattr(caught.value, "transaction_aborted", True)
    assert s.is_dirty(user)
    dup.email = "dup@x.io"
    s.commit()
    s.close()
    raw = stored(db, "nlt_users", doc_id)
    assert raw["visits"] == 12 == user.visits, f"stored {raw['visits']}, memory {user.visits}"
    assert raw["log"] == ["l", "x"]


def test_failed_flush_brings_deleted_back_and_rollback_makes_them_persistent(db: Any) -> None:
    a_id = _user(db, email="a@x.io")
    insert_raw(db, "nlt_users", {"name": "taken", "email": "taken@x.io"})
    s = uow.Session(db)
    s.ensure_indexes(NltUser)
    a = s.get(NltUser, a_id)
    s.delete(a)
    s.flush()
    s.add(NltUser(name="dup", email="taken@x.io"))
    with pytest.raises(uow.FlushError):
        s.flush()
    assert s.state(a) == uow.ObjectState.DELETED
    s.rollback()
    assert s.state(a) == uow.ObjectState.PERSISTENT
    assert s.get(NltUser, a_id) is a
    a.visits += 1
    s.commit()
    s.close()
    assert stored(db, "nlt_users", a_id)["visits"] == 11


def test_transaction_block_exception_rolls_back_memory_and_store(db: Any) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    user = s.get(NltUser, doc_id)
    with pytest.raises(RuntimeError):
        with s.transaction():
            user.visits += 1
            s.flush()
            user.tags.append("c")
            raise RuntimeError("boom")
    assert user.visits == 10 and user.tags == ["a", "b"]
    user.visits += 1
    s.commit()
    s.close()
    raw = stored(db, "nlt_users", doc_id)
    assert raw["visits"] == 11 and raw["tags"] == ["a", "b"]


def test_version_conflict_in_transaction_then_advice_applies_once(db: Any) -> None:
    doc_ids = [
        insert_raw(db, "nlt_vers", {"name": f"v{i}", "n": 0, "version": 0}) for i in range(3)
    ]
    s = uow.Session(db)
    docs = [s.get(NltVer, i) for i in doc_ids]
    for d in docs:
        d.n += 1
    db["nlt_vers"].update_one({"_id": doc_ids[1]}, {"$inc": {"n": 100, "version": 1}})
    with pytest.raises(uow.StaleDocumentError) as caught:
        s.flush()
    error = caught.value
    # in a transaction nothing of the flush is applied
    assert error.applied == []
    assert ids(error.not_applied) | ids(getattr(error, "in_doubt", [])) == ids(docs)
    s.refresh(docs[1])
    docs[1].n += 1
    s.commit()
    s.close()
    assert [stored(db, "nlt_vers", i)["n"] for i in doc_ids] == [1, 101, 1]
    assert [d.n for d in docs] == [1, 101, 1]


def test_second_session_changes_other_field_between_load_and_flush(db: Any) -> None:
    doc_id = _user(db)
    s1 = uow.Session(db)
    user = s1.get(NltUser, doc_id)
    with uow.Session(db) as s2:
        other = s2.get(NltUser, doc_id)
        other.score = 99
        other.visits += 5
    user.name = "mine"
    user.visits += 1
    s1.commit()
    s1.close()
    raw = stored(db, "nlt_users", doc_id)
    assert raw["name"] == "mine" and raw["score"] == 99 and raw["visits"] == 16


def test_run_in_transaction_retry_applies_the_increment_once(db: Any, secantus_client: Any) -> None:
    """fn's first attempt meets a write conflict (another transaction holds the
    document); run_in_transaction rolls back and calls fn again; the increment
    is stored once, on top of the other transaction's."""
    doc_id = _user(db)
    raw_session = secantus_client.start_session()
    raw_session.start_transaction()
    db["nlt_users"].update_one({"_id": doc_id}, {"$inc": {"visits": 100}}, session=raw_session)
    calls = []

    s = uow.Session(db, transaction_retry_s=10)

    def fn() -> int:
        calls.append(1)
        if len(calls) == 2:
            raw_session.commit_transaction()
        user = s.get(NltUser, doc_id)
        user.visits += 1
        s.flush()
        return user.visits

    try:
        s.run_in_transaction(fn)
    finally:
        if raw_session.in_transaction:
            raw_session.abort_transaction()
        raw_session.end_session()
    s.close()
    assert len(calls) >= 2
    assert stored(db, "nlt_users", doc_id)["visits"] == 111


def test_close_with_uncommitted_transaction_with_writes_warns(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    doc_id = _user(db)
    s = uow.Session(db)
    s.get(NltUser, doc_id).visits += 1
    s.flush()
    with caplog.at_level(logging.WARNING, logger="uow"):
        s.close()
    warnings = [
        r for r in caplog.records if r.name.startswith("uow") and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "1" in warnings[0].getMessage()
    assert stored(db, "nlt_users", doc_id)["visits"] == 10
