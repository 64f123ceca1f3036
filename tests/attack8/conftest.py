"""Sessions a test opened are closed before its database is dropped."""

from __future__ import annotations

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]
