"""Fault injection on SecantusDB for the transaction and failure tests (not a test module).

Test modules import the fixtures ``recorder``, ``faulty`` (the client), ``fdb``
(a database of its own on it) and ``fsessions`` (``FIXTURES``: their functions,
named apart so that arguments do not shadow the imports).

``failCommand`` fail points are server-wide; each one configured here is scoped
with ``appName`` to the clients made by :func:`faulty_client`, so no other
client of the run's server (the shared fixtures' clients included) ever meets
one, and :func:`fail_point` switches it off when its block ends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pymongo
import pytest
from pymongo import monitoring
from pymongo.errors import PyMongoError

from ._support import Sessions

if TYPE_CHECKING:
    from pymongo.database import Database
    from secantus import SecantusDBServer

APP_NAME = "uow-faults"


class Recorder(monitoring.CommandListener):
    """The commands a faulty client sent (name and document), and its failures."""

    def __init__(self) -> None:
        self.started_commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name.lower() not in {"hello", "ismaster", "endsessions"}:
            self.started_commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def names(self) -> list[str]:
        return [name for name, _ in self.started_commands if name != "configureFailPoint"]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [command for command_name, command in self.started_commands if command_name == name]

    def clear(self) -> None:
        self.started_commands.clear()


def faulty_client(server: SecantusDBServer, recorder: Recorder) -> pymongo.MongoClient[Any]:
    """A client whose commands the fail points of :func:`fail_point` may hit."""
    return pymongo.MongoClient(
        server.uri, retryWrites=False, appname=APP_NAME, event_listeners=[recorder]
    )


@contextlib.contextmanager
def fail_point(
    client: pymongo.MongoClient[Any],
    commands: list[str],
    *,
    times: int | None = 1,
    **data: Any,
) -> Iterator[None]:
    """Fail the next ``times`` (None: every) ``commands`` of faulty clients.

    ``data``: what ``failCommand`` takes, for example ``errorCode=112``,
    ``errorLabels=[...]``, ``closeConnection=True``, ``writeConcernError={...}``.
    """
    mode: Any = "alwaysOn" if times is None else {"times": times}
    client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": mode,
            "data": {"failCommands": commands, "appName": APP_NAME, **data},
        }
    )
    try:
        yield
    finally:
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", name="recorder")
def recorder_fixture() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module", name="faulty")
def faulty_fixture(
    secantus_server: SecantusDBServer, recorder: Recorder
) -> Iterator[pymongo.MongoClient[Any]]:
    """A SecantusDB client that fail points reach."""
    client = faulty_client(secantus_server, recorder)
    yield client
    client.close()


@pytest.fixture(name="fdb")
def fdb_fixture(faulty: pymongo.MongoClient[Any], recorder: Recorder) -> Iterator[Database[Any]]:
    """A database of its own on the faulty client, dropped after the test."""
    name = f"f_{uuid.uuid4().hex[:12]}"
    recorder.clear()
    yield faulty[name]
    faulty.drop_database(name)


@pytest.fixture(name="fsessions")
def fsessions_fixture(fdb: Database[Any]) -> Iterator[Sessions]:
    """Sessions on ``fdb``, closed after the test, and killed on the server.

    A fail point on commitTransaction leaves the server's transaction open (the
    driver cannot abort after a commit); if a failing test never starts another
    one on that session, it would hold its locks, and the database's drop would
    wait for it to expire. killSessions aborts it at once.
    """
    made = Sessions(fdb)
    try:
        yield made
    finally:
        lsids = [
            s.driver_session.session_id
            for s in made._opened
            if not s.closed and s.driver_session is not None
        ]
        made.close_all()
        if lsids:
            with contextlib.suppress(PyMongoError):
                fdb.client.admin.command({"killSessions": lsids})


FIXTURES = (recorder_fixture, faulty_fixture, fdb_fixture, fsessions_fixture)
