"""Document classes of this round's review tests."""

from __future__ import annotations

import datetime

import uow
from uow import Document, field


class RvFlat(Document):
    __collection__ = "rv_flat"
    name: str
    n: int = 0
    label: str | None = None


class RvCounter(Document):
    __collection__ = "rv_counter"
    name: str
    hits: int = field(default=0, on_update="$inc")


class RvTagged(Document):
    __collection__ = "rv_tagged"
    name: str
    tags: list[str] = field(factory=list)
    when: datetime.datetime | None = None


class RvVersioned(Document):
    __collection__ = "rv_versioned"
    name: str
    version: int = field(default=0, version=True)


class RvUnique(Document):
    __collection__ = "rv_unique"
    __indexes__ = [uow.Index("email", unique=True)]
    email: str
    n: int = 0
