"""The identity map: one object per (collection, _id); an LRU of clean documents
bounded by ``cache_size``; pending, dirty and deleted documents never evicted; a
document the user holds stays the one identity; a change made in place to a
document evicted before the flush is still flushed (the finalizer rescue).

Every test runs on the mongomock and the SecantusDB lanes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import bson
import pytest

from uow import Ref
from uow._state import ObjectState
from uow.session import FlushResult

from ._support import (
    Sessions,
    SxAnimal,
    SxCat,
    SxDog,
    SxFlat,
    SxOrder,
    SxPerson,
    SxPost,
    insert_raw,
    sessions_on,
    stored,
    stored_one,
)


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


def _flats(sessions: Sessions, n: int) -> list[Any]:
    return insert_raw(sessions.db, "flats", [{"name": f"f{i}", "n": i} for i in range(n)])


def _people(sessions: Sessions, n: int) -> list[Any]:
    return insert_raw(sessions.db, "people", [{"name": f"p{i}", "tags": []} for i in range(n)])


def _load_each(s: Any, cls: Any, ids: list[Any]) -> None:
    """Load every id, holding none of the loaded objects."""
    for id_ in ids:
        assert s.get(cls, id_) is not None


# ----------------------------------------------------------------- one identity


def test_get_twice_is_one_object_and_the_second_is_no_query(sessions: Sessions) -> None:
    (doc_id,) = _flats(sessions, 1)
    s = sessions.open()
    first = s.get(SxFlat, doc_id)
    stats = s.stats()
    assert (stats.queries, stats.requests, stats.cache_misses) == (1, 1, 1)
    assert s.get(SxFlat, doc_id) is first
    stats = s.stats()
    assert (stats.cache_hits, stats.queries, stats.requests) == (1, 1, 1)


def test_every_way_of_reading_returns_the_same_object(sessions: Sessions) -> None:
    (person_id,) = _people(sessions, 1)
    s = sessions.open()
    ann = s.get(SxPerson, person_id)
    assert ann is not None
    post = SxPost(title="t", author=ann)
    s.add(post)
    s.flush()
    assert s.query(SxPerson).first() is ann
    assert s.query(SxPerson).one() is ann
    assert s.filter(SxPerson, name="p0") == [ann]
    assert s.all(SxPerson) == [ann]
    assert list(s.query(SxPerson)) == [ann]
    assert s.dereference(Ref(SxPerson, person_id)) is ann
    assert post.author is not None
    assert s.dereference(post.author) is ann
    assert s.query(SxPost).one() is post


def test_a_pending_document_is_found_by_get_without_a_query(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.add(ann)
    assert s.get(SxPerson, ann.id) is ann
    assert s.stats().requests == 0
    assert s.stats().cache_hits == 1


def test_one_object_per_collection_and_id(sessions: Sessions) -> None:
    shared = bson.ObjectId()
    insert_raw(sessions.db, "flats", [{"_id": shared, "name": "flat"}])
    insert_raw(sessions.db, "orders", [{"_id": shared, "item": "order"}])
    s = sessions.open()
    flat, order = s.get(SxFlat, shared), s.get(SxOrder, shared)
    assert flat is not None and order is not None
    assert (flat.name, order.item) == ("flat", "order")
    assert s.stats().identity_map_size == 2
    assert s.get(SxFlat, shared) is flat
    assert s.get(SxOrder, shared) is order


def test_subclasses_share_the_identity_of_their_collection(sessions: Sessions) -> None:
    s = sessions.open()
    rex = SxDog(name="rex")
    s.save(rex)
    s.commit()
    other = sessions.open()
    loaded = other.get(SxAnimal, rex.id)
    assert isinstance(loaded, SxDog)
    assert other.get(SxDog, rex.id) is loaded
    assert other.get(SxCat, rex.id) is None  # a dog is no cat
    assert other.query(SxAnimal).one() is loaded


def test_a_query_never_overwrites_unflushed_changes(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "people", [{"name": "ann", "age": 1, "tags": ["a"]}])
    s = sessions.open(autoflush=False)
    ann = s.get(SxPerson, doc_id)
    assert ann is not None
    ann.name = "local"
    ann.tags.append("local")
    sessions.db.people.update_one({"_id": doc_id}, {"$set": {"name": "server", "age": 9}})
    assert s.query(SxPerson).one() is ann
    assert s.filter(SxPerson, name="server") == [ann]
    assert (ann.name, ann.age, ann.tags) == ("local", 1, ["a", "local"])
    assert s.what_changed() == {
        ("people", doc_id): {"name": ("ann", "local"), "tags": (["a"], ["a", "local"])}
    }


# ------------------------------------------------------------------------ bounds


def test_the_lru_keeps_the_most_recently_used_clean_documents(sessions: Sessions) -> None:
    ids = _flats(sessions, 5)
    s = sessions.open(cache_size=3)
    _load_each(s, SxFlat, ids[:3])
    assert s.get(SxFlat, ids[0]) is not None  # a hit: ids[0] is now the most recent
    _load_each(s, SxFlat, ids[3:])  # evicts ids[1] and ids[2]
    assert s.stats().identity_map_size == 3
    queries = s.stats().queries
    _load_each(s, SxFlat, [ids[0], ids[3], ids[4]])
    assert s.stats().queries == queries  # all three still mapped
    assert s.get(SxFlat, ids[1]) is not None
    assert s.stats().queries == queries + 1  # evicted: read again
    assert s.stats().identity_map_size == 3


def test_query_results_are_bounded_too(sessions: Sessions) -> None:
    _flats(sessions, 30)
    s = sessions.open(cache_size=10)
    for doc in s.query(SxFlat):
        assert doc.name.startswith("f")
    assert s.stats().identity_map_size == 10


def test_cache_size_none_keeps_every_document(sessions: Sessions) -> None:
    ids = _flats(sessions, 40)
    s = sessions.open(cache_size=None)
    _load_each(s, SxFlat, ids)
    assert s.stats().identity_map_size == 40
    queries = s.stats().queries
    _load_each(s, SxFlat, ids)
    assert s.stats().queries == queries


@pytest.mark.parametrize("cache_size", [0, 2])
def test_a_held_document_stays_the_one_identity_after_eviction(
    sessions: Sessions, cache_size: int
) -> None:
    ids = _flats(sessions, 6)
    s = sessions.open(cache_size=cache_size)
    held = s.get(SxFlat, ids[0])
    _load_each(s, SxFlat, ids[1:])
    assert s.stats().identity_map_size == cache_size + 1
    queries = s.stats().queries
    assert s.get(SxFlat, ids[0]) is held
    assert s.stats().queries == queries  # still mapped while held: no query
    assert s.query(SxFlat).filter(name="f0").one() is held
    assert s.state(held) is ObjectState.PERSISTENT  # type: ignore[arg-type]


def test_cache_size_zero_keeps_nothing_beyond_what_is_held(sessions: Sessions) -> None:
    ids = _flats(sessions, 5)
    s = sessions.open(cache_size=0)
    _load_each(s, SxFlat, ids)
    assert s.stats().identity_map_size == 0
    assert s.all(SxFlat) != []
    assert s.stats().identity_map_size == 0


@pytest.mark.parametrize("cache_size", [0, 1])
def test_pending_dirty_and_deleted_documents_are_never_evicted(
    sessions: Sessions, cache_size: int
) -> None:
    ids = _flats(sessions, 12)
    s = sessions.open(cache_size=cache_size)
    for name in ("new1", "new2", "new3"):
        s.add(SxFlat(name=name))  # pending; the session holds the only reference
    for id_ in ids[:3]:
        doc = s.get(SxFlat, id_)
        assert doc is not None
        doc.n = 100  # dirty
    for id_ in ids[3:5]:
        doc = s.get(SxFlat, id_)
        assert doc is not None
        s.delete(doc)
    del doc
    _load_each(s, SxFlat, ids[5:])  # churn the LRU
    gc.collect()
    stats = s.stats()
    assert (stats.pending_inserts, stats.pending_updates, stats.pending_deletes) == (3, 3, 2)
    assert stats.identity_map_size == 8 + cache_size
    assert s.flush() == FlushResult(inserted=3, updated=3, deleted=2, round_trips=3)
    s.commit()
    by_name = {d["name"]: d.get("n") for d in stored(sessions.db, "flats")}
    assert len(by_name) == 12 - 2 + 3
    assert [by_name[f"f{i}"] for i in range(3)] == [100, 100, 100]
    assert "f3" not in by_name and "f4" not in by_name
    assert {"new1", "new2", "new3"} <= set(by_name)


@pytest.mark.parametrize("cache_size", [0, 1])
def test_a_held_document_changed_in_place_is_flushed_after_eviction(
    sessions: Sessions, cache_size: int
) -> None:
    ids = _people(sessions, 5)
    s = sessions.open(cache_size=cache_size)
    held = s.get(SxPerson, ids[0])
    assert held is not None
    held.tags.append("x")
    _load_each(s, SxPerson, ids[1:])  # held drops out of the LRU (not out of the map)
    assert s.is_dirty(held)
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    assert stored_one(sessions.db, "people", ids[0])["tags"] == ["x"]  # type: ignore[index]


@pytest.mark.parametrize("cache_size", [0, 2])
def test_the_finalizer_rescues_a_change_made_in_place_to_a_dropped_document(
    sessions: Sessions, cache_size: int
) -> None:
    ids = _people(sessions, 6)
    s = sessions.open(cache_size=cache_size)
    doc = s.get(SxPerson, ids[0])
    assert doc is not None
    doc.tags.append("rescued")  # in place: no assignment tells the session
    doc.scores["k"] = 1
    del doc
    _load_each(s, SxPerson, ids[1:])  # the LRU lets go of it (at once with 0)
    gc.collect()
    assert s.stats().pending_updates == 1
    again = s.get(SxPerson, ids[0])  # still the changed object, from the map
    assert again is not None
    assert again.tags == ["rescued"]
    del again
    gc.collect()
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    saved = stored_one(sessions.db, "people", ids[0])
    assert saved is not None
    assert (saved["tags"], saved["scores"]) == (["rescued"], {"k": 1})


@pytest.mark.parametrize("cache_size", [0, 2])
def test_the_finalizer_lets_an_unchanged_document_go(sessions: Sessions, cache_size: int) -> None:
    ids = _people(sessions, 6)
    s = sessions.open(cache_size=cache_size)
    doc = s.get(SxPerson, ids[0])
    assert doc is not None
    doc.tags.append("x")
    doc.tags.pop()  # changed and changed back: nothing to keep
    del doc
    _load_each(s, SxPerson, ids[1:])
    gc.collect()
    assert s.stats().identity_map_size == cache_size
    assert s.flush() == FlushResult()


@pytest.mark.parametrize("how", ["assigned back", "clear_queue", "delete then clear_queue"])
def test_a_document_with_nothing_to_write_becomes_evictable_again(
    sessions: Sessions, how: str
) -> None:
    ids = _flats(sessions, 4)
    s = sessions.open(cache_size=1)
    doc = s.get(SxFlat, ids[0])
    assert doc is not None
    if how == "assigned back":
        doc.n = 100
        doc.n = 0
        assert s.flush() == FlushResult()
    elif how == "clear_queue":
        s.update(doc)
        s.clear_queue()
    else:
        s.delete(doc)
        s.clear_queue()
    del doc
    _load_each(s, SxFlat, ids[1:])
    gc.collect()
    assert s.stats().identity_map_size == 1  # the bound holds: it was let go
    assert s.flush() == FlushResult()
