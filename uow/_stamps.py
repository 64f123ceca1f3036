"""Fields the server sets inside embedded documents (``on_update="$currentDate"``).

SPEC: ``$currentDate`` means "the server sets it on every update of the
document". A top-level field is the flush's to add (``_flush``) and is emptied
until read (``_state.expire``). Below the top level the same rule holds, at
every place an embedded document of such a class is held once the update
landed: a single embedded document, each element of a list, each value of a
dict, at any depth, elements the update appends and values it writes whole
included (an insert, like at the top, stores what memory holds). MongoDB
refuses ``$currentDate lines.2.at`` beside the ``$push lines`` that creates
that element, so ``_stages.in_stages`` sends each stamp in a statement after
the writes above it.

Memory then differs from what is stored at those paths until the server's
values are read. Emptying the enclosing field (as ``expire`` does at the top)
would hand the user a new list on the next read while they may hold the old
one, and changes made through it would be lost; so the flush reads them back
instead, in one find per collection after its writes (``Flush``), and
``adopt`` puts each value in place in memory and in the snapshot.

Nothing here does I/O; ``paths_to_stamp`` and ``adopt`` are pure but for
``adopt`` assigning the server's values to the embedded documents.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._stages import put_at, value_at
from ._stored import Absent
from ._types import DictSpec, EmbeddedSpec, ListSpec, OptionalSpec, SetSpec, TypeSpec
from .operators import MISSING

if TYPE_CHECKING:
    from ._meta import ModelMeta

__all__: list[str] = []


def has_stamps_below(meta: ModelMeta) -> bool:
    """Whether documents of ``meta`` can hold a ``$currentDate`` field below the top.

    Kept on the class's metadata until another class is defined (a subclass of
    an embedded class may add such a field: ``Registry.add`` forgets it).
    """
    found = meta.stamps_below
    if found is None:
        found = meta.stamps_below = any(_reaches(f.spec, set()) for f in meta.fields)
    return found


def _reaches(spec: TypeSpec, seen: set[int]) -> bool:
    """Whether a value of ``spec`` can hold an embedded document with a stamp."""
    if isinstance(spec, OptionalSpec):
        spec = spec.inner
    if isinstance(spec, EmbeddedSpec):
        for meta in _metas(spec):
            if id(meta) in seen:
                continue
            seen.add(id(meta))
            if meta.current_date_keys or any(_reaches(f.spec, seen) for f in meta.fields):
                return True
        return False
    if isinstance(spec, (ListSpec, DictSpec)) and not isinstance(spec, SetSpec):
        return _reaches(spec.inner, seen)
    return False


def _metas(spec: EmbeddedSpec) -> Iterator[ModelMeta]:
    """The metadata of an embedded spec's class and of every subclass of it."""
    meta: ModelMeta = spec.cls._uow_meta
    yield meta
    for sub in meta.subclasses.values():
        if sub is not spec.cls and issubclass(sub, spec.cls):
            yield sub._uow_meta


def paths_to_stamp(meta: ModelMeta, new: Mapping[str, Any]) -> list[str]:
    """The paths below the top where an update must carry ``$currentDate``: every
    stamp field of every embedded document in ``new``, the snapshot the update
    leaves (elements it appends and values it writes whole included; their
    stamps go in a statement after those writes, see ``_stages.in_stages``)."""
    found: list[str] = []
    for field in meta.fields:
        value = new.get(field.key, MISSING)
        if value is not MISSING and type(value) is not Absent:
            _collect(found, field.key, value, field.spec)
    return found


def _collect(found: list[str], path: str, value: Any, spec: TypeSpec) -> None:
    if isinstance(spec, OptionalSpec):
        spec = spec.inner
    if isinstance(spec, EmbeddedSpec):
        if type(value) is dict:  # (else stored data of another shape: nothing to stamp)
            _collect_embedded(found, path, value, _embedded_meta(spec, value))
    elif isinstance(spec, SetSpec):
        return
    elif isinstance(spec, ListSpec):
        if type(value) is list:
            for index, item in enumerate(value):
                _collect(found, f"{path}.{index}", item, spec.inner)
    elif isinstance(spec, DictSpec) and type(value) is dict:
        for key, item in value.items():
            if key and "." not in key and type(item) is not Absent:
                _collect(found, f"{path}.{key}", item, spec.inner)


def _collect_embedded(
    found: list[str], path: str, value: Mapping[str, Any], meta: ModelMeta
) -> None:
    for field in meta.fields:
        if field.current_date:
            found.append(f"{path}.{field.key}")
            continue
        inner = value.get(field.key, MISSING)
        if inner is not MISSING and type(inner) is not Absent:
            _collect(found, f"{path}.{field.key}", inner, field.spec)


def _embedded_meta(spec: EmbeddedSpec, value: Mapping[str, Any]) -> ModelMeta:
    meta: ModelMeta = spec.cls._uow_meta
    kind = value.get("_cls")
    if kind is not None:
        sub = meta.subclasses.get(kind)
        if sub is not None:
            sub_meta: ModelMeta = sub._uow_meta
            return sub_meta
    return meta


#: What ``adopt`` replaced in memory: (embedded document, field name, the value it
#: had), so that an aborted transaction can put it back (``put_back``).
Replaced = list[tuple[Any, str, Any]]


def adopt(
    obj: Any, snapshot: dict[str, Any], raw: Mapping[str, Any], paths: list[str], ctx: Any
) -> tuple[dict[str, Any], Replaced]:
    """Put the server's values at ``paths`` of stored document ``raw`` into ``obj``
    (into the embedded documents that hold them) and into its snapshot.

    Returns the new snapshot (copied along each path: a dict in a snapshot may be
    an embedded document's kept dump), and what the values replaced in memory. A
    path that no longer leads to the same place in memory or in ``raw`` (another
    writer changed the list meanwhile) is left as it is.
    """
    replaced: Replaced = []
    for path in paths:
        parts = path.split(".")
        value = value_at(raw, parts)
        if value is MISSING:
            continue
        holder = _holder(obj, parts[:-1])
        if holder is None:
            continue
        field = type(holder)._uow_meta.by_key.get(parts[-1])
        if field is None:
            continue
        if field.convert is not None:
            value = field.convert(value)  # a datetime to the millisecond, as BSON keeps it
        loaded = field.spec.load(value, ctx) if field.spec.needs_load else value
        replaced.append((holder, field.name, getattr(holder, field.name)))
        _put(holder, field.name, loaded)
        snapshot = put_at(snapshot, parts, value)
    return snapshot, replaced


def put_back(replaced: Replaced) -> None:
    """Undo ``adopt``'s changes to memory, latest first (the transaction that wrote
    the server's values was aborted: what is stored is what memory had)."""
    for holder, name, value in reversed(replaced):
        _put(holder, name, value)


def _put(holder: Any, name: str, value: Any) -> None:
    # Set as a load sets it (the holder's kept dump is no longer its dump).
    object.__setattr__(holder, name, value)
    if type(holder)._uow_meta.keeps_dump:
        object.__setattr__(holder, "_uow_dumped", None)


def as_snapshot_stamps(
    stored: Mapping[str, Any], snapshot: Mapping[str, Any], paths: list[str]
) -> Mapping[str, Any]:
    """Stored document ``stored`` with the values at ``paths`` taken from
    ``snapshot``: to tell whether a write landed, the server's stamps aside."""
    for path in paths:
        parts = path.split(".")
        value = value_at(snapshot, parts)
        if value is not MISSING and value_at(stored, parts) is not MISSING:
            stored = put_at(stored, parts, value)
    return stored


def _holder(obj: Any, parts: list[str]) -> Any:
    """The embedded document at stored path ``parts`` of ``obj``, or None."""
    current = obj
    for part in parts:
        meta = getattr(type(current), "_uow_meta", None)
        if meta is not None:
            field = meta.by_key.get(part)
            if field is None:
                return None
            current = getattr(current, field.name, None)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return None
    return current if getattr(type(current), "_uow_embedded", False) else None
