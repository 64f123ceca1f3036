"""Sessions a test opened are closed before its database is dropped; ``sessions``
opens one on the test's database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests._blackbox import _close_sessions
from uow import Session

__all__ = ["_close_sessions"]


@pytest.fixture
def sessions(db: Any) -> Callable[..., Session]:
    def open_session(**options: Any) -> Session:
        return Session(db, **options)

    return open_session
