"""attack12: plain-field changes of documents loaded with query().all(), under
transactions, failed flushes, a small identity map and big mixed flushes
(black-box, from SPEC.md only). The ``db`` fixture comes from tests/conftest.py
(mongomock and SecantusDB lanes)."""

from __future__ import annotations

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]
