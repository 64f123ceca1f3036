"""What the generated methods of model classes call at run time.

Layer 2, beside ``_codegen`` (which names these in the scripts it writes): the
slow paths (partial loads, documents of a subclass, wrong arguments), kept out of
the generated straight-line code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._stored import IMMUTABLE, copy_stored
from ._types import DictSpec, EmbeddedSpec, ListSpec, LoadContext, OptionalSpec, SetSpec, TypeSpec
from .exceptions import DefinitionError, ValidationError
from .operators import MISSING, same

if TYPE_CHECKING:
    from ._meta import ModelMeta
    from .document import _BaseModel

__all__: list[str] = []  # private module


def _run_user_validator(
    user: Callable[..., Any], instance: Any, attribute: Any, value: Any
) -> None:
    try:
        user(instance, attribute, value)
    except ValidationError:
        raise
    except (ValueError, TypeError) as exc:
        owner = type(instance).__name__
        raise ValidationError(
            f"{owner}.{attribute.name}: {exc}",
            document_class=owner,
            field=attribute.name,
            value=value,
        ) from exc


def _member_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The slot's own __set__, found without the class-level query-field descriptor."""
    for klass in cls.__mro__:
        slot = klass.__dict__.get(name)
        if slot is not None and hasattr(slot, "__set__") and hasattr(slot, "__objclass__"):
            return slot.__set__  # type: ignore[no-any-return]
    raise DefinitionError(f"{cls.__name__}.{name}: no slot found")


#: Makes an instance of one class one of another with the same layout, without
#: the instance's own __setattr__.
_set_class: Callable[[Any, type], None] = object.__dict__["__class__"].__set__


def _mapping_argument(cls: type, data: Any) -> dict[str, Any]:
    if isinstance(data, Mapping):
        return dict(data)
    raise TypeError(
        f"{cls.__name__}.from_dict() takes a mapping of field names to values, "
        f"got {type(data).__name__}: {data!r:.80}"
    )


def _unexpected_keys(cls: type, data: dict[Any, Any], known: frozenset[str]) -> None:
    unknown = [key for key in data if key not in known]
    listed = ", ".join(repr(key) for key in unknown)
    raise TypeError(
        f"{cls.__name__}.from_dict() got {listed}, which "
        f"{'is not a field' if len(unknown) == 1 else 'are not fields'}; "
        f"the fields are {', '.join(sorted(known))}"
    )


def _missing_keys(cls: type, names: list[str], values: tuple[Any, ...]) -> None:
    missing = _not_given(names, values)
    raise TypeError(
        f"{cls.__name__}.from_dict() lacks {', '.join(repr(name) for name in missing)}: "
        f"{'a field' if len(missing) == 1 else 'fields'} with no default"
    )


def _embedded_from_mappings(spec: TypeSpec) -> Callable[[Any], Any] | None:
    """For ``from_dict``: what builds the embedded documents given as mappings in a
    value of ``spec`` (None where ``spec`` holds no embedded document)."""
    if isinstance(spec, OptionalSpec):
        return _embedded_from_mappings(spec.inner)  # None passes through each builder
    if isinstance(spec, EmbeddedSpec):
        embedded = spec.cls

        from_dict = embedded.from_dict  # finished: a class can only name finished ones

        def build(value: Any) -> Any:
            if type(value) is dict:
                return from_dict(value)
            if value is None or isinstance(value, embedded) or not isinstance(value, Mapping):
                return value  # the field's check says what is wrong with it, if anything
            return from_dict(value)

        return build
    if isinstance(spec, SetSpec):
        return None  # a set cannot hold a mapping
    if isinstance(spec, ListSpec):
        item = _embedded_from_mappings(spec.inner)
        if item is None:
            return None

        def build_items(value: Any) -> Any:
            if type(value) is not list:
                return value  # the field's check says what is wrong with it
            built = [item(element) for element in value]
            return value if all(map(operator.is_, built, value)) else built

        return build_items
    if isinstance(spec, DictSpec):
        entry = _embedded_from_mappings(spec.inner)
        if entry is None:
            return None

        def build_values(value: Any) -> Any:
            if type(value) is not dict:
                return value
            built = {key: entry(element) for key, element in value.items()}
            return value if all(map(operator.is_, built.values(), value.values())) else built

        return build_values
    return None


#: Above this many fields, __init__ takes **kwargs and looks each one up: CPython
#: binds named keyword arguments by comparing each with every parameter name, so


def _unexpected_keywords(kwargs: dict[str, Any]) -> None:
    name = next(iter(kwargs))
    raise TypeError(f"__init__() got an unexpected keyword argument {name!r}")


def _not_given(names: list[str], values: tuple[Any, ...]) -> list[str]:
    return [name for name, value in zip(names, values, strict=True) if value is attrs.NOTHING]


def _missing_keywords(names: list[str], values: tuple[Any, ...]) -> None:
    missing = _not_given(names, values)
    listed = ", ".join(repr(name) for name in missing)
    raise TypeError(
        f"__init__() missing {len(missing)} required keyword-only "
        f"argument{'s' if len(missing) > 1 else ''}: {listed}"
    )


def _check_deep_partial(obj: _BaseModel, owner: str, path: str) -> None:
    """``_uow_check_deep`` field by field, skipping those a partial load left out."""
    absent = obj._uow_absent or ()
    for f in obj._uow_meta.mutable_fields:
        if f.name not in absent:
            f.spec.check(owner, f"{path}.{f.name}" if path else f.name, getattr(obj, f.name))


def _mutated_partial(obj: _BaseModel, snapshot: Mapping[str, Any]) -> bool:
    """``_uow_mutated`` field by field, skipping those a partial load left out."""
    absent = obj._uow_absent or ()
    for f in obj._uow_meta.mutable_fields:
        if f.name in absent:
            continue
        value = getattr(obj, f.name)
        if f.spec.needs_dump:
            value = f.spec.dump(value)
        if not same(snapshot.get(f.key, MISSING), value):
            return True
    return False


def _unshared(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc``, a new dump of a class that keeps dumps, with copies of what it shares."""
    for key, value in doc.items():
        if type(value) not in IMMUTABLE:
            doc[key] = copy_stored(value)
    return doc


def _to_bson_partial(obj: _BaseModel) -> dict[str, Any]:
    """The stored form of a partly loaded instance: only the fields it has."""
    meta: ModelMeta = type(obj)._uow_meta
    doc: dict[str, Any] = {}
    absent = obj._uow_absent or ()
    id_field = meta.id_field
    if id_field is not None and id_field.name not in absent:
        value = getattr(obj, id_field.name)
        doc["_id"] = id_field.spec.dump(value) if id_field.spec.needs_dump else value
    if meta.cls_name is not None:
        doc["_cls"] = meta.cls_name
    for f in meta.fields:
        if f.is_id or f.name in absent:
            continue
        value = getattr(obj, f.name)
        doc[f.key] = f.spec.dump(value) if f.spec.needs_dump else value
    if obj._uow_extra:
        doc.update(obj._uow_extra)
    return doc


def _load_other_class(
    cls: Any, raw: Mapping[str, Any], ctx: LoadContext, absent: frozenset[str] | None, kind: Any
) -> Any:
    """A stored document whose ``_cls`` is not ``cls``'s own, loaded by the subclass
    it names; None when that is no subclass of ``cls`` (one this process does not
    know, or ``cls`` itself): ``cls`` loads it then, keeping the ``_cls``."""
    sub = cls._uow_meta.subclasses.get(kind)
    if sub is not None and sub is not cls and issubclass(sub, cls):
        return sub._uow_load(raw, ctx, absent)
    return None
