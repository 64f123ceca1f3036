"""Property tests: stored forms round-trip, and lookup values never become operators."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import uuid
from typing import Any

import attrs
import bson
import pytest
from bson.decimal128 import Decimal128
from hypothesis import given, settings
from hypothesis import strategies as st

import uow
from uow import Document, Embedded, Ref, field
from uow.query import LOOKUPS, compile_filter

SETTINGS = settings(max_examples=200, deadline=None)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=12)
#: BSON datetimes hold milliseconds; naive datetimes mean UTC.
DATETIMES = st.datetimes(
    min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999000)
).map(lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000))
#: Everything Decimal128 holds exactly: up to 34 digits, exponent -6176..6111.
DECIMALS = st.one_of(
    st.builds(
        lambda sign, digits, exponent: decimal.Decimal(
            (sign, tuple(map(int, str(digits))), exponent)
        ),
        st.integers(0, 1),
        st.integers(0, 10**34 - 1),
        st.integers(-6176, 6111),
    ),
    st.sampled_from([decimal.Decimal("Infinity"), decimal.Decimal("-Infinity")]),
)
OBJECT_IDS = st.binary(min_size=12, max_size=12).map(bson.ObjectId)
KEYS = TEXT.filter(lambda key: not key.startswith("$") and "." not in key and "\x00" not in key)


class Target(Document):
    pass


class Part(Embedded):
    label: str
    n: int | None = None
    when: dt.datetime | None = None
    stamps: list[dt.datetime] = field(factory=list)
    weights: dict[str, float] = field(factory=dict)


class Everything(Document):
    s: str = ""
    i: int = 0
    f: float = 0.0
    b: bool = False
    by: bytes = b""
    at: dt.datetime = dt.datetime(2000, 1, 1)
    day: dt.date = dt.date(2000, 1, 1)
    dec: decimal.Decimal = decimal.Decimal(0)
    oid: bson.ObjectId = field(factory=bson.ObjectId)
    u: uuid.UUID = field(factory=uuid.uuid4)
    renamed: str = field(default="", db_name="r")
    strs: list[str] = field(factory=list)
    ints: set[int] = field(factory=set)
    uuids: set[uuid.UUID] = field(factory=set)
    days: list[dt.date] = field(factory=list)
    decs: list[decimal.Decimal] = field(factory=list)
    scores: dict[str, float] = field(factory=dict)
    nested: dict[str, list[int]] = field(factory=dict)
    maybe: str | None = None
    maybe_at: dt.datetime | None = None
    part: Part | None = None
    parts: list[Part] = field(factory=list)
    by_key: dict[str, Part] = field(factory=dict)
    ref: Ref[Target] | None = None
    refs: list[Ref[Target]] = field(factory=list)


PARTS = st.builds(
    Part,
    label=TEXT,
    n=st.none() | INT64,
    when=st.none() | DATETIMES,
    stamps=st.lists(DATETIMES, max_size=3),
    weights=st.dictionaries(KEYS, st.floats(), max_size=3),
)
REFS = OBJECT_IDS.map(lambda oid: Ref(Target, oid))

EVERYTHING = st.builds(
    Everything,
    id=OBJECT_IDS,
    s=TEXT,
    i=INT64,
    f=st.floats() | INT64,
    b=st.booleans(),
    by=st.binary(max_size=12),
    at=DATETIMES,
    day=st.dates(),
    dec=DECIMALS,
    oid=OBJECT_IDS,
    u=st.uuids(),
    renamed=TEXT,
    strs=st.lists(TEXT, max_size=4),
    ints=st.sets(INT64, max_size=4),
    uuids=st.sets(st.uuids(), max_size=3),
    days=st.lists(st.dates(), max_size=3),
    decs=st.lists(DECIMALS, max_size=3),
    scores=st.dictionaries(KEYS, st.floats(), max_size=4),
    nested=st.dictionaries(KEYS, st.lists(INT64, max_size=3), max_size=3),
    maybe=st.none() | TEXT,
    maybe_at=st.none() | DATETIMES,
    part=st.none() | PARTS,
    parts=st.lists(PARTS, max_size=3),
    by_key=st.dictionaries(KEYS, PARTS, max_size=2),
    ref=st.none() | REFS | OBJECT_IDS,  # an id is accepted for a Ref
    refs=st.lists(REFS | OBJECT_IDS.map(lambda oid: Ref(Target, oid)), max_size=3),
)


def assert_same(left: Any, right: Any, where: str) -> None:
    """Equal value by value; NaN equals NaN, embedded documents compare field by field."""
    if isinstance(left, float) and math.isnan(left):
        assert isinstance(right, float) and math.isnan(right), where
    elif isinstance(left, (Embedded, Document)):
        assert type(left) is type(right), where
        for attribute in attrs.fields(type(left)):
            name = attribute.name
            assert_same(getattr(left, name), getattr(right, name), f"{where}.{name}")
    elif isinstance(left, list):
        assert isinstance(right, list) and len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), where
        for key, value in left.items():
            assert_same(value, right[key], f"{where}[{key!r}]")
    elif isinstance(left, decimal.Decimal):
        assert isinstance(right, decimal.Decimal) and left == right, where
    else:
        assert type(left) is type(right) or {type(left), type(right)} <= {int, bson.int64.Int64}
        assert left == right, where


# ------------------------------------------------------------------ round trips


@SETTINGS
@given(EVERYTHING)
def test_any_valid_document_survives_to_bson_and_back(doc: Everything) -> None:
    loaded = Everything.from_bson(doc.to_bson())
    assert_same(doc, loaded, "Everything")


@SETTINGS
@given(EVERYTHING)
def test_any_valid_document_survives_real_bson_bytes(doc: Everything) -> None:
    encoded = bson.encode(doc.to_bson())
    loaded = Everything.from_bson(bson.decode(encoded))
    assert_same(doc, loaded, "Everything")
    # And saving what was loaded writes the same bytes (sets aside: their order is free).
    again = loaded.to_bson()
    first = bson.decode(encoded)
    for name in ("ints", "uuids"):
        assert sorted(map(repr, again.pop(name))) == sorted(map(repr, first.pop(name)))
    assert bson.encode(again) == bson.encode(first)


@SETTINGS
@given(
    st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_aware_datetimes_load_as_the_same_instant(naive: dt.datetime, offset: int) -> None:
    zone = dt.timezone(dt.timedelta(minutes=offset))
    aware = naive.replace(microsecond=naive.microsecond // 1000 * 1000, tzinfo=zone)
    raw = bson.decode(bson.encode(Everything(at=aware).to_bson()))
    utc = aware.astimezone(dt.timezone.utc)
    assert Everything.from_bson(raw).at == utc.replace(tzinfo=None)
    assert Everything.from_bson(raw, tz_aware=True).at == aware
    local = Everything.from_bson(raw, timezone=zone).at
    assert local == aware and local.utcoffset() == zone.utcoffset(None)


JSON_LEAVES = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=8,
)
EXTRA = st.dictionaries(
    KEYS.filter(lambda key: key not in {"label", "n", "when"}), JSON, max_size=3
)


@SETTINGS
@given(EVERYTHING, EXTRA, EXTRA, EXTRA)
def test_unknown_keys_survive_at_every_depth(
    doc: Everything, top: dict[str, Any], inside: dict[str, Any], in_list: dict[str, Any]
) -> None:
    raw = doc.to_bson()
    known = set(Everything._uow_meta.by_key)
    part_keys = set(Part._uow_meta.by_key)
    raw.update({key: value for key, value in top.items() if key not in known})
    extra_inside = {key: value for key, value in inside.items() if key not in part_keys}
    extra_in_list = {key: value for key, value in in_list.items() if key not in part_keys}
    if raw["part"] is not None:
        raw["part"].update(extra_inside)
    for stored in raw["parts"]:
        stored.update(extra_in_list)
    for stored in raw["by_key"].values():
        stored.update(extra_inside)
    raw = bson.decode(bson.encode(raw))
    written = Everything.from_bson(raw).to_bson()
    for name in ("ints", "uuids"):
        assert sorted(map(repr, written.pop(name))) == sorted(map(repr, raw.pop(name)))
    assert written == raw


# ------------------------------------------------------- hostile lookup values


class Town(Embedded):
    city: str
    zip: str | None = field(default=None, db_name="postcode")


class Person(Document):
    name: str = ""
    email: str = field(default="", db_name="mail")
    age: int = 0
    score: float = 0.0
    active: bool = True
    avatar: bytes = b""
    balance: decimal.Decimal = decimal.Decimal(0)
    born: dt.date | None = None
    seen: dt.datetime | None = None
    key: uuid.UUID | None = None
    other: bson.ObjectId | None = None
    tags: list[str] = field(factory=list)
    roles: set[str] = field(factory=set)
    prefs: dict[str, int] = field(factory=dict)
    town: Town | None = None
    towns: list[Town] = field(factory=list)
    friend: Ref[Target] | None = None
    friends: list[Ref[Target]] = field(factory=list)


#: Every lookup path of Person, with the stored path it must compile to.
PATHS = {
    "id": "_id",
    "name": "name",
    "email": "mail",
    "age": "age",
    "score": "score",
    "active": "active",
    "avatar": "avatar",
    "balance": "balance",
    "born": "born",
    "seen": "seen",
    "key": "key",
    "other": "other",
    "tags": "tags",
    "roles": "roles",
    "prefs": "prefs",
    "prefs__k": "prefs.k",
    "town": "town",
    "town__city": "town.city",
    "town__zip": "town.postcode",
    "towns": "towns",
    "towns__city": "towns.city",
    "friend": "friend",
    "friends": "friends",
}
#: The only operator keys each lookup may put in a filter.
EMITS: dict[str, set[str]] = {
    "exact": set(),
    "gt": {"$gt"},
    "gte": {"$gte"},
    "lt": {"$lt"},
    "lte": {"$lte"},
    "ne": {"$ne"},
    "in": {"$in"},
    "nin": {"$nin"},
    "exists": {"$exists"},
    "contains": {"$regex"},  # on a str field; on an array it is a plain value
    "startswith": {"$regex"},
    "icontains": {"$regex", "$options"},
}
OPERATOR_KEYS = {
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$ne",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "$options",
}
OPERATOR_KEYS |= {"$and", "$or", "$nor"}
assert set(EMITS) - {"exact"} == set(LOOKUPS)

HOSTILE_TEXT = st.sampled_from(
    ["$where", "$gt", "$ne", "$regex", "$expr", "a.b", "^.*$", ".*", "sleep(1000)", "", "\x00"]
)
HOSTILE_KEYS = KEYS | HOSTILE_TEXT | st.sampled_from(["$in", "$or", "$options", "$function"])
HOSTILE_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    TEXT,
    HOSTILE_TEXT,
    st.binary(max_size=4),
    DATETIMES,
    st.dates(),
    DECIMALS,
    st.decimals(),  # NaN, sNaN and more digits than Decimal128 holds
    OBJECT_IDS,
    st.uuids(),
    OBJECT_IDS.map(lambda oid: Ref(Target, oid)),
)


def _hostile_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(HOSTILE_KEYS, children, max_size=3),
        st.tuples(children, children),
        st.sets(st.one_of(TEXT, HOSTILE_TEXT, st.integers()), max_size=3),
        # documents loaded from hostile data keep whatever keys they had
        st.dictionaries(HOSTILE_KEYS, children, max_size=3).map(
            lambda extra: Town.from_bson({"city": "x", **extra})
        ),
        st.builds(Town, city=TEXT),
        st.dictionaries(HOSTILE_KEYS, children, max_size=2).map(lambda key: Ref(Target, key)),
    )


HOSTILE = st.recursive(HOSTILE_LEAVES, _hostile_containers, max_leaves=10)


def operator_keys(value: Any) -> list[str]:
    """Every dict key starting with "$" anywhere in ``value``."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("$"):
                found.append(key)
            found += operator_keys(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found += operator_keys(item)
    return found


#: Lookup paths of array fields: ``contains`` there is a plain element value.
ARRAY_PATHS = {"tags", "roles", "towns", "friends"}


def check_filter(path: str, operator: str, given_value: Any, compiled: dict[str, Any]) -> None:
    """The structure a lookup may compile to; its data part holds no operator at all."""
    every = operator_keys(compiled)
    assert set(every) <= OPERATOR_KEYS, every
    assert set(every) <= EMITS[operator], (operator, every)
    assert list(compiled) == [PATHS[path]], compiled
    condition = compiled[PATHS[path]]
    if operator == "exact" or (operator == "contains" and path in ARRAY_PATHS):
        data = condition
    elif operator in ("startswith", "contains", "icontains"):
        pattern = re.escape(given_value)
        expected = {
            "startswith": {"$regex": "^" + pattern},
            "contains": {"$regex": pattern},
            "icontains": {"$regex": pattern, "$options": "i"},
        }[operator]
        assert condition == expected
        return
    elif operator == "exists":
        assert condition == {"$exists": given_value} and isinstance(given_value, bool)
        return
    else:
        assert list(condition) == [f"${operator}"], condition
        data = condition[f"${operator}"]
        if operator in ("in", "nin"):
            assert isinstance(data, list)
    assert operator_keys(data) == [], data


LOOKUP_NAMES = [
    (path, operator, path if operator == "exact" else f"{path}__{operator}")
    for path in PATHS
    for operator in EMITS
]


@SETTINGS
@given(HOSTILE)
def test_no_lookup_value_ever_becomes_an_operator(value: Any) -> None:
    for path, operator, name in LOOKUP_NAMES:
        try:
            compiled = compile_filter(Person._uow_meta, **{name: value})
        except uow.ValidationError:
            continue
        check_filter(path, operator, value, compiled)


@SETTINGS
@given(st.text())
def test_regex_lookups_escape_any_text(text: str) -> None:
    for path in ("name", "email", "town__city", "tags"):
        for operator in ("startswith", "icontains"):
            compiled = compile_filter(Person._uow_meta, **{f"{path}__{operator}": text})
            check_filter(path, operator, text, compiled)
            pattern = compiled[PATHS[path]]["$regex"]
            assert re.search(pattern, "x" + text) or operator == "startswith"
            assert re.match(pattern, text + "y")


# The structural check above is not vacuous: each lookup accepts a value of its
# field's type, and the check passes on what it compiles to.
TARGET = Target()
VALID: dict[str, Any] = {
    "id": bson.ObjectId(),
    "name": "ann",
    "email": "a@x.io",
    "age": 3,
    "score": 1.5,
    "active": True,
    "avatar": b"x",
    "balance": decimal.Decimal("1.5"),
    "born": dt.date(2020, 1, 1),
    "seen": dt.datetime(2020, 1, 1),
    "key": uuid.uuid4(),
    "other": bson.ObjectId(),
    "tags": "vip",
    "roles": "admin",
    "prefs": {"a": 1},
    "prefs__k": 2,
    "town": Town(city="Oslo"),
    "town__city": "Oslo",
    "town__zip": "0150",
    "towns": Town(city="Rome"),
    "towns__city": "Rome",
    "friend": TARGET,
    "friends": TARGET,
}
TEXT_PATHS = {"name", "email", "tags", "roles", "town__city", "town__zip", "towns__city"}


@pytest.mark.parametrize(("path", "operator", "name"), LOOKUP_NAMES)
def test_valid_lookups_compile_and_pass_the_check(path: str, operator: str, name: str) -> None:
    value: Any = VALID[path]
    if operator in ("in", "nin"):
        value = [value]
    elif operator == "exists":
        value = True
    elif operator in ("startswith", "icontains") or (
        operator == "contains" and path not in ARRAY_PATHS
    ):
        if path not in TEXT_PATHS:
            with pytest.raises(uow.ValidationError):
                compile_filter(Person._uow_meta, **{name: "x"})
            return
        value = "a.b"
    elif path in ARRAY_PATHS and operator != "contains":
        value = [value] if path != "roles" else {value}
    compiled = compile_filter(Person._uow_meta, **{name: value})
    check_filter(path, operator, value, compiled)


def test_the_check_catches_an_operator_in_the_data() -> None:
    with pytest.raises(AssertionError):
        check_filter("name", "exact", None, {"name": {"$ne": None}})
    with pytest.raises(AssertionError):
        check_filter("name", "in", None, {"name": {"$in": [{"$gt": ""}]}})
    with pytest.raises(AssertionError):
        check_filter("name", "startswith", "a.", {"name": {"$regex": "^a."}})
    with pytest.raises(AssertionError):
        check_filter("name", "gt", 1, {"name": {"$gt": 1, "$where": "x"}})
    with pytest.raises(AssertionError):
        check_filter("tags", "contains", "x", {"tags": {"$regex": "x"}})


def test_decimal128_holds_every_generated_decimal() -> None:
    # The DECIMALS strategy stays inside Decimal128's exact range at its edges.
    for value in (
        decimal.Decimal((0, (9,) * 34, 6111)),
        decimal.Decimal((1, (9,) * 34, -6176)),
    ):
        assert Decimal128(value).to_decimal() == value
