"""Models and helpers shared by the session tests (not a test module).

The classes have names of their own (``Sx...``): document classes are registered
by name for ``Ref["Name"]``, so they must not collide with other test modules'.
Collections are named explicitly; every test has a database of its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import bson

from uow import Document, Embedded, Index, Ref, field
from uow.session import Session


class SxAddress(Embedded):
    city: str
    zip: str | None = None


class SxPerson(Document):
    """Every kind of mutable field, and one with another stored name."""

    __collection__ = "people"

    name: str
    age: int = 0
    visits: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    labels: set[str] = field(factory=set)
    scores: dict[str, int] = field(factory=dict)
    address: SxAddress | None = None
    places: list[SxAddress] = field(factory=list)
    nick: str | None = field(default=None, db_name="nk")


class SxFlat(Document):
    """No field that can change in place: only assignments change it."""

    __collection__ = "flats"

    name: str
    n: int = 0


class SxOrder(Document):
    """A second collection, for plans spanning collections."""

    __collection__ = "orders"

    item: str
    qty: int = 1


class SxCounter(Document):
    """One field per declared on_update operator."""

    __collection__ = "counters"

    hits: int = field(default=0, on_update="$inc")
    best: int = field(default=0, on_update="$max")
    worst: int = field(default=100, on_update="$min")
    log: list[str] = field(factory=list, on_update="$push")
    kinds: list[str] = field(factory=list, on_update="$addToSet")
    blob: dict[str, int] = field(factory=dict, on_update="$set")
    seen: datetime.datetime | None = field(default=None, on_update="$currentDate")
    note: str = ""


class SxAccount(Document):
    """A unique index, built by ensure_indexes / auto_ensure."""

    __collection__ = "accounts"
    __indexes__ = [Index("email", unique=True)]

    email: str
    n: int = 0


class SxAnimal(Document):
    """The root of a hierarchy: its documents carry no ``_cls``."""

    __collection__ = "animals"

    name: str


class SxDog(SxAnimal):
    good: bool = True


class SxCat(SxAnimal):
    lives: int = 9


class SxPost(Document):
    __collection__ = "posts"

    title: str
    author: Ref[SxPerson] | None = None


def stored(db: Any, collection: str) -> list[dict[str, Any]]:
    """What ``collection`` holds, as another client sees it, by ``_id``.

    On the SecantusDB lane a session writes inside a transaction until it
    commits: call ``commit()`` first to see its writes here.
    """
    return sorted(db[collection].find(), key=lambda doc: str(doc["_id"]))


def stored_one(db: Any, collection: str, id_: Any) -> dict[str, Any] | None:
    found: dict[str, Any] | None = db[collection].find_one({"_id": id_})
    return found


def insert_raw(db: Any, collection: str, docs: list[dict[str, Any]]) -> list[Any]:
    """Store documents directly, around any session; returns their ids."""
    for doc in docs:
        doc.setdefault("_id", bson.ObjectId())
    db[collection].insert_many(docs)
    return [doc["_id"] for doc in docs]


class Sessions:
    """Opens sessions on one database and closes every one at the end of a test."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._opened: list[Session] = []

    def open(self, **options: Any) -> Session:
        session = Session(self.db, **options)
        self._opened.append(session)
        return session

    def close_all(self) -> None:
        for session in self._opened:
            session.close()


def sessions_on(db: Any) -> Iterator[Sessions]:
    """The body of a ``sessions`` fixture: yield a ``Sessions``, close them after."""
    made = Sessions(db)
    try:
        yield made
    finally:
        made.close_all()
