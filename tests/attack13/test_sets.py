"""``set[T]`` fields. SPEC: "set[T] (stored as array)"; "in-place mutation of
lists, sets, dicts and embedded documents is found without any help from the
user"; "after a flush, the stored document equals what the session holds";
"Stored values of another type than declared (legacy data) load as they are and
never block a flush: a flush validates what this session changed, not what it
merely loaded"; ``clear_cache()`` "forget clean documents"."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson import ObjectId

import uow
from uow import Session

from ._h import Addr, Line, Tagged, stored

FIELDS = ("tags", "nums", "floats", "oids", "days")


def as_stored(value: Any) -> Any:
    """A held set as the sorted array it should be stored as (dates as datetimes)."""
    out = []
    for v in value:
        if type(v) is datetime.date:
            out.append(datetime.datetime(v.year, v.month, v.day))
        else:
            out.append(v)
    return sorted(out)


def make(s: Session, **kw: Any) -> Tagged:
    o = Tagged(
        tags={"c", "a", "b"},
        nums={10, 9, 100, -1},
        floats={1.5, -2.0},
        oids={ObjectId(), ObjectId()},
        days={datetime.date(2020, 1, 2), datetime.date(2019, 5, 6)},
        addr=Addr(city="x", tags={"n", "m"}),
        lines=[Line(sku="a", tags={"k", "j"}), Line(sku="b")],
        **kw,
    )
    s.add(o)
    return o


def assert_sets_stored(db: Any, o: Tagged) -> None:
    got = stored(db, o)
    for name in FIELDS:
        assert got[name] == as_stored(getattr(o, name)), name
    assert o.addr is not None
    assert got["addr"]["tags"] == sorted(o.addr.tags)
    assert [ln["tags"] for ln in got["lines"]] == [sorted(ln.tags) for ln in o.lines]


def assert_same_as_sets(db: Any, o: Tagged) -> None:
    """The weaker form: same items, no duplicates, whatever the order."""
    got = stored(db, o)
    for name in ("tags", "nums"):
        assert len(got[name]) == len(set(got[name])), (name, got[name])
        assert set(got[name]) == getattr(o, name), name
    assert o.addr is not None
    assert set(got["addr"]["tags"]) == o.addr.tags
    assert [set(ln["tags"]) for ln in got["lines"]] == [ln.tags for ln in o.lines]


def test_insert_stores_sorted_arrays(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    assert_sets_stored(db, o)


def test_equal_sets_built_differently_store_equal_arrays(db: Any) -> None:
    # {1, 9} and {9, 1} iterate in different orders (hash collision in 8 slots).
    one, two = {1, 9}, {9, 1}
    assert list(one) != list(two) and one == two
    s = Session(db)
    a = Tagged(nums=one, tags={"x", "y"})
    b = Tagged(nums=two, tags={"y", "x"})
    s.add_all([a, b])
    s.commit()
    assert stored(db, a)["nums"] == stored(db, b)["nums"] == [1, 9]
    assert stored(db, a)["tags"] == stored(db, b)["tags"] == ["x", "y"]


def test_equal_sets_reached_by_adding_store_the_same_items(db: Any) -> None:
    """docs/documents.md: an addition is ``$addToSet`` (two sessions adding the same
    item store it once); the stored array keeps its order, the items added after."""
    s = Session(db)
    a = Tagged(tags={"a", "b", "c"}, nums={1, 2, 3})
    b = Tagged(tags={"c", "b"}, nums={3, 2})
    s.add_all([a, b])
    s.commit()
    b.tags.add("a")
    b.nums.add(1)
    s.commit()
    assert a.tags == b.tags and a.nums == b.nums
    assert stored(db, a)["tags"] == ["a", "b", "c"] and stored(db, a)["nums"] == [1, 2, 3]
    assert stored(db, b)["tags"] == ["b", "c", "a"] and stored(db, b)["nums"] == [2, 3, 1]


def test_added_items_are_stored_once_at_every_depth(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.tags.add("0")
    o.nums.add(50)
    assert o.addr is not None
    o.addr.tags.add("a")
    o.lines[0].tags.add("a")
    s.commit()
    assert_same_as_sets(db, o)
    o.tags.add("0")  # already there: no change
    assert not s.has_changes()


def test_add_and_remove_items_stored_as_sets(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.tags.add("0")
    o.tags.add("zz")
    o.nums.add(50)
    o.nums.discard(9)
    assert o.addr is not None
    o.addr.tags.add("a")
    o.lines[0].tags.add("a")
    o.lines[1].tags.add("q")
    s.commit()
    assert_same_as_sets(db, o)
    assert not s.has_changes()


def test_remove_items_stores_sorted(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.tags.discard("b")
    o.nums.remove(10)
    o.floats.clear()
    o.oids.pop()
    o.days.discard(datetime.date(2019, 5, 6))
    assert o.addr is not None
    o.addr.tags.discard("m")
    o.lines[0].tags.discard("j")
    s.commit()
    assert_sets_stored(db, o)
    assert stored(db, o)["floats"] == []


def test_replace_then_remove_stores_sorted(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.nums = {7, 15, 1, 9}  # whole new value: $set
    o.tags -= {"a"}
    o.tags |= {"d", "0"}
    s.commit()
    assert stored(db, o)["nums"] == [1, 7, 9, 15]
    assert set(stored(db, o)["tags"]) == {"0", "b", "c", "d"}


def test_equal_set_in_other_order_is_not_a_change(db: Any) -> None:
    s = Session(db)
    o = Tagged(nums={1, 9})
    s.add(o)
    s.commit()
    o.nums = {9, 1}
    assert not s.is_dirty(o) and not s.has_changes()
    assert s.flush().updated == 0


def test_dirty_fields_has_changes_what_changed(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.tags.add("d")
    assert s.is_dirty(o) and s.has_changes()
    assert s.dirty_fields(o) == ["tags"]
    changed = s.what_changed()[("a13_tagged", o.id)]
    assert list(changed) == ["tags"]
    old, new = changed["tags"]
    assert set(old) == {"a", "b", "c"} and set(new) == {"a", "b", "c", "d"}
    assert s.original_value(o, "tags") == {"a", "b", "c"}
    o.tags.discard("d")
    assert not s.is_dirty(o) and not s.has_changes()
    assert s.dirty_fields(o) == [] and s.what_changed() == {}
    assert o.addr is not None
    o.addr.tags.add("z")
    assert s.dirty_fields(o) == ["addr"]
    assert list(s.what_changed()[("a13_tagged", o.id)]) == ["addr.tags"]
    o.lines[1].tags.add("z")
    assert s.dirty_fields(o) == ["addr", "lines"]
    assert sorted(s.what_changed()[("a13_tagged", o.id)]) == ["addr.tags", "lines.1.tags"]


def test_rollback_unflushed_set_changes(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    before = stored(db, o)
    o.tags.add("d")
    o.nums.clear()
    assert o.addr is not None
    o.addr.tags.add("q")
    o.lines[0].tags = set()
    s.rollback()
    assert o.tags == {"a", "b", "c"} and o.nums == {10, 9, 100, -1}
    assert o.addr.tags == {"n", "m"} and o.lines[0].tags == {"k", "j"}
    assert not s.has_changes()
    s.commit()
    assert stored(db, o) == before
    # The restored sets are still tracked in place.
    o.tags.discard("a")
    s.commit()
    assert stored(db, o)["tags"] == ["b", "c"]


def test_rollback_flushed_set_changes(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.tags.discard("a")
    o.nums.add(1)
    s.flush()
    s.rollback()
    got = stored(db, o)
    assert set(got["tags"]) == o.tags and set(got["nums"]) == o.nums
    assert not s.has_changes()
    o.tags.add("x")
    s.commit()
    assert set(stored(db, o)["tags"]) == o.tags


def test_clear_cache_forgets_clean_documents_with_sets(db: Any) -> None:
    db.a13_tagged.insert_many(
        [
            {"_id": ObjectId(), "name": "unsorted", "tags": ["c", "a", "b"], "nums": [3, 1]},
            {"_id": ObjectId(), "name": "dups", "tags": ["b", "a", "a"], "nums": [2, 2]},
            {"_id": ObjectId(), "name": "mixed", "nums": [3, "x", 1.5]},
            {"_id": ObjectId(), "name": "embedded", "addr": {"city": "c", "tags": ["z", "a"]}},
            {"_id": ObjectId(), "name": "dirty", "tags": ["b", "a"]},
            {"_id": ObjectId(), "name": "reverted", "lines": [{"tags": ["y", "x", "x"]}]},
        ]
    )
    before = {d["_id"]: d for d in db.a13_tagged.find()}
    s = Session(db)
    objs = {o.name: o for o in s.query(Tagged)}
    assert objs["unsorted"].tags == {"a", "b", "c"}
    assert objs["dups"].tags == {"a", "b"} and objs["dups"].nums == {2}
    assert objs["mixed"].nums == {3, "x", 1.5}
    assert not s.has_changes()
    objs["dirty"].tags.add("c")
    objs["reverted"].lines[0].tags.add("z")
    objs["reverted"].lines[0].tags.discard("z")
    objs["unsorted"].tags = {"b", "c", "a"}
    assert s.dirty_fields(objs["reverted"]) == [] and s.dirty_fields(objs["unsorted"]) == []
    s.clear_cache()
    for name in ("unsorted", "dups", "mixed", "embedded", "reverted"):
        assert s.state(objs[name]) is uow.ObjectState.DETACHED, name
    assert s.state(objs["dirty"]) is uow.ObjectState.PERSISTENT
    assert s.stats().identity_map_size == 1
    s.commit()
    after = {d["_id"]: d for d in db.a13_tagged.find()}
    dirty_id = objs["dirty"].id
    assert set(after.pop(dirty_id)["tags"]) == {"a", "b", "c"}
    before.pop(dirty_id)
    assert after == before  # the legacy arrays were never rewritten


def test_legacy_arrays_load_clean_and_other_changes_flush(db: Any) -> None:
    oid = ObjectId()
    raw = {"_id": oid, "name": "n", "tags": ["b", "a", "a"], "nums": [3, "x", 1]}
    db.a13_tagged.insert_one(raw)
    s = Session(db)
    o = s.get(Tagged, oid)
    assert o is not None
    assert o.tags == {"a", "b"} and o.nums == {1, 3, "x"}
    assert not s.is_dirty(o)
    o.name = "m"
    s.commit()
    assert stored(db, o) == dict(raw, name="m")


def test_legacy_mixed_set_remove_legacy_item(db: Any) -> None:
    oid = ObjectId()
    db.a13_tagged.insert_one({"_id": oid, "nums": [3, "x", 1]})
    s = Session(db)
    o = s.get(Tagged, oid)
    assert o is not None
    o.nums.discard("x")
    s.commit()
    assert stored(db, o)["nums"] == [1, 3]


def test_legacy_mixed_set_remove_valid_item(db: Any) -> None:
    oid = ObjectId()
    db.a13_tagged.insert_one({"_id": oid, "nums": [3, "x", 1]})
    s = Session(db)
    o = s.get(Tagged, oid)
    assert o is not None
    o.nums.discard(3)
    s.commit()
    assert sorted(stored(db, o)["nums"], key=str) == [1, "x"]


def test_legacy_mixed_set_add_item(db: Any) -> None:
    oid = ObjectId()
    db.a13_tagged.insert_one({"_id": oid, "nums": [3, "x", 1]})
    s = Session(db)
    o = s.get(Tagged, oid)
    assert o is not None
    o.nums.add(7)
    s.commit()
    got = stored(db, o)["nums"]
    assert len(got) == 4 and set(got) == {1, 3, 7, "x"}


def test_legacy_duplicates_then_add(db: Any) -> None:
    """An addition is ``$addToSet`` of the item: a legacy array's duplicates stay
    as stored until the field is written whole (the items are the set's)."""
    oid = ObjectId()
    db.a13_tagged.insert_one({"_id": oid, "tags": ["b", "a", "a"]})
    s = Session(db)
    o = s.get(Tagged, oid)
    assert o is not None
    o.tags.add("d")
    s.commit()
    assert stored(db, o)["tags"] == ["b", "a", "a", "d"]
    assert set(stored(db, o)["tags"]) == o.tags == {"a", "b", "d"}


def test_legacy_duplicates_then_remove(db: Any) -> None:
    oid = ObjectId()
    db.a13_tagged.insert_one({"_id": oid, "tags": ["b", "a", "a", "c"]})
    s = Session(db)
    o = s.get(Tagged, oid)
    assert o is not None
    o.tags.discard("b")
    s.commit()
    assert stored(db, o)["tags"] == ["a", "c"]


def test_wrong_item_added_in_place_refused_then_recoverable(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.tags.add(5)  # type: ignore[arg-type]
    o.name = "n"
    with pytest.raises(uow.ValidationError) as info:
        s.flush()
    assert "Tagged" in str(info.value) and "tags" in str(info.value)
    o.tags.discard(5)  # type: ignore[arg-type]
    s.commit()
    got = stored(db, o)
    assert got["name"] == "n" and got["tags"] == ["a", "b", "c"]


def test_wrong_set_assignment_refused(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    with pytest.raises(uow.ValidationError):
        o.tags = {1, 2}  # type: ignore[assignment]
    assert o.tags == {"a", "b", "c"}
    assert not s.has_changes()


def test_set_in_new_list_element_and_new_embedded(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    o.lines.append(Line(sku="c", tags={"z", "b", "m"}))
    o.addr = Addr(city="new", tags={"q", "c"})
    s.commit()
    got = stored(db, o)
    assert got["lines"][2]["tags"] == ["b", "m", "z"]
    assert got["addr"]["tags"] == ["c", "q"]


def test_partial_load_of_set_then_add(db: Any) -> None:
    s = Session(db)
    o = make(s)
    s.commit()
    s.close()
    s = Session(db)
    p = s.query(Tagged).fields("name").one()
    with pytest.raises(uow.FieldNotLoaded):
        p.tags
    p.tags = {"only"}
    s.commit()
    got = stored(db, o)
    assert got["tags"] == ["only"] and got["nums"] == [-1, 9, 10, 100]
