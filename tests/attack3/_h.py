"""Helpers (no document classes here)."""

from __future__ import annotations

import datetime
from typing import Any

import uow


def stored(db: Any, collection: str, doc_id: Any) -> dict[str, Any]:
    found = db[collection].find_one({"_id": doc_id})
    assert found is not None, f"{collection}/{doc_id} is not stored"
    return dict(found)


def stored_or_none(db: Any, collection: str, doc_id: Any) -> dict[str, Any] | None:
    found = db[collection].find_one({"_id": doc_id})
    return None if found is None else dict(found)


def insert_raw(db: Any, collection: str, doc: dict[str, Any]) -> Any:
    return db[collection].insert_one(dict(doc)).inserted_id


def reload(db: Any, cls: type, doc_id: Any) -> Any:
    s = uow.Session(db)
    try:
        obj = s.get(cls, doc_id)
        assert obj is not None, f"{cls.__name__} {doc_id} not found by a fresh session"
        return obj
    finally:
        s.close()


def assert_recent(value: Any) -> None:
    """A date the server set during this test (UTC, naive as pymongo reads it)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert isinstance(value, datetime.datetime), f"not a date: {value!r}"
    assert abs((now - value).total_seconds()) < 60, f"{value} is not the server's now ({now})"


def ids(objs: Any) -> set[int]:
    return {id(o) for o in objs}


def emb(value: Any) -> Any:
    """An Embedded / list / dict as plain Python, to compare with a stored value."""
    import attrs

    if isinstance(value, uow.Embedded):
        return {a.name: emb(getattr(value, a.name)) for a in attrs.fields(type(value))}
    if isinstance(value, list):
        return [emb(v) for v in value]
    if isinstance(value, dict):
        return {k: emb(v) for k, v in value.items()}
    return value
