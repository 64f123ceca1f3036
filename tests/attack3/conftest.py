"""Fail points scoped to this directory's own SecantusDB client (``fdb``); sessions
are closed by ``tests._blackbox._close_sessions``."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]

APP_NAME = "uow-attack3-faults"


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
