"""A failed flush inside a transaction puts every change since the last commit
back to unflushed: the next flush must send them relative to what is stored
(missing keys again $set, appends at depth pushed once, counters once)."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import insert_raw, stored

pytestmark = pytest.mark.transactions


class TdLine(Embedded):
    sku: str = ""
    qty: int = field(default=5, on_update="$inc")
    log: list[str] = field(factory=lambda: ["d"], on_update="$push")


class TdDoc(Document):
    __collection__ = "td_docs"

    name: str
    n: int = field(default=5, on_update="$inc")
    lines: list[TdLine] = field(factory=list)
    by: dict[str, TdLine] = field(factory=dict)


class TdUniq(Document):
    __collection__ = "td_uniq"
    __indexes__ = [uow.Index("email", unique=True)]

    email: str


@pytest.fixture(autouse=True)
def _taken(db: Any) -> None:
    """The colliding document and its unique index exist before any session
    starts a transaction (a write committed after the transaction's snapshot
    would be a WriteConflict, not a DuplicateKeyError)."""
    s = uow.Session(db)
    s.ensure_indexes(TdUniq)
    s.close()
    insert_raw(db, "td_uniq", {"email": "taken"})


def _collide(s: uow.Session, db: Any) -> TdUniq:
    u = TdUniq(email="taken")
    s.add(u)
    return u


def test_missing_keys_set_in_aborted_flush_are_set_again(db: Any) -> None:
    doc_id = insert_raw(
        db, "td_docs", {"name": "o", "lines": [{"sku": "a"}], "by": {"k": {"sku": "k"}}}
    )
    s = uow.Session(db)
    d = s.get(TdDoc, doc_id)
    d.n += 1  # missing: $set 6
    d.lines[0].qty += 1  # missing at depth: $set 6
    d.by["k"].log.append("x")  # missing at depth: $set ["d", "x"]
    s.flush()  # inside the transaction
    u = _collide(s, db)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    u.email = "free"
    s.commit()
    raw = stored(db, "td_docs", doc_id)
    assert raw["n"] == d.n == 6, f"stored {raw.get('n')}, memory {d.n}"
    assert raw["lines"][0]["qty"] == d.lines[0].qty == 6, raw["lines"]
    assert raw["by"]["k"]["log"] == d.by["k"].log == ["d", "x"], raw["by"]


def test_missing_keys_after_rollback_are_missing_again(db: Any) -> None:
    doc_id = insert_raw(db, "td_docs", {"name": "o", "lines": [{"sku": "a"}]})
    s = uow.Session(db)
    d = s.get(TdDoc, doc_id)
    d.n += 1
    d.lines[0].qty += 1
    s.flush()
    s.rollback()
    assert d.n == 5 and d.lines[0].qty == 5
    d.n += 2
    d.lines[0].qty += 2
    s.commit()
    raw = stored(db, "td_docs", doc_id)
    assert raw["n"] == d.n == 7
    assert raw["lines"][0]["qty"] == d.lines[0].qty == 7


def test_pushes_at_depth_in_aborted_flush_pushed_once(db: Any) -> None:
    doc_id = insert_raw(
        db,
        "td_docs",
        {"name": "o", "n": 0, "lines": [{"sku": "a", "qty": 0, "log": []}], "by": {}},
    )
    s = uow.Session(db)
    d = s.get(TdDoc, doc_id)
    d.lines[0].log.append("1")
    d.lines.append(TdLine(sku="b", qty=1, log=[]))
    s.flush()
    d.lines[0].log.append("2")
    d.lines[1].qty += 1
    u = _collide(s, db)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    u.email = "free"
    s.commit()
    raw = stored(db, "td_docs", doc_id)
    assert raw["lines"] == [
        {"sku": "a", "qty": 0, "log": ["1", "2"]},
        {"sku": "b", "qty": 2, "log": []},
    ], raw["lines"]


def test_untracked_counter_update_in_aborted_transaction_applied_once(db: Any) -> None:
    doc_id = insert_raw(db, "td_docs", {"name": "c", "n": 10, "lines": [], "by": {}})
    s = uow.Session(db)
    c = TdDoc(name="c", n=3)
    c.id = doc_id
    s.update(c)
    s.flush()
    u = _collide(s, db)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    u.email = "free"
    s.commit()
    assert stored(db, "td_docs", doc_id)["n"] == 13


def test_upsert_in_aborted_transaction_created_once(db: Any) -> None:
    s = uow.Session(db)
    c = TdDoc(name="up", n=3)
    s.update(c, upsert=True)
    s.flush()
    u = _collide(s, db)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    u.email = "free"
    s.commit()
    assert stored(db, "td_docs", c.id) == {"_id": c.id, "name": "up", "n": 3, "lines": [], "by": {}}
    assert db["td_docs"].count_documents({}) == 1


def test_transaction_block_joined_after_flush_rolls_back_missing_key_set(db: Any) -> None:
    doc_id = insert_raw(db, "td_docs", {"name": "o"})
    s = uow.Session(db)
    d = s.get(TdDoc, doc_id)
    d.n += 1
    s.flush()
    with pytest.raises(RuntimeError):
        with s.transaction():
            d.lines.append(TdLine(sku="x"))
            s.flush()
            raise RuntimeError("boom")
    assert stored(db, "td_docs", doc_id).get("n") is None
    assert d.n == 5 and d.lines == []
    d.n += 1
    s.commit()
    assert stored(db, "td_docs", doc_id)["n"] == 6 == d.n
