"""Document and Embedded classes: declared fields, validation, and BSON in and out.

A class statement deriving from :class:`Document` or :class:`Embedded` becomes a
slotted attrs class (``attrs.fields(User)`` works). Its annotations are parsed
once into ``TypeSpec`` objects (``_types``), and two functions are generated for
the class, as attrs generates ``__init__``: one builds the stored form of an
instance, one builds an instance from a stored document without re-validating it.
Both sit on every flush and load, so they are straight-line code with no loop
over field metadata.

Class attributes are query fields (``User.visits > 10``): each class gets its own
metaclass carrying one descriptor per field, so instances keep attrs' C-speed slot
access while ``User.visits`` answers with a ``query.QueryField``.
"""

from __future__ import annotations

import builtins
import datetime
import inspect
import operator
import re
import sys
import threading
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import attrs
import bson

from ._stored import EQ_EXACT, IMMUTABLE, copy_stored
from ._types import (
    DEFAULT_LOAD_CONTEXT,
    INT64_MAX,
    INT64_MIN,
    DateSpec,
    DatetimeSpec,
    DecimalSpec,
    DictSpec,
    EmbeddedSpec,
    ListSpec,
    LoadContext,
    OptionalSpec,
    ScalarSpec,
    SetSpec,
    TypeSpec,
    round_trips,
    spec_for,
)
from .exceptions import DefinitionError, FieldNotLoaded, ValidationError
from .fields import METADATA_KEY, FieldOptions, field
from .operators import MISSING, OPERATORS, Operator, same

if TYPE_CHECKING:  # type checkers know it on every Python version
    from typing_extensions import dataclass_transform
elif sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda cls: cls


__all__ = ["Document", "Embedded", "Index", "Ref", "collection_name"]

D = TypeVar("D", bound="Document")

_RESERVED_KEYS = frozenset({"_id", "_cls"})
_BAD_STORED_NAME = re.compile(r"^\$|[.\x00]")

# Every model class by name, to resolve string annotations and Ref["Name"].
_classes_by_name: dict[str, type[_BaseModel]] = {}
# Set while attrs builds a class: see _QueryFieldDescriptor.__get__.
_building = threading.local()


def collection_name(class_name: str) -> str:
    """The default collection of a class: its name in snake_case.

    >>> collection_name("OrderLine"), collection_name("HTTPLog"), collection_name("User")
    ('order_line', 'http_log', 'user')
    """
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name)
    return snake.lower()


class FieldMeta:
    """Everything uow knows of one declared field (built once per class)."""

    __slots__ = (
        "attribute",
        "bit",
        "convert",
        "current_date",
        "fast_optional",
        "fast_range",
        "fast_type",
        "index",
        "is_id",
        "key",
        "name",
        "nested",
        "on_update",
        "operator",
        "options",
        "spec",
        "unique",
        "user_validator",
        "validators",
        "version",
    )

    def __init__(self, attribute: attrs.Attribute[Any], spec: TypeSpec, options: FieldOptions):
        self.attribute = attribute
        self.name: str = attribute.name
        self.is_id = attribute.name == "id"
        #: this field's bit in a mask of fields (set per class: see _finish_class)
        self.bit = 0
        #: an assigned value of exactly this type needs no further check (None: always
        #: check); ``fast_range``: an int must still be tested against BSON's int64
        self.fast_type, self.fast_optional, self.fast_range = _fast_type(spec)
        self.key: str = "_id" if self.is_id else (options.db_name or attribute.name)
        self.spec = spec
        self.options = options
        self.on_update = options.on_update
        self.operator: Operator | None = (
            OPERATORS[options.on_update] if options.on_update is not None else None
        )
        if self.operator is None and _is_set_spec(spec):
            # A set's additions as $addToSet: two sessions adding the same item
            # (or one adding an item already stored) keep one, as a set does.
            self.operator = OPERATORS["$addToSet"]
        self.current_date = options.on_update == "$currentDate"
        self.version = options.version
        self.index = options.index
        self.unique = options.unique
        self.user_validator = options.validator
        #: field(validator=...) and attrs.field(validator=...) validators, run on
        #: construction and on assignment after the type check
        self.validators: tuple[Callable[..., Any], ...] = (
            (options.validator,) if options.validator is not None else ()
        ) + tuple(_attrs_validators(attribute))
        #: turns an accepted input into the value kept (documents into Refs)
        self.convert: Callable[[Any], Any] | None = spec.converter()
        inner = spec.inner if isinstance(spec, OptionalSpec) else spec
        #: the KeySchema mapping of an embedded document's keys, for diffs
        self.nested: Mapping[str, FieldMeta] | None = (
            inner.cls._uow_meta.by_key if isinstance(inner, EmbeddedSpec) else None
        )

    def __repr__(self) -> str:
        return f"<FieldMeta {self.name} -> {self.key!r}: {self.spec.name}>"


class ModelMeta:
    """What uow knows of one Document or Embedded class (``cls._uow_meta``)."""

    def __init__(self, cls: type[_BaseModel], fields: list[FieldMeta]) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.fields = fields
        self.by_name: dict[str, FieldMeta] = {f.name: f for f in fields}
        self.by_key: dict[str, FieldMeta] = {f.key: f for f in fields}
        self.id_field: FieldMeta | None = self.by_name.get("id")
        self.id_spec: TypeSpec | None = self.id_field.spec if self.id_field else None
        self.version_field: FieldMeta | None = next((f for f in fields if f.version), None)
        self.current_date_keys = frozenset(f.key for f in fields if f.current_date)
        #: keys whose every change is a ``$set`` of the new value (no declared operator,
        #: not the version, never changed in place): a flush writes them without a diff
        self.set_keys = frozenset(
            f.key
            for f in fields
            if f.operator is None and not f.version and not f.spec.mutable and not f.is_id
        )
        self.mutable_fields = [f for f in fields if f.spec.mutable]
        #: (key, spec.snapshot) of those fields, for _state.snapshot_of
        self.mutable_snapshots = [(f.key, f.spec.snapshot) for f in self.mutable_fields]
        #: instances can change without an assignment (containers, embedded)
        self.mutable = bool(self.mutable_fields)
        # Hierarchy: filled by the metaclass.
        self.abstract = False
        self.root: type[_BaseModel] = cls
        self.cls_name: str | None = None  # the _cls value; None for a root
        self.subclasses: dict[str, type[_BaseModel]] = {}  # shared by the hierarchy
        self.collection: str | None = None
        self.indexes: list[Index] = []
        self.shard_key: tuple[str, ...] = ()
        self.known_keys: frozenset[str] = frozenset()
        self._keys_for_mask: dict[int, tuple[str, ...]] = {}
        self._assigned_keys: dict[int, tuple[str, ...]] = {}
        #: a field holds a dict[str, T] somewhere: its keys are data, and may be
        #: ones an update path cannot address (see _state._addressable)
        self.data_keys = True
        #: how many keys a stored document has that is its own snapshot once loaded
        #: (see _finish_class); -1: none is
        self.raw_snapshot_size = -1
        #: an Embedded class whose instances keep their last dump (see Embedded); its
        #: dumps share no list or dict with the instance
        self.keeps_dump = False
        #: so do the dumps of every subclass (a snapshot needs no copy of them)
        self.dumps_unshared = False
        #: a dump may hold an embedded document's kept dump (copied for the user)
        self.shares_dumps = False
        self.own_names = frozenset(inspect.get_annotations(cls))

    def keys_to_compare(self, assigned: int, in_place: bool = True) -> tuple[str, ...]:
        """The stored keys of the fields in mask ``assigned`` and (``in_place``) of those
        that change in place, in field order (so an update's paths come in the
        document's order)."""
        cache = self._keys_for_mask if in_place else self._assigned_keys
        keys = cache.get(assigned)
        if keys is None:
            keys = tuple(
                f.key for f in self.fields if f.bit & assigned or (in_place and f.spec.mutable)
            )
            if len(cache) < 4096:  # masks are few: the assignment patterns
                cache[assigned] = keys
        return keys

    def hierarchy_names(self) -> list[str]:
        """The _cls values of this class and of every subclass of it."""
        return [name for name, sub in self.subclasses.items() if issubclass(sub, self.cls)]


class _QueryFieldDescriptor:
    """``User.visits`` on the class: a query field (instances never see this)."""

    __slots__ = ("made", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        #: (class, its query field), made on first use: a QueryField never changes,
        #: and ``User.id == x`` in a loop would otherwise make one (~1.7 µs) each time
        self.made: tuple[Any, Any] | None = None

    def __get__(self, instance: Any, owner: Any) -> Any:
        cls = instance  # the metaclass's instance is the Document class
        if getattr(_building, "active", 0):
            # attrs, building a subclass, reads the base's slots with getattr.
            for klass in cls.__mro__:
                if self.name in klass.__dict__:
                    return klass.__dict__[self.name]
        made = self.made
        if made is not None and made[0] is cls:
            return made[1]
        from .query import QueryField  # query sits above document: imported late

        meta: ModelMeta = cls._uow_meta
        query_field = QueryField.for_field(meta, meta.by_name[self.name])
        self.made = (cls, query_field)
        return query_field

    def __set__(self, instance: Any, value: Any) -> None:
        raise AttributeError(
            f"{instance.__name__}.{self.name} is a field; set it on an instance, not the class"
        )


@dataclass_transform(kw_only_default=True, field_specifiers=(field, attrs.field))
class _ModelMeta(type):
    """Builds Document and Embedded classes (see the module docstring)."""

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> Any:
        if "__attrs_attrs__" in namespace or namespace.get("_uow_base_class"):
            # attrs re-creating the slotted class, or one of our own bases.
            return super().__new__(mcls, name, bases, namespace, **kwargs)
        _check_namespace(name, namespace)
        is_document = any(issubclass(base, _DocumentBase) for base in bases)
        module = namespace.get("__module__", "")
        annotations = _resolve_annotations(name, module, namespace)
        # Fields go into the namespace before the class exists: on the class, a
        # parent's query-field descriptors would intercept the assignment.
        own_specs = _attach_fields(name, namespace, annotations)
        plain = super().__new__(mcls, name, bases, namespace, **kwargs)
        _building.active = getattr(_building, "active", 0) + 1
        try:
            built = _define(plain, is_document)
        finally:
            _building.active -= 1
        _finish_class(built, namespace, is_document, own_specs)
        return built


def _define(plain: type, is_document: bool) -> Any:
    return attrs.define(
        plain,
        slots=True,
        kw_only=True,
        init=False,  # _generate_init writes one with inline type checks
        eq=not is_document,  # documents compare by identity, embedded by value
        repr=False,
        on_setattr=attrs.setters.NO_OP,  # our __setattr__ validates and tracks
        weakref_slot=False,  # Document declares __weakref__ once
        getstate_setstate=False,  # _BaseModel's keep unknown keys and partial loads
        auto_attribs=True,
    )


def _check_namespace(name: str, namespace: dict[str, Any]) -> None:
    for reserved in ("_uow_meta",):
        if reserved in namespace:
            raise DefinitionError(f"{name}: {reserved} is reserved for uow")


def _resolve_ref(name: str) -> type:
    try:
        return _classes_by_name[name]
    except KeyError:
        raise DefinitionError(
            f"Ref[{name!r}]: no Document class named {name!r} is defined"
        ) from None


def _resolve_annotations(
    class_name: str, module_name: str, namespace: Mapping[str, Any]
) -> dict[str, Any]:
    """The class's own annotations, with string annotations evaluated."""
    own = namespace.get("__annotations__", {})
    module = sys.modules.get(module_name)
    globalns = dict(vars(module)) if module is not None else {}
    localns: dict[str, Any] = {**_classes_by_name, **namespace}
    resolved: dict[str, Any] = {}
    for attr, written in own.items():
        annotation = written
        if isinstance(written, str):
            try:
                annotation = eval(written, globalns, localns)
            except NameError as exc:
                # Under `from __future__ import annotations`, `Ref[Later]` names a
                # class not defined yet: it becomes Ref["Later"], resolved on first use.
                annotation = eval(written, globalns, _LateNames(localns, globalns))
                if not _names_only_in_refs(annotation):
                    raise DefinitionError(
                        f"{class_name}.{attr}: cannot resolve the annotation {written!r} "
                        f"({exc}); define the classes it names first"
                    ) from exc
            except Exception as exc:
                raise DefinitionError(
                    f"{class_name}.{attr}: cannot resolve the annotation {written!r} "
                    f"({exc}); define the classes it names first"
                ) from exc
        resolved[attr] = annotation
    return resolved


class _LateNames(dict[str, Any]):
    """Names for eval: a name defined nowhere stands for itself (a forward reference)."""

    def __init__(self, local: Mapping[str, Any], globalns: Mapping[str, Any]) -> None:
        super().__init__(local)
        self.globalns = globalns

    def __missing__(self, name: str) -> Any:
        if name in self.globalns:
            return self.globalns[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        return name


def _names_only_in_refs(annotation: Any) -> bool:
    """Whether every unresolved name in ``annotation`` is the target of a ``Ref[...]``."""
    if typing.get_origin(annotation) is Ref:
        return True
    if isinstance(annotation, (str, typing.ForwardRef)):
        return False
    return all(_names_only_in_refs(arg) for arg in typing.get_args(annotation))


def _attach_fields(
    class_name: str, namespace: dict[str, Any], annotations: dict[str, Any]
) -> dict[str, TypeSpec]:
    """Check each own field and put our type check into its attrs validators.

    Returns the TypeSpec of each own field, for the class's FieldMeta.
    """
    specs: dict[str, TypeSpec] = {}
    for attr, annotation in annotations.items():
        if typing.get_origin(annotation) is ClassVar or annotation is ClassVar:
            continue
        where = f"{class_name}.{attr}"
        if attr.startswith("_uow_"):
            raise DefinitionError(f"{where}: names starting with _uow_ are reserved for uow")
        spec = specs[attr] = spec_for(annotation, where, _resolve_ref)
        current = namespace.get(attr, attrs.NOTHING)
        counting: Any
        if type(current).__name__ == "_CountingAttr":  # attrs.field() / uow.field()
            counting = current
            options = counting.metadata.get(METADATA_KEY) or FieldOptions()
            counting.metadata = {**counting.metadata, METADATA_KEY: options}
        else:
            options = FieldOptions()
            kwargs: dict[str, Any] = {"metadata": {METADATA_KEY: options}, "kw_only": True}
            if current is not attrs.NOTHING:
                if isinstance(current, (list, dict, set)):
                    raise DefinitionError(
                        f"{where}: a mutable default would be shared by every instance; "
                        f"use field(factory={type(current).__name__})"
                    )
                kwargs["default"] = current
            counting = attrs.field(**kwargs)
            namespace[attr] = counting
        stored = options.db_name or attr
        if attr != "id" and (_BAD_STORED_NAME.search(stored) or stored in _RESERVED_KEYS):
            raise DefinitionError(
                f"{where}: the stored name {stored!r} cannot be used: MongoDB reads names "
                "starting with '$' as operators and names with '.' as paths, and _id/_cls "
                "are uow's; pick another db_name"
            )
        _check_operator(where, spec, options)
        counting.validator(_make_validator(spec, options))
        converter = spec.converter()
        if converter is not None:
            counting.converter = converter
    return specs


_NUMERIC = (ScalarSpec, DecimalSpec)


def _check_operator(where: str, spec: TypeSpec, options: FieldOptions) -> None:
    inner = spec.inner if isinstance(spec, OptionalSpec) else spec
    operator = options.on_update
    if options.version:
        if not (isinstance(inner, ScalarSpec) and inner.name == "int") or operator:
            raise DefinitionError(f"{where}: a version=True field is an int with no on_update")
        return
    if operator is None or operator == "$set":
        return
    fits = {
        "$inc": isinstance(inner, _NUMERIC) and inner.name in ("int", "float", "Decimal"),
        "$max": not inner.mutable,
        "$min": not inner.mutable,
        "$push": type(inner) is ListSpec,
        "$addToSet": isinstance(inner, ListSpec),
        "$currentDate": isinstance(inner, (DatetimeSpec, DateSpec)),
    }[operator]
    if not fits:
        raise DefinitionError(
            f"{where}: on_update={operator!r} cannot persist a {spec.name} field "
            "($inc: numbers; $push: lists; $addToSet: lists and sets; $max/$min: "
            "scalars; $currentDate: datetime or date)"
        )


def _make_validator(spec: TypeSpec, options: FieldOptions) -> Callable[..., None]:
    user = options.validator

    def validate_uow_type(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        spec.check(type(instance).__name__, attribute.name, value)
        if user is not None:
            _run_user_validator(user, instance, attribute, value)

    return validate_uow_type


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


def _finish_class(
    cls: Any, namespace: dict[str, Any], is_document: bool, own_specs: dict[str, TypeSpec]
) -> None:
    """Field metadata, hierarchy, generated functions and the per-class metaclass."""
    parent_fields: dict[str, FieldMeta] = next(
        (base._uow_meta.by_name for base in cls.__mro__[1:] if "_uow_meta" in base.__dict__),
        {},
    )
    fields: list[FieldMeta] = []
    for attribute in attrs.fields(cls):
        options = attribute.metadata.get(METADATA_KEY)
        if options is None:
            raise DefinitionError(f"{cls.__name__}.{attribute.name}: not a uow field")
        # The spec built when the field was declared: own, or the parent's FieldMeta.
        spec = own_specs.get(attribute.name)
        if spec is None:
            spec = parent_fields[attribute.name].spec
        fields.append(FieldMeta(attribute, spec, options))
    stored_by: dict[str, str] = {}
    for f in fields:
        other = stored_by.setdefault(f.key, f.name)
        if other != f.name:
            raise DefinitionError(
                f"{cls.__name__}.{f.name}: the stored name {f.key!r} is already the stored "
                f"name of {cls.__name__}.{other}; one of them would overwrite the other. "
                "Give one a different db_name"
            )
    meta = ModelMeta(cls, fields)
    if meta.version_field is not None and sum(f.version for f in fields) > 1:
        raise DefinitionError(f"{cls.__name__}: only one field can have version=True")
    parent_meta: ModelMeta | None = next(
        (base._uow_meta for base in cls.__mro__[1:] if "_uow_meta" in base.__dict__), None
    )
    meta.abstract = bool(namespace.get("__abstract__", False))
    own_collection = namespace.get("__collection__")
    starts_hierarchy = (
        parent_meta is None
        or parent_meta.abstract
        or (own_collection is not None and own_collection != parent_meta.collection)
    )
    if starts_hierarchy:
        meta.root = cls
        meta.subclasses = {}
        if is_document and not meta.abstract:
            meta.collection = own_collection or collection_name(cls.__name__)
    else:
        assert parent_meta is not None
        meta.root = parent_meta.root
        meta.subclasses = parent_meta.subclasses
        meta.collection = parent_meta.collection
        meta.cls_name = cls.__name__
    meta.subclasses[meta.cls_name or cls.__name__] = cls
    if is_document:
        if meta.id_field is None:
            raise DefinitionError(f"{cls.__name__}: a Document needs an id field")
        meta.indexes = _collect_indexes(cls, meta, namespace, parent_meta)
        meta.shard_key = tuple(namespace.get("__shard_key__", getattr(cls, "__shard_key__", ())))
        for name in meta.shard_key:
            if name not in meta.by_name:
                raise DefinitionError(
                    f"{cls.__name__}.__shard_key__ names {name!r}, which is not a field"
                )
    # A root's documents carry no _cls: one they do carry (a subclass this process
    # does not know) is an unknown key, kept and written back.
    meta.known_keys = frozenset(meta.by_key) | ({"_cls"} if meta.cls_name else set())
    meta.data_keys = any(_holds_data_keys(f.spec) for f in meta.fields)
    # A stored document with every known key and nothing else (as many keys, none
    # unknown), loaded by specs that round-trip, is its own snapshot: dumping what
    # was loaded from it would give it back.
    meta.raw_snapshot_size = (
        len(meta.known_keys) if all(round_trips(f.spec) for f in meta.fields) else -1
    )
    meta.keeps_dump = meta.dumps_unshared = not is_document and not meta.mutable
    if not meta.keeps_dump:
        for base in cls.__mro__[1:]:
            if "_uow_meta" in base.__dict__:
                base._uow_meta.dumps_unshared = False
    meta.shares_dumps = meta.keeps_dump or any(_holds_embedded(f.spec) for f in meta.fields)
    cls._uow_meta = meta
    cls._uow_setters = {f.name: f for f in fields}
    for index, f in enumerate(fields):
        f.bit = 1 << index
    twin = _plain_twin(cls, meta)
    cls.__init__ = _generate_init(cls, meta, twin)
    cls.from_dict = classmethod(_generate_from_dict(cls, meta, twin))
    cls._uow_to_bson = _generate_to_bson(cls, meta)
    cls._uow_check_deep = _generate_check_deep(cls, meta)
    cls._uow_mutated = _generate_mutated(cls, meta)
    load_exact, load = _generate_loader(cls, meta, twin)
    cls._uow_load_exact = classmethod(load_exact)
    cls._uow_load = classmethod(load)
    _classes_by_name[cls.__name__] = cls
    # Query fields on the class, C-speed slots on instances: a metaclass per class.
    descriptors = {f.name: _QueryFieldDescriptor(f.name) for f in fields}
    cls.__class__ = type(f"{cls.__name__}Class", (type(cls),), descriptors)


def _collect_indexes(
    cls: type, meta: ModelMeta, namespace: dict[str, Any], parent: ModelMeta | None
) -> list[Index]:
    indexes: list[Index] = list(parent.indexes) if parent is not None else []
    for index in namespace.get("__indexes__", ()):
        if not isinstance(index, Index):
            raise DefinitionError(f"{cls.__name__}.__indexes__ holds {index!r}; use uow.Index(...)")
        indexes.append(index)
    for f in meta.fields:
        if (f.index or f.unique) and f.name in meta.own_names:
            indexes.append(Index(f.name, unique=f.unique))
    return indexes


def _member_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The slot's own __set__, found without the class-level query-field descriptor."""
    for klass in cls.__mro__:
        slot = klass.__dict__.get(name)
        if slot is not None and hasattr(slot, "__set__") and hasattr(slot, "__objclass__"):
            return slot.__set__  # type: ignore[no-any-return]
    raise DefinitionError(f"{cls.__name__}.{name}: no slot found")


def _is_set_spec(spec: TypeSpec) -> bool:
    """Whether values of ``spec`` are sets (or None)."""
    if isinstance(spec, OptionalSpec):
        spec = spec.inner
    return isinstance(spec, SetSpec)


def _holds_embedded(spec: TypeSpec) -> bool:
    """Whether values of ``spec`` can hold an embedded document."""
    if isinstance(spec, (OptionalSpec, ListSpec, DictSpec)):
        return _holds_embedded(spec.inner)
    return isinstance(spec, EmbeddedSpec)


def _holds_data_keys(spec: TypeSpec) -> bool:
    """Whether values of ``spec`` can hold a dict whose keys are data."""
    if isinstance(spec, OptionalSpec):
        return _holds_data_keys(spec.inner)
    if isinstance(spec, DictSpec):
        return True
    if isinstance(spec, ListSpec):
        return _holds_data_keys(spec.inner)
    # Unknown keys of an embedded document are kept: they may be anything.
    return isinstance(spec, EmbeddedSpec)


def _assign(obj: Any, name: str, value: Any) -> FieldMeta | None:
    """Set attribute ``name``: a field's value is converted, checked, validated.

    Returns the field (None for another attribute). A value of the field's exact
    type passes with one ``type(...) is`` test, as in the generated ``__init__``.
    """
    field: FieldMeta | None = obj._uow_setters.get(name)
    if field is None:
        object.__setattr__(obj, name, value)
        return None
    if field.convert is not None:
        value = field.convert(value)
    if type(value) is not field.fast_type:
        if not (value is None and field.fast_optional):
            field.spec.check(type(obj).__name__, name, value)
    elif field.fast_range and not INT64_MIN <= cast(int, value) <= INT64_MAX:
        field.spec.check(type(obj).__name__, name, value)
    for validator in field.validators:
        _run_user_validator(validator, obj, field.attribute, value)
    object.__setattr__(obj, name, value)
    absent = obj._uow_absent
    if absent and name in absent:
        object.__setattr__(obj, "_uow_absent", absent - {name} or None)
    return field


def _fast_type(spec: TypeSpec) -> tuple[type | None, bool, bool]:
    """The exact type that needs no further check, whether None is allowed, and
    whether an int of that type must still be tested against the int64 range."""
    optional = isinstance(spec, OptionalSpec)
    inner = spec.inner if isinstance(spec, OptionalSpec) else spec
    if isinstance(inner, ScalarSpec):
        fast = inner.accepted[0]
        return fast, optional, inner.int_range and fast is int
    if isinstance(inner, EmbeddedSpec) and not inner.cls._uow_meta.mutable:
        # An instance of exactly this class was checked field by field when it was
        # built or assigned to, and has nothing that changes in place.
        return inner.cls, optional, False
    return None, optional, False


class _SlotWriter:
    """How generated code stores into the slots of the instance it builds.

    A model class overrides ``__setattr__`` (assignments are validated and
    tracked), so ``obj.x = v`` in generated code would run it. The code builds
    the instance as the class's plain twin instead (see ``_plain_twin``): stores
    then run at bytecode speed, ~40 ns a slot less than a call to the slot's own
    setter, which is what is left where there is no twin.
    """

    def __init__(self, cls: type, env: dict[str, Any], target: str, twin: type | None) -> None:
        self.cls = cls
        self.env = env
        self.target = target
        self.twin = twin

    def store(self, name: str, value: str) -> str:
        if self.twin is not None:
            return f"{self.target}.{name} = {value}"
        setter = f"_set_{name}"
        self.env[setter] = _member_setter(self.cls, name)
        return f"{setter}({self.target}, {value})"


def _plain_twin(cls: type, meta: ModelMeta) -> type | None:
    """A subclass of ``cls`` with its layout and Python's own ``__setattr__``.

    Generated ``__init__`` and loaders build an instance as the twin, with plain
    stores, then make it a ``cls`` (``__class__`` assignment: the layouts are the
    same); no instance is ever seen as a twin. None where a user's code could
    meet the twin: a factory given the half-built instance (``takes_self``), or
    an ``__init_subclass__`` (which would be called for the twin).
    """
    if any(
        isinstance(f.attribute.default, attrs.Factory)  # type: ignore[arg-type]
        and f.attribute.default.takes_self  # type: ignore[union-attr]
        for f in meta.fields
    ):
        return None
    if any("__init_subclass__" in klass.__dict__ for klass in cls.__mro__[:-1]):
        return None
    namespace = {
        "__slots__": (),
        "__setattr__": object.__setattr__,
        "__module__": cls.__module__,
        "__qualname__": f"{cls.__qualname__}._uow_twin",
    }
    # type.__new__ itself: _ModelMeta.__new__ would make the twin a model.
    return type.__new__(type(cls), cls.__name__, (cls,), namespace)


#: Makes an instance of one class one of another with the same layout, without
#: the instance's own __setattr__.
_set_class: Callable[[Any, type], None] = object.__dict__["__class__"].__set__


def _constructor_body(
    cls: type, meta: ModelMeta, twin: type | None, env: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """The parameters of a generated constructor and the lines that check and store
    them into ``self`` (each parameter a local of the same name).

    Values of the exact expected type pass with one ``type(...) is`` test; anything
    else goes to the field's full check, which accepts subclasses and raises
    ``ValidationError`` for the rest. ``env`` receives what the lines name.
    """
    env.update(
        {
            "_NOTHING": attrs.NOTHING,
            "_run_user": _run_user_validator,
            "_owner": cls.__name__,
            "_cls": cls,
            "_twin": twin,
            "_set_class": _set_class,
        }
    )
    slots = _SlotWriter(cls, env, "self", twin)
    params: list[str] = []
    body = [slots.store("_uow_absent", "None"), slots.store("_uow_extra", "None")]
    if issubclass(cls, _DocumentBase):
        body.append(slots.store("_uow_state", "None"))
    keeps_dump = meta.keeps_dump and all(f.fast_type is not None for f in meta.fields)
    if keeps_dump:
        # False: no dump kept yet, and every value is of its field's exact type, so
        # immutable (see _generate_to_bson); None, set when a value is not.
        body.append("_dumped = False")
    for index, f in enumerate(meta.fields):
        arg = f.attribute.alias or f.name
        default = f.attribute.default
        env[f"_check{index}"] = f.spec.check
        if default is attrs.NOTHING:
            params.append(arg)
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            assert default is not None
            params.append(f"{arg}=_NOTHING")
            env[f"_factory{index}"] = default.factory
            call = f"_factory{index}(self)" if default.takes_self else f"_factory{index}()"
            body += [f"if {arg} is _NOTHING:", f"    {arg} = {call}"]
        else:
            env[f"_default{index}"] = default
            params.append(f"{arg}=_default{index}")
        if f.convert is not None:
            env[f"_convert{index}"] = f.convert
            body.append(f"{arg} = _convert{index}({arg})")
        fast, optional, ranged = _fast_type(f.spec)
        full = f"_check{index}(_owner, {f.name!r}, {arg})"
        if fast is not None:
            env[f"_type{index}"] = fast
            test = f"type({arg}) is not _type{index}"
            if ranged:
                test = f"({test} or not {INT64_MIN} <= {arg} <= {INT64_MAX})"
            if optional:
                test = f"{arg} is not None and {test}"
            body += [f"if {test}:", f"    {full}"]
            if keeps_dump:
                body.append("    _dumped = None")
        else:
            body.append(full)
        body.append(slots.store(f.name, arg))
    if not issubclass(cls, _DocumentBase):
        body.append(slots.store("_uow_dumped", "_dumped" if keeps_dump else "None"))
    if twin is not None:
        # On failure the half-built instance is a ``cls`` again, as it was given.
        body = [
            "try:",
            *("    " + line for line in body),
            "except BaseException:",
            "    self.__class__ = _cls",
            "    raise",
            "self.__class__ = _cls",
        ]
    for index, f in enumerate(meta.fields):
        for number, validator in enumerate(f.validators):
            env[f"_user{index}_{number}"] = validator
            env[f"_attribute{index}"] = f.attribute
            body.append(f"_run_user(_user{index}_{number}, self, _attribute{index}, self.{f.name})")
    if hasattr(cls, "__attrs_post_init__"):
        body.append("self.__attrs_post_init__()")
    return params, body


def _generate_init(cls: type, meta: ModelMeta, twin: type | None) -> Callable[..., None]:
    """Generate a keyword-only ``__init__`` with each field's type check inlined.

    With a ``twin`` (``_plain_twin``), the instance is the twin while its slots
    are filled.
    """
    env: dict[str, Any] = {}
    params, body = _constructor_body(cls, meta, twin, env)
    if twin is not None:
        # A class of its own (a subclass calling this __init__) is built as it was.
        env["_slow"] = _generate_init(cls, meta, None)
        arguments = ", ".join(f"{p.partition('=')[0]}={p.partition('=')[0]}" for p in params)
        body = [
            "if type(self) is not _cls:",
            f"    return _slow(self, {arguments})",
            "_set_class(self, _twin)",
            *body,
        ]
    if len(params) > _MANY_PARAMETERS:
        signature, prologue = _keywords_taken_from_a_dict(params, env)
    else:
        signature, prologue = (", ".join(["self", "*", *params]) if params else "self"), []
    lines = prologue + ["    " + line for line in body]
    source = f"def __init__({signature}):\n" + "\n".join(lines) + "\n"
    exec(compile(source, f"<uow {cls.__qualname__}.__init__>", "exec"), env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    if len(params) > _MANY_PARAMETERS:
        init.__signature__ = _keyword_signature(params, env)
    return init  # type: ignore[no-any-return]


def _generate_from_dict(cls: type, meta: ModelMeta, twin: type | None) -> Callable[..., Any]:
    """Generate ``from_dict(cls, data)``: ``__init__``'s checks, each argument taken
    from ``data`` by name (a call with ``**data`` makes CPython match every key
    against every parameter name by comparing strings: ~1.2 µs for 15 keys that
    came from JSON), and a mapping given for an embedded document built with that
    class's ``from_dict``."""
    env: dict[str, Any] = {}
    params, body = _constructor_body(cls, meta, twin, env)
    env.update(
        {
            "_new": object.__new__,
            "_dict": dict,
            "_as_dict": _mapping_argument,
            "_unexpected": _unexpected_keys,
            "_missing": _missing_keys,
            "_ARGS": frozenset(p.partition("=")[0] for p in params),
        }
    )
    lines = [
        "def from_dict(cls, data):",
        "    if type(data) is not _dict:",
        "        data = _as_dict(_cls, data)",
        "    if not _ARGS.issuperset(data):",
        "        _unexpected(_cls, data, _ARGS)",
        "    get = data.get",
    ]
    binding, checking = _arguments_from_a_dict(params, "get", "_missing(_cls, ")
    lines += binding
    for index, (f, param) in enumerate(zip(meta.fields, params, strict=True)):
        name = param.partition("=")[0]
        build = _embedded_from_mappings(f.spec)
        if build is not None:
            env[f"_nested{index}"] = build
            inner = f.spec.inner if isinstance(f.spec, OptionalSpec) else f.spec
            if isinstance(inner, EmbeddedSpec):
                # The usual value (a dict) without the builder's call.
                env[f"_from_dict{index}"] = inner.cls.from_dict
                lines += [
                    f"    if type({name}) is _dict:",
                    f"        {name} = _from_dict{index}({name})",
                    "    else:",
                    f"        {name} = _nested{index}({name})",
                ]
            else:
                lines.append(f"    {name} = _nested{index}({name})")
    lines += checking
    lines.append("    self = _new(_cls)" if twin is None else "    self = _new(_twin)")
    lines += ["    " + line for line in body]
    lines.append("    return self")
    fast = _from_dict_fast_path(cls, meta, twin, env)
    if fast:
        lines[1:1] = fast
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<uow {cls.__qualname__}.from_dict>", "exec"), env)
    from_dict = env["from_dict"]
    from_dict.__qualname__ = f"{cls.__qualname__}.from_dict"
    from_dict.__doc__ = _BaseModel.from_dict.__doc__
    return from_dict  # type: ignore[no-any-return]


def _from_dict_fast_path(
    cls: type, meta: ModelMeta, twin: type | None, env: dict[str, Any]
) -> list[str]:
    """The lines of ``from_dict`` that take a dict holding every field (``id`` may be
    left to its factory), each value of its field's exact type, in a few C calls:
    one lookup of all keys, one comparison of all types. ``__init__`` would store
    those values unchecked too. A class that keeps its dump gets it built at once,
    from the values in hand. Empty where a field or the class needs more
    (conversion, validators, ``__attrs_post_init__``, no twin)."""
    if twin is None or hasattr(cls, "__attrs_post_init__"):
        return []
    fields = [f for f in meta.fields if not f.is_id]
    # (A factory taking the instance leaves the class without a twin.)
    if not fields or any(
        f.fast_type is None or f.convert is not None or f.validators for f in meta.fields
    ):
        return []
    names = [f.attribute.alias or f.name for f in fields]
    if len(names) > 1:
        env["_pick"] = operator.itemgetter(*names)
    else:
        env["_pick"] = lambda data, name=names[0]: (data[name],)
    env["_TYPES"] = tuple(f.fast_type for f in fields)
    ranged = [index for index, f in enumerate(fields) if f.fast_range]
    test = "tuple(map(type, values)) == _TYPES"
    if ranged:
        env["_ints"] = (
            operator.itemgetter(*ranged) if len(ranged) > 1 else lambda v, i=ranged[0]: (v[i],)
        )
        test += f" and {INT64_MIN} <= min(_ints(values)) and max(_ints(values)) <= {INT64_MAX}"
    count = len(fields)
    id_field = meta.id_field
    lines = []
    if id_field is not None:
        id_arg = id_field.attribute.alias or id_field.name
        lines += [
            f"    if type(data) is _dict and (len(data) == {count} or "
            f"(len(data) == {count + 1} and {id_arg!r} in data)):",
        ]
    else:
        lines.append(f"    if type(data) is _dict and len(data) == {count}:")
    lines += [
        "        try:",
        "            values = _pick(data)",
        "        except KeyError:",
        "            values = None",
        f"        if values is not None and {test}:",
    ]
    inner: list[str] = []
    if id_field is not None:
        default = id_field.attribute.default
        id_arg = id_field.attribute.alias or id_field.name
        index = meta.fields.index(id_field)
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            get_default = f"_factory{index}()"
        elif default is attrs.NOTHING:
            return []
        else:
            get_default = f"_default{index}"
        inner += [
            f"_id = data.get({id_arg!r}, _NOTHING)",
            "if _id is _NOTHING:",
            f"    _id = {get_default}",
            f"elif type(_id) is not _type{index}:",
            f"    _check{index}(_owner, {id_field.name!r}, _id)",
        ]
    inner += ["self = _new(_twin)", "self._uow_absent = None", "self._uow_extra = None"]
    if issubclass(cls, _DocumentBase):
        inner.append("self._uow_state = None")
    unpacked = ", ".join(f"_v{index}" for index in range(count))
    inner.append(f"{unpacked}{',' if count == 1 else ''} = values")
    values_by_name = {f.name: f"_v{index}" for index, f in enumerate(fields)}
    if id_field is not None:
        values_by_name[id_field.name] = "_id"
    inner += [f"self.{f.name} = {values_by_name[f.name]}" for f in meta.fields]
    if meta.keeps_dump:
        if any(f.spec.needs_dump for f in meta.fields):
            inner.append("self._uow_dumped = False")  # as __init__: dumped when first needed
        else:
            dump = _stored_form_display(meta, lambda _, f: values_by_name[f.name])
            inner.append(f"self._uow_dumped = {{{dump}}}")
    inner += ["self.__class__ = _cls", "return self"]
    return lines + ["            " + line for line in inner]


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
            if value is None or isinstance(value, _BaseModel) or not isinstance(value, Mapping):
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
#: a call with 250 keys built at run time (from JSON, say) cost ~300 µs.
_MANY_PARAMETERS = 16


def _keywords_taken_from_a_dict(params: list[str], env: dict[str, Any]) -> tuple[str, list[str]]:
    """``(self, **kwargs)`` and the lines that bind each parameter from the dict,
    with the TypeErrors Python itself would raise."""
    env["_unexpected"] = _unexpected_keywords
    env["_missing"] = _missing_keywords
    binding, checking = _arguments_from_a_dict(params, "_pop", "_missing(")
    lines = ["    _pop = _kwargs.pop", *binding, "    if _kwargs:", "        _unexpected(_kwargs)"]
    lines += checking
    return "self, **_kwargs", lines


def _arguments_from_a_dict(
    params: list[str], lookup: str, missing: str
) -> tuple[list[str], list[str]]:
    """The lines binding each parameter to a local of its name with ``lookup(name,
    default)``, and those calling ``missing`` + ``names, values)`` when a required
    one was not given. That test is by identity: ``_NOTHING in (a, b)`` would call
    ``==`` on every value before it (an attrs ``__eq__``, in Python, for an
    embedded document)."""
    binding = []
    required = []
    for param in params:
        name, _, default = param.partition("=")
        binding.append(f"    {name} = {lookup}({name!r}, {default or '_NOTHING'})")
        if not default:
            required.append(name)
    if not required:
        return binding, []
    test = " or ".join(f"{name} is _NOTHING" for name in required)
    values = ", ".join(required)
    return binding, [f"    if {test}:", f"        {missing}{required!r}, ({values},))"]


def _keyword_signature(params: list[str], env: dict[str, Any]) -> inspect.Signature:
    """What ``inspect.signature`` shows for an ``__init__`` taking ``**kwargs``."""
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for param in params:
        name, _, default = param.partition("=")
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=env[default] if default else inspect.Parameter.empty,
            )
        )
    return inspect.Signature(parameters)


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


def _attrs_validators(attribute: attrs.Attribute[Any]) -> list[Callable[..., Any]]:
    """Validators given with attrs.field(validator=...), besides our own type check."""
    validator = attribute.validator
    if validator is None:
        return []
    parts = getattr(validator, "_validators", (validator,))
    return [v for v in parts if getattr(v, "__name__", "") != "validate_uow_type"]


def _check_deep_partial(obj: Any, owner: str, path: str) -> None:
    """``_uow_check_deep`` field by field, skipping those a partial load left out."""
    absent = obj._uow_absent or ()
    for f in obj._uow_meta.mutable_fields:
        if f.name not in absent:
            f.spec.check(owner, f"{path}.{f.name}" if path else f.name, getattr(obj, f.name))


def _mutated_partial(obj: Any, snapshot: Mapping[str, Any]) -> bool:
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


def _generate_mutated(cls: type, meta: ModelMeta) -> Callable[[Any, Mapping[str, Any]], bool]:
    """Generate ``_uow_mutated``: each field that can change in place compared with
    the snapshot, without a call where it can be told at C speed (the kept dump of
    an unchanged embedded document is the snapshot's own; a list of strings,
    ObjectIds or datetimes equal to the snapshot's is the same BSON)."""
    env: dict[str, Any] = {
        "_partial": _mutated_partial,
        "_MISSING": MISSING,
        "_same": same,
        "_list": list,
        "_EXACT": EQ_EXACT,
    }
    lines = [
        "def _uow_mutated(self, snapshot):",
        "    if self._uow_absent:",
        "        return _partial(self, snapshot)",
        "    get = snapshot.get",
    ]
    for index, f in enumerate(meta.mutable_fields):
        lines.append(f"    value = self.{f.name}")
        if f.spec.needs_dump:
            env[f"_dump{index}"] = f.spec.dump
            lines.append(f"    value = _dump{index}(value)")
        lines.append(f"    old = get({f.key!r}, _MISSING)")
        spec = f.spec.inner if isinstance(f.spec, OptionalSpec) else f.spec
        equal = "old is value"
        if isinstance(spec, ListSpec):
            equal += (
                " or (type(old) is _list and type(value) is _list and old == value"
                " and _EXACT.issuperset(map(type, old)))"
            )
        lines += [f"    if not ({equal}) and not _same(old, value):", "        return True"]
    lines.append("    return False")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<uow {cls.__qualname__}._uow_mutated>", "exec"), env)
    return env["_uow_mutated"]  # type: ignore[no-any-return]


def _generate_check_deep(cls: type, meta: ModelMeta) -> Callable[[Any, str, str], None]:
    """Generate ``_uow_check_deep``: the fields that can change in place, checked
    (at flush: a wrong value may have been put there in place).

    An embedded document of exactly its field's class, holding nothing that changes
    in place, passes with one ``type(...) is`` test.
    """
    env: dict[str, Any] = {"_partial": _check_deep_partial}
    lines = [
        "def _uow_check_deep(self, owner, path):",
        "    if self._uow_absent:",
        "        return _partial(self, owner, path)",
    ]
    for index, f in enumerate(meta.mutable_fields):
        env[f"_check{index}"] = f.spec.check
        full = f"_check{index}(owner, path + {'.' + f.name!r} if path else {f.name!r}, value)"
        lines.append(f"    value = self.{f.name}")
        if f.fast_type is not None:
            env[f"_type{index}"] = f.fast_type
            test = f"type(value) is not _type{index}"
            if f.fast_optional:
                test = f"value is not None and {test}"
            lines += [f"    if {test}:", f"        {full}"]
        else:
            lines.append(f"    {full}")
    if len(lines) == 3:
        lines.append("    return None")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<uow {cls.__qualname__}._uow_check_deep>", "exec"), env)
    return env["_uow_check_deep"]  # type: ignore[no-any-return]


def _generate_to_bson(cls: type, meta: ModelMeta) -> Callable[[Any], dict[str, Any]]:
    """Generate ``obj -> dict`` building the stored form in one expression."""
    env: dict[str, Any] = {"_partial": _to_bson_partial, "_FieldNotLoaded": FieldNotLoaded}

    def value_of(index: int, f: FieldMeta) -> str:
        value = f"self.{f.name}"
        if f.spec.needs_dump:
            env[f"_dump{index}"] = f.spec.dump
            value = f"_dump{index}(self.{f.name})"
            inner = f.spec.inner if isinstance(f.spec, OptionalSpec) else f.spec
            if isinstance(inner, EmbeddedSpec):
                # The embedded document's own generated dump (or the one it kept),
                # when it is of exactly the field's class; the spec's dump handles
                # None and the rest.
                env[f"_class{index}"] = inner.cls
                dump = "_v._uow_to_bson()"
                if inner.cls._uow_meta.keeps_dump:
                    dump = f"(_v._uow_dumped or {dump})"  # False or None: none kept
                value = (
                    f"({dump} if type(_v := self.{f.name}) is _class{index} else _dump{index}(_v))"
                )
        return value

    body = _stored_form_display(meta, value_of)
    lines = ["def _uow_to_bson(self):"]
    partial = "_partial(self)"
    if meta.keeps_dump:
        env["_unshared"] = _unshared
        partial = f"_unshared({partial})"
        lines += ["    kept = self._uow_dumped", "    if kept:", "        return kept"]
    lines += [
        "    try:",
        f"        doc = {{{body}}}",
        "    except _FieldNotLoaded:",
        f"        return {partial}",
        "    extra = self._uow_extra",
        "    if extra:",
        "        doc.update(extra)",
    ]
    if meta.keeps_dump:
        # Kept only when nothing in it can change in place (a value of another
        # shape loaded from storage can): then the instance, its snapshots and the
        # statements sent can all share it, as nobody changes it. (False: the
        # values were checked when set, and no unknown keys came with them.)
        env["_IMMUTABLE"] = IMMUTABLE
        env["_set_dumped"] = _member_setter(cls, "_uow_dumped")
        lines += [
            "    if kept is False or _IMMUTABLE.issuperset(map(type, doc.values())):",
            "        _set_dumped(self, doc)",
            "        return doc",
            "    return _unshared(doc)",
        ]
    else:
        lines.append("    return doc")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<uow {cls.__qualname__}._uow_to_bson>", "exec"), env)
    return env["_uow_to_bson"]  # type: ignore[no-any-return]


def _stored_form_display(meta: ModelMeta, value_of: Callable[[int, FieldMeta], str]) -> str:
    """The inside of a dict display of the stored form: ``_id`` first, then
    ``_cls`` (a subclass), then the other fields in declared order;
    ``value_of(index, field)`` is the expression of a field's stored value."""
    items: list[str] = []
    id_field = meta.id_field
    ordered = ([id_field] if id_field else []) + [f for f in meta.fields if not f.is_id]
    if meta.cls_name is not None:
        items.append(f"'_cls': {meta.cls_name!r}")
    for index, f in enumerate(ordered):
        items.append(f"{f.key!r}: {value_of(index, f)}")
    if id_field is not None:
        items.insert(0, items.pop(1 if meta.cls_name is not None else 0))  # _id first
    return ", ".join(items)


def _unshared(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc``, a new dump of a class that keeps dumps, with copies of what it shares."""
    for key, value in doc.items():
        if type(value) not in IMMUTABLE:
            doc[key] = copy_stored(value)
    return doc


def _to_bson_partial(obj: Any) -> dict[str, Any]:
    """The stored form of a partly loaded instance: only the fields it has."""
    meta: ModelMeta = type(obj)._uow_meta
    doc: dict[str, Any] = {}
    absent = obj._uow_absent or ()
    if meta.id_field is not None and "id" not in absent:
        doc["_id"] = meta.id_field.spec.dump(obj.id) if meta.id_field.spec.needs_dump else obj.id
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


def _generate_loader(
    cls: type, meta: ModelMeta, twin: type | None
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Generate ``_uow_load_exact`` and ``_uow_load`` (``(cls, raw, ctx, absent) ->
    instance``; the second first loads a ``_cls`` naming a subclass as that
    subclass). Stored data is trusted, not re-validated. With a ``twin``
    (``_plain_twin``), the instance is the twin while its slots are filled."""
    env: dict[str, Any] = {
        "_new": object.__new__,
        "_MISSING": MISSING,
        "_KNOWN": meta.known_keys,
        "_OWN": meta.cls_name,
        # absent may name fields of other classes of the hierarchy (a fields() query)
        "_OWN_FIELDS": frozenset(f.name for f in meta.fields if not f.is_id),
        "_IMMUTABLE": IMMUTABLE,
        "_copy": copy_stored,
        "_list": list,
        "_cls": cls,
        "_twin": twin,
    }
    slots = _SlotWriter(cls, env, "obj", twin)
    lines = [
        "def _uow_load_exact(cls, raw, ctx, absent=None):",
        "    obj = _new(cls)" if twin is None else "    obj = _new(_twin)",
        "    get = raw.get",
    ]
    if issubclass(cls, _DocumentBase):
        lines.append("    " + slots.store("_uow_state", "None"))
    else:
        lines.append("    " + slots.store("_uow_dumped", "None"))
    # Fields stored as given, of immutable declared types: when the stored document
    # has them all and every value is immutable (one C-speed check), they are set
    # without a lookup and a check each (~40% of a flat document's load).
    plain = [
        f
        for f in meta.fields
        if not f.spec.needs_load and not f.spec.mutable and not isinstance(f.spec, DatetimeSpec)
    ]
    if len(plain) < 2:
        plain = []  # (itemgetter of one key gives the value, not a tuple)
    per_field: list[str] = []
    for index, f in enumerate(meta.fields):
        # The stored document becomes the session's snapshot: no list or dict of
        # it may be handed out (converting loads build new ones; others copy).
        if isinstance(f.spec, DatetimeSpec):
            # The common case inline: a naive (UTC) datetime, wanted naive.
            env[f"_load{index}"] = f.spec.load
            env["_datetime"] = datetime.datetime
            value = (
                "(value if type(value) is _datetime and value.tzinfo is None and not ctx.tz_aware"
                f" else _load{index}(value, ctx))"
            )
        elif f.spec.needs_load:
            env[f"_load{index}"] = f.spec.load
            value = f"_load{index}(value, ctx)"
        elif f.spec.mutable:
            value = (
                "(value.copy() if type(value) is _list and _IMMUTABLE.issuperset(map(type, value))"
                " else _copy(value))"
            )
        else:
            value = "(value if type(value) in _IMMUTABLE else _copy(value))"
        default = f.attribute.default
        if default is attrs.NOTHING:
            missing = [
                f"        absent = (absent or frozenset()) | {{{f.name!r}}}",
            ]
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            assert default is not None
            env[f"_factory{index}"] = default.factory
            call = f"_factory{index}(obj)" if default.takes_self else f"_factory{index}()"
            missing = ["        " + slots.store(f.name, call)]
        else:
            env[f"_default{index}"] = default
            missing = ["        " + slots.store(f.name, f"_default{index}")]
        if default is not attrs.NOTHING:
            # A field a partial load left out stays empty: no default stands in for it.
            missing = [f"        if absent is None or {f.name!r} not in absent:"] + [
                "    " + line for line in missing
            ]
        field_lines = [
            f"    value = get({f.key!r}, _MISSING)",
            "    if value is _MISSING:",
            *(["        full = False"] if plain and f not in plain else []),
            *missing,
            "    else:",
            "        " + slots.store(f.name, value),
        ]
        if f in plain:
            per_field += ["    " + line for line in field_lines]
        else:
            lines += field_lines
    if plain:
        env["_pick"] = operator.itemgetter(*(f.key for f in plain))
        names = ", ".join(f"_v{index}" for index in range(len(plain)))
        setters = [
            "        " + slots.store(f.name, f"_v{number}") for number, f in enumerate(plain)
        ]
        lines[3:3] = [
            "    plain = None",
            "    if absent is None:",
            "        try:",
            "            plain = _pick(raw)",
            "        except KeyError:",
            "            pass",
            "    full = plain is not None and _IMMUTABLE.issuperset(map(type, plain))",
            "    if full:",
            f"        {names} = plain",
            *setters,
            "    else:",
            *per_field,
        ]
    known = "_KNOWN.issuperset(raw) and get('_cls', _OWN) == _OWN"
    if plain:
        # Every field found, and nothing else: no unknown key, no _cls.
        env["_NFIELDS"] = len(meta.fields)
        known = f"(full and len(raw) == _NFIELDS) or ({known})"
    lines += [
        "    if absent:",
        "        absent = (absent & _OWN_FIELDS) or None",
        "    " + slots.store("_uow_absent", "absent"),
        f"    if {known}:",
        "        " + slots.store("_uow_extra", "None"),
        "    else:",
        "        extra = {k: v for k, v in raw.items() if k not in _KNOWN}",
        "        if get('_cls', _OWN) != _OWN:",
        "            extra['_cls'] = raw['_cls']",
        "        " + slots.store("_uow_extra", "extra"),
        *(["    obj.__class__ = _cls"] if twin is not None else []),
        "    return obj",
    ]
    # The same body again as _uow_load, behind the _cls dispatch: one call less
    # on every load.
    env["_DEFAULT_CONTEXT"] = DEFAULT_LOAD_CONTEXT
    env["_load_other"] = _load_other_class
    dispatching = [
        "def _uow_load(cls, raw, ctx=_DEFAULT_CONTEXT, absent=None):",
        "    kind = raw.get('_cls')",
        "    if kind is not None and kind != _OWN:",
        "        return _load_other(cls, raw, ctx, absent, kind)",
        *lines[1:],
    ]
    source = "\n".join(lines) + "\n" + "\n".join(dispatching) + "\n"
    exec(compile(source, f"<uow {cls.__qualname__}._uow_load>", "exec"), env)
    return env["_uow_load_exact"], env["_uow_load"]


def _load_other_class(
    cls: Any, raw: Mapping[str, Any], ctx: LoadContext, absent: frozenset[str] | None, kind: Any
) -> Any:
    """A stored document whose ``_cls`` is not ``cls``'s own: its subclass loads it
    (one this process does not know: ``cls`` does, keeping the ``_cls``)."""
    sub = cls._uow_meta.subclasses.get(kind)
    if sub is not None and issubclass(sub, cls):
        return sub._uow_load_exact(raw, ctx, absent)
    return cls._uow_load_exact(raw, ctx, absent)


class Ref(Generic[D]):
    """A reference to a stored document: its class and id.

    ``uow.Ref[User]`` as an annotation stores the user's id; the attribute reads as
    a ``Ref`` with ``.cls`` and ``.id``; ``session.dereference(ref)`` loads it.
    """

    __slots__ = ("cls", "id")

    def __init__(self, cls: type[D], id: Any) -> None:
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "id", id)

    cls: type[D]
    id: Any

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Ref is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ref):
            return bool(self.cls._uow_meta.root is other.cls._uow_meta.root and self.id == other.id)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.cls._uow_meta.root, self.id))

    def __repr__(self) -> str:
        return f"Ref({self.cls.__name__}, {self.id!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.cls, self.id))


class _BaseModel:
    """What Document and Embedded share: validated assignment, BSON in and out."""

    __slots__ = ("_uow_absent", "_uow_extra")
    _uow_base_class = True
    _uow_meta: ClassVar[ModelMeta]
    _uow_setters: ClassVar[dict[str, FieldMeta]]

    def __setattr__(self, name: str, value: Any) -> None:
        _assign(self, name, value)

    def __getstate__(self) -> dict[str, Any]:
        # For copy and pickle: the loaded fields, the unknown stored keys, and which
        # fields a partial load left out; never a session's tracking state.
        absent = self._uow_absent or ()
        state = {
            f.name: object.__getattribute__(self, f.name)
            for f in self._uow_meta.fields
            if f.name not in absent
        }
        state["_uow_extra"] = self._uow_extra
        state["_uow_absent"] = self._uow_absent
        return state

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when a slot is empty: a field left out of a partial load.
        setters = type(self).__dict__.get("_uow_setters") or getattr(type(self), "_uow_setters", {})
        if name in setters:
            raise FieldNotLoaded(
                f"{type(self).__name__}.{name} was not loaded: the query selected other "
                "fields with .fields(...), or the stored document has no such key and the "
                "field has no default. Load it with refresh(), or assign it."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        absent = self._uow_absent or ()
        parts = []
        for f in self._uow_meta.fields:
            if not f.attribute.repr:
                continue
            shown = "<not loaded>" if f.name in absent else repr(getattr(self, f.name))
            parts.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @classmethod
    def from_dict(cls: type[M], data: Mapping[str, Any]) -> M:
        """An instance built from a mapping of field names to values, as
        ``cls(**data)`` builds it: the same checks, defaults, validators and errors.

        A mapping given for an embedded document (alone, in a list, or as a value
        of a ``dict[str, ...]`` field) is built with that class's ``from_dict``, so
        a nested payload (parsed JSON, say) becomes a document in one call. Keys
        are the field names (``id``, not ``_id``); values are taken as they are,
        not parsed (a date must already be a ``datetime``).

        Faster than ``cls(**data)`` for keys built at run time: Python matches
        each keyword against every parameter name by comparing strings.

        Raises:
            TypeError: ``data`` is not a mapping, has a key that is not a field,
                or lacks a field that has no default.
            ValidationError: a value does not fit its field.
        """
        raise NotImplementedError  # generated per class (see _generate_from_dict)

    # Replaced per class by generated code (see _generate_to_bson / _generate_loader).
    def _uow_to_bson(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _uow_load_exact(
        cls, raw: Mapping[str, Any], ctx: LoadContext, absent: frozenset[str] | None = None
    ) -> Any:
        raise NotImplementedError

    @classmethod
    def _uow_load(
        cls: type[M],
        raw: Mapping[str, Any],
        ctx: LoadContext = DEFAULT_LOAD_CONTEXT,
        absent: frozenset[str] | None = None,
    ) -> M:
        """An instance from a stored document, of the subclass its ``_cls`` names."""
        meta = cls._uow_meta
        kind = raw.get("_cls")
        if kind is not None and kind != meta.cls_name:
            sub = meta.subclasses.get(kind)
            if sub is not None and issubclass(sub, cls):
                return sub._uow_load_exact(raw, ctx, absent)  # type: ignore[no-any-return]
        return cls._uow_load_exact(raw, ctx, absent)  # type: ignore[no-any-return]

    def _uow_check_deep(self, owner: str, path: str) -> None:
        """Check the fields that can change in place (assignments were checked already).

        Replaced per class by generated code (see _generate_check_deep).
        """
        _check_deep_partial(self, owner, path)

    def _uow_mutated(self, snapshot: Mapping[str, Any]) -> bool:
        """Whether a field that can change in place differs from ``snapshot``.

        Replaced per class by generated code (see _generate_mutated).
        """
        return _mutated_partial(self, snapshot)


M = TypeVar("M", bound=_BaseModel)


class Embedded(_BaseModel, metaclass=_ModelMeta):
    """Base of nested documents: stored inside a Document, compared by value.

    Subclasses are attrs classes built from their annotations, like Document's,
    with no ``id`` and no collection. Keys of the stored form that the class does
    not declare are kept and written back untouched.
    """

    # An instance of a class with nothing that changes in place keeps its last dump
    # (None: none kept), until an assignment: dumping for each flush and each
    # "did it change?" is then free, and an unchanged value is the very dict of
    # the snapshot. Nothing may change a kept dump in place.
    __slots__ = ("_uow_dumped",)
    _uow_base_class = True

    def __setattr__(self, name: str, value: Any) -> None:
        _assign(self, name, value)
        object.__setattr__(self, "_uow_dumped", None)

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_uow_dumped", None)
        _BaseModel.__setstate__(self, state)

    def to_bson(self) -> dict[str, Any]:
        """The stored form of this value (what pymongo is given)."""
        doc = self._uow_to_bson()
        return copy_stored(doc) if self._uow_meta.shares_dumps else doc

    @classmethod
    def from_bson(
        cls: type[M], raw: Mapping[str, Any], *, tz_aware: bool = False, timezone: Any = None
    ) -> M:
        """An instance from its stored form; unknown keys are kept."""
        ctx = (
            DEFAULT_LOAD_CONTEXT
            if not tz_aware and timezone is None
            else LoadContext(tz_aware, timezone)
        )
        return cls._uow_load(raw, ctx)


class _DocumentBase(_BaseModel, metaclass=_ModelMeta):
    __slots__ = ("__weakref__", "_uow_state")
    _uow_base_class = True

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_uow_state", None)  # a copy is tracked by no session
        _BaseModel.__setstate__(self, state)

    def __getattr__(self, name: str) -> Any:
        # Only reached when a slot is empty. A field the server set at the last
        # flush ($currentDate) is empty until read: the session loads it now.
        try:
            state = object.__getattribute__(self, "_uow_state")
        except AttributeError:
            state = None
        if state is not None and state.expired and state.owner is not None:
            field = self._uow_meta.by_name.get(name)
            if field is not None and field.key in state.expired:
                state.owner.on_expired_read(self, state)
                return object.__getattribute__(self, name)
        return _BaseModel.__getattr__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        field = _assign(self, name, value)
        if field is not None:
            state = self._uow_state
            if state is not None:
                state.touched(self, field.bit)

    def __del__(self) -> None:
        # A document the user dropped may hold a change found by no one yet (an
        # in-place mutation after the identity map let go of it): the session gets
        # one look at it before it goes, and keeps it if it changed.
        try:
            state = self._uow_state
            if state is not None and state.owner is not None:
                state.dropped(self)
        except Exception:  # never raise from a finalizer
            pass


#: Sets a document's ``_uow_state`` slot: ``object.__setattr__`` does the same for
#: twice the cost, paid per document on every load and close.
set_state: Callable[[Any, Any], None] = _member_setter(_DocumentBase, "_uow_state")


class Document(_DocumentBase):
    """Base of stored documents: one per MongoDB document, compared by identity.

    Subclasses are attrs classes built from their annotations (keyword-only
    arguments). Every document has an ``id`` stored as ``_id``: a client-side
    ``bson.ObjectId`` unless the class declares another type. Class attributes are
    query fields: ``User.visits > 10``.

    Class options: ``__collection__`` (default: the class name in snake_case),
    ``__indexes__`` (a list of :class:`Index`), ``__shard_key__`` (field names),
    ``__abstract__`` (no collection; subclasses each start their own).

    Raises:
        DefinitionError: when the class is declared wrongly.
        ValidationError: when a value does not fit its field.
    """

    __abstract__ = True
    id: bson.ObjectId = field(factory=bson.ObjectId)

    def to_bson(self) -> dict[str, Any]:
        """The stored form of this document (what pymongo is given), ``_id`` first."""
        doc = self._uow_to_bson()
        return copy_stored(doc) if self._uow_meta.shares_dumps else doc

    @classmethod
    def from_bson(
        cls: type[M], raw: Mapping[str, Any], *, tz_aware: bool = False, timezone: Any = None
    ) -> M:
        """A detached instance from a stored document; unknown keys are kept.

        ``raw`` with a ``_cls`` naming a subclass gives an instance of it.
        """
        ctx = (
            DEFAULT_LOAD_CONTEXT
            if not tz_aware and timezone is None
            else LoadContext(tz_aware, timezone)
        )
        return cls._uow_load(raw, ctx)


# Document itself is built by the metaclass; make its own metadata an abstract root.
Document._uow_meta.abstract = True
Document._uow_meta.collection = None


@attrs.frozen(init=False)
class Index:
    """An index to build on a Document's collection (``__indexes__``).

    Keys are field names (``"email"``, ``"-created"`` for descending, dotted for
    embedded fields), query fields (``User.email``, ``User.created.desc()``) or
    ``(name, direction)`` pairs with pymongo's directions (``1``, ``-1``,
    ``"text"``, ``"2dsphere"``...). Options are pymongo's ``create_index`` options.

        >>> Index("email", unique=True)
        Index(keys=(('email', 1),), options={'unique': True})
    """

    keys: tuple[tuple[Any, Any], ...]
    options: dict[str, Any]

    def __init__(
        self,
        *keys: Any,
        unique: bool = False,
        sparse: bool = False,
        name: str | None = None,
        expire_after_seconds: int | None = None,
        partial_filter_expression: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if not keys:
            raise DefinitionError("Index() needs at least one key")
        normalized = tuple(_index_key(key) for key in keys)
        extra: dict[str, Any] = dict(options)
        if unique:
            extra["unique"] = True
        if sparse:
            extra["sparse"] = True
        if name is not None:
            extra["name"] = name
        if expire_after_seconds is not None:
            extra["expireAfterSeconds"] = expire_after_seconds
        if partial_filter_expression is not None:
            extra["partialFilterExpression"] = dict(partial_filter_expression)
        object.__setattr__(self, "keys", normalized)
        object.__setattr__(self, "options", extra)

    def stored_keys(self, cls: type[Document]) -> list[tuple[str, Any]]:
        """The keys as stored paths of ``cls`` (attribute names mapped to db names)."""
        from .query import stored_path

        return [(stored_path(cls._uow_meta, path), direction) for path, direction in self.keys]


def _index_key(key: Any) -> tuple[Any, Any]:
    if isinstance(key, tuple) and len(key) == 2:
        return (_index_path(key[0]), key[1])
    if isinstance(key, str):
        return (key[1:], -1) if key.startswith("-") else (key, 1)
    path = _index_path(key)
    direction = getattr(key, "direction", None) or 1
    return (path, direction)


def _index_path(key: Any) -> str:
    if isinstance(key, str):
        return key
    path = getattr(key, "attribute_path", None)
    if path is None:
        raise DefinitionError(f"Index key {key!r}: give a field name or a query field")
    return str(path)
