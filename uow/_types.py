"""Field types: what an annotation accepts, and how its values travel to and from BSON.

Each supported annotation becomes one ``TypeSpec``: ``check`` validates deeply
(container elements included) and raises ``ValidationError`` naming the class, the
field path, what was expected and what came; ``dump`` gives the form pymongo stores;
``load`` turns a stored value back into the Python value. ``dump`` and ``load`` are
used by the code generated per class in ``document``, so specs that need no
conversion say so (``needs_dump``/``needs_load``) and cost nothing on the hot path.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

import bson
from bson.binary import Binary, UuidRepresentation
from bson.decimal128 import Decimal128

from ._ref import Ref
from ._stored import IMMUTABLE, copy_stored
from .exceptions import DefinitionError, ValidationError

if TYPE_CHECKING:
    from .document import _BaseModel

__all__: list[str] = []  # private module

_UTC = _dt.timezone.utc


class LoadContext:
    """How stored values are turned into Python ones for one session (time zones)."""

    __slots__ = ("timezone", "tz_aware")

    def __init__(self, tz_aware: bool = False, timezone: _dt.tzinfo | None = None) -> None:
        self.tz_aware = tz_aware or timezone is not None
        self.timezone = timezone


DEFAULT_LOAD_CONTEXT = LoadContext()


#: Characters of a wrong value's repr shown in an error message.
_SHOWN = 60
#: What Decimal128 holds exactly: 34 digits, exponents from -6176 to 6111.
_DECIMAL128_DIGITS = 34
_DECIMAL128_EXPONENTS = (-6176, 6111)
#: BSON's binary subtype of a standard UUID.
_UUID_SUBTYPE = 4
#: dict[key type, value type]
_DICT_ARGS = 2


def describe(value: Any) -> str:
    """A short description of a wrong value for error messages: its type and repr."""
    text = repr(value)
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 3] + "..."
    return f"{type(value).__name__} ({text})"


def fail(owner: str, path: str, expected: str, value: Any, hint: str = "") -> typing.NoReturn:
    """Raise the ValidationError every type check uses, with one message shape."""
    message = f"{owner}.{path}: expected {expected}, got {describe(value)}"
    if hint:
        message += f"; {hint}"
    raise ValidationError(message, document_class=owner, field=path, expected=expected, value=value)


_BAD_KEY = re.compile(r"^\$|[.\x00]")


def check_key(owner: str, path: str, key: Any) -> None:
    """A dict key must be a str that MongoDB will not read as an operator or a path."""
    if type(key) is not str:
        fail(owner, f"{path}[{key!r}]", "a str key", key)
    if _BAD_KEY.search(key):
        raise ValidationError(
            f"{owner}.{path}: the key {key!r} cannot be stored: MongoDB reads keys "
            "starting with '$' as operators and keys with '.' as paths; rename the key",
            document_class=owner,
            field=path,
            expected="a key without '$' at the start, '.' or NUL",
            value=key,
        )


class TypeSpec:
    """What one annotation accepts and how its values are stored."""

    __slots__ = ("mutable", "name", "needs_dump", "needs_load")

    def __init__(
        self,
        name: str,
        *,
        mutable: bool = False,
        needs_dump: bool = False,
        needs_load: bool = False,
    ) -> None:
        self.name = name
        #: values can change in place (containers, embedded documents)
        self.mutable = mutable
        #: dump / load are not the identity: generated code must call them
        self.needs_dump = needs_dump
        self.needs_load = needs_load

    def check(self, owner: str, path: str, value: Any) -> None:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def load(self, value: Any, ctx: LoadContext) -> Any:
        return value

    def snapshot(self, dumped: Any) -> Any:
        """``dumped``, what ``dump`` just gave, sharing no list or dict with the live
        value (a snapshot must not change when the document is changed in place).

        Specs whose ``dump`` builds new containers copy only what it shared.
        """
        return copy_stored(dumped)

    def query_value(self, owner: str, path: str, value: Any) -> Any:
        """A value compared with this field in a filter: validated, in stored form."""
        convert = self.converter()
        if convert is not None:
            value = convert(value)
        self.check(owner, path, value)
        return self.dump(value)

    def element(self) -> TypeSpec | None:
        """The element type of a container (for ``contains`` and ``$push``)."""
        return None

    def converter(self) -> Callable[[Any], Any] | None:
        """What turns an accepted input into the value kept (a document into its Ref).

        ``None`` when values are kept as given, which is every type without a Ref
        or a datetime in it.
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


#: The range of a BSON int64: a larger Python int cannot be stored at all.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class ScalarSpec(TypeSpec):
    """str, int, float, bool, bytes, ObjectId: stored as they are."""

    __slots__ = ("accepted", "exact", "int_range", "refused")

    def __init__(
        self,
        name: str,
        accepted: tuple[type, ...],
        refused: tuple[type, ...] = (),
        *,
        int_range: bool = False,
    ) -> None:
        super().__init__(name)
        self.accepted = accepted
        self.refused = refused
        #: types whose values pass without a closer look
        self.exact = frozenset(accepted) - frozenset(refused)
        #: ints are accepted and must fit in a BSON int64
        self.int_range = int_range

    def check(self, owner: str, path: str, value: Any) -> None:
        # bool is an int subclass: True is not a valid int or float here.
        if not isinstance(value, self.accepted) or isinstance(value, self.refused):
            fail(owner, path, self.name, value)
        if self.int_range and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            fail(owner, path, f"{self.name} (an int must fit in 64 bits for BSON)", value)


class DecimalSpec(TypeSpec):
    __slots__ = ()

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, decimal.Decimal):
            fail(owner, path, "Decimal", value, "wrap numbers as decimal.Decimal('1.10')")
        digits, exponent = value.as_tuple()[1:]
        if (
            len(digits) <= _DECIMAL128_DIGITS
            and isinstance(exponent, int)
            and _DECIMAL128_EXPONENTS[0] <= exponent <= _DECIMAL128_EXPONENTS[1]
        ):
            return  # Decimal128 holds it exactly: no need to build one
        try:  # infinities, NaN, and values Decimal128 can hold only by clamping
            Decimal128(value)
        except decimal.DecimalException:
            fail(
                owner,
                path,
                "Decimal (at most 34 significant digits, exponent within Decimal128's range)",
                value,
                "round it, e.g. value.quantize(Decimal('0.01'))",
            )

    def dump(self, value: Any) -> Any:
        return Decimal128(value) if isinstance(value, decimal.Decimal) else value

    def load(self, value: Any, ctx: LoadContext) -> Any:
        return value.to_decimal() if isinstance(value, Decimal128) else copy_stored(value)


class UUIDSpec(TypeSpec):
    """uuid.UUID, stored as BSON binary subtype 4 whatever the client's uuidRepresentation."""

    __slots__ = ()

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, uuid.UUID):
            fail(owner, path, "uuid.UUID", value)

    def dump(self, value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return Binary.from_uuid(value, UuidRepresentation.STANDARD)
        return value

    def load(self, value: Any, ctx: LoadContext) -> Any:
        if isinstance(value, Binary) and value.subtype == _UUID_SUBTYPE:
            return value.as_uuid(UuidRepresentation.STANDARD)
        return copy_stored(value)


class DatetimeSpec(TypeSpec):
    """datetime; BSON keeps milliseconds in UTC. Naive values are taken as UTC.

    A value is kept to the millisecond when assigned (its microseconds below
    the millisecond dropped, as BSON drops them): what the session holds is then
    what is stored, and a flush never reads a stored ``.123`` as a change from
    a held ``.123456``.
    """

    __slots__ = ()

    def converter(self) -> Callable[[Any], Any] | None:
        return to_millisecond

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, _dt.datetime):
            fail(owner, path, "datetime", value)

    def load(self, value: Any, ctx: LoadContext) -> Any:
        if not isinstance(value, _dt.datetime):
            return copy_stored(value)
        if ctx.tz_aware:
            if value.tzinfo is None:
                value = value.replace(tzinfo=_UTC)
            return value.astimezone(ctx.timezone) if ctx.timezone is not None else value
        if value.tzinfo is not None:
            return value.astimezone(_UTC).replace(tzinfo=None)
        return value


#: The microseconds below a millisecond, as timedeltas: subtracting one is several
#: times faster than ``datetime.replace`` (which takes keywords), and every
#: ``datetime.now()`` passes through here.
_BELOW_MILLISECOND = tuple(_dt.timedelta(microseconds=n) for n in range(1000))


def to_millisecond(value: Any) -> Any:
    """``value`` to BSON's precision, if it is a datetime with microseconds below that."""
    if isinstance(value, _dt.datetime):
        below = value.microsecond % 1000
        if below:
            return value - _BELOW_MILLISECOND[below]
    return value


class DateSpec(TypeSpec):
    """date, stored as a BSON datetime at midnight UTC (BSON has no date type)."""

    __slots__ = ()

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, _dt.date) or isinstance(value, _dt.datetime):
            fail(owner, path, "date", value)

    def dump(self, value: Any) -> Any:
        if isinstance(value, _dt.date):
            return _dt.datetime(value.year, value.month, value.day)
        return value

    def load(self, value: Any, ctx: LoadContext) -> Any:
        return value.date() if isinstance(value, _dt.datetime) else copy_stored(value)


class OptionalSpec(TypeSpec):
    __slots__ = ("inner",)

    def __init__(self, inner: TypeSpec) -> None:
        super().__init__(
            f"{inner.name} | None",
            mutable=inner.mutable,
            needs_dump=inner.needs_dump,
            needs_load=inner.needs_load,
        )
        self.inner = inner

    def check(self, owner: str, path: str, value: Any) -> None:
        if value is not None:
            self.inner.check(owner, path, value)

    def dump(self, value: Any) -> Any:
        return None if value is None else self.inner.dump(value)

    def load(self, value: Any, ctx: LoadContext) -> Any:
        return None if value is None else self.inner.load(value, ctx)

    def snapshot(self, dumped: Any) -> Any:
        return None if dumped is None else self.inner.snapshot(dumped)

    def query_value(self, owner: str, path: str, value: Any) -> Any:
        return None if value is None else self.inner.query_value(owner, path, value)

    def element(self) -> TypeSpec | None:
        return self.inner.element()

    def converter(self) -> Callable[[Any], Any] | None:
        inner = self.inner.converter()
        if inner is None:
            return None

        def convert_optional(value: Any) -> Any:
            return None if value is None else inner(value)

        return convert_optional


class ListSpec(TypeSpec):
    __slots__ = ("inner",)

    def __init__(self, inner: TypeSpec, name: str | None = None, *, as_set: bool = False) -> None:
        super().__init__(
            name or f"list[{inner.name}]",
            mutable=True,
            # a set is not a BSON type: always converted
            needs_dump=as_set or inner.needs_dump,
            needs_load=as_set or inner.needs_load,
        )
        self.inner = inner

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, list):
            fail(owner, path, self.name, value)
        self._check_items(owner, path, value)

    def _check_items(self, owner: str, path: str, value: Any) -> None:
        inner = self.inner
        if type(inner) is ScalarSpec:
            kinds = set(map(type, value))
            if kinds <= inner.exact and not (inner.int_range and int in kinds):
                return  # every item of an accepted type exactly: one pass in C
            accepted, refused, ranged = inner.accepted, inner.refused, inner.int_range
            for index, item in enumerate(value):
                if (
                    not isinstance(item, accepted)
                    or isinstance(item, refused)
                    or (ranged and isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX)
                ):
                    inner.check(owner, f"{path}[{index}]", item)  # raises, with the reason
        else:
            if (
                type(inner) is EmbeddedSpec
                and not inner.cls._uow_meta.mutable
                and set(map(type, value)) <= {inner.cls}
            ):
                return  # instances of exactly the class, checked when built
            for index, item in enumerate(value):
                inner.check(owner, f"{path}[{index}]", item)

    def dump(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value  # stored data of another shape, loaded as it was
        dump = self.inner.dump
        return [dump(item) for item in value]

    def load(self, value: Any, ctx: LoadContext) -> Any:
        if not isinstance(value, list):
            return copy_stored(value)  # stored data of another shape: kept as it is, never dropped
        load = self.inner.load
        return [load(item, ctx) for item in value]

    def snapshot(self, dumped: Any) -> Any:
        inner = self.inner
        if type(dumped) is not list or not inner.needs_dump:
            return copy_stored(dumped)  # the live list itself, or data of another shape
        # A new list of dumped items: only what the items' dumps shared is copied.
        if IMMUTABLE.issuperset(map(type, dumped)) or (
            type(inner) is EmbeddedSpec and inner.cls._uow_meta.dumps_unshared
        ):
            return dumped
        snapshot = inner.snapshot
        return [snapshot(item) for item in dumped]

    def element(self) -> TypeSpec | None:
        return self.inner

    def converter(self) -> Callable[[Any], Any] | None:
        inner = self.inner.converter()
        if inner is None:
            return None
        kind = (set, frozenset) if isinstance(self, SetSpec) else list

        def convert_items(value: Any) -> Any:
            # A new container only when an item changed: the caller's object stays
            # the field's value when it already holds Refs.
            if not isinstance(value, kind):
                return value
            items = [inner(item) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return type(value)(items)

        return convert_items


def in_canonical_order(items: set[Any] | frozenset[Any]) -> list[Any]:
    """The items of a set as a list in an order that depends on the items alone.

    A set's iteration order depends on how it was built (two items whose hashes
    meet in the table come out in insertion order), so two equal sets could dump
    to two arrays in different orders, and a set rebuilt from its own dump (a
    rollback, ``original_value``) would look changed to every comparison of
    stored forms. Sorted where the items sort (strings, numbers, dates...);
    otherwise by type name, then ``repr``.
    """
    try:
        return sorted(items)
    except (TypeError, ArithmeticError):  # mixed types; Decimal('NaN') refuses <
        return sorted(items, key=_type_then_repr)


def _type_then_repr(item: Any) -> tuple[str, str]:
    return (type(item).__qualname__, repr(item))


class SetSpec(ListSpec):
    """set[T], stored as an array."""

    __slots__ = ()

    def __init__(self, inner: TypeSpec) -> None:
        super().__init__(inner, f"set[{inner.name}]", as_set=True)

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, (set, frozenset)):
            fail(owner, path, self.name, value)
        self._check_items(owner, path, value)

    def dump(self, value: Any) -> Any:
        if not isinstance(value, (set, frozenset)):
            return value  # stored data of another shape, loaded as it was
        items = in_canonical_order(value)
        inner = self.inner
        if inner.needs_dump:
            return [inner.dump(item) for item in items]
        return items

    def snapshot(self, dumped: Any) -> Any:
        return copy_stored(dumped)

    def load(self, value: Any, ctx: LoadContext) -> Any:
        if not isinstance(value, list):
            return copy_stored(value)  # stored data of another shape: kept as it is, never dropped
        inner = self.inner
        try:
            if inner.needs_load:
                return {inner.load(item, ctx) for item in value}
            return set(value)
        except TypeError:  # unhashable stored elements: keep the array as it is
            return copy_stored(value)

    def query_value(self, owner: str, path: str, value: Any) -> Any:
        if isinstance(value, list):  # comparing with a stored array
            convert = self.inner.converter()
            if convert is not None:
                value = [convert(item) for item in value]
            self._check_items(owner, path, value)  # unhashable items fail here, clearly
            value = set(value)
        return super().query_value(owner, path, value)


class DictSpec(TypeSpec):
    """dict[str, T]: keys are data, checked so they never read as operators or paths."""

    __slots__ = ("inner",)

    def __init__(self, inner: TypeSpec) -> None:
        super().__init__(
            f"dict[str, {inner.name}]",
            mutable=True,
            needs_dump=inner.needs_dump,
            needs_load=inner.needs_load,
        )
        self.inner = inner

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, dict):
            fail(owner, path, self.name, value)
        inner = self.inner
        for key, item in value.items():
            check_key(owner, path, key)
            inner.check(owner, f"{path}[{key!r}]", item)

    def dump(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # stored data of another shape, loaded as it was
        dump = self.inner.dump
        return {key: dump(item) for key, item in value.items()}

    def load(self, value: Any, ctx: LoadContext) -> Any:
        if not isinstance(value, dict):
            return copy_stored(value)  # stored data of another shape: kept as it is, never dropped
        load = self.inner.load
        return {key: load(item, ctx) for key, item in value.items()}

    def element(self) -> TypeSpec | None:
        return self.inner

    def converter(self) -> Callable[[Any], Any] | None:
        inner = self.inner.converter()
        if inner is None:
            return None

        def convert_values(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            items = {key: inner(item) for key, item in value.items()}
            if all(items[key] is item for key, item in value.items()):
                return value
            return items

        return convert_values


class EmbeddedSpec(TypeSpec):
    """A uow.Embedded subclass: a nested document."""

    __slots__ = ("cls",)

    def __init__(self, cls: type[_BaseModel]) -> None:
        super().__init__(cls.__name__, mutable=True, needs_dump=True, needs_load=True)
        self.cls = cls

    def check(self, owner: str, path: str, value: Any) -> None:
        if not isinstance(value, self.cls):
            hint = ""
            if isinstance(value, dict):
                hint = f"build it with {self.cls.__name__}.from_dict(values)"
            fail(owner, path, self.cls.__name__, value, hint)
        # Values changed in place inside the embedded document are checked too.
        value._uow_check_deep(owner, path)

    def dump(self, value: Any) -> Any:
        if not isinstance(value, self.cls):
            # Stored data of another shape, loaded as it was; a copy, so that a dict
            # in a dump is always a new one (see snapshot).
            return copy_stored(value)
        return value._uow_to_bson()

    def load(self, value: Any, ctx: LoadContext) -> Any:
        if not isinstance(value, dict):
            return copy_stored(value)  # stored data of another shape: kept as it is, never dropped
        return self.cls._uow_load(value, ctx)

    def snapshot(self, dumped: Any) -> Any:
        if self.cls._uow_meta.dumps_unshared:
            return dumped  # a dump of this class or a subclass, or a copy (see dump)
        # A dict here is always a new one from the instance's _uow_to_bson (a value
        # of another shape is never a dict: a stored dict loads as an instance).
        if type(dumped) is not dict:
            return copy_stored(dumped)
        if IMMUTABLE.issuperset(map(type, dumped.values())):
            return dumped  # the common case: nothing in it can change in place
        by_key = self.cls._uow_meta.by_key
        for key, item in list(dumped.items()):
            if type(item) not in IMMUTABLE:
                field = by_key.get(key)
                dumped[key] = field.spec.snapshot(item) if field is not None else copy_stored(item)
        return dumped


class RefSpec(TypeSpec):
    """uow.Ref[Other]: stores Other's id; reads as a Ref."""

    __slots__ = ("_resolve", "_target")

    def __init__(self, target: Any, resolve: Callable[[str], type]) -> None:
        name = target if isinstance(target, str) else target.__name__
        super().__init__(f"Ref[{name}]", needs_dump=True, needs_load=True)
        self._target = target
        self._resolve = resolve

    @property
    def target(self) -> Any:
        """The referenced Document class (resolved late: it may be declared after us)."""
        if isinstance(self._target, str):
            self._target = self._resolve(self._target)
        return self._target

    def convert(self, value: Any) -> Any:
        """Accept the document itself or its id; keep a Ref."""
        if isinstance(value, Ref) or value is None:
            return value
        target = self.target
        if isinstance(value, target):
            return Ref(target, value.id)
        # (A document of another class is no id either: check() reports it.)
        id_spec = target._uow_meta.id_spec
        if id_spec is not None and _matches(id_spec, value):
            return Ref(target, value)
        return value

    def check(self, owner: str, path: str, value: Any) -> None:
        # A document or an id put into a container in place (no assignment
        # converted it) is accepted as the Ref it stands for.
        value = self.convert(value)
        if not isinstance(value, Ref) or not issubclass(value.cls, self.target):
            fail(owner, path, f"{self.name}, a {self.target.__name__} or its id", value)
        id_spec = value.cls._uow_meta.id_spec
        if id_spec is not None:
            id_spec.check(owner, f"{path}.id", value.id)

    def converter(self) -> Callable[[Any], Any] | None:
        return self.convert

    def dump(self, value: Any) -> Any:
        if type(value) is not Ref:
            # Put into a container in place: a document or an id stands for its Ref;
            # anything else is dumped as it is, and check() refuses it at flush.
            value = self.convert(value)
            if type(value) is not Ref:
                return value
        id_spec = value.cls._uow_meta.id_spec
        return id_spec.dump(value.id) if id_spec is not None else value.id

    def load(self, value: Any, ctx: LoadContext) -> Any:
        target = self.target
        id_spec = target._uow_meta.id_spec
        return Ref(target, id_spec.load(value, ctx) if id_spec is not None else copy_stored(value))


def round_trips(spec: TypeSpec) -> bool:
    """Whether dumping what ``spec`` loaded gives back the stored value (to ``same``).

    Not so for a set (its order), a date (the time of day is dropped), a UUID
    (a client may decode it already), an embedded document (defaults fill missing
    keys), a reference (its target's id may be any of these).
    """
    if isinstance(spec, OptionalSpec):
        return round_trips(spec.inner)
    if isinstance(spec, SetSpec):
        return False
    if isinstance(spec, (ListSpec, DictSpec)):
        return round_trips(spec.inner)
    return isinstance(spec, (ScalarSpec, DatetimeSpec, DecimalSpec))


def _matches(spec: TypeSpec, value: Any) -> bool:
    try:
        spec.check("", "", value)
    except ValidationError:
        return False
    return True


_SCALARS: dict[Any, Callable[[], TypeSpec]] = {
    str: lambda: ScalarSpec("str", (str,)),
    int: lambda: ScalarSpec("int", (int,), (bool,), int_range=True),
    float: lambda: ScalarSpec("float", (float, int), (bool,), int_range=True),
    bool: lambda: ScalarSpec("bool", (bool,)),
    bytes: lambda: ScalarSpec("bytes", (bytes,)),
    bson.ObjectId: lambda: ScalarSpec("ObjectId", (bson.ObjectId,)),
    decimal.Decimal: lambda: DecimalSpec("Decimal", needs_dump=True, needs_load=True),
    uuid.UUID: lambda: UUIDSpec("UUID", needs_dump=True, needs_load=True),
    _dt.datetime: lambda: DatetimeSpec("datetime", needs_load=True),
    _dt.date: lambda: DateSpec("date", needs_dump=True, needs_load=True),
}

SUPPORTED = (
    "str, int, float, bool, bytes, datetime, date, Decimal, ObjectId, uuid.UUID, "
    "list[T], set[T], dict[str, T], T | None, a uow.Embedded subclass, uow.Ref[Other]"
)


def spec_for(annotation: Any, where: str, resolve_ref: Callable[[str], type]) -> TypeSpec:
    """The TypeSpec of an annotation; DefinitionError names ``where`` when unsupported.

    ``resolve_ref`` turns the name in a ``Ref["Name"]`` into its class, on first use.
    """
    factory = _SCALARS.get(annotation)
    if factory is not None:
        return factory()
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1 and type(None) in args:  # T | None
            return OptionalSpec(spec_for(rest[0], where, resolve_ref))
        raise DefinitionError(
            f"{where}: the annotation {annotation!r} is a union; uow stores one type per "
            f"field (T or T | None). Supported: {SUPPORTED}"
        )
    if origin is list and len(args) == 1:
        return ListSpec(spec_for(args[0], where, resolve_ref))
    if origin in (set, frozenset) and len(args) == 1:
        inner = spec_for(args[0], where, resolve_ref)
        if inner.mutable:
            raise DefinitionError(
                f"{where}: the elements of {annotation!r} can change in place, so they "
                f"cannot be hashed into a set; use list[{inner.name}]"
            )
        return SetSpec(inner)
    if origin is dict and len(args) == _DICT_ARGS:
        if args[0] is not str:
            raise DefinitionError(
                f"{where}: dict keys must be str (BSON keys are strings), got {args[0]!r}"
            )
        return DictSpec(spec_for(args[1], where, resolve_ref))
    if origin is Ref:
        (target,) = args
        if isinstance(target, typing.ForwardRef):
            target = target.__forward_arg__
        return RefSpec(target, resolve_ref)
    # uow.Embedded subclasses say so (this module sits below the one defining them).
    if isinstance(annotation, type) and getattr(annotation, "_uow_embedded", False):
        return EmbeddedSpec(annotation)
    if annotation in (list, set, dict, frozenset):
        raise DefinitionError(
            f"{where}: bare {annotation.__name__} says nothing about its elements; "
            f"write {annotation.__name__}[T]. Supported: {SUPPORTED}"
        )
    raise DefinitionError(
        f"{where}: the annotation {annotation!r} is not supported. Supported: {SUPPORTED}"
    )


# ------------------------------------------------------------------ datetimes in place


def holds_datetimes(spec: TypeSpec, seen: set[int] | None = None) -> bool:
    """Whether a value of container or embedded type ``spec`` can hold a datetime
    put there in place (where no assignment kept it to the millisecond)."""
    if isinstance(spec, OptionalSpec):
        spec = spec.inner
    if isinstance(spec, (ListSpec, DictSpec)):
        inner = spec.inner.inner if isinstance(spec.inner, OptionalSpec) else spec.inner
        return isinstance(inner, DatetimeSpec) or holds_datetimes(inner, seen)
    if isinstance(spec, EmbeddedSpec):
        seen = set() if seen is None else seen
        if id(spec.cls) in seen:
            return False
        seen.add(id(spec.cls))
        meta = spec.cls._uow_meta
        classes = [meta, *(sub._uow_meta for sub in meta.subclasses.values())]
        return any(holds_datetimes(f.spec, seen) for m in classes for f in m.mutable_fields)
    return False


def datetimes_to_millisecond(spec: TypeSpec, value: Any) -> Any:
    """``value`` with every datetime in it kept to the millisecond, in place: the
    items of its lists, sets and dicts and the fields of its embedded documents
    are replaced where needed. Returns ``value`` (a datetime: the kept one).

    A flush calls this before it dumps a document, so that what memory holds is
    what BSON stores (see DatetimeSpec).
    """
    spec = _unwrap_optional(spec)
    if isinstance(spec, DatetimeSpec):
        return to_millisecond(value)
    if isinstance(spec, SetSpec):
        if isinstance(value, set) and isinstance(_unwrap_optional(spec.inner), DatetimeSpec):
            kept = {to_millisecond(item) for item in value}
            if kept != value:
                value.clear()
                value.update(kept)
    elif isinstance(spec, (ListSpec, DictSpec)):
        _items_in_place(spec.inner, value)
    elif isinstance(spec, EmbeddedSpec) and isinstance(value, spec.cls):
        _fields_in_place(value)
    return value


def _items_in_place(inner: TypeSpec, value: Any) -> None:
    """The items of a list, or the values of a dict, kept to the millisecond."""
    if type(value) is list:
        for index, item in enumerate(value):
            new = datetimes_to_millisecond(inner, item)
            if new is not item:
                value[index] = new
    elif type(value) is dict:
        for key, item in value.items():
            new = datetimes_to_millisecond(inner, item)
            if new is not item:
                value[key] = new  # the same keys: no resize while iterating


def _fields_in_place(value: Any) -> None:
    """An embedded document's fields kept to the millisecond."""
    meta = type(value)._uow_meta
    fields = meta.datetime_fields
    if fields is None:
        fields = meta.datetime_fields = tuple(
            field
            for field in meta.fields
            if isinstance(_unwrap_optional(field.spec), DatetimeSpec)
            or holds_datetimes(field.spec)
        )
    for field in fields:
        inner = _unwrap_optional(field.spec)
        item = getattr(value, field.name, None)
        new = datetimes_to_millisecond(inner, item)
        if new is not item:
            object.__setattr__(value, field.name, new)
            if meta.keeps_dump:
                object.__setattr__(value, "_uow_dumped", None)


def _unwrap_optional(spec: TypeSpec) -> TypeSpec:
    return spec.inner if isinstance(spec, OptionalSpec) else spec
