"""Backends: making clients, the embedded mongomock backend, and server capabilities.

This module is private. It answers three questions for the rest of ``uow``:

* which client a host string means (:func:`make_client`): a real
  :class:`pymongo.MongoClient`, or for ``mongomock://...`` an in-process
  ``mongomock.MongoClient`` whose data is shared by every client made for the
  same URI in this process, like one in-memory server;
* whether a database is mongomock's (:func:`is_mongomock`);
* what the server can do (:func:`server_info`): transactions, and the batch and
  size limits a flush must respect.

mongomock is an optional dependency: it is imported only inside the functions
that need it, never when this module is imported. Nothing here (or anywhere in
uow) changes mongomock: its bug with pymongo >= 4.11's bulk writes is worked
around in uow's own write path (:mod:`uow._embedded`).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import attrs

__all__ = [
    "DEFAULT_HOST",
    "EMBEDDED_SCHEME",
    "ServerInfo",
    "is_mongomock",
    "make_client",
    "reset_embedded",
    "server_info",
]

#: A host starting with this selects the embedded in-process backend.
EMBEDDED_SCHEME = "mongomock://"

#: The host used when none is given and ``UOW_MONGODB_URI`` is unset.
DEFAULT_HOST = "mongodb://localhost:27017"

#: The environment variable naming the default host.
HOST_ENV_VAR = "UOW_MONGODB_URI"

_MONGOMOCK_MISSING = (
    "the embedded backend ({scheme}) needs mongomock, which is not installed: "
    "pip install 'uow[mongomock]'"
)

# MongoDB's documented defaults, used when a hello reply leaves a limit out.
_DEFAULT_MAX_WRITE_BATCH_SIZE = 100_000
_DEFAULT_MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
_DEFAULT_MAX_MESSAGE_SIZE = 48_000_000

# Transactions need wire version 7 (MongoDB 4.0) on a replica set and 8
# (MongoDB 4.2) through mongos. pymongo 4.x refuses servers older than 4.0, but
# the check costs nothing and keeps a mongos 4.0 from being taken at its word.
_MIN_WIRE_VERSION_RS_TRANSACTIONS = 7
_MIN_WIRE_VERSION_SHARDED_TRANSACTIONS = 8

# MongoDB's error code for an unknown command: a server too old for "hello".
_COMMAND_NOT_FOUND = 59


# --------------------------------------------------------------------------- clients

# One mongomock ServerStore per exact embedded URI. The lock makes "first client
# for this URI creates the store" atomic when sessions open on several threads.
_embedded_stores: dict[str, Any] = {}
_embedded_lock = threading.Lock()


def make_client(host: str | None, *, replica_set: str | None = None, **client_kwargs: Any) -> Any:
    """Return a client for ``host``.

    ``host`` ``None`` means the environment variable ``UOW_MONGODB_URI``, else
    ``mongodb://localhost:27017``.

    A host starting with ``mongomock://`` gives a ``mongomock.MongoClient``
    whose data store is shared by every client made for that exact URI string
    in this process (``mongomock://`` and ``mongomock://other`` are two separate
    in-memory servers). ``replica_set`` means nothing there and is ignored;
    ``client_kwargs`` go to mongomock, which keeps the ones it knows
    (``tz_aware``, ``document_class``...) and ignores networking options.

    Any other host gives ``pymongo.MongoClient(host, replicaSet=replica_set,
    **client_kwargs)`` (``replicaSet`` only when given). pymongo connects
    lazily, so this does no I/O.

    Raises:
        ImportError: for a ``mongomock://`` host when mongomock is not installed.
    """
    if host is None:
        # An empty variable counts as unset, as a shell's `VAR= cmd` means.
        host = os.environ.get(HOST_ENV_VAR) or DEFAULT_HOST
    if host.startswith(EMBEDDED_SCHEME):
        return _make_embedded_client(host, client_kwargs)

    import pymongo

    if replica_set is not None:
        # Passed as a keyword, so a second replicaSet in client_kwargs is a
        # TypeError rather than one of the two silently winning.
        return pymongo.MongoClient(host, replicaSet=replica_set, **client_kwargs)
    return pymongo.MongoClient(host, **client_kwargs)


def _make_embedded_client(uri: str, client_kwargs: dict[str, Any]) -> Any:
    """A mongomock client on the process-wide store for ``uri``."""
    try:
        import mongomock
        import mongomock.store
    except ImportError as exc:
        raise ImportError(_MONGOMOCK_MISSING.format(scheme=EMBEDDED_SCHEME)) from exc
    # Typed as Any: mongomock has no annotations, and strict mypy would refuse
    # calling it where it is installed yet be silent where it is not.
    server_store: Any = mongomock.store.ServerStore
    with _embedded_lock:
        store = _embedded_stores.get(uri)
        if store is None:
            store = _embedded_stores[uri] = server_store()
    # No host is passed: mongomock would parse "mongomock://..." as a MongoDB
    # URI and reject the scheme; its default address is as good as any.
    return mongomock.MongoClient(_store=store, **client_kwargs)


def reset_embedded(host: str = EMBEDDED_SCHEME) -> None:
    """Forget the shared embedded store for ``host`` (for test isolation).

    The next :func:`make_client` for ``host`` starts on an empty store. Clients
    made before keep the store they have: they are not emptied behind their
    back. Forgetting a URI that has no store does nothing.
    """
    with _embedded_lock:
        _embedded_stores.pop(host, None)


# ------------------------------------------------------------------- mongomock


def is_mongomock(database: Any) -> bool:
    """True when ``database`` (or a client or collection) comes from mongomock.

    Looks at the class's module, so it never imports mongomock. Only the
    ``mongomock`` package counts: ``mongomock_ng`` is a different package, with
    a ``bulk_write`` that works, which uow's writes use as they are.
    """
    module = type(database).__module__
    return module == "mongomock" or module.startswith("mongomock.")


def _is_embedded(database: Any) -> bool:
    """True for any in-process mongomock family backend (mongomock, mongomock_ng)."""
    return type(database).__module__.split(".", 1)[0].startswith("mongomock")


# ------------------------------------------------------------ server capabilities


@attrs.frozen
class ServerInfo:
    """What a server can do, as far as a flush needs to know.

    Frozen; tests that want another batch size use ``attrs.evolve(info,
    max_write_batch_size=3)``.
    """

    #: Multi-document transactions (a replica set or mongos with logical sessions).
    supports_transactions: bool
    #: The most write operations one write command may carry.
    max_write_batch_size: int
    #: The largest BSON document the server accepts.
    max_bson_object_size: int
    #: The largest wire message the server accepts.
    max_message_size: int
    #: The in-process mongomock backend rather than a server.
    is_embedded: bool


#: What the embedded backend is taken to support: MongoDB's defaults, no transactions.
EMBEDDED_SERVER_INFO = ServerInfo(
    supports_transactions=False,
    max_write_batch_size=_DEFAULT_MAX_WRITE_BATCH_SIZE,
    max_bson_object_size=_DEFAULT_MAX_BSON_OBJECT_SIZE,
    max_message_size=_DEFAULT_MAX_MESSAGE_SIZE,
    is_embedded=True,
)

# Keyed by id(client), holding a weak reference to check that the entry still
# belongs to that very client. Not a WeakKeyDictionary: pymongo's MongoClient
# compares and hashes by its options, so two clients for the same URI would
# share one entry. No weakref callback either: it can run inside a garbage
# collection triggered while this thread holds the lock. Entries of collected
# clients are pruned instead whenever a new client is added (few clients live
# in a process, so the scan is cheap).
_info_cache: dict[int, tuple[weakref.ref[Any], ServerInfo]] = {}
_info_lock = threading.Lock()


def server_info(database: Any) -> ServerInfo:
    """The capabilities of the server behind ``database``, read once per client.

    mongomock: :data:`EMBEDDED_SERVER_INFO`, with no command sent. Otherwise the
    first call for a client sends one ``hello`` to ``admin`` (``isMaster`` on a
    server too old for ``hello``); later calls for that client send nothing.
    Two threads asking at once for a new client may both send ``hello``; either
    answer is kept.
    """
    if _is_embedded(database):
        return EMBEDDED_SERVER_INFO
    client = database.client
    key = id(client)
    with _info_lock:
        entry = _info_cache.get(key)
        if entry is not None and entry[0]() is client:
            return entry[1]
    # The command runs outside the lock: it is network I/O, and other clients'
    # lookups should not wait for it.
    info = _info_from_hello(_hello(client))
    try:
        ref = weakref.ref(client)
    except TypeError:  # pragma: no cover - a client class without weakref support
        return info
    with _info_lock:
        for stale in [k for k, (r, _) in _info_cache.items() if r() is None]:
            del _info_cache[stale]
        _info_cache[key] = (ref, info)
    return info


def _hello(client: Any) -> dict[str, Any]:
    """Send ``hello`` to ``client``'s admin database (``isMaster`` if unknown)."""
    from pymongo.errors import OperationFailure

    try:
        return dict(client.admin.command("hello"))
    except OperationFailure as exc:
        if exc.code != _COMMAND_NOT_FOUND:
            raise
        return dict(client.admin.command("isMaster"))


def _info_from_hello(reply: dict[str, Any]) -> ServerInfo:
    """Read a hello reply, with MongoDB's defaults for the limits it leaves out."""
    wire_version = int(reply.get("maxWireVersion", 0))
    has_sessions = reply.get("logicalSessionTimeoutMinutes") is not None
    if reply.get("setName"):
        transactions = has_sessions and wire_version >= _MIN_WIRE_VERSION_RS_TRANSACTIONS
    elif reply.get("msg") == "isdbgrid":
        transactions = has_sessions and wire_version >= _MIN_WIRE_VERSION_SHARDED_TRANSACTIONS
    else:
        # A standalone: MongoDB refuses transactions there.
        transactions = False
    return ServerInfo(
        supports_transactions=transactions,
        max_write_batch_size=int(reply.get("maxWriteBatchSize", _DEFAULT_MAX_WRITE_BATCH_SIZE)),
        max_bson_object_size=int(reply.get("maxBsonObjectSize", _DEFAULT_MAX_BSON_OBJECT_SIZE)),
        max_message_size=int(reply.get("maxMessageSizeBytes", _DEFAULT_MAX_MESSAGE_SIZE)),
        is_embedded=False,
    )
