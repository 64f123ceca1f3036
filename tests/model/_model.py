"""What must be stored: the plain-Python side of the model-based test.

:func:`merge` is SPEC.md's "one rule every write obeys", per field kind: given
what is stored now, the session's snapshot (what it loaded or last flushed)
and what it holds, the value the stored document must have after the flush.
Where nobody else wrote, that is simply what the session holds (or, for
``$max`` and ``$addToSet``, what the server keeps); where another client
appended or incremented in between, both sides' effects add up, and a
``$set`` is last-writer-wins.
"""

from __future__ import annotations

import copy
from typing import Any


class _Sentinel:
    """A marker that copies as itself (the model deep-copies snapshots)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __copy__(self) -> _Sentinel:
        return self

    def __deepcopy__(self, memo: Any) -> _Sentinel:
        return self


#: The stored document lacks the key (the session knows it as missing).
MISSING = _Sentinel("MISSING")
#: ``fields(...)`` left the field out, and the session assigned it since.
UNLOADED = _Sentinel("UNLOADED")


def changed(snap: Any, held: Any, default: Any) -> bool:
    """Whether a flush has anything to send for this field."""
    if snap is UNLOADED:
        return True
    if snap is MISSING:
        return bool(held != default)
    return bool(held != snap)


def _prefix(old: list[Any], new: list[Any]) -> bool:
    return len(new) >= len(old) and new[: len(old)] == old


def _in_place(old: list[Any], new: list[Any]) -> bool:
    """Whether a list of embedded documents kept its old elements in place.

    SPEC: a change inside an element is sent on its positional path "as long as
    the list kept its length and order"; one that lost, gained other than by
    appending, or reordered elements is set whole. Memory holds values, not a
    history, so order is told from them: where more than one element changed
    and one of them now equals an old element, elements moved (docs/flush.md).
    """
    if len(new) < len(old):
        return False
    changed = [i for i in range(len(old)) if new[i] != old[i]]
    return len(changed) <= 1 or not any(new[i] in old for i in changed)


def merge(kind: Any, stored: Any, snap: Any, held: Any) -> Any:
    """The stored value after a flush of one field (``MISSING``: stays absent)."""
    if snap is UNLOADED or snap is MISSING or stored is MISSING:
        return copy.deepcopy(held)
    if held == snap:
        return stored
    if snap is None or held is None or stored is None:
        return copy.deepcopy(held)
    if isinstance(kind, tuple):
        tag, sub = kind
        if tag == "emb":
            out = dict(stored)  # unknown keys stay
            for key, sub_kind in sub.items():
                out[key] = merge(
                    sub_kind, stored.get(key, MISSING), snap.get(key, MISSING), held[key]
                )
            return out
        if tag == "list_emb":
            if _prefix(snap, held):
                return list(stored) + copy.deepcopy(held[len(snap) :])
            if _in_place(snap, held) and len(stored) >= len(snap):
                # Positional paths for the elements changed inside, and a $push of
                # what was appended (docs/flush.md, rule 3): what another writer
                # appended since stays, as with two appends.
                kept = [merge(("emb", sub), stored[i], snap[i], held[i]) for i in range(len(snap))]
                return kept + list(stored[len(snap) :]) + copy.deepcopy(held[len(snap) :])
            return copy.deepcopy(held)
        if tag == "dict_emb":
            out = dict(stored)
            for key in snap:
                if key not in held:
                    out.pop(key, None)
            for key, value in held.items():
                if key not in snap or key not in stored:
                    out[key] = copy.deepcopy(value)
                else:
                    out[key] = merge(("emb", sub), stored[key], snap[key], value)
            return out
        raise AssertionError(kind)
    if kind == "plain":
        return copy.deepcopy(held)
    if kind == "inc":
        return stored + (held - snap)
    if kind == "max":
        return max(stored, held)
    if kind in ("push", "list"):
        if _prefix(snap, held):
            return list(stored) + list(held[len(snap) :])
        return list(held)
    if kind == "addToSet":
        # Appending an item the list already holds (or twice) is a change
        # $addToSet cannot express: the server would not store it. That falls
        # back to $set of the field (SPEC: "A list change that $push or
        # $addToSet cannot express ... falls back to $set"), as it does today.
        added = held[len(snap) :]
        if _prefix(snap, held) and len(set(added)) == len(added) and not set(added) & set(snap):
            out = list(stored)
            for item in held[len(snap) :]:
                if item not in out:
                    out.append(item)
            return out
        return list(held)
    if kind == "set":
        if snap <= held:
            return set(stored) | held
        return set(held)
    if kind == "dict_list":
        out = dict(stored)
        for key in snap:
            if key not in held:
                out.pop(key, None)
        for key, value in held.items():
            if key not in snap or key not in stored:
                out[key] = list(value)
            else:
                out[key] = merge("list", stored[key], snap[key], value)
        return out
    raise AssertionError(kind)
