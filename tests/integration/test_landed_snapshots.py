"""A flushed update's new snapshot is made when its write landed, never by
changing a snapshot in place: a snapshot may be the very dict the driver was
given (an insert's document) or returned (a loaded one), which a command
listener may hold; inside a transaction the committed snapshot must stay as it
was for an abort. And a write that is not the tracked document's own (an
untracked document's explicit update) never becomes its snapshot.

Shown by what is stored (read with another client), by what memory holds after
each step, and by what a command listener recorded.
"""

from __future__ import annotations

from typing import Any

import pymongo
import pytest

from uow import Document, DuplicateKeyError, TransactionError, field
from uow.session import Session

from ._faults import FIXTURES, fail_point
from ._support import Sessions

recorder_fixture, faulty_fixture, fdb_fixture, fsessions_fixture = FIXTURES

WRITE_CONFLICT = 112


class SipCounter(Document):
    __collection__ = "sip_counter"
    name: str
    hits: int = field(default=0, on_update="$inc")


class SipPlain(Document):
    """Only plain fields: every change of them is a $set (the short path)."""

    __collection__ = "sip_plain"
    name: str
    n: int = 0


def _stored(db: Any, obj: Document) -> dict[str, Any] | None:
    found: dict[str, Any] | None = db[type(obj).__collection__].find_one({"_id": obj.id})
    return found


def _stored_is_memory(db: Any, *objs: Document) -> None:
    """Each document as stored (read back with pymongo) is what memory holds."""
    for obj in objs:
        assert _stored(db, obj) == obj.to_bson()


def test_each_flush_of_plain_assignments_leaves_stored_equal_to_memory(db: Any) -> None:
    with Session(db, transactional=False) as s:
        doc = SipPlain(name="a", n=1)
        s.add(doc)
        s.flush()
        _stored_is_memory(db, doc)
        for value in (2, 3, 1, 1):
            doc.n = value
            s.flush()
            assert _stored(db, doc) == {"_id": doc.id, "name": "a", "n": value}
            _stored_is_memory(db, doc)
            assert s.what_changed() == {}
        # The snapshot took each value: assigning the one before is a change.
        doc.n = 3
        assert s.flush().updated == 1
        assert _stored(db, doc) == {"_id": doc.id, "name": "a", "n": 3}
        _stored_is_memory(db, doc)


def test_original_value_follows_the_flushes(db: Any) -> None:
    with Session(db, transactional=False) as s:
        doc = SipPlain(name="a")
        s.add(doc)
        s.flush()
        _stored_is_memory(db, doc)
        doc.name = "b"
        assert s.original_value(doc, "name") == "a"
        s.flush()
        _stored_is_memory(db, doc)
        assert s.original_value(doc, "name") == "b"
        doc.name = "c"
        assert s.what_changed() == {("sip_plain", doc.id): {"name": ("b", "c")}}


@pytest.mark.transactions
def test_a_rollback_after_a_flush_in_a_transaction_goes_back_to_the_committed_values(
    secantus_db: Any,
) -> None:
    with Session(secantus_db) as s:
        doc = SipPlain(name="a", n=1)
        s.add(doc)
        s.commit()
        doc.n = 2
        doc.name = "b"
        s.flush()  # inside the transaction: not committed
        doc.n = 3
        s.flush()
        s.rollback()
        assert (doc.name, doc.n) == ("a", 1)
        assert _stored(secantus_db, doc) == {"_id": doc.id, "name": "a", "n": 1}
        # The committed snapshot was not changed by the flushes rolled back: the
        # next change is diffed against it, and lands.
        doc.n = 2
        s.commit()
        assert _stored(secantus_db, doc) == {"_id": doc.id, "name": "a", "n": 2}
        _stored_is_memory(secantus_db, doc)
        doc.n = 1
        s.commit()
        assert _stored(secantus_db, doc) == {"_id": doc.id, "name": "a", "n": 1}
        _stored_is_memory(secantus_db, doc)


@pytest.mark.transactions
def test_a_change_whose_commit_failed_is_sent_again_by_the_next_commit(
    fsessions: Sessions, faulty: pymongo.MongoClient[Any]
) -> None:
    s = fsessions.open()
    doc = SipPlain(name="a", n=1)
    s.add(doc)
    s.commit()
    doc.n = 2
    with fail_point(faulty, ["commitTransaction"], errorCode=WRITE_CONFLICT):
        with pytest.raises(TransactionError):
            s.commit()  # the flush landed in the transaction; its commit did not
    # The change is queued again against the committed values, not lost with
    # the aborted transaction's snapshot.
    assert doc.n == 2
    s.commit()
    assert _stored(fsessions.db, doc) == {"_id": doc.id, "name": "a", "n": 2}
    _stored_is_memory(fsessions.db, doc)


def test_a_failed_flush_changes_no_snapshot(db: Any) -> None:
    db[SipPlain.__collection__].create_index("name", unique=True)
    with Session(db, transactional=False) as s:
        first, second = SipPlain(name="a"), SipPlain(name="b")
        s.add_all([first, second])
        s.flush()
        _stored_is_memory(db, first, second)
        second.name = "a"  # refused by the unique index
        second.n = 5
        with pytest.raises(DuplicateKeyError):
            s.flush()
        assert s.original_value(second, "name") == "b"
        assert _stored(db, second) == {"_id": second.id, "name": "b", "n": 0}
        second.name = "c"
        s.flush()
        assert _stored(db, second) == {"_id": second.id, "name": "c", "n": 5}
        _stored_is_memory(db, first, second)


def test_a_recorded_insert_command_stays_what_was_sent(
    secantus_listened_db: Any, command_log: Any
) -> None:
    with Session(secantus_listened_db, transactional=False) as s:
        doc = SipPlain(name="sent")
        s.add(doc)
        s.flush()
        _stored_is_memory(secantus_listened_db, doc)
        (insert,) = command_log.of("insert")
        sent = insert["documents"][0]
        doc.name = "later"
        s.flush()
        assert sent["name"] == "sent"  # the document the listener saw is unchanged
        assert _stored(secantus_listened_db, doc) == {"_id": doc.id, "name": "later", "n": 0}
        _stored_is_memory(secantus_listened_db, doc)


def test_an_untracked_update_of_a_document_added_back_settles_the_whole_flush(db: Any) -> None:
    with Session(db, transactional=False) as s:
        plain, counter = SipPlain(name="a"), SipCounter(name="c")
        s.add_all([plain, counter])
        s.commit()
        s.expunge(plain)
        s.update(plain)  # not tracked here: written whole
        s.add(plain)  # ... and tracked again before the flush
        plain.name = "b"
        counter.hits += 1  # a $inc in another batch
        s.flush()
        _stored_is_memory(db, plain, counter)
        s.flush()  # sends nothing again: every write of the first one was settled
        _stored_is_memory(db, plain, counter)
        assert s.what_changed() == {}
        stored_counter = db[SipCounter.__collection__].find_one({"_id": counter.id})
        assert stored_counter == {"_id": counter.id, "name": "c", "hits": 1}
        assert _stored(db, plain) == {"_id": plain.id, "name": "b", "n": 0}
