"""Helpers for the "nothing lost" scenarios (no document classes here).

Every scenario reads the stored document with raw pymongo, never through uow,
and compares it with what the session holds in memory.
"""

from __future__ import annotations

from typing import Any

import uow


def stored(db: Any, collection: str, doc_id: Any) -> dict[str, Any]:
    """The stored document, read with raw pymongo (fails the test if missing)."""
    found = db[collection].find_one({"_id": doc_id})
    assert found is not None, f"{collection}/{doc_id} is not stored"
    return dict(found)


def stored_or_none(db: Any, collection: str, doc_id: Any) -> dict[str, Any] | None:
    found = db[collection].find_one({"_id": doc_id})
    return None if found is None else dict(found)


def insert_raw(db: Any, collection: str, doc: dict[str, Any]) -> Any:
    """Store ``doc`` behind uow's back; returns its ``_id``."""
    return db[collection].insert_one(dict(doc)).inserted_id


def reload(db: Any, cls: type, doc_id: Any) -> Any:
    """The document as a fresh session reads it (the session is closed after)."""
    s = uow.Session(db)
    try:
        obj = s.get(cls, doc_id)
        assert obj is not None, f"{cls.__name__} {doc_id} not found by a fresh session"
        return obj
    finally:
        s.close()


def ids(objs: Any) -> set[int]:
    """Python identities of a list of documents (documents hash by identity)."""
    return {id(o) for o in objs}


def ref_id(value: Any) -> Any:
    """The id a ref-ish value stands for: a Ref or a document has ``.id``; an id is itself."""
    return getattr(value, "id", value)
