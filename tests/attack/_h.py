"""Helpers (no document classes here): the black-box directories' shared ones."""

from __future__ import annotations

from tests._blackbox import assert_recent, emb
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
