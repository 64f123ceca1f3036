"""The Session: the unit of work that ties the identity map, the queue and the flush together.

Nothing in uow imports this module; it sits on top of everything else.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

import attrs
from bson import ObjectId
from pymongo import DeleteOne, IndexModel, ReplaceOne, UpdateOne
from pymongo.errors import PyMongoError, WriteConcernError

from . import _backend, _context
from ._diff import check_update, loaded_snapshot, merged_snapshot, stored_form, whole_update
from ._identity import IdentityMap, Key, key_for
from ._persistence import BatchFailed, run_batch
from ._plan import DELETE, INSERT, UPDATE, Batch, WriteOp, build_plan
from ._reading import ExprArg, Query, RemoveQuery
from ._state import (
    DETACHED,
    NO_EXPIRED,
    DocState,
    ObjectState,
    changed_paths,
    expire,
    full_update,
    mutated,
    snapshot_and_update,
    snapshot_of,
    unchanged,
    unexpire,
)
from ._stored import Absent, copy_stored
from ._types import LoadContext
from .document import Document, ModelMeta, Ref, set_state
from .exceptions import (
    FieldNotLoaded,
    FlushError,
    NotFound,
    SessionClosedError,
    StaleDocumentError,
    TooManyRequests,
    TransactionError,
    UowError,
    ValidationError,
)
from .operators import MISSING, UpdateSpec, same
from .query import Expr, QueryField, class_filter

__all__ = ["FlushResult", "Session", "SessionStats"]

logger = logging.getLogger("uow")

# The states as module constants: in Python 3.11 each ``ObjectState.X`` is a class
# attribute lookup through the enum's metaclass (~70 ns), on every hot path here.
_TRANSIENT = ObjectState.TRANSIENT
_PENDING = ObjectState.PENDING
_PERSISTENT = ObjectState.PERSISTENT
_DELETED = ObjectState.DELETED
_DETACHED = ObjectState.DETACHED

D = TypeVar("D", bound=Document)
T = TypeVar("T")


@attrs.frozen
class FlushResult:
    """What one ``flush()`` wrote: documents per kind, and the write commands sent."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    round_trips: int = 0


@attrs.define
class SessionStats:
    """Counters of a session (``Session.stats()``); ``as_dict()`` for logging."""

    identity_map_size: int = 0
    pending_inserts: int = 0
    pending_updates: int = 0
    pending_deletes: int = 0
    round_trips: int = 0
    flushes: int = 0
    queries: int = 0
    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return attrs.asdict(self)


class _ExplicitUpdate:
    """An ``update()`` call waiting for the flush."""

    __slots__ = ("doc", "filter", "operators", "tracked", "upsert")

    def __init__(
        self,
        doc: Document,
        operators: dict[str, str],
        filter: dict[str, Any] | None,
        upsert: bool,
        tracked: bool,
    ) -> None:
        self.doc = doc
        self.operators = operators
        self.filter = filter
        self.upsert = upsert
        self.tracked = tracked


class _InDoubt:
    """Writes that were sent but whose outcome is unknown (no reply came back).

    ``atomic``: they were one transaction's, whose commit outcome stayed unknown,
    so all of them landed or none did.
    """

    __slots__ = ("atomic", "ops")

    def __init__(self, atomic: bool, ops: list[WriteOp]) -> None:
        self.atomic = atomic
        self.ops = ops


# Update operators that give the same document when applied twice.
_IDEMPOTENT = frozenset({"$set", "$unset", "$max", "$min", "$addToSet", "$currentDate"})


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


class Session:
    """A unit of work on one MongoDB database.

    Keeps an identity map (one object per stored document) and a queue of
    pending inserts, updates and deletes; ``flush()`` writes them in one command
    per collection and kind; ``commit()`` makes them durable. Use it as a context
    manager: commit on success, rollback on an exception, then close.

    Args:
        database: a pymongo (or mongomock) ``Database``.
        cache_size: clean documents kept alive by the identity map (LRU); ``None``
            keeps all, ``0`` none beyond what you hold. Changed documents are
            never evicted.
        autoflush: flush pending changes before each query.
        tz_aware: load datetimes as aware (UTC, or ``timezone``).
        timezone: the ``tzinfo`` loaded datetimes are converted to.
        auto_ensure: build each document class's indexes before its first write.
        transactional: ``None``: a transaction per commit when the server has
            them; ``True``: demand them; ``False``: never.
        no_tracking: loaded documents are neither kept nor diffed.
        max_requests: refuse the command that would exceed this many.
        echo: log every command at INFO on the ``uow`` logger, to stderr.
        transaction_retry_s: time limit of ``run_in_transaction`` retries.
        read_preference: a pymongo ``ReadPreference`` for the session's reads.
        read_concern: a pymongo ``ReadConcern`` for its reads and transactions.
        write_concern: a pymongo ``WriteConcern`` for its writes and commits.

    Raises:
        TransactionError: ``transactional=True`` on a server without transactions.
    """

    def __init__(
        self,
        database: Any,
        *,
        cache_size: int | None = 10_000,
        autoflush: bool = True,
        tz_aware: bool = False,
        timezone: Any = None,
        auto_ensure: bool = True,
        transactional: bool | None = None,
        no_tracking: bool = False,
        max_requests: int | None = None,
        echo: bool = False,
        transaction_retry_s: float = 120.0,
        read_preference: Any = None,
        read_concern: Any = None,
        write_concern: Any = None,
    ) -> None:
        if cache_size is not None and (not isinstance(cache_size, int) or cache_size < 0):
            raise ValueError(f"cache_size must be None or an int >= 0, got {cache_size!r}")
        if max_requests is not None and max_requests < 0:
            raise ValueError(f"max_requests must be None or >= 0, got {max_requests!r}")
        options = {
            name: value
            for name, value in (
                ("read_preference", read_preference),
                ("read_concern", read_concern),
                ("write_concern", write_concern),
            )
            if value is not None
        }
        if options:
            database = database.with_options(**options)
        # A transaction ignores the database's concerns (its commands must not carry
        # them): the session's own go to start_transaction instead. Its read
        # preference stays the client's (a transaction reads from the primary).
        self._transaction_options = {
            name: value for name, value in options.items() if name != "read_preference"
        }
        self._db = database
        self._client = database.client
        self._owns_client = False
        self._info = _backend.server_info(database)
        self._max_batch = self._info.max_write_batch_size
        self._ctx = LoadContext(tz_aware, timezone)
        self.autoflush = autoflush
        self.auto_ensure = auto_ensure
        self.no_tracking = no_tracking
        self.max_requests = max_requests
        self.transaction_retry_s = transaction_retry_s
        self.echo = echo
        if transactional is True and not self._info.supports_transactions:
            raise TransactionError(
                "transactional=True, but this server has no transactions (they need a "
                "replica set or a sharded cluster); use transactional=None to write "
                "without one where they are missing"
            )
        self._transactional = (
            self._info.supports_transactions if transactional is None else transactional
        )
        self._map = IdentityMap(cache_size)
        self._inserts: dict[Key, Document] = {}
        self._deletes: dict[Key, Document] = {}
        self._modified: dict[Key, Document] = {}
        self._updates: dict[Any, _ExplicitUpdate] = {}
        self._collections: dict[str, None] = {}
        # Collections of which this session tracked a document with fields that
        # change in place: only there can a query's autoflush have to look for one.
        self._mutable_in: set[str] = set()
        self._handles: dict[str, Any] = {}
        self._stats = SessionStats()
        self._closed = False
        #: whether a flush ever emptied a $currentDate field (see _state.expire)
        self._expired_any = False
        self._driver_session: Any = None
        if not self._info.is_embedded:
            self._driver_session = self._client.start_session(causal_consistency=True)
        self._in_transaction = False
        self._rollback_only: str | None = None
        # What the open transaction did, to undo in memory if it is aborted.
        self._tx_inserted: dict[Key, Document] = {}
        # Documents deleted in the open transaction, with their last committed form.
        self._tx_deleted: dict[Key, tuple[Document, dict[str, Any] | None]] = {}
        # Every write of the open transaction, in order (their documents are held
        # until it ends, so an abort can queue each of them again), and the
        # explicit update() calls it sent.
        self._tx_ops: list[WriteOp] = []
        self._tx_explicit: dict[Any, _ExplicitUpdate] = {}
        # Writes whose outcome is unknown (sent, no reply): settled by the next flush.
        self._in_doubt: list[_InDoubt] = []
        self._context_tokens: list[Any] = []
        self._echo_handler: logging.Handler | None = None
        if echo:
            self._echo_handler = _add_echo_handler()

    # -- construction -------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        database: str,
        host: str | None = None,
        *,
        replica_set: str | None = None,
        cache_size: int | None = 10_000,
        autoflush: bool = True,
        tz_aware: bool = False,
        timezone: Any = None,
        auto_ensure: bool = True,
        transactional: bool | None = None,
        no_tracking: bool = False,
        max_requests: int | None = None,
        echo: bool = False,
        transaction_retry_s: float = 120.0,
        read_preference: Any = None,
        read_concern: Any = None,
        write_concern: Any = None,
        **client_kwargs: Any,
    ) -> Session:
        """A session on ``database`` with a client of its own, closed by ``close()``.

        ``host`` defaults to ``$UOW_MONGODB_URI``, else ``mongodb://localhost:27017``;
        ``mongomock://`` selects the embedded in-process backend.
        """
        client = _backend.make_client(host, replica_set=replica_set, **client_kwargs)
        try:
            session = cls(
                client[database],
                cache_size=cache_size,
                autoflush=autoflush,
                tz_aware=tz_aware,
                timezone=timezone,
                auto_ensure=auto_ensure,
                transactional=transactional,
                no_tracking=no_tracking,
                max_requests=max_requests,
                echo=echo,
                transaction_retry_s=transaction_retry_s,
                read_preference=read_preference,
                read_concern=read_concern,
                write_concern=write_concern,
            )
        except BaseException:
            client.close()
            raise
        session._owns_client = True
        return session

    # -- context manager ----------------------------------------------------------

    def __enter__(self) -> Session:
        self._check_open()
        self._context_tokens.append(_context.push(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._closed:
                return
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            if self._context_tokens:
                _context.pop(self._context_tokens.pop())
            self.close()

    # -- properties ---------------------------------------------------------------

    @property
    def database(self) -> Any:
        """The pymongo (or mongomock) Database this session writes to."""
        return self._db

    @property
    def driver_session(self) -> Any:
        """The pymongo ``ClientSession`` every command carries (None on mongomock)."""
        return self._driver_session

    @property
    def transactional(self) -> bool:
        """Whether commits run in a MongoDB transaction."""
        return self._transactional

    @property
    def closed(self) -> bool:
        return self._closed

    # -- unit of work -------------------------------------------------------------

    def add(self, obj: Document) -> None:
        """Make a new document pending (an insert at the next flush).

        Adding a document this session already tracks is a no-op; a detached one
        (stored, loaded elsewhere) is tracked again as it is now.

        Raises:
            UowError: the document belongs to another open session, or another
                object already stands for the same stored document here.
        """
        self._check_open()
        meta = self._meta(obj)
        state: DocState | None = obj._uow_state
        if state is not None and state.owner is self:
            if state.status is _DELETED:
                raise UowError(
                    f"{type(obj).__name__} {obj.id!r} is deleted in this session; "
                    "rollback() or flush() first, or add a new object with that id"
                )
            return
        if state is not None and state.owner is not None:
            raise UowError(
                f"{type(obj).__name__} {obj.id!r} belongs to another session; "
                "expunge it there first"
            )
        collection = meta.collection
        assert collection is not None  # _meta() refused an abstract class
        if meta.mutable:
            self._mutable_in.add(collection)
        stored_id = _stored_id(meta, obj.id)
        key = key_for(collection, stored_id)
        current = self._map.get(key)
        if current is not None and current is not obj and current._uow_state.status is not _DELETED:
            raise UowError(
                f"another {type(current).__name__} object with id {obj.id!r} is already "
                "in this session; get() it, or expunge it first"
            )
        self._note_collection(meta)
        if (
            state is not None
            and state is not DETACHED
            and state.snapshot is not None
            and current is None
            and self._tx_deleted.get(state.key, (None,))[0] is not obj
        ):
            # Detached (expunged, dropped by clear_cache, or from a closed session):
            # tracked again with the snapshot it had when it was last stored, so the
            # changes made while it was detached are found and written.
            _reattach(state, self, key, stored_id)
            self._modified[key] = obj
            self._map.hold(key, obj)
            return
        if state is DETACHED and current is None:
            # Stored already: track it again as it is now.
            new_state = DocState(self, key, _PERSISTENT, _snapshot(obj), stored_id)
            object.__setattr__(obj, "_uow_state", new_state)
            self._map.add_clean(key, obj)
            return
        # New, or replacing a deleted document of the same id: the deleted one stays
        # queued in _deletes (held strongly there) and the key now finds this one.
        new_state = DocState(self, key, _PENDING, None, stored_id)
        object.__setattr__(obj, "_uow_state", new_state)
        self._inserts[key] = obj
        if current is None:
            self._map.hold(key, obj)
        else:
            self._map.hold(key, obj)

    def add_all(self, objs: Iterable[Document]) -> None:
        """``add()`` each document."""
        for obj in objs:
            self.add(obj)

    def save(self, obj: Document) -> FlushResult:
        """``add(obj)`` then ``flush()``."""
        self.add(obj)
        return self.flush()

    def delete(self, obj: Document) -> None:
        """Delete ``obj`` at the next flush; a pending insert is simply cancelled."""
        self._check_open()
        meta = self._meta(obj)
        state: DocState | None = obj._uow_state
        if state is not None and state.owner is self:
            if state.status is _PENDING:
                self._drop_insert(state.key, obj)
                return
            if state.status is _DELETED:
                return
            state.status = _DELETED
            self._deletes[state.key] = obj
            self._modified.pop(state.key, None)
            self._updates.pop(state.key, None)
            self._map.hold(state.key, obj)
            self._note_collection(meta)
            return
        if state is not None and state.owner is not None:
            raise UowError(
                f"{type(obj).__name__} {obj.id!r} belongs to another session; delete it there"
            )
        if state is None:
            raise UowError(
                f"{type(obj).__name__} {obj.id!r} was never stored; there is nothing to delete"
            )
        # Detached (no_tracking loads, expunged): delete by id.
        key = self._key(meta, obj.id)
        tracked = self._map.get(key)
        if tracked is not None:
            self.delete(tracked)
            return
        new_state = DocState(self, key, _DELETED, _snapshot(obj))
        object.__setattr__(obj, "_uow_state", new_state)
        self._deletes[key] = obj
        self._map.hold(key, obj)
        self._note_collection(meta)

    def update(
        self,
        obj: Document,
        *,
        upsert: bool = False,
        update_ops: Mapping[Any, str] | None = None,
        id_expression: Expr | Mapping[str, Any] | None = None,
        **kwargs: str,
    ) -> None:
        """Queue an explicit update of ``obj`` for the next flush.

        On a tracked document it forces an update even when nothing changed. On a
        document the session does not track it sends every field with its
        operator (``$inc`` adds the field's value); ``upsert=True`` creates the
        document if missing. ``update_ops`` (query fields or names to operators)
        and ``**kwargs`` (names to operators) override the operators;
        ``id_expression`` (an expression or filter dict) picks the target
        instead of ``_id``.
        """
        self._check_open()
        meta = self._meta(obj)
        operators: dict[str, str] = {}
        for target, operator in {**(update_ops or {}), **kwargs}.items():
            name = target.attribute_path if isinstance(target, QueryField) else str(target)
            if name not in meta.by_name:
                raise ValidationError(
                    f"update(): {meta.name} has no field {name!r}", document_class=meta.name
                )
            from .operators import OPERATORS

            if operator not in OPERATORS:
                raise ValidationError(
                    f"update(): {operator!r} is not an operator; use one of {', '.join(OPERATORS)}"
                )
            operators[name] = operator
        filter_: dict[str, Any] | None = None
        if id_expression is not None:
            if isinstance(id_expression, Expr):
                filter_ = dict(id_expression.filter)
            elif isinstance(id_expression, Mapping):
                filter_ = dict(id_expression)
            else:
                raise ValidationError(
                    "update(id_expression=...) takes a query expression or a filter dict"
                )
        state: DocState | None = obj._uow_state
        tracked = state is not None and state.owner is self
        if tracked:
            assert state is not None
            if state.status is _PENDING:
                return  # the insert writes it all
            if state.status is _DELETED:
                raise UowError(f"{meta.name} {obj.id!r} is deleted in this session")
            self._map.hold(state.key, obj)
            key: Any = state.key
        else:
            key = ("untracked", id(obj))
        self._note_collection(meta)
        self._updates[key] = _ExplicitUpdate(obj, operators, filter_, upsert, tracked)

    def flush(self) -> FlushResult:
        """Write every pending change: inserts, then updates, then deletes.

        One write command per collection and kind (split only at the server's
        ``maxWriteBatchSize``). Documents are marked clean only once their write
        landed.

        Raises:
            FlushError: (or ``DuplicateKeyError``, ``StaleDocumentError``) a write
                failed; the error says what was applied, and everything not applied
                stays queued. Also raised, before anything is sent, when an earlier
                write whose outcome is unknown cannot be checked (see ``_reconcile``).
        """
        self._check_open()
        if self._in_doubt:
            self._reconcile()
        ops = self._organize()
        self._stats.flushes += 1
        if not ops:
            return FlushResult()
        plan = build_plan(ops, list(self._collections), self._max_batch)
        if self.auto_ensure:
            for cls in {type(op.doc) for op in ops if op.kind != DELETE}:
                self._auto_ensure(cls)
        self._begin_transaction_if_needed()
        done: list[WriteOp] = []
        round_trips = 0
        for position, batch in enumerate(plan):
            try:
                result = run_batch(
                    batch, self._handle(batch.collection), self._driver_session, self._send
                )
                stale, guessed = self._stale_ops(batch, result)
                if stale:
                    raise self._stale_failure(batch, stale, plan[position + 1 :], guessed)
            except BatchFailed as failed:
                round_trips += 1
                self._stats.round_trips += 1
                self._batch_failed(failed, ops, done, plan[position + 1 :])
                raise failed.error from failed.error.cause
            except BaseException:
                # Refused before it was sent (TooManyRequests) or interrupted: the
                # batches before it landed and are marked so; the rest stay queued.
                sent = {id(op) for op in done}
                _put_back_versions([op for op in ops if id(op) not in sent])
                self._finalize(done)
                raise
            round_trips += 1
            self._stats.round_trips += 1
            done.extend(batch.ops)
        self._finalize(done)
        counts = {INSERT: 0, UPDATE: 0, DELETE: 0}
        for op in done:
            counts[op.kind] += 1
        return FlushResult(counts[INSERT], counts[UPDATE], counts[DELETE], round_trips)

    def _batch_failed(
        self, failed: BatchFailed, ops: list[WriteOp], done: list[WriteOp], later: list[Batch]
    ) -> None:
        """Bring the session in line with a failed batch and complete its error."""
        error = failed.error
        if self._in_transaction:
            # The server aborted the transaction: nothing of it (earlier flushes
            # included) landed. Every document goes back to its last committed version.
            _put_back_versions(reversed([*self._tx_ops, *ops]))
            unflushed = self._transaction_failed()
            error.transaction_aborted = True
            error.applied = []
            error.not_applied = _unique_docs([*unflushed, *(op.doc for op in ops)])
            error.args = (
                f"{error.args[0]} The server aborted the transaction: every change since "
                "the last commit is unflushed again and stays queued.",
            )
            return
        landed = (
            failed.landed_ops
            if failed.landed_ops is not None
            else failed.batch.ops[: failed.applied]
        )
        kept = {id(op) for op in done} | {id(op) for op in landed}
        _put_back_versions([op for op in ops if id(op) not in kept])
        self._finalize(done + landed)
        # What landed: the earlier batches of this flush, and the failed one's part.
        error.applied = _unique_docs([*(op.doc for op in done), *error.applied])
        if failed.in_doubt:
            self._in_doubt.append(_InDoubt(False, list(failed.batch.ops)))
        # The batches after the failed one were not sent: they stay queued too.
        error.not_applied = _unique_docs(
            [*error.not_applied, *(op.doc for batch in later for op in batch.ops)]
        )

    def commit(self) -> None:
        """Flush, then commit the open transaction (if any).

        A commit that ends in ``UnknownTransactionCommitResult`` is retried
        (committing twice is safe) within ``transaction_retry_s``.

        Raises:
            TransactionError: the server aborted the transaction (``retryable`` when
                it was a ``TransientTransactionError``: run the work again); or the
                commit's outcome stayed unknown (its changes are queued again, in
                doubt: the next flush settles them); or it committed but its write
                concern failed; or a joined ``unit_of_work`` failed and
                ``rollback()`` was not called yet.
            FlushError: the flush failed; see ``flush()``.
        """
        self._check_open()
        if self._rollback_only is not None:
            raise TransactionError(
                f"this session cannot commit: {self._rollback_only}. Call rollback() "
                "first: MongoDB has no savepoints, so half a unit of work is never committed"
            )
        self.flush()
        concern_error = self._commit_transaction() if self._in_transaction else None
        self._end_transaction_bookkeeping()
        if self._transactional:
            for obj in self._map.objects():
                state = obj._uow_state
                state.committed = state.snapshot
        if concern_error is not None:
            raise TransactionError(
                f"the transaction committed, but its write concern was not satisfied: "
                f"{concern_error}. Its changes are written and not queued again; that "
                "they survive a failover is not assured.",
                retryable=False,
            ) from concern_error

    def rollback(self) -> None:
        """Abort any open transaction, drop the queue, and restore tracked documents.

        Every tracked document goes back to what the database now holds: the last
        committed state inside a transaction, the last flushed one without.
        Pending inserts become ``TRANSIENT``.
        """
        self._check_open()
        self._rollback_only = None
        # Unknown outcomes are forgotten with the queue: what the session holds
        # afterwards is the last state it knew the database to have.
        self._in_doubt.clear()
        aborted = self._in_transaction
        if aborted:
            self._abort_transaction()
        for key, obj in list(self._inserts.items()):
            self._drop_insert(key, obj)
        self._undelete_queued()
        self._updates.clear()
        self._modified.clear()
        if aborted:
            for key, obj in self._tx_inserted.items():
                self._map.discard(key, obj)
                object.__setattr__(obj, "_uow_state", None)
            for key, (obj, committed) in self._tx_deleted.items():
                # Its delete was aborted: tracked again, as last committed.
                object.__setattr__(obj, "_uow_state", DocState(self, key, _PERSISTENT, committed))
                self._map.add_clean(key, obj)
        self._tx_inserted.clear()
        self._tx_deleted.clear()
        self._tx_ops.clear()
        self._tx_explicit.clear()
        for obj in self._map.objects():
            state = obj._uow_state
            target = state.committed if aborted else state.snapshot
            if target is None:
                continue
            if target is not state.snapshot or not unchanged(obj, target):
                _restore(obj, target, self._ctx)
            state.snapshot = target
            state.modified = False
            if not state.pinned:
                self._map.add_clean(state.key, obj)

    def _undelete_queued(self) -> None:
        """Queued deletes are dropped: their documents are persistent again."""
        for key, obj in self._deletes.items():
            state: DocState = obj._uow_state
            state.status = _PERSISTENT
            if state.modified or state.pinned:
                self._map.hold(key, obj)
                if state.modified:
                    self._modified[key] = obj
            else:
                self._map.add_clean(key, obj)
        self._deletes.clear()

    def close(self) -> None:
        """Release everything; a second ``close()`` does nothing. ``end()`` is an alias.

        Unflushed changes are dropped (a ``with`` block commits before closing),
        and so is an uncommitted transaction's work: a WARNING on the ``uow``
        logger then says how many changes were dropped.
        """
        if self._closed:
            return
        dropped = self._unsaved_changes()
        try:
            if self._in_transaction:
                self._abort_transaction()
        finally:
            self._closed = True
            if dropped:
                logger.warning(
                    "closing %r dropped %d unsaved change(s): flush() and commit() "
                    "before close(), or rollback() to drop them on purpose",
                    self,
                    dropped,
                )
            detached = [*self._map.objects(), *self._deletes.values()]
            if self._expired_any:  # a pass only for sessions that ever expired a field
                for obj in detached:
                    unexpire(obj, obj._uow_state)
            aborted = self._tx_ops or self._tx_inserted or self._tx_deleted
            for obj in detached:
                state = obj._uow_state
                if aborted:
                    # What the database holds once the transaction is gone.
                    state.snapshot = state.committed
                state.owner = None  # detached: it keeps its snapshot (see add())
                state.status = _DETACHED
            for obj in self._inserts.values():
                set_state(obj, None)
            for obj in self._tx_inserted.values():
                set_state(obj, None)  # its insert was aborted with the transaction
            self._map.clear()
            self._inserts.clear()
            self._deletes.clear()
            self._modified.clear()
            self._updates.clear()
            self._tx_ops.clear()
            self._tx_explicit.clear()
            self._in_doubt.clear()
            if self._driver_session is not None:
                self._driver_session.end_session()
                self._driver_session = None
            if self._owns_client:
                self._client.close()
            if self._echo_handler is not None:
                _remove_echo_handler(self._echo_handler)
                self._echo_handler = None

    end = close

    # -- identity map management --------------------------------------------------

    def expunge(self, obj: Document) -> None:
        """Stop tracking ``obj`` (it becomes ``DETACHED``); its queued work is dropped."""
        self._check_open()
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self:
            raise UowError(f"{type(obj).__name__} {obj.id!r} is not in this session")
        key = state.key
        self._drop_doubts(obj)
        if state.status is _PENDING:
            self._drop_insert(key, obj)
            return
        self._map.discard(key, obj)
        if self._deletes.get(key) is obj:
            del self._deletes[key]
            replacing = self._inserts.get(key)
            if replacing is not None:  # the insert of the same id is no replace any more
                self._map.hold(key, replacing)
        else:
            self._modified.pop(key, None)
            self._updates.pop(key, None)
        unexpire(obj, state)
        state.owner = None  # detached: it keeps its snapshot (see add())
        state.status = _DETACHED

    def expunge_all(self) -> None:
        """``expunge()`` every tracked document."""
        self._check_open()
        everything = [*self._map.objects(), *self._inserts.values(), *self._deletes.values()]
        for obj in everything:
            if obj._uow_state is not None and obj._uow_state.owner is self:
                self.expunge(obj)

    def refresh(self, obj: Document) -> None:
        """Reload ``obj`` from the database, discarding its local changes (no autoflush).

        Raises:
            NotFound: the document is no longer stored.
        """
        self._check_open()
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self or state.status is _PENDING:
            raise UowError(f"{type(obj).__name__} {obj.id!r} is not a stored document here")
        meta = self._meta(obj)
        raw = self._find_one(meta, {"_id": state.id})
        if raw is None:
            raise NotFound(f"{meta.name} {obj.id!r} is no longer stored")
        self._drop_doubts(obj)
        fresh = type(obj)._uow_load(raw, self._ctx)
        _copy_fields(fresh, obj)
        state.snapshot = _snapshot(obj)
        state.modified = False
        state.expired = NO_EXPIRED
        self._modified.pop(state.key, None)
        self._updates.pop(state.key, None)
        if state.status is _PERSISTENT and not state.pinned:
            self._map.add_clean(state.key, obj)

    def clear_queue(self) -> None:
        """Forget queued inserts, deletes and explicit updates.

        In-memory changes of tracked documents stay (``rollback()`` undoes them);
        a forgotten insert is ``TRANSIENT``.
        """
        self._check_open()
        for key, obj in list(self._inserts.items()):
            self._drop_insert(key, obj)
        self._undelete_queued()
        for key, explicit in self._updates.items():
            state = explicit.doc._uow_state
            if explicit.tracked and not state.modified and not state.pinned:
                self._map.release(key, explicit.doc)
        self._updates.clear()

    def clear_cache(self) -> None:
        """Forget clean documents (they become ``DETACHED``); changed ones stay."""
        self._check_open()
        for obj in self._map.objects():
            state = obj._uow_state
            if state.status is _PERSISTENT and not self._has_change(obj, state):
                self._map.discard(state.key)
                self._modified.pop(state.key, None)
                unexpire(obj, state)
                state.owner = None  # detached: it keeps its snapshot (see add())
                state.status = _DETACHED

    def clone(self, obj: D) -> D:
        """A transient copy of ``obj`` with a new id (deep: nothing is shared)."""
        self._check_open()
        meta = self._meta(obj)
        if obj._uow_absent:
            names = ", ".join(sorted(obj._uow_absent))
            raise FieldNotLoaded(
                f"clone(): {meta.name} {obj.id!r} was loaded without {names} (a query "
                "with .fields(...)): a copy would store defaults in their place. "
                "refresh() it, or load it whole, before cloning"
            )
        copy = type(obj)._uow_load(copy_stored(obj._uow_to_bson()), self._ctx)
        id_field = meta.id_field
        assert id_field is not None
        default = id_field.attribute.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            new_id = default.factory()  # type: ignore[union-attr]
        else:
            raise UowError(
                f"clone(): {meta.name}.id has no factory to make a new id; copy it yourself"
            )
        object.__setattr__(copy, "id", new_id)
        return copy

    def clear_collection(self, *classes: type[Document]) -> int:
        """Delete every stored document of ``classes`` now; returns how many."""
        self._check_open()
        removed = 0
        # Inside the session's transaction, so that rollback() undoes it too.
        self._begin_transaction_if_needed()
        for cls in classes:
            meta = cls._uow_meta
            filter_ = class_filter(meta, exclude_subclasses=False)
            collection = self._collection(meta)
            delete_all = functools.partial(collection.delete_many, filter_, **self._session_kw())
            result = self._send("delete", collection.name, delete_all, filter_)
            removed += result.deleted_count
            for obj in self._map.objects():
                if obj._uow_state.key[0] == meta.collection and isinstance(obj, cls):
                    self._forget(obj)
        return removed

    def ensure_indexes(self, cls: type[Document]) -> list[str]:
        """Build the indexes ``cls`` declares; returns their names."""
        self._check_open()
        meta = cls._uow_meta
        if not meta.indexes or meta.collection is None:
            return []
        models = [IndexModel(index.stored_keys(cls), **index.options) for index in meta.indexes]
        collection = self._collection(meta)
        names: list[str] = self._send(
            "createIndexes",
            collection.name,
            lambda: collection.create_indexes(models, **self._index_session_kw()),
            [index.keys for index in meta.indexes],
        )
        _ensured_for(self._client).add((self._db.name, meta.collection))
        return names

    def get_indexes(self, cls: type[Document]) -> dict[str, Any]:
        """The indexes of ``cls``'s collection, as pymongo's ``index_information()``."""
        self._check_open()
        collection = self._collection(cls._uow_meta)
        info: dict[str, Any] = self._send(
            "listIndexes",
            collection.name,
            lambda: collection.index_information(**self._index_session_kw()),
            None,
        )
        return info

    # -- inspection ---------------------------------------------------------------

    def state(self, obj: Document) -> ObjectState:
        """Where ``obj`` stands with this session."""
        self._check_open()
        state: DocState | None = obj._uow_state
        if state is None:
            return _TRANSIENT
        if state.owner is not self:
            return _DETACHED
        return state.status

    def is_dirty(self, obj: Document) -> bool:
        """Whether a tracked stored document has unflushed changes."""
        self._check_open()
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self or state.status is not _PERSISTENT:
            return False
        return state.key in self._updates or self._has_change(obj, state)

    def dirty_fields(self, obj: Document) -> list[str]:
        """Top-level attribute names with unflushed changes, sorted."""
        self._check_open()
        return sorted({path.split(".", 1)[0] for path in self._changed_paths(obj)})

    def original_value(self, obj: Document, name: str) -> Any:
        """The value of field ``name`` as last loaded or flushed."""
        self._check_open()
        state: DocState | None = obj._uow_state
        meta = self._meta(obj)
        if name not in meta.by_name:
            raise AttributeError(f"{meta.name} has no field {name!r}")
        if state is None or state.owner is not self or state.snapshot is None:
            return getattr(obj, name)
        original = type(obj)._uow_load(stored_form(state.snapshot), self._ctx, obj._uow_absent)
        return getattr(original, name)

    def has_changes(self) -> bool:
        """Whether a flush now would write anything."""
        self._check_open()
        if self._inserts or self._deletes or self._updates:
            return True
        return any(
            self._has_change(obj, obj._uow_state)
            for obj in self._map.objects()
            if obj._uow_state.status is _PERSISTENT
        )

    def what_changed(self) -> dict[tuple[str, Any], dict[str, tuple[Any, Any]]]:
        """Unflushed changes of persistent documents: ``{(collection, id): {path: (old, new)}}``."""
        self._check_open()
        changes: dict[tuple[str, Any], dict[str, tuple[Any, Any]]] = {}
        for obj in self._map.objects():
            if obj._uow_state.status is not _PERSISTENT:
                continue
            paths = self._changed_paths(obj)
            if paths:
                state = obj._uow_state
                changes[(state.key[0], state.id)] = paths
        return changes

    def stats(self) -> SessionStats:
        """A copy of the session's counters, with the queue sizes as of now."""
        self._check_open()
        stats = attrs.evolve(self._stats)
        stats.identity_map_size = len(self._map)
        stats.pending_inserts = len(self._inserts)
        stats.pending_deletes = len(self._deletes)
        dirty = {
            obj._uow_state.key
            for obj in self._map.objects()
            if obj._uow_state.status is _PERSISTENT and self._has_change(obj, obj._uow_state)
        }
        stats.pending_updates = len(dirty | set(self._updates))
        return stats

    # -- reading ------------------------------------------------------------------

    @overload
    def get(self, cls: type[D], id: Any) -> D | None: ...
    @overload
    def get(self, cls: type[D], id: Any, *, default: D) -> D: ...

    def get(self, cls: type[D], id: Any, **kwargs: Any) -> D | None:
        """The document of ``cls`` with this id, or None.

        The identity map answers first (no query on a hit; a pending document is
        found too); a miss reads the database.
        """
        self._check_open()
        meta = cls._uow_meta
        stored_id = _stored_id(meta, id)
        key = self._key(meta, stored_id)
        found = self._map.get(key)
        if found is not None:
            state = found._uow_state
            if state.status is _DELETED or not isinstance(found, cls):
                return cast("D | None", kwargs.get("default"))
            if not state.expired:
                self._stats.cache_hits += 1
                return found
        self._stats.cache_misses += 1
        filter_ = {"_id": stored_id, **class_filter(meta, exclude_subclasses=False)}
        raw = self._find_one(meta, filter_)
        if raw is None:
            return cast("D | None", kwargs.get("default"))
        return self._load(cls, raw)

    def query(self, cls: type[D], exclude_subclasses: bool = False) -> Query[D]:
        """A query on ``cls`` (and its subclasses, unless ``exclude_subclasses``)."""
        self._check_open()
        return Query(self, cls, exclude_subclasses)

    def filter(self, cls: type[D], /, *exprs: ExprArg, **lookups: Any) -> list[D]:
        """Every ``cls`` document matching the expressions and lookups."""
        return self.query(cls).filter(*exprs, **lookups).all()

    def all(self, cls: type[D]) -> list[D]:
        """Every stored ``cls`` document."""
        return self.query(cls).all()

    def count(self, cls: type[D], /, *exprs: ExprArg, **lookups: Any) -> int:
        """How many ``cls`` documents match."""
        return self.query(cls).filter(*exprs, **lookups).count()

    def remove_query(self, cls: type[D]) -> RemoveQuery[D]:
        """A delete by filter: ``s.remove_query(User).filter(...).execute()``."""
        self._check_open()
        return RemoveQuery(self, cls)

    @overload
    def dereference(self, ref: None, allow_none: bool = False) -> None: ...
    @overload
    def dereference(self, ref: Ref[D] | D, allow_none: Literal[False] = False) -> D: ...
    @overload
    def dereference(self, ref: Ref[D] | D | None, allow_none: bool = False) -> D | None: ...
    def dereference(self, ref: Ref[D] | D | None, allow_none: bool = False) -> D | None:
        """The document a ``Ref`` points at, through the identity map.

        ``None`` (an empty ``Ref | None`` field) gives ``None``: there is nothing
        to load, and ``s.dereference(doc.parent)`` needs no test first.

        Raises:
            NotFound: the document is gone (unless ``allow_none``).
        """
        self._check_open()
        if ref is None:
            return None
        if isinstance(ref, Document):
            return ref
        if not isinstance(ref, Ref):
            raise ValidationError(f"dereference() takes a uow.Ref, got {type(ref).__name__}")
        found = self.get(ref.cls, ref.id)
        if found is None and not allow_none:
            raise NotFound(
                f"{ref.cls.__name__} {ref.id!r} is not stored (a dangling reference); "
                "pass allow_none=True to get None instead"
            )
        return found

    # -- internals: tracking --------------------------------------------------------

    def on_modified(self, obj: Document, state: DocState) -> None:
        """A tracked document was assigned to: hold it until flushed."""
        if state.status is _PERSISTENT:
            self._map.hold(state.key, obj)
            self._modified[state.key] = obj
            self._collections.setdefault(state.key[0], None)

    def on_expired_read(self, obj: Document, state: DocState) -> None:
        """A field the server set at the last flush ($currentDate) is read: load
        those fields (one find of them alone; the rest of ``obj``, changed or not,
        stays as it is). Called by ``Document.__getattr__``."""
        self._check_open()
        meta = self._meta(obj)
        expired = state.expired
        raw = self._find_one(meta, {"_id": state.id}, projection=dict.fromkeys(expired, 1))
        if raw is None:  # deleted by someone else: what this session had stays
            unexpire(obj, state)
            return
        others = frozenset(f.name for f in meta.fields if f.key not in expired and f.key != "_id")
        fresh = type(obj)._uow_load(raw, self._ctx, others)
        loaded = fresh._uow_absent or ()
        absent = set(obj._uow_absent or ())
        snapshot = dict(state.snapshot or {})
        for key in expired:
            field = meta.by_key[key]
            if field.name in loaded or field.name not in absent:
                continue
            value = getattr(fresh, field.name)
            object.__setattr__(obj, field.name, value)
            absent.discard(field.name)
            snapshot[key] = field.spec.dump(value) if field.spec.needs_dump else value
        object.__setattr__(obj, "_uow_absent", frozenset(absent) or None)
        if state.committed is state.snapshot:
            state.committed = snapshot
        state.snapshot = snapshot
        state.expired = NO_EXPIRED

    def on_dropped(self, obj: Document, state: DocState) -> None:
        """The finalizer's look at a document nobody holds: keep it if it changed."""
        if self._closed:
            return
        if state.status is _PERSISTENT and self._differs(obj, state):
            state.pinned = True
            self._map.hold(state.key, obj)
            self._modified[state.key] = obj
            return
        self._map.forget_dead(state.key, obj)

    def _unsaved_changes(self) -> int:
        """How many documents hold work a close would drop: queued or changed ones,
        and those written in a transaction that is not committed."""
        keys = {*self._inserts, *self._deletes, *self._updates, *self._modified}
        keys.update(op.doc._uow_state.key for op in self._tx_ops if op.doc._uow_state is not None)
        if self._mutable_in:
            for obj in self._map.objects():
                state = obj._uow_state
                if (
                    state.key not in keys
                    and state.status is _PERSISTENT
                    and type(obj)._uow_meta.mutable
                    and state.snapshot is not None
                    and obj._uow_mutated(state.snapshot)
                ):
                    keys.add(state.key)
        return len(keys)

    def _differs(self, obj: Document, state: DocState) -> bool:
        """Whether ``obj`` is not what its snapshot says (a value assigned back is no change)."""
        snapshot = state.snapshot
        if snapshot is None:
            return True
        if state.modified:
            return not unchanged(obj, snapshot)
        return type(obj)._uow_meta.mutable and mutated(obj, snapshot)

    def _has_change(self, obj: Document, state: DocState) -> bool:
        return state.key in self._updates or self._differs(obj, state)

    def _changed_paths(self, obj: Document) -> dict[str, tuple[Any, Any]]:
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self or state.snapshot is None:
            return {}
        if not self._differs(obj, state):
            return {}
        return changed_paths(type(obj)._uow_meta, state.snapshot, obj._uow_to_bson())

    def _load(
        self, cls: type[D], raw: Mapping[str, Any], absent: frozenset[str] | None = None
    ) -> D:
        """The tracked object for a stored document: the one already loaded, or a new one."""
        if self.no_tracking:
            obj = cls._uow_load(raw, self._ctx, absent)
            set_state(obj, DETACHED)
            return obj
        meta = cls._uow_meta
        collection = meta.collection
        assert collection is not None
        stored_id = raw["_id"]
        # key_for, inline (a call less per document loaded)
        if type(stored_id) is ObjectId:
            key: Key = (collection, stored_id.binary, "oid")
        else:
            key = (collection, stored_id)
        identity = self._map
        if key in identity.held or identity.weak:
            found = identity.get(key)  # a hit refreshes its place in the LRU
            if found is not None:
                self._merge_loaded(found, raw, absent)
                return found  # type: ignore[no-any-return]
        obj = cls._uow_load(raw, self._ctx, absent)
        loaded = type(obj)._uow_meta  # a subclass's, when _cls names one
        # No unknown key (none kept aside) and as many as known: exactly the known keys.
        if (
            absent is None
            and obj._uow_extra is None
            and len(raw) == loaded.raw_snapshot_size
            and type(raw) is dict
        ):
            # What the driver gave us is the snapshot: the load copied every list
            # and dict it handed out, and dumping the object would give it back.
            snapshot: dict[str, Any] = raw
        else:
            snapshot = loaded_snapshot(loaded, obj, raw)
        set_state(obj, DocState(self, key, _PERSISTENT, snapshot, stored_id))
        identity.add_loaded(key, obj)
        if loaded.mutable:
            self._mutable_in.add(collection)
        return obj

    def _merge_loaded(
        self, obj: Any, raw: Mapping[str, Any], absent: frozenset[str] | None
    ) -> None:
        """A query met a document already loaded: never overwrite unflushed changes.

        Only what the server decides ($currentDate fields) and fields a partial load
        left out are taken from the new result, and only while the object is clean.
        """
        state: DocState = obj._uow_state
        if state.status is not _PERSISTENT:
            return
        fill = set(obj._uow_absent or ()) - set(absent or ())
        if not state.expired and not fill:
            return
        if self._has_change(obj, state) and not (state.expired and not fill):
            return
        fresh = type(obj)._uow_load(raw, self._ctx, absent)
        meta: ModelMeta = type(obj)._uow_meta
        names = {meta.by_key[k].name for k in state.expired if k in meta.by_key} | fill
        for name in names:
            if name in (fresh._uow_absent or ()):
                continue
            object.__setattr__(obj, name, getattr(fresh, name))
        if fill:
            remaining = frozenset(set(obj._uow_absent or ()) - fill) or None
            object.__setattr__(obj, "_uow_absent", remaining)
        state.expired = NO_EXPIRED
        state.snapshot = merged_snapshot(meta, obj, state.snapshot or {}, raw, names)

    # -- internals: flush -----------------------------------------------------------

    def _organize(self) -> list[WriteOp]:
        """The queue and the tracked documents' changes as write operations.

        Building an update bumps a versioned document's version in memory; if a
        later document is refused (``ValidationError``), those are put back.
        """
        ops: list[WriteOp] = []
        try:
            self._collect_ops(ops)
        except BaseException:
            _put_back_versions(ops)
            raise
        return ops

    def _collect_ops(self, ops: list[WriteOp]) -> None:
        replaced: set[Key] = set()
        for key, obj in self._inserts.items():
            meta = type(obj)._uow_meta
            obj._uow_check_deep(meta.name, "")
            doc = obj._uow_to_bson()
            data = snapshot_of(meta, doc)
            if key in self._deletes:
                # Deleted and re-added with the same id: one replace, not a colliding insert.
                replaced.add(key)
                request: Any = ReplaceOne({"_id": doc["_id"]}, doc)
                ops.append(WriteOp(UPDATE, key[0], obj, request, data, data))
            else:
                ops.append(WriteOp(INSERT, key[0], obj, doc, data, data))
        self._collect_updates(ops)
        for explicit in self._updates.values():
            if not explicit.tracked:
                ops.append(self._untracked_update_op(explicit))
        for key, obj in self._deletes.items():
            if key in replaced:
                continue
            filter_ = self._target_filter(obj, obj._uow_state)
            op = WriteOp(DELETE, key[0], obj, DeleteOne(filter_), None, filter_)
            op.checked = True
            ops.append(op)

    def _settle(self, obj: Document, state: DocState) -> None:
        """Assigned to, but nothing to write: clean again, and evictable again."""
        state.modified = False
        self._modified.pop(state.key, None)
        if not state.pinned:
            self._map.release(state.key, obj)

    def _collect_updates(self, ops: list[WriteOp]) -> None:
        """The updates of documents assigned to, explicitly updated, or changed in place.

        In that order: assignments and explicit updates as queued, then the rest
        of the map. A document nobody assigned to, without fields that change in
        place, is not looked at.
        """
        seen: set[int] = set()
        queued = [*self._modified.values()]
        queued += [u.doc for u in self._updates.values() if u.tracked]
        for obj in queued:
            if id(obj) not in seen:
                seen.add(id(obj))
                if obj._uow_state.status is _PERSISTENT:
                    op = self._update_op(obj)
                    if op is not None:
                        ops.append(op)
        persistent = _PERSISTENT
        for obj in self._map.objects():
            if not type(obj)._uow_meta.mutable:
                continue
            state = obj._uow_state
            if state.status is not persistent or (seen and id(obj) in seen):
                continue
            snapshot = state.snapshot
            if snapshot is not None and not obj._uow_mutated(snapshot):
                continue
            op = self._update_op(obj, changed=True)
            if op is not None:
                ops.append(op)

    def _update_op(self, obj: Document, *, changed: bool = False) -> WriteOp | None:
        """The update that persists ``obj``'s change, or None (``changed``: known to be)."""
        state: DocState = obj._uow_state
        meta: ModelMeta = type(obj)._uow_meta
        explicit = self._updates.get(state.key)
        old = state.snapshot
        assert old is not None
        if not (changed or explicit is not None or state.modified or mutated(obj, old)):
            return None
        # Only what can differ is compared: the fields assigned to (when that is all
        # that marked the document) and those that change in place.
        if explicit is not None:
            assigned: int | None = None
        elif state.modified:
            assigned = state.assigned
        else:
            assigned = 0
        # A document assigned to may also have changed in place. When it did not (one
        # comparison tells), its in-place fields are the snapshot's: valid as they
        # are (nothing of them is written), and not compared again.
        in_place = not (assigned and meta.mutable) or changed or mutated(obj, old)
        # The new snapshot, diffed: the update's values share nothing with the live
        # document, so the statement kept for errors and unknown outcomes stays as sent.
        if assigned is None:
            new, update = whole_update(meta, obj, old)
        else:
            keys = meta.keys_to_compare(assigned, in_place)
            new, update = snapshot_and_update(meta, obj, old, keys)
        if explicit is not None and explicit.operators:
            update = _with_operators(meta, update, old, new, explicit.operators)
        if in_place and update:
            check_update(meta, obj, update)
        version = meta.version_field
        if not update:
            if explicit is None:
                if version is not None and not same(
                    old.get(version.key, MISSING), new.get(version.key, MISSING)
                ):
                    # Only the version differs: never adopt a version nobody wrote.
                    _restore(obj, old, self._ctx)
                self._settle(obj, state)
                return None
            update = full_update(meta, new, explicit.operators, as_new=False)
            if not update:
                return None
        version_before: Any = None
        if version is not None:
            # Optimistic concurrency: the write is conditional on the version loaded
            # (see _target_filter) and bumps it.
            version_before = getattr(obj, version.name)
            loaded = old.get(version.key, MISSING)
            if type(loaded) is Absent:
                loaded = loaded.value
            start = loaded if isinstance(loaded, int) and not isinstance(loaded, bool) else 0
            bumped = start + 1
            object.__setattr__(obj, version.name, bumped)
            new[version.key] = version.spec.dump(bumped) if version.spec.needs_dump else bumped
            update.setdefault("$set", {})[version.key] = bumped
        for key in meta.current_date_keys:
            update.setdefault("$currentDate", {})[key] = True
        filter_ = self._target_filter(obj, state, old)
        own_target = explicit is None or explicit.filter is None
        if explicit is not None and explicit.filter is not None:
            filter_ = explicit.filter
        request = UpdateOne(filter_, update)
        op = WriteOp(UPDATE, state.key[0], obj, request, new, update)
        op.checked = own_target
        op.version_before = version_before
        return op

    def _untracked_update_op(self, explicit: _ExplicitUpdate) -> WriteOp:
        obj = explicit.doc
        meta: ModelMeta = type(obj)._uow_meta
        obj._uow_check_deep(meta.name, "")
        doc = obj._uow_to_bson()
        operators = explicit.operators
        if obj._uow_state is not None:
            # Loaded (by a no_tracking session, or detached since): its values are
            # what is stored, not deltas, so every field is sent with $set.
            absolute = {
                f.name: "$set"
                for f in meta.fields
                if f.on_update is not None and f.on_update != "$currentDate"
            }
            operators = {**absolute, **operators}
        update = full_update(meta, doc, operators, as_new=True)
        filter_ = explicit.filter
        if filter_ is None:
            # The document stands for the stored one: its shard key targets one shard
            # (and an upsert on a sharded collection needs the whole shard key).
            filter_ = {"_id": doc["_id"]}
            for name in meta.shard_key:
                key = meta.by_name[name].key
                if key in doc:
                    filter_[key] = doc[key]
        request = UpdateOne(filter_, update, upsert=explicit.upsert)
        assert meta.collection is not None
        return WriteOp(UPDATE, meta.collection, obj, request, None, update)

    def _target_filter(
        self, obj: Document, state: DocState, old: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``_id``, the shard key as loaded (one shard), and the version loaded."""
        filter_: dict[str, Any] = {"_id": state.id}
        meta: ModelMeta = type(obj)._uow_meta
        version = meta.version_field
        if (meta.shard_key or version is not None) and state.snapshot is not None:
            loaded = old if old is not None else state.snapshot
            for name in meta.shard_key:
                key = meta.by_name[name].key
                if key in loaded:
                    value = loaded[key]
                    filter_[key] = {"$exists": False} if type(value) is Absent else value
            if version is not None:
                filter_[version.key] = _version_condition(version, loaded)
        return filter_

    def _finalize(self, ops: list[WriteOp]) -> None:
        """Mark the documents whose writes landed: clean, persistent, or gone.

        Inside a transaction they are held (never evicted) until it ends, so that
        an abort can queue every one of them again.
        """
        in_transaction = self._in_transaction
        if in_transaction:
            self._tx_ops.extend(ops)
        for op in ops:
            obj = op.doc
            state: DocState | None = obj._uow_state
            if state is None or state.owner is not self:
                continue  # an untracked explicit update
            key = state.key
            if op.kind == INSERT or isinstance(op.request, ReplaceOne):
                replaced = self._deletes.pop(key, None) if self._deletes else None
                if replaced is not None and replaced is not obj:
                    unexpire(replaced, replaced._uow_state)
                    object.__setattr__(replaced, "_uow_state", DETACHED)
                self._inserts.pop(key, None)
                state.status = _PERSISTENT
                state.snapshot = op.snapshot
                # Assigned to while pending: that is in the insert. Left set, the
                # flag would keep the next assignment from queueing the document.
                state.modified = False
                if in_transaction:
                    self._tx_inserted.setdefault(key, obj)
                    self._map.hold(key, obj)
                else:
                    state.committed = op.snapshot
                    self._map.add_clean(key, obj)
            elif op.kind == UPDATE:
                state.snapshot = op.snapshot
                state.modified = False
                self._modified.pop(key, None)
                explicit = self._updates.pop(key, None)
                meta: ModelMeta = type(obj)._uow_meta
                if meta.current_date_keys:
                    expire(meta, obj, state)
                    self._expired_any = True
                if in_transaction:
                    if explicit is not None:
                        self._tx_explicit.setdefault(key, explicit)
                    self._map.hold(key, obj)
                else:
                    state.committed = op.snapshot
                    if state.pinned:
                        self._map.hold(key, obj)
                    else:
                        self._map.add_clean(key, obj)
            else:
                self._deletes.pop(key, None)
                self._map.discard(key, obj)
                unexpire(obj, state)
                if in_transaction:
                    self._tx_deleted[key] = (obj, state.committed)
                    object.__setattr__(obj, "_uow_state", _detached_copy(state))
                else:
                    object.__setattr__(obj, "_uow_state", DETACHED)
        untracked = {id(op.doc) for op in ops}
        for key in [k for k, u in self._updates.items() if not u.tracked]:
            explicit = self._updates[key]
            if id(explicit.doc) in untracked:
                if in_transaction:
                    self._tx_explicit.setdefault(key, explicit)
                del self._updates[key]

    # -- internals: transactions ----------------------------------------------------

    def _begin_transaction_if_needed(self) -> None:
        if self._transactional and not self._in_transaction:
            self._driver_session.start_transaction(**self._transaction_options)
            self._in_transaction = True

    def _send_transaction(self, command: str, call: Callable[[], Any]) -> None:
        self._send(command, "admin", call, None)

    def _commit_transaction(self) -> PyMongoError | None:
        """commitTransaction, retried while its outcome is unknown (as pymongo's
        ``with_transaction`` does), within ``transaction_retry_s``.

        Returns the error of a commit that was applied but whose write concern
        failed (not a timeout: that outcome is unknown, and retried).
        """
        deadline = time.monotonic() + self.transaction_retry_s
        while True:
            try:
                self._send_transaction("commitTransaction", self._driver_session.commit_transaction)
            except PyMongoError as exc:
                unknown = exc.has_error_label("UnknownTransactionCommitResult")
                if unknown and not _max_time_expired(exc) and time.monotonic() < deadline:
                    logger.info("commitTransaction outcome unknown (%s); retrying", exc)
                    continue
                if unknown:
                    self._commit_unknown(exc)
                if isinstance(exc, WriteConcernError):
                    self._in_transaction = False  # committed: only durability is in question
                    return exc
                retryable = exc.has_error_label("TransientTransactionError")
                self._transaction_failed(abort=False)
                raise TransactionError(
                    f"the transaction could not commit: {exc}. Nothing of it was applied; "
                    "every change since the last commit is unflushed again and stays queued"
                    + ("; run the work again (or use run_in_transaction)" if retryable else ""),
                    retryable=retryable,
                ) from exc
            self._in_transaction = False
            return None

    def _commit_unknown(self, exc: PyMongoError) -> None:
        """The commit's outcome stayed unknown: queue it all again, as in doubt."""
        ops = list(self._tx_ops)
        self._transaction_failed(abort=False)
        if ops:
            self._in_doubt.append(_InDoubt(True, ops))
        raise TransactionError(
            f"the outcome of commitTransaction is unknown after retrying for "
            f"{self.transaction_retry_s} s ({exc}): the transaction may or may not have "
            "committed. Its changes are queued again as in doubt: the next flush first "
            "reads back whether they landed and sends only what is missing (a write it "
            "cannot check is refused, never applied twice). rollback() forgets them instead.",
            retryable=False,
        ) from exc

    def _mark_rollback_only(self, reason: str) -> None:
        """Refuse every commit until ``rollback()`` (a joined unit of work failed)."""
        self._rollback_only = reason

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """Run the block's flushes in one transaction; leaving it flushes and commits.

        A transaction already open from earlier flushes is joined. An exception
        does what ``rollback()`` does. A commit whose outcome is unknown is retried;
        a ``TransientTransactionError`` (at a write in the block, or at the commit)
        rolls back and raises ``TransactionError`` with ``retryable = True`` (use
        ``run_in_transaction`` to retry the work).

        Raises:
            TransactionError: the server has no transactions, or see ``commit()``.
        """
        self._check_open()
        self._require_transactions("transaction()")
        try:
            yield self
        except BaseException as exc:
            self.rollback()
            if isinstance(exc, (FlushError, PyMongoError)) and _transient(exc):
                raise TransactionError(
                    f"the transaction was aborted by the server ({_cause(exc)}) and rolled "
                    "back; run the block again (or use run_in_transaction)",
                    retryable=True,
                ) from exc
            raise
        try:
            self.commit()
        except TransactionError as exc:
            if exc.retryable:
                self.rollback()
            raise
        except FlushError as exc:
            if _transient(exc):
                self.rollback()
                raise TransactionError(
                    f"the transaction was aborted by the server ({exc.cause}) and rolled "
                    "back; run the block again (or use run_in_transaction)",
                    retryable=True,
                ) from exc
            raise

    def run_in_transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` in a transaction, commit, and return its result.

        Like pymongo's ``with_transaction``: a ``TransientTransactionError`` runs
        ``fn`` again (after a ``rollback()``, so it starts from what the database
        holds, and after a short randomized backoff), and a commit whose outcome is
        unknown is retried, all within ``transaction_retry_s``.

        Raises:
            TransactionError: the server has no transactions, or the retries ran
                out of time (``retryable = True``).
        """
        self._check_open()
        self._require_transactions("run_in_transaction()")
        start = time.monotonic()
        deadline = start + self.transaction_retry_s
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fn(*args, **kwargs)
                self.commit()
                return result
            except (TransactionError, FlushError, PyMongoError) as exc:
                retryable = exc.retryable if isinstance(exc, TransactionError) else _transient(exc)
                self.rollback()
                if not retryable:
                    raise
                # pymongo's backoff: jittered, growing, at most half a second.
                backoff = random.random() * min(0.005 * 1.5**attempt, 0.5)
                if time.monotonic() + backoff >= deadline:
                    raise TransactionError(
                        f"run_in_transaction gave up after {attempt} attempts in "
                        f"{self.transaction_retry_s} s: {exc}",
                        retryable=True,
                    ) from exc
                logger.info("transaction attempt %d aborted (%s); running it again", attempt, exc)
                time.sleep(backoff)
            except BaseException:
                self.rollback()
                raise

    def _require_transactions(self, what: str) -> None:
        if not self._transactional:
            reason = (
                "this server has no transactions (they need a replica set or a sharded cluster)"
                if not self._info.supports_transactions
                else "the session was opened with transactional=False"
            )
            raise TransactionError(f"{what}: {reason}")

    # -- internals: lost races ------------------------------------------------------

    def _stale_ops(self, batch: Batch, result: Any) -> tuple[list[WriteOp], bool]:
        """Checked writes of a landed batch that matched nothing: lost races.

        Returns them, and whether uow had to guess: an ordered bulk write's
        result gives only the batch's total of matched (deleted) documents, so
        when some write matched nothing the documents are read back to see
        which. A document that shows this write's values (or, for a versioned
        delete, is gone) may show another session's identical write instead;
        when the total says more writes missed than the read-back can name,
        those documents are reported too, rather than a lost write taken for a
        landed one.
        """
        checked = [op for op in batch.ops if op.checked]
        if not checked or result is None or batch.kind not in (UPDATE, DELETE):
            return [], False
        count = getattr(result, "matched_count" if batch.kind == UPDATE else "deleted_count", None)
        # With only checked writes in the batch, the total says how many missed.
        missed: int | None = None
        if len(checked) == len(batch.ops) and isinstance(count, int):
            missed = len(checked) - count
        if missed is not None and missed <= 0:
            return [], False
        if batch.kind == UPDATE and missed == len(checked):
            return checked, False  # none matched: nothing to read back
        ids = [op.doc._uow_state.id for op in checked]
        collection = self._handle(batch.collection)
        query = {"_id": {"$in": ids}}
        read = functools.partial(_find_all, collection, query, self._session_kw())
        stored = {raw["_id"]: raw for raw in self._send("find", collection.name, read, query)}
        definite: list[WriteOp] = []
        unsure: list[WriteOp] = []
        for op in checked:
            meta: ModelMeta = type(op.doc)._uow_meta
            now = stored.get(op.doc._uow_state.id)
            if op.kind == DELETE:
                if now is not None:
                    definite.append(op)
                elif meta.version_field is not None:
                    unsure.append(op)  # gone: by this delete, or by another session's
            elif now is None or not _landed_as(now, op, meta):
                definite.append(op)
            else:
                unsure.append(op)
        if missed is None or len(definite) >= missed:
            return definite, False
        return definite + unsure, True

    def _stale_failure(
        self, batch: Batch, stale: list[WriteOp], later: list[Batch], guessed: bool = False
    ) -> BatchFailed:
        """The error for a batch some of whose writes lost a race."""
        docs = [op.doc for op in stale]
        lost = {id(op) for op in stale}
        landed = [op for op in batch.ops if id(op) not in lost]
        names = ", ".join(f"{type(d).__name__} {d.id!r}" for d in docs[:10])
        more = f" and {len(docs) - 10} more" if len(docs) > 10 else ""
        later_docs = [op.doc for b in later for op in b.ops]
        doubt = (
            " (Another session wrote the same values to some of them at the same moment, "
            "so which write landed cannot be told: all of them are reported.)"
            if guessed
            else ""
        )
        error = StaleDocumentError(
            f"{names}{more} changed or vanished in the database since this session loaded "
            f"{'it' if len(docs) == 1 else 'them'}: the {batch.kind} matched nothing.{doubt} "
            f"{len(landed)} other write(s) of this batch landed. refresh() the stale "
            "document(s) and apply the change again.",
            documents=docs,
            applied=[op.doc for op in landed],
            not_applied=docs + later_docs,
        )
        return BatchFailed(batch, 0, error, landed_ops=landed)

    def _abort_transaction(self) -> None:
        # Clean-up is never refused by max_requests.
        self._in_transaction = False
        try:
            self._log("abortTransaction", "admin", None)
            self._stats.requests += 1
            self._driver_session.abort_transaction()
        except Exception as exc:
            logger.debug("abortTransaction failed (ignored): %s", exc)

    def _transaction_failed(self, *, abort: bool = True) -> list[Document]:
        """The open transaction is aborted (by the server, or by ``abort``): queue all of it again.

        Documents inserted in it are ``PENDING`` again, deleted ones ``DELETED``,
        updated ones dirty against their last committed form, explicit updates
        queued again. ``abort=False`` when a commit was sent (the driver cannot
        abort after that; the server aborted it, or will when it expires).
        Returns the documents whose writes are unflushed again.
        """
        if abort:
            self._abort_transaction()
        else:
            self._in_transaction = False
        unflushed = _unique_docs(op.doc for op in self._tx_ops)
        for key, obj in self._tx_inserted.items():
            state = obj._uow_state
            state.status = _PENDING
            state.snapshot = None
            self._inserts[key] = obj
            self._map.hold(key, obj)
        for key, (obj, committed) in self._tx_deleted.items():
            if self._inserts.get(key) is obj:
                del self._inserts[key]
                if committed is None:
                    # Inserted and deleted in the aborted transaction: neither
                    # happened, and nothing is left to do.
                    self._map.discard(key, obj)
                    object.__setattr__(obj, "_uow_state", None)
                    continue
                # Deleted and added back: as far as the server knows, neither happened.
                state = DocState(self, key, _PERSISTENT, committed)
                state.modified = True
                state.assigned = None
                object.__setattr__(obj, "_uow_state", state)
                self._modified[key] = obj
                self._map.hold(key, obj)
                continue
            state = DocState(self, key, _DELETED, committed)
            object.__setattr__(obj, "_uow_state", state)
            self._deletes[key] = obj
            self._map.hold(key, obj)
        for key, explicit in self._tx_explicit.items():
            state = explicit.doc._uow_state
            if not explicit.tracked or (
                state is not None and state.owner is self and state.status is _PERSISTENT
            ):
                self._updates.setdefault(key, explicit)
                if explicit.tracked:
                    self._map.hold(key, explicit.doc)
        self._tx_inserted.clear()
        self._tx_deleted.clear()
        self._tx_explicit.clear()
        self._tx_ops.clear()
        for obj in self._map.objects():
            state = obj._uow_state
            if state.status is _PERSISTENT and state.snapshot is not state.committed:
                state.snapshot = state.committed
                # Marked as assigned to: a document without mutable fields is only
                # compared with its snapshot when it is (is_dirty, has_changes...).
                state.modified = True
                state.assigned = None
                self._modified[state.key] = obj
                self._map.hold(state.key, obj)
        return unflushed

    def _end_transaction_bookkeeping(self) -> None:
        """The transaction committed: its documents may be evicted again."""
        for obj, _ in self._tx_deleted.values():
            set_state(obj, DETACHED)  # deleted for good: nothing stored to go back to
        for op in self._tx_ops:
            state = op.doc._uow_state
            if (
                state is not None
                and state.owner is self
                and state.status is _PERSISTENT
                and not state.modified
                and not state.pinned
                and state.key not in self._updates
            ):
                self._map.release(state.key, op.doc)
        self._tx_ops.clear()
        self._tx_explicit.clear()
        self._tx_inserted.clear()
        self._tx_deleted.clear()

    # -- internals: writes of unknown outcome -----------------------------------------

    def _drop_doubts(self, obj: Document) -> None:
        """``obj`` was reloaded or let go of: its unknown outcomes no longer matter."""
        for group in self._in_doubt:
            group.ops = [op for op in group.ops if op.doc is not obj]
        self._in_doubt = [group for group in self._in_doubt if group.ops]

    def _still_queued(self, op: WriteOp) -> bool:
        """Whether ``op``'s work is still waiting in the queue, as it was."""
        obj = op.doc
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self:
            return any(u.doc is obj and not u.tracked for u in self._updates.values())
        if op.kind == INSERT or isinstance(op.request, ReplaceOne):
            return self._inserts.get(state.key) is obj
        if op.kind == DELETE:
            return self._deletes.get(state.key) is obj
        return state.status is _PERSISTENT

    def _reconcile(self) -> None:
        """Settle writes whose outcome is unknown before anything is sent again.

        Sending them again blindly could apply them twice. So the documents that
        can tell are read back (one ``find`` per collection): an insert landed if
        its id is stored; a versioned update if the stored version is the one it
        wrote; a versioned delete if the document is gone. Those that landed are
        marked written; the rest are sent by this flush. A write that cannot be
        checked is sent again if applying it twice changes nothing (``$set``,
        ``$unset``, ``$max``, ``$min``, ``$addToSet``, a replace, a delete). One that
        would count twice (an unversioned ``$inc`` or ``$push``) is refused: the
        flush raises ``FlushError`` before sending anything, until the document
        is ``refresh()``-ed (or expunged, or the session rolled back).

        The writes of one transaction whose commit outcome stayed unknown are
        settled together: one write found landed means all did.
        """
        groups, self._in_doubt = self._in_doubt, []
        refused: list[_InDoubt] = []
        for group in groups:
            # A document's later writes in the group (an insert, then updates, in one
            # transaction) go with its first: queued as it was, or not at all.
            first: dict[int, WriteOp] = {}
            for op in group.ops:
                first.setdefault(id(op.doc), op)
            queued = {key for key, op in first.items() if self._still_queued(op)}
            ops = [op for op in group.ops if id(op.doc) in queued]
            if not ops:
                continue
            verdicts = self._read_back(ops)
            if group.atomic:
                known = set(verdicts.values())
                if len(known) == 1:
                    landed_all = known.pop()
                    verdicts = {id(op): landed_all for op in ops}
            landed = [op for op in ops if verdicts.get(id(op)) is True]
            unknown = [op for op in ops if id(op) not in verdicts and not _idempotent(op)]
            self._adopt(landed)
            if unknown:
                refused.append(_InDoubt(group.atomic, unknown))
        self._in_doubt = refused
        if refused:
            docs = _unique_docs(op.doc for group in refused for op in group.ops)
            names = ", ".join(f"{type(d).__name__} {d.id!r}" for d in docs[:10])
            more = f" and {len(docs) - 10} more" if len(docs) > 10 else ""
            raise FlushError(
                f"the outcome of an earlier write of {names}{more} is unknown (the "
                "connection failed before the server replied), and it cannot be checked: "
                "sending it again could apply its $inc or $push twice. Nothing was sent. "
                "refresh() the document(s) to see what the server holds (their unflushed "
                "changes are dropped) and apply the change again if it is missing, or "
                "rollback(); an explicit update() of an untracked document is forgotten by "
                "clear_queue().",
                documents=docs,
                not_applied=docs,
            )

    def _read_back(self, ops: list[WriteOp]) -> dict[int, bool]:
        """For the writes that can be checked: did each land? (by ``id(op)``)"""
        checkable: dict[str, list[WriteOp]] = {}
        for op in ops:
            meta: ModelMeta = type(op.doc)._uow_meta
            state = op.doc._uow_state
            if state is None or state.owner is not self:
                continue  # an untracked update: nothing says what it changed
            if (
                op.kind == INSERT
                or (op.kind == UPDATE and op.version_before is not None)
                or (op.kind == DELETE and meta.version_field is not None)
            ):
                checkable.setdefault(op.collection, []).append(op)
        verdicts: dict[int, bool] = {}
        for name, group in checkable.items():
            collection = self._handle(name)
            query = {"_id": {"$in": [op.doc._uow_state.id for op in group]}}
            read = functools.partial(_find_all, collection, query, self._session_kw(write=False))
            found = self._send("find", name, read, query)
            self._stats.queries += 1
            stored = {raw["_id"]: raw for raw in found}
            for op in group:
                now = stored.get(op.doc._uow_state.id)
                if op.kind == INSERT:
                    verdicts[id(op)] = now is not None
                elif op.kind == DELETE:
                    verdicts[id(op)] = now is None
                else:
                    version = type(op.doc)._uow_meta.version_field
                    assert version is not None
                    wrote = (op.statement or {}).get("$set", {}).get(version.key, MISSING)
                    verdicts[id(op)] = now is not None and same(
                        now.get(version.key, MISSING), wrote
                    )
        return verdicts

    def _adopt(self, ops: list[WriteOp]) -> None:
        """Writes found to have landed: mark them as a flush would have."""
        for op in ops:
            version = type(op.doc)._uow_meta.version_field
            if op.kind == UPDATE and op.version_before is not None and version is not None:
                bumped = (op.statement or {}).get("$set", {}).get(version.key)
                object.__setattr__(op.doc, version.name, bumped)
        self._finalize(ops)
        for op in ops:
            obj = op.doc
            state: DocState | None = obj._uow_state
            if (
                state is not None
                and state.owner is self
                and state.status is _PERSISTENT
                and state.snapshot is not None
                and not unchanged(obj, state.snapshot)
            ):
                # Changed again in memory since: that change is still to be sent.
                state.modified = True
                state.assigned = None
                self._modified[state.key] = obj
                self._map.hold(state.key, obj)

    # -- internals: I/O -------------------------------------------------------------

    def _send(self, command: str, collection: str, call: Callable[[], Any], detail: Any) -> Any:
        """Send one command: the request limit, the log line, the count."""
        self._sending(command, collection, detail)
        return call()

    def _sending(self, command: str, collection: str, detail: Any) -> None:
        """What comes before a command is sent: the request limit, the log line, the count."""
        limit = self.max_requests
        if limit is not None and self._stats.requests >= limit:
            raise TooManyRequests(
                f"max_requests={limit} reached: the session refused to send {command} on "
                f"{collection!r} (an N+1 loop? load related documents with one query)",
                limit=limit,
            )
        self._log(command, collection, detail)
        self._stats.requests += 1

    def _log(self, command: str, collection: str, detail: Any) -> None:
        level = logging.INFO if self.echo else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(level, "%s %s.%s %s", command, self._db.name, collection, _short(detail))

    def _session_kw(self, write: bool = True) -> dict[str, Any]:
        return {"session": self._driver_session} if self._driver_session is not None else {}

    def _index_session_kw(self) -> dict[str, Any]:
        """For index commands, which MongoDB refuses inside a transaction: the
        session's, unless a transaction is open (then they run beside it)."""
        return {} if self._in_transaction else self._session_kw(write=False)

    def _collection(self, meta: ModelMeta) -> Any:
        name = meta.collection
        if name is None:
            raise UowError(f"{meta.name} is abstract: it has no collection")
        return self._handle(name)

    def _handle(self, name: str) -> Any:
        """The pymongo collection ``name`` (made once: ``db[name]`` costs ~4 µs)."""
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = self._db[name]
        return handle

    def _read_kwargs(
        self,
        projection: dict[str, int] | None,
        sort: list[tuple[str, int]] | None,
        skip: int,
        limit: int,
    ) -> dict[str, Any]:
        """find()'s keyword arguments: the session, and the options that are set."""
        kwargs = self._session_kw(write=False)
        if projection is not None:
            kwargs["projection"] = projection
        if sort:
            kwargs["sort"] = sort
        if skip:
            kwargs["skip"] = skip
        if limit:
            kwargs["limit"] = limit
        return kwargs

    def _find_one(
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
            collection = self._collection(meta)
        assert name is not None
        self._sending("find", name, filter_)
        if projection is None and not sort and not skip and self._driver_session is None:
            found = collection.find_one(filter_)
        else:
            found = collection.find_one(filter_, **self._read_kwargs(projection, sort, skip, 0))
        self._stats.queries += 1
        return found

    def _find(
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
        collection = self._collection(meta)
        kwargs = self._read_kwargs(projection, sort, skip, limit)
        cursor = self._send(
            "find", collection.name, lambda: collection.find(filter_, **kwargs), filter_
        )
        self._stats.queries += 1
        return self._stream(cursor, collection.name)

    def _stream(self, cursor: Any, collection: str) -> Iterator[Mapping[str, Any]]:
        first = True
        try:
            while True:
                buffered = getattr(cursor, "_data", None)
                fetches = (
                    not first
                    and buffered is not None
                    and len(buffered) == 0
                    and (getattr(cursor, "alive", False) and getattr(cursor, "cursor_id", 0))
                )
                if fetches:
                    # The cursor is about to send getMore: it counts, and may be refused.
                    limit = self.max_requests
                    if limit is not None and self._stats.requests >= limit:
                        raise TooManyRequests(
                            f"max_requests={limit} reached while reading {collection!r}",
                            limit=limit,
                        )
                    self._stats.requests += 1
                    self._log("getMore", collection, None)
                first = False
                try:
                    raw = next(cursor)
                except StopIteration:
                    return
                yield raw
        finally:
            close = getattr(cursor, "close", None)
            if close is not None:
                close()

    def _count(self, meta: ModelMeta, filter_: dict[str, Any]) -> int:
        collection = self._collection(meta)
        self._stats.queries += 1
        result: int = self._send(
            "count",
            collection.name,
            lambda: collection.count_documents(filter_, **self._session_kw(write=False)),
            filter_,
        )
        return result

    def _auto_ensure(self, cls: type[Document]) -> None:
        meta = cls._uow_meta
        if not meta.indexes or meta.collection is None:
            return
        if (self._db.name, meta.collection) in _ensured_for(self._client):
            return
        if self._in_transaction:
            return  # index builds cannot run inside a transaction; next flush builds them
        self.ensure_indexes(cls)

    def autoflush_for(self, meta: ModelMeta) -> None:
        """Before a query on ``meta``'s collection: flush if anything could change its result."""
        if not self.autoflush:
            return
        if self._inserts or self._deletes or self._updates or self._modified:
            self.flush()
            return
        collection = meta.collection
        if collection not in self._mutable_in:
            return  # nothing tracked there can change without an assignment
        for obj in self._map.objects():
            state = obj._uow_state
            if (
                state.key[0] == collection
                and state.status is _PERSISTENT
                and self._has_change(obj, state)
            ):
                self.flush()
                return

    def _drop_insert(self, key: Key, obj: Document) -> None:
        """Forget a pending insert: ``obj`` becomes transient.

        If it was to replace a deleted document of the same id, the key finds the
        deleted one again.
        """
        self._inserts.pop(key, None)
        self._map.discard(key, obj)
        replaced = self._deletes.get(key)
        if replaced is not None:
            self._map.hold(key, replaced)
        object.__setattr__(obj, "_uow_state", None)

    def _forget(self, obj: Document) -> None:
        """A tracked document deleted by filter (remove_query, clear_collection)."""
        state: DocState = obj._uow_state
        self._map.discard(state.key)
        self._modified.pop(state.key, None)
        self._updates.pop(state.key, None)
        self._deletes.pop(state.key, None)
        unexpire(obj, state)
        if self._in_transaction:
            # Deleted inside the open transaction: rollback() brings it back.
            self._tx_deleted[state.key] = (obj, state.committed)
            object.__setattr__(obj, "_uow_state", _detached_copy(state))
        else:
            object.__setattr__(obj, "_uow_state", DETACHED)

    # -- internals: helpers ---------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError("this session is closed; open a new one")

    def _meta(self, obj: Any) -> ModelMeta:
        if not isinstance(obj, Document):
            raise ValidationError(f"expected a uow.Document instance, got {type(obj).__name__}")
        meta: ModelMeta = type(obj)._uow_meta
        if meta.collection is None:
            raise UowError(f"{meta.name} is abstract: it has no collection")
        return meta

    def _key(self, meta: ModelMeta, id_value: Any) -> Key:
        assert meta.collection is not None
        return key_for(meta.collection, _stored_id(meta, id_value))

    def _note_collection(self, meta: ModelMeta) -> None:
        assert meta.collection is not None
        self._collections.setdefault(meta.collection, None)

    def __repr__(self) -> str:
        status = "closed" if self._closed else f"{len(self._map)} tracked"
        return f"<uow.Session {self._db.name} {status}>"


def _stored_id(meta: ModelMeta, value: Any) -> Any:
    """An id as stored, checked so that it can never become an operator."""
    spec = meta.id_spec
    if spec is None:
        return value
    if isinstance(value, Ref):
        value = value.id
    spec.check(meta.name, "id", value)
    return spec.dump(value) if spec.needs_dump else value


def _put_back_versions(ops: Iterable[WriteOp]) -> None:
    """Writes that did not land: their documents keep the version they loaded."""
    for op in ops:
        version = type(op.doc)._uow_meta.version_field
        if op.version_before is not None and version is not None:
            object.__setattr__(op.doc, version.name, op.version_before)


def _unique_docs(docs: Iterable[Document]) -> list[Document]:
    """``docs`` without repeats (by identity), in order."""
    return list({id(doc): doc for doc in docs}.values())


def _idempotent(op: WriteOp) -> bool:
    """Whether sending ``op`` a second time leaves the same document."""
    if op.kind == DELETE or isinstance(op.request, ReplaceOne):
        return True
    if op.kind == INSERT:
        return False  # a second insert of the id is refused (duplicate key)
    return set(op.statement or {}) <= _IDEMPOTENT


def _find_all(collection: Any, query: dict[str, Any], kwargs: dict[str, Any]) -> list[Any]:
    return list(collection.find(query, **kwargs))


def _version_condition(version: Any, loaded: Mapping[str, Any]) -> Any:
    """What the stored version must be for a write based on ``loaded`` to apply.

    A stored document without the version key loads with the field's default, so
    the loaded default matches the key's absence (or null) as well; its first
    update sets the key. Any other version must be there exactly.
    """
    value = loaded.get(version.key, MISSING)
    if value is MISSING or type(value) is Absent:
        return {"$exists": False}
    default = version.attribute.default
    if value is None or (type(value) is int and type(default) is int and value == default):
        return {"$in": [value, None]} if value is not None else None
    return value


def _max_time_expired(exc: PyMongoError) -> bool:
    """MaxTimeMSExpired: pymongo's with_transaction does not retry such a commit."""
    return getattr(exc, "code", None) == 50


def _cause(exc: BaseException) -> BaseException:
    return exc.cause or exc if isinstance(exc, FlushError) else exc


def _transient(exc: BaseException) -> bool:
    """Whether the server labelled the failure TransientTransactionError."""
    cause = exc.cause if isinstance(exc, FlushError) else exc
    has_label = getattr(cause, "has_error_label", None)
    return bool(has_label is not None and has_label("TransientTransactionError"))


def _path_value(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def _landed_as(stored: Mapping[str, Any], op: WriteOp, meta: ModelMeta) -> bool:
    """Whether the stored document shows this update's ``$set``/``$unset`` writes."""
    update: Mapping[str, Any] = op.statement or {}
    for path, value in update.get("$set", {}).items():
        if not same(_path_value(stored, path), value):
            return False
    return all(_path_value(stored, path) is MISSING for path in update.get("$unset", {}))


def _snapshot(obj: Document) -> dict[str, Any]:
    """A snapshot of ``obj`` as it is now."""
    return snapshot_of(type(obj)._uow_meta, obj._uow_to_bson())


def _restore(obj: Document, snapshot: Mapping[str, Any], ctx: LoadContext) -> None:
    """Put ``obj``'s fields back to a stored form (rollback)."""
    # A copy: the object must share no list or dict with the snapshot.
    fresh = type(obj)._uow_load(stored_form(snapshot), ctx, obj._uow_absent)
    _copy_fields(fresh, obj)


def _copy_fields(source: Any, target: Any) -> None:
    absent = source._uow_absent or ()
    for f in type(source)._uow_meta.fields:
        if f.name not in absent:
            object.__setattr__(target, f.name, getattr(source, f.name))
    object.__setattr__(target, "_uow_extra", source._uow_extra)
    object.__setattr__(target, "_uow_absent", source._uow_absent)


def _reattach(state: DocState, owner: Session, key: Key, stored_id: Any) -> None:
    """A detached document's state, tracked again by ``owner`` with its last snapshot.

    Marked as assigned to (compared whole at the next flush): whatever changed
    while it was detached is found then.
    """
    state.owner = owner
    state.key = key
    state.id = stored_id
    state.status = _PERSISTENT
    state.committed = state.snapshot
    state.modified = True
    state.assigned = None
    state.pinned = False
    state.expired = NO_EXPIRED


def _detached_copy(state: DocState) -> DocState:
    """A deleted document's state while its transaction may still roll back."""
    copy = DocState(None, state.key, _DETACHED, state.snapshot, state.id)
    copy.committed = state.committed
    return copy


def _with_operators(
    meta: ModelMeta,
    update: UpdateSpec,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    operators: Mapping[str, str],
) -> UpdateSpec:
    """Re-diff the fields whose operator an explicit ``update()`` overrides."""
    from .operators import MISSING, OPERATORS, same

    overridden = {meta.by_name[name].key: op for name, op in operators.items()}
    result: UpdateSpec = {}
    for op_name, paths in update.items():
        for path, value in paths.items():
            if path.split(".", 1)[0] not in overridden:
                result.setdefault(op_name, {})[path] = value
    for key, op_name in overridden.items():
        before, after = old.get(key, MISSING), new.get(key, MISSING)
        if not same(before, after):
            OPERATORS[op_name](result, key, before, after)
    return result


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
