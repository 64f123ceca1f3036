"""A failed flush (a duplicate key) among $inc/$push/$currentDate changes, then
reads, commit, close, rollback. SPEC: "A failed flush raises uow.FlushError ...
whatever was not applied stays queued, so fixing the cause and flushing again
finishes the work. Nothing queued is ever dropped silently"; "When a flush fails
inside a transaction ... every change since the last commit ... goes back to
unflushed"."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import Item, Line, Stamp, Stamped, assert_recent, mem

OLD = datetime.datetime(2000, 1, 1)


def _seed(db: Any) -> tuple[Item, Stamped]:
    with Session(db) as s:
        it = Item(code="a", n=1, log=["x"], lines=[Line(sku="s", qty=1)])
        st = Stamped(code="a", at=OLD, stamps=[Stamp(at=OLD)])
        s.add_all([it, st, Item(code="taken"), Stamped(code="taken")])
    return it, st


def _dates_match(db: Any, doc: Stamped, unsaved: int = 0) -> None:
    """The dates held are the stored ones; ``unsaved``: elements appended at the end
    whose write was dropped (closed without commit), the user's change, not stored."""
    got = db.a14_stamped.find_one({"_id": doc.id})
    assert doc.at == got["at"]
    held = doc.stamps[: len(doc.stamps) - unsaved]
    assert [x.at for x in held] == [x["at"] for x in got["stamps"]]
    assert all(x.at is None for x in doc.stamps[len(held) :])


def _change(s: Session, it: Item, st: Stamped) -> tuple[Item, Stamped]:
    a = s.get(Item, it.id)
    b = s.get(Stamped, st.id)
    a.n += 2
    a.log.append("y")
    a.lines[0].qty += 3
    b.name = "B"
    b.stamps.append(Stamp(note="n"))
    return a, b


def test_fix_and_flush_again_applies_once(db: Any) -> None:
    it, st = _seed(db)
    s = Session(db)
    a, b = _change(s, it, st)
    s.flush()  # lands (inside the transaction where there is one)
    a.n += 1
    b.n += 5
    bad = Stamped(code="taken")
    s.add(bad)
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    assert s.state(bad) is ObjectState.PENDING
    # reads in between: dates are what is stored as this session sees it
    assert s.is_dirty(a)
    bad.code = "fresh"
    s.commit()
    assert db.a14_item.find_one({"_id": it.id}) == mem(a)
    got = db.a14_item.find_one({"_id": it.id})
    assert got["n"] == 4
    assert got["log"] == ["x", "y"]
    assert got["lines"][0]["qty"] == 4
    stored_b = db.a14_stamped.find_one({"_id": st.id})
    assert stored_b["n"] == 5
    assert stored_b["name"] == "B"
    assert [x["note"] for x in stored_b["stamps"]] == ["", "n"]
    _dates_match(db, b)
    assert_recent(b.at)
    assert db.a14_stamped.count_documents({"code": "fresh"}) == 1
    s.close()
    _dates_match(db, b)


def test_failed_flush_then_read_dates_and_rollback(db: Any) -> None:
    it, st = _seed(db)
    s = Session(db)
    _a, b = _change(s, it, st)
    s.flush()
    s.add(Stamped(code="taken"))
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    assert s.get(Stamped, st.id) is b  # get never autoflushes
    s.rollback()
    _dates_match(db, b)
    s.close()
    _dates_match(db, b)


@pytest.mark.transactions
def test_failed_flush_in_transaction_dates_are_stored_ones(db: Any) -> None:
    it, st = _seed(db)
    s = Session(db)
    _a, b = _change(s, it, st)
    s.flush()
    s.add(Item(code="taken"))  # another collection
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    # the transaction is aborted: the store holds the committed dates
    assert b.at == OLD
    assert b.stamps[0].at == OLD
    s.close()
    _dates_match(db, b, unsaved=1)


@pytest.mark.transactions
def test_failed_flush_then_close(db: Any) -> None:
    it, st = _seed(db)
    s = Session(db)
    _a, b = _change(s, it, st)
    s.flush()
    s.add(Stamped(code="taken"))
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    s.close()
    stored_b = db.a14_stamped.find_one({"_id": st.id})
    # without a transaction the first flush stays; with one nothing does
    assert stored_b["name"] in ("", "B")
    stored_a = db.a14_item.find_one({"_id": it.id})
    assert stored_a["n"] in (1, 3)
    assert (stored_a["n"] == 3) == (stored_b["name"] == "B")
    assert db.a14_stamped.count_documents({"code": "taken"}) == 1
    # the dates held are those stored
    assert b.at == stored_b["at"]
    assert [x.at for x in b.stamps][: len(stored_b["stamps"])] == [
        x["at"] for x in stored_b["stamps"]
    ]


def test_failed_flush_then_rollback(db: Any) -> None:
    it, st = _seed(db)
    s = Session(db)
    a, b = _change(s, it, st)
    s.flush()
    s.add(Item(code="taken"))
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    s.rollback()
    assert db.a14_item.find_one({"_id": it.id}) == mem(a)
    stored_b = db.a14_stamped.find_one({"_id": st.id})
    assert stored_b["name"] == b.name
    _dates_match(db, b)
    # and the session can go on
    a.n += 1
    s.commit()
    assert db.a14_item.find_one({"_id": it.id}) == mem(a)
    s.close()


def test_failed_flush_inside_with_block(db: Any) -> None:
    it, st = _seed(db)
    held: dict[str, Any] = {}
    with pytest.raises(uow.DuplicateKeyError), Session(db) as s:
        a, b = _change(s, it, st)
        held.update(a=a, b=b)
        s.flush()
        s.add(Item(code="taken"))
        s.flush()
    b = held["b"]
    _dates_match(db, b)
    stored_a = db.a14_item.find_one({"_id": it.id})
    assert stored_a == mem(held["a"])
    assert db.a14_item.count_documents({"code": "taken"}) == 1


def test_duplicate_in_update_with_inc(db: Any) -> None:
    it, _ = _seed(db)
    s = Session(db)
    a = s.get(Item, it.id)
    a.n += 5
    a.code = "taken"
    a.log.append("z")
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    assert s.is_dirty(a)
    a.code = "b"
    s.commit()
    got = db.a14_item.find_one({"_id": it.id})
    assert got == mem(a)
    assert got["n"] == 6
    assert got["log"] == ["x", "z"]
    s.close()


@pytest.mark.transactions
def test_duplicate_between_two_stamped_updates(db: Any) -> None:
    """Two updates in one ordered command; the second is refused."""
    _it, st = _seed(db)
    with Session(db) as s0:
        other = Stamped(code="o", at=OLD)
        s0.add(other)
    s = Session(db)
    b = s.get(Stamped, st.id)
    o = s.get(Stamped, other.id)
    b.n += 1
    o.n += 1
    o.code = "taken"
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    o.code = "o2"
    s.commit()
    for doc in (b, o):
        got = db.a14_stamped.find_one({"_id": doc.id})
        assert got["n"] == 1
        _dates_match(db, doc)
    assert_recent(b.at)
    s.close()


def test_duplicate_between_two_stamped_updates_no_transaction(mongomock_db: Any) -> None:
    test_duplicate_between_two_stamped_updates(mongomock_db)
