"""on_update operators and the default diff: the update documents they build."""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

from uow import Document, Embedded, field
from uow._diff import diff_document
from uow.operators import (
    MISSING,
    OPERATORS,
    UpdateSpec,
    add_to_set,
    add_to_set_unordered,
    current_date,
    inc,
    max_,
    min_,
    push,
    same,
    set_,
)


def run(operator: Any, old: Any, new: Any, path: str = "f") -> UpdateSpec:
    update: UpdateSpec = {}
    operator(update, path, old, new)
    return update


# -------------------------------------------------------------------- same


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (1, 1, True),
        (1, 1.0, False),  # int and double are different BSON values
        (1, True, False),
        (True, 1, False),
        (0, False, False),
        (1.0, True, False),
        (1, Int64(1), True),  # int32 and int64 are both integers
        (Int64(2), 2, True),
        (1, 2, False),
        ("a", "a", True),
        ("a", b"a", False),
        (None, None, True),
        (None, 0, False),
        (float("nan"), float("nan"), True),
        (float("nan"), 1.0, False),
        ([1, 2], [1, 2], True),
        ([1, 2], [2, 1], False),
        ([1], [1.0], False),
        ([1], [True], False),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": 1.0}, False),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": [{"b": 1}]}, {"a": [{"b": 1}]}, True),
        ({"a": [{"b": 1}]}, {"a": [{"b": True}]}, False),
        (Decimal128("1.0"), Decimal128("1.0"), True),
        (dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1), True),
    ],
)
def test_same_is_strict_about_bson_types(old: Any, new: Any, expected: bool) -> None:
    assert same(old, new) is expected
    assert same(new, old) is expected


# ------------------------------------------------------------------- $set


def test_set_and_unset() -> None:
    assert run(set_, 1, 2) == {"$set": {"f": 2}}
    assert run(set_, MISSING, None) == {"$set": {"f": None}}
    assert run(set_, 1, MISSING) == {"$unset": {"f": ""}}


def test_operators_add_to_one_update_document() -> None:
    update: UpdateSpec = {}
    set_(update, "a", 1, 2)
    set_(update, "b", 1, 3)
    inc(update, "c", 1, 2)
    assert update == {"$set": {"a": 2, "b": 3}, "$inc": {"c": 1}}


# ------------------------------------------------------------------- $inc


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (1, 5, {"$inc": {"f": 4}}),
        (5, 2, {"$inc": {"f": -3}}),
        (MISSING, 5, {"$inc": {"f": 5}}),  # an untracked document: add its value
        (1.5, 2.0, {"$inc": {"f": 0.5}}),
        (1, 2.5, {"$inc": {"f": 1.5}}),
        (Decimal128("1.10"), Decimal128("2.35"), {"$inc": {"f": Decimal128("1.25")}}),
        (MISSING, Decimal128("2"), {"$inc": {"f": Decimal128("2")}}),
        (None, 3, {"$set": {"f": 3}}),  # $inc cannot add to null
        (3, None, {"$set": {"f": None}}),
        (3, MISSING, {"$unset": {"f": ""}}),
        (Decimal128("1"), 2.0, {"$set": {"f": 2.0}}),  # Decimal and float do not mix
        (2.0, Decimal128("1"), {"$set": {"f": Decimal128("1")}}),
        (True, 2, {"$set": {"f": 2}}),
    ],
)
def test_inc_sends_the_delta(old: Any, new: Any, expected: UpdateSpec) -> None:
    assert run(inc, old, new) == expected


def test_inc_of_a_large_delta_is_an_int64() -> None:
    update = run(inc, 0, 2**40)
    assert update == {"$inc": {"f": 2**40}}
    assert isinstance(update["$inc"]["f"], Int64)
    small = run(inc, 0, 7)["$inc"]["f"]
    assert type(small) is int


def test_inc_decimal_delta_is_exact() -> None:
    delta = run(inc, Decimal128("0.1"), Decimal128("0.3"))["$inc"]["f"]
    assert delta.to_decimal() == decimal.Decimal("0.2")


# ------------------------------------------------------------- $max / $min


def test_max_and_min_send_the_new_value() -> None:
    assert run(max_, 1, 2) == {"$max": {"f": 2}}
    assert run(max_, 2, 1) == {"$max": {"f": 1}}  # the server keeps the larger
    assert run(min_, 1, 0) == {"$min": {"f": 0}}
    assert run(max_, MISSING, 3) == {"$max": {"f": 3}}


def test_max_and_min_of_null_or_missing_fall_back_to_set() -> None:
    assert run(max_, 1, None) == {"$set": {"f": None}}
    assert run(min_, 1, None) == {"$set": {"f": None}}
    assert run(max_, 1, MISSING) == {"$unset": {"f": ""}}
    # Over a stored null: BSON orders null first, so $min would keep it.
    when = dt.datetime(2024, 1, 1)
    assert run(max_, None, when) == {"$set": {"f": when}}
    assert run(min_, None, 5) == {"$set": {"f": 5}}


def test_inc_sets_where_the_delta_does_not_add_back_up() -> None:
    assert run(inc, 1e20, 1.0) == {"$set": {"f": 1.0}}  # 1e20 + (1.0 - 1e20) == 0.0
    assert run(inc, 0.5, 1.75) == {"$inc": {"f": 1.25}}


# ------------------------------------------------------------------ $push


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ([1], [1, 2, 3], {"$push": {"f": {"$each": [2, 3]}}}),
        ([], ["a"], {"$push": {"f": {"$each": ["a"]}}}),
        (MISSING, [1], {"$push": {"f": {"$each": [1]}}}),
        ([1, 2], [2], {"$set": {"f": [2]}}),  # removal
        ([1, 2], [2, 1], {"$set": {"f": [2, 1]}}),  # reordering
        ([1, 2], [1, 3, 4], {"$set": {"f": [1, 3, 4]}}),  # change of an item
        ([1], [1.0, 2], {"$set": {"f": [1.0, 2]}}),  # 1 -> 1.0 is a change
        (None, [1], {"$set": {"f": [1]}}),
        ([1], None, {"$set": {"f": None}}),
        ([1], MISSING, {"$unset": {"f": ""}}),
    ],
)
def test_push(old: Any, new: Any, expected: UpdateSpec) -> None:
    assert run(push, old, new) == expected


# -------------------------------------------------------------- $addToSet


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ([1], [1, 2], {"$addToSet": {"f": {"$each": [2]}}}),
        # Added before the end: the server appends, so the stored order would not
        # be memory's: the whole list.
        ([1], [2, 1], {"$set": {"f": [2, 1]}}),
        ([1], [1, 2, 2], {"$set": {"f": [1, 2, 2]}}),  # a duplicate: $addToSet keeps one
        (MISSING, ["a"], {"$addToSet": {"f": {"$each": ["a"]}}}),
        ([1, 2], [1], {"$set": {"f": [1]}}),  # removal
        ([1, 2], [3], {"$set": {"f": [3]}}),
        ([1], [1, True], {"$addToSet": {"f": {"$each": [True]}}}),  # True is not 1
        (None, [1], {"$set": {"f": [1]}}),
    ],
)
def test_add_to_set(old: Any, new: Any, expected: UpdateSpec) -> None:
    assert run(add_to_set, old, new) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ([1], [2, 1], {"$addToSet": {"f": {"$each": [2]}}}),  # a set: order means nothing
        ([1, 2], [1], {"$set": {"f": [1]}}),  # removal
    ],
)
def test_add_to_set_of_a_set_field(old: Any, new: Any, expected: UpdateSpec) -> None:
    assert run(add_to_set_unordered, old, new) == expected


# ---------------------------------------------------------- $currentDate


def test_current_date() -> None:
    assert run(current_date, None, dt.datetime(2020, 1, 1)) == {"$currentDate": {"f": True}}
    assert run(current_date, MISSING, None) == {"$currentDate": {"f": True}}


def test_operator_table() -> None:
    assert {
        "$set": set_,
        "$inc": inc,
        "$max": max_,
        "$min": min_,
        "$push": push,
        "$addToSet": add_to_set,
        "$currentDate": current_date,
    } == OPERATORS


def test_missing_is_a_falsy_singleton_distinct_from_none() -> None:
    assert MISSING is not None
    assert not MISSING
    assert repr(MISSING) == "MISSING"
    assert type(MISSING)() is MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING


# --------------------------------------------------------- diff_document


class Stats(Embedded):
    hits: int = field(default=0, on_update="$inc")
    peak: int = field(default=0, on_update="$max")
    notes: list[str] = field(factory=list)


class Page(Document):
    title: str = ""
    views: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    labels: list[str] = field(factory=list, on_update="$addToSet")
    history: list[int] = field(factory=list, on_update="$set")
    stats: Stats = field(factory=Stats)
    touched: dt.datetime | None = field(default=None, on_update="$currentDate")


def diff(
    old: dict[str, Any], new: dict[str, Any], skip: frozenset[str] = frozenset()
) -> UpdateSpec:
    update: UpdateSpec = {}
    diff_document(update, "", old, new, Page._uow_meta.by_key, skip)
    return update


def test_no_change_no_update() -> None:
    page = Page(title="a", tags=["x"]).to_bson()
    assert diff(page, dict(page)) == {}


def test_changed_top_level_fields_are_set() -> None:
    assert diff({"title": "a"}, {"title": "b"}) == {"$set": {"title": "b"}}
    assert diff({"title": "a"}, {"title": None}) == {"$set": {"title": None}}


def test_nested_documents_are_diffed_to_dotted_paths() -> None:
    old = {"stats": {"hits": 1, "peak": 5, "notes": ["a"]}, "meta": {"a": {"b": 1, "c": 2}}}
    new = {"stats": {"hits": 4, "peak": 7, "notes": ["a", "b"]}, "meta": {"a": {"b": 1, "c": 3}}}
    assert diff(old, new) == {
        "$inc": {"stats.hits": 3},  # the embedded field's own operator
        "$max": {"stats.peak": 7},
        "$push": {"stats.notes": {"$each": ["b"]}},
        "$set": {"meta.a.c": 3},
    }


def test_removed_keys_are_unset_at_any_depth() -> None:
    old = {"title": "a", "meta": {"a": 1, "b": {"c": 1, "d": 2}}, "gone": 1}
    new = {"title": "a", "meta": {"a": 1, "b": {"c": 1}}}
    assert diff(old, new) == {"$unset": {"meta.b.d": "", "gone": ""}}


def test_added_keys_are_set() -> None:
    assert diff({"meta": {}}, {"meta": {"x": [1]}}) == {"$set": {"meta.x": [1]}}


def test_appended_lists_are_pushed_at_any_depth() -> None:
    assert diff({"tags": ["a"]}, {"tags": ["a", "b", "c"]}) == {
        "$push": {"tags": {"$each": ["b", "c"]}}
    }
    old = {"meta": {"log": [{"n": 1}]}}
    new = {"meta": {"log": [{"n": 1}, {"n": 2}]}}
    assert diff(old, new) == {"$push": {"meta.log": {"$each": [{"n": 2}]}}}


def test_lists_changed_otherwise_are_set_whole() -> None:
    assert diff({"tags": ["a", "b"]}, {"tags": ["b"]}) == {"$set": {"tags": ["b"]}}
    assert diff({"tags": ["a"]}, {"tags": []}) == {"$set": {"tags": []}}
    assert diff({"tags": [1]}, {"tags": [1.0]}) == {"$set": {"tags": [1.0]}}


def test_declared_operators_are_used_for_their_fields() -> None:
    old = {"views": 1, "labels": ["a"], "history": [1]}
    new = {"views": 3, "labels": ["a", "b"], "history": [1, 2]}
    assert diff(old, new) == {
        "$inc": {"views": 2},
        "$addToSet": {"labels": {"$each": ["b"]}},
        "$set": {"history": [1, 2]},  # $set: always the whole field, never a $push
    }


def test_a_field_with_an_operator_is_not_diffed_inside() -> None:
    # "$set" on a dict-like value means the whole value, not dotted paths.
    class Settings(Document):
        prefs: dict[str, int] = field(factory=dict, on_update="$set")

    update: UpdateSpec = {}
    diff_document(update, "", {"prefs": {"a": 1}}, {"prefs": {"a": 2}}, Settings._uow_meta.by_key)
    assert update == {"$set": {"prefs": {"a": 2}}}


def test_type_changes_are_changes() -> None:
    assert diff({"meta": {"n": 1}}, {"meta": {"n": 1.0}}) == {"$set": {"meta.n": 1.0}}
    assert diff({"meta": {"n": 1}}, {"meta": {"n": True}}) == {"$set": {"meta.n": True}}
    assert diff({"meta": {"n": {"a": 1}}}, {"meta": {"n": [1]}}) == {"$set": {"meta.n": [1]}}


def test_skipped_keys_are_left_to_the_caller() -> None:
    old = {"touched": None, "title": "a"}
    new = {"touched": dt.datetime(2020, 1, 1), "title": "b"}
    assert diff(old, new, frozenset({"touched"})) == {"$set": {"title": "b"}}
    assert diff({"touched": 1}, {}, frozenset({"touched"})) == {}


def test_unknown_keys_take_the_default_operator() -> None:
    old = {"_legacy": {"a": 1}}
    new = {"_legacy": {"a": 2}}
    assert diff(old, new) == {"$set": {"_legacy.a": 2}}


def test_prefix() -> None:
    update: UpdateSpec = {}
    diff_document(update, "outer.", {"a": 1}, {"a": 2}, None)
    assert update == {"$set": {"outer.a": 2}}


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
def test_inc_of_floats_stores_exactly_the_new_value(old: float, new: float) -> None:
    """What the server computes from what is stored (``old``) is memory's value."""
    update = run(inc, old, new)
    stored = update["$set"]["f"] if "$set" in update else old + update["$inc"]["f"]
    assert stored == new


def test_the_operators_a_type_checker_accepts_for_on_update_are_those_uow_has() -> None:
    from typing import get_args

    from uow.fields import UpdateOperator

    assert sorted(get_args(UpdateOperator)) == sorted(OPERATORS)
