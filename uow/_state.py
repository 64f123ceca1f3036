"""Per-document state: status, snapshots, and the diff that becomes an update.

Each tracked document holds a ``DocState`` in its ``_uow_state`` slot. The
snapshot is the document's stored form (the dict pymongo is given), taken at
load and after each flush, that shares no list or dict with the live document:
so it can never change behind the session's back, and it is never changed in
place once made (the committed snapshot and the flushed one may be one dict).

"Did anything change?" is answered cheaply: a document nobody assigned to can
only have changed in place, so only its containers and embedded documents are
compared with the snapshot (``mutated``), with ``==`` at C speed where ``==``
means "the same BSON", and with ``same`` elsewhere. Only a changed document is
diffed path by path (``update_for``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._identity import Key, id_of
from ._stored import copy_stored
from .operators import MISSING, UpdateSpec, diff_document, same, set_

if TYPE_CHECKING:
    from .document import Document, ModelMeta

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
        owner: Any,
        key: Key,
        status: ObjectState,
        snapshot: dict[str, Any] | None = None,
        stored_id: Any = MISSING,
    ) -> None:
        #: the session's tracker (None for the shared detached marker)
        self.owner = owner
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

    def touched(self, obj: Document, bit: int) -> None:
        """A field (``FieldMeta.bit``) was assigned: hold the document until it is flushed."""
        if self.modified:
            if self.assigned is not None:
                self.assigned |= bit
        elif self.owner is not None:
            self.modified = True
            self.assigned = bit
            self.owner.on_modified(obj, self)

    def dropped(self, obj: Document) -> None:
        """The last reference is going: keep the document if it holds a change."""
        if self.owner is not None:
            self.owner.on_dropped(obj, self)


#: The state of every document a session let go of (expunged, deleted, closed).
DETACHED = DocState(None, ("", None), ObjectState.DETACHED)


def expire(meta: ModelMeta, obj: Document, state: DocState) -> None:
    """The server just set ``meta.current_date_keys``: empty those fields of ``obj``.

    Reading one then reaches ``Document.__getattr__``, which asks the session to
    load them (``Session.on_expired_read``): the flush itself reads nothing.
    """
    absent = set(obj._uow_absent or ())
    computed: dict[str, Any] = {}
    for key in meta.current_date_keys:
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
    """Put ``obj``'s fields back to a stored form (rollback)."""
    # A copy: the object must share no list or dict with the snapshot.
    fresh = type(obj)._uow_load(copy_stored(target), ctx, obj._uow_absent)
    copy_fields(fresh, obj)


def copy_fields(source: Any, target: Any) -> None:
    absent = source._uow_absent or ()
    for f in type(source)._uow_meta.fields:
        if f.name not in absent:
            object.__setattr__(target, f.name, getattr(source, f.name))
    object.__setattr__(target, "_uow_extra", source._uow_extra)
    object.__setattr__(target, "_uow_absent", source._uow_absent)


def snapshot_of(meta: ModelMeta, doc: dict[str, Any]) -> dict[str, Any]:
    """Make ``doc``, a stored form just dumped from a document, a snapshot; returns it.

    In place (a dump is a new dict, and one dict fewer per document is garbage
    the collector never has to look at): the fields that can change in place get
    copies of what their dumps share with the document (a dumped embedded document
    is a new dict already); everything else in a dump is immutable, or (unknown
    stored keys) never changed.
    """
    for key, snapshot in meta.mutable_snapshots:
        value = doc.get(key, MISSING)
        if value is not MISSING:
            doc[key] = snapshot(value)
    return doc


def snapshot_with(
    meta: ModelMeta,
    obj: Document,
    old: dict[str, Any],
    keys: tuple[str, ...],
    differing: list[str] | None = None,
    sets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The snapshot ``obj`` has now, when only the fields stored under ``keys`` can
    differ from snapshot ``old`` (those assigned to and those that change in place).

    Equal to ``snapshot_of(meta, obj._uow_to_bson())`` then, for less: only those
    fields are dumped, and one that did not change keeps ``old``'s value (never
    changed in place: see the module docstring), so a document whose one field was
    assigned costs a dict copy and that field's dump, not a whole dump and a copy
    of every list in it. The keys whose values differ are added to ``differing``:
    the only ones an update needs to look at (``update_for``'s ``keys``). With
    ``sets``, those among ``meta.set_keys`` go there instead, with their new value:
    the ``$set`` an update would give them, without diffing them again.
    """
    new = dict(old)
    absent = obj._uow_absent
    by_key = meta.by_key
    set_keys = meta.set_keys if sets is not None else NO_KEYS
    for key in keys:
        field = by_key[key]
        if absent and field.name in absent:
            continue  # left out of a partial load (and of its snapshot): not dumped
        spec = field.spec
        value = getattr(obj, field.name)
        if spec.needs_dump:
            value = spec.dump(value)
        before = new.get(key, MISSING)
        if before is value or same(before, value):
            continue
        new[key] = spec.snapshot(value) if spec.mutable else value
        if key in set_keys:
            sets[key] = value  # type: ignore[index]  # set_keys is empty without sets
        elif differing is not None:
            differing.append(key)
    return new


def snapshot_and_update(
    meta: ModelMeta, obj: Document, old: dict[str, Any], keys: tuple[str, ...]
) -> tuple[dict[str, Any], UpdateSpec]:
    """``snapshot_with`` and the update from ``old`` to it, in one pass over ``keys``.

    The same as ``update_for(meta, old, new)``, for less: only the keys found to
    differ are diffed, each compared once, and a changed field of ``meta.set_keys``
    goes straight into ``$set`` without a diff.
    """
    differing: list[str] = []
    sets: dict[str, Any] = {}
    new = snapshot_with(meta, obj, old, keys, differing, sets)
    update = update_for(meta, old, new, keys=differing) if differing else {}
    if sets:
        set_part = update.get("$set")
        if set_part is None:
            update["$set"] = sets
        else:
            set_part.update(sets)
    return new, update


def mutated(obj: Document, snapshot: Mapping[str, Any]) -> bool:
    """Whether a field of ``obj`` that can change in place differs from ``snapshot``.

    Fields assigned to are not looked at (the assignment marks the document). The
    comparison is generated per class (``_uow_mutated``).
    """
    return obj._uow_mutated(snapshot)


def unchanged(obj: Document, snapshot: Mapping[str, Any]) -> bool:
    """Whether ``obj``'s whole stored form is the same to MongoDB as ``snapshot``."""
    return same(snapshot, obj._uow_to_bson())


def update_for(
    meta: ModelMeta,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    assigned: int | None = None,
    keys: list[str] | tuple[str, ...] | None = None,
) -> UpdateSpec:
    """The update that turns stored form ``old`` into ``new`` (both decoded BSON).

    With ``assigned`` (a mask of the fields assigned to), only those and the
    fields that can change in place are compared: nothing else can differ. With
    ``keys``, only those stored keys are (the caller knows the rest are the same).
    Fields the server sets (``$currentDate``) and the version are left out here:
    the flush adds them to every update of the document.
    """
    update: UpdateSpec = {}
    skip = meta.current_date_keys
    if meta.version_field is not None:
        skip = skip | {meta.version_field.key}
    if keys is None and assigned is not None:
        keys = meta.keys_to_compare(assigned)
    diff_document(update, "", old, new, meta.by_key, skip, keys)
    # Only keys that are data (a dict field's, or unknown stored ones) can be empty.
    if update and (meta.data_keys or len(new) > len(meta.known_keys)):
        return _addressable(update, new)
    return update


def _addressable(update: UpdateSpec, new: Mapping[str, Any]) -> UpdateSpec:
    """The update, with every path MongoDB cannot address replaced.

    A dict field may hold an empty key (a stored document may have one), but an
    update path may not have an empty part (``"scores."``): the server refuses
    the whole write. Such a field is sent whole, with ``$set`` (or ``$unset``).
    """
    whole = {
        path.split(".", 1)[0]
        for paths in update.values()
        for path in paths
        if not path or path[0] == "." or path[-1] == "." or ".." in path
    }
    if not whole:
        return update
    result: UpdateSpec = {}
    for operator, paths in update.items():
        kept = {path: value for path, value in paths.items() if path.split(".", 1)[0] not in whole}
        if kept:
            result[operator] = kept
    for top in sorted(whole):
        if top in new:
            result.setdefault("$set", {})[top] = new[top]
        else:
            result.setdefault("$unset", {})[top] = ""
    return result


def full_update(
    meta: ModelMeta,
    new: Mapping[str, Any],
    operators: Mapping[str, str] | None = None,
    *,
    as_new: bool,
) -> UpdateSpec:
    """An update sending every field with its operator (an explicit ``update()``).

    ``as_new``: the document is not tracked, so the update stands for its whole
    value (``$inc`` adds the field's value). Otherwise operator fields are left
    out (their delta is nothing) and the rest is ``$set``.
    """
    from .operators import OPERATORS

    update: UpdateSpec = {}
    for key, value in new.items():
        if key == "_id":
            continue
        field = meta.by_key.get(key)
        name = field.name if field is not None else key
        chosen = operators.get(name) if operators else None
        if chosen is None and field is not None:
            chosen = field.on_update
        if field is not None and field.version:
            continue
        if chosen is None or chosen == "$set":
            set_(update, key, MISSING, value)
        elif as_new or chosen == "$currentDate":
            OPERATORS[chosen](update, key, MISSING, value)
    return update


def changed_paths(
    meta: ModelMeta | None,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    prefix: str = "",
) -> dict[str, tuple[Any, Any]]:
    """Changed leaf paths, as dotted attribute names, with (old, new) stored values."""
    changes: dict[str, tuple[Any, Any]] = {}
    keys = list(new) + [key for key in old if key not in new]
    for key in keys:
        before, after = old.get(key, MISSING), new.get(key, MISSING)
        if same(before, after):
            continue
        field = meta.by_key.get(key) if meta is not None else None
        name = prefix + (field.name if field is not None else key)
        nested = None
        if field is not None and field.nested is not None:
            nested = _meta_of(field)
        if (
            type(before) is dict
            and type(after) is dict
            and (field is None or nested or meta is None or _is_dict_field(field))
        ):
            changes.update(changed_paths(nested, before, after, name + "."))
        else:
            # Copies: a stored value may be an embedded document's kept dump.
            changes[name] = (
                None if before is MISSING else copy_stored(before),
                None if after is MISSING else copy_stored(after),
            )
    return changes


def _meta_of(field: Any) -> ModelMeta | None:
    from ._types import EmbeddedSpec, OptionalSpec

    spec = field.spec.inner if isinstance(field.spec, OptionalSpec) else field.spec
    return spec.cls._uow_meta if isinstance(spec, EmbeddedSpec) else None


def _is_dict_field(field: Any) -> bool:
    from ._types import DictSpec, OptionalSpec

    spec = field.spec.inner if isinstance(field.spec, OptionalSpec) else field.spec
    return isinstance(spec, DictSpec)
