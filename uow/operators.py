"""How a change to a field becomes part of a MongoDB update.

Every operator is one small function with one signature::

    operator(update, path, old, new) -> None

``update`` is the update document being built (``{"$set": {...}, "$inc": {...}}``),
``path`` the dotted stored path, ``old`` and ``new`` the stored (BSON) forms of the
value as last flushed and as it is now. ``old`` is :data:`MISSING` when the stored
document has no such key (and for a document the session does not track, where
the update stands for the whole value: ``$inc`` then adds the value itself).
An operator is called only when the value changed.

The default for fields without ``on_update`` (the smallest faithful update) is
the diff in ``uow._diff``, which calls these.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
from collections.abc import Callable
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from ._stored import EQ_EXACT, Absent

__all__ = [
    "MISSING",
    "OPERATORS",
    "Operator",
    "UpdateSpec",
    "add_to_set",
    "add_to_set_unordered",
    "current_date",
    "inc",
    "is_prefix",
    "max_",
    "min_",
    "push",
    "put",
    "same",
    "set_",
]

UpdateSpec = dict[str, dict[str, Any]]
Operator = Callable[[UpdateSpec, str, Any, Any], None]


class _Missing:
    """No value at all: a key absent from a stored document (distinct from None)."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def put(update: UpdateSpec, operator: str, path: str, value: Any) -> None:
    """Add ``path: value`` under ``operator`` in ``update``."""
    slot = update.get(operator)
    if slot is None:
        update[operator] = {path: value}
    else:
        slot[path] = value


#: With values of these types on both sides, ``==`` is the same BSON too: an int
#: equals no value of the others (it equals a float or a bool, which are not here).
_EQ_WITH_INT = EQ_EXACT | {int}


def same(old: Any, new: Any) -> bool:
    """Whether two stored values (as given to pymongo, or decoded) are the same to MongoDB.

    Stricter than ``==``: ``1``, ``1.0`` and ``True`` are different BSON values, so
    changing one into another is a change; dicts compare by keys and values;
    datetimes compare as BSON keeps them (UTC, to the millisecond).
    """
    if old is new:
        return True
    kind = type(old)
    if kind is not type(new):
        if kind is Absent:  # a key the stored document lacks, loaded as its default
            return same(old.value, new)
        if type(new) is Absent:
            return same(old, new.value)
        if isinstance(old, _dt.datetime) and isinstance(new, _dt.datetime):
            return _stored_instant(old) == _stored_instant(new)
        # int32 and int64 are both integers to MongoDB's equality.
        return (
            isinstance(old, int)
            and isinstance(new, int)
            and not isinstance(old, bool)
            and not isinstance(new, bool)
            and old == new
        )
    if kind is dict:
        if old == new:  # the same keys, then
            if EQ_EXACT.issuperset(map(type, old.values())) or (
                _EQ_WITH_INT.issuperset(map(type, old.values()))
                and _EQ_WITH_INT.issuperset(map(type, new.values()))
            ):
                return True  # == at C speed, and for these types == is the same BSON
        elif old.keys() != new.keys():
            return False
        return all(same(value, new[key]) for key, value in old.items())
    if kind is list:
        if len(old) != len(new):
            return False
        if old == new and (
            EQ_EXACT.issuperset(map(type, old))
            or (_EQ_WITH_INT.issuperset(map(type, old)) and _EQ_WITH_INT.issuperset(map(type, new)))
        ):
            return True
        return all(map(same, old, new))
    if kind is float and math.isnan(old):
        return math.isnan(new)
    if kind is _dt.datetime:
        return old == new or _stored_instant(old) == _stored_instant(new)
    return bool(old == new)


def _stored_instant(value: _dt.datetime) -> _dt.datetime:
    """What BSON keeps of a datetime: the UTC instant to the millisecond.

    (Naive values are taken as UTC, as pymongo does: an aware value and the naive
    one BSON stores for it are the same.)
    """
    offset = value.utcoffset()
    if offset is not None:
        value = (value - offset).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def is_prefix(old: list[Any], new: list[Any]) -> bool:
    return len(old) < len(new) and all(map(same, old, new))


def set_(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """``$set`` of the whole value (``$unset`` when the key is gone)."""
    if new is MISSING:
        put(update, "$unset", path, "")
    else:
        put(update, "$set", path, new)


def _number(value: Any) -> Any:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return value


def inc(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """``$inc`` by the delta since load, so concurrent increments add up."""
    new_number = _number(new)
    if old is MISSING:
        # An untracked document: the update adds the whole value (Decimal to Decimal).
        old_number: Any = (
            decimal.Decimal(0)
            if isinstance(new_number, decimal.Decimal)
            else 0
            if isinstance(new_number, (int, float))
            else None
        )
    else:
        old_number = _number(old)
    numeric = (int, float, decimal.Decimal)
    if (
        not isinstance(new_number, numeric)
        or not isinstance(old_number, numeric)
        or isinstance(new_number, bool)
        or isinstance(old_number, bool)
    ):
        set_(update, path, old, new)  # null, or a type $inc cannot add to
        return
    if isinstance(new_number, decimal.Decimal) != isinstance(old_number, decimal.Decimal):
        set_(update, path, old, new)  # Decimal and float do not add up exactly
        return
    if isinstance(old_number, float) and not isinstance(new_number, float):
        # An $inc leaves a stored double a double: an int over one is set instead.
        set_(update, path, old, new)
        return
    before: Any = old_number
    delta: Any = new_number - before
    if before + delta != new_number:
        # Floats (and Decimals past their precision) do not always add back up:
        # the stored value would differ from memory, so it is set instead.
        set_(update, path, old, new)
        return
    if isinstance(delta, decimal.Decimal):
        put(update, "$inc", path, Decimal128(delta))
    elif isinstance(delta, int) and not -(2**31) <= delta < 2**31:
        put(update, "$inc", path, Int64(delta))
    else:
        put(update, "$inc", path, delta)


def max_(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """``$max`` of the new value: the server keeps the larger.

    Onto a stored null it is a ``$set``: BSON orders null below every value, so
    a ``$min`` would keep the null (and the two operators would disagree).
    """
    if new is None or new is MISSING or old is None:
        set_(update, path, old, new)
    else:
        put(update, "$max", path, new)


def min_(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """``$min`` of the new value: the server keeps the smaller (``$set`` onto a
    stored null, as ``max_``)."""
    if new is None or new is MISSING or old is None:
        set_(update, path, old, new)
    else:
        put(update, "$min", path, new)


def push(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """``$push`` with ``$each`` of appended items; any other list change is a ``$set``."""
    if old is MISSING and isinstance(new, list):
        put(update, "$push", path, {"$each": new})
    elif isinstance(old, list) and isinstance(new, list) and is_prefix(old, new):
        put(update, "$push", path, {"$each": new[len(old) :]})
    else:
        set_(update, path, old, new)


def add_to_set(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """``$addToSet`` with ``$each`` of added items, where that leaves the list as it
    is in memory (the server appends each at the end, once); any other change (a
    removal, an item added elsewhere than at the end, a duplicate) is a ``$set``."""
    if old is MISSING and isinstance(new, list):
        put(update, "$addToSet", path, {"$each": new})
        return
    if isinstance(old, list) and isinstance(new, list) and is_prefix(old, new):
        added = new[len(old) :]
        if not any(
            any(same(item, kept) for kept in [*old, *added[:index]])
            for index, item in enumerate(added)
        ):
            put(update, "$addToSet", path, {"$each": added})
            return
    set_(update, path, old, new)


def add_to_set_unordered(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """For a ``set`` field (stored as an array whose order means nothing):
    ``$addToSet`` with ``$each`` of added items; a removal is a ``$set``."""
    if old is MISSING and isinstance(new, list):
        put(update, "$addToSet", path, {"$each": new})
        return
    if isinstance(old, list) and isinstance(new, list):
        added = [item for item in new if not any(same(item, kept) for kept in old)]
        kept_all = all(any(same(item, now) for now in new) for item in old)
        if kept_all and added:
            put(update, "$addToSet", path, {"$each": added})
            return
    set_(update, path, old, new)


def current_date(update: UpdateSpec, path: str, old: Any, new: Any) -> None:
    """``$currentDate``: the server sets the field on every update of the document."""
    put(update, "$currentDate", path, True)


OPERATORS: dict[str, Operator] = {
    "$set": set_,
    "$inc": inc,
    "$max": max_,
    "$min": min_,
    "$push": push,
    "$addToSet": add_to_set,
    "$currentDate": current_date,
}
