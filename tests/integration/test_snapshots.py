"""Snapshots share nothing with documents, and compare as BSON stores values.

A snapshot is a stored-form dict (the driver's own document when it can be);
these tests pin down what that design must never get wrong: an in-place change
seen after every way a snapshot is made, values that are equal in Python but
not in BSON, values that differ in Python but are stored alike, and identity
keys that must not collide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import bson
import pytest

from uow import Document, Embedded, field
from uow.session import FlushResult

from ._support import Sessions, insert_raw, sessions_on, stored_one


class SnTagged(Document):
    __collection__ = "sn_tagged"

    name: str
    tags: list[str] = field(factory=list)
    ratios: list[float] = field(factory=list)
    counts: dict[str, int] = field(factory=dict)
    seen: list[dt.datetime] = field(factory=list)


class SnPlace(Embedded):
    city: str
    codes: list[str] = field(factory=list)


class SnWithPlace(Document):
    __collection__ = "sn_places"

    name: str
    place: SnPlace | None = None
    labels: set[str] = field(factory=set)


class SnStamp(Document):
    __collection__ = "sn_stamps"

    at: dt.datetime


class SnOidId(Document):
    __collection__ = "sn_ids"

    name: str = ""


class SnBytesId(Document):
    __collection__ = "sn_ids"

    id: bytes = field(factory=lambda: b"")  # type: ignore[assignment]
    name: str = ""


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


# ------------------------------------------- in-place changes, however the snapshot was made


def test_a_change_in_place_is_seen_after_a_load_whose_document_is_the_snapshot(
    sessions: Sessions,
) -> None:
    (doc_id,) = insert_raw(
        sessions.db,
        "sn_tagged",
        [{"name": "a", "tags": ["x"], "ratios": [1.5], "counts": {"k": 1}, "seen": []}],
    )
    s = sessions.open()
    doc = s.get(SnTagged, doc_id)
    assert doc is not None
    doc.tags.append("y")
    doc.counts["k"] += 1
    assert s.flush().updated == 1
    s.commit()  # (a transaction where the server has them)
    stored = stored_one(sessions.db, "sn_tagged", doc_id)
    assert stored["tags"] == ["x", "y"] and stored["counts"] == {"k": 2}
    # ... and again after that flush made the next snapshot.
    doc.tags.append("z")
    assert s.flush().updated == 1
    s.commit()
    assert stored_one(sessions.db, "sn_tagged", doc_id)["tags"] == ["x", "y", "z"]
    assert s.flush() == FlushResult()


def test_a_change_in_place_is_seen_after_an_insert(sessions: Sessions) -> None:
    s = sessions.open()
    tags = ["x"]
    doc = SnTagged(name="a", tags=tags)
    s.add(doc)
    s.commit()
    tags.append("y")  # the caller's own list is the document's
    assert s.is_dirty(doc)
    assert s.flush().updated == 1
    s.commit()
    assert stored_one(sessions.db, "sn_tagged", doc.id)["tags"] == ["x", "y"]


def test_a_change_in_place_is_seen_in_a_snapshot_made_by_dumping(sessions: Sessions) -> None:
    # A set and an embedded document do not round-trip as stored: the snapshot is
    # the object's dump, its containers copied.
    (doc_id,) = insert_raw(
        sessions.db,
        "sn_places",
        [{"name": "a", "place": {"city": "Oslo", "codes": ["0150"]}, "labels": ["b", "a"]}],
    )
    s = sessions.open()
    doc = s.get(SnWithPlace, doc_id)
    assert doc is not None and doc.place is not None
    assert s.flush() == FlushResult()  # a set's order is no change
    doc.place.codes.append("0151")
    doc.labels.add("c")
    assert s.flush().updated == 1
    s.commit()  # (a transaction where the server has them)
    stored = stored_one(sessions.db, "sn_places", doc_id)
    assert stored["place"]["codes"] == ["0150", "0151"]
    assert sorted(stored["labels"]) == ["a", "b", "c"]


def test_rollback_and_original_value_hand_out_copies(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "sn_tagged", [{"name": "a", "tags": ["x"]}])
    s = sessions.open()
    doc = s.get(SnTagged, doc_id)
    assert doc is not None
    original = s.original_value(doc, "tags")
    original.append("not mine")  # must not change what the session remembers
    doc.tags.append("y")
    s.rollback()
    assert doc.tags == ["x"]
    doc.tags.append("again")  # the restored list is not the snapshot's either
    assert s.is_dirty(doc)
    s.rollback()
    assert doc.tags == ["x"]


# ------------------------------------------------------------------ what BSON tells apart


def test_an_int_put_in_place_of_an_equal_float_is_a_change(sessions: Sessions) -> None:
    (doc_id,) = insert_raw(sessions.db, "sn_tagged", [{"name": "a", "ratios": [1.0, 2.5]}])
    s = sessions.open()
    doc = s.get(SnTagged, doc_id)
    assert doc is not None
    doc.ratios[0] = 1  # 1 == 1.0 in Python; an int32 and a double in BSON
    assert s.is_dirty(doc)
    assert s.flush().updated == 1
    s.commit()
    assert type(stored_one(sessions.db, "sn_tagged", doc_id)["ratios"][0]) is int


def test_a_datetime_differing_below_a_millisecond_is_no_change(sessions: Sessions) -> None:
    stamp = dt.datetime(2024, 5, 1, 12, 0, 0, 123000)
    (doc_id,) = insert_raw(sessions.db, "sn_stamps", [{"at": stamp}])
    s = sessions.open()
    doc = s.get(SnStamp, doc_id)
    assert doc is not None
    doc.at = stamp.replace(microsecond=123456)  # BSON keeps milliseconds: the same
    assert s.flush() == FlushResult()
    doc.at = stamp.replace(microsecond=124000)
    assert s.flush().updated == 1


def test_aware_datetimes_loaded_from_naive_stored_ones_are_no_change(
    sessions: Sessions,
) -> None:
    when = dt.datetime(2024, 5, 1, 12, 0)
    (doc_id,) = insert_raw(sessions.db, "sn_tagged", [{"name": "a", "seen": [when, when]}])
    s = sessions.open(tz_aware=True)
    doc = s.get(SnTagged, doc_id)
    assert doc is not None
    assert doc.seen[0].tzinfo is not None
    assert not s.is_dirty(doc)
    assert s.flush() == FlushResult()
    doc.seen.append(dt.datetime(2024, 5, 2, tzinfo=dt.timezone.utc))
    assert s.flush().updated == 1


# ------------------------------------------------------------------------- identity keys


def test_an_objectid_and_bytes_with_the_same_12_bytes_are_two_documents(
    sessions: Sessions,
) -> None:
    # The identity key holds an ObjectId's bytes (its own __hash__ is slow): it
    # must still tell the ObjectId from a bytes id with the same 12 bytes.
    oid = bson.ObjectId()
    insert_raw(
        sessions.db, "sn_ids", [{"_id": oid, "name": "oid"}, {"_id": oid.binary, "name": "raw"}]
    )
    s = sessions.open()
    by_oid, by_bytes = s.get(SnOidId, oid), s.get(SnBytesId, oid.binary)
    assert by_oid is not None and by_bytes is not None
    assert (by_oid.name, by_bytes.name) == ("oid", "raw")
    assert s.get(SnOidId, oid) is by_oid and s.get(SnBytesId, oid.binary) is by_bytes
    by_oid.name, by_bytes.name = "oid 2", "raw 2"
    assert set(s.what_changed()) == {("sn_ids", oid), ("sn_ids", oid.binary)}
    assert s.flush().updated == 2
    s.commit()
    assert stored_one(sessions.db, "sn_ids", oid)["name"] == "oid 2"
    assert stored_one(sessions.db, "sn_ids", oid.binary)["name"] == "raw 2"
