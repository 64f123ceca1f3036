"""Two (or three) sessions interleaving on the same documents: concurrent appends
and increments at depth, versioned documents; nothing lost, and every session's
memory after refresh equals the store."""

from __future__ import annotations

from typing import Any

import pytest

import uow

from ._docs import A5Line, A5Order, A5VOrder
from ._h import emb, insert_raw, mem, reload, stored

C = "a5_order"
V = "a5_vorder"


def _seed(db: Any, cls: Any = A5Order) -> Any:
    with uow.Session(db) as s:
        o = cls(customer="ann", lines=[A5Line(sku="a", qty=1), A5Line(sku="b", qty=2)])
        s.add(o)
    return o.id


def test_two_sessions_three_rounds_appends_and_incs_at_depth(db: Any) -> None:
    oid = _seed(db)
    s1, s2 = uow.Session(db), uow.Session(db)
    o1, o2 = s1.get(A5Order, oid), s2.get(A5Order, oid)
    for rnd in range(3):
        o1.lines[0].qty += 1
        o1.lines[1].tags.append(f"s1r{rnd}")
        o1.lines[0].peak = 10 + rnd
        o1.total += 1
        o2.lines[0].qty += 10
        o2.lines[1].tags.append(f"s2r{rnd}")
        o2.lines[0].peak = 12 - rnd
        o2.lines[1].low = 50 - rnd
        o2.total += 10
        s1.commit()
        s2.commit()
    got = stored(db, C, oid)
    assert got["lines"][0]["qty"] == 1 + 3 + 30
    assert got["lines"][0]["peak"] == 12
    assert got["lines"][1]["low"] == 48
    assert got["total"] == 33
    assert sorted(got["lines"][1]["tags"]) == sorted(
        [f"s1r{r}" for r in range(3)] + [f"s2r{r}" for r in range(3)]
    )
    s1.refresh(o1)
    s2.refresh(o2)
    assert mem(o1) == got
    assert mem(o2) == got
    assert mem(reload(db, A5Order, oid)) == got
    s1.close()
    s2.close()


def test_two_sessions_append_elements_then_each_changes_its_own_after_refresh(db: Any) -> None:
    oid = _seed(db)
    s1, s2 = uow.Session(db), uow.Session(db)
    o1, o2 = s1.get(A5Order, oid), s2.get(A5Order, oid)
    o1.lines.append(A5Line(sku="x", qty=1))
    o2.lines.append(A5Line(sku="y", qty=1))
    o2.lines[0].qty += 1
    s1.commit()
    s2.commit()
    got = stored(db, C, oid)
    assert [ln["sku"] for ln in got["lines"]] == ["a", "b", "x", "y"]
    assert got["lines"][0]["qty"] == 2
    s1.refresh(o1)
    s2.refresh(o2)
    assert mem(o1) == got == mem(o2)
    o1.lines[3].qty += 5  # y, changed by s1
    o2.lines[2].qty += 7  # x, changed by s2
    o2.lines[2].labels.append("L")
    s2.commit()
    s1.commit()
    got = stored(db, C, oid)
    assert [(ln["sku"], ln["qty"]) for ln in got["lines"]] == [
        ("a", 2),
        ("b", 2),
        ("x", 8),
        ("y", 6),
    ]
    s1.refresh(o1)
    s2.refresh(o2)
    assert mem(o1) == got == mem(o2)
    s1.close()
    s2.close()


def test_add_to_set_same_label_from_two_sessions_stored_once(db: Any) -> None:
    oid = _seed(db)
    s1, s2 = uow.Session(db), uow.Session(db)
    o1, o2 = s1.get(A5Order, oid), s2.get(A5Order, oid)
    o1.lines[0].labels.extend(["p", "q"])
    o2.lines[0].labels.extend(["q", "r"])
    o2.lines[1].notes.append("n2")
    s1.commit()
    s2.commit()
    got = stored(db, C, oid)
    assert got["lines"][0]["labels"] == ["p", "q", "r"]
    assert got["lines"][1]["notes"] == ["n2"]
    s1.refresh(o1)
    assert mem(o1) == got
    s1.close()
    s2.close()


def test_versioned_depth_race_loser_stale_then_refresh_redo(db: Any) -> None:
    vid = _seed(db, A5VOrder)
    s1, s2 = uow.Session(db), uow.Session(db)
    v1, v2 = s1.get(A5VOrder, vid), s2.get(A5VOrder, vid)
    v1.lines.append(A5Line(sku="s1"))
    v1.lines[0].qty += 1
    s1.commit()
    assert stored(db, V, vid) == mem(v1)
    assert v1.version == 1
    v2.lines[1].qty += 3
    v2.total += 1
    with pytest.raises(uow.StaleDocumentError):
        s2.flush()
    assert stored(db, V, vid) == mem(v1)
    s2.rollback()
    s2.refresh(v2)
    assert mem(v2) == stored(db, V, vid)
    v2.lines[1].qty += 3
    v2.total += 1
    s2.commit()
    got = stored(db, V, vid)
    assert got == mem(v2)
    assert got["version"] == 2
    assert [(ln["sku"], ln["qty"]) for ln in got["lines"]] == [("a", 2), ("b", 5), ("s1", 0)]
    # s1 now stale in turn
    v1.lines[0].qty += 1
    with pytest.raises(uow.StaleDocumentError):
        s1.flush()
    s1.rollback()
    s1.refresh(v1)
    assert mem(v1) == got
    s1.close()
    s2.close()


def test_versioned_stale_does_not_skip_other_documents_changes(db: Any) -> None:
    """SPEC: a lost race raises StaleDocumentError and nothing of that flush is
    silently skipped: the other document's update is applied or stays queued."""
    vid = _seed(db, A5VOrder)
    oid = _seed(db)
    s1, s2 = uow.Session(db, transactional=False), uow.Session(db)
    v1 = s1.get(A5VOrder, vid)
    o1 = s1.get(A5Order, oid)
    v2 = s2.get(A5VOrder, vid)
    v2.total += 1
    s2.commit()
    o1.lines[0].qty += 4
    v1.lines[0].tags.append("late")
    with pytest.raises(uow.StaleDocumentError) as err:
        s1.flush()
    assert err.value is not None
    s1.refresh(v1)  # the stale one's change is given up
    s1.flush()  # whatever was not applied: flushing again must not double the $inc
    assert stored(db, C, oid)["lines"][0]["qty"] == 5
    assert stored(db, C, oid) == mem(o1)
    s1.close()
    s2.close()


def test_versioned_missing_key_two_sessions_second_is_stale(db: Any) -> None:
    vid = insert_raw(db, V, {"customer": "legacy", "lines": [{"sku": "a", "qty": 1}]})
    s1, s2 = uow.Session(db), uow.Session(db)
    v1, v2 = s1.get(A5VOrder, vid), s2.get(A5VOrder, vid)
    v1.lines[0].qty += 1
    s1.commit()
    got = stored(db, V, vid)
    assert got["version"] == 1
    assert got["lines"] == [{"sku": "a", "qty": 2}]
    v2.lines[0].qty += 5
    with pytest.raises(uow.StaleDocumentError):
        s2.flush()
    assert stored(db, V, vid) == got
    s1.close()
    s2.close()


def test_versioned_delete_race_then_survivor_changes(db: Any) -> None:
    vid = _seed(db, A5VOrder)
    s1, s2 = uow.Session(db), uow.Session(db)
    v1, v2 = s1.get(A5VOrder, vid), s2.get(A5VOrder, vid)
    v1.lines[1].tags.append("keep")
    s1.commit()
    s2.delete(v2)
    with pytest.raises(uow.StaleDocumentError):
        s2.flush()
    assert stored(db, V, vid) == mem(v1)
    v1.lines[1].tags.append("again")
    s1.commit()
    assert stored(db, V, vid) == mem(v1)
    assert stored(db, V, vid)["version"] == 2
    s1.close()
    s2.close()


def test_three_sessions_push_to_same_element_list_and_top_list(db: Any) -> None:
    oid = _seed(db)
    ss = [uow.Session(db) for _ in range(3)]
    os_ = [s.get(A5Order, oid) for s in ss]
    for i, o in enumerate(os_):
        o.lines[0].notes.append(f"n{i}")
        o.history.append(f"h{i}")
        o.lines[1].qty += i + 1
    for s in ss:
        s.commit()
    got = stored(db, C, oid)
    assert got["lines"][0]["notes"] == ["n0", "n1", "n2"]
    assert got["history"] == ["h0", "h1", "h2"]
    assert got["lines"][1]["qty"] == 2 + 6
    for s, o in zip(ss, os_, strict=True):
        s.refresh(o)
        assert mem(o) == got
        s.close()


def test_raw_writer_appends_between_two_flushes_then_session_appends_and_changes(db: Any) -> None:
    oid = _seed(db)
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 1
    s.commit()
    db[C].update_one({"_id": oid}, {"$push": {"lines": emb(A5Line(sku="raw", qty=3))}})
    o.lines.append(A5Line(sku="mine"))
    o.lines[1].qty += 1
    s.commit()
    got = stored(db, C, oid)
    assert [(ln["sku"], ln["qty"]) for ln in got["lines"]] == [
        ("a", 2),
        ("b", 3),
        ("raw", 3),
        ("mine", 0),
    ]
    s.refresh(o)
    assert mem(o) == got
    s.close()
