"""What a change sends: snapshots, and the one diff from (snapshot, memory, fields) to an update.

The rule (SPEC: "the one rule every write obeys"): after a flush the stored
document equals what the session holds, and every operator is relative to what
is *stored*, never to a default. So the snapshot records what is stored, and
two things that are not values are never confused with one:

* a key the session did not load (left out by ``fields(...)``) is simply not in
  the snapshot: ``snapshot.get(key, MISSING)`` is ``MISSING``;
* a key the stored document lacks, whose field the loader filled with its
  default, is ``Absent(default)`` in the snapshot (at any depth: a key missing
  from an embedded document, or from a list element, too). The default is no
  change (``same`` sees ``Absent(d)`` and ``d`` alike), but a change of it is.

The diff (``diff_document`` and ``diff_value``, one recursion for every depth)
then follows four rules:

1. Where the snapshot has no stored value (``MISSING`` or ``Absent``), a change
   is a ``$set`` of the whole new value, whatever the field's ``on_update``:
   ``$inc`` of a delta or ``$push`` of appended items would apply to what is
   not there.
2. A declared ``on_update`` is used for every other change of its field,
   wherever the field lives (a list element, a dict value, an embedded document).
3. Without one: embedded documents and dicts are diffed key by key (``$set`` of
   dotted paths, ``$unset`` of removed keys); a list whose old value is a prefix
   of the new one gets ``$push`` with ``$each``; a list whose old elements are
   all still in place, where only elements that are themselves documents or
   lists changed inside, is diffed element by element on positional paths
   (``lines.0.qty``), and what was appended to it is pushed; any other list
   change is a ``$set`` of the whole list.
4. Anything else that changed is a ``$set`` (``$unset`` when it is gone).

Nothing here does I/O or touches a session: every function is pure, given
the class metadata (``ModelMeta`` / ``FieldMeta``) and stored forms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._stages import is_index
from ._stored import Absent, copy_stored
from ._types import (
    DictSpec,
    EmbeddedSpec,
    ListSpec,
    OptionalSpec,
    SetSpec,
    TypeSpec,
)
from .operators import MISSING, OPERATORS, UpdateSpec, is_prefix, put, same, set_

if TYPE_CHECKING:
    from .document import Document, FieldMeta, ModelMeta

__all__: list[str] = []

#: One empty frozenset for every caller (each frozenset() is a new object to collect).
NO_KEYS: frozenset[str] = frozenset()


# ------------------------------------------------------------------ snapshots


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


def loaded_snapshot(meta: ModelMeta, obj: Document, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot of ``obj`` just loaded from stored document ``raw``.

    Its dump, with every key that ``raw`` lacks (the loader filled it with the
    field's default) marked ``Absent``, at any depth.
    """
    snapshot: dict[str, Any] = mark_absent(snapshot_of(meta, obj._uow_to_bson()), raw)
    return snapshot


def mark_absent(dumped: Any, raw: Any) -> Any:
    """``dumped`` with each key that ``raw`` lacks marked ``Absent(value)``.

    ``dumped`` is what a load of ``raw`` dumps back: every key of ``raw`` is in
    it, and the keys it has beyond are defaults the loader filled. Copy on
    write: a dict of ``dumped`` may be an embedded document's kept dump, which
    nothing may change in place.
    """
    kind = type(dumped)
    if kind is dict:
        if type(raw) is not dict:
            return dumped
        marked: dict[str, Any] | None = None
        for key, value in dumped.items():
            stored = raw.get(key, MISSING)
            if stored is MISSING:
                new: Any = Absent(value)
            elif type(value) is dict or type(value) is list:
                new = mark_absent(value, stored)
                if new is value:
                    continue
            else:
                continue
            if marked is None:
                marked = dict(dumped)
            marked[key] = new
        return dumped if marked is None else marked
    if kind is list and type(raw) is list and len(dumped) == len(raw):
        items: list[Any] | None = None
        for index, (value, stored) in enumerate(zip(dumped, raw, strict=True)):
            if type(value) is dict or type(value) is list:
                new = mark_absent(value, stored)
                if new is not value:
                    if items is None:
                        items = list(dumped)
                    items[index] = new
        return dumped if items is None else items
    return dumped


#: Value types that hold no marker (checked before a call).
_LEAVES = frozenset({str, int, float, bool, type(None), bytes})


def reapply_absent(
    old: Mapping[str, Any], new: dict[str, Any], update: UpdateSpec, keys: Sequence[str]
) -> dict[str, Any]:
    """``new`` (the snapshot after ``update`` lands) with ``old``'s ``Absent`` markers
    under ``keys`` put back where the update wrote nothing at or above them and
    the value is still the default: the stored document still lacks those keys.

    ``new`` itself is a fresh dict (changed in place); below it, copy on write
    (a dict of ``new`` may be an embedded document's kept dump).
    """
    written: set[str] | None = None
    for key in keys:
        before = old.get(key, MISSING)
        if type(before) in _LEAVES or before is MISSING:
            continue
        if type(before) is Absent:
            if same(before.value, new.get(key, MISSING)):
                new[key] = before  # not written: the stored document still lacks it
            continue
        for path, marker in _markers(before, (key,)):
            if written is None:
                # Only $set and $unset replace what is there ($push and $addToSet
                # add elements; the other operators write leaves).
                written = {*update.get("$set", ()), *update.get("$unset", ())}
            if any(".".join(path[:depth]) in written for depth in range(1, len(path) + 1)):
                continue
            new = _put_marker(new, path, marker)
    return new


def _markers(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Absent]]:
    """Every ``Absent`` marker inside a snapshot value, with its path."""
    found: list[tuple[tuple[str, ...], Absent]] = []
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(item) is Absent:
                found.append(((*path, key), item))
            elif type(item) is dict or type(item) is list:
                found += _markers(item, (*path, key))
    elif kind is list:
        for index, item in enumerate(value):
            if type(item) is dict or type(item) is list:
                found += _markers(item, (*path, str(index)))
    return found


def _put_marker(container: Any, path: tuple[str, ...], marker: Absent) -> Any:
    """``container`` with ``marker`` at ``path`` if the value there is its default
    (copies along the path); ``container`` itself when nothing is to change."""
    step = path[0]
    if type(container) is dict:
        if step not in container:
            return container
        current = container[step]
        if len(path) == 1:
            if type(current) is Absent or not same(marker.value, current):
                return container
            replaced: Any = marker
        else:
            replaced = _put_marker(current, path[1:], marker)
            if replaced is current:
                return container
        copy = dict(container)
        copy[step] = replaced
        return copy
    if type(container) is list and is_index(step) and int(step) < len(container) and len(path) > 1:
        index = int(step)
        current = container[index]
        replaced = _put_marker(current, path[1:], marker)
        if replaced is current:
            return container
        items = list(container)
        items[index] = replaced
        return items
    return container


def merged_snapshot(
    meta: ModelMeta,
    obj: Document,
    old: Mapping[str, Any],
    raw: Mapping[str, Any],
    names: frozenset[str] | set[str],
) -> dict[str, Any]:
    """Snapshot ``old`` with the fields ``names`` just filled in from stored ``raw``
    (a partial document completed by a later query)."""
    new = dict(old)
    for name in names:
        field = meta.by_name[name]
        value = getattr(obj, field.name)
        if field.spec.needs_dump:
            value = field.spec.dump(value)
        if field.spec.mutable:
            value = field.spec.snapshot(value)
        stored = raw.get(field.key, MISSING)
        new[field.key] = Absent(value) if stored is MISSING else mark_absent(value, stored)
    return new


def stored_form(snapshot: Any) -> Any:
    """A copy of a snapshot as the stored document is: ``Absent`` keys left out.

    What a loader is given to rebuild a document from its snapshot (rollback,
    ``original_value``): the loader fills the left-out keys with their defaults
    again, and the copy shares no list or dict with the snapshot.
    """
    kind = type(snapshot)
    if kind is dict:
        return {
            key: stored_form(value) for key, value in snapshot.items() if type(value) is not Absent
        }
    if kind is list:
        return [stored_form(item) for item in snapshot]
    return copy_stored(snapshot)


def snapshot_and_update(
    meta: ModelMeta, obj: Document, old: dict[str, Any], keys: tuple[str, ...]
) -> tuple[dict[str, Any] | None, UpdateSpec]:
    """The snapshot ``obj`` has now and the update from snapshot ``old`` to it, when
    only the fields stored under ``keys`` can differ (those assigned to and those
    that change in place).

    The same as ``snapshot_of(meta, obj._uow_to_bson())`` (markers aside) and
    ``update_for(meta, old, new)``, for less: only those fields are dumped, and
    one that did not change keeps ``old``'s value (never changed in place: see
    the module docstring). A changed field of ``meta.set_keys`` goes straight
    into ``$set``; only the other keys found to differ are diffed.

    The snapshot is None when the update is only that ``$set`` (or empty): it
    is then ``old`` with the ``$set`` values (``updated_snapshot``), and no copy of
    ``old`` is made until one is needed (see ``_plan.UpdateWrite``).
    """
    absent = obj._uow_absent
    by_key = meta.by_key
    set_keys = meta.set_keys
    new: dict[str, Any] | None = None
    differing: list[str] = []
    sets: dict[str, Any] | None = None
    for key in keys:
        field = by_key[key]
        if absent and field.name in absent:
            continue  # left out of a partial load (and of its snapshot): not dumped
        spec = field.spec
        value = getattr(obj, field.name)
        if spec.needs_dump:
            value = spec.dump(value)
        before = old.get(key, MISSING)
        if before is value or same(before, value):
            continue
        if key in set_keys:  # never changed in place: the value needs no copy
            if sets is None:
                sets = {key: value}
            else:
                sets[key] = value
        else:
            if new is None:
                new = dict(old)
            new[key] = spec.snapshot(value) if spec.mutable else value
            differing.append(key)
    if new is None:
        return None, ({"$set": sets} if sets is not None else {})
    if sets is not None:
        new.update(sets)
    update = update_for(meta, old, new, keys=differing)
    new = reapply_absent(old, new, update, differing)
    if sets is not None:
        set_part = update.get("$set")
        if set_part is None:
            update["$set"] = sets
        else:
            set_part.update(sets)
    return new, update


def updated_snapshot(old: Mapping[str, Any], update: UpdateSpec) -> dict[str, Any]:
    """Snapshot ``old`` once an update of ``$set`` values at the top level (or none)
    landed: what ``snapshot_and_update`` leaves as None."""
    return {**old, **update.get("$set", {})}


def whole_update(
    meta: ModelMeta, obj: Document, old: dict[str, Any]
) -> tuple[dict[str, Any], UpdateSpec]:
    """The snapshot of ``obj`` now (from a whole dump) and the update from ``old``."""
    new = snapshot_of(meta, obj._uow_to_bson())
    update = update_for(meta, old, new)
    return reapply_absent(old, new, update, list(old)), update


# ------------------------------------------------------------------ the diff


def update_for(
    meta: ModelMeta,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    assigned: int | None = None,
    keys: Sequence[str] | None = None,
) -> UpdateSpec:
    """The update that turns stored form ``old`` (a snapshot) into ``new``.

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


def diff_document(
    update: UpdateSpec,
    prefix: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    schema: Mapping[str, FieldMeta] | None,
    skip: frozenset[str] = NO_KEYS,
    keys: Sequence[str] | None = None,
) -> None:
    """Add to ``update`` what turns stored document ``old`` into ``new``.

    ``schema`` maps stored keys to their fields (None where no key is declared:
    an unknown stored value). Keys in ``skip`` are left to the caller (fields the
    server sets). ``keys``: compare only these (the caller knows nothing else
    can differ).
    """
    if keys is not None:
        for key in keys:
            if key not in new and key not in skip and is_stored(old.get(key, MISSING)):
                put(update, "$unset", prefix + key, "")
        items: Any = [(key, new[key]) for key in keys if key in new]
    else:
        items = new.items()
    for key, value in items:
        if key in skip:
            continue
        before = old.get(key, MISSING)
        if before is value:
            continue
        field = schema.get(key) if schema is not None else None
        if field is None:
            _diff_key(update, prefix + key, before, value, None, None)
        else:
            _diff_key(update, prefix + key, before, value, field.operator, field.spec)
    if keys is None:
        for key, before in old.items():
            if key not in new and key not in skip and is_stored(before):
                put(update, "$unset", prefix + key, "")


def is_stored(value: Any) -> bool:
    """Whether a snapshot value stands for a stored value (not a marker)."""
    return value is not MISSING and type(value) is not Absent


def _diff_key(
    update: UpdateSpec,
    path: str,
    before: Any,
    value: Any,
    operator: Any,
    spec: TypeSpec | None,
) -> None:
    """One key's change (rules 1, 2 and 3 of the module docstring)."""
    if type(before) is Absent:
        if not same(before.value, value):
            set_(update, path, MISSING, value)
        return
    if before is MISSING:
        set_(update, path, MISSING, value)
        return
    if same(before, value):
        return
    if operator is not None:
        operator(update, path, before, value)
    else:
        diff_value(update, path, before, value, spec)


def diff_value(update: UpdateSpec, path: str, old: Any, new: Any, spec: TypeSpec | None) -> None:
    """The default operator: the smallest faithful change from ``old`` to ``new``.

    ``spec`` is the declared type of the value (None where nothing is declared).
    """
    if type(spec) is OptionalSpec:
        spec = spec.inner
    if type(old) is dict and type(new) is dict:
        if isinstance(spec, EmbeddedSpec):
            meta = _embedded_meta(spec, old, new)
            if meta is None:
                set_(update, path, old, new)  # another class now: the whole value
            else:
                # Its fields the server sets are the flush's to add (see _stamps).
                diff_document(update, path + ".", old, new, meta.by_key, meta.current_date_keys)
        elif isinstance(spec, DictSpec):
            _diff_data(update, path + ".", old, new, spec.inner)
        else:
            _diff_data(update, path + ".", old, new, None)
    elif type(old) is list and type(new) is list:
        element = None
        if isinstance(spec, ListSpec) and not isinstance(spec, SetSpec):
            element = spec.inner
        if is_prefix(old, new):
            put(update, "$push", path, {"$each": new[len(old) :]})
        elif len(old) == len(new):
            if not _diff_elements(update, path, old, new, element):
                set_(update, path, old, new)
        elif (
            len(old) < len(new)
            and not _moved_to_the_end(old, new)
            and _diff_elements(update, path, old, new[: len(old)], element)
        ):
            # Changed inside its elements and appended to: both, as with either
            # alone. MongoDB refuses the two paths in one update; ``in_stages``
            # sends the append in a second statement.
            put(update, "$push", path, {"$each": new[len(old) :]})
        else:
            set_(update, path, old, new)
    else:
        set_(update, path, old, new)


def _diff_data(
    update: UpdateSpec,
    prefix: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    inner: TypeSpec | None,
) -> None:
    """A dict whose keys are data (a ``dict[str, T]`` field, or undeclared stored keys)."""
    try:
        joined = "".join(new)  # one C-level pass: a key with "." or "$" is rare
    except TypeError:
        joined = "."  # a key that is no str
    if ("." in joined or "$" in joined) and any(
        (type(key) is not str or "." in key or key[:1] == "$")
        and old.get(key, MISSING) is not value
        for key, value in new.items()
    ):
        # Put in place by mutation, a key MongoDB would read as a path ("a.b"
        # under an existing "a"), an operator, or no str at all cannot be a path
        # part: the dict is set whole, and the flush's check refuses the key.
        set_(update, prefix[:-1], old, new)
        return
    for key, value in new.items():
        before = old.get(key, MISSING)
        if before is not value:
            _diff_key(update, prefix + key, before, value, None, inner)
    for key, before in old.items():
        if key not in new and is_stored(before):
            put(update, "$unset", prefix + key, "")


def _moved_to_the_end(old: list[Any], new: list[Any]) -> bool:
    """Whether an element no longer at its place now stands among those appended:
    the list was reordered (``reverse()`` after an append, say), which positional
    paths would write as changes of the elements left in place (a ``$max`` of a
    smaller value there stores nothing)."""
    appended = new[len(old) :]
    return any(
        not same(was, new[index]) and any(same(was, item) for item in appended)
        for index, was in enumerate(old)
    )


def _diff_elements(
    update: UpdateSpec, path: str, old: list[Any], new: list[Any], element: TypeSpec | None
) -> bool:
    """Diff two lists of one length element by element, on positional paths.

    Only where every changed element is a document or a list on both sides (its
    inside changed) and is none of the old elements (moved); returns False,
    having added nothing, where one is not (an element replaced, or elements
    reordered: the list is then set whole).
    """
    changed = [index for index, (a, b) in enumerate(zip(old, new, strict=True)) if not same(a, b)]
    inner = element.inner if isinstance(element, OptionalSpec) else element
    known = inner.cls._uow_meta.known_keys if isinstance(inner, EmbeddedSpec) else None
    for index in changed:
        a, b = old[index], new[index]
        if not ((type(a) is dict and type(b) is dict) or (type(a) is list and type(b) is list)):
            return False
        if len(changed) > 1 and any(same(item, b) for item in old):
            return False  # an element moved here from elsewhere: reordered
        if (
            known is not None
            and type(a) is dict
            and type(b) is dict
            and not _same_unknown_keys(a, b, known)
        ):
            # Keys no field declares are never changed here: another element's now
            # (moved here, changed too), which positional paths would leave behind.
            return False
    prefix = path + "."
    for index in changed:
        diff_value(update, prefix + str(index), old[index], new[index], element)
    return True


def _same_unknown_keys(
    old: Mapping[str, Any], new: Mapping[str, Any], known: frozenset[str]
) -> bool:
    """Whether two stored embedded documents hold the same keys no field declares."""
    if known.issuperset(old) and known.issuperset(new):
        return True
    kept = {key: value for key, value in old.items() if key not in known}
    now = {key: value for key, value in new.items() if key not in known}
    return kept.keys() == now.keys() and all(same(kept[key], now[key]) for key in kept)


def _embedded_meta(spec: EmbeddedSpec, old: Mapping[str, Any], new: Mapping[str, Any]) -> Any:
    """The class of an embedded document stored as ``old`` and now ``new``; None when
    its class changed (a ``_cls`` differs), which is then no diff of keys."""
    kind = new.get("_cls")
    if kind != old.get("_cls"):
        return None
    meta = spec.cls._uow_meta
    if kind is None:
        return meta
    sub = meta.subclasses.get(kind)
    return sub._uow_meta if sub is not None else meta


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
        if is_stored(new.get(top, MISSING)):
            result.setdefault("$set", {})[top] = stored_form(new[top])
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
    update: UpdateSpec = {}
    for key, value in new.items():
        if key == "_id" or type(value) is Absent:
            continue
        field = meta.by_key.get(key)
        name = field.name if field is not None else key
        chosen = operators.get(name) if operators else None
        if chosen is None and field is not None:
            chosen = field.on_update
        if field is not None and field.version:
            continue
        if chosen is None or chosen == "$set":
            set_(update, key, MISSING, stored_form(value))
        elif as_new or chosen == "$currentDate":
            OPERATORS[chosen](update, key, MISSING, value)
    return update


# ------------------------------------------------------------------ declared types


def unwrap(spec: TypeSpec | None) -> TypeSpec | None:
    return spec.inner if isinstance(spec, OptionalSpec) else spec


def element_spec(spec: TypeSpec | None) -> TypeSpec | None:
    """The declared type of the items of a list or set, or of a dict's values."""
    if isinstance(spec, OptionalSpec):
        spec = spec.inner
    if isinstance(spec, (ListSpec, DictSpec)):
        return spec.inner
    return None
