"""Sending: every command a session sends goes through its channel.

The channel keeps the request budget (``max_requests``), the log line (``echo``),
the counts (requests, queries, round trips), the collection handles, the
session's driver session, and the registry of indexes already built.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pymongo import IndexModel

from .document import Document, ModelMeta
from .exceptions import TooManyRequests, UowError

__all__: list[str] = []

logger = logging.getLogger("uow")


# Indexes already built, per client and (database, collection): built once, not on
# every write. Keyed by id(client) with a weak reference to check the entry is that
# very client's: clients compare and hash by their address (pymongo's by seeds and
# options, mongomock's by a default address shared by every embedded store), so a
# dict keyed by the client would take one server's indexes for another's.
_ensured: dict[int, tuple[Callable[[], Any], set[tuple[str, str]]]] = {}
_ensured_lock = threading.Lock()


def _ensured_for(client: Any) -> set[tuple[str, str]]:
    key = id(client)
    with _ensured_lock:
        entry = _ensured.get(key)
        if entry is not None and entry[0]() is client:
            return entry[1]
        for stale in [k for k, (ref, _) in _ensured.items() if ref() is None]:
            del _ensured[stale]
        ref: Callable[[], Any]
        try:
            ref = weakref.ref(client)
        except TypeError:  # a client without weak references: kept alive here
            ref = functools.partial(lambda kept: kept, client)
        built: set[tuple[str, str]] = set()
        _ensured[key] = (ref, built)
        return built


class Channel:
    """One session's way to the database; see the module docstring."""

    def __init__(
        self, database: Any, driver_session: Any, max_requests: int | None, echo: bool
    ) -> None:
        self.db = database
        self.client = database.client
        #: the pymongo ClientSession every command carries (None on mongomock)
        self.driver_session = driver_session
        self.max_requests = max_requests
        self.echo = echo
        self.requests = 0
        self.queries = 0
        self.round_trips = 0
        self._handles: dict[str, Any] = {}
        self._echo_handler: logging.Handler | None = _add_echo_handler() if echo else None

    def close(self, close_client: bool) -> None:
        """End the driver session (and the client, if the session made it)."""
        if self.driver_session is not None:
            self.driver_session.end_session()
            self.driver_session = None
        if close_client:
            self.client.close()
        if self._echo_handler is not None:
            _remove_echo_handler(self._echo_handler)
            self._echo_handler = None

    # -- sending --------------------------------------------------------------------

    def send(self, command: str, collection: str, call: Callable[[], Any], detail: Any) -> Any:
        """Send one command: the request limit, the log line, the count.

        ``detail`` is what the log line shows, or a function giving it.
        """
        self.sending(command, collection, detail)
        return call()

    def sending(self, command: str, collection: str, detail: Any) -> None:
        """What comes before a command is sent: the request limit, the log line, the count.

        Raises:
            TooManyRequests: ``max_requests`` commands were sent already.
        """
        limit = self.max_requests
        if limit is not None and self.requests >= limit:
            raise TooManyRequests(
                f"max_requests={limit} reached: the session refused to send {command} on "
                f"{collection!r} (an N+1 loop? load related documents with one query)",
                limit=limit,
            )
        self.log(command, collection, detail)
        self.requests += 1

    def send_unlimited(self, command: str, call: Callable[[], Any]) -> None:
        """A clean-up command (abortTransaction): never refused by ``max_requests``."""
        self.log(command, "admin", None)
        self.requests += 1
        call()

    def log(self, command: str, collection: str, detail: Any) -> None:
        level = logging.INFO if self.echo else logging.DEBUG
        if logger.isEnabledFor(level):
            if callable(detail):  # built only when logged (one dict per write)
                detail = detail()
            logger.log(level, "%s %s.%s %s", command, self.db.name, collection, _short(detail))

    def session_kw(self, write: bool = True) -> dict[str, Any]:
        return {"session": self.driver_session} if self.driver_session is not None else {}

    def index_session_kw(self, in_transaction: bool) -> dict[str, Any]:
        """For index commands, which MongoDB refuses inside a transaction: the
        session's, unless a transaction is open (then they run beside it)."""
        return {} if in_transaction else self.session_kw(write=False)

    # -- collections ----------------------------------------------------------------

    def collection(self, meta: ModelMeta) -> Any:
        name = meta.collection
        if name is None:
            raise UowError(f"{meta.name} is abstract: it has no collection")
        return self.handle(name)

    def handle(self, name: str) -> Any:
        """The pymongo collection ``name`` (made once: ``db[name]`` costs ~4 µs)."""
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = self.db[name]
        return handle

    # -- reading --------------------------------------------------------------------

    def read_kwargs(
        self,
        projection: dict[str, int] | None,
        sort: list[tuple[str, int]] | None,
        skip: int,
        limit: int,
    ) -> dict[str, Any]:
        """find()'s keyword arguments: the session, and the options that are set."""
        kwargs = self.session_kw(write=False)
        if projection is not None:
            kwargs["projection"] = projection
        if sort:
            kwargs["sort"] = sort
        if skip:
            kwargs["skip"] = skip
        if limit:
            kwargs["limit"] = limit
        return kwargs

    def find_one(
        self,
        meta: ModelMeta,
        filter_: dict[str, Any],
        *,
        sort: list[tuple[str, int]] | None = None,
        skip: int = 0,
        projection: dict[str, int] | None = None,
    ) -> Any:
        """The first stored document matching, or None: one find, one batch, no cursor kept.

        (A lookup by id is the most frequent query of all: no call here that it
        does not need.)
        """
        # meta.collection, not collection.name: the same, without a property call
        name = meta.collection
        collection = self._handles.get(name) if name is not None else None
        if collection is None:
            collection = self.collection(meta)
        assert name is not None
        self.sending("find", name, filter_)
        if projection is None and not sort and not skip and self.driver_session is None:
            found = collection.find_one(filter_)
        else:
            found = collection.find_one(filter_, **self.read_kwargs(projection, sort, skip, 0))
        self.queries += 1
        return found

    def find(
        self,
        meta: ModelMeta,
        filter_: dict[str, Any],
        *,
        sort: list[tuple[str, int]] | None = None,
        skip: int = 0,
        limit: int = 0,
        projection: dict[str, int] | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Stream stored documents, counting every batch the cursor fetches."""
        collection = self.collection(meta)
        kwargs = self.read_kwargs(projection, sort, skip, limit)
        cursor = self.send(
            "find", collection.name, lambda: collection.find(filter_, **kwargs), filter_
        )
        self.queries += 1
        return self._stream(cursor, collection.name)

    def _stream(self, cursor: Any, collection: str) -> Iterator[Mapping[str, Any]]:
        try:
            if not hasattr(type(cursor), "retrieved"):
                # Not a pymongo cursor (mongomock's holds every result): no batches.
                yield from cursor
                return
            yielded = 0
            while True:
                # Every document fetched so far was handed out, and the server has
                # more: the cursor is about to send getMore. It counts, and may be
                # refused. (Public attributes only: ``retrieved`` counts documents
                # received, ``alive`` and ``cursor_id`` say the server holds more.)
                if yielded and yielded == cursor.retrieved and cursor.alive and cursor.cursor_id:
                    limit = self.max_requests
                    if limit is not None and self.requests >= limit:
                        raise TooManyRequests(
                            f"max_requests={limit} reached while reading {collection!r}",
                            limit=limit,
                        )
                    self.requests += 1
                    self.log("getMore", collection, None)
                try:
                    raw = next(cursor)
                except StopIteration:
                    return
                yielded += 1
                yield raw
        finally:
            close = getattr(cursor, "close", None)
            if close is not None:
                close()

    def find_all(self, name: str, query: dict[str, Any], write: bool = True) -> list[Any]:
        """Every stored document of collection ``name`` matching ``query``, in one find."""
        collection = self.handle(name)
        kwargs = self.session_kw(write)
        read = functools.partial(_find_all, collection, query, kwargs)
        found: list[Any] = self.send("find", collection.name, read, query)
        return found

    def count(self, meta: ModelMeta, filter_: dict[str, Any], skip: int = 0, limit: int = 0) -> int:
        """How many stored documents match ``filter_``, after ``skip`` and within
        ``limit`` (0: none), as a query with them would return."""
        collection = self.collection(meta)
        self.queries += 1
        window: dict[str, int] = {}
        if skip:
            window["skip"] = skip
        if limit:
            window["limit"] = limit
        result: int = self.send(
            "count",
            collection.name,
            lambda: collection.count_documents(filter_, **window, **self.session_kw(write=False)),
            filter_,
        )
        return result

    # -- writing by filter ----------------------------------------------------------

    def delete_many(self, meta: ModelMeta, filter_: dict[str, Any]) -> int:
        """Delete every stored document of ``meta``'s collection matching, now."""
        collection = self.collection(meta)
        delete_all = functools.partial(collection.delete_many, filter_, **self.session_kw())
        result = self.send("delete", collection.name, delete_all, filter_)
        deleted: int = result.deleted_count
        return deleted

    # -- indexes --------------------------------------------------------------------

    def ensure_indexes(self, cls: type[Document], in_transaction: bool) -> list[str]:
        """Build the indexes ``cls`` declares; returns their names."""
        meta = cls._uow_meta
        if not meta.indexes or meta.collection is None:
            return []
        models = [IndexModel(index.stored_keys(cls), **index.options) for index in meta.indexes]
        collection = self.collection(meta)
        names: list[str] = self.send(
            "createIndexes",
            collection.name,
            lambda: collection.create_indexes(models, **self.index_session_kw(in_transaction)),
            [index.keys for index in meta.indexes],
        )
        _ensured_for(self.client).add((self.db.name, meta.collection))
        return names

    def get_indexes(self, cls: type[Document], in_transaction: bool) -> dict[str, Any]:
        """The indexes of ``cls``'s collection, as pymongo's ``index_information()``."""
        collection = self.collection(cls._uow_meta)
        info: dict[str, Any] = self.send(
            "listIndexes",
            collection.name,
            lambda: collection.index_information(**self.index_session_kw(in_transaction)),
            None,
        )
        return info

    def auto_ensure(self, cls: type[Document], in_transaction: bool) -> None:
        """Build ``cls``'s indexes before its first write (once per client and collection)."""
        meta = cls._uow_meta
        if not meta.indexes or meta.collection is None:
            return
        if (self.db.name, meta.collection) in _ensured_for(self.client):
            return
        if in_transaction:
            return  # index builds cannot run inside a transaction; next flush builds them
        self.ensure_indexes(cls, in_transaction)


def _find_all(collection: Any, query: dict[str, Any], kwargs: dict[str, Any]) -> list[Any]:
    return list(collection.find(query, **kwargs))


def _short(detail: Any, limit: int = 300) -> str:
    text = repr(detail) if detail is not None else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Every open echo session shares one stderr handler (one per session would print
# each command once per open session). It is added by the first one and
# removed, with the uow logger's level as it was before, by the last to close.
_echo_lock = threading.Lock()
_echo_sessions = [0]
_level_before_echo = [logging.NOTSET]
_echo_handler: list[logging.Handler] = []


def _add_echo_handler() -> logging.Handler:
    with _echo_lock:
        if _echo_sessions[0] == 0:
            _level_before_echo[0] = logger.level
            # Made now, not at import: it writes to the sys.stderr of now.
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("uow: %(message)s"))
            handler.setLevel(logging.INFO)
            _echo_handler[:] = [handler]
            logger.addHandler(handler)
        _echo_sessions[0] += 1
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        return _echo_handler[0]


def _remove_echo_handler(handler: logging.Handler) -> None:
    with _echo_lock:
        _echo_sessions[0] -= 1
        if _echo_sessions[0] == 0:
            logger.removeHandler(handler)
            if logger.level == logging.INFO:
                logger.setLevel(_level_before_echo[0])
