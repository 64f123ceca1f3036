"""Identity-map pressure: small caches with documents changed in place and dropped
by the user before the flush, clear_cache, expunge + add of detached documents."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import uow

from ._docs import A5Line, A5Order
from ._h import emb, insert_raw, mem, reload, stored

C = "a5_order"


def _seed_many(db: Any, n: int) -> list[Any]:
    with uow.Session(db) as s:
        docs = [
            A5Order(customer=f"c{i}", lines=[A5Line(sku="a", qty=i), A5Line(sku="b")])
            for i in range(n)
        ]
        s.add_all(docs)
    return [d.id for d in docs]


@pytest.mark.parametrize("cache_size", [0, 2])
def test_small_cache_in_place_changes_of_dropped_documents_all_flushed(
    db: Any, cache_size: int
) -> None:
    ids_ = _seed_many(db, 7)
    s = uow.Session(db, cache_size=cache_size)
    for o in s.query(A5Order).sort("customer"):
        o.lines[0].qty += 1
        o.lines[1].tags.append(o.customer)
        o.lines.append(A5Line(sku="new"))
        o.addr.visits += 1
    del o
    gc.collect()
    assert s.stats().pending_updates == 7
    s.commit()
    for i, oid in enumerate(ids_):
        got = stored(db, C, oid)
        assert got["lines"][0]["qty"] == i + 1
        assert got["lines"][1]["tags"] == [f"c{i}"]
        assert [ln["sku"] for ln in got["lines"]] == ["a", "b", "new"]
        assert got["addr"]["visits"] == 1
    s.close()


def test_small_cache_evicted_then_reloaded_and_changed_again(db: Any) -> None:
    ids_ = _seed_many(db, 5)
    for oid in ids_:
        db[C].update_one({"_id": oid}, {"$set": {"legacy": {"k": 1}, "lines.0.old": True}})
    s = uow.Session(db, cache_size=2)
    for oid in ids_:
        o = s.get(A5Order, oid)
        o.lines[0].qty += 10
    del o
    s.flush()
    gc.collect()
    for oid in ids_:  # evicted clean: loaded again, change relative to stored
        o = s.get(A5Order, oid)
        o.lines[0].qty += 1
        o.lines[0].notes.append("n")
        del o
        gc.collect()
    s.commit()
    for i, oid in enumerate(ids_):
        got = stored(db, C, oid)
        assert got["legacy"] == {"k": 1}
        assert got["lines"][0]["old"] is True
        assert got["lines"][0]["qty"] == i + 11
        assert got["lines"][0]["notes"] == ["n"]
    s.close()


def test_cache_zero_held_document_stays_identity_across_queries(db: Any) -> None:
    ids_ = _seed_many(db, 3)
    s = uow.Session(db, cache_size=0)
    held = s.get(A5Order, ids_[1])
    held.lines[0].qty += 1
    s.flush()
    for _ in s.query(A5Order):
        pass
    gc.collect()
    assert s.get(A5Order, ids_[1]) is held
    assert s.query(A5Order).filter(id=ids_[1]).one() is held
    held.lines[0].qty += 1
    s.commit()
    assert stored(db, C, ids_[1]) == mem(held)
    assert stored(db, C, ids_[1])["lines"][0]["qty"] == 3
    s.close()


def test_clear_cache_detached_changed_at_depth_then_added(db: Any) -> None:
    (oid,) = _seed_many(db, 1)
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 2
    s.commit()  # (a raw writer below must not wait on an open transaction)
    s.clear_cache()
    assert s.state(o) == uow.ObjectState.DETACHED
    o.lines[0].qty += 3  # delta since last stored: 3
    o.lines[1].tags.append("det")
    o.lines.append(A5Line(sku="c"))
    db[C].update_one({"_id": oid}, {"$inc": {"lines.0.qty": 100}})  # another writer
    s.add(o)
    s.commit()
    got = stored(db, C, oid)
    assert got["lines"][0]["qty"] == 105
    assert got["lines"][1]["tags"] == ["det"]
    assert [ln["sku"] for ln in got["lines"]] == ["a", "b", "c"]
    s.refresh(o)
    assert mem(o) == got
    s.close()


def test_clear_cache_keeps_dirty_and_detaches_clean_then_get_new_object(db: Any) -> None:
    a, b = _seed_many(db, 2)
    s = uow.Session(db)
    oa, ob = s.get(A5Order, a), s.get(A5Order, b)
    oa.lines[1].qty += 1
    s.clear_cache()
    assert s.state(oa) == uow.ObjectState.PERSISTENT
    assert s.state(ob) == uow.ObjectState.DETACHED
    nb = s.get(A5Order, b)
    assert nb is not ob
    nb.lines[0].notes.append("nb")
    s.commit()
    assert stored(db, C, a) == mem(oa)
    assert stored(db, C, b) == mem(nb)
    s.close()


def test_expunge_after_flush_changed_while_detached_then_added(db: Any) -> None:
    (oid,) = _seed_many(db, 1)
    s = uow.Session(db)
    o = s.get(A5Order, oid)
    o.lines[0].qty += 5
    o.total += 1
    s.flush()
    s.expunge(o)
    o.lines[0].qty += 1
    o.total += 1
    o.lines[0].labels.append("x")
    s.add(o)
    s.commit()
    got = stored(db, C, oid)
    assert got == mem(o)
    assert got["lines"][0]["qty"] == 6
    assert got["total"] == 2
    s.close()


def test_expunge_add_into_second_session_after_another_writer(db: Any) -> None:
    (oid,) = _seed_many(db, 1)
    s1 = uow.Session(db)
    o = s1.get(A5Order, oid)
    s1.expunge(o)
    o.lines[1].qty += 4
    o.lines[1].tags.append("mine")
    o.history.append("h")
    db[C].update_one(
        {"_id": oid},
        {"$inc": {"lines.1.qty": 1}, "$push": {"lines.1.tags": "theirs", "history": "t"}},
    )
    s2 = uow.Session(db)
    s2.add(o)
    s2.commit()
    got = stored(db, C, oid)
    assert got["lines"][1]["qty"] == 5
    assert got["lines"][1]["tags"] == ["theirs", "mine"]
    assert got["history"] == ["t", "h"]
    s2.refresh(o)
    assert mem(o) == got
    s1.close()
    s2.close()


def test_object_from_closed_block_added_to_next_block_with_depth_changes(db: Any) -> None:
    (oid,) = _seed_many(db, 1)
    with uow.Session(db) as s:
        o = s.get(A5Order, oid)
        o.lines[0].qty += 1
    o.lines[0].qty += 1
    o.lines.append(A5Line(sku="later"))
    with uow.Session(db) as s:
        s.add(o)
        s.commit()
        assert stored(db, C, oid) == mem(o)
    got = stored(db, C, oid)
    assert got["lines"][0]["qty"] == 2
    assert mem(reload(db, A5Order, oid)) == got


def test_expunge_then_get_new_then_add_old_and_both_changed(db: Any) -> None:
    """Reading: adding the old detached object when a new one of the same id is
    tracked is refused (one object per stored document), and nothing of the
    tracked one's change is lost or doubled."""
    (oid,) = _seed_many(db, 1)
    s = uow.Session(db)
    old = s.get(A5Order, oid)
    s.expunge(old)
    new = s.get(A5Order, oid)
    assert new is not old
    new.lines[0].qty += 1
    old.lines[1].qty += 1
    # The session holds one object per stored document: the old one is refused,
    # and the tracked one's change lands once.
    with pytest.raises(uow.UowError):
        s.add(old)
    s.commit()
    assert stored(db, C, oid) == mem(new)
    assert stored(db, C, oid)["lines"][1]["qty"] == 0
    s.close()


def test_many_docs_cache_two_with_unknown_keys_in_elements_list_set_whole(db: Any) -> None:
    oids = [
        insert_raw(
            db,
            C,
            {
                "customer": f"r{i}",
                "lines": [{"sku": "a", "qty": i, "x": i}, {"sku": "b", "qty": 0, "x": -i}],
                "extra": i,
            },
        )
        for i in range(4)
    ]
    s = uow.Session(db, cache_size=2)
    for o in s.query(A5Order):
        del o.lines[0]
        o.lines[0].qty += 1
    del o
    gc.collect()
    s.commit()
    for i, oid in enumerate(oids):
        assert stored(db, C, oid) == {
            "_id": oid,
            "customer": f"r{i}",
            # the list is $set whole: its element as the session holds it, plus
            # the element's unknown key
            "lines": [{**emb(A5Line(sku="b", qty=1)), "x": -i}],
            "extra": i,
        }
    s.close()
