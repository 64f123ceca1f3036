"""The flush plan: which writes, in which order, in which commands. No I/O.

Organize, then emit: the session turns its queue into write records (``Write``:
an ``InsertWrite`` per new document, an ``UpdateWrite`` per tracked document's
update, which is its own pymongo request, a ``WriteOp`` for the rest); this
module orders them (inserts, then updates, then deletes; collections in the
order the session first queued work for them; documents in queue order) and
cuts them into one ``Batch`` per (collection, kind), split only where the
server's ``maxWriteBatchSize`` demands. ``_persistence`` executes batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pymongo import UpdateOne

from ._diff import updated_snapshot

if TYPE_CHECKING:
    from .document import Document

__all__: list[str] = []

INSERT, UPDATE, DELETE = "insert", "update", "delete"

#: Documents an error message names before "and N more".
NAMED_IN_ERRORS = 10
KINDS = (INSERT, UPDATE, DELETE)


class _WriteRecord:
    """What every write record answers, whatever carries the request."""

    __slots__ = ()

    doc: Document
    stages: list[Any] | None

    @property
    def doc_id(self) -> Any:
        """The stored ``_id`` of the tracked document this write is for."""
        state = self.doc._uow_state
        assert state is not None  # writes checked or read back are tracked documents'
        return state.id

    @property
    def statements(self) -> int:
        """How many statements of the command this write is."""
        return 1 if self.stages is None else len(self.stages)


class WriteOp(_WriteRecord):
    """One document's write: the pymongo request and what to adopt once it landed."""

    __slots__ = (
        "checked",
        "collection",
        "doc",
        "kind",
        "request",
        "snapshot",
        "stages",
        "stamped",
        "statement",
        "target",
        "version_before",
    )

    def __init__(
        self,
        kind: str,
        collection: str,
        doc: Document,
        request: Any,
        snapshot: dict[str, Any] | None = None,
        statement: Any = None,
    ) -> None:
        self.kind = kind
        self.collection = collection
        self.doc = doc
        #: an insert's document, or a pymongo UpdateOne / ReplaceOne / DeleteOne
        self.request = request
        #: the document's snapshot once this write landed (see ``_state``)
        self.snapshot = snapshot
        #: the update document (all its statements' in one) or filter, for logs and
        #: error messages
        self.statement = statement
        #: a tracked update or delete whose match the flush verifies (lost races)
        self.checked = False
        #: a versioned document's version as loaded (put back if the write fails)
        self.version_before: Any = None
        #: an update's filter
        self.target: Any = None
        #: an update of several statements (see ``_stages.in_stages``): each one's
        #: update document, the first being ``request``'s; None for one statement
        self.stages: list[Any] | None = None
        #: paths below the top this update sets with ``$currentDate`` (see _stamps)
        self.stamped: list[str] | None = None

    def __repr__(self) -> str:
        return f"<WriteOp {self.kind} {self.collection} {self.statement!r}>"


class InsertWrite(_WriteRecord):
    """A new document's insert: its stored form is the request, and the snapshot
    once it landed (neither is changed once made). ``WriteOp``'s other attributes
    are the class's: an insert is never checked, versioned back, or staged."""

    __slots__ = ("collection", "doc", "request")

    kind = INSERT
    checked = False
    version_before: Any = None
    target: Any = None
    stages: list[Any] | None = None
    stamped: list[str] | None = None

    def __init__(self, collection: str, doc: Document, request: dict[str, Any]) -> None:
        self.collection = collection
        self.doc = doc
        self.request = request

    @property
    def snapshot(self) -> dict[str, Any]:
        """The document's snapshot once this write landed: what it sends."""
        return self.request

    @property
    def statement(self) -> dict[str, Any]:
        """What it sends, for logs and error messages."""
        return self.request

    def __repr__(self) -> str:
        return f"<InsertWrite {self.collection} {self.request!r}>"


class UpdateWrite(UpdateOne, _WriteRecord):
    """A tracked document's update: the pymongo ``UpdateOne`` itself, carrying
    what ``WriteOp`` carries (same attributes, ``request`` is itself).

    The flush of a changed document keeps its records alive until the batch has
    landed, and each object it keeps is more work for the garbage collector and
    more memory to walk: one object instead of two (a ``WriteOp`` and its
    request), and no new snapshot dict where the update is only ``$set`` values
    (``snapshot`` makes it when the write landed, see ``Tracker.settle``), is what
    keeps a flush of ten thousand loaded and changed documents from setting off
    a full collection (benchmarks/, CPU section: load + change + flush).
    """

    __slots__ = (
        "base",
        "checked",
        "collection",
        "doc",
        "new_snapshot",
        "stages",
        "stamped",
        "statement",
        "target",
        "version_before",
    )

    kind = UPDATE

    def __init__(
        self,
        collection: str,
        doc: Document,
        target: dict[str, Any],
        first: dict[str, Any],
        snapshot: dict[str, Any] | None,
        statement: Any,
        base: dict[str, Any],
    ) -> None:
        _update_one(self, target, first)
        self.collection = collection
        self.doc = doc
        self.target = target
        #: the document's snapshot once this write landed, if made; None: ``base``
        #: with the statement's ``$set`` values (``snapshot`` makes it when asked)
        self.new_snapshot = snapshot
        #: the snapshot the update was diffed from
        self.base = base
        self.statement = statement
        self.checked = False
        self.version_before: Any = None
        self.stages: list[Any] | None = None
        self.stamped: list[str] | None = None

    @property
    def request(self) -> UpdateWrite:
        """The pymongo request: this object."""
        return self

    @property
    def snapshot(self) -> dict[str, Any]:
        """The document's snapshot once this write landed (see ``_state``)."""
        new = self.new_snapshot
        if new is None:
            new = self.new_snapshot = updated_snapshot(self.base, self.statement)
        return new

    def __repr__(self) -> str:
        return f"<UpdateWrite {self.collection} {self.statement!r}>"


_update_one = UpdateOne.__init__  # (no super() lookup per changed document)

#: A write of the flush, whichever record carries it.
Write = WriteOp | InsertWrite | UpdateWrite


class ExplicitUpdate:
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


def unique_docs(docs: Iterable[Any]) -> list[Any]:
    """``docs`` without repeats (by identity), in order."""
    return list({id(doc): doc for doc in docs}.values())


class Batch:
    """Writes of one kind to one collection: one command on the wire."""

    __slots__ = ("collection", "kind", "ops")

    def __init__(self, collection: str, kind: str, ops: list[Write]) -> None:
        self.collection = collection
        self.kind = kind
        self.ops = ops

    def __repr__(self) -> str:
        return f"<Batch {self.kind} {self.collection} x{len(self.ops)}>"


def build_plan(
    ops: Iterable[Write], collection_order: Sequence[str], max_batch_size: int
) -> list[Batch]:
    """Order ``ops`` into batches; see the module docstring."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    grouped: dict[tuple[str, str], list[Write]] = {}
    seen: dict[str, None] = dict.fromkeys(collection_order)
    kind = collection = ""
    queue: list[Write] = []
    for op in ops:
        # Ops come in runs of one kind and collection: a lookup per run, not per op.
        if op.kind is not kind or op.collection != collection:
            kind, collection = op.kind, op.collection
            seen.setdefault(collection, None)
            queue = grouped.setdefault((kind, collection), [])
        queue.append(op)
    plan: list[Batch] = []
    for kind in KINDS:
        for collection in seen:
            queued = grouped.get((kind, collection))
            if not queued:
                continue
            for start in range(0, len(queued), max_batch_size):
                plan.append(Batch(collection, kind, queued[start : start + max_batch_size]))
    return plan
