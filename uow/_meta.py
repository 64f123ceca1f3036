"""What uow knows of model classes: ``FieldMeta``, ``ModelMeta``, the class registry.

Layer 2, below the code generator and the metaclass: built once per class by
``_model``, read by everything above (queries, the session, generated code).

The registry knows every model class by module and qualified name
(``shop.models.User``), with an index by name, so ``Ref["User"]`` finds the
``User`` meant even when another module defines one too.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._types import DatetimeSpec, EmbeddedSpec, OptionalSpec, ScalarSpec, SetSpec, TypeSpec
from .exceptions import DefinitionError
from .fields import FieldOptions
from .operators import OPERATORS, Operator, add_to_set_unordered

if TYPE_CHECKING:
    from ._model import Index
    from .document import _BaseModel

__all__: list[str] = []  # private module: uow.document re-exports what others use


def collection_name(class_name: str) -> str:
    """The default collection of a class: its name in snake_case.

    >>> collection_name("OrderLine"), collection_name("HTTPLog"), collection_name("User")
    ('order_line', 'http_log', 'user')
    """
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name)
    return snake.lower()


#: Field masks whose key tuples a class keeps (the assignment patterns are few).
_MASKS_CACHED = 4096


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
        "quick_type",
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
        if _is_set_spec(spec) and options.on_update in (None, "$addToSet"):
            # A set's additions as $addToSet: two sessions adding the same item
            # (or one adding an item already stored) keep one, as a set does; its
            # stored order means nothing, so an addition anywhere is one.
            self.operator = add_to_set_unordered
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
        #: an assigned value of exactly this type is kept as it is, with nothing to
        #: run (no converter, no validator), bar ``fast_range``'s test (None: never)
        #: (Any, not type | None: a test against it must not narrow the value's type)
        self.quick_type: Any = (
            self.fast_type if self.convert is None and not self.validators else None
        )
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
        #: the id's type when its values of exactly that type are valid and stored as
        #: they are (an ObjectId): ``_identity.stored_id`` passes them with one test
        self.plain_id_type: type | None = None
        id_field = self.id_field
        if id_field is not None and not id_field.fast_range and not id_field.spec.needs_dump:
            self.plain_id_type = id_field.fast_type
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
        #: whether documents can hold a $currentDate field below the top level;
        #: None until a flush asks, and again whenever a class is defined (see
        #: _stamps.has_stamps_below)
        self.stamps_below: bool | None = None
        #: the fields whose containers can hold datetimes put there in place,
        #: kept to the millisecond by a flush; None until a flush asks, and again
        #: whenever a class is defined
        self.datetime_containers: tuple[FieldMeta, ...] | None = None
        #: an update is only its diff, targeting ``_id`` (no version, shard key, or
        #: field the server sets); None until a flush asks, and again whenever a
        #: class is defined (see _flush._plain_updates)
        self.plain_updates: bool | None = None
        #: an embedded class's fields that can hold a datetime (as the above)
        self.datetime_fields: tuple[FieldMeta, ...] | None = None

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
            if len(cache) < _MASKS_CACHED:  # masks are few: the assignment patterns
                cache[assigned] = keys
        return keys

    def hierarchy_names(self) -> list[str]:
        """The _cls values of this class and of every subclass of it."""
        return [name for name, sub in self.subclasses.items() if issubclass(sub, self.cls)]


def _fast_type(spec: TypeSpec) -> tuple[type | None, bool, bool]:
    """The exact type that needs no further check, whether None is allowed, and
    whether an int of that type must still be tested against the int64 range."""
    optional = isinstance(spec, OptionalSpec)
    inner = spec.inner if isinstance(spec, OptionalSpec) else spec
    if isinstance(inner, ScalarSpec):
        fast = inner.accepted[0]
        return fast, optional, inner.int_range and fast is int
    if isinstance(inner, DatetimeSpec):
        return _dt.datetime, optional, False  # (its check is an isinstance test)
    if isinstance(inner, EmbeddedSpec) and not inner.cls._uow_meta.mutable:
        # An instance of exactly this class was checked field by field when it was
        # built or assigned to, and has nothing that changes in place.
        return inner.cls, optional, False
    return None, optional, False


def _is_set_spec(spec: TypeSpec) -> bool:
    """Whether values of ``spec`` are sets (or None)."""
    if isinstance(spec, OptionalSpec):
        spec = spec.inner
    return isinstance(spec, SetSpec)


def _attrs_validators(attribute: attrs.Attribute[Any]) -> list[Callable[..., Any]]:
    """Validators given with attrs.field(validator=...), besides our own type check."""
    validator = attribute.validator
    if validator is None:
        return []
    parts = getattr(validator, "_validators", (validator,))
    return [v for v in parts if getattr(v, "__name__", "") != "validate_uow_type"]


def full_name(cls: type) -> str:
    """``module.qualname``: the name a class is registered under."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry:
    """Every model class by full name (``module.qualname``), and by name.

    A class defined again under the same full name (a module reloaded, a test
    run twice) replaces the earlier one.
    """

    def __init__(self) -> None:
        self.by_full_name: dict[str, type[_BaseModel]] = {}
        #: name (``__name__``) -> {full name: class}
        self.by_name: dict[str, dict[str, type[_BaseModel]]] = {}

    def add(self, cls: type[_BaseModel]) -> None:
        for known in self.by_full_name.values():
            # What was derived from the classes known so far is derived again.
            meta = getattr(known, "_uow_meta", None)
            if meta is not None:
                meta.stamps_below = None
                meta.datetime_containers = None
                meta.datetime_fields = None
                meta.plain_updates = None
        full = full_name(cls)
        self.by_full_name[full] = cls
        self.by_name.setdefault(cls.__name__, {})[full] = cls

    def resolve(
        self, name: str, module: str, qualname: str, written: str | None = None
    ) -> type[_BaseModel]:
        """The class ``name`` means in ``Ref[name]`` written in class ``qualname`` of
        ``module``: the one of that full name; else the one the name reaches from
        the referring class's scope, as Python would; else the only class of that
        name (or the only one in the referring module). ``written`` is how the
        name appears, for messages (default: ``Ref[name]``).

        Raises:
            DefinitionError: no class has that name, or several do and none of
                them is nearer than the others.
        """
        found = self.nearest(name, module, qualname)
        if found is not None:
            return found
        candidates = self.candidates(name)
        if len(candidates) > 1:
            local = [cls for cls in candidates if cls.__module__ == module]
            if len(local) == 1:
                return local[0]
        if len(candidates) == 1:
            return candidates[0]
        where = f"{written or f'Ref[{name!r}]'} in {module}.{qualname}"
        if not candidates:
            raise DefinitionError(f"{where}: no Document class named {name!r} is defined")
        names = [f'"{full_name(cls)}"' for cls in candidates]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}"
        raise DefinitionError(
            f'{where} is ambiguous: {listed}: write Ref["{full_name(candidates[0])}"]'
        )

    def nearest(self, name: str, module: str, qualname: str) -> type[_BaseModel] | None:
        """The class of full name ``name``, or the one ``name`` reaches from the
        scope of ``qualname`` in ``module`` (innermost first), or None."""
        exact = self.by_full_name.get(name)
        if exact is not None:
            return exact
        scopes = qualname.split(".")[:-1]
        for depth in range(len(scopes), -1, -1):
            found = self.by_full_name.get(".".join([module, *scopes[:depth], name]))
            if found is not None:
                return found
        return None

    def candidates(self, name: str) -> list[type[_BaseModel]]:
        """The classes ``name`` (a name, or the end of a full name) may mean."""
        by_name = self.by_name.get(name.rpartition(".")[2], {})
        return [cls for full, cls in by_name.items() if full.endswith("." + name)]

    def in_module(self, name: str, module: str, qualname: str) -> type[_BaseModel] | None:
        """For annotations written as strings: the class ``name`` means in ``module``
        (nearest scope first, then the only one of that name in the module), or
        None. Classes of other modules are found as Python finds them: imported."""
        found = self.nearest(name, module, qualname)
        if found is not None:
            return found
        local = [cls for cls in self.candidates(name) if cls.__module__ == module]
        return local[0] if len(local) == 1 else None


#: Every model class (see Registry).
REGISTRY = Registry()
