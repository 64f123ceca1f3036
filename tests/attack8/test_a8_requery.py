"""Re-reading documents the session already holds."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

import uow
from uow import Document, Session, field

from ._h8 import stored


class A8QEntry(uow.Embedded):
    k: str = ""
    v: int = 0


class A8QDoc(Document):
    __collection__ = "a8_requery"
    name: str = ""
    hits: int = field(default=0, on_update="$inc")
    log: list[A8QEntry] = field(factory=list, on_update="$push")
    bag: list[A8QEntry] = field(factory=list, on_update="$addToSet")
    tags: list[str] = field(factory=list)


def _seed(db: Any) -> ObjectId:
    s = Session(db)
    d = A8QDoc(name="x")
    s.add(d)
    s.commit()
    s.close()
    return d.id


def test_requery_clean_doc_changed_elsewhere_then_inc(db: Any) -> None:
    oid = _seed(db)
    s = Session(db)
    d = s.get(A8QDoc, oid)
    db.a8_requery.update_one({"_id": oid}, {"$set": {"hits": 10, "tags": ["o"]}})
    again = s.query(A8QDoc).filter(name="x").one()
    assert again is d
    d.hits += 1
    d.tags.append("m")
    s.commit()
    doc = stored(db, d)
    assert doc["hits"] == 11
    assert doc["tags"] == ["o", "m"]
    # whatever the query did to memory, memory and snapshot agree with each other
    if d.hits == 11:
        assert d.tags == ["o", "m"]


def test_requery_partial_of_dirty_keeps_change(db: Any) -> None:
    oid = _seed(db)
    s = Session(db, autoflush=False)
    d = s.get(A8QDoc, oid)
    d.name = "mine"
    d.tags.append("t")
    p = s.query(A8QDoc).fields("name", "tags").one()
    assert p is d
    assert d.name == "mine" and d.tags == ["t"]
    s.commit()
    assert stored(db, d)["name"] == "mine"
    assert stored(db, d)["tags"] == ["t"]


def test_push_and_addtoset_embedded_from_two_sessions(db: Any) -> None:
    oid = _seed(db)
    s1, s2 = Session(db), Session(db)
    d1, d2 = s1.get(A8QDoc, oid), s2.get(A8QDoc, oid)
    d1.log.append(A8QEntry(k="a", v=1))
    d1.bag.append(A8QEntry(k="same", v=1))
    s1.commit()
    d2.log.append(A8QEntry(k="b", v=2))
    d2.bag.append(A8QEntry(k="same", v=1))
    d2.bag.append(A8QEntry(k="other", v=2))
    s2.commit()
    doc = db.a8_requery.find_one({"_id": oid})
    assert doc["log"] == [{"k": "a", "v": 1}, {"k": "b", "v": 2}]
    assert doc["bag"] == [{"k": "same", "v": 1}, {"k": "other", "v": 2}]


def test_refresh_after_concurrent_then_flush_is_minimal(db: Any) -> None:
    oid = _seed(db)
    s1, s2 = Session(db), Session(db)
    d1, d2 = s1.get(A8QDoc, oid), s2.get(A8QDoc, oid)
    d2.hits += 5
    d2.log.append(A8QEntry(k="z"))
    s2.commit()
    s1.refresh(d1)
    assert d1.hits == 5 and d1.log == [A8QEntry(k="z")]
    assert not s1.is_dirty(d1)
    d1.log.append(A8QEntry(k="y"))
    d1.hits += 1
    s1.commit()
    doc = db.a8_requery.find_one({"_id": oid})
    assert doc["hits"] == 6
    assert [e["k"] for e in doc["log"]] == ["z", "y"]
