"""Two sessions writing the same document: operators relative to what is stored."""

from __future__ import annotations

from typing import Any

import uow
from uow import Document, Session, field

from ._h8 import stored


class A8Item(uow.Embedded):
    name: str
    qty: int = field(default=0, on_update="$inc")
    notes: list[str] = field(factory=list)


class A8Shared(Document):
    __collection__ = "a8_shared"
    hits: int = field(default=0, on_update="$inc")
    score: float = field(default=0.0, on_update="$inc")
    log: list[str] = field(factory=list, on_update="$push")
    plain: list[str] = field(factory=list)
    tags: list[str] = field(factory=list, on_update="$addToSet")
    items: list[A8Item] = field(factory=list)
    by: dict[str, A8Item] = field(factory=dict)
    counts: dict[str, int] = field(factory=dict)
    title: str = ""
    top: int = field(default=0, on_update="$max")


def _two(db: Any) -> tuple[Session, Any, Session, Any]:
    s0 = Session(db)
    d = A8Shared(items=[A8Item(name="a")], by={"k": A8Item(name="k")}, counts={"c": 1})
    s0.add(d)
    s0.commit()
    s1, s2 = Session(db), Session(db)
    d1, d2 = s1.get(A8Shared, d.id), s2.get(A8Shared, d.id)
    assert d1 is not None and d2 is not None
    return s1, d1, s2, d2


def test_inc_and_push_from_both_add_up(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    d1.hits += 1
    d1.score += 0.5
    d1.log.append("one")
    d1.plain.append("p1")
    d1.tags.append("t1")
    s1.commit()
    d2.hits += 2
    d2.score += 0.25
    d2.log.append("two")
    d2.plain.append("p2")
    d2.tags.append("t2")
    s2.commit()
    doc = stored(db, d1)
    assert doc["hits"] == 3
    assert doc["score"] == 0.75
    assert doc["log"] == ["one", "two"]
    assert doc["plain"] == ["p1", "p2"]
    assert doc["tags"] == ["t1", "t2"]


def test_inc_and_push_at_depth_from_both(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    d1.items[0].qty += 1
    d1.items[0].notes.append("n1")
    d1.by["k"].qty += 1
    d1.by["k"].notes.append("k1")
    s1.commit()
    d2.items[0].qty += 5
    d2.items[0].notes.append("n2")
    d2.by["k"].qty += 5
    d2.by["k"].notes.append("k2")
    s2.commit()
    doc = stored(db, d1)
    assert doc["items"][0]["qty"] == 6
    assert doc["items"][0]["notes"] == ["n1", "n2"]
    assert doc["by"]["k"]["qty"] == 6
    assert doc["by"]["k"]["notes"] == ["k1", "k2"]


def test_append_embedded_elements_from_both(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    d1.items.append(A8Item(name="from1"))
    s1.commit()
    d2.items.append(A8Item(name="from2"))
    s2.commit()
    assert [i["name"] for i in stored(db, d1)["items"]] == ["a", "from1", "from2"]


def test_different_dict_keys_from_both(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    d1.counts["x"] = 1
    s1.commit()
    d2.counts["y"] = 2
    s2.commit()
    assert stored(db, d1)["counts"] == {"c": 1, "x": 1, "y": 2}


def test_interleaved_many_rounds(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    for i in range(5):
        d1.hits += 1
        d1.log.append(f"a{i}")
        s1.commit()
        d2.hits += 10
        d2.log.append(f"b{i}")
        s2.commit()
    doc = stored(db, d1)
    assert doc["hits"] == 55
    assert doc["log"] == [x for i in range(5) for x in (f"a{i}", f"b{i}")]


def test_inc_field_set_after_inc_same_flush(db: Any) -> None:
    # an $inc field assigned then incremented before flush: delta since load
    s1, d1, s2, d2 = _two(db)
    d1.hits += 4
    s1.commit()
    d2.hits = 10  # from 0: delta 10
    d2.hits -= 3  # delta 7
    s2.commit()
    assert stored(db, d1)["hits"] == 11


def test_inc_then_refresh_sees_both(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    d1.hits += 1
    s1.commit()
    d2.hits += 1
    s2.commit()
    s1.refresh(d1)
    assert d1.hits == 2
    d1.hits += 1
    s1.commit()
    assert stored(db, d1)["hits"] == 3


def test_max_from_both(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    d1.top = 9
    s1.commit()
    d2.top = 4
    s2.commit()
    assert stored(db, d1)["top"] == 9


def test_second_flush_inc_is_delta_since_last_flush(db: Any) -> None:
    s1, d1, s2, d2 = _two(db)
    d1.hits += 1
    s1.commit()
    d1.hits += 1
    s1.commit()
    d2.hits += 100
    s2.commit()
    assert stored(db, d1)["hits"] == 102
