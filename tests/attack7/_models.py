from __future__ import annotations

import uow
from uow import Document, field


class Item(Document):
    __collection__ = "a7_items"
    name: str
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class Other(Document):
    __collection__ = "a7_other"
    name: str


class Uniq(Document):
    __collection__ = "a7_uniq"
    __indexes__ = [uow.Index("email", unique=True)]
    email: str
    n: int = 0


class Versioned(Document):
    __collection__ = "a7_ver"
    name: str
    version: int = field(default=0, version=True)


class Counter(Document):
    __collection__ = "a7_counter"
    id: str
    hits: int = field(default=0, on_update="$inc")
    best: int = field(default=0, on_update="$max")
    label: str = ""


class UniqInc(Document):
    __collection__ = "a7_uniq_inc"
    __indexes__ = [uow.Index("email", unique=True)]
    email: str
    hits: int = field(default=0, on_update="$inc")


class VerInc(Document):
    __collection__ = "a7_ver_inc"
    name: str
    hits: int = field(default=0, on_update="$inc")
    version: int = field(default=0, version=True)


class Addr(uow.Embedded):
    city: str
    zip: str | None = None


class Person(Document):
    __collection__ = "a7_person"
    name: str
    address: Addr | None = None
    scores: dict[str, int] = field(factory=dict)
