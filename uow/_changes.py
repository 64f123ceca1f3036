"""What changed in a tracked document, for the user's eyes: ``what_changed()``,
``dirty_fields()``. Paths of attribute names, dotted, as the flush writes them;
values as the attributes read them. No I/O; nothing here decides a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._diff import element_spec, is_stored, stored_form, unwrap
from ._stored import copy_stored
from ._types import DictSpec, EmbeddedSpec, ListSpec, OptionalSpec, SetSpec, TypeSpec
from .operators import MISSING, same

if TYPE_CHECKING:
    from .document import FieldMeta, ModelMeta

__all__: list[str] = []


def changed_paths(
    meta: ModelMeta | None,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    prefix: str = "",
) -> dict[str, tuple[Any, Any]]:
    """Changed leaf paths, as dotted attribute names, with (old, new) stored values.

    A key the stored document lacks reads as ``None`` on the old side.
    """
    changes: dict[str, tuple[Any, Any]] = {}
    keys = list(new) + [key for key in old if key not in new]
    for key in keys:
        before, after = old.get(key, MISSING), new.get(key, MISSING)
        if same(before, after):
            continue
        field = meta.by_key.get(key) if meta is not None else None
        name = prefix + (field.name if field is not None else key)
        nested = _meta_of(field) if field is not None else None
        if (
            type(before) is dict
            and type(after) is dict
            and (field is None or nested or meta is None or _is_dict_field(field))
        ):
            changes.update(changed_paths(nested, before, after, name + "."))
        elif (
            type(before) is list
            and type(after) is list
            and len(before) == len(after)
            and field is not None
            and (element := _element_meta(field)) is not None
        ):
            # Elements changed inside, on their positional paths, as the flush
            # writes them (a list that changed length is one change, whole).
            for index, (was, now) in enumerate(zip(before, after, strict=True)):
                if same(was, now):
                    continue
                if type(was) is dict and type(now) is dict:
                    changes.update(changed_paths(element, was, now, f"{name}.{index}."))
                else:
                    changes[f"{name}.{index}"] = (stored_form(was), copy_stored(now))
        else:
            # Copies: a stored value may be an embedded document's kept dump.
            changes[name] = (
                None if not is_stored(before) else stored_form(before),
                None if after is MISSING else copy_stored(after),
            )
    return changes


def as_attribute_values(
    meta: ModelMeta, changes: dict[str, tuple[Any, Any]], ctx: Any
) -> dict[str, tuple[Any, Any]]:
    """``changes`` (from ``changed_paths``) with each stored value as its attribute
    reads it (a ``Decimal`` for a ``Decimal128``, a set, an embedded document, a
    ``Ref``), as ``original_value`` gives it. A value of another type than
    declared (legacy data) stays as stored."""
    result: dict[str, tuple[Any, Any]] = {}
    for path, (old, new) in changes.items():
        spec = _spec_at(meta, path.split("."))
        result[path] = (_as_attribute(spec, old, ctx), _as_attribute(spec, new, ctx))
    return result


def _as_attribute(spec: TypeSpec | None, value: Any, ctx: Any) -> Any:
    if spec is None or value is None or not spec.needs_load:
        return value
    try:
        return spec.load(value, ctx)
    except (TypeError, ValueError, AttributeError):
        return value


def _spec_at(meta: ModelMeta | None, parts: list[str]) -> TypeSpec | None:
    """The declared type at a path of attribute names (dict keys and list
    positions included), or None where nothing is declared."""
    spec: TypeSpec | None = None
    for part in parts:
        if meta is not None:
            field = meta.by_name.get(part)
            if field is None:
                return None
            spec, meta = field.spec, None
        elif spec is None:
            return None
        else:
            spec = element_spec(spec)
        inner = unwrap(spec)
        if isinstance(inner, EmbeddedSpec):
            meta = inner.cls._uow_meta
    return spec


def _unwrapped(field: FieldMeta) -> TypeSpec:
    spec = field.spec
    return spec.inner if isinstance(spec, OptionalSpec) else spec


def _meta_of(field: FieldMeta) -> ModelMeta | None:
    spec = _unwrapped(field)
    return spec.cls._uow_meta if isinstance(spec, EmbeddedSpec) else None


def _element_meta(field: FieldMeta) -> ModelMeta | None:
    """The class of a list field's elements, where they are embedded documents."""
    spec = _unwrapped(field)
    if isinstance(spec, ListSpec) and not isinstance(spec, SetSpec):
        inner = spec.inner.inner if isinstance(spec.inner, OptionalSpec) else spec.inner
        if isinstance(inner, EmbeddedSpec):
            meta: ModelMeta = inner.cls._uow_meta
            return meta
    return None


def _is_dict_field(field: FieldMeta) -> bool:
    return isinstance(_unwrapped(field), DictSpec)
