"""Helpers (no document classes here)."""

from __future__ import annotations

from typing import Any

from tests._blackbox import emb, mem
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


def lanes_transactional(db: Any) -> bool:
    """Whether the lane has transactions (a client of a replica set)."""
    return "mongomock" not in type(db).__module__
