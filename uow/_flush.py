"""Organize and collect: a flush's write operations, from the tracker's queues. No I/O.

``organize`` reads the tracker's queues and its documents' changes and returns
one write record per document (``_plan.Write``): inserts (a replace where a
deleted document of the same id was added back), updates of documents assigned
to, explicitly updated or changed in place, explicit updates of untracked
documents, deletes.
``_plan.build_plan`` orders them into batches; ``_persistence`` sends them.

What each update sends is decided by ``_diff`` (snapshots and the diff; for a
document changed only by assignments of plain fields, its class's generated
``_uow_plain_sets``); here are the version bump, ``$currentDate``, the
operators an explicit ``update()`` overrides, and the target filter (``_id``,
shard key, version as loaded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo import DeleteOne, ReplaceOne, UpdateOne

from ._checks import check_update
from ._diff import (
    full_update,
    snapshot_and_update,
    updated_snapshot,
    whole_update,
)
from ._identity import Key
from ._model import OPERATOR_KINDS, operator_fits
from ._plan import (
    DELETE,
    UPDATE,
    ExplicitUpdate,
    InsertWrite,
    UpdateWrite,
    Write,
    WriteOp,
    unique_docs,
)
from ._stages import in_stages
from ._stamps import has_stamps_below, paths_to_stamp
from ._state import DocState, ObjectState
from ._stored import Absent
from ._tracker import Tracker
from ._types import datetimes_to_millisecond, holds_datetimes
from .document import Document, ModelMeta
from .exceptions import ValidationError
from .operators import MISSING, OPERATORS, UpdateSpec, same
from .query import Expr, QueryField

__all__: list[str] = []

_PERSISTENT = ObjectState.PERSISTENT


def organize(tracker: Tracker) -> list[Write]:
    """The queue and the tracked documents' changes as write operations.

    Building an update bumps a versioned document's version in memory; if a
    later document is refused (``ValidationError``), those are put back.
    """
    ops: list[Write] = []
    try:
        _collect_ops(tracker, ops)
    except BaseException:
        put_back_versions(ops)
        raise
    return ops


def put_back_versions(ops: Iterable[Write]) -> None:
    """Writes that did not land: their documents keep the version they loaded."""
    for op in ops:
        version = type(op.doc)._uow_meta.version_field
        if op.version_before is not None and version is not None:
            object.__setattr__(op.doc, version.name, op.version_before)


def keep_milliseconds(meta: ModelMeta, obj: Document) -> None:
    """Datetimes put into ``obj``'s containers in place, kept to the millisecond as
    BSON stores them (an assignment does that itself: see DatetimeSpec)."""
    fields = meta.datetime_containers
    if fields is None:
        fields = tuple(f for f in meta.mutable_fields if holds_datetimes(f.spec))
        meta.datetime_containers = fields
    absent = obj._uow_absent or ()
    for field in fields:
        if field.name not in absent:
            datetimes_to_millisecond(field.spec, getattr(obj, field.name))


def _collect_ops(tracker: Tracker, ops: list[Write]) -> None:
    replaced: set[Key] = set()
    deletes = tracker.deletes
    for key, obj in tracker.inserts.items():
        meta = type(obj)._uow_meta
        # The insert sends the snapshot itself (the driver keeps nothing of it).
        if meta.datetime_containers is None or meta.datetime_containers:
            obj._uow_check_deep(meta.name, "")
            keep_milliseconds(meta, obj)  # (in values just checked)
            doc = data = obj._uow_snapshot()
        else:
            doc = data = obj._uow_insert_form()
        if deletes and key in deletes:
            # Deleted and re-added with the same id: one replace, not a colliding insert.
            replaced.add(key)
            request: Any = ReplaceOne({"_id": doc["_id"]}, doc)
            ops.append(WriteOp(UPDATE, meta.collection or "", obj, request, data, data))
        else:
            ops.append(InsertWrite(meta.collection or "", obj, doc))  # (a tracked class)
    _collect_updates(tracker, ops)
    for explicit in tracker.updates.values():
        if not explicit.tracked:
            ops.append(_untracked_update_op(explicit))
    for key, obj in deletes.items():
        if key in replaced:
            continue
        state = obj._uow_state
        assert state is not None  # a queued document is tracked
        filter_ = target_filter(obj, state)
        collection = type(obj)._uow_meta.collection or ""  # (a tracked class's)
        op = WriteOp(DELETE, collection, obj, DeleteOne(filter_), None, filter_)
        op.checked = True
        ops.append(op)


def _collect_updates(tracker: Tracker, ops: list[Write]) -> None:
    """The updates of documents assigned to, explicitly updated, or changed in place.

    In that order: assignments and explicit updates as queued, then the rest
    of the map. A document nobody assigned to, without fields that change in
    place, is not looked at.
    """
    # Each queued document once (modified is by key; an explicit update's document
    # may be there too), in order.
    queued = list(tracker.modified.values())
    if tracker.updates:
        queued = unique_docs([*queued, *(u.doc for u in tracker.updates.values() if u.tracked)])
    persistent = _PERSISTENT
    updates = tracker.updates
    for obj in queued:
        state = obj._uow_state
        assert state is not None
        if state.status is not persistent:
            continue
        # The common case inline (a call per document costs as much as the rest):
        # plain fields assigned to, of a class with no version, shard key or field
        # the server sets, and no explicit update. One $set, targeting _id.
        meta = type(obj)._uow_meta
        plain = meta.plain_updates
        if plain is None:
            plain = _plain_updates(meta)
        old = state.snapshot
        if (
            plain
            and state.modified
            and state.assigned
            and old is not None
            and not (updates and state.key in updates)
        ):
            sets = obj._uow_plain_sets(old, state.assigned)
            if sets is not None:
                if sets:
                    update: UpdateSpec = {"$set": sets}
                    write = UpdateWrite(
                        meta.collection or "",
                        obj,
                        {"_id": state.id},
                        update,
                        {**old, **sets},
                        update,
                        old,
                    )
                    write.checked = True
                    ops.append(write)
                else:
                    tracker.nothing_to_write(obj, state)
                continue
        op = _update_op(tracker, obj)
        if op is not None:
            ops.append(op)
    if len(queued) + len(tracker.inserts) >= tracker.tracked_at_most():
        # Every document in the map was looked at above or is pending (inserted
        # whole): none is left that could have changed in place.
        return
    seen = {id(obj) for obj in queued}
    for obj in tracker.objects():
        if not type(obj)._uow_meta.mutable:
            continue
        state = obj._uow_state
        if state.status is not persistent or (seen and id(obj) in seen):
            continue
        snapshot = state.snapshot
        if snapshot is not None and not obj._uow_mutated(snapshot):
            continue
        op = _update_op(tracker, obj, changed=True)
        if op is not None:
            ops.append(op)


# One function, not several: it runs once per changed document, and each frame
# more costs that document about 70 ns.
def _update_op(  # noqa: PLR0915
    tracker: Tracker, obj: Document, *, changed: bool = False
) -> UpdateWrite | None:
    """The update that persists ``obj``'s change, or None (``changed``: known to be)."""
    state = obj._uow_state
    assert state is not None and state.snapshot is not None  # a tracked, stored document
    meta: ModelMeta = type(obj)._uow_meta
    explicit = tracker.updates.get(state.key) if tracker.updates else None
    old = state.snapshot
    if not (changed or explicit is not None or state.modified or obj._uow_mutated(old)):
        if state.pinned:
            # Queued when the user let go of it with a container held elsewhere
            # (Tracker.on_dropped), and unchanged: clean, and let go of if that
            # container is not held any more.
            tracker.nothing_to_write(obj, state)
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
    in_place = not (assigned and meta.mutable) or changed or obj._uow_mutated(old)
    if in_place and (meta.datetime_containers is None or meta.datetime_containers):
        keep_milliseconds(meta, obj)
    # The new snapshot, diffed: the update's values share nothing with the live
    # document, so the statement kept for errors and unknown outcomes stays as sent.
    if assigned is None:
        new, update = whole_update(meta, obj, old)
    else:
        keys = meta.keys_to_compare(assigned, in_place)
        found, update = snapshot_and_update(meta, obj, old, keys)
        new = updated_snapshot(old, update) if found is None else found
    if explicit is not None and explicit.operators:
        update = _with_operators(meta, update, old, new, explicit.operators)
    if in_place and update:
        check_update(meta, obj, update, old)
    version = meta.version_field
    stamps = meta.current_date_keys or has_stamps_below(meta)
    if not update and not (stamps and _server_dates_changed(meta, old, new, update)):
        if explicit is None:
            # Only the version differs: never adopt a version nobody wrote.
            version_only = version is not None and not same(
                old.get(version.key, MISSING), new.get(version.key, MISSING)
            )
            tracker.nothing_to_write(obj, state, old if version_only else None)
            return None
        update = full_update(meta, new, explicit.operators, as_new=False)
        if not update:
            return None
    # What the server sets, then the statements: the version is bumped by the last
    # (every statement is conditional on the version loaded, so after one that
    # lost a race none lands: a bumped value in a later filter could match
    # another writer's bump).
    stamped = None
    if stamps:
        stamped = _add_server_dates(meta, old, new, update)
    stages = in_stages(update) if "$push" in update or stamped else [update]
    version_before: Any = None
    if version is not None:
        version_before = getattr(obj, version.name)
        bumped = _bump_version(obj, version, old, new)
        update.setdefault("$set", {})[version.key] = bumped
        if len(stages) > 1:
            stages[-1].setdefault("$set", {})[version.key] = bumped
    filter_ = target_filter(obj, state, old)
    own_target = explicit is None or explicit.filter is None
    if explicit is not None and explicit.filter is not None:
        filter_ = explicit.filter
    op = UpdateWrite(meta.collection or "", obj, filter_, stages[0], new, update, old)
    op.checked = own_target
    op.version_before = version_before
    op.stamped = stamped
    if len(stages) > 1:
        op.stages = stages
    return op


def _plain_updates(meta: ModelMeta) -> bool:
    """Whether an update of ``meta``'s documents is only its diff, targeting ``_id``:
    no version, no shard key, no field the server sets (see ``_update_op``)."""
    plain = not (
        meta.current_date_keys or meta.version_field or meta.shard_key or has_stamps_below(meta)
    )
    meta.plain_updates = plain
    return plain


def _server_dates_changed(
    meta: ModelMeta, old: Mapping[str, Any], new: Mapping[str, Any], update: UpdateSpec
) -> bool:
    """Whether the only change of a document is to fields the server sets, which
    the diff leaves out: one assigned at the top level, or below it (an embedded
    document's). The update is then sent all the same, carrying their
    ``$currentDate`` (SPEC: a declared ``on_update`` is used for every change of
    its field), and the server's values are read back as after any update."""
    if meta.current_date_keys and any(
        not _same_stored(old.get(key, MISSING), new.get(key, MISSING))
        for key in meta.current_date_keys
    ):
        return True
    return not update and has_stamps_below(meta) and not same(old, new)


def _same_stored(before: Any, value: Any) -> bool:
    """Whether snapshot value ``before`` (a key not loaded: MISSING; one the stored
    document lacks: ``Absent``) is memory's ``value`` (MISSING: not in memory)."""
    if value is MISSING:
        return True  # not loaded, or emptied for the server to fill: not changed here
    if type(before) is Absent:
        return same(before.value, value)
    return before is not MISSING and same(before, value)


def _add_server_dates(
    meta: ModelMeta, old: Mapping[str, Any], new: Mapping[str, Any], update: UpdateSpec
) -> list[str] | None:
    """Add the ``$currentDate`` of every field the server sets to ``update``, which
    turns snapshot ``old`` into ``new``; returns those below the top level (read
    back after the flush, see _stamps). A top-level one that a partial load left
    out and this session assigned is written with ``$set`` of that value instead,
    as SPEC's one rule has every field not loaded."""
    for key in meta.current_date_keys:
        if key in update.get("$set", ()):
            continue  # an explicit update() set it
        value = new.get(key, MISSING)
        if value is not MISSING and old.get(key, MISSING) is MISSING:
            update.setdefault("$set", {})[key] = value
        else:
            update.setdefault("$currentDate", {})[key] = True
    if not has_stamps_below(meta):
        return None
    stamped = paths_to_stamp(meta, new)
    if not stamped:
        return None
    update.setdefault("$currentDate", {}).update(dict.fromkeys(stamped, True))
    return stamped


def _bump_version(obj: Document, version: Any, old: Mapping[str, Any], new: dict[str, Any]) -> Any:
    """Optimistic concurrency: the write is conditional on the version loaded (see
    ``target_filter``) and bumps it, in ``obj`` and its new snapshot ``new``."""
    loaded = old.get(version.key, MISSING)
    if type(loaded) is Absent:
        loaded = loaded.value
    start = loaded if isinstance(loaded, int) and not isinstance(loaded, bool) else 0
    bumped = start + 1
    object.__setattr__(obj, version.name, bumped)
    new[version.key] = version.spec.dump(bumped) if version.spec.needs_dump else bumped
    return bumped


def _untracked_update_op(explicit: ExplicitUpdate) -> Write:
    obj = explicit.doc
    meta: ModelMeta = type(obj)._uow_meta
    obj._uow_check_deep(meta.name, "")
    doc = obj._uow_to_bson()
    operators = explicit.operators
    if obj._uow_state is not None:
        # Loaded (by a no_tracking session, or detached since): its values are what
        # is stored, not deltas, so every field is sent with $set.
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
    elif explicit.upsert and "_id" not in filter_:
        # Ids are made on the client: a document this upsert creates gets the
        # object's, never one the server makes up.
        update = {**update, "$setOnInsert": {**update.get("$setOnInsert", {}), "_id": doc["_id"]}}
    request = UpdateOne(filter_, update, upsert=explicit.upsert)
    assert meta.collection is not None
    op = WriteOp(UPDATE, meta.collection, obj, request, None, update)
    op.target = filter_
    return op


def target_filter(
    obj: Document, state: DocState, old: Mapping[str, Any] | None = None
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


def _with_operators(
    meta: ModelMeta,
    update: UpdateSpec,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    operators: Mapping[str, str],
) -> UpdateSpec:
    """Re-diff the fields whose operator an explicit ``update()`` overrides."""
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


def explicit_operators(meta: ModelMeta, targets: Mapping[Any, str]) -> dict[str, str]:
    """``update()``'s operator overrides by attribute name, checked.

    Raises:
        ValidationError: an unknown field or operator.
    """
    operators: dict[str, str] = {}
    for target, operator in targets.items():
        name = target.attribute_path if isinstance(target, QueryField) else str(target)
        if name not in meta.by_name:
            raise ValidationError(
                f"update(): {meta.name} has no field {name!r}", document_class=meta.name
            )
        if operator not in OPERATORS:
            raise ValidationError(
                f"update(): {operator!r} is not an operator; use one of {', '.join(OPERATORS)}"
            )
        field = meta.by_name[name]
        if not operator_fits(field.spec, operator):
            raise ValidationError(
                f"update(): {operator!r} cannot persist {meta.name}.{name}, a "
                f"{field.spec.name} field ({OPERATOR_KINDS}); use another operator",
                document_class=meta.name,
                field=name,
            )
        operators[name] = operator
    return operators


def explicit_filter(id_expression: Any) -> dict[str, Any] | None:
    """``update(id_expression=...)`` as a filter dict (None: target ``_id``).

    Raises:
        ValidationError: neither an expression nor a filter dict.
    """
    if id_expression is None:
        return None
    if isinstance(id_expression, Expr):
        return dict(id_expression.filter)
    if isinstance(id_expression, Mapping):
        return dict(id_expression)
    raise ValidationError("update(id_expression=...) takes a query expression or a filter dict")
