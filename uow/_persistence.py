"""Executes a flush plan with pymongo, and maps driver errors back to documents.

``Flush`` is one flush's execution, as SQLAlchemy's ``UOWTransaction`` is: send
each batch (``run_batch``), find the writes that lost a race (checked writes
that matched nothing), settle what landed in the tracker, and on a failure
bring the tracker in line with what the server applied.

Every write of a batch goes out as one command (``insert_many`` or one ordered
``bulk_write``). With ``ordered=True`` the server stops at the first failing
write, so the writes before it landed and the rest did not: that is what lets a
failed flush say exactly what was applied. Driver errors are translated here
and nowhere else. On mongomock an update or delete batch goes through
``_embedded.bulk_write`` instead (mongomock's own ``bulk_write`` fails on pymongo
>= 4.11), which answers and fails as ``bulk_write`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bson.errors import BSONError
from pymongo import UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    InvalidOperation,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WriteConcernError,
)

from . import _embedded
from ._backend import is_mongomock
from ._channel import Channel
from ._flush import put_back_versions
from ._plan import DELETE, INSERT, NAMED_IN_ERRORS, UPDATE, Batch, UpdateWrite, Write, unique_docs
from ._stamps import as_snapshot_stamps
from ._stored import Absent
from ._tracker import Tracker
from .exceptions import DuplicateKeyError, FlushError, StaleDocumentError
from .operators import MISSING, same

logger = logging.getLogger("uow")

if TYPE_CHECKING:
    from ._indoubt import Doubts
    from .document import ModelMeta
    from .transaction import Transaction

__all__: list[str] = []

_DUPLICATE_KEY = 11000


class BatchFailed(Exception):
    """A batch failed after its first ``applied`` writes landed."""

    def __init__(
        self,
        batch: Batch,
        applied: int,
        error: FlushError,
        landed_ops: list[Write] | None = None,
        *,
        in_doubt: bool = False,
        doubtful_ops: list[Write] | None = None,
        partly: tuple[Write, int] | None = None,
    ) -> None:
        super().__init__(str(error))
        self.batch = batch
        #: how many writes at the start of the batch landed (ordered writes)
        self.applied = applied
        self.error = error
        #: the writes that landed, where they are not a prefix (lost races)
        self.landed_ops = landed_ops
        #: the command went out but no answer came back: any of its writes may
        #: have landed (a dropped connection, a timeout)
        self.in_doubt = in_doubt
        #: writes of the batch whose outcome cannot be told (lost races that
        #: another session's identical write may hide); the rest of it is known
        self.doubtful_ops = doubtful_ops or []
        #: the write the failed statement belongs to, when its first statements
        #: landed (see _stages.in_stages), and how many did
        self.partly = partly


# Errors raised before the command reached the server, or the server's refusal of
# the whole command: none of the batch's writes was applied.
_NOT_SENT = (
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    NotPrimaryError,
    InvalidOperation,
    ConfigurationError,
)


def outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed write command may have been applied, in part or whole.

    A network error or timeout after the command was sent leaves it unknown (the
    reply was lost, not the write). A server's error reply to the whole command
    (``OperationFailure``) or a failure before sending says it was not applied.
    A write-concern error says it was applied, so it is not "unknown" either, but
    one raised on its own (not in a bulk result) is kept unknown to be safe.
    """
    if isinstance(exc, _NOT_SENT):
        return False
    return not (isinstance(exc, OperationFailure) and not isinstance(exc, WriteConcernError))


def _logged(op: Write) -> Any:
    """What the log shows of a write: an update says which document it targets."""
    if op.kind != UPDATE:
        return op.statement
    return {"q": op.target, "u": op.statement if op.stages is None else op.stages}


def run_batch(
    batch: Batch,
    collection: Any,
    driver_session: Any,
    send: Callable[[str, str, Callable[[], Any], Any], Any],
) -> Any:
    """Send one batch as one command and return pymongo's result.

    Raises:
        BatchFailed: saying how many of the batch's writes landed.
    """
    kwargs: dict[str, Any] = {"ordered": True}
    if driver_session is not None:
        kwargs["session"] = driver_session
    if batch.kind != UPDATE:
        requests = [op.request for op in batch.ops]
    else:  # a tracked document's update is its own request (UpdateWrite)
        requests = [op if type(op) is UpdateWrite else op.request for op in batch.ops]
        if any(op.stages for op in batch.ops):
            requests = [request for op in batch.ops for request in _requests(op)]
    if batch.kind == INSERT:
        command = "insert"

        def call() -> Any:
            return collection.insert_many(requests, **kwargs)
    elif is_mongomock(collection):
        # mongomock's own bulk_write fails on pymongo >= 4.11 (see _embedded).
        command = batch.kind

        def call() -> Any:
            return _embedded.bulk_write(collection, requests)
    else:
        command = batch.kind

        def call() -> Any:
            return collection.bulk_write(requests, **kwargs)

    try:
        return send(command, batch.collection, call, lambda: [_logged(op) for op in batch.ops])
    except BulkWriteError as exc:
        applied, error, partly = _from_bulk_error(batch, exc)
        raise BatchFailed(batch, applied, error, partly=partly) from exc
    except (PyMongoError, BSONError) as exc:
        docs = [op.doc for op in batch.ops]
        what = f"{batch.kind} of {len(docs)} document(s) in {batch.collection!r}"
        if not outcome_unknown(exc):
            error = FlushError(
                f"{what} failed: {exc}. The server applied none of them; they stay queued.",
                cause=exc,
                documents=docs,
                not_applied=docs,
            )
            raise BatchFailed(batch, 0, error) from exc
        # The command may have been applied, in part or whole, with the reply lost.
        # Nothing is marked written and everything stays queued; the session
        # remembers these writes as in doubt and settles them at the next flush
        # (Doubts.reconcile) instead of blindly sending them again.
        error = FlushError(
            f"{what}: the outcome is unknown ({exc}). The server may have applied some, "
            "all or none of them. They stay queued: the next flush first reads back which "
            "of them landed and sends only the rest (an unversioned $inc or $push that "
            "cannot be checked is refused rather than applied twice).",
            cause=exc,
            documents=docs,
            in_doubt=docs,
        )
        raise BatchFailed(batch, 0, error, in_doubt=True) from exc


def _requests(op: Write) -> list[Any]:
    """The statements of one write, in the order sent."""
    if op.stages is None:
        return [op.request]
    return [op.request, *(UpdateOne(op.target, stage) for stage in op.stages[1:])]


def _from_bulk_error(
    batch: Batch, exc: BulkWriteError
) -> tuple[int, FlushError, tuple[Write, int] | None]:
    """How many of the batch's writes landed, the error, and the write that landed
    in part with how many of its statements did, if one did."""
    details = exc.details or {}
    write_errors = details.get("writeErrors") or []
    ops = batch.ops
    if not write_errors:
        # A write-concern error: every write was applied, durability is not assured.
        concern = details.get("writeConcernErrors") or []
        error = FlushError(
            f"{batch.kind} of {len(ops)} document(s) in {batch.collection!r} was applied, "
            f"but its write concern was not satisfied: {concern}. They are marked written "
            "and will not be sent again; that they survive a failover is not assured. "
            "Writes after this command were not sent and stay queued.",
            cause=exc,
            documents=[op.doc for op in ops],
            applied=[op.doc for op in ops],
        )
        return len(ops), error, None
    first = write_errors[0]
    index, partly = _op_at(ops, int(first.get("index", 0)))
    failed: Write = ops[index]
    # An ordered write stops at the first failing statement, so the ones before it
    # landed. For inserts the server also says how many it stored; where that is
    # fewer (a server that refused the whole batch), what it says it did wins.
    landed = index
    inserted = details.get("nInserted")
    if batch.kind == INSERT and isinstance(inserted, int) and 0 <= inserted < index:
        landed = inserted
    applied = [op.doc for op in ops[:landed]]
    not_applied = [op.doc for op in ops[landed:]]
    doc = failed.doc
    name = type(doc).__name__
    ident = getattr(doc, "id", None)
    if first.get("code") == _DUPLICATE_KEY and not partly:
        duplicated = first.get("keyValue") or _unique_values(failed) or first.get("errmsg")
        message = (
            f"{name} with id {ident!r} was refused by a unique index of "
            f"{batch.collection!r}: duplicate value {duplicated}. {len(applied)} earlier "
            f"write(s) of this batch landed; {len(not_applied)} stay queued, this one "
            "included. Change the value (or delete the other document) and flush again."
        )
        return (
            landed,
            DuplicateKeyError(
                message, cause=exc, documents=[doc], applied=applied, not_applied=not_applied
            ),
            None,
        )
    message = (
        f"{batch.kind} of {name} with id {ident!r} in {batch.collection!r} failed: "
        f"{first.get('errmsg')} (code {first.get('code')}). {len(applied)} earlier write(s) "
        f"of this batch landed; {len(not_applied)} stay queued, this one included."
    )
    if partly:
        message += (
            f" Its first {partly} of {failed.statements} statements landed (the changes "
            "inside its lists); what the others append stays queued."
        )
    error = FlushError(
        message, cause=exc, documents=[doc], applied=applied, not_applied=not_applied
    )
    return landed, error, (failed, partly) if partly else None


def _op_at(ops: list[Write], statement: int) -> tuple[int, int]:
    """The write that statement number ``statement`` of a command belongs to, and
    how many of that write's statements came before it (and landed)."""
    if all(op.stages is None for op in ops):
        return statement, 0
    start = 0
    for index, op in enumerate(ops):
        count = op.statements
        if statement < start + count:
            return index, statement - start
        start += count
    return len(ops) - 1, 0


def _unique_values(op: Write) -> dict[str, Any] | None:
    """The document's values under its unique indexes, as stored paths.

    For a duplicate-key error that does not say which value collided (mongomock
    leaves ``keyValue`` out), so that the message still names a value.
    """
    doc = op.request if op.kind == INSERT else None
    if doc is None:
        doc = op.snapshot
    if not isinstance(doc, dict):
        return None
    meta = getattr(type(op.doc), "_uow_meta", None)
    values: dict[str, Any] = {}
    for index in getattr(meta, "indexes", ()):
        if index.options.get("unique"):
            for path, _direction in index.stored_keys(type(op.doc)):
                value: Any = doc
                for part in path.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                values[path] = value
    return values or None


class Flush:
    """One flush: its write operations, their batches, and what became of them."""

    __slots__ = ("_channel", "_doubts", "_tracker", "_transaction", "ops", "plan")

    def __init__(
        self,
        ops: list[Write],
        plan: list[Batch],
        tracker: Tracker,
        channel: Channel,
        transaction: Transaction,
        doubts: Doubts,
    ) -> None:
        self.ops = ops
        self.plan = plan
        self._tracker = tracker
        self._channel = channel
        self._transaction = transaction
        self._doubts = doubts

    def execute(self) -> tuple[list[Write], int]:
        """Send every batch, in order; returns the writes that landed and the round trips.

        Documents are settled (clean, persistent, or gone) only once their writes
        landed; everything else stays queued.

        Raises:
            FlushError: (or ``DuplicateKeyError``, ``StaleDocumentError``) a batch
                failed; the error says what was applied.
        """
        channel = self._channel
        tracker = self._tracker
        plan = self.plan
        done: list[Write] = []
        round_trips = 0
        for position, batch in enumerate(plan):
            try:
                result = run_batch(
                    batch, channel.handle(batch.collection), channel.driver_session, channel.send
                )
                stale, doubtful = self._stale_ops(batch, result)
                if stale or doubtful:
                    raise self._stale_failure(batch, stale, plan[position + 1 :], doubtful)
            except BatchFailed as failed:
                round_trips += 1
                channel.round_trips += 1
                self._batch_failed(failed, done, plan[position + 1 :])
                raise failed.error from failed.error.cause
            except BaseException:
                # Refused before it was sent (TooManyRequests) or interrupted: the
                # batches before it landed and are marked so; the rest stay queued.
                sent = {id(op) for op in done}
                put_back_versions([op for op in self.ops if id(op) not in sent])
                tracker.settle(done, self._transaction.active)
                raise
            round_trips += 1
            channel.round_trips += 1
            done.extend(batch.ops)
        tracker.settle(done, self._transaction.active)
        self._read_stamps(done)
        return done, round_trips

    def _read_stamps(self, done: list[Write]) -> None:
        """Read back what the server set below the top level ($currentDate in embedded
        documents, see _stamps): one find per collection, counted as a query (the
        flush's round trips are its write commands, as ``stats().round_trips``).

        The writes landed already: a read that fails leaves those values as memory
        had them (logged), never the flush failed.
        """
        by_collection: dict[str, list[Write]] = {}
        for op in done:
            if op.stamped:
                by_collection.setdefault(op.collection, []).append(op)
        for name, ops in by_collection.items():
            ids = [op.doc_id for op in ops]
            self._channel.queries += 1
            try:
                found = self._channel.find_all(name, {"_id": {"$in": ids}})
            except PyMongoError as exc:
                logger.warning(
                    "flush: the values the server set in embedded documents of %r could "
                    "not be read back (%s); refresh() the documents to see them",
                    name,
                    exc,
                )
                continue
            stored = {raw["_id"]: raw for raw in found}
            for op in ops:
                raw = stored.get(op.doc_id)
                if raw is not None and op.stamped:
                    self._tracker.adopt_stamps(op.doc, raw, op.stamped)

    def _batch_failed(self, failed: BatchFailed, done: list[Write], later: list[Batch]) -> None:
        """Bring the tracker in line with a failed batch and complete its error."""
        error = failed.error
        ops = self.ops
        if self._transaction.active:
            # The server aborted the transaction: nothing of it (earlier flushes
            # included) landed. Every document goes back to its last committed version.
            put_back_versions(reversed([*self._tracker.tx_ops, *ops]))
            unflushed = self._transaction.failed()
            error.transaction_aborted = True
            error.applied = []
            error.not_applied = unique_docs([*unflushed, *(op.doc for op in ops)])
            error.args = (
                f"{error.args[0]} The server aborted the transaction: {Tracker.REQUEUED}.",
            )
            return
        landed = (
            failed.landed_ops
            if failed.landed_ops is not None
            else failed.batch.ops[: failed.applied]
        )
        kept = {id(op) for op in done} | {id(op) for op in landed}
        put_back_versions([op for op in ops if id(op) not in kept])
        self._tracker.settle(done + landed, False)
        # What landed is stored (no transaction to undo it): the server's dates in
        # its embedded documents are read back, as after a flush that succeeded.
        self._read_stamps(done + landed)
        if failed.partly is not None:
            # What its landed statements wrote is stored: the document takes that
            # as its snapshot, and the rest of its change stays queued.
            op, count = failed.partly
            self._tracker.settle_part(op, count)
        # What landed: the earlier batches of this flush, and the failed one's part.
        error.applied = unique_docs([*(op.doc for op in done), *error.applied])
        if failed.in_doubt:
            self._doubts.add(False, list(failed.batch.ops))
        elif failed.doubtful_ops:
            # Read back before anything is sent again (see _indoubt).
            self._doubts.add(False, list(failed.doubtful_ops))
        # The batches after the failed one were not sent: they stay queued too.
        error.not_applied = unique_docs(
            [*error.not_applied, *(op.doc for batch in later for op in batch.ops)]
        )

    # -- lost races -----------------------------------------------------------------

    def _stale_ops(self, batch: Batch, result: Any) -> tuple[list[Write], list[Write]]:
        """Checked writes of a landed batch that matched nothing: lost races.

        Returns the writes known to have missed, and those whose outcome cannot
        be told. An ordered bulk write's result gives only the batch's total of
        matched (deleted) documents, so when some write matched nothing the
        documents are read back to see which. A document stored exactly as this
        flush would leave it landed (or holds the same, which to the one rule is
        the same), unless the total says more writes missed than the rest can
        account for: then another session's write may have left the very same
        (two versioned ``$inc`` from one start), and those are unsure too; one
        that shows another state missed; one that shows this
        write's ``$set`` values but not the rest may show another session's
        identical write instead: when the total says more writes missed than the
        read-back can name, those are reported in doubt (``FlushError.in_doubt``)
        and read back again before the next flush sends anything.
        """
        checked = [op for op in batch.ops if op.checked]
        if not checked or result is None or batch.kind not in (UPDATE, DELETE):
            return [], []
        count = getattr(result, "matched_count" if batch.kind == UPDATE else "deleted_count", None)
        # With only checked writes in the batch, the total says how many missed.
        missed: int | None = None
        statements = sum(op.statements for op in checked)
        if len(checked) == len(batch.ops) and isinstance(count, int):
            missed = statements - count
        if missed is not None and missed <= 0:
            return [], []
        if batch.kind == UPDATE and missed == statements:
            return checked, []  # none matched: nothing to read back
        ids = [op.doc_id for op in checked]
        query = {"_id": {"$in": ids}}
        found = self._channel.find_all(batch.collection, query)
        stored = {raw["_id"]: raw for raw in found}
        definite: list[Write] = []
        unsure: list[Write] = []
        # Stored as this flush leaves them: landed, or another session's write
        # that left the very same (a versioned $inc from the same start).
        same: list[Write] = []
        for op in checked:
            meta: ModelMeta = type(op.doc)._uow_meta
            now = stored.get(op.doc_id)
            if op.kind == DELETE:
                if now is not None:
                    definite.append(op)
                elif meta.version_field is not None:
                    unsure.append(op)  # gone: by this delete, or by another session's
            elif now is None:
                definite.append(op)
            elif _stored_as(now, op, meta):
                same.append(op)  # landed, unless the total says otherwise
            elif not _landed_as(now, op):
                definite.append(op)
            else:
                unsure.append(op)
        if missed is None:
            return definite, []  # no total to weigh them against: as before, landed
        remaining = missed - len(definite)
        if remaining <= 0:
            return definite, []  # every miss is named: the unsure ones landed
        if remaining > len(unsure):
            # More misses than the read-back can name: some document stored as
            # this flush would leave it got there by another session's write.
            # Which cannot be told, so none of them is taken as landed.
            unsure += same
        if remaining >= len(unsure):
            return definite + unsure, []  # as many misses as unsure: all of them
        return definite, unsure

    def _stale_failure(
        self,
        batch: Batch,
        stale: list[Write],
        later: list[Batch],
        doubtful: list[Write] | None = None,
    ) -> BatchFailed:
        """The error for a batch some of whose writes lost a race."""
        doubtful = doubtful or []
        docs = [op.doc for op in stale]
        lost = {id(op) for op in stale} | {id(op) for op in doubtful}
        landed = [op for op in batch.ops if id(op) not in lost]
        names = ", ".join(f"{type(d).__name__} {d.id!r}" for d in docs[:NAMED_IN_ERRORS])
        more = f" and {len(docs) - NAMED_IN_ERRORS} more" if len(docs) > NAMED_IN_ERRORS else ""
        later_docs = [op.doc for b in later for op in b.ops]
        doubt = (
            f" Whether the writes of {len(doubtful)} other document(s) landed cannot be "
            "told (another session may have written the same values): they are in "
            "in_doubt, stay queued, and are read back before the next flush sends them."
            if doubtful
            else ""
        )
        if docs:
            message = (
                f"{names}{more} changed or vanished in the database since this session "
                f"loaded {'it' if len(docs) == 1 else 'them'}: the {batch.kind} matched "
                f"nothing. {len(landed)} other write(s) of this batch landed.{doubt} "
                "refresh() the stale document(s) and apply the change again."
            )
        else:
            # Every miss is among the unsure: name those.
            unsure = [op.doc for op in doubtful]
            shown = ", ".join(f"{type(d).__name__} {d.id!r}" for d in unsure[:NAMED_IN_ERRORS])
            extra = len(unsure) - NAMED_IN_ERRORS
            message = (
                f"one or more of {shown}{f' and {extra} more' if extra > 0 else ''} changed "
                f"or vanished in the database since this session loaded them: a "
                f"{batch.kind} of this batch matched nothing, and which cannot be told "
                "(another session may have written the same values). They are in "
                "in_doubt, stay queued, and are read back before the next flush sends "
                f"them; {len(landed)} other write(s) of this batch landed. refresh() "
                "them to start again from what is stored."
            )
            docs = unsure
        error = StaleDocumentError(
            message,
            documents=docs,
            applied=[op.doc for op in landed],
            not_applied=[op.doc for op in stale] + later_docs,
            in_doubt=[op.doc for op in doubtful],
        )
        return BatchFailed(batch, 0, error, landed_ops=landed, doubtful_ops=doubtful)


def _path_value(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def _stored_as(stored: Mapping[str, Any], op: Write, meta: ModelMeta) -> bool:
    """Whether the stored document is what ``op`` leaves: every key of its new
    snapshot as stored (keys the server sets aside)."""
    snapshot = op.snapshot
    if snapshot is None:
        return False
    if op.stamped:
        stored = as_snapshot_stamps(stored, snapshot, op.stamped)
    for key, value in snapshot.items():
        if key in meta.current_date_keys:
            continue
        if type(value) is Absent:
            if key in stored:
                return False
        elif not same(stored.get(key, MISSING), value):
            return False
    return True


def _landed_as(stored: Mapping[str, Any], op: Write) -> bool:
    """Whether the stored document shows this update's ``$set``/``$unset`` writes."""
    update: Mapping[str, Any] = op.statement or {}
    for path, value in update.get("$set", {}).items():
        if not same(_path_value(stored, path), value):
            return False
    return all(_path_value(stored, path) is MISSING for path in update.get("$unset", {}))
