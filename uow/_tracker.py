"""The unit of work's bookkeeping: the identity map, the queues, and every state change.

A document's tracking state (its ``DocState``: status, snapshots, pins in the
identity map) changes here and nowhere else, through a few named transitions:

* ``add`` (``register_new`` or ``reattach``), ``mark_deleted``, ``queue_update``:
  the user's calls;
* ``load`` (``register_loaded``, or ``merge_loaded`` for a document already here),
  ``reload``: what a read brings;
* ``on_modified``, ``on_expired_read``, ``on_dropped``: the document's own hooks
  (``DocState.owner`` is the tracker);
* ``settle`` (a batch landed), ``nothing_to_write``, ``requeue_changed``: the flush;
* ``requeue_transaction`` (the transaction failed), ``transaction_committed``,
  ``restore`` (rollback);
* ``forget_insert``, ``detach``, ``forget_deleted``, ``clear_cache``,
  ``clear_queue``, ``detach_all``: letting documents go.

Everything else (the flush's organizer, the persistence of batches, the reading
of in-doubt writes, queries) only reads the queues and calls these.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.errors import PyMongoError

from ._changes import as_attribute_values, changed_paths
from ._diff import (
    loaded_snapshot,
    merged_snapshot,
    snapshot_of,
    stored_form,
)
from ._identity import (
    IdentityMap,
    Key,
    key_for,
    key_prefix,
    meta_of,
    stored_id,
)
from ._plan import (
    INSERT,
    UPDATE,
    ExplicitUpdate,
    InsertWrite,
    UpdateWrite,
    Write,
    WriteOp,
    unique_docs,
)
from ._stages import before_stages
from ._stamps import Replaced, adopt, put_back
from ._state import (
    DELETED_FOR_GOOD,
    DETACHED,
    NO_EXPIRED,
    DocState,
    ObjectState,
    copy_fields,
    expire,
    mutated,
    new_transaction_number,
    restore_fields,
    transaction_ended,
    unchanged,
    unexpire,
)
from ._types import LoadContext
from .document import Document, ModelMeta, set_state
from .exceptions import SessionClosedError, TooManyRequests, UowError
from .operators import MISSING

__all__: list[str] = []

# The states as module constants: in Python 3.11 each ``ObjectState.X`` is a class
# attribute lookup through the enum's metaclass (~70 ns), on every hot path here.
_TRANSIENT = ObjectState.TRANSIENT
_PENDING = ObjectState.PENDING
_PERSISTENT = ObjectState.PERSISTENT
_DELETED = ObjectState.DELETED
_DETACHED = ObjectState.DETACHED

logger = logging.getLogger("uow")

D = TypeVar("D", bound=Document)

#: Reads the fields ``projection`` names of the stored documents ``filter`` finds
#: (the channel's ``find``): how the tracker loads expired fields.
Find = Callable[..., Any]

#: At most this many documents' expired fields are read by one find (the ``$in``
#: of their ids): the first read of one reads those of up to as many others.
EXPIRED_BATCH = 1000


def snapshot(obj: Document) -> dict[str, Any]:
    """A snapshot of ``obj`` as it is now."""
    return snapshot_of(type(obj)._uow_meta, obj._uow_to_bson())


#: References a field's value has when only its document holds it, as counted in
#: ``_in_use``: the slot, the local name, and ``sys.getrefcount``'s argument.
_OWNED_ONLY = 3


def _in_use(obj: Document) -> bool:
    """Whether a container of ``obj`` is still referenced from elsewhere.

    In ``s.get(C, id).tags.append(x)`` the document's last reference goes when
    ``.tags`` is read, before the append runs: the finalizer then sees no change
    yet, but the list it is about to receive is alive. Such a document is kept
    (and compared at the next flush) rather than let go of with its change.
    """
    absent = obj._uow_absent or ()
    for field in type(obj)._uow_meta.mutable_fields:
        if field.name in absent:
            continue
        value = object.__getattribute__(obj, field.name)
        if value is not None and sys.getrefcount(value) > _OWNED_ONLY:
            return True
    return False


def _still_pinned(obj: Document, state: DocState) -> bool:
    """Whether a document just written clean stays kept for good. It was pinned
    when the user let go of it holding a change or a container someone else
    held (``on_dropped``); with the change written and no container of it held
    elsewhere any more, it is an ordinary clean document again (the cache may
    let it go)."""
    if state.pinned and not _in_use(obj):
        state.pinned = False
    return state.pinned


def _let_go(state: DocState) -> None:
    """The document leaves its session (``DETACHED``) and keeps its state record,
    snapshot included: ``add()`` elsewhere finds what changed since (see
    ``Tracker.reattach_changed``). Two slot stores, no new object."""
    state.owner = None
    state.status = _DETACHED


def _detached_copy(state: DocState) -> DocState:
    """A deleted document's state while its transaction may still roll back."""
    copy = DocState(None, state.key, _DETACHED, state.snapshot, state.id)
    copy.committed = state.committed
    return copy


class Tracker:
    """The identity map and the queues of one session; see the module docstring.

    The queues are read by the flush (``_flush``, ``_persistence``, ``_indoubt``):
    ``inserts``, ``deletes`` and ``modified`` by key, ``updates`` (explicit
    ``update()`` calls) by key or ``("untracked", id(doc))``, ``collections`` in
    the order work was first queued for them. ``tx_*``: what the open transaction
    did, to undo in memory if it is aborted.
    """

    def __init__(
        self, cache_size: int | None, ctx: LoadContext, no_tracking: bool, find: Find
    ) -> None:
        self._map = IdentityMap(cache_size)
        self.ctx = ctx
        self.no_tracking = no_tracking
        self._find = find
        self.closed = False
        self.inserts: dict[Key, Document] = {}
        self.deletes: dict[Key, Document] = {}
        self.modified: dict[Key, Document] = {}
        self.updates: dict[Any, ExplicitUpdate] = {}
        self.collections: dict[str, None] = {}
        # Collections of which this session tracked a document with fields that
        # change in place: only there can a query's autoflush have to look for one.
        self._mutable_in: set[str] = set()
        #: whether a flush ever emptied a $currentDate field (see _state.expire)
        self.expired_any = False
        self.tx_inserted: dict[Key, Document] = {}
        # Documents deleted in the open transaction, with their last committed form.
        self.tx_deleted: dict[Key, tuple[Document, dict[str, Any] | None]] = {}
        # Every write of the open transaction, in order (their documents are held
        # until it ends, so an abort can queue each of them again), and the
        # explicit update() calls it sent.
        self.tx_ops: list[Write] = []
        #: what the server's dates read back into embedded documents replaced in
        #: memory during the open transaction (see ``_stamps.put_back``)
        self.tx_stamps: Replaced = []
        #: documents whose emptied fields hold what was last known stored (emptied
        #: by an aborted transaction's rollback, to be read afresh on access): not
        #: read when they leave the session, unlike fields the server just set
        self._refresh_only: set[Key] = set()
        self.tx_explicit: dict[Any, ExplicitUpdate] = {}
        # The open transaction's number once a copy of one of its documents was made
        # (see _state.Carried): its end tells the copies what is stored.
        self._tx_number: int | None = None

    def check_open(self) -> None:
        if self.closed:
            raise SessionClosedError("this session is closed; open a new one")

    # -- the user's calls -----------------------------------------------------------

    def add(self, obj: Document) -> None:
        """Track a new document (``register_new``), or a detached one again (``reattach``)."""
        meta = meta_of(obj)
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
        assert collection is not None  # meta_of() refused an abstract class
        if meta.mutable:
            self._mutable_in.add(collection)
        sid = stored_id(meta, obj.id)
        key = key_for(collection, sid)
        current = self._map.get(key)
        if current is not None and current is not obj and current._uow_state.status is not _DELETED:
            raise UowError(
                f"another {type(current).__name__} object with id {obj.id!r} is already "
                "in this session; get() it, or expunge it first"
            )
        self.collections.setdefault(collection, None)
        if state is DELETED_FOR_GOOD:
            # Its delete landed: nothing of it is stored, so adding it is an insert.
            self.register_new(obj, key, sid)
        elif (
            state is not None
            and state is not DETACHED
            and state.snapshot is not None
            and current is None
            and self.tx_deleted.get(state.key, (None,))[0] is not obj
        ):
            self.reattach_changed(obj, state, key, sid)
        elif state is DETACHED and current is None:
            self.reattach(obj, key, sid)
        else:
            self.register_new(obj, key, sid)

    def add_all(self, objs: Iterable[Document]) -> None:
        """``add`` each of ``objs``.

        A new document of the class of the one before it, with an ObjectId not in
        the map, is registered here directly (``register_new``'s work, without
        the class's checks and four calls per document: 0.97 -> 0.59 µs per
        document, benchmarks/ CPU section); anything else goes through ``add``.
        """
        identity = self._map
        held = identity.held
        weak = identity.weak
        pinned = identity.pinned
        inserts = self.inserts
        last: type | None = None
        prefix = b""
        for obj in objs:
            if self.closed:
                self.check_open()
            cls = type(obj)
            if cls is not last or obj._uow_state is not None:
                self.add(obj)
                meta = obj._uow_meta
                # The next of this class may take the short way (its id is stored as is).
                last = cls if meta.plain_id_type is ObjectId else None
                prefix = key_prefix(meta.collection or "")
                continue
            sid = obj.id
            if type(sid) is not ObjectId:
                self.add(obj)
                continue
            key: Key = prefix + sid.binary  # key_for's
            if key in held or (weak and key in weak):
                self.add(obj)
                continue
            set_state(obj, DocState(self, key, _PENDING, None, sid))
            inserts[key] = obj
            held[key] = obj  # identity.hold's work: the key is in no weak entry
            pinned.add(key)

    def reattach(self, obj: Document, key: Key, sid: Any) -> None:
        """Stored already, with no snapshot kept (loaded by a ``no_tracking``
        session): track it again as it is now."""
        object.__setattr__(obj, "_uow_state", DocState(self, key, _PERSISTENT, snapshot(obj), sid))
        self._map.add_clean(key, obj)

    def reattach_changed(self, obj: Document, state: DocState, key: Key, sid: Any) -> None:
        """Detached (expunged, dropped by clear_cache, or from a closed session):
        tracked again with the snapshot it had when it was last stored, and marked
        as assigned to (compared whole at the next flush), so the changes made
        while it was detached are found and written."""
        state.owner = self
        state.key = key
        state.id = sid
        state.status = _PERSISTENT
        state.committed = state.snapshot
        state.modified = True
        state.assigned = None
        state.pinned = False
        state.expired = NO_EXPIRED
        self.modified[key] = obj
        self._map.hold(key, obj)

    def register_new(self, obj: Document, key: Key, sid: Any) -> None:
        """New, or replacing a deleted document of the same id: pending.

        The deleted one stays queued in ``deletes`` (held strongly there) and the
        key now finds this one.
        """
        set_state(obj, DocState(self, key, _PENDING, None, sid))
        self.inserts[key] = obj
        self._map.hold(key, obj)

    def mark_deleted(self, obj: Document) -> None:
        """Delete ``obj`` at the next flush; a pending insert is simply cancelled."""
        meta = meta_of(obj)
        state: DocState | None = obj._uow_state
        if state is not None and state.owner is self:
            if state.status is _PENDING:
                self.forget_insert(state.key, obj)
                return
            if state.status is _DELETED:
                return
            state.status = _DELETED
            self.deletes[state.key] = obj
            self.modified.pop(state.key, None)
            self.updates.pop(state.key, None)
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
        key = self.key(meta, obj.id)
        tracked = self._map.get(key)
        if tracked is not None:
            self.mark_deleted(tracked)
            return
        object.__setattr__(obj, "_uow_state", DocState(self, key, _DELETED, snapshot(obj)))
        self.deletes[key] = obj
        self._map.hold(key, obj)
        self._note_collection(meta)

    def queue_update(
        self,
        obj: Document,
        meta: ModelMeta,
        operators: dict[str, str],
        filter_: dict[str, Any] | None,
        upsert: bool,
    ) -> None:
        """An explicit ``update()``: forced on a tracked document, whole on another."""
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
        self.updates[key] = ExplicitUpdate(obj, operators, filter_, upsert, tracked)

    def forget_insert(self, key: Key, obj: Document) -> None:
        """Forget a pending insert: ``obj`` becomes transient.

        If it was to replace a deleted document of the same id, the key finds the
        deleted one again.
        """
        self.inserts.pop(key, None)
        self._map.discard(key, obj)
        replaced = self.deletes.get(key)
        if replaced is not None:
            self._map.hold(key, replaced)
        object.__setattr__(obj, "_uow_state", None)

    def _undelete_queued(self) -> None:
        """Queued deletes are dropped: their documents are persistent again."""
        for key, obj in self.deletes.items():
            state = obj._uow_state
            assert state is not None  # a queued document is tracked
            state.status = _PERSISTENT
            if state.modified or state.pinned:
                self._map.hold(key, obj)
                if state.modified:
                    self.modified[key] = obj
            else:
                self._map.add_clean(key, obj)
        self.deletes.clear()

    def clear_queue(self) -> None:
        """Forget queued inserts, deletes and explicit updates (not in-memory changes)."""
        for key, obj in list(self.inserts.items()):
            self.forget_insert(key, obj)
        self._undelete_queued()
        for key, explicit in self.updates.items():
            state = explicit.doc._uow_state
            if explicit.tracked and state is not None and not state.modified and not state.pinned:
                self._map.release(key, explicit.doc)
        self.updates.clear()

    # -- letting go -----------------------------------------------------------------

    def tracked_state(self, obj: Document) -> DocState:
        """``obj``'s state, if this tracker tracks it.

        Raises:
            UowError: it does not.
        """
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self:
            raise UowError(f"{type(obj).__name__} {obj.id!r} is not in this session")
        return state

    def detach(self, obj: Document) -> None:
        """Stop tracking ``obj`` (it becomes ``DETACHED``); its queued work is dropped."""
        state = self.tracked_state(obj)
        key = state.key
        if state.status is _PENDING:
            self.forget_insert(key, obj)
            return
        self.read_expired_before_letting_go([obj])
        self._map.discard(key, obj)
        if self.deletes.get(key) is obj:
            del self.deletes[key]
            replacing = self.inserts.get(key)
            if replacing is not None:  # the insert of the same id is no replace any more
                self._map.hold(key, replacing)
        else:
            self.modified.pop(key, None)
            self.updates.pop(key, None)
        unexpire(obj, state)
        _let_go(state)

    def everything(self) -> list[Document]:
        """Every document tracked: in the map, pending, or deleted."""
        return [*self._map.objects(), *self.inserts.values(), *self.deletes.values()]

    def clear_cache(self) -> None:
        """Forget clean documents (they become ``DETACHED``); changed ones stay."""
        clean = [
            obj
            for obj in self._map.objects()
            if obj._uow_state.status is _PERSISTENT and not self.has_change(obj, obj._uow_state)
        ]
        self.read_expired_before_letting_go(clean)
        for obj in clean:
            state = obj._uow_state
            self._map.discard(state.key)
            self.modified.pop(state.key, None)
            unexpire(obj, state)
            _let_go(state)

    def forget_deleted(self, obj: Document, in_transaction: bool) -> None:
        """A tracked document deleted by filter (remove_query, clear_collection)."""
        state = obj._uow_state
        assert state is not None
        self._map.discard(state.key)
        self.modified.pop(state.key, None)
        self.updates.pop(state.key, None)
        self.deletes.pop(state.key, None)
        unexpire(obj, state)
        if in_transaction:
            # Deleted inside the open transaction: rollback() brings it back.
            self.tx_deleted[state.key] = (obj, state.committed)
            object.__setattr__(obj, "_uow_state", _detached_copy(state))
        else:
            object.__setattr__(obj, "_uow_state", DELETED_FOR_GOOD)

    def forget_deleted_id(self, collection: str, sid: Any, in_transaction: bool) -> None:
        """The stored document ``sid`` of ``collection`` was deleted by filter."""
        obj = self._map.get(key_for(collection, sid))
        if obj is not None:
            self.forget_deleted(obj, in_transaction)

    def forget_class(self, meta: ModelMeta, cls: type[Document], in_transaction: bool) -> None:
        """Every stored ``cls`` document was deleted (clear_collection)."""
        for obj in self._map.objects():
            if type(obj)._uow_meta.collection == meta.collection and isinstance(obj, cls):
                self.forget_deleted(obj, in_transaction)

    def detach_all(self) -> None:
        """The session closes: every document is let go of, the queues dropped."""
        self.closed = True
        detached = [*self._map.objects(), *self.deletes.values()]
        if self.expired_any:  # a pass only for sessions that ever expired a field
            for obj in detached:
                unexpire(obj, obj._uow_state)
        aborted = self._transaction_wrote()
        if aborted:
            put_back(self.tx_stamps)
        for obj in detached:
            state = obj._uow_state
            if aborted:
                state.snapshot = state.committed  # what is stored without the transaction
            _let_go(state)
        for obj in self.inserts.values():
            set_state(obj, None)
        for obj in self.tx_inserted.values():
            set_state(obj, None)  # its insert was aborted with the transaction
        self._end_transaction(aborted)
        self._map.clear()
        self.inserts.clear()
        self.deletes.clear()
        self.modified.clear()
        self.updates.clear()

    # -- reading --------------------------------------------------------------------

    def key(self, meta: ModelMeta, id_value: Any) -> Key:
        assert meta.collection is not None
        return key_for(meta.collection, stored_id(meta, id_value))

    def lookup(self, key: Key) -> Any:
        """The object tracked under ``key``, or None (a hit refreshes its LRU place)."""
        return self._map.get(key)

    def load(self, cls: type[D], raw: Mapping[str, Any], absent: frozenset[str] | None = None) -> D:
        """The tracked object for a stored document (see ``load_all``)."""
        return self.load_all(cls, (raw,), absent)[0]

    def load_all(
        self, cls: type[D], rows: Iterable[Mapping[str, Any]], absent: frozenset[str] | None = None
    ) -> list[D]:
        """The tracked object for each stored document of ``rows``, in order: the
        one already loaded (``merge_loaded``), or a new one.

        One call per query's results, not one per document: what stays the same
        from one document to the next is looked up once.
        """
        if self.no_tracking:
            loaded_alone = []
            for raw in rows:
                obj = cls._uow_load(raw, self.ctx, absent)
                set_state(obj, DETACHED)
                loaded_alone.append(obj)
            return loaded_alone
        collection = cls._uow_meta.collection
        assert collection is not None
        prefix = key_prefix(collection)
        identity = self._map
        held = identity.held
        ctx = self.ctx
        new_state = DocState
        loader = cls._uow_load
        found: list[D] = []
        for raw in rows:
            sid = raw["_id"]
            # key_for, inline
            key: Key = prefix + sid.binary if type(sid) is ObjectId else (collection, sid)
            if key in held or identity.weak:
                known = identity.get(key)  # a hit refreshes its place in the LRU
                if known is not None:
                    self.merge_loaded(known, raw, absent)
                    found.append(known)
                    continue
            obj = loader(raw, ctx, absent)
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
                taken: dict[str, Any] = raw
            else:
                taken = loaded_snapshot(loaded, obj, raw)
            set_state(obj, new_state(self, key, _PERSISTENT, taken, sid))
            identity.add_loaded(key, obj)
            if loaded.mutable:
                self._mutable_in.add(collection)
            found.append(obj)
        return found

    def merge_loaded(self, obj: Any, raw: Mapping[str, Any], absent: frozenset[str] | None) -> None:
        """A query met a document already loaded: never overwrite unflushed changes.

        Only what the server decides ($currentDate fields) and fields a partial load
        left out are taken from the new result: empty slots, so filling them
        overwrites nothing, whatever else of the document changed. They join both
        snapshots (they were never changed here), so a rollback puts them back
        as stored, never as defaults.
        """
        state: DocState = obj._uow_state
        if state.status is not _PERSISTENT:
            return
        fill = set(obj._uow_absent or ()) - set(absent or ())
        if not state.expired and not fill:
            return
        fresh = type(obj)._uow_load(raw, self.ctx, absent)
        meta: ModelMeta = type(obj)._uow_meta
        names = {meta.by_key[k].name for k in state.expired if k in meta.by_key} | fill
        filled: set[str] = set()
        for name in names:
            if name in (fresh._uow_absent or ()):
                continue  # not in this query's result either
            object.__setattr__(obj, name, getattr(fresh, name))
            filled.add(name)
        remaining = frozenset(set(obj._uow_absent or ()) - filled) or None
        object.__setattr__(obj, "_uow_absent", remaining)
        if state.expired:
            # Expired fields this query did not read stay expired (read on access).
            still = {k: v for k, v in state.expired.items() if meta.by_key[k].name not in filled}
            state.expired = still or NO_EXPIRED
        merged = merged_snapshot(meta, obj, state.snapshot or {}, raw, filled)
        if state.committed is not None and state.committed is not state.snapshot:
            state.committed = merged_snapshot(meta, obj, state.committed, raw, filled)
        else:
            state.committed = merged
        state.snapshot = merged

    def adopt_stamps(self, obj: Document, raw: Mapping[str, Any], paths: list[str]) -> None:
        """The flush read back what the server set at ``paths`` ($currentDate in
        embedded documents): memory and the snapshot take it (see _stamps)."""
        state = obj._uow_state
        if state is None or state.status is not _PERSISTENT or state.snapshot is None:
            return
        new, replaced = adopt(obj, state.snapshot, raw, paths, self.ctx)
        if self.tx_ops:
            # Inside a transaction (its writes are in tx_ops) an abort puts back what
            # the server's values replaced: they were never stored.
            self.tx_stamps.extend(replaced)
        if state.committed is state.snapshot:
            state.committed = new
        state.snapshot = new

    def reload(self, obj: Document, raw: Mapping[str, Any]) -> None:
        """``refresh()``: ``obj`` becomes what the server holds, its changes dropped."""
        state = obj._uow_state
        assert state is not None
        fresh = type(obj)._uow_load(raw, self.ctx)
        copy_fields(fresh, obj)
        # As at any load: keys the stored document lacks are marked Absent.
        state.snapshot = loaded_snapshot(meta_of(obj), obj, raw)
        if not any(op.doc is obj for op in self.tx_ops):
            # What was read is committed (no write of this session's open
            # transaction is in it): an abort must come back to it, not to the
            # form before the refresh.
            state.committed = state.snapshot
        state.modified = False
        state.expired = NO_EXPIRED
        self.modified.pop(state.key, None)
        self.updates.pop(state.key, None)
        if state.status is _PERSISTENT and not state.pinned:
            self._map.add_clean(state.key, obj)

    # -- the document's hooks (DocState.owner is the tracker) ------------------------

    def on_modified(self, obj: Document, state: DocState, bit: int) -> None:
        """A field (``FieldMeta.bit``) of a document not marked modified yet was
        assigned to: mark it, and hold it until flushed."""
        state.modified = True
        state.assigned = bit
        if state.status is _PERSISTENT:
            key = state.key
            self._map.hold(key, obj)
            self.modified[key] = obj
            self.collections.setdefault(type(obj)._uow_meta.collection or "", None)

    def on_expired_read(self, obj: Document, state: DocState) -> None:
        """A field the server set at the last flush ($currentDate) is read: load the
        expired fields of ``obj`` and of other documents of its collection that have
        some (up to ``EXPIRED_BATCH`` in all), in one find of those fields alone, so
        reading each of a flush's documents is not one query per document. Called
        by the class's ``__getattr__`` (``document._read_expired_or_refuse``)."""
        self.check_open()
        collection = type(obj)._uow_meta.collection
        batch = [obj]
        for other in self._map.objects():
            if len(batch) >= EXPIRED_BATCH:
                break
            other_state = other._uow_state
            if (
                other_state.expired
                and other is not obj
                and type(other)._uow_meta.collection == collection
            ):
                batch.append(other)
        self.load_expired(batch)

    def load_expired(self, objs: Iterable[Document]) -> None:
        """Read what the server set at the last flush ($currentDate) into those of
        ``objs`` whose fields it emptied: one find per collection (and per
        ``EXPIRED_BATCH`` documents), of those fields alone; the rest of each
        document, changed or not, stays as it is. A document no longer stored
        (deleted by another client) keeps the values this session had."""
        groups: dict[str, list[Document]] = {}
        for obj in objs:
            state = obj._uow_state
            if state is not None and state.expired and state.owner is self:
                groups.setdefault(type(obj)._uow_meta.collection or "", []).append(obj)
        for group in groups.values():
            for start in range(0, len(group), EXPIRED_BATCH):
                self._load_expired_batch(group[start : start + EXPIRED_BATCH])

    def _load_expired_batch(self, batch: list[Document]) -> None:
        meta = meta_of(batch[0])
        states = [self.tracked_state(obj) for obj in batch]
        keys: dict[str, int] = {}
        for state in states:
            keys.update(dict.fromkeys(state.expired, 1))
        ids = [state.id for state in states]
        found = {
            key_for(meta.collection or "", raw["_id"]): raw
            for raw in self._find(meta, {"_id": {"$in": ids}}, projection=keys)
        }
        for obj, state in zip(batch, states, strict=True):
            raw = found.get(state.key)
            if raw is None:  # deleted by someone else: what this session had stays
                unexpire(obj, state)
            else:
                self._fill_expired(obj, state, raw)

    def _fill_expired(self, obj: Document, state: DocState, raw: Mapping[str, Any]) -> None:
        """Put the expired fields of ``obj`` that ``raw`` holds in place, in memory and
        in its snapshot."""
        meta = meta_of(obj)
        expired = state.expired
        others = frozenset(f.name for f in meta.fields if f.key not in expired and f.key != "_id")
        fresh = type(obj)._uow_load(raw, self.ctx, others)
        loaded = fresh._uow_absent or ()
        absent = set(obj._uow_absent or ())
        filled: set[str] = set()
        for key in expired:
            field = meta.by_key[key]
            if field.name in loaded or field.name not in absent:
                continue
            object.__setattr__(obj, field.name, getattr(fresh, field.name))
            absent.discard(field.name)
            filled.add(field.name)
        object.__setattr__(obj, "_uow_absent", frozenset(absent) or None)
        taken = merged_snapshot(meta, obj, state.snapshot or {}, raw, filled)
        if state.committed is state.snapshot:
            state.committed = taken
        state.snapshot = taken
        state.expired = NO_EXPIRED

    def read_expired_before_letting_go(self, objs: Iterable[Document]) -> None:
        """``objs`` are about to leave the session (close, expunge, clear_cache): read
        the fields the server set at their last flush first, so that no document
        outside the session holds a value the store no longer has. If the read
        fails, they keep the values this session had (logged)."""
        if not self.expired_any:
            return
        refresh_only = self._refresh_only
        leaving = [
            obj
            for obj in objs
            if obj._uow_state is not None
            and obj._uow_state.expired
            and obj._uow_state.key not in refresh_only
        ]
        if not leaving:
            return
        try:
            self.load_expired(leaving)
        except (PyMongoError, TooManyRequests) as error:
            logger.warning(
                "could not read the $currentDate fields of %d document(s) leaving the "
                "session (%s): they keep the values they had before the flush; "
                "refresh() them in another session to read the stored ones",
                len(leaving),
                error,
            )

    def on_dropped(self, obj: Document, state: DocState) -> None:
        """The finalizer's look at a document nobody holds: keep it if it changed."""
        if self.closed:
            return
        if state.status is _PERSISTENT and (self.differs(obj, state) or _in_use(obj)):
            state.pinned = True
            self._map.hold(state.key, obj)
            self.modified[state.key] = obj
            return
        self._map.forget_dead(state.key, obj)

    # -- the flush ------------------------------------------------------------------

    def nothing_to_write(
        self, obj: Document, state: DocState, restore: Mapping[str, Any] | None = None
    ) -> None:
        """Assigned to, but nothing to write: clean again, and evictable again.

        ``restore``: put the fields back to it first (only the version differed:
        never adopt a version nobody wrote).
        """
        if restore is not None:
            restore_fields(obj, restore, self.ctx)
        state.modified = False
        self.modified.pop(state.key, None)
        if not _still_pinned(obj, state):
            self._map.release(state.key, obj)

    def settle(self, ops: list[Write], in_transaction: bool) -> None:
        """Mark the documents whose writes landed: clean, persistent, or gone.

        Inside a transaction they are held (never evicted) until it ends, so that
        an abort can queue every one of them again.
        """
        if in_transaction:
            self.tx_ops.extend(ops)
        elsewhere: list[Write] = []
        for op in ops:
            obj = op.doc
            state: DocState | None = obj._uow_state
            if state is None or state.owner is not self:
                elsewhere.append(op)  # an untracked explicit update
                continue
            key = state.key
            kind = op.kind
            # (an UpdateWrite, the common case, is tested first: it is never a replace)
            if type(op) is UpdateWrite or (
                kind == UPDATE and not isinstance(op.request, ReplaceOne)
            ):
                # (the slot first: a plain update's is made with it)
                new = (op.new_snapshot if type(op) is UpdateWrite else None) or op.snapshot
                if new is None:
                    # An untracked document's explicit update (added here since):
                    # not this state's write; its own change, if any, is another.
                    continue
                state.snapshot = new
                state.modified = False
                self.modified.pop(key, None)
                if self.updates:
                    explicit = self.updates.pop(key, None)
                    if in_transaction and explicit is not None:
                        self.tx_explicit.setdefault(key, explicit)
                meta: ModelMeta = type(obj)._uow_meta
                if meta.current_date_keys:
                    expire(meta, obj, state)
                    self._refresh_only.discard(key)
                    self.expired_any = True
                if in_transaction:
                    self._map.hold(key, obj)
                else:
                    state.committed = new
                    if state.pinned and _still_pinned(obj, state):
                        self._map.hold(key, obj)
                    else:
                        self._map.add_clean(key, obj)
            elif kind in (INSERT, UPDATE):  # (an UPDATE here: a replace)
                replaced = self.deletes.pop(key, None) if self.deletes else None
                if replaced is not None and replaced is not obj:
                    old = replaced._uow_state
                    assert old is not None  # a queued delete is tracked
                    unexpire(replaced, old)
                    if in_transaction:
                        # Replaced inside the transaction: an abort brings it back
                        # as last committed (or, never committed, transient).
                        self.tx_deleted.setdefault(key, (replaced, old.committed))
                        object.__setattr__(replaced, "_uow_state", _detached_copy(old))
                    else:
                        object.__setattr__(replaced, "_uow_state", DETACHED)
                self.inserts.pop(key, None)
                state.status = _PERSISTENT
                # (an insert's is what it sent: the slot, not a property call)
                new = op.request if type(op) is InsertWrite else op.snapshot
                assert new is not None  # an insert's or a replace's
                state.snapshot = new
                # Assigned to while pending: that is in the insert. Left set, the
                # flag would keep the next assignment from queueing the document.
                state.modified = False
                if in_transaction:
                    # The object whose write an abort undoes (a replace's new one
                    # takes the key from the one it replaced).
                    self.tx_inserted[key] = obj
                    self._map.hold(key, obj)
                else:
                    state.committed = new
                    self._map.add_inserted(key, obj)
            else:
                self.deletes.pop(key, None)
                self._map.discard(key, obj)
                unexpire(obj, state)
                if in_transaction:
                    self.tx_deleted[key] = (obj, state.committed)
                    object.__setattr__(obj, "_uow_state", _detached_copy(state))
                else:
                    object.__setattr__(obj, "_uow_state", DELETED_FOR_GOOD)
        for op in elsewhere:
            self._expire_written(op)
        if not self.updates:
            return
        untracked = {id(op.doc) for op in ops}
        for key in [k for k, u in self.updates.items() if not u.tracked]:
            explicit = self.updates[key]
            if id(explicit.doc) in untracked:
                if in_transaction:
                    self.tx_explicit.setdefault(key, explicit)
                del self.updates[key]

    def _expire_written(self, op: Write) -> None:
        """An explicit update of an object the session does not track landed on a
        stored document it does track (the same ``_id``): the fields it wrote are
        the server's now, read again on their next access (as ``$currentDate``'s),
        so memory never holds a value the store no longer has."""
        target = op.target
        sid = target.get("_id") if target is not None else None
        if sid is None or isinstance(sid, Mapping):
            # Targeted by an id_expression: which document it changed is unknown.
            return
        meta = type(op.doc)._uow_meta
        assert meta.collection is not None
        obj = self._map.get_quiet(key_for(meta.collection, sid))
        if obj is None or obj is op.doc:
            return
        state: DocState = obj._uow_state
        if state.status is not _PERSISTENT or state.snapshot is None:
            return
        by_key = type(obj)._uow_meta.by_key
        written = {
            path.split(".", 1)[0] for paths in (op.statement or {}).values() for path in paths
        }
        keys = [key for key in written if key in by_key and key != "_id"]
        if keys:
            expire(type(obj)._uow_meta, obj, state, keys)
            self._refresh_only.discard(state.key)
            self.expired_any = True

    def settle_part(self, op: Write, landed: int) -> None:
        """Only the first ``landed`` statements of update ``op`` landed (see
        ``_stages.in_stages``): the document's snapshot becomes what they wrote (its
        version as loaded: the last statement bumps it), and the rest of its
        change stays queued."""
        state = op.doc._uow_state
        if state is None or state.snapshot is None or op.stages is None:
            return
        part = before_stages(op.snapshot or {}, op.stages, landed)
        version = meta_of(op.doc).version_field
        if version is not None:
            part = {key: value for key, value in part.items() if key != version.key}
            loaded = state.snapshot.get(version.key, MISSING)
            if loaded is not MISSING:
                part[version.key] = loaded
        self.settle([WriteOp(UPDATE, op.collection, op.doc, op.request, part)], False)
        self.requeue_changed(op.doc)

    def requeue_changed(self, obj: Document) -> None:
        """A write found landed after the fact (``_indoubt``): if ``obj`` changed
        again in memory since, that change is still to be sent."""
        state: DocState | None = obj._uow_state
        if (
            state is not None
            and state.owner is self
            and state.status is _PERSISTENT
            and state.snapshot is not None
            and not unchanged(obj, state.snapshot)
        ):
            state.modified = True
            state.assigned = None
            self.modified[state.key] = obj
            self._map.hold(state.key, obj)

    # -- the transaction's end ------------------------------------------------------

    #: What an error says of the changes an aborted transaction leaves: all are
    #: unflushed again (``requeue_transaction``), but a document let go of since
    #: its write is no longer the session's to queue.
    REQUEUED = (
        "every change since the last commit is unflushed again and stays queued (a "
        "document let go of since, by expunge or clear_cache, holds its change until "
        "it is added again)"
    )

    def requeue_transaction(self) -> list[Document]:
        """The open transaction was aborted: queue all of it again.

        Documents inserted in it are ``PENDING`` again, deleted ones ``DELETED``,
        updated ones dirty against their last committed form, explicit updates
        queued again. Returns the documents whose writes are unflushed again.
        """
        unflushed = unique_docs(op.doc for op in self.tx_ops)
        put_back(self.tx_stamps)
        for key, obj in self.tx_inserted.items():
            state = obj._uow_state
            assert state is not None
            state.status = _PENDING
            state.snapshot = None
            # Assigned to since its insert: the insert writes that too, and a
            # pending document is no update (cancelling the insert forgets it).
            state.modified = False
            self.modified.pop(key, None)
            self.inserts[key] = obj
            self._map.hold(key, obj)
        for key, (obj, committed) in self.tx_deleted.items():
            if committed is None:
                # Inserted and deleted (or replaced) in the aborted transaction:
                # neither happened, and nothing of it is left to do.
                if self.inserts.get(key) is obj:
                    del self.inserts[key]
                self._map.discard(key, obj)
                object.__setattr__(obj, "_uow_state", None)
                continue
            if self.inserts.get(key) is obj:
                del self.inserts[key]
                # Deleted and added back: as far as the server knows, neither happened.
                state = DocState(self, key, _PERSISTENT, committed)
                state.modified = True
                state.assigned = None
                object.__setattr__(obj, "_uow_state", state)
                self.modified[key] = obj
                self._map.hold(key, obj)
                continue
            state = DocState(self, key, _DELETED, committed)
            object.__setattr__(obj, "_uow_state", state)
            self.deletes[key] = obj
            self._map.hold(key, obj)
        for key, explicit in self.tx_explicit.items():
            state = explicit.doc._uow_state
            if not explicit.tracked or (
                state is not None and state.owner is self and state.status is _PERSISTENT
            ):
                self.updates.setdefault(key, explicit)
                if explicit.tracked:
                    self._map.hold(key, explicit.doc)
        self._let_go_back_to_committed()
        self._end_transaction(aborted=True)
        for obj in self._map.objects():
            state = obj._uow_state
            if state.status is _PERSISTENT and state.snapshot is not state.committed:
                state.snapshot = state.committed
                # Marked as assigned to: a document without mutable fields is only
                # compared with its snapshot when it is (is_dirty, has_changes...).
                state.modified = True
                state.assigned = None
                self.modified[state.key] = obj
                self._map.hold(state.key, obj)
        return unflushed

    def _let_go_back_to_committed(self) -> None:
        """The open transaction was aborted: a document let go of (expunge,
        clear_cache) after its write in it is stored as last committed again,
        which ``add()`` must compare it with (``reattach_changed``)."""
        for op in self.tx_ops:
            state = op.doc._uow_state
            if (
                state is not None
                and state.owner is None
                and state.status is _DETACHED
                and state is not DETACHED
                and state is not DELETED_FOR_GOOD
            ):
                state.snapshot = state.committed

    def open_transaction_number(self) -> int | None:
        """The number copies carry of the open transaction (``_state.Carried``), if
        it wrote anything; None outside one."""
        if not self._transaction_wrote():
            return None
        if self._tx_number is None:
            self._tx_number = new_transaction_number()
        return self._tx_number

    def _transaction_wrote(self) -> bool:
        """Whether the open transaction (if any) wrote anything: closing without a
        commit then aborts it."""
        return bool(self.tx_ops or self.tx_inserted or self.tx_deleted)

    def _end_transaction(self, aborted: bool) -> None:
        if self._tx_number is not None:
            transaction_ended(self._tx_number, aborted)
            self._tx_number = None
        self.tx_stamps.clear()
        self.tx_inserted.clear()
        self.tx_deleted.clear()
        self.tx_explicit.clear()
        self.tx_ops.clear()

    def transaction_committed(self, transactional: bool) -> None:
        """A commit succeeded: the transaction's documents may be evicted again,
        and (``transactional``) what was flushed is what is committed."""
        for obj, _ in self.tx_deleted.values():
            set_state(obj, DELETED_FOR_GOOD)  # nothing stored to go back to
        for op in self.tx_ops:
            state = op.doc._uow_state
            if (
                state is not None
                and state.owner is self
                and state.status is _PERSISTENT
                and not state.modified
                and not _still_pinned(op.doc, state)
                and state.key not in self.updates
            ):
                self._map.release(state.key, op.doc)
        self._end_transaction(aborted=False)
        if transactional:
            for obj in self._map.objects():
                state = obj._uow_state
                state.committed = state.snapshot

    def restore(self, aborted: bool) -> None:
        """Rollback: drop the queue, and every tracked document goes back to what the
        database holds (its last committed form if a transaction was ``aborted``,
        its last flushed one if not). Pending inserts become ``TRANSIENT``."""
        for key, obj in list(self.inserts.items()):
            self.forget_insert(key, obj)
        self._undelete_queued()
        self.updates.clear()
        self.modified.clear()
        if aborted:
            put_back(self.tx_stamps)  # (documents let go of since included)
            for key, obj in self.tx_inserted.items():
                self._map.discard(key, obj)
                object.__setattr__(obj, "_uow_state", None)
            for key, (obj, committed) in self.tx_deleted.items():
                if committed is None:
                    # Inserted in the aborted transaction too: never stored.
                    object.__setattr__(obj, "_uow_state", None)
                    continue
                # Its delete was aborted: tracked again, as last committed.
                object.__setattr__(obj, "_uow_state", DocState(self, key, _PERSISTENT, committed))
                self._map.add_clean(key, obj)
            self._let_go_back_to_committed()
        self._end_transaction(aborted)
        for obj in self._map.objects():
            state = obj._uow_state
            target = state.committed if aborted else state.snapshot
            if target is None:
                continue
            if state.expired and not aborted:
                # Fields still to be read from the server stay so (comparing would
                # read them now); the others are put back.
                expired = list(state.expired)
                restore_fields(obj, target, self.ctx)
                state.expired = NO_EXPIRED
                expire(meta_of(obj), obj, state, expired)
            elif target is not state.snapshot or not unchanged(obj, target):
                restore_fields(obj, target, self.ctx)
                state.expired = NO_EXPIRED  # the fields are back, as last committed
            state.snapshot = target
            state.modified = False
            if aborted:
                # The aborted transaction's view is gone, and other sessions may have
                # written since this one read: each field is read again on its next
                # access (one find per document), never left as the session last
                # saw it. A document since deleted keeps its committed values.
                meta = meta_of(obj)
                absent = obj._uow_absent or ()
                keys = [f.key for f in meta.fields if not f.is_id and f.name not in absent]
                expire(meta, obj, state, keys)
                self.expired_any = True
                self._refresh_only.add(state.key)
            if not state.pinned:
                self._map.add_clean(state.key, obj)

    # -- inspection -----------------------------------------------------------------

    def objects(self) -> list[Any]:
        """Every document in the identity map alive now."""
        return self._map.objects()

    def tracked_at_most(self) -> int:
        """At least as many as the documents in the identity map (no list made)."""
        return self._map.size_bound()

    def status_of(self, obj: Document) -> ObjectState:
        """Where ``obj`` stands with this tracker."""
        state: DocState | None = obj._uow_state
        if state is None:
            return _TRANSIENT
        if state.owner is not self:
            return _DETACHED
        return state.status

    def differs(self, obj: Document, state: DocState) -> bool:
        """Whether ``obj`` is not what its snapshot says (a value assigned back is no change)."""
        taken = state.snapshot
        if taken is None:
            return True
        if state.modified:
            return not unchanged(obj, taken)
        return type(obj)._uow_meta.mutable and mutated(obj, taken)

    def has_change(self, obj: Document, state: DocState) -> bool:
        return state.key in self.updates or self.differs(obj, state)

    def is_dirty(self, obj: Document) -> bool:
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self or state.status is not _PERSISTENT:
            return False
        return state.key in self.updates or self.has_change(obj, state)

    def changed_paths(self, obj: Document) -> dict[str, tuple[Any, Any]]:
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self or state.snapshot is None:
            return {}
        if not self.differs(obj, state):
            return {}
        return changed_paths(type(obj)._uow_meta, state.snapshot, obj._uow_to_bson())

    def original(self, obj: Document) -> Document:
        """``obj`` as last loaded or flushed (itself if it has no snapshot here)."""
        state: DocState | None = obj._uow_state
        if state is None or state.owner is not self or state.snapshot is None:
            return obj
        return type(obj)._uow_load(stored_form(state.snapshot), self.ctx, obj._uow_absent)

    def has_changes(self) -> bool:
        if self.inserts or self.deletes or self.updates:
            return True
        return any(
            self.has_change(obj, obj._uow_state)
            for obj in self._map.objects()
            if obj._uow_state.status is _PERSISTENT
        )

    def what_changed(self) -> dict[tuple[str, Any], dict[str, tuple[Any, Any]]]:
        changes: dict[tuple[str, Any], dict[str, tuple[Any, Any]]] = {}
        for obj in self._map.objects():
            if obj._uow_state.status is not _PERSISTENT:
                continue
            paths = self.changed_paths(obj)
            if paths:
                state = obj._uow_state
                values = as_attribute_values(type(obj)._uow_meta, paths, self.ctx)
                changes[(type(obj)._uow_meta.collection, state.id)] = values
        return changes

    def unsaved_changes(self) -> int:
        """How many documents hold work a close would drop: queued or changed ones,
        and those written in a transaction that is not committed."""
        keys = {*self.inserts, *self.deletes, *self.updates, *self.modified}
        keys.update(op.doc._uow_state.key for op in self.tx_ops if op.doc._uow_state is not None)
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

    def counts(self) -> tuple[int, int, int, int]:
        """Tracked documents, pending inserts, pending updates, pending deletes."""
        dirty = {
            obj._uow_state.key
            for obj in self._map.objects()
            if obj._uow_state.status is _PERSISTENT and self.has_change(obj, obj._uow_state)
        }
        return len(self._map), len(self.inserts), len(dirty | set(self.updates)), len(self.deletes)

    def may_change(self, collection: str | None) -> bool:
        """Whether a flush could change what a query on ``collection`` finds."""
        if self.inserts or self.deletes or self.updates or self.modified:
            return True
        if collection not in self._mutable_in:
            return False  # nothing tracked there can change without an assignment
        for obj in self._map.objects():
            state = obj._uow_state
            if (
                type(obj)._uow_meta.collection == collection  # (no key decoded per document)
                and state.status is _PERSISTENT
                and self.has_change(obj, state)
            ):
                return True
        return False

    def __len__(self) -> int:
        return len(self._map)

    def _note_collection(self, meta: ModelMeta) -> None:
        assert meta.collection is not None
        self.collections.setdefault(meta.collection, None)
