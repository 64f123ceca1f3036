"""Partial documents: ``query().fields(...)`` and stored documents with keys
missing. SPEC: "reading one raises uow.FieldNotLoaded, an AttributeError";
"A field not loaded (fields(...)) that is assigned is written with $set of the
assigned value, whatever its on_update"; "saving one never clears the fields
not loaded"; "clone() of a partial document raises FieldNotLoaded naming the
fields not loaded"; "refresh(obj) reads the server's values"."""

from __future__ import annotations

import copy
import datetime
import pickle
from typing import Any

import pytest
from bson import ObjectId

import uow
from tests._blackbox import assert_recent
from uow import Session

from ._h import Addr, Animal, Dog, Line, Person, WithGetattr, WithProps, stored

NOT_LOADED = ("age", "visits", "best", "seen", "log", "tags", "addr", "lines")


def seed_person(db: Any) -> ObjectId:
    oid = ObjectId()
    db.a13_person.insert_one(
        {
            "_id": oid,
            "name": "ann",
            "age": 30,
            "visits": 7,
            "best": 50,
            "seen": datetime.datetime(2020, 1, 2, 3, 4, 5),
            "log": ["a", "b"],
            "tags": ["x", "y"],
            "addr": {"city": "Oslo", "zip": "0150", "tags": ["h"]},
            "lines": [{"sku": "s1", "qty": 2, "tags": ["t"]}],
            "extra": {"keep": 1},
        }
    )
    return oid


def partial(db: Any, *names: Any) -> tuple[Session, Person]:
    seed_person(db)
    s = Session(db)
    return s, s.query(Person).fields(*names).one()


# ------------------------------------------------------------ reading


def test_not_loaded_raises_field_not_loaded_with_message(db: Any) -> None:
    _s, p = partial(db, "name")
    assert p.name == "ann"
    for name in NOT_LOADED:
        with pytest.raises(uow.FieldNotLoaded) as info:
            getattr(p, name)
        assert isinstance(info.value, AttributeError)
        assert isinstance(info.value, uow.UowError)
        msg = str(info.value)
        assert f"Person.{name}" in msg or (name in msg and "Person" in msg), msg
        assert "refresh" in msg, msg


def test_undeclared_name_is_plain_attribute_error(db: Any) -> None:
    _s, p = partial(db, "name")
    with pytest.raises(AttributeError) as info:
        p.nosuch
    assert not isinstance(info.value, uow.FieldNotLoaded)
    assert "nosuch" in str(info.value)
    # The unknown stored key "extra" is not an attribute either.
    with pytest.raises(AttributeError) as info2:
        p.extra
    assert not isinstance(info2.value, uow.FieldNotLoaded)


def test_undeclared_name_on_full_document_is_plain_attribute_error(db: Any) -> None:
    seed_person(db)
    s = Session(db)
    p = s.query(Person).one()
    with pytest.raises(AttributeError) as info:
        p.nosuch
    assert not isinstance(info.value, uow.FieldNotLoaded)


def test_hasattr_and_getattr_default(db: Any) -> None:
    _s, p = partial(db, "name", "age")
    assert hasattr(p, "name") and hasattr(p, "age") and hasattr(p, "id")
    assert not hasattr(p, "visits")
    assert getattr(p, "visits", "dflt") == "dflt"
    assert getattr(p, "age", "dflt") == 30
    assert getattr(p, "nosuch", None) is None


def test_type_and_isinstance_of_partial(db: Any) -> None:
    _s, p = partial(db, "name")
    assert type(p) is Person
    assert isinstance(p, uow.Document)
    assert p.__class__ is Person


def test_repr_of_partial_names_loaded_and_not_loaded(db: Any) -> None:
    _s, p = partial(db, "name", "age")
    r = repr(p)
    assert r.startswith("Person(")
    assert "'ann'" in r and "age=30" in r
    assert "visits=" in r and "7" not in r.split("visits=")[1].split(",")[0]
    assert str(p.id) in r


def test_query_field_in_fields_and_id_always_loads(db: Any) -> None:
    _s, p = partial(db, Person.age)
    assert p.age == 30
    assert isinstance(p.id, ObjectId)
    with pytest.raises(uow.FieldNotLoaded):
        p.name


def test_stored_key_missing_without_default_raises(db: Any) -> None:
    oid = ObjectId()
    db.a13_person.insert_one({"_id": oid, "age": 4})
    s = Session(db)
    p = s.get(Person, oid)
    assert p is not None
    with pytest.raises(uow.FieldNotLoaded) as info:
        p.name
    assert "name" in str(info.value)
    assert p.age == 4
    assert p.visits == 0 and p.tags == set() and p.addr is None
    assert not s.is_dirty(p)
    p.age = 5
    s.commit()
    got = stored(db, p)
    assert_recent(got.pop("seen"))  # $currentDate: set by every update
    assert got == {"_id": oid, "age": 5}


def test_stored_key_missing_with_default_is_not_a_change(db: Any) -> None:
    oid = ObjectId()
    db.a13_person.insert_one({"_id": oid, "name": "bob"})
    s = Session(db)
    p = s.get(Person, oid)
    assert p is not None
    assert (p.age, p.visits, p.log, p.tags, p.lines) == (0, 0, [], set(), [])
    assert not s.is_dirty(p) and not s.has_changes()
    s.commit()
    assert stored(db, p) == {"_id": oid, "name": "bob"}
    p.visits += 2
    p.tags.add("n")
    p.log.append("l")
    s.commit()
    got = stored(db, p)
    assert_recent(got.pop("seen"))
    assert got == {"_id": oid, "name": "bob", "visits": 2, "tags": ["n"], "log": ["l"]}


# ------------------------------------------------------------ writing


def test_assign_not_loaded_fields_sets_value_whatever_on_update(db: Any) -> None:
    s, p = partial(db, "name")
    p.visits = 3  # $inc field: stored 7, must become 3 (not 10)
    p.best = 10  # $max field: stored 50, must become 10
    p.log = ["z"]  # $push field: must become ["z"], not ["a", "b", "z"]
    p.tags = {"q"}
    p.age = 1
    assert sorted(s.dirty_fields(p)) == ["age", "best", "log", "tags", "visits"]
    s.commit()
    got = stored(db, p)
    assert got["visits"] == 3 and got["best"] == 10 and got["log"] == ["z"]
    assert got["tags"] == ["q"] and got["age"] == 1
    assert got["addr"] == {"city": "Oslo", "zip": "0150", "tags": ["h"]}
    assert got["extra"] == {"keep": 1} and got["name"] == "ann"
    assert (p.visits, p.best, p.log, p.tags, p.age) == (3, 10, ["z"], {"q"}, 1)


def test_assign_then_mutate_not_loaded_field(db: Any) -> None:
    s, p = partial(db, "name")
    p.log = ["z"]
    p.log.append("w")
    p.visits = 1
    p.visits += 1
    s.commit()
    got = stored(db, p)
    assert got["log"] == ["z", "w"] and got["visits"] == 2
    # Now loaded: later changes are minimal again and still exact.
    p.visits += 5
    p.log.append("v")
    s.commit()
    got = stored(db, p)
    assert got["log"] == ["z", "w", "v"] and got["visits"] == 7


def test_saving_partial_never_clears_not_loaded(db: Any) -> None:
    s, p = partial(db, "name", "tags")
    before = stored(db, p)
    p.name = "ann2"
    p.tags.add("z")
    s.commit()
    after = stored(db, p)
    assert_recent(after.pop("seen"))
    before.pop("seen")
    before.update(name="ann2", tags=["x", "y", "z"])
    assert after == before


def test_clone_of_partial_names_fields(db: Any) -> None:
    s, p = partial(db, "name", "age")
    with pytest.raises(uow.FieldNotLoaded) as info:
        s.clone(p)
    msg = str(info.value)
    for name in ("visits", "best", "seen", "log", "tags", "addr", "lines"):
        assert name in msg, msg
    assert "refresh" in msg
    s.commit()
    assert db.a13_person.count_documents({}) == 1


def test_refresh_fills_not_loaded_and_clone_works(db: Any) -> None:
    s, p = partial(db, "name")
    s.refresh(p)
    assert p.age == 30 and p.visits == 7 and p.tags == {"x", "y"}
    assert p.addr == Addr(city="Oslo", zip="0150", tags={"h"})
    assert p.lines == [Line(sku="s1", qty=2, tags={"t"})]
    assert not s.has_changes()
    c = s.clone(p)
    assert c.id != p.id and c.age == 30 and c.tags == {"x", "y"}
    s.add(c)
    s.commit()
    got = stored(db, c)
    assert got["age"] == 30 and got["tags"] == ["x", "y"] and got["log"] == ["a", "b"]


def test_refresh_after_assigning_not_loaded_discards_it(db: Any) -> None:
    s, p = partial(db, "name")
    p.visits = 100
    s.refresh(p)
    assert p.visits == 7
    assert not s.has_changes()
    s.commit()
    assert stored(db, p)["visits"] == 7


def test_later_full_query_fills_partial(db: Any) -> None:
    s, p = partial(db, "name")
    p.name = "changed"
    full = s.query(Person).filter(Person.id == p.id).one()
    assert full is p
    assert p.name == "changed"  # unflushed (or autoflushed) change kept
    assert p.age == 30 and p.tags == {"x", "y"} and p.visits == 7
    s.commit()
    assert stored(db, p)["name"] == "changed"
    assert stored(db, p)["visits"] == 7


def test_partial_query_on_full_document_keeps_it_whole(db: Any) -> None:
    seed_person(db)
    s = Session(db)
    p = s.query(Person).one()
    again = s.query(Person).fields("name").one()
    assert again is p
    assert p.age == 30 and p.visits == 7


def test_rollback_of_assigned_not_loaded_field(db: Any) -> None:
    s, p = partial(db, "name")
    p.visits = 99
    p.tags = {"q"}
    s.rollback()
    # Back to what the database holds: either not loaded again or the stored value.
    for name, want in (("visits", 7), ("tags", {"x", "y"})):
        try:
            value = getattr(p, name)
        except uow.FieldNotLoaded:
            continue
        assert value == want
    assert not s.has_changes()
    s.commit()
    assert stored(db, p)["visits"] == 7


def test_delete_partial_document(db: Any) -> None:
    s, p = partial(db, "name")
    s.delete(p)
    s.commit()
    assert db.a13_person.count_documents({}) == 0


def test_original_value_of_not_loaded_field(db: Any) -> None:
    s, p = partial(db, "name")
    assert s.original_value(p, "name") == "ann"
    with pytest.raises(uow.FieldNotLoaded):
        s.original_value(p, "visits")


def test_what_changed_after_assigning_not_loaded(db: Any) -> None:
    s, p = partial(db, "name")
    p.age = 31
    changed = s.what_changed()
    assert list(changed) == [("a13_person", p.id)]
    paths = changed[("a13_person", p.id)]
    assert list(paths) == ["age"]
    assert paths["age"][1] == 31


# ------------------------------------------------------------ copy / pickle


@pytest.mark.parametrize(
    "dup",
    [copy.copy, copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copies_of_partial_keep_field_not_loaded(db: Any, dup: Any) -> None:
    s, p = partial(db, "name", "tags")
    c = dup(p)
    assert type(c) is Person
    assert c.name == "ann" and c.tags == {"x", "y"} and c.id == p.id
    for name in ("age", "visits", "addr", "lines", "seen"):
        with pytest.raises(uow.FieldNotLoaded):
            getattr(c, name)
    with pytest.raises(AttributeError) as info:
        c.nosuch
    assert not isinstance(info.value, uow.FieldNotLoaded)
    assert not hasattr(c, "visits")
    assert "name='ann'" in repr(c)
    # The original is untouched by copying.
    with pytest.raises(uow.FieldNotLoaded):
        p.age
    s.commit()
    assert stored(db, p)["age"] == 30


@pytest.mark.parametrize(
    "dup",
    [copy.copy, copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copies_of_full_document(db: Any, dup: Any) -> None:
    seed_person(db)
    s = Session(db)
    p = s.query(Person).one()
    c = dup(p)
    assert type(c) is Person
    for name in ("name", "age", "visits", "best", "seen", "log", "tags", "addr", "lines"):
        assert getattr(c, name) == getattr(p, name), name
    assert c.id == p.id


def test_detached_partial_readded_writes_assigned_value(db: Any) -> None:
    s, p = partial(db, "name")
    s.close()
    assert p.name == "ann"
    with pytest.raises(uow.FieldNotLoaded):
        p.visits
    p.visits = 1
    s2 = Session(db)
    s2.add(p)
    s2.commit()
    got = stored(db, p)
    assert got["visits"] == 1 and got["age"] == 30 and got["extra"] == {"keep": 1}
    assert got["log"] == ["a", "b"] and got["tags"] == ["x", "y"]


def test_unpickled_document_readded_is_an_update(db: Any) -> None:
    seed_person(db)
    s = Session(db)
    p = s.query(Person).one()
    s.close()
    c = pickle.loads(pickle.dumps(p))
    c.age = 31
    s2 = Session(db)
    s2.add(c)
    s2.commit()
    got = stored(db, c)
    assert got["age"] == 31 and got["visits"] == 7 and got["extra"] == {"keep": 1}


def test_deepcopy_of_partial_assign_on_copy_leaves_original(db: Any) -> None:
    _s, p = partial(db, "name")
    c = copy.deepcopy(p)
    c.age = 1
    assert c.age == 1
    with pytest.raises(uow.FieldNotLoaded):
        p.age


# ------------------------------------------------------------ subclasses


def test_partial_subclass_from_base_query(db: Any) -> None:
    s = Session(db)
    d = Dog(name="rex", legs=3, breed="lab", tricks={"sit", "roll"})
    a = Animal(name="cat")
    s.add_all([d, a])
    s.commit()
    s.close()
    s = Session(db)
    got = {o.name: o for o in s.query(Animal).fields("name")}
    assert type(got["rex"]) is Dog and type(got["cat"]) is Animal
    with pytest.raises(uow.FieldNotLoaded):
        got["rex"].breed
    with pytest.raises(uow.FieldNotLoaded):
        got["rex"].legs
    got["rex"].tricks = {"beg"}
    got["rex"].name = "rex2"
    s.commit()
    raw = db.a13_animal.find_one({"_id": d.id})
    assert raw == {
        "_id": d.id,
        "_cls": "Dog",
        "name": "rex2",
        "legs": 3,
        "breed": "lab",
        "tricks": ["beg"],
    }


def test_partial_subclass_clone_raises(db: Any) -> None:
    s = Session(db)
    d = Dog(name="rex", breed="lab")
    s.add(d)
    s.commit()
    s.close()
    s = Session(db)
    p = s.query(Dog).fields("breed").one()
    assert type(p) is Dog
    with pytest.raises(uow.FieldNotLoaded) as info:
        s.clone(p)
    assert "name" in str(info.value) and "tricks" in str(info.value)


# ------------------------------------------------------------ embedded missing keys


def test_embedded_with_missing_keys(db: Any) -> None:
    oid = ObjectId()
    db.a13_person.insert_one(
        {
            "_id": oid,
            "name": "e",
            "addr": {"zip": "1", "other": 5},
            "lines": [{"qty": 2}, {"sku": "b"}],
        }
    )
    s = Session(db)
    p = s.get(Person, oid)
    assert p is not None
    assert p.addr is not None
    assert p.addr.zip == "1" and p.addr.tags == set()
    assert p.lines[0].sku == "" and p.lines[0].qty == 2 and p.lines[1].qty == 0
    assert not s.has_changes()
    s.commit()
    assert stored(db, p)["addr"] == {"zip": "1", "other": 5}
    p.addr.zip = "2"
    p.lines[0].qty += 1
    p.lines[1].tags.add("t")
    s.commit()
    got = stored(db, p)
    assert got["addr"]["zip"] == "2" and got["addr"]["other"] == 5
    assert "city" not in got["addr"]  # never loaded, never assigned
    assert got["lines"][0]["qty"] == 3
    assert got["lines"][1]["tags"] == ["t"] and got["lines"][1]["sku"] == "b"


def test_embedded_missing_required_key_reads_field_not_loaded(db: Any) -> None:
    oid = ObjectId()
    db.a13_person.insert_one({"_id": oid, "name": "e", "addr": {"zip": "1"}})
    s = Session(db)
    p = s.get(Person, oid)
    assert p is not None and p.addr is not None
    with pytest.raises(AttributeError) as info:
        p.addr.city
    assert isinstance(info.value, uow.FieldNotLoaded)
    assert "city" in str(info.value)
    p.addr.city = "Oslo"
    s.commit()
    assert stored(db, p)["addr"] == {"zip": "1", "city": "Oslo"}


# ------------------------------------------------------------ properties / __getattr__


def test_property_reading_not_loaded_field_raises_field_not_loaded(db: Any) -> None:
    s = Session(db)
    w = WithProps(first="a", last="b")
    s.add(w)
    s.commit()
    assert w.full == "a b"
    s.close()
    s = Session(db)
    p = s.query(WithProps).fields("first").one()
    with pytest.raises(uow.FieldNotLoaded) as info:
        p.full
    assert "last" in str(info.value)


def test_class_getattr_is_used_for_undeclared_names_only(db: Any) -> None:
    s = Session(db)
    w = WithGetattr(name="n", age=3)
    s.add(w)
    s.commit()
    assert w.x_abc == "abc"
    with pytest.raises(AttributeError, match="custom"):
        w.nosuch
    s.close()
    s = Session(db)
    p = s.query(WithGetattr).fields("name").one()
    assert p.x_abc == "abc"
    with pytest.raises(uow.FieldNotLoaded) as info:
        p.age
    assert "age" in str(info.value)


def test_explicit_update_of_partial_keeps_not_loaded(db: Any) -> None:
    s, p = partial(db, "name")
    before = stored(db, p)
    s.update(p)
    s.commit()
    after = stored(db, p)
    assert_recent(after.pop("seen"))  # $currentDate: every update sets it
    before.pop("seen")
    assert after == before


def test_no_tracking_update_of_partial_keeps_not_loaded(db: Any) -> None:
    seed_person(db)
    s = Session(db, no_tracking=True)
    p = s.query(Person).fields("name", "age").one()
    with pytest.raises(uow.FieldNotLoaded):
        p.visits
    p.name = "zz"
    s.update(p)
    s.commit()
    got = stored(db, p)
    assert got["name"] == "zz" and got["age"] == 30 and got["visits"] == 7
    assert got["log"] == ["a", "b"] and got["extra"] == {"keep": 1}


def test_rollback_after_flushing_assigned_not_loaded_field(db: Any) -> None:
    s, p = partial(db, "name")
    p.visits = 1
    s.flush()
    s.rollback()
    want = stored(db, p)["visits"]  # 7 with a transaction, 1 without
    try:
        value = p.visits
    except uow.FieldNotLoaded:
        pass
    else:
        assert value == want
    assert not s.has_changes()
    s.commit()
    assert stored(db, p)["visits"] == want


def test_augmented_assignment_of_not_loaded_raises_and_changes_nothing(db: Any) -> None:
    s, p = partial(db, "name")
    with pytest.raises(uow.FieldNotLoaded):
        p.visits += 1
    with pytest.raises(uow.FieldNotLoaded):
        p.log.append("x")
    assert not s.has_changes()
    s.commit()
    assert stored(db, p)["visits"] == 7


def test_assign_not_loaded_current_date_field_is_set(db: Any) -> None:
    s, p = partial(db, "name")
    when = datetime.datetime(1999, 1, 1)
    p.seen = when
    assert s.dirty_fields(p) == ["seen"]
    s.commit()
    got = stored(db, p)
    assert got["seen"] == when == p.seen


def test_clone_message_for_missing_required_key(db: Any) -> None:
    oid = ObjectId()
    db.a13_person.insert_one({"_id": oid, "age": 4})
    s = Session(db)
    p = s.get(Person, oid)
    assert p is not None
    with pytest.raises(uow.FieldNotLoaded) as info:
        s.clone(p)
    msg = str(info.value)
    assert "name" in msg
    assert "stored document lacks it" in msg and "Assign it" in msg, msg


def test_clone_after_assigning_every_not_loaded_field(db: Any) -> None:
    s, p = partial(db, "name", "age", "tags", "addr", "lines")
    p.visits, p.best, p.seen, p.log = 1, 2, None, ["q"]
    c = s.clone(p)
    assert c.id != p.id
    assert (c.name, c.age, c.visits, c.best, c.log) == ("ann", 30, 1, 2, ["q"])
    assert c.tags == {"x", "y"} and c.tags is not p.tags
    s.add(c)
    s.commit()
    got = stored(db, c)
    assert got["visits"] == 1 and got["log"] == ["q"] and got["tags"] == ["x", "y"]
    assert got["addr"] == {"city": "Oslo", "zip": "0150", "tags": ["h"]}
    assert stored(db, p)["visits"] == 1  # the original's assignment was written too


@pytest.mark.parametrize(
    "dup",
    [copy.copy, copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copies_of_embedded_with_missing_key(db: Any, dup: Any) -> None:
    oid = ObjectId()
    db.a13_person.insert_one({"_id": oid, "name": "e", "addr": {"zip": "1"}})
    s = Session(db)
    p = s.get(Person, oid)
    assert p is not None and p.addr is not None
    c = dup(p.addr)
    assert type(c) is Addr and c.zip == "1"
    with pytest.raises(uow.FieldNotLoaded):
        c.city
    assert "city=<not loaded>" in repr(c)
    whole = dup(p)
    assert whole.addr.zip == "1"
    with pytest.raises(uow.FieldNotLoaded):
        whole.addr.city


def test_class_getattr_on_full_document(db: Any) -> None:
    s = Session(db)
    w = WithGetattr(name="n", age=3)
    s.add(w)
    s.commit()
    s.close()
    s = Session(db)
    full = s.query(WithGetattr).one()
    assert (full.name, full.age) == ("n", 3)
    assert full.x_abc == "abc"
    with pytest.raises(AttributeError, match="custom"):
        full.nosuch
    full.age = 4
    s.commit()
    assert db.a13_getattr.find_one({"_id": w.id}) == {"_id": w.id, "name": "n", "age": 4}
