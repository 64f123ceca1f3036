"""Partial loads (`fields(...)`) mixed with full loads of the same documents,
then changes at depth and flushes."""

from __future__ import annotations

from typing import Any

import pytest

import uow

from ._docs import A5Line, A5Order
from ._h import emb, insert_raw, reload, stored

C = "a5_order"

RAW = {
    "customer": "ann",
    "lines": [{"sku": "a", "qty": 1, "u": 1}, {"sku": "b", "qty": 2}],
    "total": 5,
    "status": "new",
    "history": ["h0"],
    "unknown": {"deep": [1, 2]},
}


def _seed(db: Any) -> Any:
    return insert_raw(db, C, RAW)


def test_partial_then_full_query_fills_in_then_changes_at_depth(db: Any) -> None:
    oid = _seed(db)
    s = uow.Session(db)
    p = s.query(A5Order).fields("customer", "total").filter(id=oid).one()
    p.total += 1
    p.customer = "bob"
    full = s.query(A5Order).filter(id=oid).one()  # autoflush first
    assert full is p
    p.lines[0].qty += 3
    p.lines.append(A5Line(sku="c"))
    p.history.append("h1")
    p.total += 1
    s.commit()
    got = stored(db, C, oid)
    assert got["customer"] == "bob"
    assert got["total"] == 7
    assert got["lines"][0] == {"sku": "a", "qty": 4, "u": 1}
    assert got["lines"][1] == {"sku": "b", "qty": 2}
    assert got["lines"][2] == emb(A5Line(sku="c"))
    assert got["history"] == ["h0", "h1"]
    assert got["unknown"] == {"deep": [1, 2]}
    assert "addr" not in got and "by_sku" not in got
    s.close()


def test_partial_change_kept_when_full_query_without_autoflush(db: Any) -> None:
    oid = _seed(db)
    s = uow.Session(db, autoflush=False)
    p = s.query(A5Order).fields("customer").filter(id=oid).one()
    p.customer = "zed"
    full = s.query(A5Order).filter(id=oid).one()
    assert full is p
    assert p.customer == "zed"
    p.lines[1].qty += 1
    s.commit()
    got = stored(db, C, oid)
    assert got["customer"] == "zed"
    assert got["lines"][1] == {"sku": "b", "qty": 3}
    assert got["lines"][0] == {"sku": "a", "qty": 1, "u": 1}
    s.close()


def test_full_then_partial_query_does_not_unload_or_overwrite(db: Any) -> None:
    oid = _seed(db)
    s = uow.Session(db, autoflush=False)
    f = s.get(A5Order, oid)
    f.lines[0].notes.append("n")
    f.total += 2
    p = s.query(A5Order).fields("lines", "total").filter(id=oid).one()
    assert p is f
    assert f.lines[0].notes == ["n"]
    assert f.total == 7
    assert f.history == ["h0"]
    f.history.append("h1")
    s.commit()
    got = stored(db, C, oid)
    assert got["lines"][0] == {"sku": "a", "qty": 1, "u": 1, "notes": ["n"]}
    assert got["total"] == 7
    assert got["history"] == ["h0", "h1"]
    s.close()


def test_partial_assign_unloaded_inc_list_then_two_more_flushes(db: Any) -> None:
    """SPEC: an unloaded field that is assigned is written with $set of the value,
    whatever its on_update; after that the field is known and later changes are
    minimal (here: relative to what the session wrote)."""
    oid = _seed(db)
    s = uow.Session(db)
    p = s.query(A5Order).fields("customer").filter(id=oid).one()
    p.total = 50
    p.lines = [A5Line(sku="z", qty=1)]
    s.commit()
    got = stored(db, C, oid)
    assert got["total"] == 50
    assert got["lines"] == [emb(A5Line(sku="z", qty=1))]
    assert got["history"] == ["h0"]
    assert got["unknown"] == {"deep": [1, 2]}
    p.total += 1
    p.lines[0].qty += 1
    p.lines.append(A5Line(sku="y"))
    s.commit()
    got = stored(db, C, oid)
    assert got["total"] == 51
    assert [(ln["sku"], ln["qty"]) for ln in got["lines"]] == [("z", 2), ("y", 0)]
    with pytest.raises(uow.FieldNotLoaded):
        _ = p.history
    s.close()


def test_partial_in_one_block_full_in_next_block(db: Any) -> None:
    oid = _seed(db)
    with uow.Session(db) as s:
        p = s.query(A5Order).fields("lines").filter(id=oid).one()
        p.lines[0].qty += 1
        p.lines[1].tags.append("t")
    got = stored(db, C, oid)
    assert got["lines"] == [{"sku": "a", "qty": 2, "u": 1}, {"sku": "b", "qty": 2, "tags": ["t"]}]
    assert {k: v for k, v in got.items() if k != "lines"} == {
        "_id": oid,
        **{k: v for k, v in RAW.items() if k != "lines"},
    }
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.status = "done"
        o.lines[1].qty += 1
    got = stored(db, C, oid)
    assert got["status"] == "done"
    assert got["lines"][1]["qty"] == 3
    assert "addr" not in got


def test_partial_docs_many_with_small_cache_then_full_load(db: Any) -> None:
    oids = [insert_raw(db, C, {**RAW, "customer": f"c{i}"}) for i in range(5)]
    s = uow.Session(db, cache_size=1)
    for p in s.query(A5Order).fields("total"):
        p.total += 1
    del p
    s.flush()
    for o in s.query(A5Order):
        o.lines[0].qty += 1
    del o
    s.commit()
    for i, oid in enumerate(oids):
        got = stored(db, C, oid)
        assert got["total"] == 6
        assert got["lines"][0] == {"sku": "a", "qty": 2, "u": 1}
        assert got["customer"] == f"c{i}"
    s.close()


def test_partial_expunged_and_added_to_other_session_after_full_change(db: Any) -> None:
    oid = _seed(db)
    s1 = uow.Session(db)
    p = s1.query(A5Order).fields("lines").filter(id=oid).one()
    s1.expunge(p)
    with uow.Session(db) as s2:
        f = s2.get(A5Order, oid)
        f.history.append("s2")
        f.lines[0].qty += 10
    p.lines[1].qty += 1
    s3 = uow.Session(db)
    s3.add(p)
    s3.commit()
    got = stored(db, C, oid)
    assert got["history"] == ["h0", "s2"]
    assert got["lines"][0]["qty"] == 11
    assert got["lines"][1]["qty"] == 3
    s1.close()
    s3.close()


def test_partial_delete_then_reload_gone(db: Any) -> None:
    oid = _seed(db)
    s = uow.Session(db)
    p = s.query(A5Order).fields("customer").filter(id=oid).one()
    s.delete(p)
    s.commit()
    assert db[C].count_documents({"_id": oid}) == 0
    assert s.get(A5Order, oid) is None
    s.close()


def test_partial_refresh_then_full_reload_equal_stored(db: Any) -> None:
    oid = _seed(db)
    s = uow.Session(db)
    p = s.query(A5Order).fields("lines", "total").filter(id=oid).one()
    p.lines[0].qty += 1
    s.refresh(p)
    assert p.lines[0].qty == 1
    p.lines[0].qty += 2
    s.commit()
    got = stored(db, C, oid)
    assert got["lines"][0] == {"sku": "a", "qty": 3, "u": 1}
    full = reload(db, A5Order, oid)
    assert emb(full.lines) == [
        emb(A5Line(sku="a", qty=3)),
        emb(A5Line(sku="b", qty=2)),
    ]
    s.close()
