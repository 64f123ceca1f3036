"""What a flush checks before it writes: the values an update takes from a document.

A flush validates what this session changed, never what it merely loaded (SPEC:
legacy values never block a flush), so the check follows the update, path by
path, rather than the document: ``check_update``. The diff that made the update
is in ``_diff``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._diff import element_spec, unwrap
from ._runtime import _run_user_validator
from ._stages import is_index, value_at
from ._types import DictSpec, EmbeddedSpec, TypeSpec, check_key, in_canonical_order
from .exceptions import ValidationError
from .operators import MISSING, UpdateSpec, same

if TYPE_CHECKING:
    from .document import Document, ModelMeta

__all__: list[str] = []


def check_update(
    meta: ModelMeta, obj: Document, update: UpdateSpec, old: Mapping[str, Any] | None = None
) -> None:
    """Check the values ``update`` writes from ``obj``, and nothing else.

    A flush validates what this session changed, not what it merely loaded: a
    stored value of another type than declared (legacy data) never blocks the
    write of a change elsewhere. Values assigned were checked at assignment;
    what is checked here is what may have been put in place by mutation, under
    the fields that change in place: the value at each path written (for
    ``$push`` and ``$addToSet``, the items added). A list set whole, with ``old``
    (the snapshot) given, may keep elements as they were loaded: those are not
    this session's to check.

    Raises:
        ValidationError: a value written is not of its declared type.
    """
    by_key = meta.by_key
    validated: set[str] = set()
    for operator, paths in update.items():
        if operator in {"$unset", "$currentDate"}:
            continue
        for path, sent in paths.items():
            field = by_key.get(path.split(".", 1)[0])
            if field is not None and field.spec.mutable:
                _check_path(meta.name, obj, path.split("."), operator, sent, old)
                if field.validators and field.name not in validated:
                    # Its validators too: what they refuse at assignment they
                    # refuse when it is put in place by mutation.
                    validated.add(field.name)
                    value = getattr(obj, field.name)
                    for validator in field.validators:
                        _run_user_validator(validator, obj, field.attribute, value)


def _check_path(
    owner: str,
    obj: Any,
    parts: list[str],
    operator: str,
    sent: Any,
    old: Mapping[str, Any] | None = None,
) -> None:
    current, spec, names = obj, None, []
    for part in parts:
        model = getattr(type(current), "_uow_meta", None)
        if model is not None:
            field = model.by_key.get(part)
            if field is None:
                return  # an unknown stored key: kept as it was, not ours to check
            names.append(field.name)
            current, spec = getattr(current, field.name), field.spec
            continue
        element = element_spec(spec)
        if type(current) is list and is_index(part) and int(part) < len(current):
            current = current[int(part)]
        elif type(current) is dict and part in current:
            if isinstance(unwrap(spec), DictSpec):
                check_key(owner, ".".join(names), part)  # a key is data: never an operator
            current = current[part]
        else:
            # The path does not lead into the value (a dict key holding a dot, say):
            # the value it stops at is checked whole, its keys included.
            if spec is not None:
                spec.check(owner, ".".join(names), current)
            return
        names.append(part)
        spec = element
    if spec is None:
        return
    where = ".".join(names)
    if operator in ("$push", "$addToSet") and isinstance(sent, dict) and "$each" in sent:
        element = element_spec(spec)
        if element is None:
            return
        items = list(current)
        count = len(sent["$each"]) if operator == "$push" else len(items)
        # An element pushed may be one loaded that moved (an insert before it, say):
        # as loaded, it is not this session's to check. Loaded elements still in
        # the list's first part are counted out first: a copy of a legacy element
        # appended is this session's.
        loaded = value_at(old, parts) if old is not None else MISSING
        pool = list(loaded) if type(loaded) is list else []
        for item in items[: len(items) - count]:
            _take_same(pool, element, item)
        for item in items[len(items) - count :]:
            if operator == "$addToSet" and not any(
                same(element.dump(item) if element.needs_dump else item, value)
                for value in sent["$each"]
            ):
                continue
            if not _take_same(pool, element, item):
                _check_new(owner, where, item, element, loaded_items=[])
        return
    try:
        spec.check(owner, where, current)
    except ValidationError:
        if old is None:
            raise
        # Check again, skipping what is as it was loaded: legacy values kept, or
        # moved (an element's index is not where it was loaded from, so the
        # values at any index count).
        _check_changed(owner, where, current, spec, _loaded_at(old, parts))


def _loaded_at(old: Mapping[str, Any], parts: list[str]) -> list[Any]:
    """The values the snapshot ``old`` holds at the path ``parts``, any list index
    standing for every element."""
    found: list[Any] = [old]
    for part in parts:
        step: list[Any] = []
        for value in found:
            if type(value) is list and is_index(part):
                step.extend(value)
            elif isinstance(value, Mapping) and part in value:
                step.append(value[part])
        found = step
    return found


def _check_changed(owner: str, where: str, value: Any, spec: TypeSpec, loaded: list[Any]) -> None:
    """Check ``value``, written at ``where``, except what it keeps as loaded.

    ``loaded``: what the loaded document held at the same place (for the fields
    of elements of a list, those of every loaded element, since elements move).
    A value the same as one of them passes; one that is not is checked
    (``_check_new``).
    """
    dumped = spec.dump(value) if spec.needs_dump else value
    if any(same(dumped, old) for old in loaded):
        return
    _check_new(owner, where, value, spec, loaded)


def _check_new(
    owner: str, where: str, value: Any, spec: TypeSpec, loaded_items: list[Any]
) -> None:
    """Check ``value``, which is not as loaded; where its check fails, look into it
    (a list's elements, a dict's values, an embedded document's fields), so that a
    legacy value kept inside it (a list element changed elsewhere, or moved) does
    not block the write, while a wrong value this session put there does.

    ``loaded_items``: what the loaded document held at this place (see
    ``_check_changed``). A list's elements are matched against the loaded ones
    one for one: an element beyond as many copies as were loaded is new.
    """
    try:
        spec.check(owner, where, value)
    except ValidationError:
        inner = unwrap(spec)
        element = element_spec(spec)
        if type(value) in _ARRAYS and element is not None:
            every = [item for old in loaded_items if type(old) is list for item in old]
            pool = list(every)
            items = value if type(value) is list else in_canonical_order(value)
            for index, item in enumerate(items):
                if not _take_same(pool, element, item):
                    _check_new(owner, f"{where}[{index}]", item, element, every)
        elif type(value) is dict and isinstance(inner, DictSpec) and element is not None:
            stored = [old for old in loaded_items if type(old) is dict]
            for key, item in value.items():
                check_key(owner, where, key)
                kept = [old[key] for old in stored if key in old]
                _check_changed(owner, f"{where}.{key}", item, element, kept)
        elif isinstance(inner, EmbeddedSpec) and isinstance(value, inner.cls):
            # (of the declared class: anything else failed for what it is)
            model = type(value)._uow_meta
            stored = [old for old in loaded_items if type(old) is dict]
            absent = value._uow_absent or ()
            for field in model.fields:
                if field.name in absent:
                    continue
                kept = [old[field.key] for old in stored if field.key in old]
                item = getattr(value, field.name)
                _check_changed(owner, f"{where}.{field.name}", item, field.spec, kept)
        else:
            raise


#: The values stored as arrays (a ``set[T]`` field's value is a set).
_ARRAYS = (list, set, frozenset)


def _take_same(pool: list[Any], element: TypeSpec, item: Any) -> bool:
    """Remove from ``pool`` a loaded element the same as ``item``; whether there was one."""
    dumped = element.dump(item) if element.needs_dump else item
    for index, old in enumerate(pool):
        if same(dumped, old):
            del pool[index]
            return True
    return False
