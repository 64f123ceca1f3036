"""update(): explicit updates of tracked and untracked documents."""

from __future__ import annotations

from typing import Any

import pytest

from uow import ObjectState, Session, ValidationError

from ._h import raw
from ._models import Counter, Item, Versioned


def test_update_tracked_unchanged_forces_an_update(db: Any) -> None:
    s = Session(db)
    it = Item(name="a", qty=2)
    s.add(it)
    s.commit()
    s.update(it)
    assert s.stats().pending_updates == 1
    r = s.flush()
    assert r.updated == 1
    assert r.round_trips == 1
    s.commit()
    assert raw(db, it) == {"_id": it.id, "name": "a", "qty": 2, "tags": []}


def test_update_tracked_unchanged_does_not_inc_again(db: Any) -> None:
    """A forced update of an unchanged tracked document uses change tracking's
    operators: the $inc delta since load is 0, never the whole value."""
    s = Session(db)
    it = Item(name="a", qty=5)
    s.add(it)
    s.commit()
    s.update(it)
    s.commit()
    assert raw(db, it)["qty"] == 5


def test_update_tracked_with_changes_uses_delta(db: Any) -> None:
    s = Session(db)
    it = Item(name="a", qty=5)
    s.add(it)
    s.commit()
    db.a7_items.update_one({"_id": it.id}, {"$inc": {"qty": 10}})  # concurrent
    it.qty += 1
    s.update(it)
    s.commit()
    assert raw(db, it)["qty"] == 16  # $inc 1 relative to stored


def test_update_tracked_kwargs_override_operator(db: Any) -> None:
    s = Session(db)
    it = Item(name="a", qty=5)
    s.add(it)
    s.commit()
    db.a7_items.update_one({"_id": it.id}, {"$inc": {"qty": 10}})
    it.qty = 7
    s.update(it, qty="$set")
    s.commit()
    assert raw(db, it)["qty"] == 7
    assert it.qty == 7


def test_update_tracked_versioned_bumps_version(db: Any) -> None:
    s = Session(db)
    v = Versioned(name="a")
    s.add(v)
    s.commit()
    assert raw(db, v)["version"] == 0 or raw(db, v)["version"] == 1
    before = v.version
    s.update(v)
    s.commit()
    assert v.version == before + 1
    assert raw(db, v) == {"_id": v.id, "name": "a", "version": before + 1}


def test_update_untracked_upsert_creates_then_increments(db: Any) -> None:
    s = Session(db)
    c = Counter(id="c1", hits=3, best=4, label="L")
    s.update(c, upsert=True)
    assert s.state(c) is ObjectState.TRANSIENT or s.state(c) is not ObjectState.PENDING
    r = s.flush()
    assert r.updated == 1 or r.inserted == 1
    s.commit()
    assert db.a7_counter.find_one({"_id": "c1"}) == {
        "_id": "c1",
        "hits": 3,
        "best": 4,
        "label": "L",
    }
    s2 = Session(db)
    s2.update(Counter(id="c1", hits=2, best=1, label="M"), upsert=True)
    s2.commit()
    # $inc adds 2, $max keeps 4, label $set
    assert db.a7_counter.find_one({"_id": "c1"}) == {
        "_id": "c1",
        "hits": 5,
        "best": 4,
        "label": "M",
    }


def test_update_untracked_without_upsert_creates_nothing(db: Any) -> None:
    s = Session(db)
    s.update(Counter(id="nope", hits=1))
    s.commit()
    assert db.a7_counter.find_one({"_id": "nope"}) is None


def test_update_untracked_same_object_twice_in_one_flush(db: Any) -> None:
    """Two explicit updates of one transient counter: per SPEC pending_updates are
    counted per document; whatever is sent, the store must not get a double $inc
    unless that is what two update() calls mean. Accept either 1 or 2 increments
    but the count must be consistent with stats."""
    s = Session(db)
    c = Counter(id="c2", hits=1)
    s.update(c, upsert=True)
    s.update(c, upsert=True)
    assert s.stats().pending_updates == 1
    s.commit()
    assert db.a7_counter.find_one({"_id": "c2"})["hits"] in (1, 2)


def test_update_untracked_update_ops_and_kwargs(db: Any) -> None:
    db.a7_counter.insert_one({"_id": "c3", "hits": 10, "best": 10, "label": "x"})
    s = Session(db)
    # hits: $set instead of $inc (via query field); best: $min instead of $max (kwargs)
    s.update(
        Counter(id="c3", hits=4, best=3, label="y"), update_ops={Counter.hits: "$set"}, best="$min"
    )
    s.commit()
    assert db.a7_counter.find_one({"_id": "c3"}) == {
        "_id": "c3",
        "hits": 4,
        "best": 3,
        "label": "y",
    }


def test_update_untracked_update_ops_by_name(db: Any) -> None:
    db.a7_counter.insert_one({"_id": "c4", "hits": 10, "best": 10, "label": "x"})
    s = Session(db)
    s.update(Counter(id="c4", hits=4, best=3, label="y"), update_ops={"hits": "$set"})
    s.commit()
    assert db.a7_counter.find_one({"_id": "c4"}) == {
        "_id": "c4",
        "hits": 4,
        "best": 10,
        "label": "y",
    }


def test_update_id_expression_dict(db: Any) -> None:
    db.a7_counter.insert_many(
        [
            {"_id": "k1", "hits": 1, "best": 0, "label": "target"},
            {"_id": "k2", "hits": 1, "best": 0, "label": "other"},
        ]
    )
    s = Session(db)
    s.update(
        Counter(id="ignored", hits=5),
        id_expression={"label": "target"},
        update_ops={"label": "$set"},
    )
    s.commit()
    assert db.a7_counter.find_one({"_id": "k1"})["hits"] == 6
    assert db.a7_counter.find_one({"_id": "k2"})["hits"] == 1
    assert db.a7_counter.find_one({"_id": "ignored"}) is None


def test_update_id_expression_query_expr(db: Any) -> None:
    db.a7_counter.insert_many(
        [
            {"_id": "k1", "hits": 1, "best": 0, "label": "target"},
            {"_id": "k2", "hits": 1, "best": 0, "label": "other"},
        ]
    )
    s = Session(db)
    s.update(Counter(id="ignored", hits=5, label="target"), id_expression=Counter.label == "target")
    s.commit()
    assert db.a7_counter.find_one({"_id": "k1"})["hits"] == 6
    assert db.a7_counter.find_one({"_id": "k2"})["hits"] == 1


def test_update_untracked_does_not_enter_identity_map(db: Any) -> None:
    db.a7_counter.insert_one({"_id": "c5", "hits": 1, "best": 0, "label": ""})
    s = Session(db)
    c = Counter(id="c5", hits=2)
    s.update(c)
    s.commit()
    got = s.get(Counter, "c5")
    assert got is not None
    # the session reads what the store holds: 3, never the transient's 2
    assert got.hits == 3


def test_update_untracked_when_same_id_loaded(db: Any) -> None:
    """An explicit update through a transient while the document is loaded: after
    the flush the loaded object must read what is stored (SPEC's one rule)."""
    db.a7_counter.insert_one({"_id": "c6", "hits": 1, "best": 0, "label": ""})
    s = Session(db)
    loaded = s.get(Counter, "c6")
    s.update(Counter(id="c6", hits=2))
    s.commit()
    stored = db.a7_counter.find_one({"_id": "c6"})
    assert stored["hits"] == 3
    again = s.get(Counter, "c6")
    assert again is loaded
    loaded.hits += 1
    s.commit()
    stored = db.a7_counter.find_one({"_id": "c6"})
    assert stored == {"_id": "c6", "hits": loaded.hits, "best": 0, "label": ""}
    assert loaded.hits == 4


def test_update_of_no_tracking_loaded_sends_set(db: Any) -> None:
    db.a7_items.insert_one({"_id": 1, "name": "a", "qty": 5, "tags": []})
    s = Session(db, no_tracking=True)
    it = s.query(Item).first()
    assert it is not None
    db.a7_items.update_one({"_id": 1}, {"$inc": {"qty": 100}})
    it.qty = 6
    s.update(it)
    s.commit()
    assert db.a7_items.find_one({"_id": 1})["qty"] == 6


def test_pending_updates_counts_explicit_and_dirty_per_document(db: Any) -> None:
    s = Session(db)
    a, b = Item(name="a"), Item(name="b")
    s.add_all([a, b])
    s.commit()
    a.name = "a2"
    s.update(a)
    s.update(b)
    assert s.stats().pending_updates == 2
    r = s.flush()
    assert r.updated == 2
    assert r.round_trips == 1
    assert s.stats().pending_updates == 0


def test_update_pending_insert_object(db: Any) -> None:
    """update() of an object whose insert is still queued: the insert must carry it,
    not a failing update (and not an insert plus an $inc that doubles qty)."""
    s = Session(db)
    it = Item(name="a", qty=3)
    s.add(it)
    s.update(it)
    s.commit()
    assert raw(db, it) == {"_id": it.id, "name": "a", "qty": 3, "tags": []}


@pytest.mark.parametrize("upsert", [False, True])
def test_update_deleted_object_is_refused_or_no_resurrection(db: Any, upsert: bool) -> None:
    s = Session(db)
    it = Item(name="a", qty=3)
    s.add(it)
    s.commit()
    s.delete(it)
    try:
        s.update(it, upsert=upsert)
    except Exception:
        return
    s.commit()
    # deleted then explicitly updated: at least the store and memory agree
    stored = raw(db, it)
    state = s.state(it)
    if stored is None:
        assert state in (ObjectState.DETACHED, ObjectState.TRANSIENT)
    else:
        assert state is ObjectState.PERSISTENT and stored == it.to_bson()


def test_upsert_with_id_expression_uses_client_id(db: Any) -> None:
    """SPEC: "Ids are made on the client, so an insert never waits for the server to
    name it." An upsert that inserts should store the object's own id."""
    s = Session(db)
    c = Counter(id="cx", hits=1, label="L")
    s.update(c, upsert=True, id_expression={"label": "L"})
    s.commit()
    stored = list(db.a7_counter.find())
    assert stored == [{"_id": "cx", "hits": 1, "best": 0, "label": "L"}]


@pytest.mark.parametrize(
    ("ops", "field"), [({"label": "$inc"}, "label"), ({"hits": "$push"}, "hits")]
)
def test_update_refuses_an_operator_that_cannot_persist_the_field(
    db: Any, ops: dict[str, str], field: str
) -> None:
    """As ``field(on_update=...)`` is refused at definition: ``$inc`` of a str,
    ``$push`` of an int. Named at the call, and nothing is queued."""
    db.a7_counter.insert_one({"_id": "c9", "hits": 1, "best": 0, "label": "L"})
    s = Session(db)
    with pytest.raises(ValidationError, match=rf"Counter\.{field}") as caught:
        s.update(Counter(id="c9", hits=2, label="M"), **ops)
    assert caught.value.field == field
    assert s.stats().pending_updates == 0
    s.commit()
    assert db.a7_counter.find_one({"_id": "c9"}) == {
        "_id": "c9",
        "hits": 1,
        "best": 0,
        "label": "L",
    }
