"""Writes below the top level that a single update statement cannot carry, on every lane.

* A list changed inside its elements *and* appended to: the changes go on
  positional paths and the appended items with ``$push``, so another writer's
  concurrent append (or ``$inc``) is kept. MongoDB refuses both paths in one
  update, so the push is a second statement of the same command.
* ``$currentDate`` on an embedded field: the server sets it on every update of
  the document, wherever the embedded document is held, and the flush reads the
  value back so that memory holds what is stored.
* A datetime is kept to the millisecond, as BSON keeps it.

Each test reads the stored document with raw pymongo and compares it with memory.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import uow
from uow import Document, Embedded, Index, field


class DwLine(Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class DwOrder(Document):
    __collection__ = "dw_orders"
    name: str = ""
    lines: list[DwLine] = field(factory=list)
    grid: list[list[DwLine]] = field(factory=list)


class DwVersioned(Document):
    __collection__ = "dw_versioned"
    lines: list[DwLine] = field(factory=list)
    version: int = field(default=0, version=True)


class DwUnique(Document):
    __collection__ = "dw_unique"
    __indexes__ = [Index("lines.sku", unique=True)]
    lines: list[DwLine] = field(factory=list)


class DwStamp(Embedded):
    label: str = ""
    at: datetime.datetime | None = field(default=None, on_update="$currentDate")


class DwStamped(Document):
    __collection__ = "dw_stamped"
    name: str = ""
    one: DwStamp = field(factory=DwStamp)
    many: list[DwStamp] = field(factory=list)
    by: dict[str, DwStamp] = field(factory=dict)


class DwWhen(Document):
    __collection__ = "dw_when"
    when: datetime.datetime | None = None
    whens: list[datetime.datetime] = field(factory=list)


def _stored(db: Any, collection: str, ident: Any) -> dict[str, Any]:
    found = db[collection].find_one({"_id": ident})
    assert found is not None
    return dict(found)


def _lines(lines: list[DwLine]) -> list[dict[str, Any]]:
    return [line.to_bson() for line in lines]


def _saved(db: Any, doc: Document) -> None:
    s = uow.Session(db)
    s.add(doc)
    s.commit()
    s.close()


# ------------------------------------------------------- change inside + append


def test_change_inside_and_append_keeps_a_concurrent_append(db: Any) -> None:
    order = DwOrder(lines=[DwLine(sku="a", qty=1)])
    _saved(db, order)
    s = uow.Session(db)
    mine = s.get(DwOrder, order.id)
    assert mine is not None
    # Another writer appends between this session's load and its flush.
    db["dw_orders"].update_one({"_id": order.id}, {"$push": {"lines": {"sku": "x", "qty": 0}}})
    mine.lines[0].qty += 2
    mine.lines[0].tags.append("t")
    mine.lines.append(DwLine(sku="b", qty=5))
    assert s.flush().round_trips == 1  # one command, two statements
    s.commit()
    stored = _stored(db, "dw_orders", order.id)
    assert [line["sku"] for line in stored["lines"]] == ["a", "x", "b"]
    assert stored["lines"][0] == {"sku": "a", "qty": 3, "tags": ["t"]}
    assert stored["lines"][2] == {"sku": "b", "qty": 5, "tags": []}
    s.close()
    again = uow.Session(db).get(DwOrder, order.id)
    assert again is not None
    assert [(line.sku, line.qty) for line in again.lines] == [("a", 3), ("x", 0), ("b", 5)]


def test_concurrent_inc_at_depth_is_kept_when_the_list_also_grows(db: Any) -> None:
    order = DwOrder(lines=[DwLine(sku="a", qty=1)])
    _saved(db, order)
    first, second = uow.Session(db), uow.Session(db)
    mine, theirs = first.get(DwOrder, order.id), second.get(DwOrder, order.id)
    assert mine is not None and theirs is not None
    mine.lines[0].qty += 1
    mine.lines.append(DwLine(sku="b"))
    theirs.lines[0].qty += 10
    second.commit()
    first.commit()
    stored = _stored(db, "dw_orders", order.id)
    assert stored["lines"] == [
        {"sku": "a", "qty": 12, "tags": []},
        {"sku": "b", "qty": 0, "tags": []},
    ]
    first.close()
    second.close()


def test_appends_at_three_levels_of_a_list_of_lists(db: Any) -> None:
    order = DwOrder(grid=[[DwLine(sku="a", qty=1, tags=["x"])]])
    _saved(db, order)
    s, other = uow.Session(db), uow.Session(db)
    mine, theirs = s.get(DwOrder, order.id), other.get(DwOrder, order.id)
    assert mine is not None and theirs is not None
    mine.grid[0][0].tags.append("y")  # deepest list
    mine.grid[0][0].qty += 1
    mine.grid[0].append(DwLine(sku="b"))  # the inner list
    mine.grid.append([DwLine(sku="c")])  # the outer list
    theirs.grid[0][0].qty += 10
    other.commit()
    s.commit()
    stored = _stored(db, "dw_orders", order.id)
    assert stored["grid"] == [
        [{"sku": "a", "qty": 12, "tags": ["x", "y"]}, {"sku": "b", "qty": 0, "tags": []}],
        [{"sku": "c", "qty": 0, "tags": []}],
    ]
    s.close()
    other.close()
    fresh = uow.Session(db).get(DwOrder, order.id)
    assert fresh is not None
    assert [[line.to_bson() for line in row] for row in fresh.grid] == stored["grid"]


def test_a_removed_or_replaced_element_still_sets_the_list_whole(db: Any) -> None:
    order = DwOrder(lines=[DwLine(sku="a"), DwLine(sku="b")])
    _saved(db, order)
    s = uow.Session(db)
    mine = s.get(DwOrder, order.id)
    assert mine is not None
    mine.lines[0] = DwLine(sku="z")  # replaced, not changed inside
    mine.lines.append(DwLine(sku="c"))
    s.commit()
    stored = _stored(db, "dw_orders", order.id)
    assert [line["sku"] for line in stored["lines"]] == ["z", "b", "c"]
    assert _lines(mine.lines) == stored["lines"]
    s.close()


def test_a_versioned_document_changed_inside_and_appended_bumps_once(db: Any) -> None:
    doc = DwVersioned(lines=[DwLine(sku="a", qty=1)])
    _saved(db, doc)
    s = uow.Session(db)
    mine = s.get(DwVersioned, doc.id)
    assert mine is not None
    mine.lines[0].qty += 1
    mine.lines.append(DwLine(sku="b"))
    s.commit()
    stored = _stored(db, "dw_versioned", doc.id)
    assert stored["version"] == 1 == mine.version
    assert [line["qty"] for line in stored["lines"]] == [2, 0]
    s.close()


def test_a_versioned_document_that_lost_a_race_writes_none_of_its_statements(db: Any) -> None:
    doc = DwVersioned(lines=[DwLine(sku="a", qty=1)])
    _saved(db, doc)
    first = uow.Session(db, transactional=False)
    mine = first.get(DwVersioned, doc.id)
    assert mine is not None
    # Another writer bumps the version to 1: exactly what this session's write
    # would bump it to. No statement of this session's update may match.
    db["dw_versioned"].update_one({"_id": doc.id}, {"$set": {"version": 1, "lines.0.qty": 7}})
    mine.lines[0].qty += 1
    mine.lines.append(DwLine(sku="b"))
    with pytest.raises(uow.StaleDocumentError) as caught:
        first.flush()
    assert caught.value.not_applied == [mine] and not caught.value.applied
    assert _stored(db, "dw_versioned", doc.id)["lines"] == [{"sku": "a", "qty": 7, "tags": []}]
    first.close()


@pytest.mark.not_mongomock(reason="mongomock does not enforce a unique index on an update")
def test_a_later_statement_refused_keeps_the_rest_queued_and_counts_once(db: Any) -> None:
    """The first statement landed, the push was refused: the document's snapshot
    takes what landed, the append stays queued (``not_applied``), and once the
    cause is fixed the next flush sends only the append: the $inc counts once."""
    s = uow.Session(db, transactional=False)
    s.ensure_indexes(DwUnique)
    taken = DwUnique(lines=[DwLine(sku="taken")])
    doc = DwUnique(lines=[DwLine(sku="a", qty=1)])
    s.add_all([taken, doc])
    s.commit()
    doc.lines[0].qty += 1
    doc.lines.append(DwLine(sku="taken"))  # refused by the unique index
    with pytest.raises(uow.FlushError, match="first 1 of 2 statements landed") as caught:
        s.flush()
    error = caught.value
    assert error.not_applied == [doc] and not error.applied and not error.in_doubt
    stored = _stored(db, "dw_unique", doc.id)
    assert stored["lines"] == [{"sku": "a", "qty": 2, "tags": []}]  # the first statement
    assert s.is_dirty(doc)
    doc.lines[1].sku = "b"  # the cause, fixed
    s.commit()
    stored = _stored(db, "dw_unique", doc.id)
    assert stored["lines"] == [
        {"sku": "a", "qty": 2, "tags": []},
        {"sku": "b", "qty": 0, "tags": []},
    ]
    assert _lines(doc.lines) == stored["lines"]
    s.close()


# ------------------------------------------------------------ $currentDate below


def _recent(value: Any) -> bool:
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return isinstance(value, datetime.datetime) and abs((now - value).total_seconds()) < 60


def test_current_date_below_the_top_is_set_on_every_update(db: Any) -> None:
    doc = DwStamped(one=DwStamp(), many=[DwStamp(), DwStamp()], by={"k": DwStamp()})
    _saved(db, doc)
    inserted = _stored(db, "dw_stamped", doc.id)
    assert inserted["one"]["at"] is None  # an insert stores memory's values
    s = uow.Session(db)
    mine = s.get(DwStamped, doc.id)
    assert mine is not None
    mine.name = "changed"  # the update of another field stamps every place
    s.commit()
    stored = _stored(db, "dw_stamped", doc.id)
    stamps = [stored["one"]["at"], *(e["at"] for e in stored["many"]), stored["by"]["k"]["at"]]
    assert all(_recent(stamp) for stamp in stamps), stored
    # Read back by the flush: memory holds what is stored, no query on access.
    assert mine.one.at == stored["one"]["at"]
    assert [e.at for e in mine.many] == [e["at"] for e in stored["many"]]
    assert mine.by["k"].at == stored["by"]["k"]["at"]
    s.close()


def test_current_date_is_set_in_values_the_update_appends_or_writes_whole(db: Any) -> None:
    """Every place the document holds a stamped embedded document once the update
    landed is stamped: elements appended, dict values added, lists set whole
    (each stamp in a statement after the write that creates its place)."""
    doc = DwStamped(many=[DwStamp(label="a")], by={"x": DwStamp(label="x"), "y": DwStamp()})
    _saved(db, doc)
    s = uow.Session(db)
    mine = s.get(DwStamped, doc.id)
    assert mine is not None
    mine.many.append(DwStamp(label="new"))  # pushed
    del mine.by["y"]  # $unset by.y
    mine.by["z"] = DwStamp(label="z")  # a new value, $set whole
    mine.one = DwStamp(label="other")  # an embedded document is diffed key by key
    queries = s.stats().queries
    # One write command; the read-back of the stamps is a query, not a round trip
    # of the flush (as stats().round_trips counts them).
    assert s.flush().round_trips == 1
    assert s.stats().queries == queries + 1
    s.commit()
    stored = _stored(db, "dw_stamped", doc.id)
    assert [e["label"] for e in stored["many"]] == ["a", "new"]
    assert all(_recent(e["at"]) for e in stored["many"])
    assert sorted(stored["by"]) == ["x", "z"] and all(
        _recent(v["at"]) for v in stored["by"].values()
    )
    assert stored["one"]["label"] == "other" and _recent(stored["one"]["at"])
    assert [e.to_bson() for e in mine.many] == stored["many"]
    assert {k: v.to_bson() for k, v in mine.by.items()} == stored["by"]
    assert mine.one.to_bson() == stored["one"]
    # A list reordered is set whole, and stamped after.
    mine.many.reverse()
    s.commit()
    stored = _stored(db, "dw_stamped", doc.id)
    assert [e["label"] for e in stored["many"]] == ["new", "a"]
    assert all(_recent(e["at"]) for e in stored["many"])
    assert [e.to_bson() for e in mine.many] == stored["many"]
    s.close()


def test_a_document_without_changes_is_not_stamped(db: Any) -> None:
    doc = DwStamped(many=[DwStamp()])
    _saved(db, doc)
    s = uow.Session(db)
    mine = s.get(DwStamped, doc.id)
    assert mine is not None
    assert s.flush().round_trips == 0
    assert _stored(db, "dw_stamped", doc.id)["many"][0]["at"] is None
    s.close()


def test_stamps_read_back_are_no_change_for_the_next_flush(db: Any) -> None:
    doc = DwStamped(many=[DwStamp()])
    _saved(db, doc)
    s = uow.Session(db)
    mine = s.get(DwStamped, doc.id)
    assert mine is not None
    mine.name = "a"
    s.flush()
    assert s.flush().round_trips == 0  # memory and snapshot took the server's value
    mine.many[0].label = "b"
    s.commit()
    stored = _stored(db, "dw_stamped", doc.id)
    assert stored["many"][0]["label"] == "b" and mine.many[0].at == stored["many"][0]["at"]
    s.close()


# ---------------------------------------------------------------- milliseconds


def test_a_datetime_is_kept_to_the_millisecond(db: Any) -> None:
    precise = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
    doc = DwWhen(when=precise, whens=[precise])
    assert doc.when == datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)
    assert doc.whens == [datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)]
    _saved(db, doc)
    stored = _stored(db, "dw_when", doc.id)
    assert stored["when"] == doc.when and stored["whens"] == doc.whens
    s = uow.Session(db)
    mine = s.get(DwWhen, doc.id)
    assert mine is not None
    mine.when = datetime.datetime(2025, 6, 7, 8, 9, 10, 999999)
    assert mine.when.microsecond == 999000
    s.commit()
    assert _stored(db, "dw_when", doc.id)["when"] == mine.when
    # A filter compares at the stored precision too.
    assert (
        s.query(DwWhen)
        .filter(DwWhen.when == datetime.datetime(2025, 6, 7, 8, 9, 10, 999500))
        .count()
        == 1
    )
    s.close()


def test_an_aware_datetime_keeps_its_zone_and_drops_only_microseconds() -> None:
    zone = datetime.timezone(datetime.timedelta(hours=2))
    doc = DwWhen(when=datetime.datetime(2024, 1, 1, 12, 0, 0, 1500, tzinfo=zone))
    assert doc.when == datetime.datetime(2024, 1, 1, 12, 0, 0, 1000, tzinfo=zone)
    assert doc.when is not None and doc.when.tzinfo is zone


def test_the_log_shows_every_statement_of_a_staged_update(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    order = DwOrder(lines=[DwLine(sku="a", qty=1)])
    _saved(db, order)
    s = uow.Session(db, echo=True)
    mine = s.get(DwOrder, order.id)
    assert mine is not None
    mine.lines[0].qty += 1
    mine.lines.append(DwLine(sku="b"))
    with caplog.at_level("INFO", logger="uow"):
        s.flush()
    updates = [r.getMessage() for r in caplog.records if r.getMessage().startswith("update ")]
    assert len(updates) == 1  # one command
    assert "'$inc': {'lines.0.qty': 1}" in updates[0] and "'$push': {'lines'" in updates[0]
    s.rollback()
    s.close()


def test_a_stamp_field_of_a_subclass_defined_after_a_flush_is_set(db: Any) -> None:
    class DwPart(Embedded):
        label: str = ""

    class DwHolder(Document):
        __collection__ = "dw_holder"
        name: str = ""
        parts: list[DwPart] = field(factory=list)

    doc = DwHolder(parts=[DwPart(label="a")])
    _saved(db, doc)
    s = uow.Session(db)
    mine = s.get(DwHolder, doc.id)
    assert mine is not None
    mine.name = "first"
    s.commit()  # the class had no stamp below the top then

    class DwStampedPart(DwPart):
        at: datetime.datetime | None = field(default=None, on_update="$currentDate")

    mine.parts.append(DwStampedPart(label="b"))
    s.commit()
    stored = _stored(db, "dw_holder", doc.id)
    assert stored["parts"][0] == {"label": "a"}
    assert stored["parts"][1]["_cls"] == "DwStampedPart" and _recent(stored["parts"][1]["at"])
    assert [part.to_bson() for part in mine.parts] == stored["parts"]
    s.close()
