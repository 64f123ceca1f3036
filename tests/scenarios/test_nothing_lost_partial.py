"""Nothing lost with partial documents (`query().fields(...)`): issue #17
families 1 and 2, and SPEC's "saving one never clears the fields not loaded".

SPEC v4: "A field not loaded (`fields(...)`) that is assigned is written with
`$set` of the assigned value, whatever its `on_update`; reading it before
assigning raises `FieldNotLoaded`. `clone()` of a partial document raises
`FieldNotLoaded` naming the fields not loaded."
"""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._nl import insert_raw, reload, stored


class NlpAddr(Embedded):
    city: str
    zip: str | None = None


class NlpUser(Document):
    __collection__ = "nlp_users"

    name: str
    age: int = 0
    visits: int = field(default=0, on_update="$inc")
    peak: int = field(default=0, on_update="$max")
    low: int = field(default=100, on_update="$min")
    log: list[str] = field(factory=list, on_update="$push")
    badges: list[str] = field(factory=list, on_update="$addToSet")
    labels: set[str] = field(factory=set)
    tags: list[str] = field(factory=list)
    scores: dict[str, int] = field(factory=dict)
    address: NlpAddr | None = None
    whole: list[str] = field(factory=list, on_update="$set")
    nick: str | None = field(default=None, db_name="nk")


FULL: dict[str, Any] = {
    "name": "ann",
    "age": 30,
    "visits": 10,
    "peak": 10,
    "low": 10,
    "log": ["a", "b"],
    "badges": ["x", "y"],
    "labels": ["p", "q"],
    "tags": ["t1"],
    "scores": {"m": 1},
    "address": {"city": "Oslo", "zip": "0150"},
    "whole": ["w"],
    "nk": "annie",
    "extra": "unknown key, keep me",
}

# (attribute, stored key, value assigned, expected stored value)
ASSIGN_CASES = [
    ("visits", "visits", 3, 3),  # $inc: not 13
    ("peak", "peak", 3, 3),  # $max: not 10
    ("low", "low", 50, 50),  # $min: not 10
    ("log", "log", ["z"], ["z"]),  # $push: not a, b, z
    ("badges", "badges", ["z"], ["z"]),  # $addToSet: not x, y, z
    ("labels", "labels", {"z"}, ["z"]),  # set: not p, q, z
    ("tags", "tags", ["z"], ["z"]),
    ("scores", "scores", {"n": 2}, {"n": 2}),  # not merged with m
    ("address", "address", NlpAddr(city="Rome"), {"city": "Rome", "zip": None}),
    ("whole", "whole", ["z"], ["z"]),
    ("nick", "nk", "bo", "bo"),
    ("age", "age", 31, 31),
]
UNLOADED = [case[0] for case in ASSIGN_CASES]


def _partial(db: Any, **session_options: Any) -> tuple[uow.Session, Any, Any]:
    doc_id = insert_raw(db, "nlp_users", FULL)
    s = uow.Session(db, **session_options)
    user = s.query(NlpUser).fields("name").first()
    assert user is not None and user.id == doc_id
    return s, user, doc_id


@pytest.mark.parametrize(("attr", "key", "value", "expected"), ASSIGN_CASES, ids=UNLOADED)
def test_assigning_an_unloaded_field_stores_the_assigned_value(
    db: Any, attr: str, key: str, value: Any, expected: Any
) -> None:
    s, user, doc_id = _partial(db)
    setattr(user, attr, value)
    assert getattr(user, attr) == value
    s.commit()
    s.close()
    raw = stored(db, "nlp_users", doc_id)
    if key == "labels":
        assert sorted(raw[key]) == expected, f"stored {raw[key]!r}, memory {getattr(user, attr)!r}"
    else:
        assert raw[key] == expected, f"stored {raw[key]!r}, memory {getattr(user, attr)!r}"
    # nothing else touched: not loaded => stays as stored
    assert {k: v for k, v in raw.items() if k != key} == {
        k: v for k, v in {**FULL, "_id": doc_id}.items() if k != key
    }
    assert getattr(reload(db, NlpUser, doc_id), attr) == value


@pytest.mark.parametrize("attr", UNLOADED)
def test_reading_an_unloaded_field_raises_field_not_loaded(db: Any, attr: str) -> None:
    s, user, _ = _partial(db)
    with pytest.raises(uow.FieldNotLoaded) as caught:
        getattr(user, attr)
    assert isinstance(caught.value, AttributeError)
    assert attr in str(caught.value)
    assert user.name == "ann" and user.id is not None
    s.close()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda u: setattr(u, "visits", u.visits + 1),
        lambda u: u.log.append("c"),
        lambda u: u.labels.add("z"),
        lambda u: u.scores.__setitem__("n", 2),
        lambda u: setattr(u.address, "city", "Rome"),
    ],
    ids=["inc", "push", "set-add", "dict-key", "embedded-field"],
)
def test_changing_an_unloaded_field_in_place_raises_and_writes_nothing(
    db: Any, mutate: Any
) -> None:
    s, user, doc_id = _partial(db)
    with pytest.raises(uow.FieldNotLoaded):
        mutate(user)
    assert not s.is_dirty(user)
    s.commit()
    s.close()
    assert stored(db, "nlp_users", doc_id) == {**FULL, "_id": doc_id}


def test_saving_a_partial_document_never_clears_unloaded_fields(db: Any) -> None:
    s, user, doc_id = _partial(db)
    user.name = "bob"
    s.save(user)
    s.commit()
    s.close()
    assert stored(db, "nlp_users", doc_id) == {**FULL, "_id": doc_id, "name": "bob"}


def test_forced_update_of_a_partial_document_clears_and_adds_nothing(db: Any) -> None:
    s, user, doc_id = _partial(db)
    s.update(user)
    s.commit()
    s.close()
    assert stored(db, "nlp_users", doc_id) == {**FULL, "_id": doc_id}


def test_partial_by_query_field_objects(db: Any) -> None:
    doc_id = insert_raw(db, "nlp_users", FULL)
    s = uow.Session(db)
    user = s.query(NlpUser).fields(NlpUser.name, NlpUser.nick).first()
    assert user.nick == "annie"
    with pytest.raises(uow.FieldNotLoaded):
        _ = user.visits
    user.visits = 1
    user.nick = "x"
    s.commit()
    s.close()
    raw = stored(db, "nlp_users", doc_id)
    assert raw["visits"] == 1 and raw["nk"] == "x" and raw["log"] == ["a", "b"]


def test_after_assigning_an_unloaded_field_later_changes_are_minimal(db: Any) -> None:
    s, user, doc_id = _partial(db)
    user.visits = 3
    user.log = ["z"]
    s.commit()
    db["nlp_users"].update_one({"_id": doc_id}, {"$inc": {"visits": 10}, "$push": {"log": "other"}})
    user.visits += 1
    user.log.append("mine")
    s.commit()
    s.close()
    raw = stored(db, "nlp_users", doc_id)
    assert raw["visits"] == 14
    assert raw["log"] == ["z", "other", "mine"]


def test_assigning_unloaded_field_while_another_writer_changes_it(db: Any) -> None:
    """The assigned value is written with $set: the assignment wins over a concurrent write."""
    s, user, doc_id = _partial(db)
    db["nlp_users"].update_one({"_id": doc_id}, {"$inc": {"visits": 5}, "$set": {"age": 99}})
    user.visits = 3
    s.commit()
    s.close()
    raw = stored(db, "nlp_users", doc_id)
    assert raw["visits"] == 3
    assert raw["age"] == 99


def test_partial_then_full_query_fills_it_in_with_stored_values(db: Any) -> None:
    s, user, doc_id = _partial(db)
    db["nlp_users"].update_one({"_id": doc_id}, {"$set": {"visits": 20}})
    full = s.query(NlpUser).first()
    assert full is user
    assert (
        user.visits == 20
        and user.log == ["a", "b"]
        and user.address == NlpAddr(city="Oslo", zip="0150")
    )
    user.visits += 1
    user.log.append("c")
    s.commit()
    s.close()
    raw = stored(db, "nlp_users", doc_id)
    assert raw["visits"] == 21 and raw["log"] == ["a", "b", "c"]
    assert raw["badges"] == ["x", "y"] and raw["extra"] == FULL["extra"]


def test_full_query_does_not_overwrite_an_assigned_unloaded_field(db: Any) -> None:
    s, user, doc_id = _partial(db, autoflush=False)
    user.visits = 3
    full = s.query(NlpUser).first()
    assert full is user
    assert user.visits == 3  # an unflushed change is never overwritten by a query
    s.commit()
    raw = stored(db, "nlp_users", doc_id)
    assert raw["visits"] == 3 and raw["tags"] == ["t1"]
    # Ambiguity: does a full query fill in the unloaded fields of a partial
    # document that has an unflushed change? Reading: yes - filling in a field
    # never loaded overwrites no change, and SPEC (Transactions) speaks of a
    # partial document "filled in by a later query" without that condition.
    assert user.tags == ["t1"]
    s.close()


def test_dirty_fields_of_an_assigned_unloaded_field(db: Any) -> None:
    s, user, _ = _partial(db)
    user.visits = 3
    assert s.is_dirty(user)
    assert s.dirty_fields(user) == ["visits"]
    s.close()


def test_delete_of_a_partial_document(db: Any) -> None:
    s, user, doc_id = _partial(db)
    s.delete(user)
    s.commit()
    s.close()
    assert db["nlp_users"].find_one({"_id": doc_id}) is None


# ================================================================ family 2: clone


def test_clone_of_a_partial_document_names_the_fields_not_loaded(db: Any) -> None:
    s, user, _ = _partial(db)
    with pytest.raises(uow.FieldNotLoaded) as caught:
        s.clone(user)
    message = str(caught.value)
    # Ambiguity: "naming the fields not loaded" - attribute names or stored
    # names? Reading: attribute names (the names the user wrote in fields()).
    for name in ("age", "visits", "log", "badges", "labels", "tags", "scores", "address", "whole"):
        assert name in message, f"{name!r} not named in {message!r}"
    s.close()


def test_clone_of_a_partial_document_leaves_the_session_able_to_flush(db: Any) -> None:
    s, user, doc_id = _partial(db)
    with pytest.raises(uow.FieldNotLoaded):
        s.clone(user)
    user.name = "bob"
    s.commit()
    s.close()
    assert stored(db, "nlp_users", doc_id) == {**FULL, "_id": doc_id, "name": "bob"}


def test_clone_of_a_whole_document_is_a_transient_copy(db: Any) -> None:
    doc_id = insert_raw(db, "nlp_users", FULL)
    s = uow.Session(db)
    user = s.get(NlpUser, doc_id)
    copy = s.clone(user)
    assert copy.id != user.id
    assert s.state(copy) == uow.ObjectState.TRANSIENT
    copy.log.append("c")
    assert user.log == ["a", "b"]  # no shared containers
    s.add(copy)
    s.commit()
    s.close()
    raw = stored(db, "nlp_users", copy.id)
    assert raw["log"] == ["a", "b", "c"] and raw["visits"] == 10 and raw["nk"] == "annie"
    assert stored(db, "nlp_users", doc_id)["log"] == ["a", "b"]


# ==================================================== more partial-document cases


class NlpBase(Document):
    __collection__ = "nlp_animals"

    name: str
    legs: int = field(default=4, on_update="$inc")


class NlpBird(NlpBase):
    wings: int = 2


def test_partial_subclass_document_keeps_its_class_and_cls_key(db: Any) -> None:
    doc_id = insert_raw(
        db, "nlp_animals", {"_cls": "NlpBird", "name": "tweety", "legs": 2, "wings": 2}
    )
    s = uow.Session(db)
    bird = s.query(NlpBase).fields("name").first()
    assert type(bird) is NlpBird
    bird.name = "polly"
    bird.legs = 1  # not loaded: $set, not $inc
    s.commit()
    s.close()
    raw = stored(db, "nlp_animals", doc_id)
    assert raw == {"_id": doc_id, "_cls": "NlpBird", "name": "polly", "legs": 1, "wings": 2}


def test_refresh_of_a_partial_document_loads_every_field(db: Any) -> None:
    """Ambiguity: SPEC says refresh "reads the server's values"; whether it
    loads the fields a partial query left out is not said. Reading chosen:
    yes (the FieldNotLoaded message advises refresh())."""
    s, user, doc_id = _partial(db)
    db["nlp_users"].update_one({"_id": doc_id}, {"$set": {"visits": 40}})
    s.refresh(user)
    assert user.visits == 40 and user.log == ["a", "b"]
    user.visits += 1
    s.commit()
    s.close()
    assert stored(db, "nlp_users", doc_id)["visits"] == 41


def test_rollback_of_an_assigned_unloaded_field_without_transaction(db: Any) -> None:
    s, user, doc_id = _partial(db, transactional=False)
    user.visits = 3
    s.rollback()
    assert not s.is_dirty(user)
    # Back to what the database holds: not loaded again, or read again (10);
    # never the assigned 3 nor the default 0.
    try:
        value = user.visits
    except uow.FieldNotLoaded:
        value = None
    assert value in (None, 10), f"after rollback memory visits={value!r}, stored 10"
    s.commit()
    s.close()
    assert stored(db, "nlp_users", doc_id) == {**FULL, "_id": doc_id}


def test_partial_document_assigned_then_flushed_twice_is_not_doubled(db: Any) -> None:
    s, user, doc_id = _partial(db)
    user.visits = 3
    user.log = ["z"]
    s.flush()
    s.flush()
    s.update(user)
    s.commit()
    s.close()
    raw = stored(db, "nlp_users", doc_id)
    assert raw["visits"] == 3 and raw["log"] == ["z"]
