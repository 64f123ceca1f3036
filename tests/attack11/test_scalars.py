"""Plain-field flushes over stored values of another BSON type than declared.

SPEC: "after a flush, the stored document equals what the session holds";
"Stored values of another type than declared (legacy data) load as they are and
never block a flush: a flush validates what this session changed"; "A flush with
nothing changed sends nothing".
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson import ObjectId
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

from uow import Document, Session

from ._h import MISSING, SETTINGS, assert_stored_equals_memory, stored, tag

COLL = "a11_plain"
T0 = datetime.datetime(2020, 1, 2, 3, 4, 5, 6000)


class Plain(Document):
    __collection__ = COLL
    s: str = ""
    i: int = 0
    f: float = 0.0
    b: bool = False
    d: datetime.datetime | None = None
    o: int | None = 7
    os: str | None = "dflt"


FIELDS = ("s", "i", "f", "b", "d", "o", "os")
DEFAULTS = {"s": "", "i": 0, "f": 0.0, "b": False, "d": None, "o": 7, "os": "dflt"}


def load(db: Any, raw: dict[str, Any]) -> tuple[Session, Any]:
    oid = ObjectId()
    db[COLL].insert_one({"_id": oid, **raw})
    s = Session(db)
    obj = s.get(Plain, oid)
    assert obj is not None
    return s, obj


# (stored legacy value, field, value assigned)
CASES = [
    ({"s": 5}, "s", "5"),
    ({"s": 5}, "s", "x"),
    ({"s": 1.5}, "s", "1.5"),
    ({"s": True}, "s", "True"),
    ({"s": None}, "s", ""),
    ({"i": 3.0}, "i", 3),
    ({"i": 3.5}, "i", 3),
    ({"i": True}, "i", 1),
    ({"i": False}, "i", 0),
    ({"i": "3"}, "i", 3),
    ({"i": None}, "i", 0),
    ({"i": Int64(3)}, "i", 4),
    ({"i": Int64(2**40)}, "i", 2**40 + 1),
    ({"f": 2}, "f", 2.0),
    ({"f": Int64(2)}, "f", 2.0),
    ({"f": True}, "f", 1.0),
    ({"f": "2.0"}, "f", 2.0),
    ({"f": None}, "f", 0.0),
    ({"b": 1}, "b", True),
    ({"b": 0}, "b", False),
    ({"b": 1.0}, "b", True),
    ({"b": Int64(1)}, "b", True),
    ({"b": "true"}, "b", True),
    ({"b": None}, "b", False),
    ({"d": "2020-01-02"}, "d", T0),
    ({"d": 0}, "d", None),
    ({"d": 0}, "d", T0),
    ({"o": None}, "o", 7),
    ({"o": 7.0}, "o", 7),
    ({"o": True}, "o", 1),
    ({"o": Int64(7)}, "o", None),
    ({"o": "7"}, "o", 7),
    ({"os": None}, "os", "dflt"),
    ({"os": 0}, "os", None),
    ({"os": False}, "os", ""),
]


@pytest.mark.parametrize(
    ("raw", "name", "value"), CASES, ids=[f"{c[1]}<-{c[0][c[1]]!r}->{c[2]!r}" for c in CASES]
)
def test_assign_over_legacy_value_stores_memory(
    db: Any, raw: dict[str, Any], name: str, value: Any
) -> None:
    other = {"s": 9, "i": 2.5, "b": 0, "f": 1}  # legacy values elsewhere, untouched
    full = {**other, **raw}
    s, obj = load(db, full)
    setattr(obj, name, value)
    s.commit()
    doc = stored(db, obj)
    assert tag(doc.get(name, MISSING)) == tag(getattr(obj, name)) == tag(value)
    # fields only loaded stay as stored, legacy type included
    for k, v in full.items():
        if k != name:
            assert tag(doc[k]) == tag(v), k
    assert_stored_equals_memory(db, obj)


# Same value, same type assigned back: nothing is sent.
SAME = [
    ({"s": "a"}, "s"),
    ({"i": 3}, "i"),
    ({"i": Int64(3)}, "i"),
    ({"f": 2.5}, "f"),
    ({"b": True}, "b"),
    ({"o": None}, "o"),
    ({"d": T0.replace(microsecond=6000)}, "d"),
    ({"os": None}, "os"),
]


@pytest.mark.parametrize(
    ("raw", "name"), SAME, ids=[c[1] + "-" + type(c[0][c[1]]).__name__ for c in SAME]
)
def test_assign_same_value_back_sends_nothing(db: Any, raw: dict[str, Any], name: str) -> None:
    s, obj = load(db, {**raw, "s": raw.get("s", 5)})
    setattr(obj, name, getattr(obj, name))
    assert not s.is_dirty(obj)
    res = s.flush()
    assert res.updated == 0 and res.round_trips == 0
    s.commit()
    doc = stored(db, obj)
    assert tag(doc[name]) == tag(raw[name])


@pytest.mark.parametrize(
    ("raw", "name", "value"),
    [
        ({"i": 1.0}, "i", 1),
        ({"i": True}, "i", 1),
        ({"f": 1}, "f", 1.0),
        ({"f": True}, "f", 1.0),
        ({"b": 1}, "b", True),
        ({"b": 0.0}, "b", False),
        ({"o": 1.0}, "o", 1),
        ({"o": False}, "o", 0),
    ],
)
def test_equal_looking_value_of_other_type_is_written(
    db: Any, raw: dict[str, Any], name: str, value: Any
) -> None:
    s, obj = load(db, raw)
    setattr(obj, name, value)
    assert s.is_dirty(obj), f"{name}: {raw[name]!r} -> {value!r} not seen as a change"
    s.commit()
    assert tag(stored(db, obj)[name]) == tag(value)
    # and a second flush sends nothing
    assert s.flush().round_trips == 0


@pytest.mark.parametrize(
    ("old", "new"), [(Int64(3), 3), (3, Int64(3))], ids=["int64->int", "int->int64"]
)
def test_int64_vs_int32_same_value(db: Any, old: Any, new: Any) -> None:
    """uow's decision (docs/flush.md): an int32 and an int64 of the same value are
    the same integer (MongoDB's equality; BSON's encoder itself picks the width
    by size), so assigning one over the other writes nothing; the stored value
    still equals memory's."""
    s, obj = load(db, {"i": old})
    obj.i = new
    assert not s.is_dirty(obj)
    assert s.flush().round_trips == 0
    s.commit()
    got = stored(db, obj)["i"]
    assert got == obj.i and tag(got) == tag(old)


def test_legacy_values_never_block_flush_of_other_field(db: Any) -> None:
    raw = {"s": 5, "i": "x", "f": "y", "b": "z", "d": 17, "o": [1], "os": {"a": 1}}
    s, obj = load(db, raw)
    obj.s = "fixed"
    s.commit()
    doc = stored(db, obj)
    assert doc["s"] == "fixed"
    for k, v in raw.items():
        if k != "s":
            assert tag(doc[k]) == tag(v)
            assert tag(getattr(obj, k)) == tag(v)


# ---------------------------------------------------------------- hypothesis

LEGACY = {
    "s": st.one_of(
        st.text(max_size=3),
        st.integers(-5, 5),
        st.booleans(),
        st.none(),
        st.floats(-5, 5, allow_nan=False),
    ),
    "i": st.one_of(
        st.integers(-5, 5),
        st.integers(-5, 5).map(Int64),
        st.booleans(),
        st.none(),
        st.sampled_from([0.0, 1.0, 2.5, -1.0]),
        st.just("1"),
    ),
    "f": st.one_of(
        st.sampled_from([0.0, 1.0, 2.5]),
        st.integers(-3, 3),
        st.integers(-3, 3).map(Int64),
        st.booleans(),
        st.none(),
    ),
    "b": st.one_of(st.booleans(), st.integers(0, 1), st.sampled_from([0.0, 1.0]), st.none()),
    "o": st.one_of(
        st.none(), st.integers(0, 8), st.booleans(), st.sampled_from([7.0, 1.0]), st.just(Int64(7))
    ),
}
NEW = {
    "s": st.one_of(st.text(max_size=3), st.sampled_from(["1", "0", "True", ""])),
    "i": st.integers(-5, 5),
    "f": st.one_of(st.sampled_from([0.0, 1.0, 2.5, -1.0]), st.integers(-3, 3)),
    "b": st.booleans(),
    "o": st.one_of(st.none(), st.integers(0, 8)),
}


@st.composite
def scenario(draw: Any) -> tuple[dict[str, Any], list[list[tuple[str, Any]]]]:
    raw = {}
    for k, strat in LEGACY.items():
        if draw(st.booleans()):
            raw[k] = draw(strat)
    rounds = draw(
        st.lists(
            st.lists(st.tuples(st.sampled_from(sorted(NEW)), st.none()), max_size=4).flatmap(
                lambda picks: st.tuples(*[st.tuples(st.just(k), NEW[k]) for k, _ in picks]).map(
                    list
                )
            ),
            min_size=1,
            max_size=3,
        )
    )
    return raw, rounds


def _int64_alias(old: Any, new: Any) -> bool:
    # int32 and int64 of one value are the same integer (docs/flush.md, and
    # test_int64_vs_int32_same_value): kept out of the type-exact property.
    return (
        isinstance(old, int)
        and isinstance(new, int)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
        and type(old) is not type(new)
        and old == new
    )


@SETTINGS
@given(sc=scenario())
def test_property_rounds_of_assignments(db: Any, sc: Any) -> None:
    raw, rounds = sc
    db[COLL].delete_many({})
    s, obj = load(db, raw)
    try:
        for assignments in rounds:
            for name, value in assignments:
                before = getattr(obj, name)
                setattr(obj, name, value)
                if _int64_alias(before, value):
                    return
            s.commit()
            doc = stored(db, obj)
            for name in FIELDS:
                if name not in doc:
                    # never stored: only allowed while the session holds the default
                    assert tag(getattr(obj, name)) == tag(DEFAULTS[name]), name
            assert_stored_equals_memory(db, obj)
            assert s.flush().round_trips == 0
        # a fresh session reads exactly what the first one holds
        s2 = Session(db)
        again = s2.get(Plain, obj.id)
        for name in {n for r in rounds for n, _ in r} | set(raw):
            assert tag(getattr(again, name)) == tag(getattr(obj, name)), name
        s2.close()
    finally:
        s.close()
