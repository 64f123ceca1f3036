"""Test lanes for uow: the embedded backend, SecantusDB, a real MongoDB, and mockupdb.

Fixtures (see /work/shared/TESTING.md for why these backends):

* ``mongomock_db``: a database on a fresh embedded (``mongomock://``) store.
* ``secantus_db``: a database with a unique name on the one SecantusDB server of
  the run, dropped after the test.
* ``mongodb_db``: the same on the real server named by ``UOW_TEST_MONGODB_URI``.
* ``db``: one of the above per lane, so a test written once runs on each:
  ``mongomock`` and ``secantus`` always, ``mongodb`` only when
  ``UOW_TEST_MONGODB_URI`` is set. A test marked ``transactions`` is not
  generated for the ``mongomock`` lane (mongomock has no transactions).
* ``command_log``: the commands a listened SecantusDB client sent during the test.
* ``mock_server`` / ``mock_client``: a mockupdb server answering the handshake
  like a replica-set primary, and a client connected to it.

Markers are applied here, not by hand: a test that uses the SecantusDB server
(directly or through another fixture, or as the ``db[secantus]`` lane) is marked
``secantus``; one that uses ``mock_server`` is marked ``wire``; one that uses a
real MongoDB is marked ``mongodb``. Tests marked ``mongodb`` are skipped, with
the reason, when ``UOW_TEST_MONGODB_URI`` is unset: that opt-in lane is the only
skip in the suite.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import pymongo
import pytest
from pymongo import monitoring

from uow._backend import make_client, reset_embedded

if TYPE_CHECKING:
    from mockupdb import MockupDB
    from pymongo.database import Database
    from secantus import SecantusDBServer

MONGODB_URI_ENV = "UOW_TEST_MONGODB_URI"
MONGODB_URI = os.environ.get(MONGODB_URI_ENV) or None
MONGODB_SKIP_REASON = (
    f"{MONGODB_URI_ENV} is not set: the real-MongoDB lane is opt-in "
    "(e.g. UOW_TEST_MONGODB_URI='mongodb://localhost:27017/?replicaSet=rs0')"
)

# The lanes of the `db` fixture. Built at import time: the environment decides
# whether the real-server lane exists at all, so without it no `db[mongodb]`
# test is generated (rather than generated and skipped).
LANES: list[Any] = [
    pytest.param("mongomock", id="mongomock"),
    pytest.param("secantus", id="secantus", marks=pytest.mark.secantus),
]
if MONGODB_URI is not None:
    LANES.append(pytest.param("mongodb", id="mongodb", marks=pytest.mark.mongodb))
# mongomock has no sessions or transactions: a test about transactions runs on
# the lanes that have them instead of being skipped on mongomock.
TRANSACTIONAL_LANES: list[Any] = [lane for lane in LANES if lane.values[0] != "mongomock"]


def _unique_name(prefix: str) -> str:
    """A database name no other test (or earlier run on a real server) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


# ------------------------------------------------------------------------ hooks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that uses ``db`` (directly or not) over the lanes."""
    if "db" not in metafunc.fixturenames:
        return
    # A test of what mongomock cannot do runs on the lanes that can, rather than
    # being skipped on mongomock.
    server_only = any(
        metafunc.definition.get_closest_marker(name) is not None
        for name in ("transactions", "not_mongomock")
    )
    metafunc.parametrize("db", TRANSACTIONAL_LANES if server_only else LANES, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the backends their fixtures use; skip the opt-in lane if off."""
    skip_mongodb = pytest.mark.skip(reason=MONGODB_SKIP_REASON)
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        if "secantus_server" in fixturenames and item.get_closest_marker("secantus") is None:
            item.add_marker(pytest.mark.secantus)
        if "mock_server" in fixturenames and item.get_closest_marker("wire") is None:
            item.add_marker(pytest.mark.wire)
        if "mongodb_client" in fixturenames and item.get_closest_marker("mongodb") is None:
            item.add_marker(pytest.mark.mongodb)
        if MONGODB_URI is None and item.get_closest_marker("mongodb") is not None:
            item.add_marker(skip_mongodb)


# ------------------------------------------------------------ embedded backend


@pytest.fixture
def embedded_uri() -> Iterator[str]:
    """A ``mongomock://`` URI of its own; its store is forgotten after the test."""
    uri = f"mongomock://test-{uuid.uuid4().hex}"
    yield uri
    reset_embedded(uri)


@pytest.fixture
def mongomock_db(embedded_uri: str) -> Iterator[Any]:
    """A mongomock database on a fresh embedded store (``make_client``, so patched)."""
    client = make_client(embedded_uri)
    yield client["uow_test"]
    client.close()


# -------------------------------------------------------------------- SecantusDB


@pytest.fixture(scope="session")
def secantus_server() -> Iterator[SecantusDBServer]:
    """One in-memory SecantusDB server for the whole run, started on first use.

    Starting takes about 0.1 s; tests are isolated by database, not by server.
    """
    from secantus import SecantusDBServer

    server = SecantusDBServer(storage_path=":memory:")
    server.start()
    try:
        yield server
    finally:
        _wake_accept_loop(server)
        server.stop()


def _wake_accept_loop(server: SecantusDBServer) -> None:
    """Make ``server.stop()`` take milliseconds instead of 2 s.

    secantus 0.7.0b3's stop() closes the listening socket and joins the accept
    thread with a 2 s timeout, but on Linux closing a socket does not wake a
    thread blocked in accept() on it, so every run paid the full 2 s. Shutting
    the socket down does wake it (accept raises, and the loop returns). The
    socket is private: if a later version renames it, this does nothing.
    """
    listening = getattr(server, "_socket", None)
    if isinstance(listening, socket.socket):
        with contextlib.suppress(OSError):
            listening.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="session")
def secantus_client(secantus_server: SecantusDBServer) -> Iterator[pymongo.MongoClient[Any]]:
    """The run's shared client for SecantusDB.

    ``retryWrites=False``: with retryable writes every write slows down as the
    server's store of retryable-write records grows (TESTING.md).
    """
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(secantus_server.uri, retryWrites=False)
    yield client
    client.close()


@pytest.fixture
def secantus_db(secantus_client: pymongo.MongoClient[Any]) -> Iterator[Database[Any]]:
    """A database of its own on the shared SecantusDB client, dropped after."""
    name = _unique_name("t")
    yield secantus_client[name]
    secantus_client.drop_database(name)


# ---------------------------------------------------------------- command log


class RecordedCommand(NamedTuple):
    """One command a client sent: its name, its database, and the command document."""

    name: str
    database: str
    command: dict[str, Any]


class CommandLog(monitoring.CommandListener):
    """Records every command started on the clients it is registered with.

    The list view (iteration, ``len``, indexing, :meth:`names`) leaves out the
    driver's handshake, authentication and session housekeeping commands
    (:attr:`IGNORED`), which a test about uow's round trips does not want.
    :meth:`of` finds any command by name, those included: asking for
    ``"hello"`` by name means wanting to see it.

    Register it on another client with ``MongoClient(uri,
    event_listeners=[command_log])`` when a test needs a fresh client.
    """

    #: Lower-cased names left out of the list view.
    IGNORED = frozenset(
        {
            "hello",
            "ismaster",
            "ping",
            "endsessions",
            "saslstart",
            "saslcontinue",
            "authenticate",
            "getnonce",
            "buildinfo",
            "killallsessions",
        }
    )

    def __init__(self) -> None:
        # pymongo calls listeners on the thread that runs the command.
        self._lock = threading.Lock()
        self._all: list[RecordedCommand] = []
        #: The session-scoped client this log listens to (set by the fixture).
        self.client: pymongo.MongoClient[Any] | None = None

    # CommandListener interface
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        # A shallow copy: pymongo builds a fresh document per command, and a
        # deep copy of a 100,000-document batch would slow batch tests down.
        recorded = RecordedCommand(event.command_name, event.database_name, dict(event.command))
        with self._lock:
            self._all.append(recorded)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    # Recorder interface
    @property
    def commands(self) -> list[RecordedCommand]:
        """The recorded commands, handshake and housekeeping left out."""
        with self._lock:
            return [c for c in self._all if c.name.lower() not in self.IGNORED]

    def names(self) -> list[str]:
        """The names of the recorded commands, in order."""
        return [c.name for c in self.commands]

    def of(self, name: str) -> list[dict[str, Any]]:
        """The command documents of every recorded command called ``name``."""
        with self._lock:
            return [c.command for c in self._all if c.name == name]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._all.clear()

    def __iter__(self) -> Iterator[RecordedCommand]:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.commands)

    def __getitem__(self, index: int) -> RecordedCommand:
        return self.commands[index]

    def __repr__(self) -> str:
        return f"CommandLog({self.names()!r})"


@pytest.fixture(scope="session")
def _command_log_listener() -> CommandLog:
    # Listeners are fixed when a client is built, so the listener outlives the
    # per-test recorder views and is simply cleared between tests.
    return CommandLog()


@pytest.fixture(scope="session")
def secantus_listened_client(
    secantus_server: SecantusDBServer, _command_log_listener: CommandLog
) -> Iterator[pymongo.MongoClient[Any]]:
    """A second SecantusDB client whose commands go to ``command_log``."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        secantus_server.uri, retryWrites=False, event_listeners=[_command_log_listener]
    )
    _command_log_listener.client = client
    yield client
    client.close()


@pytest.fixture
def command_log(
    secantus_listened_client: pymongo.MongoClient[Any], _command_log_listener: CommandLog
) -> Iterator[CommandLog]:
    """The commands sent on ``secantus_listened_client`` (or ``command_log.client``)
    during this test; use it with ``secantus_listened_db``."""
    _command_log_listener.clear()
    yield _command_log_listener
    _command_log_listener.clear()


@pytest.fixture
def secantus_listened_db(
    secantus_listened_client: pymongo.MongoClient[Any], command_log: CommandLog
) -> Iterator[Database[Any]]:
    """A database of its own on the listened client, dropped after the test.

    Depends on ``command_log`` so that the log is cleared before the test.
    """
    name = _unique_name("t")
    yield secantus_listened_client[name]
    secantus_listened_client.drop_database(name)


# --------------------------------------------------------------- real MongoDB


@pytest.fixture(scope="session")
def mongodb_client() -> Iterator[pymongo.MongoClient[Any]]:
    """A client for ``UOW_TEST_MONGODB_URI`` (tests using it are skipped when unset)."""
    if MONGODB_URI is None:  # pragma: no cover - the collection hook skipped these
        pytest.skip(MONGODB_SKIP_REASON)
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(MONGODB_URI, retryWrites=False)
    yield client
    client.close()


@pytest.fixture
def mongodb_db(mongodb_client: pymongo.MongoClient[Any]) -> Iterator[Database[Any]]:
    """A database of its own on the real server, dropped after the test.

    The ``uow_test_`` prefix and a random suffix keep it clear of real data.
    """
    name = _unique_name("uow_test")
    yield mongodb_client[name]
    mongodb_client.drop_database(name)


# ----------------------------------------------------------------- the lanes


@pytest.fixture
def db(request: pytest.FixtureRequest) -> Any:
    """A database on one lane per parametrization: mongomock, secantus, [mongodb].

    Only the fixtures of the chosen lane are set up, so a run of mongomock
    tests never starts SecantusDB.
    """
    lane: str = request.param
    return request.getfixturevalue(f"{lane}_db")


# ------------------------------------------------------------------- mockupdb

# Traps (TESTING.md, section 3), each handled or to be handled by the wire tests:
# * mockupdb's built-in handshake answer says maxWireVersion 6, which pymongo
#   4.20 refuses: mock_server answers hello/isMaster itself with maxWireVersion
#   21, and with setName, hosts and logicalSessionTimeoutMinutes so that the
#   client sees a replica-set primary and allows sessions and transactions.
#   The hosts entry must be the server's own address, known only after run();
#   that is why the answer is registered after run() rather than passed as
#   MockupDB(auto_ismaster=...).
# * Batches arrive inside the command: request["documents"] for an insert,
#   request["updates"] / request["deletes"] for updates and deletes.
# * mockupdb.go() loses the details of an exception raised by the client call;
#   run the call in a concurrent.futures.ThreadPoolExecutor and read
#   future.exception() when the test needs them.
# * server.receives() waits request_timeout seconds (10 by default) and then
#   fails the test: a test that expects a command which never comes is slow,
#   not stuck.
# * A bare command name as a matcher (receives("find"), autoresponds("find"))
#   also requires the command's value to be 1, so it never matches
#   {"find": "coll"} or {"endSessions": [...]}: give the value
#   (OpMsg("find", "coll"), {"insert": "users"}) or use a handler function that
#   checks request.command_name.
# * MongoClient.close() sends endSessions and waits for the reply: unanswered,
#   teardown hangs. mock_server answers it with a handler (a test therefore
#   cannot receives() it).
# * Autoresponders answer before receives() sees a request.
# * Every other command waits for the test to answer it: call the client from a
#   ThreadPoolExecutor, then mock_server.receives(...) and .ok(...) / .fail(...)
#   / .command_err(...) / .hangup(). Called on the test's own thread, it blocks
#   until mock_client's socket timeout (10 s).


def _answer_end_sessions(request: Any) -> bool:
    """Reply ok to endSessions, which MongoClient.close() sends and waits for.

    A handler, not ``autoresponds("endSessions")``: mockupdb's matcher compares
    the command's first value too, and endSessions carries a list of session
    ids where a name-only matcher expects 1, so it would never match.
    """
    if request.command_name == "endSessions":
        return bool(request.ok())
    return False


@pytest.fixture
def mock_server() -> Iterator[MockupDB]:
    """A mockupdb server that answers the handshake as a replica-set primary ("rs0")."""
    import mockupdb

    server = mockupdb.MockupDB()
    server.run()
    address = server.address_string
    hello = {
        "ismaster": True,
        "isWritablePrimary": True,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "setName": "rs0",
        "hosts": [address],
        "primary": address,
        "me": address,
        "logicalSessionTimeoutMinutes": 30,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
    }
    # pymongo's handshake is isMaster (legacy, with helloOk) and later hello;
    # mockupdb matches command names case-insensitively.
    server.autoresponds("ismaster", hello)
    server.autoresponds("hello", hello)
    server.autoresponds(_answer_end_sessions)
    try:
        yield server
    finally:
        _stop_mock_server(server)


def _stop_mock_server(server: MockupDB) -> None:
    """``server.stop()``, without its 1 s wait.

    mockupdb's accept loop polls select() with a 1 s timeout and stop() joins
    it, so each wire test paid up to a second. Flagging the server stopped and
    then connecting once wakes the loop, which sees the flag and exits; stop()
    then closes that connection with the others. ``_stopped`` is private: if a
    later mockupdb drops it, this is only slower.
    """
    if hasattr(server, "_stopped"):
        server._stopped = True
        with contextlib.suppress(OSError):
            socket.create_connection(server.address, timeout=1).close()
    server.stop()


@pytest.fixture
def mock_client(mock_server: MockupDB) -> Iterator[pymongo.MongoClient[Any]]:
    """A client of ``mock_server``: replica set "rs0", no retried writes, short timeouts.

    ``retryWrites=False`` so a scripted failure reaches the test instead of
    being retried; the short server-selection timeout makes a broken handshake
    fail in seconds rather than the default 30; the socket timeout turns a
    command that the test forgot to answer into an error instead of a hang
    (pymongo's default is to wait forever).
    """
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        mock_server.uri,
        replicaSet="rs0",
        retryWrites=False,
        retryReads=False,
        serverSelectionTimeoutMS=5000,
        socketTimeoutMS=10_000,
    )
    yield client
    client.close()
