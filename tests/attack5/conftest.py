"""Close every session a test opened before its database is dropped: a failed
assertion inside an open transaction would otherwise block drop_database."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import uow


@pytest.fixture(autouse=True)
def _close_sessions(db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
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
