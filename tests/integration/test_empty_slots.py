"""Reading an empty field slot, on classes that never had one before.

A Document or Embedded class does not declare ``__getattr__``: CPython would then
read every attribute of every instance on its slow path. The hook that answers a
read of an empty slot (``FieldNotLoaded``, or a load of an expired
``$currentDate`` field) is installed on a class when one of its instances first
gets an empty slot. Each test here declares its own classes, so each path that
empties a slot is the first one for its class.
"""

from __future__ import annotations

import copy
import datetime as dt
import pickle
from typing import Any

import pytest
from bson import ObjectId

from tests._blackbox import assert_stored_is_memory
from uow import Document, Embedded, FieldNotLoaded, Session, field


def _classes() -> tuple[type[Any], type[Any]]:
    class Spot(Embedded):
        city: str
        zip: str = ""

    class Place(Document):
        __collection__ = "empty_slots"
        name: str
        visits: int = 0
        spot: Spot | None = None

    return Place, Spot


def test_a_class_whose_instances_never_had_an_empty_slot_has_no_hook(db: Any) -> None:
    place_cls, spot_cls = _classes()
    with Session(db) as s:
        s.add(place_cls(name="a", spot=spot_cls(city="Oslo")))
    with Session(db) as s:
        (loaded,) = s.query(place_cls).all()
        loaded.visits += 1
    assert db.empty_slots.find_one({}, {"_id": 0}) == {
        "name": "a",
        "visits": 1,
        "spot": {"city": "Oslo", "zip": ""},
    }
    assert_stored_is_memory(db, loaded)
    assert not hasattr(place_cls, "__getattr__")
    assert not hasattr(spot_cls, "__getattr__")


def test_the_first_partial_load_of_a_class_makes_its_reads_refuse(db: Any) -> None:
    place_cls, _ = _classes()
    db.empty_slots.insert_one({"name": "a", "visits": 4})
    with Session(db) as s:
        (partial,) = s.query(place_cls).fields("name").all()
        with pytest.raises(FieldNotLoaded, match=r"Place\.visits was not loaded"):
            _ = partial.visits
        with pytest.raises(AttributeError, match="no attribute 'nope'") as raised:
            _ = partial.nope
        assert not isinstance(raised.value, FieldNotLoaded)
        assert type(partial) is place_cls
        partial.visits = 7
    assert db.empty_slots.find_one({}, {"_id": 0}) == {"name": "a", "visits": 7}


def test_a_key_stored_absent_without_a_default_refuses_the_read(db: Any) -> None:
    place_cls, spot_cls = _classes()
    db.empty_slots.insert_one({"spot": {"zip": "0150"}})
    with Session(db) as s:
        (obj,) = s.query(place_cls).all()
        with pytest.raises(FieldNotLoaded, match=r"Place\.name was not loaded"):
            _ = obj.name
        assert obj.spot is not None
        with pytest.raises(FieldNotLoaded, match=r"Spot\.city was not loaded"):
            _ = obj.spot.city
        assert obj.spot.zip == "0150"
    assert hasattr(spot_cls, "__getattr__")


@pytest.mark.parametrize("how", ["pickle", "copy"])
def test_a_partial_state_restored_into_a_fresh_class_refuses_the_read(how: str) -> None:
    place_cls, _ = _classes()
    # The state a partly loaded Place pickles to (see Document.__getstate__).
    obj = place_cls.__new__(place_cls)
    state = {
        "id": ObjectId(),
        "name": "a",
        "spot": None,
        "_uow_extra": None,
        "_uow_absent": frozenset({"visits"}),
    }
    obj.__setstate__(state)
    with pytest.raises(FieldNotLoaded):
        _ = obj.visits
    if how == "copy":
        again = copy.copy(obj)
    else:
        # A class made in a function cannot be pickled by name: restore its state.
        again = place_cls.__new__(place_cls)
        again.__setstate__(pickle.loads(pickle.dumps(obj.__getstate__())))
    assert again.name == "a"
    with pytest.raises(FieldNotLoaded):
        _ = again.visits


def test_a_current_date_field_expired_by_the_first_flush_is_loaded_when_read(db: Any) -> None:
    class Stamp(Document):
        __collection__ = "empty_slots"
        name: str
        seen: dt.datetime | None = field(default=None, on_update="$currentDate")

    with Session(db) as s:
        stamp = Stamp(name="a")
        s.add(stamp)
        s.flush()
        stamp.name = "b"
        s.flush()
        seen = stamp.seen  # loaded now, in the session's transaction if it has one
        assert isinstance(seen, dt.datetime)
    stored = db.empty_slots.find_one({"_id": stamp.id})
    assert stored == {"_id": stamp.id, "name": "b", "seen": seen}


def test_a_class_with_its_own_getattr_keeps_it_for_names_that_are_not_fields(db: Any) -> None:
    class Loose(Document):
        __collection__ = "empty_slots"
        name: str
        visits: int = 0

        def __getattr__(self, name: str) -> Any:
            return f"<{name}>"

    db.empty_slots.insert_one({"name": "a", "visits": 2})
    with Session(db) as s:
        (partial,) = s.query(Loose).fields("name").all()
        with pytest.raises(FieldNotLoaded, match=r"Loose\.visits was not loaded"):
            _ = partial.visits
        assert partial.other == "<other>"
        assert partial.name == "a"
        assert Loose.__getattr__.__name__ == "__getattr__"  # (wrapped, not replaced)


def test_a_property_reading_a_field_not_loaded_raises_field_not_loaded(db: Any) -> None:
    class Named(Document):
        __collection__ = "empty_slots"
        first: str
        last: str = ""

        @property
        def full(self) -> str:
            return f"{self.first} {self.last}"

    db.empty_slots.insert_one({"first": "a", "last": "b"})
    with Session(db) as s:
        (partial,) = s.query(Named).fields("first").all()
        with pytest.raises(FieldNotLoaded, match=r"Named\.last was not loaded"):
            _ = partial.full


def test_a_subclass_of_a_class_with_the_hook_refuses_too(db: Any) -> None:
    place_cls, _ = _classes()

    class Bigger(place_cls):  # type: ignore[misc,valid-type]
        size: int = 1

    db.empty_slots.insert_one({"name": "a", "visits": 4})
    with Session(db) as s:
        (partial,) = s.query(place_cls).fields("name").all()
        with pytest.raises(FieldNotLoaded):
            _ = partial.visits
    db.empty_slots.delete_many({})
    db.empty_slots.insert_one({"name": "b", "_cls": Bigger._uow_meta.cls_name})
    with Session(db) as s:
        (loaded,) = s.query(Bigger).fields("name").all()
        with pytest.raises(FieldNotLoaded):
            _ = loaded.size
