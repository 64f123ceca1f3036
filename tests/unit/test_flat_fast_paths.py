"""The fast paths of loading and diffing a document, held against the general ones.

* The generated loader sets the fields stored as given (immutable declared
  types) straight from one ``itemgetter`` when the stored document has them all
  with immutable values; otherwise it takes each field on its own. Loading with
  an empty ``absent`` takes the per-field path, so both can be compared on any
  stored document.
* A flush builds the new snapshot and the update of a document whose assigned
  fields are known with ``snapshot_and_update`` (only the fields that can differ
  dumped), which must equal the whole dump ``snapshot_of(meta, obj._uow_to_bson())``
  and its diff; where it leaves the snapshot to be made (an update of ``$set``
  values only), ``updated_snapshot`` makes the same.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Int64, ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from uow import Document, Embedded, FieldNotLoaded, ValidationError, field
from uow._diff import snapshot_and_update, snapshot_of, update_for, updated_snapshot
from uow._types import DEFAULT_LOAD_CONTEXT
from uow.document import _mutated_partial
from uow.operators import same


class Address(Embedded):
    city: str
    zip: str = ""


class Flat(Document):
    __collection__ = "flat_fast"
    name: str
    email: str
    age: int
    score: float = 0.0
    nickname: str | None = None
    tags: list[str] = field(factory=list)
    created: dt.datetime = field(factory=lambda: dt.datetime(2024, 1, 1))
    address: Address | None = None


CREATED = dt.datetime(2024, 5, 1, 12, 30, 15, 250000)
STORED: dict[str, Any] = {
    "_id": ObjectId("65f0c0ffee0000000000abcd"),
    "name": "ada",
    "email": "ada@example.com",
    "age": 36,
    "score": 2.0,
    "nickname": None,
    "tags": ["a", "b"],
    "created": CREATED,
    "address": {"city": "Paris", "zip": "75001"},
}


def _slow(raw: dict[str, Any]) -> Flat:
    """The per-field path: a partial load leaving nothing out."""
    obj: Flat = Flat._uow_load(raw, DEFAULT_LOAD_CONTEXT, frozenset())
    return obj


def _fields(obj: Flat) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Flat._uow_meta.by_name:
        try:
            values[name] = getattr(obj, name)
        except FieldNotLoaded:
            values[name] = "<not loaded>"
    return values


def test_a_complete_stored_document_loads_the_same_on_both_paths() -> None:
    fast = Flat.from_bson(STORED)
    assert _fields(fast) == _fields(_slow(STORED))
    assert fast.to_bson() == STORED
    assert fast._uow_extra is None
    assert fast.tags is not STORED["tags"]  # the stored list stays the snapshot's


def test_a_plain_field_holding_a_list_is_copied_not_shared() -> None:
    raw = {**STORED, "name": ["not", "a", "string"]}
    obj = Flat.from_bson(raw)
    loaded: Any = obj.name
    assert loaded == ["not", "a", "string"]
    assert loaded is not raw["name"]  # stored data of another shape, kept, never shared
    loaded.append("x")
    assert raw["name"] == ["not", "a", "string"]


def test_unknown_keys_and_a_cls_are_kept_when_every_field_is_there() -> None:
    raw = {**STORED, "legacy": {"k": 1}}
    obj = Flat.from_bson(raw)
    assert obj._uow_extra == {"legacy": {"k": 1}}
    assert obj.to_bson() == raw
    # As many keys as fields, one of them unknown: a field is missing instead.
    swapped = {k: v for k, v in raw.items() if k != "score"}
    obj = Flat.from_bson(swapped)
    assert obj.score == 0.0
    assert obj._uow_extra == {"legacy": {"k": 1}}


def test_a_missing_required_field_is_not_loaded_and_a_default_fills_an_optional_one() -> None:
    raw = {k: v for k, v in STORED.items() if k not in ("email", "score")}
    obj = Flat.from_bson(raw)
    assert obj.score == 0.0
    with pytest.raises(FieldNotLoaded):
        _ = obj.email
    assert _fields(obj) == _fields(_slow(raw))


_PLAIN = ["name", "email", "age", "score", "nickname"]
_VALUES = st.one_of(
    st.text(max_size=5),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    drop=st.sets(st.sampled_from(sorted(k for k in STORED if k != "_id"))),
    replace=st.dictionaries(st.sampled_from(_PLAIN), _VALUES),
    extra=st.dictionaries(st.sampled_from(["legacy", "other", "_cls"]), _VALUES, max_size=2),
)
def test_any_stored_document_loads_the_same_on_both_paths(
    drop: set[str], replace: dict[str, Any], extra: dict[str, Any]
) -> None:
    raw = {**STORED, **replace, **extra}
    for key in drop:
        raw.pop(key, None)
    if "_cls" in raw and not isinstance(raw["_cls"], str):
        raw.pop("_cls")  # a _cls is a class name (a str), as uow writes it
    fast = Flat.from_bson(raw)
    slow = _slow(raw)
    assert _fields(fast) == _fields(slow)
    assert fast._uow_extra == slow._uow_extra
    assert fast.to_bson() == slow.to_bson()
    for name, value in _fields(fast).items():
        if isinstance(value, (list, dict)):
            assert all(value is not stored for stored in raw.values()), name


# ------------------------------------------------------- snapshot_and_update

_CHANGES = st.lists(
    st.sampled_from(
        [
            ("assign", "age", 37),
            ("assign", "name", "grace"),
            ("assign", "name", "ada"),  # the same value again: assigned, not changed
            ("assign", "score", 2),  # an int where a float was: a change to BSON
            ("assign", "nickname", "a"),
            ("assign", "tags", ["z"]),
            ("assign", "created", CREATED + dt.timedelta(seconds=1)),
            ("assign", "address", None),
            ("append", "tags", "c"),
            ("clear", "tags", None),
            ("city", "address", "Lyon"),
        ]
    ),
    max_size=4,
)


def _apply(obj: Flat, changes: list[tuple[str, str, Any]]) -> int:
    """Make the changes; returns the mask of the fields assigned to."""
    assigned = 0
    for action, name, value in changes:
        if action == "assign":
            setattr(obj, name, value)
            assigned |= Flat._uow_meta.by_name[name].bit
        elif action == "append":
            obj.tags.append(value)
        elif action == "clear":
            obj.tags.clear()
        elif obj.address is not None:
            obj.address.city = value
    return assigned


@settings(max_examples=300, deadline=None)
@given(changes=_CHANGES)
def test_snapshot_and_update_equal_a_whole_dump_and_its_diff(
    changes: list[tuple[str, str, Any]],
) -> None:
    meta = Flat._uow_meta
    old = dict(STORED)
    obj = Flat.from_bson(old)
    before_tags = old["tags"]
    assigned = _apply(obj, changes)
    obj._uow_check_deep(meta.name, "")
    keys = meta.keys_to_compare(assigned)
    found, update = snapshot_and_update(meta, obj, old, keys)
    whole = snapshot_of(meta, obj._uow_to_bson())
    assert update == update_for(meta, old, whole)
    new = updated_snapshot(old, update) if found is None else found
    assert same(new, whole)
    if found is None:  # left to be made: the update is $set values of top-level keys
        assert set(update) <= {"$set"}
        assert all("." not in path for path in update.get("$set", {}))
    # The old snapshot is never changed; an unchanged list is shared with it, a
    # changed one shares nothing with the live document.
    assert old == STORED and old["tags"] is before_tags
    if obj.tags == before_tags:
        assert new["tags"] is before_tags
    else:
        assert new["tags"] is not obj.tags


@settings(max_examples=300, deadline=None)
@given(changes=_CHANGES)
def test_the_generated_plain_sets_are_the_diff_of_plain_assignments(
    changes: list[tuple[str, str, Any]],
) -> None:
    meta = Flat._uow_meta
    old = dict(STORED)
    obj = Flat.from_bson(old)
    before_tags, before_address = old["tags"], old.get("address")
    assigned = _apply(obj, changes)
    sets = obj._uow_plain_sets(old, assigned)
    whole = snapshot_of(meta, obj._uow_to_bson())
    plain_only = not assigned & ~sum(meta.by_key[k].bit for k in meta.set_keys)
    in_place = obj._uow_mutated(old)
    # It answers exactly when the only changes are assignments of plain fields ...
    assert (sets is not None) == (plain_only and not in_place)
    if sets is not None:
        # ... and then gives the update the whole diff gives.
        assert ({"$set": sets} if sets else {}) == update_for(meta, old, whole)
        assert same(updated_snapshot(old, {"$set": sets}), whole)
    assert old == STORED and old["tags"] is before_tags and old.get("address") is before_address


# What a legacy or foreign writer may have stored where the class now says int or
# str: the generated code compares two values of exactly the field's type with ==
# and everything else as BSON does (1, 1.0, True and Int64(1) are not all alike).
_STORED_SCALARS = st.one_of(
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-3, max_value=3).map(Int64),
    st.sampled_from([1.0, 0.0, -0.0, 2.5]),
    st.booleans(),
    st.sampled_from(["", "1", "ada", "grace"]),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(
    stored_age=_STORED_SCALARS,
    stored_name=_STORED_SCALARS,
    age=st.integers(min_value=-3, max_value=3),
    name=st.sampled_from(["", "1", "ada", "grace"]),
)
def test_the_generated_plain_sets_compare_an_int_or_str_field_as_bson_does(
    stored_age: Any, stored_name: Any, age: int, name: str
) -> None:
    meta = Flat._uow_meta
    old = {**STORED, "age": stored_age, "name": stored_name}
    obj = Flat.from_bson(old)
    obj.age = age
    obj.name = name
    assigned = meta.by_name["age"].bit | meta.by_name["name"].bit
    sets = obj._uow_plain_sets(old, assigned)
    assert sets is not None
    expected = update_for(meta, old, snapshot_of(meta, obj._uow_to_bson()))
    assert ({"$set": sets} if sets else {}) == expected
    for key, value in sets.items():
        assert type(value) is type(expected["$set"][key])


def test_the_generated_plain_sets_leave_a_partly_loaded_document_to_the_diff() -> None:
    raw = {k: v for k, v in STORED.items() if k in ("_id", "name", "tags")}
    obj = Flat._uow_load(raw, DEFAULT_LOAD_CONTEXT, frozenset({"email", "age", "address"}))
    obj.name = "grace"
    assert obj._uow_plain_sets(raw, Flat._uow_meta.by_name["name"].bit) is None


def test_snapshot_and_update_leave_out_a_field_a_partial_load_left_out() -> None:
    meta = Flat._uow_meta
    raw = {k: v for k, v in STORED.items() if k in ("_id", "name", "tags")}
    obj = Flat._uow_load(raw, DEFAULT_LOAD_CONTEXT, frozenset({"email", "age", "address"}))
    obj.name = "grace"
    keys = meta.keys_to_compare(meta.by_name["name"].bit)
    found, update = snapshot_and_update(meta, obj, raw, keys)
    assert found is None and update == {"$set": {"name": "grace"}}
    new = updated_snapshot(raw, update)
    assert new == {**raw, "name": "grace"}
    assert "address" not in new


# ------------------------------------------------------------- _uow_mutated


@settings(max_examples=300, deadline=None)
@given(changes=_CHANGES)
def test_the_generated_in_place_check_agrees_with_a_whole_comparison(
    changes: list[tuple[str, str, Any]],
) -> None:
    meta = Flat._uow_meta
    obj = Flat.from_bson(STORED)
    _apply(obj, changes)
    dumped = obj._uow_to_bson()
    expected = any(not same(STORED.get(f.key), dumped.get(f.key)) for f in meta.mutable_fields)
    assert obj._uow_mutated(STORED) is expected
    assert _mutated_partial(obj, STORED) is expected


@pytest.mark.parametrize(
    ("stored", "live", "changed"),
    [
        (["a", "b"], ["a", "b"], False),
        (["a", "b"], ["a", "b", "c"], True),
        ([1, 2], [1, 2], False),  # stored data of another shape, unchanged
        ([1, 2], [1.0, 2], True),  # == but another BSON type
        ([1, 2], [True, 2], True),
        ("not a list", "not a list", False),
    ],
)
def test_the_in_place_check_of_a_list_field_is_strict_about_bson_types(
    stored: Any, live: Any, changed: bool
) -> None:
    raw = {**STORED, "tags": stored}
    obj = Flat.from_bson(raw)
    object.__setattr__(obj, "tags", live)  # as an in-place change would leave it
    assert obj._uow_mutated(raw) is changed


def test_a_partly_loaded_document_checks_only_what_it_loaded() -> None:
    raw = {k: v for k, v in STORED.items() if k in ("_id", "name", "tags")}
    obj = Flat._uow_load(raw, DEFAULT_LOAD_CONTEXT, frozenset({"address"}))
    assert obj._uow_mutated(raw) is False
    obj.tags.append("c")
    assert obj._uow_mutated(raw) is True


# ------------------------------------------------------------- _uow_snapshot


@settings(max_examples=300, deadline=None)
@given(changes=_CHANGES)
def test_the_generated_snapshot_is_the_whole_dump_sharing_nothing(
    changes: list[tuple[str, str, Any]],
) -> None:
    obj = Flat.from_bson({**STORED, "legacy": [1]})
    _apply(obj, changes)
    taken = obj._uow_snapshot()
    assert same(taken, snapshot_of(Flat._uow_meta, obj._uow_to_bson()))
    assert list(taken) == list(obj._uow_to_bson())  # the same key order
    assert taken["tags"] == obj.tags and taken["tags"] is not obj.tags


@pytest.mark.parametrize("tags", [["a", 1], ("a",), ["a", type("S", (str,), {})("b")]])
def test_the_generated_snapshot_of_a_list_of_other_values_copies_it_as_its_spec_does(
    tags: Any,
) -> None:
    obj = Flat.from_bson(STORED)
    object.__setattr__(obj, "tags", tags)  # as stored data of another shape would load
    taken = obj._uow_snapshot()
    assert same(taken, snapshot_of(Flat._uow_meta, obj._uow_to_bson()))
    assert taken["tags"] == tags
    assert taken["tags"] is not tags or isinstance(tags, tuple)


def test_the_generated_snapshot_of_a_partly_loaded_document_leaves_out_what_it_did_not_load() -> (
    None
):
    raw = {k: v for k, v in STORED.items() if k in ("_id", "name", "tags")}
    obj = Flat._uow_load(raw, DEFAULT_LOAD_CONTEXT, frozenset({"email", "age", "address"}))
    taken = obj._uow_snapshot()
    assert taken == snapshot_of(Flat._uow_meta, obj._uow_to_bson())
    assert "email" not in taken and taken["tags"] is not obj.tags


@settings(max_examples=300, deadline=None)
@given(changes=_CHANGES)
def test_the_generated_insert_form_is_the_check_then_the_snapshot(
    changes: list[tuple[str, str, Any]],
) -> None:
    obj = Flat.from_bson({**STORED, "legacy": [1]})
    _apply(obj, changes)
    formed = obj._uow_insert_form()
    assert formed == obj._uow_snapshot() and list(formed) == list(obj._uow_snapshot())
    assert formed["tags"] is not obj.tags


@pytest.mark.parametrize(
    ("tags", "valid"),
    [(["a"], True), (["a", 1], False), (("a",), False), (["a", type("S", (str,), {})("b")], True)],
)
def test_the_generated_insert_form_checks_as_the_flush_check_does(tags: Any, valid: bool) -> None:
    obj = Flat(name="a", email="e", age=1)
    object.__setattr__(obj, "tags", tags)  # changed in place behind the check
    if valid:
        formed = obj._uow_insert_form()
        assert formed == obj._uow_snapshot() and formed["tags"] is not tags
    else:
        with pytest.raises(ValidationError, match="tags"):
            obj._uow_insert_form()


# ------------------------------------------- a list of scalars, checked in one pass


@pytest.mark.parametrize(
    ("tags", "valid"),
    [
        ([], True),
        (["a", "b"], True),
        (["a", 1], False),
        (["a", None], False),
        (("a",), False),
        (["a", type("S", (str,), {})("b")], True),  # a str subclass: the full check's
    ],
)
def test_init_and_the_flush_check_take_a_list_as_its_spec_does(tags: Any, valid: bool) -> None:
    if valid:
        obj = Flat(name="a", email="e", age=1, tags=tags)
        obj._uow_check_deep("Flat", "")
    else:
        with pytest.raises(ValidationError):
            Flat(name="a", email="e", age=1, tags=tags)
        obj = Flat(name="a", email="e", age=1)
        object.__setattr__(obj, "tags", tags)  # changed in place behind the check
        with pytest.raises(ValidationError):
            obj._uow_check_deep("Flat", "")


def test_a_list_of_ints_still_checks_the_int64_range() -> None:
    class Counts(Document):
        __collection__ = "flat_fast_counts"
        values: list[int] = field(factory=list)

    Counts(values=[1, 2])
    with pytest.raises(ValidationError):
        Counts(values=[1, 2**63])
    with pytest.raises(ValidationError):
        Counts(values=[True])
