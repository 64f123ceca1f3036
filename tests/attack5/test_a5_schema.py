"""Schema evolution: stored documents lacking keys (fields added later, with
defaults, at depth), legacy values of another type, unknown keys; then changes at
depth and flushes. Stored keeps unknown keys; missing keys stay missing unless changed."""

from __future__ import annotations

from typing import Any

import uow

from ._docs import A5Addr, A5Line, A5Order, A5Stamped
from ._h import emb, insert_raw, mem, reload, stored

C = "a5_order"


def test_load_of_sparse_document_writes_nothing(db: Any) -> None:
    raw = {"customer": "old", "lines": [{"sku": "a"}], "by_sku": {"k": {"sku": "k", "zz": 1}}}
    oid = insert_raw(db, C, raw)
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        assert o.total == 0 and o.lines[0].qty == 0 and o.addr == A5Addr()
        assert not s.is_dirty(o)
        assert s.flush().updated == 0
        s.update(o)  # forced update with nothing changed: still nothing to invent
    assert stored(db, C, oid) == {"_id": oid, **raw}


def test_missing_top_level_keys_first_change_whole_then_minimal(db: Any) -> None:
    oid = insert_raw(db, C, {"customer": "old", "legacy": [1]})
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.total += 2
    o.lines.append(A5Line(sku="a", qty=1))
    o.addr.visits += 1
    o.history.append("h")
    s.commit()
    got = stored(db, C, oid)
    assert got == {
        "_id": oid,
        "customer": "old",
        "legacy": [1],
        "total": 2,
        "lines": [emb(A5Line(sku="a", qty=1))],
        "addr": emb(A5Addr(visits=1)),
        "history": ["h"],
    }
    # another writer in between: now minimal operators keep its work
    db[C].update_one(
        {"_id": oid}, {"$inc": {"total": 10, "addr.visits": 10}, "$push": {"history": "t"}}
    )
    o.total += 1
    o.addr.visits += 1
    o.history.append("h2")
    o.lines[0].qty += 1
    s.commit()
    got = stored(db, C, oid)
    assert got["total"] == 13
    assert got["addr"]["visits"] == 12
    assert got["history"] == ["h", "t", "h2"]
    assert got["lines"][0]["qty"] == 2
    assert "by_sku" not in got and "status" not in got
    s.refresh(o)
    assert mem(o, legacy=[1]) | {"by_sku": {}, "status": "new"} == got | {
        "by_sku": {},
        "status": "new",
    }
    s.close()


def test_missing_keys_inside_list_elements_with_unknown_keys(db: Any) -> None:
    oid = insert_raw(
        db,
        C,
        {
            "customer": "old",
            "lines": [{"sku": "a", "legacy": "L0"}, {"sku": "b", "qty": 2, "legacy": "L1"}],
        },
    )
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 1  # missing: $set of 1
    o.lines[1].qty += 1  # present: $inc
    o.lines[0].tags.append("t")  # missing: ["t"]
    s.commit()
    assert stored(db, C, oid)["lines"] == [
        {"sku": "a", "legacy": "L0", "qty": 1, "tags": ["t"]},
        {"sku": "b", "qty": 3, "legacy": "L1"},
    ]
    o.lines.append(A5Line(sku="c"))
    o.lines[0].tags.append("u")
    o.lines[0].qty += 1
    s.commit()
    got = stored(db, C, oid)
    assert got["lines"][:2] == [
        {"sku": "a", "legacy": "L0", "qty": 2, "tags": ["t", "u"]},
        {"sku": "b", "qty": 3, "legacy": "L1"},
    ]
    assert got["lines"][2] == emb(A5Line(sku="c"))
    s.close()


def test_unknown_keys_of_elements_follow_them_when_list_reordered(db: Any) -> None:
    """SPEC: unknown stored keys are kept at every depth, list elements too: a
    reordered list is $set whole, and each element keeps its own unknown key."""
    oid = insert_raw(
        db,
        C,
        {
            "customer": "old",
            "lines": [
                {"sku": "a", "qty": 1, "x": "A"},
                {"sku": "b", "qty": 2, "x": "B"},
                {"sku": "c", "qty": 3, "x": "C"},
            ],
        },
    )
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines.reverse()
    o.lines[0].qty += 1
    s.commit()
    got = stored(db, C, oid)
    assert [(ln["sku"], ln["qty"], ln.get("x")) for ln in got["lines"]] == [
        ("c", 4, "C"),
        ("b", 2, "B"),
        ("a", 1, "A"),
    ]
    s.close()


def test_unknown_keys_kept_when_element_removed_and_new_inserted_front(db: Any) -> None:
    oid = insert_raw(
        db,
        C,
        {
            "customer": "old",
            "lines": [{"sku": "a", "x": 1}, {"sku": "b", "x": 2}, {"sku": "c", "x": 3}],
        },
    )
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    del o.lines[1]
    o.lines.insert(0, A5Line(sku="new"))
    s.commit()
    got = stored(db, C, oid)
    assert [(ln["sku"], ln.get("x")) for ln in got["lines"]] == [
        ("new", None),
        ("a", 1),
        ("c", 3),
    ]
    o.lines[2].qty += 1
    s.commit()
    assert stored(db, C, oid)["lines"][2]["x"] == 3
    assert stored(db, C, oid)["lines"][2]["qty"] == 1
    s.close()


def test_unknown_keys_in_dict_values_and_embedded_kept_on_changes(db: Any) -> None:
    oid = insert_raw(
        db,
        C,
        {
            "customer": "old",
            "by_sku": {"a": {"sku": "a", "qty": 1, "y": 1}, "b": {"sku": "b", "y": 2}},
            "addr": {"city": "Oslo", "floor": 3},
        },
    )
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.by_sku["a"].qty += 1
    o.by_sku["b"].labels.append("l")
    o.by_sku["c"] = A5Line(sku="c")
    o.addr.zip = "0150"
    s.commit()
    got = stored(db, C, oid)
    assert got["by_sku"]["a"] == {"sku": "a", "qty": 2, "y": 1}
    assert got["by_sku"]["b"] == {"sku": "b", "y": 2, "labels": ["l"]}
    assert got["by_sku"]["c"] == emb(A5Line(sku="c"))
    assert got["addr"] == {"city": "Oslo", "floor": 3, "zip": "0150"}
    del o.by_sku["c"]
    o.by_sku["a"].qty += 1
    s.commit()
    got = stored(db, C, oid)
    assert sorted(got["by_sku"]) == ["a", "b"]
    assert got["by_sku"]["a"] == {"sku": "a", "qty": 3, "y": 1}
    s.close()


def test_legacy_types_loaded_never_block_flush_of_other_changes(db: Any) -> None:
    oid = insert_raw(
        db,
        C,
        {
            "customer": 42,
            "status": ["weird"],
            "total": "7",
            "lines": [{"sku": 1, "qty": "3", "tags": "notalist"}, {"sku": "b", "qty": 1}],
        },
    )
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[1].qty += 1
    o.lines.append(A5Line(sku="c"))
    o.history.append("h")
    s.commit()
    got = stored(db, C, oid)
    assert got["customer"] == 42
    assert got["status"] == ["weird"]
    assert got["total"] == "7"
    assert got["lines"][0] == {"sku": 1, "qty": "3", "tags": "notalist"}
    assert got["lines"][1] == {"sku": "b", "qty": 2}
    assert got["lines"][2] == emb(A5Line(sku="c"))
    assert got["history"] == ["h"]
    o.customer = "fixed"
    o.lines[0].sku = "a"
    s.commit()
    got = stored(db, C, oid)
    assert got["customer"] == "fixed"
    assert got["lines"][0] == {"sku": "a", "qty": "3", "tags": "notalist"}
    s.close()


def test_legacy_type_element_when_list_set_whole_does_not_block(db: Any) -> None:
    """SPEC: legacy values load as they are and never block a flush; a list that
    lost an element is $set whole, carrying the legacy element as loaded."""
    oid = insert_raw(
        db,
        C,
        {"customer": "c", "lines": [{"sku": "a"}, {"sku": 7, "qty": "x"}, {"sku": "c"}]},
    )
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    del o.lines[0]
    s.commit()
    got = stored(db, C, oid)
    assert [ln["sku"] for ln in got["lines"]] == [7, "c"]
    assert got["lines"][0]["qty"] == "x"
    s.close()


def test_sparse_document_in_service_flow_two_blocks_then_reload(db: Any) -> None:
    oid = insert_raw(db, C, {"customer": "old", "lines": [{"sku": "a", "zz": 9}], "k": 1})
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[0].peak = 3
        o.lines[0].low = 50
    assert stored(db, C, oid) == {
        "_id": oid,
        "customer": "old",
        "lines": [{"sku": "a", "zz": 9, "peak": 3, "low": 50}],
        "k": 1,
    }
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[0].peak = 2  # $max: stays 3
        o.lines[0].low = 60  # $min: stays 50
        o.lines[0].price = 1.5
    got = stored(db, C, oid)
    assert got["lines"] == [{"sku": "a", "zz": 9, "peak": 3, "low": 50, "price": 1.5}]
    r = reload(db, A5Order, oid)
    assert (r.lines[0].peak, r.lines[0].low) == (3, 50)


def test_missing_stamp_key_in_sparse_stamped_document(db: Any) -> None:
    did = insert_raw(db, "a5_stamped", {"name": "n", "lines": [{"sku": "a", "u": 1}]})
    s = uow.Session(db)
    d = s.get(A5Stamped, did)
    d.lines[0].qty += 2
    s.commit()
    got = stored(db, "a5_stamped", did)
    assert got["lines"][0]["qty"] == 2
    assert got["lines"][0]["u"] == 1
    assert got["lines"][0].get("touched") is not None
    assert d.lines[0].touched == got["lines"][0]["touched"]
    s.close()


def test_missing_version_key_bumped_in_flow(db: Any) -> None:
    from ._docs import A5VOrder

    vid = insert_raw(db, "a5_vorder", {"customer": "c", "lines": [{"sku": "a", "q": 1}]})
    with uow.Session(db) as s:
        v = s.get(A5VOrder, vid)
        v.lines[0].qty += 1
    with uow.Session(db) as s:
        v = s.get(A5VOrder, vid)
        v.lines[0].qty += 1
        v.total += 1
    got = stored(db, "a5_vorder", vid)
    assert got == {
        "_id": vid,
        "customer": "c",
        "lines": [{"sku": "a", "q": 1, "qty": 2}],
        "version": 2,
        "total": 1,
    }
