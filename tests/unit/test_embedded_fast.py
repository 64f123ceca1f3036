"""Embedded documents on the fast paths: kept dumps, snapshots, exact-type checks.

The session's flush runs ``_uow_check_deep``, ``_uow_to_bson``, ``snapshot_of``,
``mutated`` and ``update_for`` in that order; these tests run them the same way,
with no database.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from bson.int64 import Int64

import uow
from uow import Document, Embedded, field
from uow._changes import changed_paths
from uow._diff import snapshot_of, update_for
from uow._state import mutated
from uow.operators import same


class Point(Embedded):
    x: int
    y: int = 0
    label: str | None = None


class Tagged(Embedded):
    name: str
    tags: list[str] = field(factory=list)


class Base(Embedded):
    name: str


class Sub(Base):
    notes: list[str] = field(factory=list)


class Shape(Document):
    __collection__ = "fast_shapes"
    origin: Point
    corner: Point | None = None
    path: list[Point] = field(factory=list)
    tagged: Tagged | None = None
    base: Base | None = None
    score: int = 0


def _loaded(raw: dict[str, Any]) -> tuple[Shape, dict[str, Any]]:
    """A Shape as a session holds it after a load: the object and its snapshot."""
    obj = Shape._uow_load(raw)
    return obj, snapshot_of(Shape._uow_meta, obj._uow_to_bson())


def _update(obj: Shape, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The update a flush sends for ``obj`` changed in place only."""
    meta = Shape._uow_meta
    obj._uow_check_deep(meta.name, "")
    return update_for(meta, snapshot, snapshot_of(meta, obj._uow_to_bson()), 0)


def _stored(**values: Any) -> dict[str, Any]:
    return Shape(origin=Point(x=1), **values)._uow_to_bson()


# -------------------------------------------------------------- kept dumps


def test_an_embedded_document_keeps_its_dump_until_a_field_is_assigned() -> None:
    point = Point(x=1, y=2)
    first = point._uow_to_bson()
    assert first == {"x": 1, "y": 2, "label": None}
    assert point._uow_to_bson() is first
    point.y = 3
    second = point._uow_to_bson()
    assert second == {"x": 1, "y": 3, "label": None}
    assert first == {"x": 1, "y": 2, "label": None}  # what was sent stays as sent


def test_a_refused_assignment_keeps_the_value_and_the_dump_right() -> None:
    point = Point(x=1)
    point._uow_to_bson()
    with pytest.raises(uow.ValidationError):
        point.x = "one"  # type: ignore[assignment]
    assert point._uow_to_bson() == {"x": 1, "y": 0, "label": None}


def test_an_embedded_document_with_a_list_keeps_no_dump() -> None:
    tagged = Tagged(name="a", tags=["x"])
    dump = tagged._uow_to_bson()
    tagged.tags.append("y")
    assert tagged._uow_to_bson() == {"name": "a", "tags": ["x", "y"]}
    assert dump["tags"] is tagged.tags  # a dump of a list field is the list itself


def test_public_to_bson_gives_copies_that_change_nothing() -> None:
    point = Point(x=1)
    shape = Shape(origin=point, path=[Point(x=2)])
    shape.to_bson()["origin"]["x"] = 99
    shape.to_bson()["path"][0]["x"] = 99
    point.to_bson()["y"] = 99
    assert shape._uow_to_bson()["origin"] == {"x": 1, "y": 0, "label": None}
    assert shape._uow_to_bson()["path"] == [{"x": 2, "y": 0, "label": None}]
    assert point == Point(x=1)


def test_changed_paths_give_copies() -> None:
    obj, snapshot = _loaded(_stored())
    obj.corner = Point(x=5)
    changes = changed_paths(Shape._uow_meta, snapshot, obj._uow_to_bson())
    changes["corner"][1]["x"] = 99
    assert obj._uow_to_bson()["corner"]["x"] == 5


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_copy_keeps_no_dump_of_the_original(how: str) -> None:
    point = Point(x=1)
    dump = point._uow_to_bson()
    twin = pickle.loads(pickle.dumps(point)) if how == "pickle" else getattr(copy, how)(point)
    twin.x = 2
    assert twin._uow_to_bson() == {"x": 2, "y": 0, "label": None}
    assert point._uow_to_bson() is dump
    assert dump["x"] == 1


def test_a_value_of_another_type_accepted_by_the_full_check_is_dumped_right() -> None:
    class Name(str):
        pass

    point = Point(x=1, label=Name("a"))
    assert point._uow_to_bson() == {"x": 1, "y": 0, "label": "a"}
    assert point._uow_dumped is None  # a str subclass may hold state: nothing is kept
    assert Point(x=1, label="a")._uow_dumped is False  # exact types: kept when dumped
    point.label = Name("b")
    assert point._uow_to_bson()["label"] == "b"


# ------------------------------------------------------- in-place changes


def test_an_in_place_change_of_an_embedded_field_is_a_set_of_its_dotted_path() -> None:
    obj, snapshot = _loaded(_stored(corner=Point(x=2, y=3)))
    assert not mutated(obj, snapshot)
    assert _update(obj, snapshot) == {}
    obj.corner.y = 4  # type: ignore[union-attr]
    assert mutated(obj, snapshot)
    assert _update(obj, snapshot) == {"$set": {"corner.y": 4}}


def test_an_in_place_change_to_an_equal_value_of_another_bson_type_is_a_change() -> None:
    class Reading(Embedded):
        value: float

    class Meter(Document):
        __collection__ = "fast_meters"
        reading: Reading

    meter = Meter._uow_load({"_id": 1, "reading": {"value": 1}})  # stored as an int
    snapshot = snapshot_of(Meter._uow_meta, meter._uow_to_bson())
    meter.reading.value = 1.0
    assert mutated(meter, snapshot)
    new = snapshot_of(Meter._uow_meta, meter._uow_to_bson())
    assert update_for(Meter._uow_meta, snapshot, new, 0) == {"$set": {"reading.value": 1.0}}


def test_the_snapshot_is_not_changed_by_later_changes() -> None:
    obj, snapshot = _loaded(_stored(corner=Point(x=2), path=[Point(x=3)]))
    before = copy.deepcopy(snapshot)
    obj.origin.x = 10
    obj.corner.x = 20  # type: ignore[union-attr]
    obj.path[0].x = 30
    obj.path.append(Point(x=4))
    assert snapshot == before


def test_none_embedded_values_round_trip_and_compare() -> None:
    obj, snapshot = _loaded(_stored(corner=None))
    assert snapshot["corner"] is None
    assert not mutated(obj, snapshot)
    obj.corner = Point(x=1)
    assert mutated(obj, snapshot)
    assert _update(obj, snapshot) == {"$set": {"corner": {"x": 1, "y": 0, "label": None}}}
    obj, snapshot = _loaded(_stored(corner=Point(x=1)))
    obj.corner = None
    assert _update(obj, snapshot) == {"$set": {"corner": None}}


def test_lists_of_embedded_documents() -> None:
    obj, snapshot = _loaded(_stored(path=[Point(x=1), Point(x=2)]))
    assert not mutated(obj, snapshot)
    obj.path[1].y = 5
    assert mutated(obj, snapshot)
    # A change inside an element of a list that kept its length: its positional path.
    assert _update(obj, snapshot) == {"$set": {"path.1.y": 5}}
    obj, snapshot = _loaded(_stored(path=[Point(x=1), Point(x=2)]))
    obj.path.reverse()  # reordered: the whole list
    assert _update(obj, snapshot) == {
        "$set": {"path": [{"x": 2, "y": 0, "label": None}, {"x": 1, "y": 0, "label": None}]}
    }
    obj, snapshot = _loaded(_stored(path=[Point(x=1)]))
    obj.path.append(Point(x=2))
    assert _update(obj, snapshot) == {
        "$push": {"path": {"$each": [{"x": 2, "y": 0, "label": None}]}}
    }


def test_an_embedded_list_changed_in_place_is_seen() -> None:
    obj, snapshot = _loaded(_stored(tagged=Tagged(name="t", tags=["a"])))
    obj.tagged.tags.append("b")  # type: ignore[union-attr]
    assert mutated(obj, snapshot)
    assert _update(obj, snapshot) == {"$push": {"tagged.tags": {"$each": ["b"]}}}


def test_a_subclass_with_a_list_in_a_field_of_a_flat_class_is_copied_and_checked() -> None:
    obj, snapshot = _loaded(_stored(base=Sub(name="s", notes=["a"])))
    assert type(obj.base) is Sub
    assert snapshot["base"]["notes"] is not obj.base.notes  # type: ignore[union-attr]
    obj.base.notes.append("b")  # type: ignore[union-attr]
    assert mutated(obj, snapshot)
    assert _update(obj, snapshot) == {"$push": {"base.notes": {"$each": ["b"]}}}
    obj.base.notes.append(1)  # type: ignore[union-attr,arg-type]
    with pytest.raises(uow.ValidationError, match=r"base\.notes\[2\]"):
        obj._uow_check_deep("Shape", "")


# ------------------------------------------------ unknown keys, odd shapes


def test_unknown_keys_are_kept_on_load_and_written_back() -> None:
    raw = _stored()
    raw["origin"] = {"x": 1, "y": 0, "label": None, "color": "red"}
    obj, snapshot = _loaded(raw)
    assert obj._uow_to_bson()["origin"] == {"x": 1, "y": 0, "label": None, "color": "red"}
    obj.origin.x = 2
    assert _update(obj, snapshot) == {"$set": {"origin.x": 2}}
    assert obj._uow_to_bson()["origin"]["color"] == "red"


def test_unknown_keys_holding_a_list_are_not_shared_with_the_snapshot() -> None:
    raw = _stored()
    raw["origin"] = {"x": 1, "y": 0, "label": None, "history": [1, 2]}
    obj, snapshot = _loaded(raw)
    assert snapshot["origin"]["history"] == [1, 2]
    assert snapshot["origin"]["history"] is not obj.origin._uow_extra["history"]
    assert obj._uow_to_bson()["origin"]["history"] is not obj.origin._uow_extra["history"]


def test_a_stored_value_of_another_shape_in_an_embedded_field_is_written_back() -> None:
    raw = _stored()
    raw["origin"] = {"x": [1, 2], "y": 0, "label": None}  # x stored as an array
    obj, snapshot = _loaded(raw)
    assert obj.origin.x == [1, 2]
    assert snapshot["origin"]["x"] is not obj.origin.x
    assert not mutated(obj, snapshot)
    obj.origin.x.append(3)  # type: ignore[attr-defined]
    assert mutated(obj, snapshot)
    assert _update(obj, snapshot) == {"$push": {"origin.x": {"$each": [3]}}}


def test_an_embedded_field_stored_as_another_shape_is_copied() -> None:
    raw = _stored()
    raw["corner"] = [1, 2]
    obj, snapshot = _loaded(raw)
    assert obj.corner == [1, 2]
    dump = obj._uow_to_bson()["corner"]
    assert dump == [1, 2]
    assert dump is not obj.corner
    assert snapshot["corner"] is not obj.corner


# ----------------------------------------------------------- exact types


def test_a_dict_for_an_embedded_field_is_refused_on_construction_and_assignment() -> None:
    with pytest.raises(uow.ValidationError, match=r"build it with Point.from_dict\(values\)"):
        Shape(origin={"x": 1})  # type: ignore[arg-type]
    shape = Shape(origin=Point(x=1))
    with pytest.raises(uow.ValidationError, match=r"build it with Point.from_dict\(values\)"):
        shape.corner = {"x": 1}  # type: ignore[assignment]


def test_a_subclass_instance_is_checked_in_full() -> None:
    bad = Sub(name="s")
    bad.notes.append(1)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError, match=r"base\.notes\[0\]"):
        Shape(origin=Point(x=1), base=bad)
    shape = Shape(origin=Point(x=1))
    with pytest.raises(uow.ValidationError, match=r"base\.notes\[0\]"):
        shape.base = bad


def test_a_wrong_item_put_in_a_list_of_embedded_documents_is_refused_at_flush() -> None:
    shape = Shape(origin=Point(x=1), path=[Point(x=1)])
    shape._uow_check_deep("Shape", "")
    shape.path.append({"x": 2})  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError, match=r"path\[1\]"):
        shape._uow_check_deep("Shape", "")
    shape.path[1] = Base(name="b")  # type: ignore[call-overload]
    with pytest.raises(uow.ValidationError, match=r"path\[1\]"):
        shape._uow_check_deep("Shape", "")


def test_a_wrong_value_put_in_place_in_an_embedded_document_is_refused_at_flush() -> None:
    shape = Shape(origin=Point(x=1), tagged=Tagged(name="t"))
    shape.tagged.tags.append(3)  # type: ignore[union-attr,arg-type]
    with pytest.raises(uow.ValidationError, match=r"tagged\.tags\[0\]"):
        shape._uow_check_deep("Shape", "")


# --------------------------------------------------------------- same()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"a": 1, "b": "x"}, {"a": 1, "b": "x"}, True),
        ({"a": 1}, {"a": True}, False),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": 1.0}, False),
        ({"a": 1.0}, {"a": 1}, False),
        ({"a": 1}, {"a": Int64(1)}, True),
        ({"a": 1, "b": None}, {"b": None, "a": 1}, True),
        ({"a": 1}, {"b": 1}, False),
        ({"a": {"b": 1}}, {"a": {"b": 1.0}}, False),
        ([1, 2], [1, 2], True),
        ([1, 2], [1, True], False),
        ([1, 2], [1.0, 2], False),
        ([1, None, "x"], [1, None, "x"], True),
    ],
)
def test_same_tells_equal_values_of_other_bson_types_apart(
    old: Any, new: Any, expected: bool
) -> None:
    assert same(old, new) is expected
