"""Documents shared by the attack14 tests (module level, so pickle finds them)."""

from __future__ import annotations

import datetime

import uow
from tests._blackbox import assert_recent, emb, mem
from uow import Document, field

__all__ = ["Item", "Line", "Stamp", "Stamped", "assert_recent", "emb", "mem"]


class Line(uow.Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class Item(Document):
    __collection__ = "a14_item"
    __indexes__ = [uow.Index("code", unique=True)]
    code: str
    name: str = ""
    n: int = field(default=0, on_update="$inc")
    hi: int = field(default=0, on_update="$max")
    log: list[str] = field(factory=list, on_update="$push")
    bag: list[str] = field(factory=list, on_update="$addToSet")
    tags: list[str] = field(factory=list)
    lines: list[Line] = field(factory=list)
    extra: dict[str, int] = field(factory=dict)


class Stamp(uow.Embedded):
    note: str = ""
    at: datetime.datetime | None = field(default=None, on_update="$currentDate")


class Stamped(Document):
    __collection__ = "a14_stamped"
    __indexes__ = [uow.Index("code", unique=True)]
    code: str
    name: str = ""
    n: int = field(default=0, on_update="$inc")
    at: datetime.datetime | None = field(default=None, on_update="$currentDate")
    one: Stamp | None = None
    stamps: list[Stamp] = field(factory=list)
    by: dict[str, Stamp] = field(factory=dict)
