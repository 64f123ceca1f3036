"""What the black-box test directories (tests/attack*) share.

Each directory's conftest imports ``_close_sessions``: an autouse fixture that
closes every session a test opened before its database is dropped (a failed
assertion inside an open transaction would otherwise block ``drop_database``).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import uow

__all__ = ["_close_sessions"]


@pytest.fixture(autouse=True)
def _close_sessions(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    # Set the databases up first so that their drop runs after the sessions close.
    for name in ("db", "fdb"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
    opened: list[Any] = []
    original = uow.Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(weakref.ref(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(uow.Session, "__init__", init)
    yield
    for ref in opened:
        s = ref()
        if s is not None:
            with contextlib.suppress(Exception):
                s.rollback()
            with contextlib.suppress(Exception):
                s.close()
