"""Helpers (no document classes here)."""

from __future__ import annotations

from typing import Any

import attrs

import uow
from tests.scenarios._nl import ids, insert_raw, reload, stored, stored_or_none

__all__ = [
    "emb",
    "ids",
    "insert_raw",
    "mem",
    "reload",
    "stored",
    "stored_or_none",
]


def emb(value: Any) -> Any:
    """An Embedded / list / dict as plain Python, to compare with a stored value."""
    if isinstance(value, uow.Embedded):
        return {a.name: emb(getattr(value, a.name)) for a in attrs.fields(type(value))}
    if isinstance(value, list):
        return [emb(v) for v in value]
    if isinstance(value, dict):
        return {k: emb(v) for k, v in value.items()}
    return value


def mem(obj: Any, **extra: Any) -> dict[str, Any]:
    """What the session holds for ``obj``, as the stored dict would read
    (attribute names are the stored names in these tests), plus ``extra`` keys
    (unknown keys the store keeps)."""
    out: dict[str, Any] = {"_id": obj.id}
    for a in attrs.fields(type(obj)):
        if a.name != "id":
            out[a.name] = emb(getattr(obj, a.name))
    out.update(extra)
    return out


def lanes_transactional(db: Any) -> bool:
    """Whether the lane has transactions (a client of a replica set)."""
    return "mongomock" not in type(db).__module__
