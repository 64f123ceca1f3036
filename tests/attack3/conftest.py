"""Close every session a test opened before its database is dropped, and offer
fail points scoped to this directory's own SecantusDB client (``fdb``)."""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

import uow

APP_NAME = "uow-attack3-faults"


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


@pytest.fixture(scope="module")
def a3_faulty(secantus_server: Any) -> Iterator[pymongo.MongoClient[Any]]:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        secantus_server.uri, retryWrites=False, appname=APP_NAME
    )
    yield client
    client.close()


@pytest.fixture
def fdb(a3_faulty: pymongo.MongoClient[Any]) -> Iterator[Any]:
    """A database of its own on a client that :func:`fail_point` reaches."""
    name = f"a3f_{uuid.uuid4().hex[:12]}"
    yield a3_faulty[name]
    a3_faulty.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    a3_faulty.drop_database(name)


@contextlib.contextmanager
def fail_point(
    client: pymongo.MongoClient[Any], commands: list[str], *, times: int = 1, **data: Any
) -> Iterator[None]:
    client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": times},
            "data": {"failCommands": commands, "appName": APP_NAME, **data},
        }
    )
    try:
        yield
    finally:
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
