"""attack13: partial loads (fields(), missing keys, FieldNotLoaded, copy and
pickle), ``$currentDate`` reloads, and ``set[T]`` fields stored as arrays
(black-box, from SPEC.md only). The ``db`` fixture comes from tests/conftest.py
(mongomock and SecantusDB lanes)."""

from __future__ import annotations

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]
