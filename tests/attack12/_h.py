"""Documents and helpers shared by the attack12 tests."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from bson import ObjectId
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import uow
from uow import Document, field

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TRANSIENT = ["TransientTransactionError"]
T0 = datetime.datetime(2021, 5, 6, 7, 8, 9, 123000)


class Rec(Document):
    __collection__ = "a12_rec"
    s: str = ""
    i: int = 0
    f: float = 0.0
    b: bool = False
    d: datetime.datetime | None = None
    tags: list[str] = field(factory=list)


class Cnt(Document):
    """Plain fields plus a ``$inc`` counter: a write sent twice shows in ``n``."""

    __collection__ = "a12_cnt"
    s: str = ""
    i: int = 0
    n: int = field(default=0, on_update="$inc")


class Uniq(Document):
    __collection__ = "a12_uniq"
    __indexes__ = [uow.Index("email", unique=True)]
    email: str
    s: str = ""
    i: int = 0


PLAIN = ("s", "i", "f", "b", "d")

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
ints = st.integers(min_value=-(2**62), max_value=2**62)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
dates = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
)
VALUES: dict[str, Any] = {"s": texts, "i": ints, "f": floats, "b": st.booleans(), "d": dates}


def seed(db: Any, cls: type, n: int, **extra: Any) -> list[ObjectId]:
    """Store ``n`` documents of ``cls`` with raw pymongo; returns their ids in order."""
    docs = []
    for k in range(n):
        doc: dict[str, Any] = {"_id": ObjectId()}
        for a in attrs.fields(cls):
            if a.name == "id":
                continue
            doc[a.name] = default_of(a)
        doc.update({key: (v(k) if callable(v) else v) for key, v in extra.items()})
        docs.append(doc)
    if docs:
        db[cls.__collection__].insert_many(docs)
    return [d["_id"] for d in docs]


def default_of(a: Any) -> Any:
    if isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
        return a.default.factory()
    return a.default


def mem(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"_id": obj.id}
    for a in attrs.fields(type(obj)):
        if a.name != "id":
            v = getattr(obj, a.name)
            out[a.name] = list(v) if isinstance(v, list) else v
    return out


def stored(db: Any, obj_or_cls: Any, oid: Any = None) -> Any:
    if oid is None:
        return db[type(obj_or_cls).__collection__].find_one({"_id": obj_or_cls.id})
    return db[obj_or_cls.__collection__].find_one({"_id": oid})


def all_stored(db: Any, cls: type) -> dict[Any, dict[str, Any]]:
    return {d["_id"]: d for d in db[cls.__collection__].find()}


def assert_stored_is_memory(db: Any, objs: list[Any]) -> None:
    if not objs:
        return
    raw = all_stored(db, type(objs[0]))
    bad = [(mem(o), raw.get(o.id)) for o in objs if raw.get(o.id) != mem(o)]
    assert not bad, (
        f"{len(bad)} of {len(objs)} differ; first: memory {bad[0][0]!r} stored {bad[0][1]!r}"
    )


def ids(objs: Any) -> set[int]:
    return {id(o) for o in objs}


# The fail point fixture is attack9's (SecantusDB's failCommand, switched off after).
from tests.attack9.conftest import failpoint  # noqa: E402

__all__ = ["failpoint"]
