"""Change tracking by snapshot: in-place mutation is found, only changed paths are
sent with the operators of SPEC "Documents", a clean flush sends nothing, and the
diff stays cheap.

Tests taking ``db`` run on both lanes and check what the database ends up
holding, often with another writer changing other paths meanwhile (which only a
path-by-path update leaves alone). The tests taking ``command_log`` run on
SecantusDB only: a pymongo CommandListener needs a wire-protocol server, and
they assert the exact update documents sent.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest

import uow._flush
from uow import ValidationError
from uow._tracker import Tracker
from uow.session import FlushResult, Session

from ._support import (
    Sessions,
    SxAddress,
    SxCounter,
    SxFlat,
    SxPerson,
    insert_raw,
    sessions_on,
    stored_one,
)


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


def _load_person(sessions: Sessions, raw: dict[str, Any]) -> tuple[Session, SxPerson]:
    (doc_id,) = insert_raw(sessions.db, "people", [raw])
    s = sessions.open()
    person = s.get(SxPerson, doc_id)
    assert person is not None
    return s, person


def _stored(sessions: Sessions, obj: Any, collection: str = "people") -> dict[str, Any]:
    found = stored_one(sessions.db, collection, obj.id)
    assert found is not None
    return found


# ----------------------------------------------------------- in-place mutation


def test_list_append_in_place_is_found_and_stored(sessions: Sessions) -> None:
    s, ann = _load_person(sessions, {"name": "ann", "tags": ["a"]})
    ann.tags.append("b")
    ann.tags.extend(["c", "d"])
    assert s.is_dirty(ann)
    assert s.dirty_fields(ann) == ["tags"]
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    assert not s.is_dirty(ann)
    s.commit()
    assert _stored(sessions, ann)["tags"] == ["a", "b", "c", "d"]


def test_list_removal_and_reordering_in_place(sessions: Sessions) -> None:
    s, ann = _load_person(sessions, {"name": "ann", "tags": ["a", "b", "c"]})
    ann.tags.remove("b")
    ann.tags.reverse()
    s.commit()
    assert _stored(sessions, ann)["tags"] == ["c", "a"]


def test_set_changes_in_place_are_stored_as_an_array(sessions: Sessions) -> None:
    s, ann = _load_person(sessions, {"name": "ann", "labels": ["x", "y"]})
    assert ann.labels == {"x", "y"}
    ann.labels.add("z")
    ann.labels.discard("x")
    assert s.dirty_fields(ann) == ["labels"]
    s.commit()
    labels = _stored(sessions, ann)["labels"]
    assert isinstance(labels, list)
    assert sorted(labels) == ["y", "z"]


def test_set_additions_are_add_to_set_so_two_sessions_keep_one_of_each(
    sessions: Sessions,
) -> None:
    first, ann = _load_person(sessions, {"name": "ann", "labels": ["x", "y"]})
    second = sessions.open()
    same_ann = second.get(SxPerson, ann.id)
    assert same_ann is not None
    ann.labels |= {"q", "z"}
    first.commit()
    same_ann.labels.add("z")  # already stored by the other session
    second.commit()
    labels = _stored(sessions, ann)["labels"]
    assert sorted(labels) == ["q", "x", "y", "z"]  # nothing lost, nothing twice


def test_dict_changes_in_place(sessions: Sessions) -> None:
    s, ann = _load_person(sessions, {"name": "ann", "scores": {"keep": 1, "drop": 2, "bump": 3}})
    ann.scores["new"] = 4
    ann.scores["bump"] += 1
    del ann.scores["drop"]
    assert s.what_changed() == {
        ("people", ann.id): {
            "scores.new": (None, 4),
            "scores.bump": (3, 4),
            "scores.drop": (2, None),
        }
    }
    s.commit()
    assert _stored(sessions, ann)["scores"] == {"keep": 1, "bump": 4, "new": 4}


def test_embedded_document_changes_in_place(sessions: Sessions) -> None:
    s, ann = _load_person(
        sessions,
        {
            "name": "ann",
            "address": {"city": "Oslo", "zip": "0150"},
            "places": [{"city": "Rome"}, {"city": "Paris"}],
        },
    )
    assert ann.address is not None
    ann.address.city = "Bergen"
    ann.places[1].city = "Lyon"
    ann.places.append(SxAddress(city="Nice"))
    assert s.dirty_fields(ann) == ["address", "places"]
    s.commit()
    doc = _stored(sessions, ann)
    assert doc["address"] == {"city": "Bergen", "zip": "0150"}
    # A list changed inside an element and appended to: the change on its
    # positional path, the new element pushed. The zips missing from the stored
    # elements loaded as the default, None, which is no change: still missing.
    assert doc["places"] == [
        {"city": "Rome"},
        {"city": "Lyon"},
        {"city": "Nice", "zip": None},
    ]


def test_only_changed_paths_are_written(sessions: Sessions) -> None:
    s, ann = _load_person(
        sessions,
        {"name": "ann", "age": 1, "tags": ["a"], "address": {"city": "Oslo", "zip": "1"}},
    )
    # Another writer changes other paths between our load and our flush: an
    # update of only the changed paths leaves them alone; a whole-document
    # write would put the old values back.
    sessions.db.people.update_one(
        {"_id": ann.id}, {"$set": {"age": 50, "address.zip": "2", "other": True}}
    )
    ann.tags.append("b")
    assert ann.address is not None
    ann.address.city = "Bergen"
    s.commit()
    doc = _stored(sessions, ann)
    assert (doc["age"], doc["other"], doc["tags"]) == (50, True, ["a", "b"])
    assert doc["address"] == {"city": "Bergen", "zip": "2"}


def test_appends_of_two_sessions_are_both_kept(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "people", [{"name": "ann", "tags": ["a"]}])
    first, second = sessions.open(), sessions.open()
    mine, theirs = first.get(SxPerson, doc_id), second.get(SxPerson, doc_id)
    assert mine is not None and theirs is not None
    mine.tags.append("first")
    theirs.tags.append("second")
    first.commit()
    second.commit()
    assert stored_one(sessions.db, "people", doc_id)["tags"] == [  # type: ignore[index]
        "a",
        "first",
        "second",
    ]
    assert theirs.tags == ["a", "second"]  # in memory: what this session computed


def test_a_wrong_value_put_in_place_is_refused_at_flush(sessions: Sessions) -> None:
    s, ann = _load_person(sessions, {"name": "ann", "tags": ["a"]})
    ann.tags.append(1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"SxPerson.*tags"):
        s.flush()
    assert s.is_dirty(ann)
    ann.tags[-1] = "b"
    s.commit()
    assert _stored(sessions, ann)["tags"] == ["a", "b"]


def test_a_wrong_value_put_in_place_beside_an_assignment_is_refused_at_flush(
    sessions: Sessions,
) -> None:
    s, ann = _load_person(sessions, {"name": "ann", "tags": ["a"]})
    ann.name = "anna"  # an assignment marks the document; the in-place change is found too
    ann.tags.append(1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"SxPerson.*tags"):
        s.flush()
    ann.tags[-1] = "b"
    s.commit()
    assert _stored(sessions, ann)["tags"] == ["a", "b"]
    assert _stored(sessions, ann)["name"] == "anna"


def test_stored_values_nobody_changed_are_not_checked_when_another_field_is_assigned(
    sessions: Sessions,
) -> None:
    # Stored data of another shape loads as it was; a flush writes only the
    # assigned field, so what it never writes it does not refuse either.
    s, ann = _load_person(sessions, {"name": "ann", "tags": ["a", 2]})
    ann.name = "anna"
    s.commit()
    assert _stored(sessions, ann)["tags"] == ["a", 2]
    assert _stored(sessions, ann)["name"] == "anna"


# ------------------------------------------------------------ declared operators


def test_inc_sends_the_delta_so_concurrent_increments_add_up(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"hits": 10}])
    first, second = sessions.open(), sessions.open()
    a, b = first.get(SxCounter, doc_id), second.get(SxCounter, doc_id)
    assert a is not None and b is not None
    a.hits += 1
    b.hits += 5
    first.commit()
    second.commit()
    assert stored_one(sessions.db, "counters", doc_id)["hits"] == 16  # type: ignore[index]
    assert (a.hits, b.hits) == (11, 15)


def test_max_and_min_let_the_server_keep_the_larger_and_smaller(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"best": 1, "worst": 50}])
    s = sessions.open()
    counter = s.get(SxCounter, doc_id)
    assert counter is not None
    sessions.db.counters.update_one({"_id": doc_id}, {"$set": {"best": 10, "worst": 2}})
    counter.best = 5
    counter.worst = 7
    s.commit()
    doc = stored_one(sessions.db, "counters", doc_id)
    assert doc is not None
    assert (doc["best"], doc["worst"]) == (10, 2)


def test_push_and_add_to_set_of_two_sessions(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"log": ["start"], "kinds": ["a"]}])
    first, second = sessions.open(), sessions.open()
    a, b = first.get(SxCounter, doc_id), second.get(SxCounter, doc_id)
    assert a is not None and b is not None
    a.log.append("first")
    a.kinds.append("x")
    b.log.append("second")
    b.kinds += ["x", "y"]
    first.commit()
    second.commit()
    doc = stored_one(sessions.db, "counters", doc_id)
    assert doc is not None
    assert doc["log"] == ["start", "first", "second"]
    assert doc["kinds"] == ["a", "x", "y"]


def test_a_list_change_push_cannot_express_falls_back_to_set(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"log": ["a", "b"], "kinds": ["x", "y"]}])
    s = sessions.open()
    counter = s.get(SxCounter, doc_id)
    assert counter is not None
    counter.log.remove("a")
    counter.kinds.remove("x")
    s.commit()
    doc = stored_one(sessions.db, "counters", doc_id)
    assert doc is not None
    assert (doc["log"], doc["kinds"]) == (["b"], ["y"])


def test_set_operator_writes_the_whole_field(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"blob": {"a": 1}}])
    s = sessions.open()
    counter = s.get(SxCounter, doc_id)
    assert counter is not None
    sessions.db.counters.update_one({"_id": doc_id}, {"$set": {"blob.other": 9}})
    counter.blob["b"] = 2  # a dotted $set would keep "other"; the whole field does not
    s.commit()
    assert stored_one(sessions.db, "counters", doc_id)["blob"] == {  # type: ignore[index]
        "a": 1,
        "b": 2,
    }


def test_current_date_is_set_by_the_server_and_reloaded(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"note": "x"}])
    s = sessions.open()
    counter = s.get(SxCounter, doc_id)
    assert counter is not None
    assert counter.seen is None
    counter.note = "y"
    s.flush()
    queries = s.stats().queries
    again = s.get(SxCounter, doc_id)  # the server decided a value: read it
    assert again is counter
    assert s.stats().queries == queries + 1
    assert isinstance(counter.seen, datetime.datetime)
    assert s.get(SxCounter, doc_id) is counter
    assert s.stats().queries == queries + 1  # read once, then the map answers again
    s.commit()
    stored_seen = stored_one(sessions.db, "counters", doc_id)["seen"]  # type: ignore[index]
    assert isinstance(stored_seen, datetime.datetime)


def test_current_date_is_read_from_the_server_when_the_field_is_read(
    sessions: Sessions,
) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"note": "x", "hits": 1}])
    s = sessions.open()
    counter = s.get(SxCounter, doc_id)
    assert counter is not None
    counter.note = "y"
    s.flush()
    queries = s.stats().queries
    counter.hits += 2  # a change made before the read is kept, and not reloaded
    seen = counter.seen  # the first read of the field loads it: one query
    assert isinstance(seen, datetime.datetime)
    assert s.stats().queries == queries + 1
    assert counter.seen == seen
    assert s.stats().queries == queries + 1  # loaded once
    assert counter.hits == 3
    assert s.dirty_fields(counter) == ["hits"]  # the loaded value is no change
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    stored_doc = stored_one(sessions.db, "counters", doc_id)
    assert stored_doc is not None and stored_doc["hits"] == 3
    assert isinstance(stored_doc["seen"], datetime.datetime)


def test_current_date_not_read_before_the_session_lets_go_is_read_then(
    sessions: Sessions,
) -> None:
    (doc_id,) = insert_raw(sessions.db, "counters", [{"note": "x"}])
    s = sessions.open()
    counter = s.get(SxCounter, doc_id)
    assert counter is not None
    counter.note = "y"
    s.commit()
    s.close()  # reads the date the server set, before letting go
    stored_doc = sessions.db.counters.find_one({"_id": doc_id})
    assert isinstance(counter.seen, datetime.datetime)
    assert counter.seen == stored_doc["seen"]
    other = sessions.open()
    kept = other.get(SxCounter, doc_id)
    assert kept is not None
    kept.note = "z"
    other.flush()
    other.expunge(kept)  # read in the session (its transaction, if any)
    assert isinstance(kept.seen, datetime.datetime)
    assert kept.seen >= counter.seen
    other.commit()
    assert kept.seen == sessions.db.counters.find_one({"_id": doc_id})["seen"]


# --------------------------------------------------------- what is not a change


def test_a_clean_flush_sends_nothing(sessions: Sessions) -> None:
    insert_raw(
        sessions.db,
        "people",
        [
            {
                "name": f"p{i}",
                "tags": ["a"],
                "labels": ["b", "a"],
                "scores": {"z": 1, "a": 2},
                "address": {"city": "Oslo"},
                "places": [{"city": "Rome", "zip": None}],
            }
            for i in range(20)
        ],
    )
    insert_raw(sessions.db, "counters", [{"hits": 1, "log": ["x"]}])
    s = sessions.open()
    people = s.all(SxPerson)
    counters = s.all(SxCounter)
    requests = s.stats().requests
    assert len(people) == 20 and len(counters) == 1
    assert not s.has_changes()
    assert s.flush() == FlushResult()
    assert s.stats().requests == requests
    assert s.stats().round_trips == 0


def test_a_missing_key_loads_as_the_default_and_is_not_a_change(sessions: Sessions) -> None:
    s, ann = _load_person(sessions, {"name": "ann"})
    assert (ann.visits, ann.tags, ann.scores, ann.address) == (0, [], {}, None)
    assert not s.is_dirty(ann)
    assert s.flush() == FlushResult()
    ann.age = 3
    s.commit()
    doc = _stored(sessions, ann)
    assert doc["age"] == 3
    assert "tags" not in doc  # nothing written for a default nobody changed
    assert "visits" not in doc


def test_unknown_keys_are_kept_at_every_depth(sessions: Sessions) -> None:
    raw = {
        "name": "ann",
        "legacy": {"x": 1},
        "address": {"city": "Oslo", "floor": 3},
        "places": [{"city": "Rome", "note": "keep"}],
    }
    s, ann = _load_person(sessions, dict(raw))
    assert ann.address is not None
    ann.address.city = "Bergen"
    ann.places.append(SxAddress(city="Nice"))
    ann.name = "Ann"
    s.commit()
    doc = _stored(sessions, ann)
    assert doc["legacy"] == {"x": 1}
    assert doc["address"] == {"city": "Bergen", "floor": 3}
    assert doc["places"][0] == {"city": "Rome", "note": "keep"}
    assert doc["name"] == "Ann"


def test_assigning_the_same_value_back_is_not_a_change(sessions: Sessions) -> None:
    s, ann = _load_person(sessions, {"name": "ann", "tags": ["a"]})
    ann.name = "bob"
    ann.name = "ann"
    ann.tags = ["a"]
    assert not s.is_dirty(ann)
    assert s.flush() == FlushResult()


# ------------------------------------------------------------------ cheap diffs


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_a_flush_of_10000_clean_documents_serializes_none_of_them(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 10_000
    insert_raw(sessions.db, "people", [{"name": f"p{i}", "tags": ["t"]} for i in range(n)])
    insert_raw(sessions.db, "flats", [{"name": f"f{i}"} for i in range(n)])
    s = sessions.open(cache_size=None)
    people = s.all(SxPerson)
    flats = s.all(SxFlat)
    assert s.stats().identity_map_size == 2 * n
    to_bson_person = _count_calls(monkeypatch, SxPerson, "_uow_to_bson")
    to_bson_flat = _count_calls(monkeypatch, SxFlat, "_uow_to_bson")
    new_snapshots = _count_calls(monkeypatch, uow._flush, "snapshot_and_update")
    plain_sets = _count_calls(monkeypatch, SxFlat, "_uow_plain_sets")

    assert s.flush() == FlushResult()
    # A document nobody assigned to can only have changed in place: its lists
    # are compared with the snapshot, and nothing is serialized. One without
    # lists is not looked at at all.
    assert to_bson_person[0] == 0
    assert to_bson_flat[0] == 0

    people[7].tags.append("x")
    flats[7].n = 1
    assert s.flush() == FlushResult(updated=2, round_trips=2)
    # Only the two changed documents are diffed, once each, and neither is
    # serialized whole: only the fields that can differ are dumped (the one
    # changed by a plain assignment by its class's generated $set).
    assert new_snapshots[0] == 1
    assert plain_sets[0] == 1
    assert to_bson_person[0] == 0
    assert to_bson_flat[0] == 0
    assert s.flush() == FlushResult()


def test_a_loop_of_queries_looks_at_no_tracked_document_that_cannot_change_in_place(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = insert_raw(sessions.db, "flats", [{"name": f"f{i}"} for i in range(300)])
    s = sessions.open()
    compared = _count_calls(monkeypatch, Tracker, "has_change")
    for stored_id in ids:  # each query autoflushes; 300 tracked documents at the end
        assert s.filter(SxFlat, id=stored_id)[0].name.startswith("f")
    # SxFlat has no list, dict or embedded field: nothing to look at, query after query.
    assert compared[0] == 0


def test_autoflush_still_finds_an_in_place_change_among_many_tracked(
    sessions: Sessions,
) -> None:
    insert_raw(sessions.db, "people", [{"name": f"p{i}", "tags": []} for i in range(50)])
    s = sessions.open()
    people = s.all(SxPerson)
    people[31].tags.append("found")
    assert [p.name for p in s.filter(SxPerson, tags__contains="found")] == ["p31"]


# ------------------------------------------------- the exact updates on the wire


def _updates_sent(command_log: Any) -> list[dict[str, Any]]:
    return [stmt for cmd in command_log.of("update") for stmt in cmd["updates"]]


def test_default_operators_on_the_wire(secantus_listened_db: Any, command_log: Any) -> None:
    (doc_id,) = insert_raw(
        secantus_listened_db,
        "people",
        [
            {
                "name": "ann",
                "tags": ["a"],
                "scores": {"x": 1, "y": 1},
                "address": {"city": "Oslo", "zip": None},
                "places": [{"city": "Rome", "zip": None}],
            }
        ],
    )
    with Session(secantus_listened_db) as s:
        ann = s.get(SxPerson, doc_id)
        assert ann is not None
        command_log.clear()
        ann.name = "Ann"
        ann.nick = "A"
        ann.visits += 2
        ann.tags.append("b")
        ann.scores["y"] = 2
        ann.scores["z"] = 3
        del ann.scores["x"]
        assert ann.address is not None
        ann.address.city = "Bergen"
        ann.places[0].city = "Lyon"
        s.flush()
    (statement,) = _updates_sent(command_log)
    assert statement["q"] == {"_id": doc_id}
    assert statement["u"] == {
        "$set": {
            "name": "Ann",
            "nk": "A",
            # The stored document has no visits: a $inc would apply to what is not
            # there, so its first change is a $set of the whole value.
            "visits": 2,
            "scores.y": 2,
            "scores.z": 3,
            "address.city": "Bergen",
            # Inside an element of a list that kept its length: its positional path.
            "places.0.city": "Lyon",
        },
        "$unset": {"scores.x": ""},
        "$push": {"tags": {"$each": ["b"]}},
    }


def test_declared_operators_on_the_wire(secantus_listened_db: Any, command_log: Any) -> None:
    (doc_id,) = insert_raw(
        secantus_listened_db,
        "counters",
        [{"hits": 1, "best": 1, "worst": 9, "log": ["a"], "kinds": ["k"], "blob": {"a": 1}}],
    )
    with Session(secantus_listened_db) as s:
        counter = s.get(SxCounter, doc_id)
        assert counter is not None
        command_log.clear()
        counter.hits += 4
        counter.best = 5
        counter.worst = 3
        counter.log.append("b")
        counter.kinds.append("l")
        counter.blob["b"] = 2
        s.flush()
    (statement,) = _updates_sent(command_log)
    assert statement["u"] == {
        "$inc": {"hits": 4},
        "$max": {"best": 5},
        "$min": {"worst": 3},
        "$push": {"log": {"$each": ["b"]}},
        "$addToSet": {"kinds": {"$each": ["l"]}},
        "$set": {"blob": {"a": 1, "b": 2}},
        "$currentDate": {"seen": True},
    }


def test_a_clean_flush_sends_no_command(secantus_listened_db: Any, command_log: Any) -> None:
    insert_raw(
        secantus_listened_db, "people", [{"name": f"p{i}", "tags": ["a"]} for i in range(50)]
    )
    with Session(secantus_listened_db) as s:
        loaded = s.all(SxPerson)
        assert len(loaded) == 50
        command_log.clear()
        assert s.flush() == FlushResult()
        assert command_log.names() == []
