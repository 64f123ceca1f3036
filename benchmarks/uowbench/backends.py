"""Where the benchmark runs: mongomock in process, SecantusDB in process, or a URI.

Every library gets its own client from :meth:`Backend.client` (on wire backends a
``MongoClient`` with a :class:`~uowbench.counting.WireListener`); seeding, clean-up
and checks go through :meth:`Backend.admin`, whose commands are never counted.
"""

from __future__ import annotations

import uuid
from typing import Any

import bson

from . import counting

DB_NAME = "uow_bench"


class Backend:
    """One database server for the whole run."""

    name = "backend"
    embedded = False
    #: the limit uow and pymongo split write batches at
    max_write_batch_size = counting.MAX_WRITE_BATCH

    def client(self) -> Any:
        raise NotImplementedError

    def admin(self) -> Any:
        """A database handle for seeding and checks (not counted)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------ mongomock


class MongomockBackend(Backend):
    """uow's embedded backend: ``uow._backend.make_client("mongomock://...")``.

    Each instance has its own in-process store, forgotten on :meth:`close`.
    ``id_index`` gives mongomock an ``_id`` lookup (see :func:`install_id_lookup`).
    """

    name = "mongomock"
    embedded = True

    def __init__(self, id_index: bool = True) -> None:
        from uow import _backend

        self._backend = _backend
        self.uri = f"mongomock://uow-bench-{uuid.uuid4().hex[:8]}"
        self.id_index = id_index
        counting.install_mongomock_counting()
        install_id_lookup()
        set_id_lookup(id_index)
        self._admin = _backend.make_client(self.uri)

    def client(self) -> Any:
        return self._backend.make_client(self.uri)

    def admin(self) -> Any:
        return self._admin[DB_NAME]

    def describe(self) -> str:
        import mongomock

        lookup = (
            "with the harness's _id lookup and linear cursor"
            if self.id_index
            else "stock (every _id lookup scans, cursors copy N^2)"
        )
        return f"mongomock {mongomock.__version__} via uow._backend.make_client, {lookup}"

    def close(self) -> None:
        self._backend.reset_embedded(self.uri)


# mongomock answers every filter, {"_id": x} included, by scanning the whole
# collection (Collection._iter_documents). At N = 10,000 that makes one bulk_write
# of 10,000 UpdateOne take ~90 s and 10,000 find_one ~165 s, for raw pymongo and
# every library alike: the ratios then measure mongomock's scan, and the run takes
# an hour. The lookup below answers {"_id": <scalar>} and {"_id": {"$in": [...]}}
# (plus any other conditions) from the store, which mongomock keys by _id, and
# still applies mongomock's own filter to every candidate, so the results are
# the same documents; other filters take mongomock's path unchanged.
_ID_LOOKUP = {"enabled": True, "installed": False}
_SAFE_ID_TYPES = (bson.ObjectId, str, int, float, uuid.UUID)


def set_id_lookup(enabled: bool) -> None:
    _ID_LOOKUP["enabled"] = enabled


def install_id_lookup() -> None:
    """Patch mongomock's ``_iter_documents`` and ``Cursor.__next__`` once (see above)."""
    if _ID_LOOKUP["installed"]:
        return
    from mongomock import collection as mongomock_collection
    from mongomock import filtering

    original = mongomock_collection.Collection._iter_documents

    def _iter_documents(self: Any, filter: Any) -> Any:
        wanted = _id_candidates(filter) if _ID_LOOKUP["enabled"] else None
        if wanted is None:
            return original(self, filter)
        store = self._store
        if store.is_empty:
            filtering.filter_applies(filter, {})  # mongomock validates the filter here
            return iter(())
        kind, value = wanted
        if kind == "one":
            candidates = [store[value]] if value in store else []
        else:
            candidates = [doc for doc in list(store.documents) if _member(doc.get("_id"), value)]
        # The _id condition holds by construction (Python equality of these types is
        # MongoDB's); the rest of the filter, if any, is mongomock's to apply.
        rest = {k: v for k, v in filter.items() if k != "_id"}
        if not rest:
            return iter(candidates)
        return (doc for doc in candidates if filtering.filter_applies(rest, doc))

    mongomock_collection.Collection._iter_documents = _iter_documents

    # mongomock's Cursor.__next__ slices the whole cached result list for every
    # document it returns (results[skip:][:limit][emitted]), so reading N documents
    # copies N^2 pointers: ~0.1 s at N = 10,000, ~30 s at 100,000. This returns the
    # same document by index.
    cursor_class = mongomock_collection.Cursor
    original_next = cursor_class.__next__

    def __next__(self: Any) -> Any:
        if not _ID_LOOKUP["enabled"]:
            return original_next(self)
        results = self._compute_results()
        limit = abs(self._limit) if self._limit else None
        index = (self._skip or 0) + self._emitted
        if (limit is not None and self._emitted >= limit) or index >= len(results):
            raise StopIteration
        self._emitted += 1
        return results[index]

    cursor_class.__next__ = __next__
    cursor_class.next = __next__
    _ID_LOOKUP["installed"] = True


def _safe_id(value: Any) -> bool:
    # Exact types: bool is an int, Int64 and friends take mongomock's own path.
    return type(value) in _SAFE_ID_TYPES


def _id_candidates(filter_: Any) -> tuple[str, Any] | None:
    if type(filter_) is not dict or "_id" not in filter_:
        return None
    value = filter_["_id"]
    if _safe_id(value):
        return ("one", value)
    if type(value) is dict and len(value) == 1 and "$in" in value:
        values = value["$in"]
        if isinstance(values, (list, tuple)) and all(_safe_id(v) for v in values):
            return ("in", set(values))
    return None


def _member(value: Any, wanted: set[Any]) -> bool:
    try:
        return value in wanted
    except TypeError:  # an unhashable _id (a document) equals no scalar
        return False


# ----------------------------------------------------------------------------- wire


class WireBackend(Backend):
    """A MongoDB wire server at ``uri`` (SecantusDB, or a real mongod)."""

    name = "uri"

    def __init__(self, uri: str) -> None:
        import pymongo

        self.uri = uri
        self._clients: list[Any] = []
        self._admin_client = pymongo.MongoClient(uri, retryWrites=False)
        hello = self._admin_client.admin.command("hello")
        self.hello = hello
        self.max_write_batch_size = int(hello.get("maxWriteBatchSize", counting.MAX_WRITE_BATCH))

    def client(self) -> Any:
        import pymongo

        # retryWrites=False: SecantusDB slows down as its retryable-write records
        # grow (TESTING.md); no library here tests retries.
        client = pymongo.MongoClient(
            self.uri, retryWrites=False, event_listeners=[counting.WireListener()]
        )
        self._clients.append(client)
        return client

    def admin(self) -> Any:
        return self._admin_client[DB_NAME]

    def describe(self) -> str:
        version = self.hello.get("version") or self._admin_client.server_info().get("version")
        topology = (
            f"replica set {self.hello['setName']!r}" if self.hello.get("setName") else "standalone"
        )
        limit = f"maxWriteBatchSize {self.max_write_batch_size:,}"
        return f"{self.uri} (server {version}, {topology}, {limit})"

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._admin_client.close()


class SecantusBackend(WireBackend):
    """SecantusDB started in this process (``storage_path=":memory:"``)."""

    name = "secantus"

    def __init__(self) -> None:
        from secantus import SecantusDBServer

        self._server = SecantusDBServer(storage_path=":memory:")
        self._server.start()
        try:
            super().__init__(self._server.uri)
        except BaseException:
            self._server.stop()
            raise

    def describe(self) -> str:
        from importlib.metadata import version

        return f"SecantusDB {version('secantusdb')} in process, " + super().describe()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._server.stop()


def make_backend(spec: str, *, mongomock_id_index: bool = True) -> Backend:
    """``mongomock``, ``secantus``, or a ``mongodb://`` URI."""
    if spec == "mongomock":
        return MongomockBackend(id_index=mongomock_id_index)
    if spec == "secantus":
        return SecantusBackend()
    if spec.startswith(("mongodb://", "mongodb+srv://")):
        return WireBackend(spec)
    raise ValueError(f"unknown backend {spec!r}: use mongomock, secantus or a mongodb:// URI")
