"""Helpers for attack8."""

from __future__ import annotations

from typing import Any

from tests._blackbox import assert_recent, assert_stored_is_memory, emb, mem

__all__ = ["assert_recent", "assert_stored_is_memory", "emb", "mem", "other", "stored"]


def stored(db: Any, obj: Any) -> dict[str, Any] | None:
    """The document as stored, read back with raw pymongo."""
    return db[type(obj)._uow_meta.collection].find_one({"_id": obj.id})


def other(db: Any, **options: Any) -> Any:
    import uow

    return uow.Session(db, **options)
