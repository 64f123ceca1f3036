"""Per-document state: status, snapshots, and the diff that becomes an update.

Each tracked document holds a ``DocState`` in its ``_uow_state`` slot. The
snapshot is the document's stored form (the dict pymongo is given), taken at
load and after each flush, that shares no list or dict with the live document:
so it can never change behind the session's back, and it is never changed in
place once made (the committed snapshot and the flushed one may be one dict; it
may be the very dict the driver returned or was given, which its command
listeners may hold too).

"Did anything change?" is answered cheaply: a document nobody assigned to can
only have changed in place, so only its containers and embedded documents are
compared with the snapshot (``mutated``), with ``==`` at C speed where ``==``
means "the same BSON", and with ``same`` elsewhere. Only a changed document is
diffed path by path, by ``uow._diff``.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import weakref
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from . import document
from ._diff import stored_form
from ._identity import Key, id_of
from .operators import MISSING, same

if TYPE_CHECKING:
    from .document import Document, ModelMeta, _DocumentBase

__all__ = ["ObjectState"]


class ObjectState(enum.Enum):
    """Where a document stands with a session (``Session.state(obj)``)."""

    #: never stored, or an insert that was forgotten before it was flushed
    TRANSIENT = "transient"
    #: added, not flushed yet
    PENDING = "pending"
    #: stored and tracked by this session
    PERSISTENT = "persistent"
    #: deleted with ``delete()``, not flushed yet
    DELETED = "deleted"
    #: stored, but not tracked by this session
    DETACHED = "detached"


#: One empty frozenset for every state (each frozenset() is a new object to collect).
NO_KEYS: frozenset[str] = frozenset()
#: No expired fields (see ``DocState.expired``): one shared, read-only empty mapping.
NO_EXPIRED: Mapping[str, Any] = MappingProxyType({})


class StateOwner(Protocol):
    """What a document's state reports to: the session's tracker (``_tracker``),
    which this module cannot import (it sits above)."""

    def on_modified(self, obj: Any, state: DocState, bit: int) -> None: ...

    def on_dropped(self, obj: Any, state: DocState) -> None: ...

    def on_expired_read(self, obj: Any, state: DocState) -> None: ...

    def open_transaction_number(self) -> int | None: ...


class DocState:
    """What a session knows of one tracked document."""

    __slots__ = (
        "assigned",
        "committed",
        "expired",
        "id",
        "key",
        "modified",
        "owner",
        "pinned",
        "snapshot",
        "status",
    )

    def __init__(
        self,
        owner: StateOwner | None,
        key: Key,
        status: ObjectState,
        snapshot: dict[str, Any] | None = None,
        stored_id: Any = MISSING,
    ) -> None:
        #: the session's tracker (None for the shared detached marker)
        self.owner: StateOwner | None = owner
        #: the identity map's key (see ``_identity.key_for``)
        self.key = key
        #: the document's ``_id`` as stored
        self.id = id_of(key) if stored_id is MISSING else stored_id
        self.status = status
        #: stored form as last loaded or flushed (None: never stored)
        self.snapshot = snapshot
        #: stored form as last committed, where a transaction may roll back
        self.committed = snapshot
        #: assigned to since the last flush (or to be compared whole for another reason)
        self.modified = False
        #: the fields assigned to (a mask of ``FieldMeta.bit``: an int allocates no
        #: object the garbage collector tracks), when ``modified`` is for assignments
        #: only; else None: the whole document is compared
        self.assigned: int | None = None
        #: kept alive by the session for good (see ``dropped``)
        self.pinned = False
        #: keys the server set at the last flush ($currentDate), each with the value
        #: the session had for it (MISSING if not loaded): their slots are empty until
        #: a read loads them (``expire``), and the value comes back if the document
        #: is let go of first (``unexpire``)
        self.expired: Mapping[str, Any] = NO_EXPIRED

    def dropped(self, obj: _DocumentBase) -> None:
        """The last reference is going: keep the document if it holds a change."""
        if self.owner is not None:
            self.owner.on_dropped(obj, self)


#: The state of a document a session let go of with nothing kept: loaded by a
#: ``no_tracking`` session, or replaced by a new object of its id. ``add()`` tracks
#: it again as it is now (it is stored).
DETACHED = DocState(None, ("", None), ObjectState.DETACHED)
#: The state of a document whose delete landed (and, in a transaction, was
#: committed): ``DETACHED`` to the user, but nothing of it is stored any more, so
#: ``add()`` inserts it again.
DELETED_FOR_GOOD = DocState(None, ("", None), ObjectState.DETACHED)


def expire(
    meta: ModelMeta, obj: Document, state: DocState, keys: Iterable[str] | None = None
) -> None:
    """Empty the fields stored under ``keys`` of ``obj``: the server decides them now
    (by default ``meta.current_date_keys``, which the server just set).

    Reading one then reaches the class's ``__getattr__``
    (``document._read_expired_or_refuse``), which asks the session to load them
    (``Tracker.on_expired_read``): the flush itself reads nothing.
    """
    type(obj)._uow_allow_empty_slots()
    absent = set(obj._uow_absent or ())
    computed: dict[str, Any] = dict(state.expired)
    for key in meta.current_date_keys if keys is None else keys:
        if key in computed:
            continue
        name = meta.by_key[key].name
        if name in absent:
            computed[key] = MISSING
            continue
        computed[key] = object.__getattribute__(obj, name)
        object.__delattr__(obj, name)
        absent.add(name)
    object.__setattr__(obj, "_uow_absent", frozenset(absent))
    state.expired = computed


def unexpire(obj: Document, state: DocState) -> None:
    """``obj`` leaves its session before its expired fields were read: put back the
    values the session had for them (no session is left to load them from)."""
    if not state.expired:
        return
    meta = type(obj)._uow_meta
    absent = set(obj._uow_absent or ())
    for key, value in state.expired.items():
        name = meta.by_key[key].name
        if value is not MISSING and name in absent:
            object.__setattr__(obj, name, value)
            absent.discard(name)
    object.__setattr__(obj, "_uow_absent", frozenset(absent) or None)
    state.expired = NO_EXPIRED


def restore_fields(obj: Document, target: Mapping[str, Any], ctx: Any) -> None:
    """Put ``obj``'s fields back to snapshot ``target`` (rollback).

    A field the snapshot has no entry for was never loaded: it is left out again
    (reading it raises ``FieldNotLoaded``), whatever was assigned to it since.
    """
    meta = type(obj)._uow_meta
    absent = frozenset(f.name for f in meta.fields if not f.is_id and f.key not in target)
    # A copy: the object must share no list or dict with the snapshot.
    fresh = type(obj)._uow_load(stored_form(target), ctx, absent or None)
    copy_fields(fresh, obj)


def copy_fields(source: Document, target: Document) -> None:
    """Give ``target`` the fields of ``source``; those ``source`` lacks are emptied."""
    absent = source._uow_absent or ()
    if absent:
        type(target)._uow_allow_empty_slots()
    for f in type(source)._uow_meta.fields:
        if f.name not in absent:
            object.__setattr__(target, f.name, getattr(source, f.name))
        else:
            with contextlib.suppress(AttributeError):  # (empty already)
                object.__delattr__(target, f.name)
    object.__setattr__(target, "_uow_extra", source._uow_extra)
    object.__setattr__(target, "_uow_absent", source._uow_absent)


def mutated(obj: Document, snapshot: Mapping[str, Any]) -> bool:
    """Whether a field of ``obj`` that can change in place differs from ``snapshot``.

    Fields assigned to are not looked at (the assignment marks the document). The
    comparison is generated per class (``_uow_mutated``).
    """
    return obj._uow_mutated(snapshot)


def unchanged(obj: Document, snapshot: Mapping[str, Any]) -> bool:
    """Whether ``obj``'s whole stored form is the same to MongoDB as ``snapshot``."""
    return same(snapshot, obj._uow_to_bson())


# -------------------------------------------------- copies (copy, deepcopy, pickle)

#: A copy carries what is stored: (snapshot, key, id), or, for a document whose
#: writes in a transaction still open are flushed but not committed, (snapshot,
#: key, id, committed snapshot, the transaction's number). Which of the two
#: snapshots is stored is known only when that transaction ends.
Carried = tuple[Any, ...]

#: The copies of each open transaction that has any, by its number, held weakly
#: (``transaction_ended`` settles those still alive).
_OPEN_COPIES: dict[int, list[weakref.ref[Document]]] = {}
#: How each transaction that had copies ended (True: aborted), for a copy unpickled
#: after its end; the last ``_ENDED_KEPT`` only.
_ENDED: dict[int, bool] = {}
_ENDED_KEPT = 1000
_numbers = itertools.count(1)


def new_transaction_number() -> int:
    """A number for an open transaction copies are made in (see ``Carried``)."""
    number = next(_numbers)
    _OPEN_COPIES[number] = []
    return number


def transaction_ended(number: int, aborted: bool) -> None:
    """Transaction ``number`` committed or was aborted: each copy made while it
    was open, still detached, takes what is stored now as its snapshot (after an
    abort, the last committed one; ``None``, a document first inserted in it, is
    inserted when the copy is added)."""
    for ref in _OPEN_COPIES.pop(number, ()):
        copy = ref()
        if copy is not None:
            _settle_copy(copy, aborted)
    _ENDED[number] = aborted
    if len(_ENDED) > _ENDED_KEPT:
        del _ENDED[next(iter(_ENDED))]


def _settle_copy(copy: Document, aborted: bool) -> None:
    state = copy._uow_state
    if state is None or state.owner is not None or state.status is not ObjectState.DETACHED:
        return  # added to a session while the transaction was open: it decided
    if not aborted:
        state.committed = state.snapshot
    elif state.committed is None:
        # First inserted in the aborted transaction: never stored.
        object.__setattr__(copy, "_uow_state", None)
    else:
        state.snapshot = state.committed


def _stored_of(obj: Document) -> Carried | None:
    """What a copy of ``obj`` carries of what is stored (``document.STORED_COPIES``,
    see ``Carried``): the snapshot as last flushed, its key and its id (no snapshot
    for a document a ``no_tracking`` session loaded: its copy is stored as it is,
    like it), and the committed snapshot while a transaction may still undo the
    flush; None for a document that is not stored, or no longer. Fields the
    server set at the last flush are read first (the copy could not read them: it
    belongs to no session)."""
    state: DocState | None = obj._uow_state
    if state is DETACHED:
        return (None, None, None)
    if state is None or state.snapshot is None:
        return None
    if state.status is not ObjectState.PERSISTENT and state.status is not ObjectState.DETACHED:
        return None
    owner = state.owner
    if state.expired and owner is not None:
        owner.on_expired_read(obj, state)
    if owner is not None and state.committed is not state.snapshot:
        number = owner.open_transaction_number()
        if number is not None:
            return (state.snapshot, state.key, state.id, state.committed, number)
    return (state.snapshot, state.key, state.id)


def _restore_stored(obj: Document, carried: Carried) -> None:
    """A copy made with ``carried`` (see ``_stored_of``) is a detached document with
    that snapshot: ``add()`` tracks it again and writes what differs from it."""
    taken, key, sid = carried[:3]
    if key is None or taken is None:
        object.__setattr__(obj, "_uow_state", DETACHED)
        return
    state = DocState(None, key, ObjectState.DETACHED, taken, sid)
    object.__setattr__(obj, "_uow_state", state)
    if carried[3:]:  # made while its transaction was open
        state.committed, number = carried[3:]
        copies = _OPEN_COPIES.get(number)
        if copies is not None:
            copies.append(weakref.ref(obj))
        elif number in _ENDED:
            _settle_copy(obj, _ENDED[number])
        # (else unpickled in another process: the flushed snapshot, as without one)


document.STORED_COPIES.update(stored_of=_stored_of, restore=_restore_stored)
