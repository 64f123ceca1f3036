"""Documents shared by the attack13 tests (module level, so pickle finds them)."""

from __future__ import annotations

import datetime
from typing import Any

from bson import ObjectId

import uow
from uow import Document, field


class Addr(uow.Embedded):
    city: str
    zip: str | None = None
    tags: set[str] = field(factory=set)


class Line(uow.Embedded):
    sku: str = ""
    qty: int = 0
    tags: set[str] = field(factory=set)


class Person(Document):
    __collection__ = "a13_person"
    name: str
    age: int = 0
    visits: int = field(default=0, on_update="$inc")
    best: int = field(default=0, on_update="$max")
    seen: datetime.datetime | None = field(default=None, on_update="$currentDate")
    log: list[str] = field(factory=list, on_update="$push")
    tags: set[str] = field(factory=set)
    addr: Addr | None = None
    lines: list[Line] = field(factory=list)


class Animal(Document):
    __collection__ = "a13_animal"
    name: str = ""
    legs: int = 4


class Dog(Animal):
    breed: str = "mutt"
    tricks: set[str] = field(factory=set)


class WithProps(Document):
    __collection__ = "a13_props"
    first: str = ""
    last: str = ""

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"


class WithGetattr(Document):
    __collection__ = "a13_getattr"
    name: str = ""
    age: int = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("x_"):
            return name[2:]
        raise AttributeError(f"{type(self).__name__} has no {name!r} (custom)")


def stored(db: Any, obj: Any) -> Any:
    """The document as stored, read back with raw pymongo."""
    return db[type(obj).__collection__].find_one({"_id": obj.id})


class Ev(uow.Embedded):
    what: str = ""
    at: datetime.datetime | None = field(default=None, on_update="$currentDate")


class Stamp(Document):
    __collection__ = "a13_stamp"
    name: str = ""
    n: int = 0
    at: datetime.datetime | None = field(default=None, on_update="$currentDate")
    evs: list[Ev] = field(factory=list)
    ev: Ev | None = None


class Tagged(Document):
    __collection__ = "a13_tagged"
    name: str = ""
    tags: set[str] = field(factory=set)
    nums: set[int] = field(factory=set)
    floats: set[float] = field(factory=set)
    oids: set[ObjectId] = field(factory=set)
    days: set[datetime.date] = field(factory=set)
    maybe: set[str] | None = None
    added: set[str] = field(factory=set, on_update="$addToSet")
    addr: Addr | None = None
    lines: list[Line] = field(factory=list)
