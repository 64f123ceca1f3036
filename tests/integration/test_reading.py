"""Reading: get, query (filter, sort, skip, limit, fields, first, one, count, all,
raw, streamed iteration), filter, all, count, remove_query, dereference, subclass
queries, and autoflush before queries.

Tests taking ``db`` run on both lanes; the ones taking ``command_log`` run on
SecantusDB only, where a pymongo CommandListener sees cursor batches (mongomock
has no cursor batches to see).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bson
import pytest

from uow import (
    Document,
    FieldNotLoaded,
    MultipleFound,
    NotFound,
    Ref,
    TooManyRequests,
    ValidationError,
    field,
)
from uow._state import ObjectState
from uow.session import FlushResult, Session

from ._support import (
    Sessions,
    SxAddress,
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


@pytest.fixture
def ten(sessions: Sessions) -> list[Any]:
    """Ten flats named f0..f9 with n = 0..9."""
    return insert_raw(sessions.db, "flats", [{"name": f"f{i}", "n": i} for i in range(10)])


def _ns(docs: list[Any]) -> list[int]:
    return [doc.n for doc in docs]


# ------------------------------------------------------------------------- get


def test_get_a_missing_document(sessions: Sessions) -> None:
    s = sessions.open()
    assert s.get(SxFlat, bson.ObjectId()) is None
    fallback = SxFlat(name="fallback")
    assert s.get(SxFlat, bson.ObjectId(), default=fallback) is fallback
    assert s.stats().cache_misses == 2


def test_get_loads_every_field(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(
        sessions.db,
        "people",
        [{"name": "ann", "tags": ["a"], "address": {"city": "Oslo"}, "nk": "A", "labels": ["x"]}],
    )
    s = sessions.open()
    ann = s.get(SxPerson, doc_id)
    assert ann is not None
    assert (ann.id, ann.name, ann.tags, ann.nick, ann.labels) == (doc_id, "ann", ["a"], "A", {"x"})
    assert ann.address == SxAddress(city="Oslo")
    assert s.state(ann) is ObjectState.PERSISTENT


def test_get_never_autoflushes(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "flats", [{"name": "a"}])
    s = sessions.open()
    pending = SxFlat(name="pending")
    s.add(pending)
    assert s.get(SxFlat, doc_id) is not None
    assert s.state(pending) is ObjectState.PENDING
    assert s.stats().round_trips == 0


# ---------------------------------------------------------------------- queries


def test_filter_sort_skip_limit(sessions: Sessions, ten: list[Any]) -> None:
    s = sessions.open()
    query = s.query(SxFlat).filter(SxFlat.n >= 3).sort(SxFlat.n.desc()).skip(1).limit(3)
    assert _ns(query.all()) == [8, 7, 6]
    assert _ns(s.query(SxFlat).sort("-n").limit(2).all()) == [9, 8]
    assert _ns(s.query(SxFlat).sort("n").skip(8).all()) == [8, 9]
    assert _ns(s.query(SxFlat).sort(SxFlat.n.asc()).filter(n__lt=2).all()) == [0, 1]


def test_builders_return_new_queries(sessions: Sessions, ten: list[Any]) -> None:
    s = sessions.open()
    base = s.query(SxFlat)
    narrowed = base.filter(n__gte=5)
    limited = narrowed.limit(2)
    assert base.count() == 10
    assert narrowed.count() == 5
    assert len(limited.all()) == 2
    assert len(narrowed.all()) == 5


def test_first_one_count_all(sessions: Sessions, ten: list[Any]) -> None:
    s = sessions.open()
    assert s.query(SxFlat).sort("n").first().n == 0  # type: ignore[union-attr]
    assert s.query(SxFlat).filter(n=100).first() is None
    assert s.query(SxFlat).filter(n=4).one().name == "f4"
    with pytest.raises(NotFound, match="SxFlat"):
        s.query(SxFlat).filter(n=100).one()
    with pytest.raises(MultipleFound, match="SxFlat"):
        s.query(SxFlat).filter(n__lt=2).one()
    assert s.query(SxFlat).filter(SxFlat.n < 5).count() == 5
    assert s.count(SxFlat) == 10
    assert s.count(SxFlat, SxFlat.n > 7) == 2
    assert s.count(SxFlat, n__in=[1, 2, 99]) == 2
    assert sorted(_ns(s.all(SxFlat))) == list(range(10))
    assert sorted(_ns(s.filter(SxFlat, SxFlat.n > 7))) == [8, 9]
    assert s.stats().queries >= 9


def test_first_honours_sort_skip_fields_and_subclasses_with_one_query(
    sessions: Sessions, ten: list[Any]
) -> None:
    s = sessions.open()
    before = s.stats().queries
    third = s.query(SxFlat).sort("-n").skip(2).first()
    assert third is not None and third.n == 7
    partial = s.query(SxFlat).filter(SxFlat.n > 4).sort("n").fields("n").first()
    assert partial is not None and partial.n == 5
    with pytest.raises(FieldNotLoaded):
        _ = partial.name
    assert s.query(SxFlat).filter(SxFlat.id == ten[3]).first() is s.get(SxFlat, ten[3])
    assert s.stats().queries == before + 3  # the get was answered by the identity map
    s.add_all([SxDog(name="rex"), SxCat(name="tom")])
    s.flush()
    cat = s.query(SxCat).first()
    assert isinstance(cat, SxCat) and cat.name == "tom"
    assert s.query(SxDog).filter(SxDog.name == "tom").first() is None
    # One filter on the root: the shortest path, which still loads the subclass.
    found = s.query(SxAnimal).filter(SxAnimal.name == "tom").first()
    assert found is cat
    assert s.query(SxAnimal).filter(name="rex").first().name == "rex"  # type: ignore[union-attr]
    s.commit()
    fresh = sessions.open()
    assert isinstance(fresh.query(SxAnimal).filter(SxAnimal.name == "tom").first(), SxCat)
    only_root = fresh.query(SxAnimal, exclude_subclasses=True)
    assert only_root.filter(SxAnimal.name == "tom").first() is None


def test_lookups(sessions: Sessions) -> None:
    insert_raw(
        sessions.db,
        "people",
        [
            {"name": "ann", "age": 30, "tags": ["a", "b"], "address": {"city": "Oslo"}},
            {"name": "Anna", "age": 20, "tags": ["b"], "address": {"city": "Rome"}},
            {"name": "bob", "age": 40, "tags": [], "nk": "B"},
        ],
    )
    s = sessions.open()

    def names(**lookups: Any) -> list[str]:
        return sorted(p.name for p in s.filter(SxPerson, **lookups))

    assert names(name="ann") == ["ann"]
    assert names(age__gt=20) == ["ann", "bob"]
    assert names(age__gte=30) == ["ann", "bob"]
    assert names(age__lt=30) == ["Anna"]
    assert names(age__lte=30) == ["Anna", "ann"]
    assert names(age__ne=30) == ["Anna", "bob"]
    assert names(age__in=[20, 40]) == ["Anna", "bob"]
    assert names(age__nin=[20, 40]) == ["ann"]
    assert names(nick__exists=True) == ["bob"]
    assert names(tags__contains="a") == ["ann"]
    assert names(name__startswith="An") == ["Anna"]
    assert names(name__icontains="AN") == ["Anna", "ann"]
    assert names(address__city="Oslo") == ["ann"]
    assert names(nick="B") == ["bob"]  # the stored name nk is used
    assert sorted(p.name for p in s.filter(SxPerson, SxPerson.address.city == "Rome")) == ["Anna"]


def test_a_lookup_value_is_data_never_an_operator(sessions: Sessions) -> None:
    s = sessions.open()
    with pytest.raises(ValidationError):
        s.filter(SxPerson, name={"$ne": None})


def test_raw_shows_the_filter(sessions: Sessions) -> None:
    s = sessions.open()
    assert s.query(SxFlat).raw() == {}
    assert s.query(SxFlat).filter(n__gt=3).filter(name="x").raw() == {
        "n": {"$gt": 3},
        "name": "x",
    }
    assert s.query(SxPerson).filter(nick="A").raw() == {"nk": "A"}
    assert s.query(SxDog).raw() == {"_cls": "SxDog"}
    assert s.query(SxAnimal, exclude_subclasses=True).raw() == {"_cls": {"$exists": False}}
    assert s.query(SxAnimal).raw() == {}


def test_iteration_is_streamed(sessions: Sessions) -> None:
    _ = insert_raw(sessions.db, "flats", [{"name": f"f{i}", "n": i} for i in range(300)])
    s = sessions.open(cache_size=None)
    iterator = iter(s.query(SxFlat).sort("n"))
    first = next(iterator)
    assert first.n == 0
    assert s.stats().identity_map_size == 1  # one loaded, not three hundred
    assert [doc.n for doc in iterator][-1] == 299
    assert s.stats().identity_map_size == 300


def test_all_gives_the_objects_iteration_gives(sessions: Sessions, ten: list[Any]) -> None:
    s = sessions.open()
    early = s.get(SxFlat, ten[3])
    listed = s.query(SxFlat).sort("n").all()
    assert _ns(listed) == list(range(10))
    assert listed[3] is early  # the identity map's object, not a second one
    assert [doc is listed[i] for i, doc in enumerate(s.query(SxFlat).sort("n"))] == [True] * 10
    assert s.stats().identity_map_size == 10


def test_a_result_that_fails_midway_keeps_its_loaded_documents_tracked(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann_id, bob_id = insert_raw(
        sessions.db, "people", [{"name": "ann", "tags": ["a"]}, {"name": "bob", "tags": []}]
    )
    s = sessions.open()
    first_only = stored_one(sessions.db, "people", ann_id)

    def cursor_lost(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield first_only
        raise RuntimeError("connection lost mid-result")

    monkeypatch.setattr(s._channel, "find", cursor_lost)
    with pytest.raises(RuntimeError, match="mid-result"):
        s.query(SxPerson).all()
    monkeypatch.undo()
    ann = s.get(SxPerson, ann_id)  # tracked by the failed query: no read
    assert ann is not None and s.stats().queries == 0
    ann.tags.append("b")  # in place: the query below autoflushes only if it knows
    assert s.query(SxPerson).filter(tags="b").count() == 1
    assert s.stats().flushes == 1
    s.commit()
    assert stored_one(sessions.db, "people", ann_id)["tags"] == ["a", "b"]
    assert stored_one(sessions.db, "people", bob_id)["tags"] == []


# ------------------------------------------------------------------------ fields


def test_fields_loads_partial_documents(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(
        sessions.db, "people", [{"name": "ann", "age": 7, "tags": ["a"], "nk": "A"}]
    )
    s = sessions.open()
    ann = s.query(SxPerson).fields("name", SxPerson.tags).one()
    assert (ann.id, ann.name, ann.tags) == (doc_id, "ann", ["a"])
    with pytest.raises(FieldNotLoaded, match=r"SxPerson\.age"):
        _ = ann.age
    with pytest.raises(AttributeError):  # FieldNotLoaded is an AttributeError
        _ = ann.nick
    assert not s.is_dirty(ann)
    assert s.flush() == FlushResult()


def test_saving_a_partial_document_never_clears_the_fields_not_loaded(
    sessions: Sessions,
) -> None:
    (doc_id,) = insert_raw(
        sessions.db,
        "people",
        [{"name": "ann", "age": 7, "tags": ["a"], "nk": "A", "address": {"city": "Oslo"}}],
    )
    s = sessions.open()
    ann = s.query(SxPerson).fields("name", "tags").one()
    ann.name = "Ann"
    ann.tags.append("b")
    assert s.dirty_fields(ann) == ["name", "tags"]
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    ann.age = 8  # assigning a field that was not loaded makes it loaded
    assert ann.age == 8
    s.commit()
    assert stored_one(sessions.db, "people", doc_id) == {
        "_id": doc_id,
        "name": "Ann",
        "age": 8,
        "tags": ["a", "b"],
        "nk": "A",
        "address": {"city": "Oslo"},
    }


def test_a_full_read_completes_a_partial_document(sessions: Sessions) -> None:
    insert_raw(sessions.db, "people", [{"name": "ann", "age": 7}])
    s = sessions.open()
    partial = s.query(SxPerson).fields("name").one()
    with pytest.raises(FieldNotLoaded):
        _ = partial.age
    full = s.query(SxPerson).one()
    assert full is partial
    assert partial.age == 7
    assert not s.is_dirty(partial)
    assert s.flush() == FlushResult()


def test_refresh_completes_a_partial_document(sessions: Sessions) -> None:
    insert_raw(sessions.db, "people", [{"name": "ann", "age": 7}])
    s = sessions.open()
    partial = s.query(SxPerson).fields("name").one()
    s.refresh(partial)
    assert partial.age == 7


def test_fields_of_a_subclass_keep_the_class(sessions: Sessions) -> None:
    s = sessions.open()
    s.add_all([SxDog(name="rex", good=False), SxCat(name="tom")])
    s.commit()
    other = sessions.open()
    loaded = other.query(SxAnimal).fields("name").sort("name").all()
    assert [type(a) for a in loaded] == [SxDog, SxCat]
    with pytest.raises(FieldNotLoaded):
        _ = loaded[0].good  # type: ignore[attr-defined]


class RdVersioned(Document):
    __collection__ = "rd_versioned"

    name: str
    n: int = 0
    version: int = field(default=0, version=True)


class RdTenantDoc(Document):
    __collection__ = "rd_tenant_docs"
    __shard_key__ = ("tenant",)

    tenant: str
    body: str = ""


def test_a_partial_versioned_document_updates_and_deletes_on_its_stored_version(
    sessions: Sessions,
) -> None:
    first, second = insert_raw(
        sessions.db,
        "rd_versioned",
        [{"name": "a", "n": 1, "version": 3}, {"name": "b", "n": 2, "version": 5}],
    )
    s = sessions.open()
    a, b = s.query(RdVersioned).fields("name").sort("name").all()
    assert (a.version, b.version) == (3, 5)  # loaded although not named
    a.name = "A"
    s.delete(b)
    assert s.flush() == FlushResult(updated=1, deleted=1, round_trips=2)
    s.commit()
    assert stored(sessions.db, "rd_versioned") == [
        {"_id": first, "name": "A", "n": 1, "version": 4}
    ]
    assert second not in {doc["_id"] for doc in stored(sessions.db, "rd_versioned")}


def test_a_partial_document_targets_its_stored_shard_key(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "rd_tenant_docs", [{"tenant": "t1", "body": "x"}])
    s = sessions.open()
    doc = s.query(RdTenantDoc).fields("body").one()
    assert doc.tenant == "t1"
    doc.body = "y"
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    assert stored_one(sessions.db, "rd_tenant_docs", doc_id) == {
        "_id": doc_id,
        "tenant": "t1",
        "body": "y",
    }


def test_fields_refuses_unknown_names(sessions: Sessions) -> None:
    s = sessions.open()
    with pytest.raises(ValidationError, match="no field 'nope'"):
        s.query(SxPerson).fields("nope")


# --------------------------------------------------------------------- subclasses


def test_subclass_queries(sessions: Sessions) -> None:
    s = sessions.open()
    s.add_all([SxAnimal(name="generic"), SxDog(name="rex"), SxCat(name="tom"), SxDog(name="ace")])
    s.commit()
    raw = {d["name"]: d.get("_cls") for d in stored(sessions.db, "animals")}
    assert raw == {"generic": None, "rex": "SxDog", "tom": "SxCat", "ace": "SxDog"}

    other = sessions.open()
    everything = other.query(SxAnimal).sort("name").all()
    assert [(type(a).__name__, a.name) for a in everything] == [
        ("SxDog", "ace"),
        ("SxAnimal", "generic"),
        ("SxDog", "rex"),
        ("SxCat", "tom"),
    ]
    assert [a.name for a in other.query(SxAnimal, exclude_subclasses=True)] == ["generic"]
    assert sorted(d.name for d in other.query(SxDog)) == ["ace", "rex"]
    assert other.count(SxCat) == 1
    assert other.count(SxAnimal) == 4
    assert other.query(SxDog, exclude_subclasses=True).count() == 2


def test_a_stored_document_without_cls_loads_as_the_root(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "animals", [{"name": "plain"}])
    s = sessions.open()
    loaded = s.get(SxAnimal, doc_id)
    assert type(loaded) is SxAnimal
    assert s.get(SxDog, doc_id) is None


# ------------------------------------------------------------------ remove_query


def test_remove_query_deletes_now_and_detaches(sessions: Sessions, ten: list[Any]) -> None:
    s = sessions.open()
    low = s.query(SxFlat).filter(n__lt=3).all()
    high = s.get(SxFlat, ten[9])
    assert s.remove_query(SxFlat).filter(SxFlat.n < 3).execute() == 3
    assert [s.state(d) for d in low] == [ObjectState.DETACHED] * 3
    assert s.state(high) is ObjectState.PERSISTENT  # type: ignore[arg-type]
    assert s.count(SxFlat) == 7
    assert s.remove_query(SxFlat).filter(n=100).execute() == 0
    s.commit()
    assert sorted(d["n"] for d in stored(sessions.db, "flats")) == list(range(3, 10))


def test_remove_query_autoflushes_first(sessions: Sessions, ten: list[Any]) -> None:
    s = sessions.open()
    pending = SxFlat(name="pending", n=-1)
    s.add(pending)
    changed = s.get(SxFlat, ten[5])
    assert changed is not None
    changed.n = -5
    assert s.remove_query(SxFlat).filter(n__lt=0).execute() == 2
    assert s.state(pending) is ObjectState.DETACHED
    assert s.state(changed) is ObjectState.DETACHED
    s.commit()
    assert len(stored(sessions.db, "flats")) == 9


def test_remove_query_of_a_subclass(sessions: Sessions) -> None:
    s = sessions.open()
    s.add_all([SxAnimal(name="generic"), SxDog(name="rex"), SxCat(name="tom")])
    s.flush()
    assert s.remove_query(SxDog).execute() == 1
    s.commit()
    assert sorted(d["name"] for d in stored(sessions.db, "animals")) == ["generic", "tom"]


# ------------------------------------------------------------------- dereference


def test_dereference(sessions: Sessions) -> None:
    (person_id,) = insert_raw(sessions.db, "people", [{"name": "ann"}])
    s = sessions.open()
    post = SxPost(title="t", author=person_id)
    assert post.author == Ref(SxPerson, person_id)
    ann = s.dereference(post.author)
    assert ann is not None
    assert ann.name == "ann"
    queries = s.stats().queries
    assert s.dereference(Ref(SxPerson, person_id)) is ann
    assert s.stats().queries == queries  # a hit: no query
    assert s.dereference(ann) is ann

    dangling = Ref(SxPerson, bson.ObjectId())
    with pytest.raises(NotFound, match="allow_none"):
        s.dereference(dangling)
    assert s.dereference(dangling, allow_none=True) is None
    with pytest.raises(ValidationError):
        s.dereference(person_id)
    queries = s.stats().queries
    assert s.dereference(None) is None  # an empty Ref | None field: nothing to load
    assert s.stats().queries == queries


# --------------------------------------------------------------------- autoflush


def test_queries_autoflush_so_a_session_reads_its_own_writes(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    s.add(ann)
    assert s.count(SxPerson) == 1
    assert s.state(ann) is ObjectState.PERSISTENT
    ann.tags.append("in-place")
    assert s.filter(SxPerson, tags__contains="in-place") == [ann]
    ann.age = 5
    assert s.query(SxPerson).filter(age=5).first() is ann
    s.delete(ann)
    assert s.all(SxPerson) == []


def test_without_autoflush_queries_do_not_flush(sessions: Sessions) -> None:
    s = sessions.open(autoflush=False)
    ann = SxPerson(name="ann")
    s.add(ann)
    assert s.count(SxPerson) == 0
    assert s.all(SxPerson) == []
    assert s.state(ann) is ObjectState.PENDING
    assert s.stats().round_trips == 0
    s.flush()
    assert s.count(SxPerson) == 1


def test_an_in_place_change_elsewhere_does_not_flush_a_query(sessions: Sessions) -> None:
    (person_id,) = insert_raw(sessions.db, "people", [{"name": "ann"}])
    s = sessions.open()
    ann = s.get(SxPerson, person_id)
    assert ann is not None
    ann.tags.append("x")
    assert s.count(SxOrder) == 0  # another collection: its result cannot change
    assert s.stats().round_trips == 0
    assert s.count(SxPerson, tags__contains="x") == 1
    assert s.stats().round_trips == 1


# --------------------------------------------------------- cursor batches (wire)


def test_iteration_fetches_batches_as_it_goes(secantus_listened_db: Any, command_log: Any) -> None:
    insert_raw(secantus_listened_db, "flats", [{"name": f"f{i}", "n": i} for i in range(250)])
    with Session(secantus_listened_db, cache_size=0) as s:
        command_log.clear()
        iterator = iter(s.query(SxFlat))
        next(iterator)
        assert command_log.names() == ["find"]  # the first batch only
        assert sum(1 for _ in iterator) == 249
        assert command_log.names() == ["find", "getMore"]
        stats = s.stats()
        assert (stats.queries, stats.requests) == (1, 2)  # a batch is a request, not a query


def test_max_requests_counts_cursor_batches(secantus_listened_db: Any, command_log: Any) -> None:
    insert_raw(secantus_listened_db, "flats", [{"name": f"f{i}", "n": i} for i in range(250)])
    with Session(secantus_listened_db, max_requests=1, cache_size=0) as s:
        command_log.clear()
        with pytest.raises(TooManyRequests, match="max_requests=1"):
            list(s.query(SxFlat))
        # The getMore was not sent (the cursor is closed: killCursors is clean-up).
        assert "getMore" not in command_log.names()
        assert command_log.names()[0] == "find"
        assert s.stats().requests == 1
        s.rollback()
