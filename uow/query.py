"""Query fields and expressions, compiled to MongoDB filter dicts. No I/O.

``User.visits > 10`` is an :class:`Expr`; ``&``, ``|`` and ``~`` combine them;
Django-style lookups (``age__gt=10``, ``address__city="Oslo"``) compile to the
same thing. Field names become stored names (``db_name``) and values their
stored form (``Decimal`` -> ``Decimal128``...).

A value is always data, never an operator: every value is checked against the
field's type, so a dict where a scalar belongs, or any key starting with ``$``,
raises :class:`~uow.ValidationError`; ``startswith``/``icontains`` escape their
input before it becomes a regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._types import (
    INT64_MAX,
    INT64_MIN,
    DictSpec,
    EmbeddedSpec,
    ListSpec,
    OptionalSpec,
    RefSpec,
    ScalarSpec,
    TypeSpec,
    check_key,
    describe,
)
from .exceptions import ValidationError

if TYPE_CHECKING:
    from ._meta import FieldMeta, ModelMeta

__all__ = [
    "LOOKUPS",
    "Expr",
    "QueryField",
    "SortKey",
    "compile_filter",
    "compile_sort",
    "lookup",
    "q",
    "stored_path",
]

#: The Django-style lookup suffixes ``filter()`` understands.
LOOKUPS = (
    "gt",
    "gte",
    "lt",
    "lte",
    "ne",
    "in",
    "nin",
    "exists",
    "contains",
    "startswith",
    "icontains",
)


#: Methods users of other ORMs reach for, and what uow spells them.
_METHOD_HINTS = {
    "like": "for a prefix use .startswith(prefix), for a substring .icontains(text)",
    "ilike": "for a case-insensitive substring use .icontains(text)",
    "regex": "use .startswith(prefix) or .icontains(text), which escape their input",
    "endswith": "use .icontains(text), or a filter dict through session.database",
    "isin": "use .in_([...])",
    "is_in": "use .in_([...])",
    "not_in": "use .nin([...])",
    "notin_": "use .nin([...])",
    "is_": "use == None",
    "isnot": "use != None",
    "asc_": "use .asc()",
    "desc_": "use .desc()",
}


def _unwrap(spec: TypeSpec) -> TypeSpec:
    return spec.inner if isinstance(spec, OptionalSpec) else spec


#: What to write instead of an operator given as a value: lookup suffix, expression.
_OPERATOR_SPELLINGS = {
    "$ne": ("ne", "!= value"),
    "$gt": ("gt", "> value"),
    "$gte": ("gte", ">= value"),
    "$lt": ("lt", "< value"),
    "$lte": ("lte", "<= value"),
    "$in": ("in", ".in_([...])"),
    "$nin": ("nin", ".nin([...])"),
    "$exists": ("exists", ".exists(True)"),
    "$regex": ("startswith", ".startswith(prefix) or .icontains(text)"),
}


def _operator_hint(owner: str, path: str, key: Any) -> str:
    """How to say with uow what a ``{"$op": ...}`` value meant to say."""
    if not isinstance(key, str) or not key.startswith("$"):
        return ""
    lookup_name = path.replace(".", "__")
    suffix, expression = _OPERATOR_SPELLINGS.get(key, ("", ""))
    if not suffix:
        return ""
    operand = "" if expression.startswith(".") else " "
    return (
        f"; write the lookup {lookup_name}__{suffix}=value or the expression "
        f"uow.q({owner}.{path}){operand}{expression}"
    )


def _assert_data(owner: str, path: str, value: Any, top: bool = True) -> None:
    """No key of a value sent to the server may read as an operator.

    ``top``: ``value`` is the whole value compared, where ``{"$ne": None}`` means
    an operator the user could have written as a lookup.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise ValidationError(
                    f"{owner}.{path}: the value {describe(value)} has the key {key!r}, "
                    "which MongoDB would read as an operator; query values are data only"
                    + (_operator_hint(owner, path, key) if top else ""),
                    document_class=owner,
                    field=path,
                    value=value,
                )
            _assert_data(owner, path, item, top=False)
    elif isinstance(value, (list, tuple)):  # pymongo sends a tuple as an array
        for item in value:
            _assert_data(owner, path, item, top=False)


class SortKey:
    """A sort order on one field: ``User.name.asc()``, ``User.visits.desc()``."""

    __slots__ = ("direction", "field")

    def __init__(self, field: QueryField, direction: int) -> None:
        self.field = field
        self.direction = direction

    @property
    def attribute_path(self) -> str:
        return self.field.attribute_path

    def as_pair(self) -> tuple[str, int]:
        return (self.field.stored_path, self.direction)

    def __repr__(self) -> str:
        return f"SortKey({self.field.attribute_path!r}, {self.direction})"


class QueryField:
    """A field of a document class used in a query (``User.visits``, ``User.address.city``)."""

    __slots__ = ("_meta", "_owner", "_spec", "attribute_path", "stored_path")

    def __init__(
        self,
        owner: str,
        attribute_path: str,
        stored_path: str,
        spec: TypeSpec,
        meta: ModelMeta | None,
    ) -> None:
        self._owner = owner
        self.attribute_path = attribute_path
        self.stored_path = stored_path
        self._spec = spec
        #: the model of an embedded document at this path (for further attributes)
        self._meta = meta

    @classmethod
    def for_field(cls, meta: ModelMeta, field: FieldMeta) -> QueryField:
        return cls(meta.name, field.name, field.key, field.spec, meta)._with_meta_of(field.spec)

    def _with_meta_of(self, spec: TypeSpec) -> QueryField:
        inner = _unwrap(spec)
        if isinstance(inner, ListSpec):
            inner = _unwrap(inner.inner)
        self._meta = inner.cls._uow_meta if isinstance(inner, EmbeddedSpec) else None
        return self

    def __getattr__(self, name: str) -> QueryField:
        meta = self._meta
        if name.startswith("_") or meta is None:
            raise AttributeError(self._no_attribute(name))
        field = meta.by_name.get(name)
        if field is None:
            raise AttributeError(
                f"{self._owner}.{self.attribute_path} has no field {name!r}; "
                f"its fields are {', '.join(meta.by_name)}"
            )
        child = QueryField(
            self._owner,
            f"{self.attribute_path}.{name}",
            f"{self.stored_path}.{field.key}",
            field.spec,
            None,
        )
        return child._with_meta_of(field.spec)

    def _no_attribute(self, name: str) -> str:
        """Why ``name`` is not an attribute of this query field, and what to write."""
        where = f"{self._owner}.{self.attribute_path}"
        methods = "==, !=, <, <=, >, >=, in_, nin, exists, contains, startswith, icontains"
        if name.startswith("_"):
            return f"{where} has no attribute {name!r}"
        spec = _unwrap(self._spec)
        if isinstance(spec, ListSpec):
            spec = _unwrap(spec.inner)
        if isinstance(spec, RefSpec):
            target = spec.name[len("Ref[") : -1]
            return (
                f"{where} is a reference ({spec.name}): it stores the id only, so a query "
                f"cannot reach {target}.{name}; compare the reference itself "
                f"({where} == a_{target.lower()}, or .in_(ids)), or query {target} "
                f"first and filter on the ids found: "
                f"uow.q({where}).in_([x.id for x in session.filter({target}, {name}=...)])"
            )
        if name in _METHOD_HINTS:
            return (
                f"{where} has no method {name!r}: {_METHOD_HINTS[name]}; "
                f"a query field offers {methods}, asc and desc"
            )
        return (
            f"{where} has no field or method {name!r}: it is a {self._spec.name}, "
            f"not an embedded document; a query field offers {methods}, asc and desc"
        )

    def __getitem__(self, key: str) -> QueryField:
        """A key of a dict field: ``User.settings["theme"]``."""
        spec = _unwrap(self._spec)
        if not isinstance(spec, DictSpec):
            raise ValidationError(
                f"{self._owner}.{self.attribute_path}[{key!r}]: only dict fields take keys",
                document_class=self._owner,
                field=self.attribute_path,
            )
        check_key(self._owner, self.attribute_path, key)
        if key == "":
            raise ValidationError(
                f"{self._owner}.{self.attribute_path}['']: an empty key cannot be part of a "
                "query path (MongoDB would read 'field.' as a path); compare the whole dict",
                document_class=self._owner,
                field=self.attribute_path,
                value=key,
            )
        return QueryField(
            self._owner,
            f"{self.attribute_path}.{key}",
            f"{self.stored_path}.{key}",
            spec.inner,
            None,
        )._with_meta_of(spec.inner)

    # -- values -------------------------------------------------------------------

    def _value(self, value: Any, *, element: bool | None = None, hint: bool = True) -> Any:
        """``value`` in stored form, checked against this field (or its elements).

        ``hint``: the value is the whole operand (not an item of ``in_``'s list),
        so an operator dict in its place was meant as that operator.
        """
        if hint and type(value) is dict and value:
            # {"$ne": None} where a value belongs: say how uow spells that operator
            # before the type check would only say "expected str, got dict".
            key = next(iter(value))
            if key in _OPERATOR_SPELLINGS:
                _assert_data(self._owner, self.attribute_path, value)
        spec = self._spec
        inner = _unwrap(spec)
        container = isinstance(inner, ListSpec)
        if element or (
            element is None and container and not isinstance(value, (list, set, frozenset))
        ):
            if not container:
                raise ValidationError(
                    f"{self._owner}.{self.attribute_path} is a {spec.name}, not an array",
                    document_class=self._owner,
                    field=self.attribute_path,
                )
            assert isinstance(inner, ListSpec)
            spec = inner.inner
        converted = spec.query_value(self._owner, self.attribute_path, value)
        _assert_data(self._owner, self.attribute_path, converted)
        return converted

    def _values(self, values: Any) -> list[Any]:
        if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
            raise ValidationError(
                f"{self._owner}.{self.attribute_path}: in_/nin take a list of values, "
                f"got {describe(values)}",
                document_class=self._owner,
                field=self.attribute_path,
                value=values,
            )
        return [self._value(item, hint=False) for item in values]

    def _text(self, value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise ValidationError(
                f"{self._owner}.{self.attribute_path}: {what} takes a str, got {describe(value)}",
                document_class=self._owner,
                field=self.attribute_path,
                value=value,
            )
        inner = _unwrap(self._spec)
        if isinstance(inner, ListSpec):
            inner = _unwrap(inner.inner)
        if not (isinstance(inner, ScalarSpec) and inner.name == "str"):
            raise ValidationError(
                f"{self._owner}.{self.attribute_path}: {what} needs a str field, "
                f"this one is {self._spec.name}",
                document_class=self._owner,
                field=self.attribute_path,
            )
        return value

    def _cmp(self, operator: str, value: Any) -> Expr:
        return Expr({self.stored_path: {operator: self._value(value)}})

    # -- expressions ----------------------------------------------------------------

    def __eq__(self, value: object) -> Expr:  # type: ignore[override]
        spec = self._spec
        if (
            type(spec) is ScalarSpec
            and type(value) in spec.exact
            and (type(value) is not int or INT64_MIN <= value <= INT64_MAX)
        ):
            # The common lookup (an id, a name): stored as given, nothing to check.
            return Expr({self.stored_path: value})
        if isinstance(value, QueryField):
            return Expr({}, same_fields=(self, value))
        return Expr({self.stored_path: self._value(value)})

    def __ne__(self, value: object) -> Expr:  # type: ignore[override]
        return self._cmp("$ne", value)

    def __gt__(self, value: Any) -> Expr:
        return self._cmp("$gt", value)

    def __ge__(self, value: Any) -> Expr:
        return self._cmp("$gte", value)

    def __lt__(self, value: Any) -> Expr:
        return self._cmp("$lt", value)

    def __le__(self, value: Any) -> Expr:
        return self._cmp("$lte", value)

    def __hash__(self) -> int:
        return hash((self._owner, self.stored_path))

    def in_(self, values: Iterable[Any]) -> Expr:
        """Matches when the field equals one of ``values``."""
        return Expr({self.stored_path: {"$in": self._values(values)}})

    def nin(self, values: Iterable[Any]) -> Expr:
        """Matches when the field equals none of ``values``."""
        return Expr({self.stored_path: {"$nin": self._values(values)}})

    def exists(self, exists: bool = True) -> Expr:
        """Matches when the stored document has (or, with False, lacks) the key."""
        if not isinstance(exists, bool):
            raise ValidationError(
                f"{self._owner}.{self.attribute_path}: exists takes True or False, "
                f"got {describe(exists)}",
                document_class=self._owner,
                field=self.attribute_path,
                value=exists,
            )
        return Expr({self.stored_path: {"$exists": exists}})

    def contains(self, value: Any) -> Expr:
        """An array field holding ``value``; for a str field, the substring ``value``."""
        inner = _unwrap(self._spec)
        if isinstance(inner, ListSpec):
            return Expr({self.stored_path: self._value(value, element=True)})
        text = self._text(value, "contains")
        return Expr({self.stored_path: {"$regex": re.escape(text)}})

    def startswith(self, prefix: str) -> Expr:
        """A str field starting with ``prefix`` (taken literally, not as a pattern)."""
        text = self._text(prefix, "startswith")
        return Expr({self.stored_path: {"$regex": "^" + re.escape(text)}})

    def icontains(self, value: str) -> Expr:
        """A str field containing ``value``, ignoring case (taken literally)."""
        text = self._text(value, "icontains")
        return Expr({self.stored_path: {"$regex": re.escape(text), "$options": "i"}})

    def asc(self) -> SortKey:
        """Ascending order on this field."""
        return SortKey(self, 1)

    def desc(self) -> SortKey:
        """Descending order on this field."""
        return SortKey(self, -1)

    @property
    def direction(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"QueryField({self._owner}.{self.attribute_path} -> {self.stored_path!r})"


class Expr:
    """A filter condition; combine with ``&``, ``|`` and ``~``.

    >>> Expr({"a": 1}) & Expr({"b": {"$gt": 2}})
    Expr({'$and': [{'a': 1}, {'b': {'$gt': 2}}]})
    """

    __slots__ = ("_same_fields", "filter")

    def __init__(
        self, filter: dict[str, Any], same_fields: tuple[QueryField, QueryField] | None = None
    ) -> None:
        self.filter = filter
        self._same_fields = same_fields

    def _usable(self) -> Expr:
        """This expression, refused if it compares two fields (which matches anything)."""
        if self._same_fields is not None:
            left, right = self._same_fields
            raise ValidationError(
                f"{left._owner}.{left.attribute_path} == {right._owner}."
                f"{right.attribute_path}: comparing two fields is not a filter uow can "
                "build; compare a field with a value",
                document_class=left._owner,
                field=left.attribute_path,
            )
        return self

    def _parts(self, operator: str) -> list[dict[str, Any]]:
        self._usable()
        keys = list(self.filter)
        if keys == [operator]:
            return list(self.filter[operator])
        return [self.filter]

    def __and__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return Expr({"$and": self._parts("$and") + other._parts("$and")})

    def __or__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return Expr({"$or": self._parts("$or") + other._parts("$or")})

    def __invert__(self) -> Expr:
        return Expr({"$nor": [self._usable().filter]})

    def __bool__(self) -> bool:
        # `User.a == User.a` (as in dict key lookups) is a plain comparison.
        if self._same_fields is not None:
            left, right = self._same_fields
            return left._owner == right._owner and left.stored_path == right.stored_path
        raise TypeError(
            "a query expression has no truth value; combine expressions with &, | and ~ "
            "instead of and, or and not"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and self.filter == other.filter

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Expr({self.filter!r})"


def _resolve(meta: ModelMeta, parts: list[str], lookup_text: str) -> QueryField:
    """The query field at attribute path ``parts`` of ``meta``'s class."""
    head = meta.by_name.get(parts[0])
    if head is None:
        hint = ""
        if "." in parts[0]:
            spelled = "__".join([*parts[0].split("."), *parts[1:]])
            hint = f"; a lookup names a path with double underscores: {spelled}=..."
        raise ValidationError(
            f"{meta.name} has no field {parts[0]!r} (in the lookup {lookup_text!r}); "
            f"its fields are {', '.join(meta.by_name)}{hint}",
            document_class=meta.name,
            field=parts[0],
        )
    current = QueryField.for_field(meta, head)
    for part in parts[1:]:
        if current._meta is not None:
            if part not in current._meta.by_name:
                raise ValidationError(
                    f"{meta.name}.{current.attribute_path} has no field {part!r} "
                    f"(in the lookup {lookup_text!r})",
                    document_class=meta.name,
                    field=f"{current.attribute_path}.{part}",
                )
            current = getattr(current, part)
        else:
            current = current[part]
    return current


def lookup(meta: ModelMeta, name: str, value: Any) -> Expr:
    """One Django-style lookup (``age__gt=10``) as an expression."""
    parts = name.split("__")
    operator = "exact"
    if len(parts) > 1 and parts[-1] in LOOKUPS:
        operator = parts.pop()
    if not all(parts):
        raise ValidationError(f"{meta.name}: the lookup {name!r} is malformed")
    target = _resolve(meta, parts, name)
    if operator == "exact":
        return target.__eq__(value)
    methods: dict[str, Callable[[Any], Expr]] = {
        "gt": target.__gt__,
        "gte": target.__ge__,
        "lt": target.__lt__,
        "lte": target.__le__,
        "ne": target.__ne__,
        "in": target.in_,
        "nin": target.nin,
        "exists": target.exists,
        "contains": target.contains,
        "startswith": target.startswith,
        "icontains": target.icontains,
    }
    return methods[operator](value)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One filter from several: side by side when their keys differ, else ``$and``."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key in part:
            if key in merged or key.startswith("$"):
                return {"$and": parts} if len(parts) > 1 else parts[0]
        merged.update(part)
    return merged


def compile_filter(meta: ModelMeta, /, *exprs: Expr, **lookups: Any) -> dict[str, Any]:
    """The filter dict for expressions and lookups on ``meta``'s class.

    ``meta`` is positional-only: a lookup may name a field ``meta``.
    """
    if len(exprs) == 1 and not lookups:
        expr = exprs[0]
        if type(expr) is Expr and expr._same_fields is None:
            return expr.filter  # one expression is its own filter
    parts: list[dict[str, Any]] = []
    for expr in exprs:
        if isinstance(expr, Mapping) and not isinstance(expr, Expr):
            raise ValidationError(
                f"{meta.name}: filter() takes query expressions (User.age > 3) and "
                f"lookups (age__gt=3), not a raw dict {describe(expr)}"
            )
        if not isinstance(expr, Expr):
            raise ValidationError(
                f"{meta.name}: filter() takes query expressions, got {describe(expr)}"
            )
        if expr._usable().filter:
            parts.append(expr.filter)
    for name, value in lookups.items():
        parts.append(lookup(meta, name, value).filter)
    return _merge(parts)


def compile_sort(meta: ModelMeta, keys: Iterable[Any]) -> list[tuple[str, int]]:
    """Sort keys (``SortKey``, ``QueryField``, ``"name"``, ``"-name"``) as pymongo pairs."""
    pairs: list[tuple[str, int]] = []
    for key in keys:
        if isinstance(key, SortKey):
            pairs.append(key.as_pair())
        elif isinstance(key, QueryField):
            pairs.append((key.stored_path, 1))
        elif isinstance(key, str):
            direction = -1 if key.startswith("-") else 1
            name = key.lstrip("-+")
            pairs.append(
                (_resolve(meta, name.replace(".", "__").split("__"), key).stored_path, direction)
            )
        else:
            raise ValidationError(f"{meta.name}: cannot sort by {describe(key)}")
    return pairs


def stored_path(meta: ModelMeta, attribute_path: str) -> str:
    """The stored path of a dotted attribute path; undeclared parts are kept as they are."""
    keys: list[str] = []
    current: ModelMeta | None = meta
    for part in attribute_path.split("."):
        field = current.by_name.get(part) if current is not None else None
        if field is None:
            keys.append(part)
            current = None
            continue
        keys.append(field.key)
        inner = _unwrap(field.spec)
        if isinstance(inner, ListSpec):
            inner = _unwrap(inner.inner)
        current = inner.cls._uow_meta if isinstance(inner, EmbeddedSpec) else None
    return ".".join(keys)


def class_filter(meta: ModelMeta, exclude_subclasses: bool) -> dict[str, Any]:
    """The ``_cls`` condition that selects a class (and its subclasses) in a hierarchy."""
    if meta.cls_name is None:  # the root: its documents carry no _cls
        if exclude_subclasses:
            return {"_cls": {"$exists": False}}
        return {}
    if exclude_subclasses:
        return {"_cls": meta.cls_name}
    names = [name for name in meta.hierarchy_names() if name != meta.root.__name__]
    return {"_cls": names[0]} if len(names) == 1 else {"_cls": {"$in": names}}


def q(field: Any) -> QueryField:
    """The typed spelling of a query field: ``uow.q(User.name).in_(["ann", "bob"])``.

    ``User.name.in_(...)`` works at run time, but a type checker reads
    ``User.name`` as the field's value type (``str``), which has no ``in_``;
    ``uow.q(User.name)`` is the same query field, typed as one.

    Raises:
        TypeError: ``field`` is not a query field (an instance's value, say).
    """
    if not isinstance(field, QueryField):
        raise TypeError(
            f"uow.q() takes a query field, the attribute of a document class "
            f"(uow.q(User.name)), got {describe(field)}; read it on the class, not on "
            "an instance"
        )
    return field
