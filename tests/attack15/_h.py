"""Documents shared by the attack15 tests (module level, so pickle finds them)."""

from __future__ import annotations

import datetime
from typing import Any

import uow
from tests._blackbox import assert_stored_is_memory, emb, mem
from uow import Document, field

__all__ = [
    "Addr",
    "Author",
    "Book",
    "Circle",
    "Counter",
    "Line",
    "Person",
    "Rec",
    "Shape",
    "Square",
    "VCounter",
    "assert_stored_is_memory",
    "emb",
    "mem",
    "stored",
]


def stored(db: Any, doc: Any) -> Any:
    """The stored document of ``doc`` read with raw pymongo."""
    return db[type(doc)._uow_meta.collection].find_one({"_id": doc.id})


class Addr(uow.Embedded):
    city: str = ""
    zip: str | None = field(default=None, db_name="postcode")
    floor: int = field(default=0, on_update="$inc")


class Line(uow.Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc")
    notes: list[str] = field(factory=list)


class Rec(Document):
    """Version 2 of a record; older stored forms lack keys, newer ones add keys."""

    __collection__ = "a15_rec"
    __indexes__ = [uow.Index("code", unique=True)]
    code: str
    name: str = field(default="", db_name="nm")
    n: int = field(default=5, on_update="$inc")
    hi: int = field(default=0, on_update="$max")
    lo: int = field(default=100, on_update="$min")
    log: list[str] = field(factory=lambda: ["init"], on_update="$push")
    bag: list[str] = field(factory=list, on_update="$addToSet")
    tags: list[str] = field(factory=lambda: ["a"])
    kinds: set[str] = field(factory=set)
    addr: Addr = field(factory=lambda: Addr(city="Oslo", zip="0150"))
    lines: list[Line] = field(factory=list)
    by: dict[str, Line] = field(factory=dict)
    prefs: dict[str, int] = field(factory=dict)
    when: datetime.datetime | None = None


class Person(Document):
    __collection__ = "a15_person"
    name: str
    email: str = field(default="", db_name="mail")
    age: int = 0
    visits: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    addr: Addr | None = field(default=None, db_name="address")
    prefs: dict[str, int] = field(factory=dict)


class Author(Document):
    __collection__ = "a15_author"
    name: str = ""


class Book(Document):
    __collection__ = "a15_book"
    title: str = ""
    author: uow.Ref[Author] | None = None
    reviewers: list[uow.Ref[Author]] = field(factory=list)
    year: int = 0


class Shape(Document):
    __collection__ = "a15_shape"
    name: str = ""


class Circle(Shape):
    r: int = 0


class Square(Shape):
    side: int = 0


class Counter(Document):
    __collection__ = "a15_counter"
    __indexes__ = [uow.Index("code", unique=True)]
    code: str = ""
    n: int = field(default=0, on_update="$inc")
    hi: int = field(default=0, on_update="$max")
    log: list[str] = field(factory=list, on_update="$push")
    tags: list[str] = field(factory=list)
    lines: list[Line] = field(factory=list)
    prefs: dict[str, int] = field(factory=dict)


class VCounter(Document):
    __collection__ = "a15_vcounter"
    code: str = ""
    n: int = field(default=0, on_update="$inc")
    name: str = ""
    version: int = field(default=0, version=True)
