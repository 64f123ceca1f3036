"""Backends: making clients, the embedded mongomock backend, and server capabilities.

This module is private. It answers three questions for the rest of ``uow``:

* which client a host string means (:func:`make_client`): a real
  :class:`pymongo.MongoClient`, or for ``mongomock://...`` an in-process
  ``mongomock.MongoClient`` whose data is shared by every client made for the
  same URI in this process, like one in-memory server;
* how to make mongomock usable with the installed pymongo
  (:func:`patch_mongomock`, :func:`prepare_database`);
* what the server can do (:func:`server_info`): transactions, and the batch and
  size limits a flush must respect.

mongomock is an optional dependency: it is imported only inside the functions
that need it, never when this module is imported.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import attrs

from . import _mongomock_speed

__all__ = [
    "DEFAULT_HOST",
    "EMBEDDED_SCHEME",
    "ServerInfo",
    "is_mongomock",
    "make_client",
    "patch_mongomock",
    "prepare_database",
    "reset_embedded",
    "server_info",
]

logger = logging.getLogger("uow")

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
    patch_mongomock()
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


# ------------------------------------------------------------------- mongomock fix

# Set on our wrappers so patch_mongomock recognises its own work.
_PATCH_MARKER = "__uow_accepts_sort__"
_patch_lock = threading.Lock()


def patch_mongomock() -> None:
    """Fix mongomock for uow: pymongo >= 4.11's bulk ``sort``, ``$max``/``$min``, speed.

    pymongo 4.11 added ``sort`` to ``UpdateOne`` and ``ReplaceOne``, and their
    ``_add_to_bulk`` always pass it on (``sort=None`` when unused). mongomock
    4.3.0's ``BulkOperationBuilder.add_update`` / ``add_replace`` do not take it,
    so every ``bulk_write`` with one of those fails with a ``TypeError``
    (mongomock issue #912). This wraps the two methods: ``sort=None`` is dropped,
    any other sort raises ``NotImplementedError`` (mongomock cannot honour it,
    and updating some other matching document would be silent data damage).

    It also makes ``$max``/``$min`` compare in BSON order (:func:`_patch_max_min`)
    and applies the two speed fixes of :mod:`uow._mongomock_speed` (``_id``
    lookups instead of scans, a linear cursor), which change no result.

    Idempotent and thread-safe. A method whose signature already has ``sort``
    (a fixed mongomock) is left alone. Does nothing if mongomock is missing.
    """
    try:
        import mongomock.collection
    except ImportError:
        return
    builder = getattr(mongomock.collection, "BulkOperationBuilder", None)
    if builder is None:  # pragma: no cover - a mongomock that reorganised itself
        return
    with _patch_lock:
        for name in ("add_update", "add_replace"):
            original = getattr(builder, name, None)
            if original is None or not _needs_sort_patch(original):
                continue
            setattr(builder, name, _accepting_sort(original, name))
            logger.debug("patched mongomock BulkOperationBuilder.%s to accept sort", name)
        _patch_max_min(mongomock.collection)
        _mongomock_speed.install()


def _patch_max_min(collection_module: Any) -> None:
    """Make mongomock's ``$max``/``$min`` compare in BSON order, as the server does.

    mongomock 4.3.0 applies them with Python's ``max``/``min``, so a stored null
    (the default of an optional ``on_update="$max"`` field) raises ``TypeError``
    against a datetime or number. MongoDB orders null below every other type, so
    ``$max`` over null sets the value and ``$min`` keeps null.
    """
    updaters = getattr(collection_module, "_updaters", None)
    if not isinstance(updaters, dict) or getattr(updaters.get("$max"), "_uow_bson_order", False):
        return
    import operator

    from mongomock import filtering

    bson_compare: Callable[..., bool] = filtering.bson_compare

    def ordered(keep_new_if: Callable[[Any, Any], bool]) -> Callable[[Any, str, Any], None]:
        def updater(doc: Any, field_name: str, value: Any) -> None:
            if not isinstance(doc, dict):
                return
            if field_name not in doc or bson_compare(keep_new_if, value, doc[field_name]):
                doc[field_name] = value

        updater._uow_bson_order = True  # type: ignore[attr-defined]
        return updater

    updaters["$max"] = ordered(operator.gt)
    updaters["$min"] = ordered(operator.lt)
    logger.debug("patched mongomock $max/$min to compare in BSON order")


def _needs_sort_patch(method: Callable[..., Any]) -> bool:
    """True when ``method`` is neither our wrapper nor able to take ``sort``."""
    if getattr(method, _PATCH_MARKER, False):
        return False
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - not introspectable: leave it
        return False
    if "sort" in parameters:
        return False
    # A **kwargs catch-all accepts sort already (whatever it then does with it).
    return not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _accepting_sort(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap ``original`` so it takes a keyword-only ``sort`` that must be None."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError(
                f"mongomock cannot apply sort={sort!r} in a bulk {name.removeprefix('add_')} "
                "(UpdateOne/ReplaceOne with sort, pymongo >= 4.11): it would update "
                "whichever document matches first. Use a real MongoDB server, or a filter "
                "that matches one document."
            )
        return original(self, *args, **kwargs)

    # functools.wraps sets __wrapped__, through which inspect.signature would
    # report the original signature (without sort); give the wrapper its true
    # signature so callers that inspect it, and patch_mongomock itself, see sort.
    signature = inspect.signature(original)
    sort_parameter = inspect.Parameter("sort", inspect.Parameter.KEYWORD_ONLY, default=None)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), sort_parameter]
    )
    setattr(wrapper, _PATCH_MARKER, True)
    return wrapper


def is_mongomock(database: Any) -> bool:
    """True when ``database`` (or a client or collection) comes from mongomock.

    Looks at the class's module, so it never imports mongomock. Only the
    ``mongomock`` package counts: ``mongomock_ng`` is a different package, with
    its own ``bulk_write``, that :func:`patch_mongomock` does not touch.
    """
    module = type(database).__module__
    return module == "mongomock" or module.startswith("mongomock.")


def _is_embedded(database: Any) -> bool:
    """True for any in-process mongomock family backend (mongomock, mongomock_ng)."""
    return type(database).__module__.split(".", 1)[0].startswith("mongomock")


def prepare_database(database: Any) -> None:
    """Make ``database`` usable by a Session: patch mongomock if it is mongomock's."""
    if is_mongomock(database):
        patch_mongomock()


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
