"""Fields the server sets at a flush (``on_update="$currentDate"``): read back in
one find per collection, on the first read of one or when the documents leave
the session, so that no document holds a value the store no longer has."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import mongomock
import pytest
from pymongo.errors import PyMongoError

from tests._blackbox import assert_stored_is_memory
from uow import Document, Session, field


class Stamped(Document):
    __collection__ = "expired_reads"
    n: int = 0
    seen: dt.datetime | None = field(default=None, on_update="$currentDate")


OLD = dt.datetime(2001, 2, 3)


def _stored_docs(db: Any, count: int) -> None:
    db.expired_reads.insert_many([{"n": i, "seen": OLD} for i in range(count)])


def _stored_seen(db: Any) -> dict[Any, dt.datetime]:
    return {raw["_id"]: raw["seen"] for raw in db.expired_reads.find()}


def test_reading_the_fields_of_many_documents_is_one_find(db: Any) -> None:
    _stored_docs(db, 40)
    with Session(db) as s:
        docs = s.query(Stamped).all()
        for doc in docs:
            doc.n += 1
        s.flush()
        before = s.stats().queries
        seen = {doc.id: doc.seen for doc in docs}
        assert s.stats().queries - before == 1
    stored = _stored_seen(db)
    assert seen == stored
    assert all(value != OLD for value in stored.values())
    assert_stored_is_memory(db, *docs)


@pytest.mark.parametrize("leave", ["close", "expunge", "expunge_all", "clear_cache", "with"])
def test_documents_leaving_the_session_read_their_fields_first(db: Any, leave: str) -> None:
    _stored_docs(db, 3)
    s = Session(db)
    docs = s.query(Stamped).all()
    for doc in docs:
        doc.n += 1
    s.commit()
    before = s.stats().queries
    if leave == "close":
        s.close()
    elif leave == "expunge":
        for doc in docs:
            s.expunge(doc)
    elif leave == "expunge_all":
        s.expunge_all()
    elif leave == "clear_cache":
        s.clear_cache()
    else:
        with s:
            pass  # (commits nothing more, then closes)
    if leave in ("expunge", "expunge_all", "clear_cache"):
        reads = s.stats().queries - before
        assert reads == (3 if leave == "expunge" else 1)
        s.close()
    stored = _stored_seen(db)
    assert {doc.id: doc.seen for doc in docs} == stored
    assert all(value != OLD for value in stored.values())
    assert_stored_is_memory(db, *docs)


def test_closing_after_a_flush_without_commit(db: Any) -> None:
    """In a transaction (SecantusDB) close() aborts it: nothing of the flush stays
    and nothing is read back. Without one (mongomock) the flush's write stays and
    its value is read back."""
    _stored_docs(db, 1)
    s = Session(db)
    (doc,) = s.query(Stamped).all()
    doc.n = 7
    s.flush()
    s.close()
    stored = db.expired_reads.find_one({"_id": doc.id})
    if isinstance(db, mongomock.Database):
        assert stored["n"] == 7 and stored["seen"] != OLD
    else:
        assert stored["n"] == 0 and stored["seen"] == OLD
    assert doc.seen == stored["seen"]
    if isinstance(db, mongomock.Database):
        assert_stored_is_memory(db, doc)  # (in a transaction: doc.n = 7 was dropped)


def test_a_failed_read_when_closing_keeps_the_values_and_says_so(
    db: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stored_docs(db, 1)
    s = Session(db)
    (doc,) = s.query(Stamped).all()
    doc.n = 7
    s.commit()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PyMongoError("connection lost")

    monkeypatch.setattr(s._tracker, "_find", refuse)
    with caplog.at_level(logging.WARNING, logger="uow"):
        s.close()
    assert doc.seen == OLD  # what the session had: nothing could be read
    assert "could not read the $currentDate fields of 1 document(s)" in caplog.text


class Plain(Document):
    __collection__ = "expired_reads_plain"
    n: int = 0


def test_fields_emptied_by_an_aborted_rollback_are_not_read_when_closing(
    db: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rollback that aborted a transaction every field is read afresh on
    its next access; they hold what was last known stored, so leaving the session
    reads nothing (a session closed after an error must not query the server)."""
    db.expired_reads_plain.insert_many([{"n": i} for i in range(3)])
    s = Session(db)
    docs = s.query(Plain).all()
    for doc in docs:
        doc.n += 10
    s.flush()
    s.rollback()
    reads: list[Any] = []

    def record(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        raise PyMongoError("no read expected")

    monkeypatch.setattr(s._tracker, "_find", record)
    with caplog.at_level(logging.WARNING, logger="uow"):
        s.close()
    assert reads == []
    assert "could not read" not in caplog.text
    # Memory is what is stored: as committed (transaction aborted), or as flushed
    # (mongomock: no transaction, rollback() goes back to the last flush).
    stored = sorted(raw["n"] for raw in db.expired_reads_plain.find())
    assert stored == ([10, 11, 12] if isinstance(db, mongomock.Database) else [0, 1, 2])
    assert sorted(doc.n for doc in docs) == stored
    assert_stored_is_memory(db, *docs)


def test_closing_at_the_request_limit_keeps_the_values_and_does_not_raise(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """``max_requests`` reached: the read before letting go is not sent, close()
    still closes (it never fails for a read it only adds), and says so."""
    _stored_docs(db, 1)
    s = Session(db, max_requests=1000)
    (doc,) = s.query(Stamped).all()
    doc.n = 7
    s.commit()
    s._channel.max_requests = s.stats().requests  # (the limit reached, as if by use)
    with caplog.at_level(logging.WARNING, logger="uow"):
        s.close()
    assert s.closed
    assert doc.seen == OLD
    assert "could not read the $currentDate fields of 1 document(s)" in caplog.text
