"""Where the benchmark runs: mongomock in process, SecantusDB in process, or a URI.

Every library gets its own client from :meth:`Backend.client` (on wire backends a
``MongoClient`` with a :class:`~uowbench.counting.WireListener`); seeding, clean-up
and checks go through :meth:`Backend.admin`, whose commands are never counted.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

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
    The harness opts in to uow's mongomock speed fixes (``_id`` lookups and a
    linear cursor, ``uow.testing.fast_mongomock``) for the instance's lifetime,
    for uow and raw pymongo alike, so that the ratios do not measure mongomock's
    scans; ``id_index=False`` leaves mongomock stock.
    """

    name = "mongomock"
    embedded = True

    def __init__(self, id_index: bool = True) -> None:
        from uow import _backend, _mongomock_speed

        self._backend = _backend
        self.uri = f"mongomock://uow-bench-{uuid.uuid4().hex[:8]}"
        self.id_index = id_index
        counting.install_mongomock_counting()
        # Removed again on close, for whatever runs next.
        self._fixes = contextlib.ExitStack()
        if id_index:
            installed = getattr(_mongomock_speed, "installed", None)
            if installed is not None:
                self._fixes.enter_context(installed())
            else:
                # A uow from before the opt-in (a "before" run of an older commit):
                # its Session installed the fixes for good; so does this.
                _mongomock_speed.install()
        self._admin = _backend.make_client(self.uri)

    def client(self) -> Any:
        return self._backend.make_client(self.uri)

    def admin(self) -> Any:
        return self._admin[DB_NAME]

    def describe(self) -> str:
        import mongomock

        lookup = (
            "with uow.testing.fast_mongomock (_id lookup, linear cursor)"
            if self.id_index
            else "stock (every _id lookup scans, cursors copy N^2)"
        )
        return f"mongomock {mongomock.__version__} via uow._backend.make_client, {lookup}"

    def close(self) -> None:
        self._backend.reset_embedded(self.uri)
        self._fixes.close()


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
