"""The Session: the facade over the unit of work.

A session is made of parts, each with one job, and its public methods delegate:

* ``_tracker.Tracker``: the identity map, the queues, every document's state;
* ``_channel.Channel``: every command sent (request budget, echo, counts);
* ``_flush.organize`` and ``_persistence.Flush``: a flush's writes, then their
  execution; ``_indoubt.Doubts``: writes of unknown outcome;
* ``transaction.Transaction``: the MongoDB transaction, with explicit states;
* ``_reading.Query``: queries, on the channel and the tracker.

Nothing in uow imports this module; it sits on top of everything else.
"""

from __future__ import annotations

import contextlib
import logging
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast, overload

import attrs

from . import _backend, _context
from ._channel import Channel
from ._flush import explicit_filter, explicit_operators, organize
from ._identity import key_for, meta_of, stored_id
from ._indoubt import Doubts
from ._persistence import Flush
from ._plan import DELETE, INSERT, UPDATE, build_plan
from ._reading import ExprArg, Query, Reader, RemoveQuery
from ._state import ObjectState
from ._stored import copy_stored
from ._tracker import Tracker
from ._types import LoadContext
from .document import Document, ModelMeta, Ref
from .exceptions import FieldNotLoaded, NotFound, TransactionError, UowError, ValidationError
from .query import class_filter
from .transaction import Transaction, run_in_transaction, transaction_block

__all__ = ["FlushResult", "Session", "SessionStats"]

_doc_of = operator.attrgetter("doc")

logger = logging.getLogger("uow")

_DELETED = ObjectState.DELETED
_PENDING = ObjectState.PENDING
_PERSISTENT = ObjectState.PERSISTENT

D = TypeVar("D", bound=Document)
T = TypeVar("T")
P = ParamSpec("P")


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
        write_concern: a pymongo ``WriteConcern`` for its writes and commits (on
            mongomock, accepted and unused: a write in process is applied when the
            call returns).

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
        if "write_concern" in options and _backend.is_mongomock(database):
            # mongomock refuses one (NotImplementedError) and needs none: a write
            # in process is applied, and as durable as it gets, when the call returns.
            del options["write_concern"]
        if options:
            database = database.with_options(**options)
        info = _backend.server_info(database)
        if transactional is True and not info.supports_transactions:
            raise TransactionError(
                "transactional=True, but this server has no transactions (they need a "
                "replica set or a sharded cluster); use transactional=None to write "
                "without one where they are missing"
            )
        self._db = database
        self._owns_client = False
        self._max_batch = info.max_write_batch_size
        self.autoflush = autoflush
        self.auto_ensure = auto_ensure
        self._flushes = 0
        self._cache_hits = 0
        self._cache_misses = 0
        self._context_tokens: list[Any] = []
        driver_session = None
        if not info.is_embedded:
            driver_session = database.client.start_session(causal_consistency=True)
        self._channel = channel = Channel(database, driver_session, max_requests, echo)
        self._tracker = tracker = Tracker(
            cache_size, LoadContext(tz_aware, timezone), no_tracking, channel.find
        )
        self._doubts = Doubts(tracker, channel)
        self._transaction = Transaction(
            channel,
            tracker,
            self._doubts,
            enabled=info.supports_transactions if transactional is None else transactional,
            supported=info.supports_transactions,
            # A transaction ignores the database's concerns (its commands must not
            # carry them): the session's own go to start_transaction instead. Its
            # read preference stays the client's (a transaction reads from the primary).
            options={name: value for name, value in options.items() if name != "read_preference"},
            retry_s=transaction_retry_s,
        )
        self._reader = Reader(channel, tracker, self._transaction, self._autoflush_for)

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
        self._tracker.check_open()
        self._context_tokens.append(_context.push(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        settled = False
        try:
            if self._tracker.closed:
                return
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
            settled = True
        finally:
            if self._context_tokens:
                _context.pop(self._context_tokens.pop())
            # Just committed or rolled back: nothing can be unsaved, so the close
            # skips looking for changes to warn of (a walk over every document).
            self._close(warn=not settled)

    # -- properties ---------------------------------------------------------------

    @property
    def database(self) -> Any:
        """The pymongo (or mongomock) Database this session writes to."""
        return self._db

    @property
    def driver_session(self) -> Any:
        """The pymongo ``ClientSession`` every command carries (None on mongomock)."""
        return self._channel.driver_session

    @property
    def transactional(self) -> bool:
        """Whether commits run in a MongoDB transaction."""
        return self._transaction.enabled

    @property
    def closed(self) -> bool:
        return self._tracker.closed

    @property
    def no_tracking(self) -> bool:
        """Whether loaded documents are neither kept nor diffed."""
        return self._tracker.no_tracking

    @no_tracking.setter
    def no_tracking(self, value: bool) -> None:
        self._tracker.no_tracking = value

    @property
    def max_requests(self) -> int | None:
        """The number of commands after which the session refuses to send one."""
        return self._channel.max_requests

    @max_requests.setter
    def max_requests(self, value: int | None) -> None:
        self._channel.max_requests = value

    @property
    def echo(self) -> bool:
        """Whether commands are logged at INFO (else DEBUG) on the ``uow`` logger."""
        return self._channel.echo

    @echo.setter
    def echo(self, value: bool) -> None:
        self._channel.echo = value

    @property
    def transaction_retry_s(self) -> float:
        """The time limit of commit and ``run_in_transaction`` retries, in seconds."""
        return self._transaction.retry_s

    @transaction_retry_s.setter
    def transaction_retry_s(self, value: float) -> None:
        self._transaction.retry_s = value

    # -- unit of work -------------------------------------------------------------

    def add(self, obj: Document) -> None:
        """Make a new document pending (an insert at the next flush).

        Adding a document this session already tracks is a no-op; a detached one
        (stored, loaded elsewhere) is tracked again as it is now.

        Raises:
            UowError: the document belongs to another open session, or another
                object already stands for the same stored document here.
        """
        self._tracker.check_open()
        self._tracker.add(obj)

    def add_all(self, objs: Iterable[Document]) -> None:
        """``add()`` each document."""
        self._tracker.add_all(objs)

    def save(self, obj: Document) -> FlushResult:
        """``add(obj)`` then ``flush()``."""
        self.add(obj)
        return self.flush()

    def delete(self, obj: Document) -> None:
        """Delete ``obj`` at the next flush; a pending insert is simply cancelled."""
        self._tracker.check_open()
        self._tracker.mark_deleted(obj)

    def update(
        self,
        obj: Document,
        *,
        upsert: bool = False,
        update_ops: Mapping[Any, str] | None = None,
        id_expression: ExprArg | Mapping[str, Any] | None = None,
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
        self._tracker.check_open()
        meta = meta_of(obj)
        operators = explicit_operators(meta, {**(update_ops or {}), **kwargs})
        filter_ = explicit_filter(id_expression)
        self._tracker.queue_update(obj, meta, operators, filter_, upsert)

    def flush(self) -> FlushResult:
        """Write every pending change: inserts, then updates, then deletes.

        One write command per collection and kind (split only at the server's
        ``maxWriteBatchSize``). Documents are marked clean only once their write
        landed.

        Raises:
            FlushError: (or ``DuplicateKeyError``, ``StaleDocumentError``) a write
                failed; the error says what was applied, and everything not applied
                stays queued. Also raised, before anything is sent, when an earlier
                write whose outcome is unknown cannot be checked (see
                ``_indoubt.Doubts.reconcile``).
        """
        tracker = self._tracker
        tracker.check_open()
        transaction = self._transaction
        if self._doubts.groups:
            self._doubts.reconcile(transaction.active)
        ops = organize(tracker)
        self._flushes += 1
        if not ops:
            return FlushResult()
        plan = build_plan(ops, list(tracker.collections), self._max_batch)
        if self.auto_ensure:
            classes: set[type[Document]] = set()
            for batch in plan:
                if batch.kind != DELETE:
                    classes.update(map(type, map(_doc_of, batch.ops)))
            for cls in classes:
                self._channel.auto_ensure(cls, transaction.active)
        transaction.begin_if_needed()
        _, round_trips = Flush(
            ops, plan, tracker, self._channel, transaction, self._doubts
        ).execute()
        counts = {INSERT: 0, UPDATE: 0, DELETE: 0}
        for batch in plan:  # (all of them landed: a failed one raised)
            counts[batch.kind] += len(batch.ops)
        return FlushResult(counts[INSERT], counts[UPDATE], counts[DELETE], round_trips)

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
        self._tracker.check_open()
        transaction = self._transaction
        transaction.check_can_commit()
        self.flush()
        concern_error = transaction.commit() if transaction.active else None
        self._tracker.transaction_committed(transaction.enabled)
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
        self._tracker.check_open()
        transaction = self._transaction
        transaction.rollback_only = None
        # Unknown outcomes are forgotten with the queue: what the session holds
        # afterwards is the last state it knew the database to have.
        self._doubts.clear()
        aborted = transaction.active
        if aborted:
            transaction.abort()
        self._tracker.restore(aborted)

    def close(self) -> None:
        """Release everything; a second ``close()`` does nothing. ``end()`` is an alias.

        Unflushed changes are dropped (a ``with`` block commits before closing),
        and so is an uncommitted transaction's work: a WARNING on the ``uow``
        logger then says how many changes were dropped.
        """
        self._close(warn=True)

    def _close(self, *, warn: bool) -> None:
        if self._tracker.closed:
            return
        dropped = self._tracker.unsaved_changes() if warn else 0
        try:
            if self._transaction.active:
                self._transaction.abort()
            elif self._tracker.expired_any:
                # What the flushes stored stays: read what the server set in it.
                self._tracker.read_expired_before_letting_go(self._tracker.everything())
        finally:
            if dropped:
                logger.warning(
                    "closing %r dropped %d unsaved change(s): flush() and commit() "
                    "before close(), or rollback() to drop them on purpose",
                    self,
                    dropped,
                )
            self._tracker.detach_all()
            self._reader.closed()
            self._doubts.clear()
            self._channel.close(self._owns_client)

    end = close

    # -- identity map management --------------------------------------------------

    def expunge(self, obj: Document) -> None:
        """Stop tracking ``obj`` (it becomes ``DETACHED``); its queued work is dropped."""
        self._tracker.check_open()
        self._tracker.detach(obj)
        self._doubts.drop(obj)

    def expunge_all(self) -> None:
        """``expunge()`` every tracked document."""
        self._tracker.check_open()
        # The fields the server set that nobody read yet: one find per collection
        # for all of them, not one per document as each expunge() would.
        self._tracker.read_expired_before_letting_go(self._tracker.everything())
        for obj in self._tracker.everything():
            if obj._uow_state is not None and obj._uow_state.owner is self._tracker:
                self.expunge(obj)

    def refresh(self, obj: Document) -> None:
        """Reload ``obj`` from the database, discarding its local changes (no autoflush).

        Raises:
            NotFound: the document is no longer stored.
        """
        tracker = self._tracker
        tracker.check_open()
        if tracker.status_of(obj) not in (_PERSISTENT, _DELETED):
            raise UowError(f"{type(obj).__name__} {obj.id!r} is not a stored document here")
        meta = meta_of(obj)
        state = obj._uow_state
        assert state is not None  # persistent or deleted here: tracked
        raw = self._channel.find_one(meta, {"_id": state.id})
        if raw is None:
            raise NotFound(f"{meta.name} {obj.id!r} is no longer stored")
        self._doubts.drop(obj)
        tracker.reload(obj, raw)

    def clear_queue(self) -> None:
        """Forget queued inserts, deletes and explicit updates.

        In-memory changes of tracked documents stay (``rollback()`` undoes them);
        a forgotten insert is ``TRANSIENT``.
        """
        self._tracker.check_open()
        self._tracker.clear_queue()

    def clear_cache(self) -> None:
        """Forget clean documents (they become ``DETACHED``); changed ones stay."""
        self._tracker.check_open()
        self._tracker.clear_cache()

    def clone(self, obj: D) -> D:
        """A transient copy of ``obj`` with a new id (deep: nothing is shared)."""
        self._tracker.check_open()
        meta = meta_of(obj)
        if obj._uow_absent:
            names = ", ".join(sorted(obj._uow_absent))
            raise FieldNotLoaded(
                f"clone(): {meta.name} {obj.id!r} has no value for {names}: a query with "
                ".fields(...) left it out, or the stored document lacks it and the field "
                "has no default. Assign it (or refresh() a partly loaded document) before "
                "cloning: a copy would store defaults, or nothing, in its place"
            )
        copy = type(obj)._uow_load(copy_stored(obj._uow_to_bson()), self._tracker.ctx)
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
        self._tracker.check_open()
        removed = 0
        # Inside the session's transaction, so that rollback() undoes it too.
        self._transaction.begin_if_needed()
        for cls in classes:
            meta = cls._uow_meta
            removed += self._channel.delete_many(meta, class_filter(meta, exclude_subclasses=False))
            self._tracker.forget_class(meta, cls, self._transaction.active)
        return removed

    def ensure_indexes(self, cls: type[Document]) -> list[str]:
        """Build the indexes ``cls`` declares; returns their names."""
        self._tracker.check_open()
        return self._channel.ensure_indexes(cls, self._transaction.active)

    def get_indexes(self, cls: type[Document]) -> dict[str, Any]:
        """The indexes of ``cls``'s collection, as pymongo's ``index_information()``."""
        self._tracker.check_open()
        return self._channel.get_indexes(cls, self._transaction.active)

    # -- inspection ---------------------------------------------------------------

    def state(self, obj: Document) -> ObjectState:
        """Where ``obj`` stands with this session."""
        self._tracker.check_open()
        return self._tracker.status_of(obj)

    def is_dirty(self, obj: Document) -> bool:
        """Whether a tracked stored document has unflushed changes."""
        self._tracker.check_open()
        return self._tracker.is_dirty(obj)

    def dirty_fields(self, obj: Document) -> list[str]:
        """Top-level attribute names with unflushed changes, sorted."""
        self._tracker.check_open()
        return sorted({path.split(".", 1)[0] for path in self._tracker.changed_paths(obj)})

    def original_value(self, obj: Document, name: str) -> Any:
        """The value of field ``name`` as last loaded or flushed."""
        self._tracker.check_open()
        meta = meta_of(obj)
        if name not in meta.by_name:
            raise AttributeError(f"{meta.name} has no field {name!r}")
        return getattr(self._tracker.original(obj), name)

    def has_changes(self) -> bool:
        """Whether a flush now would write anything."""
        self._tracker.check_open()
        return self._tracker.has_changes()

    def what_changed(self) -> dict[tuple[str, Any], dict[str, tuple[Any, Any]]]:
        """Unflushed changes of persistent documents: ``{(collection, id): {path: (old, new)}}``."""
        self._tracker.check_open()
        return self._tracker.what_changed()

    def stats(self) -> SessionStats:
        """A copy of the session's counters, with the queue sizes as of now."""
        self._tracker.check_open()
        tracked, inserts, updates, deletes = self._tracker.counts()
        channel = self._channel
        return SessionStats(
            identity_map_size=tracked,
            pending_inserts=inserts,
            pending_updates=updates,
            pending_deletes=deletes,
            round_trips=channel.round_trips,
            flushes=self._flushes,
            queries=channel.queries,
            requests=channel.requests,
            cache_hits=self._cache_hits,
            cache_misses=self._cache_misses,
        )

    # -- reading ------------------------------------------------------------------

    @overload
    def get(self, cls: type[D], id: Any) -> D | None: ...
    @overload
    def get(self, cls: type[D], id: Any, *, default: D) -> D: ...
    @overload
    def get(self, cls: type[D], id: Any, *, default: None) -> D | None: ...

    def get(self, cls: type[D], id: Any, **kwargs: Any) -> D | None:
        """The document of ``cls`` with this id, or None.

        The identity map answers first (no query on a hit; a pending document is
        found too); a miss reads the database.
        """
        tracker = self._tracker
        tracker.check_open()
        meta = cls._uow_meta
        sid = stored_id(meta, id)
        assert meta.collection is not None
        found = tracker.lookup(key_for(meta.collection, sid))
        if found is not None:
            state = found._uow_state
            if state.status is _DELETED or not isinstance(found, cls):
                return cast("D | None", kwargs.get("default"))
            if not state.expired:
                self._cache_hits += 1
                return found
        self._cache_misses += 1
        filter_ = {"_id": sid, **class_filter(meta, exclude_subclasses=False)}
        raw = self._channel.find_one(meta, filter_)
        if raw is None:
            return cast("D | None", kwargs.get("default"))
        return tracker.load(cls, raw)

    def query(self, cls: type[D], exclude_subclasses: bool = False) -> Query[D]:
        """A query on ``cls`` (and its subclasses, unless ``exclude_subclasses``)."""
        self._tracker.check_open()
        return Query(self._reader, cls, exclude_subclasses)

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
        self._tracker.check_open()
        return RemoveQuery(self._reader, cls)

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
        self._tracker.check_open()
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

    # -- transactions -------------------------------------------------------------

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
        self._tracker.check_open()
        with transaction_block(self, self._transaction) as session:
            yield session

    def run_in_transaction(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` in a transaction, commit, and return its result.

        Like pymongo's ``with_transaction``: a ``TransientTransactionError`` runs
        ``fn`` again (after a ``rollback()``, so it starts from what the database
        holds, and after a short randomized backoff), and a commit whose outcome is
        unknown is retried, all within ``transaction_retry_s``.

        Raises:
            TransactionError: the server has no transactions, or the retries ran
                out of time (``retryable = True``).
        """
        self._tracker.check_open()
        return run_in_transaction(self, self._transaction, fn, *args, **kwargs)

    # -- internals ------------------------------------------------------------------

    def _autoflush_for(self, meta: ModelMeta) -> None:
        """Before a query on ``meta``'s collection: flush if anything could change its result."""
        if self.autoflush and self._tracker.may_change(meta.collection):
            self.flush()

    def _mark_rollback_only(self, reason: str) -> None:
        """Refuse every commit until ``rollback()`` (a joined unit of work failed)."""
        self._transaction.rollback_only = reason

    def __repr__(self) -> str:
        status = "closed" if self._tracker.closed else f"{len(self._tracker)} tracked"
        return f"<uow.Session {self._db.name} {status}>"
