"""A document inserted in the open transaction and then assigned to, whose insert
is queued again when a later flush fails (the transaction aborted), is pending
again and no update: cancelling the insert with ``delete()`` leaves nothing
queued for it (it once stayed among the updates, and every later flush failed)."""

from __future__ import annotations

import pytest

import uow

from ._models import RvTagged, RvUnique


@pytest.mark.transactions
def test_cancelled_requeued_insert_does_not_break_later_flushes(db, sessions):
    s = sessions()
    s.add(RvUnique(email="a"))
    s.commit()
    doc = RvTagged(name="a")
    s.add(doc)
    s.flush()                        # inserted in the open transaction
    doc.name = "b"                   # ... and assigned to: in Tracker.modified
    dup = RvUnique(email="a")
    s.add(dup)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()                    # the transaction is aborted: doc is PENDING again
    s.expunge(dup)
    s.delete(doc)                    # cancels the insert
    s.commit()                       # AssertionError (both versions)
    assert db["rv_tagged"].count_documents({}) == 0
