"""Helpers (no document classes here)."""

from __future__ import annotations

import datetime
from typing import Any

import uow
from tests.scenarios._nl import ids, insert_raw, reload, stored, stored_or_none

__all__ = [
    "assert_recent",
    "emb",
    "ids",
    "insert_raw",
    "reload",
    "stored",
    "stored_or_none",
]


def assert_recent(value: Any) -> None:
    """A date the server set during this test (UTC, naive as pymongo reads it)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert isinstance(value, datetime.datetime), f"not a date: {value!r}"
    assert abs((now - value).total_seconds()) < 60, f"{value} is not the server's now ({now})"


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
