"""What the black-box test directories (tests/attack*) share.

Each directory's conftest imports ``_close_sessions``: an autouse fixture that
closes every session a test opened before its database is dropped (a failed
assertion inside an open transaction would otherwise block ``drop_database``).
Their ``_h`` modules re-export ``assert_recent``, ``emb`` and ``mem``.
"""

from __future__ import annotations

import contextlib
import datetime
import weakref
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

import uow

__all__ = ["_close_sessions", "assert_recent", "assert_stored_is_memory", "emb", "mem"]


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


def assert_recent(value: Any) -> None:
    """A date the server set during this test (UTC, naive as pymongo reads it)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert isinstance(value, datetime.datetime), f"not a date: {value!r}"
    assert abs((now - value).total_seconds()) < 60, f"{value} is not the server's now ({now})"


def emb(value: Any) -> Any:
    """An Embedded / list / dict as plain Python, to compare with a stored value."""
    if isinstance(value, uow.Embedded):
        return {a.name: emb(getattr(value, a.name)) for a in attrs.fields(type(value))}
    if isinstance(value, list):
        return [emb(v) for v in value]
    if isinstance(value, dict):
        return {k: emb(v) for k, v in value.items()}
    return value


def mem(obj: Any, **extra: Any) -> dict[str, Any]:
    """What the session holds for ``obj``, as the stored dict would read
    (attribute names are the stored names in these tests), plus ``extra`` keys
    (unknown keys the store keeps)."""
    out: dict[str, Any] = {"_id": obj.id}
    for a in attrs.fields(type(obj)):
        if a.name != "id":
            out[a.name] = emb(getattr(obj, a.name))
    out.update(extra)
    return out


def assert_stored_is_memory(db: Any, *docs: Any) -> None:
    """Each document as stored (read back with pymongo) is what memory holds."""
    for doc in docs:
        found = db[type(doc)._uow_meta.collection].find_one({"_id": doc.id})
        assert found == doc.to_bson(), f"stored {found!r}, memory {doc.to_bson()!r}"
