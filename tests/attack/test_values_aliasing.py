"""Values whose equality is tricky (NaN, microseconds, Decimal), db_name at
depth, aliasing of one embedded object in two places, pending objects passed to
update()."""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import emb, insert_raw, reload, stored


class VaLine(Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc", db_name="q")
    log: list[str] = field(factory=list, on_update="$push", db_name="lg")
    labels: set[str] = field(factory=set)


class VaDoc(Document):
    __collection__ = "va_docs"

    name: str
    f: float = 0.0
    fs: list[float] = field(factory=list)
    when: datetime.datetime | None = None
    price: decimal.Decimal | None = None
    uid: uuid.UUID | None = None
    blob: bytes | None = None
    lines: list[VaLine] = field(factory=list, db_name="ls")
    by: dict[str, VaLine] = field(factory=dict)
    main: VaLine | None = None
    count: int = field(default=0, on_update="$inc")
    log: list[str] = field(factory=list, on_update="$push")


def test_nan_loaded_is_not_a_change(db: Any) -> None:
    doc_id = insert_raw(db, "va_docs", {"name": "n", "f": float("nan"), "fs": [float("nan"), 1.0]})
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    assert math.isnan(d.f)
    assert not s.is_dirty(d), f"NaN makes the document dirty: {s.dirty_fields(d)}"
    assert not s.has_changes()
    res = s.flush()
    assert res.updated == 0
    s.close()


def test_datetime_microseconds_stored_equals_memory(db: Any) -> None:
    """MongoDB keeps milliseconds. The one rule: after a flush the stored
    document equals what the session holds. Reading chosen: either the value is
    refused/truncated on assignment, or memory is brought to the stored value;
    a session holding .123456 while the store holds .123 breaks the rule."""
    s = uow.Session(db)
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
    d = VaDoc(name="t", when=when)
    s.add(d)
    s.commit()
    raw = stored(db, "va_docs", d.id)
    assert raw["when"] == datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)
    assert d.when == raw["when"], f"stored {raw['when']!r}, memory {d.when!r}"
    s.close()


def test_db_name_at_depth_positional_inc_and_push(db: Any) -> None:
    doc_id = insert_raw(
        db,
        "va_docs",
        {
            "name": "d",
            "ls": [{"sku": "a", "q": 1, "lg": ["x"], "labels": []}],
            "by": {"k": {"sku": "k", "q": 1, "lg": [], "labels": []}},
            "main": {"sku": "m", "q": 1, "lg": [], "labels": []},
        },
    )
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    assert d.lines[0].qty == 1
    db["va_docs"].update_one({"_id": doc_id}, {"$inc": {"ls.0.q": 10, "by.k.q": 10, "main.q": 10}})
    d.lines[0].qty += 1
    d.lines[0].log.append("y")
    d.by["k"].qty += 1
    d.main.qty += 1
    d.main.labels.add("L")
    s.commit()
    raw = stored(db, "va_docs", doc_id)
    assert raw["ls"][0] == {"sku": "a", "q": 12, "lg": ["x", "y"], "labels": []}
    assert raw["by"]["k"]["q"] == 12
    assert raw["main"]["q"] == 12 and raw["main"]["labels"] == ["L"]
    for wrong in ("lines", "qty", "log"):
        assert wrong not in raw and wrong not in raw["ls"][0] and wrong not in raw["main"]
    s.close()


def test_db_name_at_depth_missing_key_first_change(db: Any) -> None:
    doc_id = insert_raw(db, "va_docs", {"name": "d", "ls": [{"sku": "a"}], "main": {"sku": "m"}})
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    d.lines[0].qty += 3
    d.main.log.append("z")
    s.commit()
    raw = stored(db, "va_docs", doc_id)
    assert raw["ls"][0] == {"sku": "a", "q": 3}
    assert raw["main"] == {"sku": "m", "lg": ["z"]}
    s.close()


def test_query_by_db_name_at_depth(db: Any) -> None:
    insert_raw(db, "va_docs", {"name": "d", "ls": [{"sku": "a", "q": 7}]})
    s = uow.Session(db)
    insert_raw(db, "va_docs", {"name": "e", "ls": [{"sku": "a", "q": 8}]})
    assert s.count(VaDoc, lines__qty=7) == 1
    assert s.count(VaDoc, VaDoc.lines.qty == 7) == 1
    assert s.count(VaDoc, lines__qty=9) == 0
    assert [x.name for x in s.query(VaDoc).filter(VaDoc.lines.qty == 8)] == ["e"]
    s.close()


def test_same_embedded_object_in_two_list_positions(db: Any) -> None:
    s = uow.Session(db)
    d = VaDoc(name="alias", lines=[VaLine(sku="a", qty=1)])
    s.add(d)
    s.commit()
    d.lines.append(d.lines[0])  # the same object twice
    d.lines[0].qty += 1  # both positions change in memory
    s.commit()
    raw = stored(db, "va_docs", d.id)
    assert [el["q"] for el in raw["ls"]] == [el.qty for el in d.lines] == [2, 2]
    d.lines[1].log.append("x")
    s.commit()
    raw = stored(db, "va_docs", d.id)
    assert [el["lg"] for el in raw["ls"]] == [el.log for el in d.lines]
    s.close()


def test_same_embedded_object_in_two_documents(db: Any) -> None:
    s = uow.Session(db)
    a = VaDoc(name="a", main=VaLine(sku="shared", qty=1))
    b = VaDoc(name="b")
    s.add_all([a, b])
    s.commit()
    b.main = a.main
    s.commit()
    a.main.qty += 5  # b.main is the same object
    a.main.log.append("l")
    s.commit()
    ra, rb = stored(db, "va_docs", a.id), stored(db, "va_docs", b.id)
    assert ra["main"]["q"] == a.main.qty == 6
    assert rb["main"]["q"] == b.main.qty == 6, f"b stored {rb['main']}, memory {emb(b.main)}"
    assert rb["main"]["lg"] == ["l"]
    s.close()


def test_element_removed_from_list_then_old_object_mutated(db: Any) -> None:
    doc_id = insert_raw(
        db, "va_docs", {"name": "d", "ls": [{"sku": "a", "q": 1}, {"sku": "b", "q": 1}]}
    )
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    old = d.lines[0]
    d.lines[0] = VaLine(sku="new", qty=5)
    old.qty += 100  # no longer part of the document
    s.commit()
    raw = stored(db, "va_docs", doc_id)
    assert [(el["sku"], el["q"]) for el in raw["ls"]] == [("new", 5), ("b", 1)]
    s.close()


def test_decimal_uuid_bytes_at_depth_round_trip(db: Any) -> None:
    s = uow.Session(db)
    d = VaDoc(name="v", price=decimal.Decimal("1.10"), uid=uuid.uuid4(), blob=b"\x00\x01")
    s.add(d)
    s.commit()
    d.price = decimal.Decimal("2.50")
    d.blob = b"\x02"
    s.commit()
    raw = stored(db, "va_docs", d.id)
    assert raw["price"].to_decimal() == d.price
    assert raw["blob"] == d.blob
    s.close()
    again = reload(db, VaDoc, d.id)
    assert again.price == d.price and again.uid == d.uid and again.blob == d.blob


def test_update_of_a_pending_insert_is_not_doubled(db: Any) -> None:
    """A pending insert is tracked; update() forces an update "with the same
    operators as change tracking". Reading chosen: the insert writes the values
    and the forced update adds nothing (an $inc of the whole value again, or a
    $push of the list again, would double them)."""
    s = uow.Session(db)
    d = VaDoc(name="p", count=5, log=["a"])
    s.add(d)
    s.update(d)
    s.commit()
    raw = stored(db, "va_docs", d.id)
    assert raw["count"] == d.count == 5
    assert raw["log"] == d.log == ["a"]
    s.close()


def test_update_of_a_pending_insert_changed_after_add(db: Any) -> None:
    s = uow.Session(db)
    d = VaDoc(name="p", count=5, log=["a"])
    s.add(d)
    d.count += 1
    d.log.append("b")
    s.update(d)
    s.commit()
    raw = stored(db, "va_docs", d.id)
    assert raw["count"] == d.count == 6
    assert raw["log"] == d.log == ["a", "b"]
    s.close()


def test_update_of_a_deleted_document(db: Any) -> None:
    """update() of a DELETED document is refused with a uow error; the delete
    goes ahead and nothing resurrects the document."""
    doc_id = insert_raw(db, "va_docs", {"name": "x", "count": 1})
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    s.delete(d)
    with pytest.raises(uow.UowError, match="deleted"):
        s.update(d)
    s.commit()
    assert db["va_docs"].find_one({"_id": doc_id}) is None
    s.close()


def test_save_of_a_persistent_dirty_document(db: Any) -> None:
    doc_id = insert_raw(db, "va_docs", {"name": "x", "count": 1, "log": []})
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    d.count += 1
    d.log.append("s")
    s.save(d)
    s.save(d)
    s.commit()
    raw = stored(db, "va_docs", doc_id)
    assert raw["count"] == 2 and raw["log"] == ["s"]
    s.close()


def test_optional_embedded_set_then_changed_then_none(db: Any) -> None:
    doc_id = insert_raw(db, "va_docs", {"name": "x", "main": None})
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    d.main = VaLine(sku="m")
    s.flush()
    d.main.qty += 2
    d.main.labels.add("a")
    s.flush()
    d.main = None
    s.commit()
    raw = stored(db, "va_docs", doc_id)
    assert raw["main"] is None
    s.close()
    assert reload(db, VaDoc, doc_id).main is None


def test_set_field_in_list_element_add_and_discard(db: Any) -> None:
    doc_id = insert_raw(db, "va_docs", {"name": "x", "ls": [{"sku": "a", "labels": ["p", "q"]}]})
    s = uow.Session(db)
    d = s.get(VaDoc, doc_id)
    d.lines[0].labels.discard("p")
    d.lines[0].labels.add("r")
    s.commit()
    raw = stored(db, "va_docs", doc_id)
    assert sorted(raw["ls"][0]["labels"]) == sorted(d.lines[0].labels) == ["q", "r"]
    s.close()
