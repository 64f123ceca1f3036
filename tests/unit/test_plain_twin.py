"""Instances are built as a plain twin of their class, then made instances of it.

Generated ``__init__`` and loaders fill the slots of an instance of a subclass
with the same layout and Python's own ``__setattr__`` (stores at bytecode speed),
then assign ``__class__``. Nothing outside may ever see the twin.
"""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest

from uow import Document, Embedded, ValidationError, field
from uow._types import DEFAULT_LOAD_CONTEXT


class Point(Embedded):
    x: int
    y: int = 0


class Place(Document):
    __collection__ = "twin_places"
    name: str
    point: Point | None = None
    tags: list[str] = field(factory=list)


def test_built_and_loaded_instances_are_of_the_class_itself() -> None:
    place = Place(name="a", point=Point(x=1), tags=["t"])
    assert type(place) is Place and type(place.point) is Point
    loaded = Place._uow_load(place.to_bson(), DEFAULT_LOAD_CONTEXT)
    assert type(loaded) is Place and type(loaded.point) is Point
    assert loaded.name == "a" and loaded.point == Point(x=1) and loaded.tags == ["t"]
    assert loaded._uow_state is None and loaded._uow_extra is None
    copy = pickle.loads(pickle.dumps(place))
    assert type(copy) is Place and copy.point == place.point


def test_assignments_after_construction_are_validated_again() -> None:
    place = Place(name="a")
    with pytest.raises(ValidationError):
        place.name = 3  # type: ignore[assignment]
    point = Point(x=1)
    with pytest.raises(ValidationError):
        point.x = "no"  # type: ignore[assignment]
    point.x = 2
    assert point.to_bson() == {"x": 2, "y": 0}  # the kept dump was dropped


def test_a_refused_value_raises_and_no_instance_is_left_half_built() -> None:
    seen: list[Any] = []

    class Watched(Embedded):
        a: int
        b: int

        def __attrs_post_init__(self) -> None:
            seen.append(type(self))

    with pytest.raises(ValidationError):
        Watched(a=1, b="x")  # type: ignore[arg-type]
    assert seen == []
    Watched(a=1, b=2)
    assert seen == [Watched]  # post-init sees the class, never the twin


def test_validators_and_post_init_see_the_class_not_the_twin() -> None:
    seen: list[type] = []

    def check(instance: Any, attribute: Any, value: Any) -> None:
        seen.append(type(instance))

    class Checked(Document):
        __collection__ = "twin_checked"
        n: int = field(validator=check)

    Checked(n=1)
    assert seen == [Checked]


def test_a_factory_given_the_instance_sees_the_class() -> None:
    seen: list[type] = []

    def make(instance: Any) -> str:
        seen.append(type(instance))
        return f"{instance.first}!"

    class WithSelf(Document):
        __collection__ = "twin_self"
        first: str
        second: str = field(default=attrs.Factory(make, takes_self=True))

    obj = WithSelf(first="a")
    assert obj.second == "a!" and seen == [WithSelf]
    loaded = WithSelf._uow_load({"_id": obj.id, "first": "b"}, DEFAULT_LOAD_CONTEXT)
    assert loaded.second == "b!" and seen == [WithSelf, WithSelf]


def test_an_init_subclass_hook_sees_only_the_classes_declared() -> None:
    declared: list[str] = []

    class Registered(Document):
        __abstract__ = True

        def __init_subclass__(cls, **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)
            declared.append(cls.__name__)

    class Thing(Registered):
        __collection__ = "twin_things"
        name: str

    class Other(Thing):
        size: int = 0

    assert Thing(name="a").name == "a" and type(Other(name="b")) is Other
    # attrs rebuilds each slotted class: the hook runs for the class as declared
    # and as rebuilt (as it does for any attrs class), never for a twin.
    assert declared == ["Thing", "Thing", "Other", "Other"]
    assert all("_uow_twin" not in sub.__qualname__ for sub in Thing.__subclasses__())
    assert Other(name="c", size=2).size == 2


def test_the_twin_is_a_subclass_nobody_else_declares() -> None:
    class Plain(Document):
        __collection__ = "twin_plain"
        name: str

    (twin,) = Plain.__subclasses__()
    assert twin.__qualname__.endswith("Plain._uow_twin")
    assert "_uow_meta" not in twin.__dict__  # not a model: not registered anywhere
    assert Plain._uow_meta.subclasses == {"Plain": Plain}


def test_the_init_of_a_class_run_on_an_instance_of_a_subclass_builds_it_as_before() -> None:
    class Base(Document):
        __collection__ = "twin_base"
        name: str

    class Child(Base):
        size: int = 0

    child = object.__new__(Child)
    Base.__init__(child, name="a")
    assert type(child) is Child and child.name == "a"


def test_a_query_field_is_made_once_per_class() -> None:
    class Parent(Document):
        __collection__ = "twin_parent"
        name: str

    class Kid(Parent):
        age: int = 0

    assert Parent.name is Parent.name
    assert Kid.name is Kid.name and Kid.name is not Parent.name
    assert (Parent.name == "a").filter == {"name": "a"}
    assert (Kid.name == "a").filter == {"name": "a"}
