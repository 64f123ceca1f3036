"""attack14: copies of documents (copy, deepcopy, pickle) and ``$currentDate``
fields, and failed flushes around them (black-box, from SPEC.md and docs).
The ``db`` fixture comes from tests/conftest.py (mongomock and SecantusDB)."""

from __future__ import annotations

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]
