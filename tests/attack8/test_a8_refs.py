"""Refs in containers at depth, refs to subclasses, other id types."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Session, field

from ._h8 import stored


class A8RAnimal(Document):
    __collection__ = "a8r_animals"
    name: str = ""


class A8RDog(A8RAnimal):
    barks: int = 0


class A8RKeyed(Document):
    __collection__ = "a8r_keyed"
    id: str
    n: int = field(default=0, on_update="$inc")


class A8RSlot(uow.Embedded):
    who: uow.Ref[A8RAnimal] | None = None
    many: list[uow.Ref[A8RAnimal]] = field(factory=list)


class A8ROwner(Document):
    __collection__ = "a8r_owners"
    pets: dict[str, list[uow.Ref[A8RAnimal]]] = field(factory=dict)
    slots: list[A8RSlot] = field(factory=list)
    grid: list[list[uow.Ref[A8RAnimal]]] = field(factory=list)
    dog: uow.Ref[A8RDog] | None = None
    keyed: list[uow.Ref[A8RKeyed]] = field(factory=list)


def _setup(db: Any) -> tuple[Session, A8RAnimal, A8RDog, A8ROwner]:
    s = Session(db)
    a, d = A8RAnimal(name="a"), A8RDog(name="d")
    o = A8ROwner(slots=[A8RSlot()], grid=[[]])
    s.add_all([a, d, o])
    s.commit()
    return s, a, d, o


def test_refs_put_in_place_at_depth_stored_as_ids(db: Any) -> None:
    s, a, d, o = _setup(db)
    o.pets["x"] = [a]
    s.commit()
    o.pets["x"].append(d)
    o.slots[0].many.append(a)
    o.slots[0].many.append(d.id)
    o.grid[0].append(d)
    o.slots.append(A8RSlot(who=a, many=[d]))
    s.commit()
    doc = stored(db, o)
    assert doc["pets"] == {"x": [a.id, d.id]}
    assert doc["slots"] == [{"who": None, "many": [a.id, d.id]}, {"who": a.id, "many": [d.id]}]
    assert doc["grid"] == [[d.id]]
    s2 = Session(db)
    o2 = s2.get(A8ROwner, o.id)
    got = s2.dereference(o2.grid[0][0])
    assert type(got) is A8RDog
    assert s2.dereference(o2.pets["x"][1]) is got


def test_wrong_value_at_depth_refused_then_removed(db: Any) -> None:
    s, _a, _d, o = _setup(db)
    o.slots[0].many.append("bad")  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    o.slots[0].many.pop()
    o.grid[0].append(A8ROwner())  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    o.grid[0].clear()
    s.commit()
    assert stored(db, o)["grid"] == [[]]


def test_ref_subclass_rules(db: Any) -> None:
    s, a, d, o = _setup(db)
    o.dog = d
    with pytest.raises(uow.ValidationError):
        o.dog = a  # type: ignore[assignment]
    s.commit()
    assert stored(db, o)["dog"] == d.id
    s2 = Session(db)
    o2 = s2.get(A8ROwner, o.id)
    assert type(s2.dereference(o2.dog)) is A8RDog


def test_other_id_type(db: Any) -> None:
    s = Session(db)
    k = A8RKeyed(id="key-1")
    s.add(k)
    s.commit()
    assert db.a8r_keyed.find_one({"_id": "key-1"}) == {"_id": "key-1", "n": 0}
    k.n += 2
    s.commit()
    assert db.a8r_keyed.find_one({"_id": "key-1"})["n"] == 2
    o = A8ROwner(keyed=[k, "key-2"])
    s.add(o)
    s.commit()
    assert stored(db, o)["keyed"] == ["key-1", "key-2"]
    s2 = Session(db)
    assert s2.get(A8RKeyed, "key-1").n == 2
    o2 = s2.get(A8ROwner, o.id)
    assert s2.dereference(o2.keyed[0]) is s2.get(A8RKeyed, "key-1")
    assert s2.dereference(o2.keyed[1], allow_none=True) is None
    with pytest.raises(uow.ValidationError):
        o2.keyed.append(123)  # type: ignore[arg-type]
        s2.flush()


def test_dereference_pending_no_query(db: Any) -> None:
    s = Session(db)
    a = A8RAnimal(name="p")
    o = A8ROwner(slots=[A8RSlot(who=a)])
    s.add_all([a, o])
    before = s.stats().queries
    assert s.dereference(o.slots[0].who) is a
    assert s.stats().queries == before
