"""A flush of plain assignments writes its ``$set`` values into the document's
snapshot (no new snapshot per changed document, see ``uow._state``), and only
where that loses nothing: outside a transaction. Inside one, the snapshot a
rollback goes back to stays as it was.

Shown by what is stored (read with another client) and by what memory holds
after each step.
"""

from __future__ import annotations

from typing import Any

import pymongo
import pytest

from uow import Document, DuplicateKeyError, TransactionError
from uow.session import Session

from ._faults import FIXTURES, fail_point
from ._support import Sessions

recorder_fixture, faulty_fixture, fdb_fixture, fsessions_fixture = FIXTURES

WRITE_CONFLICT = 112


class SipPlain(Document):
    """Only plain fields: every change of them is a $set (the short path)."""

    __collection__ = "sip_plain"
    name: str
    n: int = 0


def _stored(db: Any, obj: SipPlain) -> dict[str, Any] | None:
    found: dict[str, Any] | None = db[SipPlain.__collection__].find_one({"_id": obj.id})
    return found


def test_each_flush_of_plain_assignments_leaves_stored_equal_to_memory(db: Any) -> None:
    with Session(db, transactional=False) as s:
        doc = SipPlain(name="a", n=1)
        s.add(doc)
        s.flush()
        for value in (2, 3, 1, 1):
            doc.n = value
            s.flush()
            assert _stored(db, doc) == {"_id": doc.id, "name": "a", "n": value}
            assert s.what_changed() == {}
        # The snapshot took each value: assigning the one before is a change.
        doc.n = 3
        assert s.flush().updated == 1
        assert _stored(db, doc) == {"_id": doc.id, "name": "a", "n": 3}


def test_original_value_follows_the_flushes(db: Any) -> None:
    with Session(db, transactional=False) as s:
        doc = SipPlain(name="a")
        s.add(doc)
        s.flush()
        doc.name = "b"
        assert s.original_value(doc, "name") == "a"
        s.flush()
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
        doc.n = 1
        s.commit()
        assert _stored(secantus_db, doc) == {"_id": doc.id, "name": "a", "n": 1}


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


def test_a_failed_flush_changes_no_snapshot(db: Any) -> None:
    db[SipPlain.__collection__].create_index("name", unique=True)
    with Session(db, transactional=False) as s:
        first, second = SipPlain(name="a"), SipPlain(name="b")
        s.add_all([first, second])
        s.flush()
        second.name = "a"  # refused by the unique index
        second.n = 5
        with pytest.raises(DuplicateKeyError):
            s.flush()
        assert s.original_value(second, "name") == "b"
        assert _stored(db, second) == {"_id": second.id, "name": "b", "n": 0}
        second.name = "c"
        s.flush()
        assert _stored(db, second) == {"_id": second.id, "name": "c", "n": 5}
