"""Counting the commands each library sends, and the update statements among them.

Wire backends: a pymongo ``monitoring.CommandListener`` given to each library's
own ``MongoClient`` sees every command (``find``, ``getMore``, ``insert``,
``update``, ``commitTransaction``...). mongomock sends nothing over a wire, so
the public methods of ``mongomock.collection.Collection`` are wrapped instead
(:func:`install_mongomock_counting`): each outermost call counts as the command
pymongo would send for it (``find_one`` -> ``find``, ``count_documents`` ->
``aggregate``, a ``bulk_write`` -> one command per run of same-kind requests,
split at 100,000 like pymongo). uow's own bulk write on mongomock
(``uow._embedded.bulk_write``, which drives mongomock's bulk builder because
mongomock's ``bulk_write`` fails on pymongo >= 4.11) is wrapped and counted as
that same ``bulk_write``, so raw pymongo and uow pay the same instrumentation for
the same command. mongomock has no cursors, so no ``getMore``.

Counting happens only inside :meth:`CommandLog.recording`, i.e. inside a timed
region: seeding, clean-up and verification are never counted. What the timed
region pays is constant per command, never per statement: a bulk write's
requests are kept by reference and split into commands, and update statements
measured (:func:`statement_stats`), once the recording ends.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import bson
from pymongo import monitoring

#: pymongo splits a bulk write into commands of at most this many statements.
MAX_WRITE_BATCH = 100_000

READ_COMMANDS = ("find", "getMore", "aggregate", "count", "distinct")
WRITE_COMMANDS = ("insert", "update", "delete", "findAndModify")


class CommandLog:
    """Commands seen while recording: counts by name, and update statements."""

    def __init__(self) -> None:
        self.active = False
        self.counts: Counter[str] = Counter()
        # (filter, update) pairs, or containers of wire statements, kept by reference.
        self._pairs: list[tuple[Any, Any]] = []
        self._wire_updates: list[Any] = []
        # mongomock bulk writes, (requests, ordered), counted when the recording ends.
        self._bulks: list[tuple[list[Any], bool]] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[CommandLog]:
        self.counts = Counter()
        self._pairs = []
        self._wire_updates = []
        self._bulks = []
        self.active = True
        try:
            yield self
        finally:
            self.active = False
            self._count_bulks()

    def add_bulk(self, requests: list[Any], ordered: bool) -> None:
        """A mongomock bulk write, kept by reference: split into commands later."""
        self._bulks.append((requests, ordered))

    def _count_bulks(self) -> None:
        for requests, ordered in self._bulks:
            for kind, size in _runs(requests, ordered):
                self.counts[kind] += -(-size // MAX_WRITE_BATCH)
            for request in requests:
                if _kind_of(request) == "update":
                    self._pairs.append(
                        (getattr(request, "_filter", None), getattr(request, "_doc", None))
                    )
        self._bulks = []

    def add_pair(self, filter_: Any, update: Any) -> None:
        self._pairs.append((filter_, update))

    def add_wire_update(self, statements: Any) -> None:
        self._wire_updates.append(statements)

    def statements(self) -> list[tuple[Any, Any]]:
        """Every update statement of the last recording, as (filter, update)."""
        pairs = list(self._pairs)
        for statements in self._wire_updates:
            for statement in statements:
                pairs.append((statement.get("q"), statement.get("u")))
        return pairs


LOG = CommandLog()


class WireListener(monitoring.CommandListener):
    """Counts every command a client sends while :data:`LOG` is recording."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not LOG.active:
            return
        name = event.command_name
        LOG.counts[name] += 1
        if name == "update":
            LOG.add_wire_update(event.command.get("updates", ()))
        elif name == "findAndModify" and "update" in event.command:
            LOG.add_pair(event.command.get("query"), event.command["update"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# ---------------------------------------------------------------- update statements


def statement_fields(update: Any) -> int:
    """How many fields an update statement writes.

    Operator updates: the paths under every operator (``{"$set": {"a": 1}}`` is
    1). A replacement document: its keys other than ``_id``. A pipeline: its
    stages.
    """
    if isinstance(update, list):
        return len(update)
    if not isinstance(update, Mapping):
        return 0
    if update and all(str(key).startswith("$") for key in update):
        return sum(len(v) if isinstance(v, Mapping) else 1 for v in update.values())
    return sum(1 for key in update if key != "_id")


def statement_bytes(filter_: Any, update: Any) -> int:
    """The BSON size of the statement ``{"q": filter, "u": update}``.

    The wire statement also carries ``multi``/``upsert`` flags; they are left out
    so that mongomock and wire numbers compare.
    """
    return len(bson.encode({"q": filter_ or {}, "u": update or {}}))


def statement_stats(pairs: list[tuple[Any, Any]]) -> dict[str, Any] | None:
    """Count, fields and bytes (min, median, max) of update statements, or None."""
    if not pairs:
        return None
    fields = [statement_fields(u) for _, u in pairs]
    sizes = [statement_bytes(q, u) for q, u in pairs]
    return {
        "count": len(pairs),
        "fields_min": min(fields),
        "fields_max": max(fields),
        "bytes_min": min(sizes),
        "bytes_median": int(statistics.median(sizes)),
        "bytes_max": max(sizes),
        "example": _short(pairs[0][1]),
    }


def _short(update: Any, limit: int = 70) -> str:
    text = repr(update)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------ mongomock counting

_COMMAND_OF = {
    "insert_one": "insert",
    "insert_many": "insert",
    "find": "find",
    "find_one": "find",
    "update_one": "update",
    "update_many": "update",
    "replace_one": "update",
    "delete_one": "delete",
    "delete_many": "delete",
    "bulk_write": "bulk",
    "count_documents": "aggregate",
    "estimated_document_count": "count",
    "aggregate": "aggregate",
    "distinct": "distinct",
    "find_one_and_update": "findAndModify",
    "find_one_and_replace": "findAndModify",
    "find_one_and_delete": "findAndModify",
    "create_index": "createIndexes",
    "create_indexes": "createIndexes",
    "drop_index": "dropIndexes",
    "drop_indexes": "dropIndexes",
    "list_indexes": "listIndexes",
    "index_information": "listIndexes",
    "drop": "drop",
}

_KIND_OF_REQUEST = {
    "InsertOne": "insert",
    "UpdateOne": "update",
    "UpdateMany": "update",
    "ReplaceOne": "update",
    "DeleteOne": "delete",
    "DeleteMany": "delete",
}



def _kind_of(request: Any) -> str:
    """A pymongo request's kind, subclasses included (uow's ``UpdateWrite`` is an
    ``UpdateOne``)."""
    for cls in type(request).__mro__:
        kind = _KIND_OF_REQUEST.get(cls.__name__)
        if kind is not None:
            return kind
    return "unknown"


_MARKER = "_uowbench_counting"
_depth = threading.local()
_install_lock = threading.Lock()

#: What mongomock 4.3's bulk builder calls for each write of a batch (``exec_insert``,
#: ``exec_remove``; ``exec_update`` calls the private ``_update``).
_PER_WRITE = ("insert_one", "delete_one", "delete_many")
#: (Collection, name, mongomock's own method, its counting wrapper) for each of _PER_WRITE.
_PER_WRITE_SWAPS: list[tuple[type, str, Any, Any]] = []


def install_mongomock_counting() -> None:
    """Wrap mongomock's Collection methods so that :data:`LOG` counts them. Idempotent.

    Also ``uow._embedded.bulk_write`` (where the uow under test has it): uow's
    flush on mongomock sends its update and delete batches through it rather
    than ``Collection.bulk_write``. It is counted exactly as ``bulk_write`` is,
    at the same (constant) cost, and the calls mongomock makes inside it (a
    ``delete_one`` per ``DeleteOne``) are not counted again.

    While a counted bulk write runs, the Collection methods mongomock runs once
    per write (:data:`_PER_WRITE`) are mongomock's own again: their wrappers
    would count nothing there, yet charge a bulk of ``DeleteOne`` (uow's deletes)
    a wrapper call per document that raw pymongo's single ``delete_many`` never
    pays. (The benchmark is single-threaded; the swap is process-wide.)

    mongomock's ``BulkOperationBuilder.add_update`` and ``add_replace`` also learn
    to take pymongo >= 4.11's ``sort=None`` (mongomock issue #912), which raw
    pymongo's and the peers' ``bulk_write`` pass: uow no longer changes mongomock,
    so this benchmark process does it for them. That adapter counts nothing; uow's
    statements pass through it too, so it costs every library the same.
    """
    from mongomock.collection import BulkOperationBuilder, Collection

    with _install_lock:
        for method, command in _COMMAND_OF.items():
            original = getattr(Collection, method, None)
            if original is None or getattr(original, _MARKER, False):
                continue
            setattr(Collection, method, _counting(original, method, command))
            if method in _PER_WRITE:
                _PER_WRITE_SWAPS.append((Collection, method, original, getattr(Collection, method)))
        for method in ("add_update", "add_replace"):
            original = getattr(BulkOperationBuilder, method)
            if not getattr(original, _MARKER, False):
                setattr(BulkOperationBuilder, method, _taking_sort(original, method))
        try:
            from uow import _embedded
        except ImportError:  # a uow from before its embedded writer: it calls bulk_write
            return
        if not getattr(_embedded.bulk_write, _MARKER, False):
            # Called as bulk_write(collection, requests): ordered, like uow's bulk_write.
            _embedded.bulk_write = _counting(_embedded.bulk_write, "bulk_write", "bulk")


def _taking_sort(original: Any, method: str) -> Any:
    """``original`` taking (and refusing) a ``sort`` it cannot apply; counts nothing."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError(f"mongomock cannot apply sort in a bulk {method}")
        return original(self, *args, **kwargs)

    setattr(wrapper, _MARKER, True)
    return wrapper


def _counting(original: Any, method: str, command: str) -> Any:
    bulk = method == "bulk_write"

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Not recording, or inside a counted call (mongomock calling its own
        # public methods): pass straight through.
        if not LOG.active or getattr(_depth, "value", False):
            return original(self, *args, **kwargs)
        args, kwargs = _note(method, command, args, kwargs)
        _depth.value = True
        if bulk:
            _swap_per_write(own=True)
        try:
            return original(self, *args, **kwargs)
        finally:
            _depth.value = False
            if bulk:
                _swap_per_write(own=False)

    setattr(wrapper, _MARKER, True)
    return wrapper


def _swap_per_write(*, own: bool) -> None:
    """Put mongomock's own per-write methods in place (``own``), or the wrappers back."""
    for cls, name, original, wrapper in _PER_WRITE_SWAPS:
        setattr(cls, name, original if own else wrapper)


def _note(
    method: str, command: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Count one outermost call; return the arguments to pass on (iterables listed)."""
    if method == "bulk_write":
        if args:
            requests = list(args[0])
            args = (requests, *args[1:])
        else:
            requests = list(kwargs["requests"])
            kwargs = {**kwargs, "requests": requests}
        ordered = kwargs.get("ordered", args[1] if len(args) > 1 else True)
        LOG.add_bulk(requests, bool(ordered))
        return args, kwargs
    if method == "insert_many":
        if args:
            documents = list(args[0])
            args = (documents, *args[1:])
        else:
            documents = list(kwargs["documents"])
            kwargs = {**kwargs, "documents": documents}
        LOG.counts["insert"] += max(1, -(-len(documents) // MAX_WRITE_BATCH))
        return args, kwargs
    LOG.counts[command] += 1
    if command == "update" or method in ("find_one_and_update", "find_one_and_replace"):
        filter_ = args[0] if args else kwargs.get("filter")
        update = args[1] if len(args) > 1 else kwargs.get("update", kwargs.get("replacement"))
        LOG.add_pair(filter_, update)
    return args, kwargs


def _runs(requests: list[Any], ordered: bool) -> list[tuple[str, int]]:
    """(kind, size) of the commands pymongo would send for a bulk write."""
    return _runs_of([_kind_of(r) for r in requests], ordered)


def _runs_of(kinds: list[str], ordered: bool) -> list[tuple[str, int]]:
    if not ordered:
        return list(Counter(kinds).items())
    runs: list[tuple[str, int]] = []
    for kind in kinds:
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + 1)
        else:
            runs.append((kind, 1))
    return runs


def summarize(counts: Mapping[str, int]) -> str:
    """``find 1, update 1`` in a stable order: reads, writes, then the rest."""
    order = {name: i for i, name in enumerate((*READ_COMMANDS, *WRITE_COMMANDS))}
    items = sorted(
        ((name, n) for name, n in counts.items() if n), key=lambda kv: (order.get(kv[0], 99), kv[0])
    )
    return ", ".join(f"{name} {n:,}" for name, n in items) or "none"
