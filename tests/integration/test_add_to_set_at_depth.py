"""``$addToSet`` on a path through a list element (``lines.0.kinds``), on every lane.

mongomock cannot walk a list index in ``$addToSet``; uow's embedded writer turns
such an update into the ``$push`` of the items not stored yet, which is what
MongoDB's ``$addToSet`` stores. Checked by what is stored, against memory.
"""

from __future__ import annotations

from typing import Any

import uow
from uow import Document, Embedded, field


class AtsLine(Embedded):
    sku: str = ""
    kinds: list[str] = field(factory=list, on_update="$addToSet")


class AtsOrder(Document):
    __collection__ = "ats_orders"
    lines: list[AtsLine] = field(factory=list)


def _commit(s: uow.Session) -> None:
    s.commit()
    s.close()


def test_add_to_set_in_a_list_element_stores_what_memory_holds(db: Any) -> None:
    order = AtsOrder(lines=[AtsLine(sku="a", kinds=["x"]), AtsLine(sku="b")])
    s = uow.Session(db)
    s.add(order)
    s.commit()
    order.lines[0].kinds.append("y")
    order.lines[1].kinds.append("z")
    _commit(s)
    stored = db["ats_orders"].find_one({"_id": order.id})
    assert [line["kinds"] for line in stored["lines"]] == [["x", "y"], ["z"]]
    assert [line.kinds for line in order.lines] == [["x", "y"], ["z"]]  # memory


def test_two_sessions_adding_the_same_item_at_depth_keep_one(db: Any) -> None:
    order = AtsOrder(lines=[AtsLine(sku="a", kinds=["x"])])
    s = uow.Session(db)
    s.add(order)
    _commit(s)
    first, second = uow.Session(db), uow.Session(db)
    mine = first.get(AtsOrder, order.id)
    theirs = second.get(AtsOrder, order.id)
    assert mine is not None and theirs is not None
    mine.lines[0].kinds.append("y")
    theirs.lines[0].kinds.append("y")
    theirs.lines[0].kinds.append("w")
    _commit(second)
    _commit(first)
    stored = db["ats_orders"].find_one({"_id": order.id})
    assert stored["lines"][0]["kinds"] == ["x", "y", "w"]
    # Each session holds what it computed from what it loaded (SPEC); a fresh
    # load holds what is stored.
    fresh = uow.Session(db)
    again = fresh.get(AtsOrder, order.id)
    assert again is not None and again.lines[0].kinds == ["x", "y", "w"]
    fresh.close()
