"""Executes a flush plan with pymongo, and maps driver errors back to documents.

Every write of a batch goes out as one command (``insert_many`` or one ordered
``bulk_write``). With ``ordered=True`` the server stops at the first failing
write, so the writes before it landed and the rest did not: that is what lets a
failed flush say exactly what was applied. Driver errors are translated here
and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bson
from pymongo.errors import BulkWriteError, PyMongoError

from ._plan import INSERT, Batch, WriteOp
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
    ) -> None:
        super().__init__(str(error))
        self.batch = batch
        #: how many writes at the start of the batch landed (ordered writes)
        self.applied = applied
        self.error = error
        #: the writes that landed, where they are not a prefix (lost races)
        self.landed_ops = landed_ops


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
    else:
        command = batch.kind

        def call() -> Any:
            return collection.bulk_write(requests, **kwargs)

    try:
        return send(command, batch.collection, call, [op.statement for op in batch.ops])
    except BulkWriteError as exc:
        applied, error = _from_bulk_error(batch, exc)
        raise BatchFailed(batch, applied, error) from exc
    except PyMongoError as exc:
        # The server may or may not have applied the writes; nothing is marked
        # done, so a later flush sends them again (client-side ids make a
        # repeated insert fail loudly instead of storing a duplicate).
        error = FlushError(
            f"{batch.kind} of {len(batch.ops)} document(s) in {batch.collection!r} failed: "
            f"{exc}. None of them is marked as written; they stay queued.",
            cause=exc,
            documents=[op.doc for op in batch.ops],
            not_applied=[op.doc for op in batch.ops],
        )
        raise BatchFailed(batch, 0, error) from exc


def _from_bulk_error(batch: Batch, exc: BulkWriteError) -> tuple[int, FlushError]:
    details = exc.details or {}
    write_errors = details.get("writeErrors") or []
    ops = batch.ops
    if not write_errors:
        # A write-concern error: every write was applied, durability is not assured.
        concern = details.get("writeConcernErrors") or []
        error = FlushError(
            f"{batch.kind} in {batch.collection!r} was applied but the write concern "
            f"failed: {concern}",
            cause=exc,
            documents=[op.doc for op in ops],
            applied=[op.doc for op in ops],
        )
        return len(ops), error
    first = write_errors[0]
    index = int(first.get("index", 0))
    failed: WriteOp = ops[index]
    applied = [op.doc for op in ops[:index]]
    not_applied = [op.doc for op in ops[index:]]
    doc = failed.doc
    name = type(doc).__name__
    ident = getattr(doc, "id", None)
    if first.get("code") == _DUPLICATE_KEY:
        duplicated = first.get("keyValue") or _unique_values(failed) or first.get("errmsg")
        message = (
            f"{name} with id {ident!r} was refused by a unique index of "
            f"{batch.collection!r}: duplicate value {duplicated}. {len(applied)} earlier "
            f"write(s) of this batch landed; this one and {len(not_applied) - 1} after it "
            "stay queued. Change the value (or delete the other document) and flush again."
        )
        return index, DuplicateKeyError(
            message, cause=exc, documents=[doc], applied=applied, not_applied=not_applied
        )
    message = (
        f"{batch.kind} of {name} with id {ident!r} in {batch.collection!r} failed: "
        f"{first.get('errmsg')} (code {first.get('code')}). {len(applied)} earlier write(s) "
        f"of this batch landed; the remaining {len(not_applied)} stay queued."
    )
    return index, FlushError(
        message, cause=exc, documents=[doc], applied=applied, not_applied=not_applied
    )


def _unique_values(op: WriteOp) -> dict[str, Any] | None:
    """The document's values under its unique indexes, as stored paths.

    For a duplicate-key error that does not say which value collided (mongomock
    leaves ``keyValue`` out), so that the message still names a value.
    """
    doc = op.request if op.kind == INSERT else None
    if doc is None and op.snapshot is not None:
        doc = bson.decode(op.snapshot)
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
