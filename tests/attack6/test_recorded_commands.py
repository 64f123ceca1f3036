"""What a command listener recorded of an insert stays what was sent: the insert's
document is the document's snapshot afterwards, and a later update makes a new
snapshot rather than writing into it (a version of this round did, outside a
transaction, and the recorded insert changed after the fact).
"""

from __future__ import annotations

from uow import Session

from ._models import RvTagged


def test_recorded_insert_command_is_not_rewritten_by_a_later_update(
    secantus_listened_db, command_log
):
    s = Session(secantus_listened_db, transactional=False)
    try:
        doc = RvTagged(name="sent")
        s.add(doc)
        s.flush()
        (insert,) = command_log.of("insert")
        sent = insert["documents"][0]
        assert sent["name"] == "sent"

        doc.name = "later"
        s.flush()

        # What the insert command carried must not change after the fact.
        assert sent["name"] == "sent"
        assert command_log.of("insert")[0]["documents"][0]["name"] == "sent"
    finally:
        s.close()
