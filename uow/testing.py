"""pytest fixtures for testing code that uses uow (a plugin pytest loads by itself).

Installing uow registers this module with pytest (entry point ``pytest11``,
name ``uow``; ``-p no:uow`` turns it off). Each fixture gives a test a clean
database on the embedded backend (``mongomock://``, ``pip install 'uow[mongomock]'``):

* ``uow_database``: a ``Database`` of its own, empty, forgotten after the test.
  While the test runs it is also the process default (``uow.configure``), so
  ``uow.unit_of_work()`` in the code under test opens its sessions there.
* ``uow_session``: a ``Session`` on ``uow_database``, current for the whole test
  (``uow.current_session()``), so services decorated with ``@uow.unit_of_work()``
  join it and the test sees their work at once. Nothing is committed for you;
  ``flush()`` or ``commit()`` to see what the database does.

Example:
    ```python
    def test_place_order(uow_session):
        order = place_order(customer_id, [("tea", 2, 150)])
        assert uow_session.get(Order, order.id) is order
    ```
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from . import _backend, _context, service
from .session import Session

__all__ = ["uow_database", "uow_session"]

_DATABASE = "test"


@pytest.fixture
def uow_database() -> Iterator[Any]:
    """An empty database on an embedded store of its own; the default during the test."""
    uri = f"mongomock://uow-testing-{uuid.uuid4().hex}"
    client = _backend.make_client(uri)
    before = service._snapshot()
    service.configure(uri, _DATABASE)
    try:
        yield client[_DATABASE]
    finally:
        service._restore(before)
        client.close()
        _backend.reset_embedded(uri)


@pytest.fixture
def uow_session(uow_database: Any) -> Iterator[Session]:
    """A session on ``uow_database``, ``uow.current_session()`` for the whole test."""
    session = Session(uow_database)
    token = _context.push(session)
    try:
        yield session
    finally:
        _context.pop(token)
        session.close()
