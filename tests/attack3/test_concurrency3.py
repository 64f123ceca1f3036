"""Two sessions on the same documents with declared operators at depth: every
operator is relative to what is stored, so both sessions' changes survive."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import insert_raw, reload, stored


class A3CLine(Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    hi: int = field(default=0, on_update="$max")
    lo: int = field(default=100, on_update="$min")
    marks: list[str] = field(factory=list, on_update="$addToSet")
    log: list[str] = field(factory=list, on_update="$push")
    price: int = 0


class A3CGroup(Embedded):
    lines: list[A3CLine] = field(factory=list)
    by: dict[str, A3CLine] = field(factory=dict)


class A3CDoc(Document):
    __collection__ = "a3_c_docs"

    name: str
    lines: list[A3CLine] = field(factory=list)
    by: dict[str, list[A3CLine]] = field(factory=dict)
    group: A3CGroup | None = None
    groups: list[A3CGroup] = field(factory=list)


class A3CVDoc(Document):
    __collection__ = "a3_c_vdocs"

    name: str
    lines: list[A3CLine] = field(factory=list)
    version: int = field(default=0, version=True)


def _ln(sku: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sku": sku,
        "qty": 0,
        "hi": 0,
        "lo": 100,
        "marks": [],
        "log": [],
        "price": 0,
    }
    base.update(kw)
    return base


def _raw() -> dict[str, Any]:
    return {
        "name": "c",
        "lines": [_ln("a", qty=1, hi=5, lo=50, marks=["m"], log=["l"])],
        "by": {"k": [_ln("b", qty=2)]},
        "group": {"lines": [_ln("g")], "by": {"x": _ln("x", qty=3)}},
        "groups": [{"lines": [_ln("gg", qty=4)], "by": {}}],
    }


def _two(db: Any) -> tuple[Any, Any, Any, Any, Any]:
    oid = insert_raw(db, "a3_c_docs", _raw())
    s1, s2 = uow.Session(db), uow.Session(db)
    a, b = s1.get(A3CDoc, oid), s2.get(A3CDoc, oid)
    assert a is not None and b is not None
    return oid, s1, s2, a, b


def test_inc_at_every_depth_from_two_sessions(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    for o, d in ((a, 1), (b, 10)):
        o.lines[0].qty += d
        o.by["k"][0].qty += d
        o.group.by["x"].qty += d
        o.group.lines[0].qty += d
        o.groups[0].lines[0].qty += d
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["lines"][0]["qty"] == 12
    assert raw["by"]["k"][0]["qty"] == 13
    assert raw["group"]["by"]["x"]["qty"] == 14
    assert raw["group"]["lines"][0]["qty"] == 11
    assert raw["groups"][0]["lines"][0]["qty"] == 15


def test_max_min_at_depth_from_two_sessions(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    a.lines[0].hi = 9
    a.lines[0].lo = 40
    b.lines[0].hi = 7
    b.lines[0].lo = 30
    a.group.by["x"].hi = 3
    b.group.by["x"].hi = 8
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["lines"][0]["hi"] == 9 and raw["lines"][0]["lo"] == 30
    assert raw["group"]["by"]["x"]["hi"] == 8


def test_add_to_set_and_push_at_depth_from_two_sessions(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    a.lines[0].marks.append("p")
    b.lines[0].marks.append("p")
    b.lines[0].marks.append("q")
    a.lines[0].log.append("a1")
    b.lines[0].log.append("b1")
    a.by["k"][0].log.append("a")
    b.by["k"][0].log.append("b")
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["lines"][0]["marks"] == ["m", "p", "q"]
    assert raw["lines"][0]["log"] == ["l", "a1", "b1"]
    assert raw["by"]["k"][0]["log"] == ["a", "b"]


def test_add_to_set_item_another_writer_added_meanwhile_stored_once(db: Any) -> None:
    """Another writer added "n" after the load; this session appends "n" (unique
    in its memory): `$addToSet` keeps one, and memory equals stored."""
    oid = insert_raw(db, "a3_c_docs", _raw())
    s = uow.Session(db)
    o = s.get(A3CDoc, oid)
    assert o is not None
    db.a3_c_docs.update_one({"_id": oid}, {"$push": {"lines.0.marks": "n"}})
    o.lines[0].marks.append("n")
    o.lines[0].qty += 1
    s.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["lines"][0]["marks"] == ["m", "n"]
    assert raw["lines"][0]["qty"] == 2
    assert o.lines[0].marks == raw["lines"][0]["marks"]


def test_set_of_one_key_and_inc_of_another_in_the_same_element(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    a.lines[0].price = 99
    b.lines[0].qty += 5
    b.group.lines[0].price = 7
    a.group.lines[0].qty += 2
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["lines"][0]["price"] == 99 and raw["lines"][0]["qty"] == 6
    assert raw["group"]["lines"][0] == _ln("g", qty=2, price=7)


def test_appends_at_depth_from_two_sessions_both_kept(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    a.by["k"].append(A3CLine(sku="a-new"))
    b.by["k"].append(A3CLine(sku="b-new"))
    a.groups[0].lines.append(A3CLine(sku="ga"))
    b.groups.append(A3CGroup())
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert [x["sku"] for x in raw["by"]["k"]] == ["b", "a-new", "b-new"]
    assert [x["sku"] for x in raw["groups"][0]["lines"]] == ["gg", "ga"]
    assert len(raw["groups"]) == 2


def test_new_dict_keys_from_two_sessions_both_kept(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    a.by["a"] = [A3CLine(sku="a")]
    b.by["b"] = [A3CLine(sku="b")]
    a.group.by["ya"] = A3CLine(sku="ya")
    b.group.by["yb"] = A3CLine(sku="yb")
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert sorted(raw["by"]) == ["a", "b", "k"]
    assert sorted(raw["group"]["by"]) == ["x", "ya", "yb"]


def test_reload_after_two_sessions_equals_stored(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    a.lines[0].qty += 1
    a.lines.append(A3CLine(sku="z"))
    b.lines[0].qty += 2
    b.lines[0].log.append("b")
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    again = reload(db, A3CDoc, oid)
    assert [line.qty for line in again.lines] == [x["qty"] for x in raw["lines"]] == [4, 0]
    assert again.lines[0].log == ["l", "b"]


def test_second_session_refresh_then_change_is_relative_to_stored(db: Any) -> None:
    oid, s1, s2, a, b = _two(db)
    a.lines[0].qty += 1
    a.lines[0].hi = 50
    s1.commit()
    s2.refresh(b)
    assert b.lines[0].qty == 2 and b.lines[0].hi == 50
    b.lines[0].qty += 1
    b.lines[0].hi = 40  # lower: $max keeps 50; memory must then equal stored
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["lines"][0]["qty"] == 3
    assert raw["lines"][0]["hi"] == 50


def test_versioned_two_sessions_at_depth_second_stale_then_redone(db: Any) -> None:
    oid = insert_raw(db, "a3_c_vdocs", {"name": "v", "lines": [_ln("a", qty=1)], "version": 0})
    s1, s2 = uow.Session(db), uow.Session(db)
    a, b = s1.get(A3CVDoc, oid), s2.get(A3CVDoc, oid)
    assert a is not None and b is not None
    a.lines[0].qty += 1
    a.lines[0].marks.append("a")
    s1.commit()
    b.lines[0].qty += 10
    b.lines[0].marks.append("b")
    with pytest.raises(uow.StaleDocumentError):
        s2.commit()
    assert stored(db, "a3_c_vdocs", oid)["lines"][0]["qty"] == 2
    s2.rollback()
    s2.refresh(b)
    b.lines[0].qty += 10
    b.lines[0].marks.append("b")
    s2.commit()
    raw = stored(db, "a3_c_vdocs", oid)
    assert raw["lines"][0]["qty"] == 12
    assert raw["lines"][0]["marks"] == ["a", "b"]
    assert raw["version"] == 2 == b.version


@pytest.mark.transactions
def test_write_conflict_between_open_transactions_then_second_completes_once(db: Any) -> None:
    """s1 holds the document in an open transaction; s2's flush conflicts and the
    server aborts s2's transaction (FlushError saying so). Once s1 commits, s2's
    next commit writes its changes once, relative to what is stored."""
    oid, s1, s2, a, b = _two(db)
    a.lines[0].qty += 1
    s1.flush()
    b.lines[0].qty += 10
    b.lines[0].log.append("b")
    b.lines.append(A3CLine(sku="b"))
    with pytest.raises(uow.FlushError) as info:
        s2.flush()
    assert info.value.transaction_aborted
    s1.commit()
    s2.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["lines"][0]["qty"] == 12
    assert raw["lines"][0]["log"] == ["l", "b"]
    assert [x["sku"] for x in raw["lines"]] == ["a", "b"]


def test_raw_writer_between_two_flushes_of_one_session(db: Any) -> None:
    oid = insert_raw(db, "a3_c_docs", _raw())
    s = uow.Session(db)
    o = s.get(A3CDoc, oid)
    assert o is not None
    o.group.by["x"].qty += 1  # type: ignore[union-attr]
    s.commit()
    db.a3_c_docs.update_one({"_id": oid}, {"$inc": {"group.by.x.qty": 100}})
    o.group.by["x"].qty += 1  # type: ignore[union-attr]
    o.group.by["x"].log.append("z")  # type: ignore[union-attr]
    s.commit()
    raw = stored(db, "a3_c_docs", oid)
    assert raw["group"]["by"]["x"]["qty"] == 105
    assert raw["group"]["by"]["x"]["log"] == ["z"]
