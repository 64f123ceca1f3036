"""Helpers for tests/attack11: exact BSON-type comparison of stored vs memory."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from bson.int64 import Int64
from hypothesis import HealthCheck, settings

import uow

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MISSING = object()


def tag(value: Any) -> Any:
    """``value`` as (BSON type, value), recursively: True, 1, 1.0 and Int64(1) differ."""
    if value is MISSING:
        return ("missing",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Int64):
        return ("int64", int(value))
    if isinstance(value, int):
        return ("int32", value) if -(2**31) <= value < 2**31 else ("int64", value)
    if isinstance(value, float):
        return ("double", value)
    if isinstance(value, uow.Embedded):
        return ("doc", {a.name: tag(getattr(value, a.name)) for a in attrs.fields(type(value))})
    if isinstance(value, (list, tuple)):
        return ("array", [tag(v) for v in value])
    if isinstance(value, dict):
        return ("doc", {k: tag(v) for k, v in value.items()})
    if isinstance(value, datetime.datetime):
        return ("date", value.replace(tzinfo=None))
    return (type(value).__name__, value)


def tag_stored(value: Any, like: Any) -> Any:
    """A stored value tagged, dicts narrowed to the keys an Embedded ``like`` declares
    (unknown stored keys stay as stored and are checked separately)."""
    if isinstance(like, uow.Embedded) and isinstance(value, dict):
        return (
            "doc",
            {
                a.name: tag_stored(value.get(a.name, MISSING), getattr(like, a.name))
                for a in attrs.fields(type(like))
            },
        )
    if isinstance(like, list) and isinstance(value, list) and len(like) == len(value):
        return ("array", [tag_stored(v, m) for v, m in zip(value, like, strict=False)])
    if isinstance(like, dict) and isinstance(value, dict):
        return ("doc", {k: tag_stored(v, like.get(k)) for k, v in value.items()})
    return tag(value)


def stored(db: Any, obj: Any) -> Any:
    return db[type(obj).__collection__].find_one({"_id": obj.id})


def assert_stored_equals_memory(db: Any, obj: Any, names: tuple[str, ...] | None = None) -> None:
    """For every declared field (stored names = attribute names in these tests),
    the stored value equals what ``obj`` holds, by BSON type."""
    doc = stored(db, obj)
    assert doc is not None, f"{obj!r} is not stored"
    for a in attrs.fields(type(obj)):
        if a.name == "id" or (names is not None and a.name not in names):
            continue
        if names is None and a.name not in doc:
            continue  # a key never stored and never assigned stays missing
        mem = getattr(obj, a.name)
        got = tag_stored(doc.get(a.name, MISSING), mem)
        want = tag(mem)
        assert got == want, f"{a.name}: stored {got!r} != memory {want!r} (doc {doc!r})"
