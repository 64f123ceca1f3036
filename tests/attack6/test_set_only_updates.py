"""Updates of $set values only, whose new snapshot is made when the write landed:
rollbacks, aborts, a duplicate key in a batch of them, an unknown outcome."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

import uow
import uow._embedded as embedded
from tests._blackbox import assert_stored_is_memory
from uow import Session

from ._models import RvTagged, RvUnique


def stored(db, cls, doc):
    """``doc`` as stored, checked to be what memory holds."""
    assert_stored_is_memory(db, doc)
    return db[cls._uow_meta.collection].find_one({"_id": doc.id})


def test_rollback_after_inplace_update_goes_to_what_was_flushed(db, sessions):
    s = sessions()
    doc = RvTagged(name="a")
    s.add(doc)
    s.commit()
    doc.name = "b"
    s.flush()                       # the fast path ($set of a set key)
    s.commit()
    doc.name = "c"
    assert s.original_value(doc, "name") == "b"
    assert s.what_changed() == {("rv_tagged", doc.id): {"name": ("b", "c")}}
    s.rollback()
    assert doc.name == "b"
    assert stored(db, RvTagged, doc)["name"] == "b"


@pytest.mark.transactions
def test_abort_after_flush_in_transaction_restores_committed(db, sessions):
    s = sessions()
    doc = RvTagged(name="a")
    s.add(doc)
    s.commit()
    doc.name = "b"
    s.flush()                       # in the transaction: a new snapshot dict
    s.rollback()
    assert doc.name == "a"
    assert stored(db, RvTagged, doc)["name"] == "a"
    doc.name = "c"
    s.commit()
    assert stored(db, RvTagged, doc)["name"] == "c"


def test_duplicate_key_in_a_batch_of_fast_path_updates(db, sessions):
    s = sessions()
    a, b, c = RvUnique(email="a"), RvUnique(email="b"), RvUnique(email="c")
    s.add_all([a, b, c])
    s.commit()
    a.n = 1
    b.email = "c"                    # collides
    c.n = 3
    with pytest.raises(uow.DuplicateKeyError):
        s.commit()
    b.email = "b2"
    s.commit()
    assert [stored(db, RvUnique, d)["n"] for d in (a, b, c)] == [1, 0, 3]
    assert stored(db, RvUnique, b)["email"] == "b2"
    assert not s.has_changes()
    a.n = 9
    s.rollback()
    assert a.n == 1


def test_in_doubt_fast_path_update_is_resolved(mongomock_db, monkeypatch):
    s = Session(mongomock_db)
    doc = RvTagged(name="a")
    s.add(doc)
    s.commit()
    original = embedded.bulk_write

    def lost_reply(collection, requests):
        original(collection, requests)
        raise AutoReconnect("reply lost")

    monkeypatch.setattr(embedded, "bulk_write", lost_reply)
    doc.name = "b"
    with pytest.raises(uow.FlushError):
        s.flush()
    monkeypatch.setattr(embedded, "bulk_write", original)
    doc.name = "c"
    s.flush()
    assert stored(mongomock_db, RvTagged, doc)["name"] == "c"
    doc.name = "d"
    s.rollback()
    assert doc.name == "c"
    s.close()


def test_closed_session_document_readded_elsewhere(db, sessions):
    s1 = sessions()
    doc = RvTagged(name="a")
    s1.add(doc)
    s1.commit()
    doc.name = "b"
    s1.commit()
    s1.close()
    doc.name = "c"                  # changed while detached
    s2 = sessions()
    s2.add(doc)
    assert s2.what_changed() == {("rv_tagged", doc.id): {"name": ("b", "c")}}
    s2.commit()
    doc.name = "d"
    s2.commit()
    assert stored(db, RvTagged, doc)["name"] == "d"
    s2.expunge(doc)
    s2.add(doc)
    doc.name = "e"
    s2.rollback()
    assert doc.name == "d"


def test_inplace_mutation_found_with_assignment_elsewhere_cache_0(db, sessions):
    s = sessions(cache_size=0)
    a, b = RvTagged(name="a"), RvTagged(name="b")
    s.add_all([a, b])
    s.commit()
    a.name = "a2"                   # assigned: in the modified queue
    b.tags.append("t")              # clean document changed in place only
    s.commit()
    assert stored(db, RvTagged, a)["name"] == "a2"
    assert stored(db, RvTagged, b)["tags"] == ["t"]
