"""Executes a flush plan with pymongo, and maps driver errors back to documents.

Every write of a batch goes out as one command (``insert_many`` or one ordered
``bulk_write``). With ``ordered=True`` the server stops at the first failing
write, so the writes before it landed and the rest did not: that is what lets a
failed flush say exactly what was applied. Driver errors are translated here
and nowhere else. On mongomock an update or delete batch goes through
``_embedded.bulk_write`` instead (mongomock's own ``bulk_write`` fails on pymongo
>= 4.11), which answers and fails as ``bulk_write`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bson.errors import BSONError
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
from ._plan import INSERT, UPDATE, Batch, WriteOp
from .exceptions import DuplicateKeyError, FlushError

__all__: list[str] = []

_DUPLICATE_KEY = 11000


class BatchFailed(Exception):
    """A batch failed after its first ``applied`` writes landed."""

    def __init__(
        self,
        batch: Batch,
        applied: int,
        error: FlushError,
        landed_ops: list[WriteOp] | None = None,
        *,
        in_doubt: bool = False,
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


def _logged(op: WriteOp) -> Any:
    """What the log shows of a write: an update says which document it targets."""
    if op.kind != UPDATE:
        return op.statement
    return {"q": getattr(op.request, "_filter", None), "u": op.statement}


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
    requests = [op.request for op in batch.ops]
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
        return send(command, batch.collection, call, [_logged(op) for op in batch.ops])
    except BulkWriteError as exc:
        applied, error = _from_bulk_error(batch, exc)
        raise BatchFailed(batch, applied, error) from exc
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
        # (Session._reconcile) instead of blindly sending them again.
        error = FlushError(
            f"{what}: the outcome is unknown ({exc}). The server may have applied some, "
            "all or none of them. They stay queued: the next flush first reads back which "
            "of them landed and sends only the rest (an unversioned $inc or $push that "
            "cannot be checked is refused rather than applied twice).",
            cause=exc,
            documents=docs,
            not_applied=docs,
        )
        raise BatchFailed(batch, 0, error, in_doubt=True) from exc


def _from_bulk_error(batch: Batch, exc: BulkWriteError) -> tuple[int, FlushError]:
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
        return len(ops), error
    first = write_errors[0]
    index = int(first.get("index", 0))
    failed: WriteOp = ops[index]
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
    if first.get("code") == _DUPLICATE_KEY:
        duplicated = first.get("keyValue") or _unique_values(failed) or first.get("errmsg")
        message = (
            f"{name} with id {ident!r} was refused by a unique index of "
            f"{batch.collection!r}: duplicate value {duplicated}. {len(applied)} earlier "
            f"write(s) of this batch landed; {len(not_applied)} stay queued, this one "
            "included. Change the value (or delete the other document) and flush again."
        )
        return landed, DuplicateKeyError(
            message, cause=exc, documents=[doc], applied=applied, not_applied=not_applied
        )
    message = (
        f"{batch.kind} of {name} with id {ident!r} in {batch.collection!r} failed: "
        f"{first.get('errmsg')} (code {first.get('code')}). {len(applied)} earlier write(s) "
        f"of this batch landed; {len(not_applied)} stay queued, this one included."
    )
    return landed, FlushError(
        message, cause=exc, documents=[doc], applied=applied, not_applied=not_applied
    )


def _unique_values(op: WriteOp) -> dict[str, Any] | None:
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
