"""Writes of unknown outcome: sent, but no reply came back.

Sending them again blindly could apply them twice, so the next flush first
reads back what it can (``Doubts.reconcile``) and sends only what is missing.
"""

from __future__ import annotations

from pymongo import ReplaceOne

from ._channel import Channel
from ._plan import DELETE, INSERT, NAMED_IN_ERRORS, UPDATE, Write, unique_docs
from ._state import DocState, ObjectState
from ._tracker import Tracker
from .document import Document, ModelMeta
from .exceptions import FlushError
from .operators import MISSING, same

__all__: list[str] = []

# Update operators that give the same document when applied twice.
_IDEMPOTENT = frozenset({"$set", "$unset", "$max", "$min", "$addToSet", "$currentDate"})


class InDoubt:
    """Writes that were sent but whose outcome is unknown (no reply came back).

    ``atomic``: they were one transaction's, whose commit outcome stayed unknown,
    so all of them landed or none did.
    """

    __slots__ = ("atomic", "ops")

    def __init__(self, atomic: bool, ops: list[Write]) -> None:
        self.atomic = atomic
        self.ops = ops


class Doubts:
    """A session's writes of unknown outcome, settled by its next flush."""

    def __init__(self, tracker: Tracker, channel: Channel) -> None:
        self._tracker = tracker
        self._channel = channel
        self.groups: list[InDoubt] = []

    def add(self, atomic: bool, ops: list[Write]) -> None:
        self.groups.append(InDoubt(atomic, ops))

    def clear(self) -> None:
        """Forgotten (rollback, close): what the session holds afterwards is the
        last state it knew the database to have."""
        self.groups.clear()

    def drop(self, obj: Document) -> None:
        """``obj`` was reloaded or let go of: its unknown outcomes no longer matter."""
        for group in self.groups:
            group.ops = [op for op in group.ops if op.doc is not obj]
        self.groups = [group for group in self.groups if group.ops]

    def _still_queued(self, op: Write) -> bool:
        """Whether ``op``'s work is still waiting in the queue, as it was."""
        tracker = self._tracker
        obj = op.doc
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not tracker:
            return any(u.doc is obj and not u.tracked for u in tracker.updates.values())
        if op.kind == INSERT or isinstance(op.request, ReplaceOne):
            return tracker.inserts.get(state.key) is obj
        if op.kind == DELETE:
            return tracker.deletes.get(state.key) is obj
        return state.status is ObjectState.PERSISTENT

    def reconcile(self, in_transaction: bool) -> None:
        """Settle writes whose outcome is unknown before anything is sent again.

        The documents that can tell are read back (one ``find`` per collection):
        an insert landed if its id is stored; a versioned update if the stored
        version is the one it wrote; a versioned delete if the document is gone.
        Those that landed are marked written; the rest are sent by this flush. A
        write that cannot be checked is sent again if applying it twice changes
        nothing (``$set``, ``$unset``, ``$max``, ``$min``, ``$addToSet``, a
        replace, a delete).

        The writes of one transaction whose commit outcome stayed unknown are
        settled together: one write found landed means all did.

        Raises:
            FlushError: before anything is sent, for a write that would count
                twice (an unversioned ``$inc`` or ``$push``), until the document
                is ``refresh()``-ed (or expunged, or the session rolled back).
        """
        groups, self.groups = self.groups, []
        refused: list[InDoubt] = []
        for group in groups:
            # A document's later writes in the group (an insert, then updates, in one
            # transaction) go with its first: queued as it was, or not at all.
            first: dict[int, Write] = {}
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
            self._adopt(landed, in_transaction)
            if unknown:
                refused.append(InDoubt(group.atomic, unknown))
        self.groups = refused
        if refused:
            docs = unique_docs(op.doc for group in refused for op in group.ops)
            names = ", ".join(f"{type(d).__name__} {d.id!r}" for d in docs[:NAMED_IN_ERRORS])
            more = f" and {len(docs) - NAMED_IN_ERRORS} more" if len(docs) > NAMED_IN_ERRORS else ""
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

    def _read_back(self, ops: list[Write]) -> dict[int, bool]:
        """For the writes that can be checked: did each land? (by ``id(op)``)"""
        checkable: dict[str, list[Write]] = {}
        for op in ops:
            meta: ModelMeta = type(op.doc)._uow_meta
            state = op.doc._uow_state
            if state is None or state.owner is not self._tracker:
                continue  # an untracked update: nothing says what it changed
            if (
                op.kind == INSERT
                # (An update of several statements: its version, bumped by the
                # first, does not tell whether the later ones landed.)
                or (op.kind == UPDATE and op.version_before is not None and op.stages is None)
                or (op.kind == DELETE and meta.version_field is not None)
            ):
                checkable.setdefault(op.collection, []).append(op)
        verdicts: dict[int, bool] = {}
        for name, group in checkable.items():
            query = {"_id": {"$in": [op.doc_id for op in group]}}
            found = self._channel.find_all(name, query, write=False)
            self._channel.queries += 1
            stored = {raw["_id"]: raw for raw in found}
            for op in group:
                now = stored.get(op.doc_id)
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

    def _adopt(self, ops: list[Write], in_transaction: bool) -> None:
        """Writes found to have landed: mark them as a flush would have."""
        for op in ops:
            version = type(op.doc)._uow_meta.version_field
            if op.kind == UPDATE and op.version_before is not None and version is not None:
                bumped = (op.statement or {}).get("$set", {}).get(version.key)
                object.__setattr__(op.doc, version.name, bumped)
        self._tracker.settle(ops, in_transaction)
        for op in ops:
            # Changed again in memory since: that change is still to be sent.
            self._tracker.requeue_changed(op.doc)


def _idempotent(op: Write) -> bool:
    """Whether sending ``op`` a second time leaves the same document."""
    if op.kind == DELETE or isinstance(op.request, ReplaceOne):
        return True
    if op.kind == INSERT:
        return False  # a second insert of the id is refused (duplicate key)
    return set(op.statement or {}) <= _IDEMPOTENT
