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
* ``uow_fast_mongomock``: :func:`fast_mongomock` for the whole test.

uow never changes mongomock by itself. :func:`fast_mongomock` is an explicit,
reversible opt-in to two speed fixes for mongomock 4.x (``_id`` lookups instead
of scans, a cursor that does not copy its results per document), for test
suites with thousands of documents; it changes no answer of mongomock's.

Example:
    ```python
    def test_place_order(uow_session):
        order = place_order(customer_id, [("tea", 2, 150)])
        assert uow_session.get(Order, order.id) is order
    ```
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from . import _backend, _context, _mongomock_speed, service
from .session import Session

__all__ = ["fast_mongomock", "uow_database", "uow_fast_mongomock", "uow_session"]

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


@contextlib.contextmanager
def fast_mongomock() -> Iterator[bool]:
    """Make mongomock 4.x faster inside the block; put it back exactly as it was after.

    For every mongomock client of the process while the block runs (uow's or
    not): a filter on a plain ``_id`` (or ``$in`` of them) looks the documents up
    in mongomock's store instead of testing every document, and a cursor returns
    each document without copying its result list. mongomock still decides what
    matches, in what order, and what raises: the answers are the same, only
    faster (10,000 ``find_one`` by id: about 165 s stock). On leaving, mongomock's
    own functions are put back (the very same objects). Blocks may nest, and
    may be open in several threads: the last one out restores.

    Yields True when the fixes are in place; False when mongomock is missing or
    not a 4.x release, and then nothing is changed.

    Example (``conftest.py``, for a whole test session):
        ```python
        @pytest.fixture(autouse=True, scope="session")
        def _fast_mongomock():
            with uow.testing.fast_mongomock():
                yield
        ```
    """
    with _mongomock_speed.installed() as active:
        yield active


@pytest.fixture
def uow_fast_mongomock() -> Iterator[bool]:
    """:func:`fast_mongomock` for one test (True when the fixes are in place)."""
    with fast_mongomock() as active:
        yield active
