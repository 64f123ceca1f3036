"""A flush that fails midway: FlushError.applied / not_applied / in_doubt are
exact; fixing the cause and flushing again loses nothing and doubles nothing.
With and without transactions."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import ids, insert_raw, stored, stored_or_none


class FaA(Document):
    __collection__ = "fa_a"

    name: str
    n: int = field(default=0, on_update="$inc")
    log: list[str] = field(factory=list, on_update="$push")


class FaB(Document):
    __collection__ = "fa_b"
    __indexes__ = [uow.Index("email", unique=True)]

    email: str
    n: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class FaC(Document):
    __collection__ = "fa_c"

    name: str
    n: int = field(default=0, on_update="$inc")


class FaLine(Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")


class FaOrder(Document):
    __collection__ = "fa_orders"

    name: str
    lines: list[FaLine] = field(factory=list)
    tags: list[str] = field(factory=list)


def _partition(err: uow.FlushError, docs: list[Any]) -> tuple[set[int], set[int], set[int]]:
    applied, not_applied, in_doubt = ids(err.applied), ids(err.not_applied), ids(err.in_doubt)
    assert not (applied & not_applied), "a document both applied and not applied"
    assert not (applied & in_doubt) and not (not_applied & in_doubt)
    missing = ids(docs) - (applied | not_applied | in_doubt)
    assert not missing, f"{len(missing)} queued documents in none of applied/not_applied/in_doubt"
    return applied, not_applied, in_doubt


def test_duplicate_in_second_of_three_insert_batches_without_transaction(db: Any) -> None:
    s = uow.Session(db, transactional=False)
    s.ensure_indexes(FaB)
    insert_raw(db, "fa_b", {"email": "taken", "n": 0, "tags": []})
    a = [FaA(name=f"a{i}") for i in range(3)]
    b = [FaB(email="b0"), FaB(email="taken"), FaB(email="b2")]
    c = [FaC(name=f"c{i}") for i in range(3)]
    s.add_all(a)
    s.add_all(b)
    s.add_all(c)
    with pytest.raises(uow.DuplicateKeyError) as caught:
        s.flush()
    err = caught.value
    applied, not_applied, in_doubt = _partition(err, a + b + c)
    assert not in_doubt, "an ordered insert that stopped at a duplicate has a known outcome"
    # exact: stored iff applied
    for d in a + b + c:
        coll = type(d).__collection__
        there = stored_or_none(db, coll, d.id) is not None
        if id(d) in applied:
            assert there, f"{d!r} said applied but not stored"
        if id(d) in not_applied:
            assert not there, f"{d!r} said not applied but stored"
    # ordered: everything before the duplicate landed, nothing after it
    assert applied == ids(a) | {id(b[0])}
    assert not_applied == {id(b[1]), id(b[2])} | ids(c)
    # SPEC: .document and the message name the class, the id and the duplicated value
    assert err.document is b[1]
    assert "FaB" in str(err) and str(b[1].id) in str(err) and "taken" in str(err)
    # fix and flush again
    b[1].email = "fixed"
    s.flush()
    s.commit()
    for d in a + b + c:
        assert stored_or_none(db, type(d).__collection__, d.id) is not None
    assert db["fa_a"].count_documents({}) == 3
    assert db["fa_b"].count_documents({}) == 4
    assert db["fa_c"].count_documents({}) == 3
    assert stored(db, "fa_b", b[1].id)["email"] == "fixed"
    s.close()


@pytest.mark.transactions
def test_duplicate_in_second_of_three_insert_batches_in_transaction(db: Any) -> None:
    s = uow.Session(db)
    s.ensure_indexes(FaB)
    insert_raw(db, "fa_b", {"email": "taken", "n": 0, "tags": []})
    a = [FaA(name=f"a{i}") for i in range(3)]
    b = [FaB(email="b0"), FaB(email="taken"), FaB(email="b2")]
    c = [FaC(name=f"c{i}") for i in range(3)]
    s.add_all(a + b + c)
    with pytest.raises(uow.DuplicateKeyError) as caught:
        s.flush()
    applied, not_applied, in_doubt = _partition(caught.value, a + b + c)
    assert not in_doubt
    assert ids(a + b + c) == not_applied
    # the server aborted the transaction: nothing is stored, nothing "applied"
    for d in a + b + c:
        assert stored_or_none(db, type(d).__collection__, d.id) is None
    assert not applied, "applied lists writes that the aborted transaction undid"
    for d in a + b + c:
        assert s.state(d) == uow.ObjectState.PENDING
    b[1].email = "fixed"
    s.commit()
    assert db["fa_a"].count_documents({}) == 3
    assert db["fa_b"].count_documents({}) == 4
    assert db["fa_c"].count_documents({}) == 3
    s.close()


def _seed(db: Any) -> tuple[list[Any], list[Any], list[Any]]:
    a = [insert_raw(db, "fa_a", {"name": f"a{i}", "n": 0, "log": []}) for i in range(3)]
    b = [insert_raw(db, "fa_b", {"email": f"b{i}", "n": 0, "tags": []}) for i in range(3)]
    c = [insert_raw(db, "fa_c", {"name": f"c{i}", "n": 0}) for i in range(3)]
    return a, b, c


def test_duplicate_in_middle_of_update_batch_without_transaction(db: Any) -> None:
    s = uow.Session(db, transactional=False)
    s.ensure_indexes(FaB)
    a_ids, b_ids, c_ids = _seed(db)
    a = [s.get(FaA, i) for i in a_ids]
    b = [s.get(FaB, i) for i in b_ids]
    c = [s.get(FaC, i) for i in c_ids]
    for d in a:
        d.n += 1
        d.log.append("x")
    b[0].n += 1
    b[1].email = "b2"  # collides with b[2]
    b[1].n += 1
    b[2].n += 1
    b[2].tags.append("t")
    for d in c:
        d.n += 1
    with pytest.raises(uow.DuplicateKeyError) as caught:
        s.flush()
    applied, not_applied, in_doubt = _partition(caught.value, a + b + c)
    assert not in_doubt
    for d in a + b + c:
        raw_n = stored(db, type(d).__collection__, d.id)["n"]
        if id(d) in applied:
            assert raw_n == 1, f"{d!r} applied but stored n={raw_n}"
        if id(d) in not_applied:
            assert raw_n == 0, f"{d!r} not applied but stored n={raw_n}"
    assert applied == ids(a) | {id(b[0])}
    assert not_applied == {id(b[1]), id(b[2])} | ids(c)
    # applied documents are clean; the rest still dirty
    assert not s.is_dirty(a[0])
    assert s.is_dirty(b[1]) and s.is_dirty(c[0])
    b[1].email = "b1-fixed"
    s.flush()
    s.commit()
    for d in a + b + c:
        raw = stored(db, type(d).__collection__, d.id)
        assert raw["n"] == d.n == 1, f"{d!r}: stored {raw['n']} memory {d.n}"
    assert stored(db, "fa_a", a_ids[0])["log"] == ["x"]
    assert stored(db, "fa_b", b_ids[2])["tags"] == ["t"]
    assert stored(db, "fa_b", b_ids[1])["email"] == "b1-fixed"
    s.close()


@pytest.mark.transactions
def test_duplicate_in_middle_of_update_batch_in_transaction_after_earlier_flush(db: Any) -> None:
    s = uow.Session(db)
    s.ensure_indexes(FaB)
    a_ids, b_ids, c_ids = _seed(db)
    a = [s.get(FaA, i) for i in a_ids]
    b = [s.get(FaB, i) for i in b_ids]
    c = [s.get(FaC, i) for i in c_ids]
    for d in a:
        d.n += 1
    s.flush()  # inside the transaction, not committed
    for d in a:
        d.log.append("x")
    b[1].email = "b2"
    b[1].n += 1
    c[0].n += 1
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    # all of it goes back to unflushed, memory keeps values
    assert [d.n for d in a] == [1, 1, 1]
    for i in a_ids:
        assert stored(db, "fa_a", i)["n"] == 0
    b[1].email = "fixed"
    s.commit()
    for d in a:
        raw = stored(db, "fa_a", d.id)
        assert raw["n"] == 1 and raw["log"] == ["x"], raw
    assert stored(db, "fa_b", b_ids[1]) == {"_id": b_ids[1], "email": "fixed", "n": 1, "tags": []}
    assert stored(db, "fa_c", c_ids[0])["n"] == 1
    s.close()


def test_wrong_value_put_in_place_in_second_collection_then_fixed(db: Any) -> None:
    s = uow.Session(db, transactional=False)
    a_ids, b_ids, c_ids = _seed(db)
    a = s.get(FaA, a_ids[0])
    b = s.get(FaB, b_ids[0])
    c = s.get(FaC, c_ids[0])
    a.n += 1
    a.log.append("ok")
    b.tags.append(123)  # wrong type put in place
    b.n += 1
    c.n += 1
    with pytest.raises(uow.ValidationError):
        s.flush()
    # the flush is validated before anything is sent
    for coll, doc_ids in (("fa_a", a_ids), ("fa_b", b_ids), ("fa_c", c_ids)):
        assert stored(db, coll, doc_ids[0])["n"] == 0, coll
    assert stored(db, "fa_a", a.id)["log"] == []
    b.tags[-1] = "123"
    s.flush()
    s.commit()
    for d, coll in ((a, "fa_a"), (b, "fa_b"), (c, "fa_c")):
        raw = stored(db, coll, d.id)
        assert raw["n"] == d.n == 1, f"{coll}: stored {raw['n']} memory {d.n}"
    assert stored(db, "fa_a", a.id)["log"] == ["ok"]
    assert stored(db, "fa_b", b.id)["tags"] == ["123"]
    s.close()


def test_wrong_value_in_list_element_field_then_fixed(db: Any) -> None:
    oid = insert_raw(db, "fa_orders", {"name": "o", "lines": [{"sku": "a", "qty": 1}], "tags": []})
    s = uow.Session(db, transactional=False)
    o = s.get(FaOrder, oid)
    o.lines[0].qty += 2
    o.lines.append(FaLine(sku="b"))
    with pytest.raises(uow.ValidationError):
        o.lines[1].sku = 5  # validated on assignment
    assert o.lines[1].sku == "b"
    o.tags.append(None)  # wrong value put in place
    with pytest.raises(uow.ValidationError):
        s.flush()
    o.tags.pop()
    s.flush()
    s.commit()
    raw = stored(db, "fa_orders", oid)
    assert raw["lines"] == [{"sku": "a", "qty": 3}, {"sku": "b", "qty": 0}]
    s.close()


def test_delete_fails_after_updates_applied_without_transaction(db: Any) -> None:
    """A versioned delete that lost its race is in the third batch (deletes);
    the inserts and updates before it landed and are reported applied."""

    class FaV(Document):
        __collection__ = "fa_v"
        name: str
        version: int = field(default=0, version=True)

    vid = insert_raw(db, "fa_v", {"name": "v", "version": 0})
    a_ids, _, _ = _seed(db)
    s = uow.Session(db, transactional=False)
    v = s.get(FaV, vid)
    a = s.get(FaA, a_ids[0])
    a.n += 1
    new = FaC(name="new")
    s.add(new)
    s.delete(v)
    db["fa_v"].update_one({"_id": vid}, {"$inc": {"version": 1}})
    with pytest.raises(uow.StaleDocumentError) as caught:
        s.flush()
    applied, not_applied, in_doubt = _partition(caught.value, [v, a, new])
    assert applied == {id(a), id(new)}
    assert not_applied == {id(v)}
    assert not in_doubt
    assert stored(db, "fa_a", a.id)["n"] == 1
    assert stored(db, "fa_v", vid)["version"] == 1
    s.refresh(v)
    s.delete(v)
    s.commit()
    assert stored_or_none(db, "fa_v", vid) is None
    assert stored(db, "fa_a", a.id)["n"] == 1
    assert db["fa_c"].count_documents({"name": "new"}) == 1
    s.close()


def test_two_sessions_at_depth_then_stale_version_advice(db: Any) -> None:
    class FaVO(Document):
        __collection__ = "fa_vo"
        name: str
        lines: list[FaLine] = field(factory=list)
        version: int = field(default=0, version=True)

    oid = insert_raw(db, "fa_vo", {"name": "o", "lines": [{"sku": "a", "qty": 1}], "version": 1})
    s1, s2 = uow.Session(db, transactional=False), uow.Session(db, transactional=False)
    o1, o2 = s1.get(FaVO, oid), s2.get(FaVO, oid)
    o1.lines[0].qty += 1
    o1.lines.append(FaLine(sku="b", qty=1))
    o2.lines[0].qty += 10
    s2.commit()
    with pytest.raises(uow.StaleDocumentError) as caught:
        s1.flush()
    assert ids(caught.value.not_applied) == {id(o1)}
    assert not caught.value.in_doubt and not caught.value.applied
    raw = stored(db, "fa_vo", oid)
    assert raw["lines"] == [{"sku": "a", "qty": 11}] and raw["version"] == 2
    s1.refresh(o1)
    assert o1.lines[0].qty == 11 and o1.version == 2
    o1.lines[0].qty += 1
    o1.lines.append(FaLine(sku="b", qty=1))
    s1.commit()
    raw = stored(db, "fa_vo", oid)
    assert raw["lines"] == [{"sku": "a", "qty": 12}, {"sku": "b", "qty": 1}]
    assert raw["version"] == 3 == o1.version
    s1.close()
    s2.close()


def test_raw_writer_between_load_and_flush_max_min_at_depth(db: Any) -> None:
    class FaM(Embedded):
        hi: int = field(default=0, on_update="$max")
        lo: int = field(default=100, on_update="$min")

    class FaMDoc(Document):
        __collection__ = "fa_m"
        name: str
        ms: list[FaM] = field(factory=list)
        by: dict[str, FaM] = field(factory=dict)

    mid = insert_raw(
        db, "fa_m", {"name": "m", "ms": [{"hi": 5, "lo": 5}], "by": {"k": {"hi": 5, "lo": 5}}}
    )
    s = uow.Session(db)
    m = s.get(FaMDoc, mid)
    db["fa_m"].update_one(
        {"_id": mid}, {"$set": {"ms.0.hi": 20, "ms.0.lo": 1, "by.k.hi": 7, "by.k.lo": 4}}
    )
    m.ms[0].hi = 10  # stored 20 stays
    m.ms[0].lo = 3  # stored 1 stays
    m.by["k"].hi = 9  # 9 > 7: stored 9
    m.by["k"].lo = 2  # 2 < 4: stored 2
    s.commit()
    raw = stored(db, "fa_m", mid)
    assert raw["ms"] == [{"hi": 20, "lo": 1}]
    assert raw["by"] == {"k": {"hi": 9, "lo": 2}}
    s.close()
