"""An explicit update() queued for a document the session does not track, which is
then add()-ed back before the flush: the untracked update's write is not the
tracked document's own, and the flush settles every write that landed (before
this round's fix, the settle stopped at it with an assertion: the writes after it
stayed queued and were sent again, a $inc counted twice).
"""

from __future__ import annotations

import pytest

from tests._blackbox import assert_stored_is_memory

from ._models import RvCounter, RvFlat


def test_explicit_update_of_readded_document_does_not_break_settle(db, sessions):
    s = sessions()
    flat = RvFlat(name="a")
    counter = RvCounter(name="c")
    s.add_all([flat, counter])
    s.commit()

    s.expunge(flat)
    s.update(flat)            # flat is not tracked here: an untracked explicit update
    s.add(flat)               # ... and tracked again before the flush
    counter.hits += 1         # $inc 1, in a later batch (another collection)

    s.flush()
    s.flush()                 # must not send the $inc again
    s.commit()

    assert_stored_is_memory(db, counter, flat)
    stored = db["rv_counter"].find_one({"_id": counter.id})
    assert stored["hits"] == 1 == counter.hits
    s.close()


def test_explicit_update_of_readded_document_then_commit(db, sessions):
    s = sessions()
    flat = RvFlat(name="a")
    s.add(flat)
    s.commit()
    s.expunge(flat)
    s.update(flat)
    s.add(flat)
    flat.name = "b"
    s.commit()
    assert db["rv_flat"].find_one({"_id": flat.id})["name"] == "b"
    assert_stored_is_memory(db, flat)
    s.close()


def test_interrupted_settle_does_not_resend_a_landed_inc(mongomock_db):
    """The consequence, without a transaction (every landed write is stored at
    once): whatever the first flush raises, the $inc that landed in it must not
    be sent again by the next flush."""
    from uow import Session

    s = Session(mongomock_db)
    flat = RvFlat(name="a")
    counter = RvCounter(name="c")
    s.add_all([flat, counter])
    s.commit()
    s.expunge(flat)
    s.update(flat)
    s.add(flat)
    counter.hits += 1
    s.flush()
    s.flush()  # nothing of the first flush is sent again
    assert_stored_is_memory(mongomock_db, counter, flat)
    stored = mongomock_db["rv_counter"].find_one({"_id": counter.id})
    s.close()
    assert stored["hits"] == counter.hits == 1  # never sent twice


def _no_tracking_load_updated_then_added(db, sessions):
    writer = sessions()
    writer.add(RvFlat(name="a", n=1))
    writer.commit()
    reader = sessions(no_tracking=True)
    loaded = reader.query(RvFlat).first()
    s = sessions()
    s.update(loaded)  # untracked here: every field with $set (SPEC: update() after no_tracking)
    s.add(loaded)             # and tracked again (SPEC: add() of a detached document)
    return s, loaded


def test_update_of_no_tracking_load_then_add(db, sessions):
    """The SPEC's own patterns combined: a document loaded by a no_tracking session,
    update()-d in another session and add()-ed there too: the commit lands."""
    s, loaded = _no_tracking_load_updated_then_added(db, sessions)
    loaded.n = 5
    s.commit()
    assert db["rv_flat"].find_one({"_id": loaded.id})["n"] == 5
    assert_stored_is_memory(db, loaded)


def test_update_of_no_tracking_load_then_add_then_change(db, sessions):
    """The same document's next change is written too (the untracked update's
    write once left it persistent without a snapshot, and its next flush failed)."""
    s, loaded = _no_tracking_load_updated_then_added(db, sessions)
    try:
        s.commit()
    except AssertionError:
        pytest.fail("the first commit failed (see the test above)")
    loaded.name = "b"
    s.commit()
    assert db["rv_flat"].find_one({"_id": loaded.id})["name"] == "b"
    assert_stored_is_memory(db, loaded)


def test_upsert_of_transient_then_add(db, sessions):
    s = sessions()
    doc = RvFlat(name="a")
    s.update(doc, upsert=True)   # a transient change object
    s.add(doc)                   # ... also added: an insert
    try:
        s.flush()
    except Exception as exc:     # a clear refusal would be fine; an assert is not
        assert not isinstance(exc, AssertionError), "internal assert fired after the writes landed"
