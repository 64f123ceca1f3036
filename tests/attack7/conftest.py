"""attack7: session lifecycle and failure paths (black-box, from SPEC.md only)."""

from __future__ import annotations

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]
