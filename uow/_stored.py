"""Stored forms (what pymongo is given, or decoded): copying them safely.

A snapshot must never share a list or dict with a live document, or an
in-place change would change the snapshot too and go unseen. ``copy_stored``
copies every container of a stored value and shares everything immutable.
"""

from __future__ import annotations

import copy
import datetime as _dt
from typing import Any

import bson

__all__: list[str] = []

#: Stored values that nothing can change in place: shared freely by copies.
IMMUTABLE = frozenset(
    {
        str,
        int,
        float,
        bool,
        bytes,
        type(None),
        bson.ObjectId,
        bson.Int64,
        bson.Decimal128,
        bson.Binary,
        bson.Timestamp,
        bson.MinKey,
        bson.MaxKey,
        _dt.datetime,
    }
)

#: Element types for which ``==`` between two containers means the same BSON.
#: (Not numbers: 1 == 1.0 == True are three different BSON values; not
#: subclasses such as bson.Code, which equals its str.)
EQ_EXACT = frozenset({str, bson.ObjectId, type(None), _dt.datetime})


class Absent:
    """A snapshot's mark for a key the stored document lacks (see ``uow._diff``).

    ``value`` is what the loader filled in for it (the field's default, dumped):
    the same value in memory is no change, and any other is written whole.
    Never sent to the server; never changed in place.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Absent({self.value!r})"


def copy_stored(value: Any) -> Any:
    """``value`` (a stored form) sharing no list or dict with the original."""
    kind = type(value)
    if kind is list:
        if IMMUTABLE.issuperset(map(type, value)):
            return value.copy()
        return [copy_stored(item) for item in value]
    if kind is dict:
        return {key: copy_stored(item) for key, item in value.items()}
    if kind in IMMUTABLE or kind is Absent:
        return value  # (an Absent's value is never changed in place)
    return copy.deepcopy(value)
