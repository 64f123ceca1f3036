"""attack10: hypothesis programs over interleaved sessions, a small LRU cache,
legacy (older-schema) documents and the session's reset calls (black-box, from
SPEC.md only). The ``db`` fixture comes from tests/conftest.py."""

from __future__ import annotations

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]
