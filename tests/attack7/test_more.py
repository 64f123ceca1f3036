"""More queue bookkeeping: delete of dirty / explicitly updated documents, embedded
what_changed paths, flush failure inside s.transaction(), cache_size=0."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import committed, raw
from ._models import Addr, Item, Person, Uniq

S = ObjectState


def test_delete_of_dirty_sends_only_delete(db: Any) -> None:
    it = Item(name="a")
    committed(db, it)
    s = Session(db)
    x = s.get(Item, it.id)
    x.name = "b"
    s.update(x)
    s.delete(x)
    st = s.stats()
    assert (st.pending_updates, st.pending_deletes) == (0, 1)
    r = s.flush()
    assert (r.updated, r.deleted, r.round_trips) == (0, 1, 1)


def test_explicit_update_and_dirty_counted_once(db: Any) -> None:
    it = Item(name="a")
    committed(db, it)
    s = Session(db)
    x = s.get(Item, it.id)
    x.name = "b"
    s.update(x)
    s.update(x)
    assert s.stats().pending_updates == 1
    r = s.flush()
    assert r.updated == 1


def test_clear_queue_drops_forced_update(db: Any) -> None:
    it = Item(name="a")
    committed(db, it)
    s = Session(db)
    x = s.get(Item, it.id)
    s.update(x)
    s.clear_queue()
    assert s.stats().pending_updates == 0
    r = s.flush()
    assert r.round_trips == 0


def test_expunge_drops_explicit_update(db: Any) -> None:
    it = Item(name="a", qty=1)
    committed(db, it)
    s = Session(db)
    x = s.get(Item, it.id)
    x.qty = 2
    s.update(x)
    s.expunge(x)
    assert s.stats().pending_updates == 0
    s.commit()
    assert raw(db, it)["qty"] == 1


def test_what_changed_dotted_paths(db: Any) -> None:
    p = Person(name="p", address=Addr(city="Oslo"), scores={"a": 1})
    committed(db, p)
    s = Session(db)
    x = s.get(Person, p.id)
    x.address.city = "Bergen"
    x.scores["b"] = 2
    del x.scores["a"]
    assert s.dirty_fields(x) == ["address", "scores"]
    wc = s.what_changed()[("a7_person", p.id)]
    assert wc["address.city"] == ("Oslo", "Bergen")
    assert "scores.b" in wc and wc["scores.b"][1] == 2
    assert "scores.a" in wc and wc["scores.a"][0] == 1
    assert s.original_value(x, "address") == Addr(city="Oslo")
    s.commit()
    assert raw(db, p) == {
        "_id": p.id,
        "name": "p",
        "address": {"city": "Bergen", "zip": None},
        "scores": {"b": 2},
    }


@pytest.mark.transactions
def test_flush_failure_inside_transaction_block(db: Any) -> None:
    committed(db, Uniq(email="taken@x"))
    s = Session(db)
    ok = Uniq(email="ok@x")
    with pytest.raises(uow.DuplicateKeyError):
        with s.transaction():
            s.add(ok)
            s.flush()
            s.add(Uniq(email="taken@x"))
            s.flush()
    assert raw(db, ok) is None
    assert s.state(ok) is S.TRANSIENT
    assert not s.has_changes()


@pytest.mark.transactions
def test_inspection_after_flush_inside_transaction(db: Any) -> None:
    it = Item(name="a")
    committed(db, it)
    s = Session(db)
    x = s.get(Item, it.id)
    x.name = "b"
    s.flush()
    assert not s.is_dirty(x)
    assert s.what_changed() == {}
    assert s.original_value(x, "name") == "b"


def test_cache_size_zero_keeps_held_identity(db: Any) -> None:
    it = Item(name="a")
    committed(db, it)
    s = Session(db, cache_size=0)
    x = s.get(Item, it.id)
    assert s.get(Item, it.id) is x
    x.tags.append("t")  # dirty by mutation only
    y = None
    del x
    gc.collect()
    s.commit()
    assert raw(db, it)["tags"] == ["t"]
    del y


def test_cache_size_one_evicts_clean_not_dirty(db: Any) -> None:
    items = [Item(name=str(i)) for i in range(3)]
    committed(db, *items)
    s = Session(db, cache_size=1)
    ids = [i.id for i in items]
    a = s.get(Item, ids[0])
    a.name = "dirty"
    del a
    for i in ids[1:]:
        s.get(Item, i)
    gc.collect()
    s.commit()
    assert raw(db, items[0])["name"] == "dirty"


def test_current_session_outside_block(db: Any) -> None:
    s = Session(db)
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    s.close()


def test_update_of_vanished_document_is_not_silent(db: Any) -> None:
    it = Item(name="a")
    s = Session(db, transactional=False)
    s.add(it)
    s.commit()
    db.a7_items.delete_one({"_id": it.id})
    it.name = "b"
    with pytest.raises(uow.StaleDocumentError):
        s.flush()
    assert db.a7_items.find_one({"_id": it.id}) is None


def test_with_block_base_exception_rolls_back(db: Any) -> None:
    with pytest.raises(KeyboardInterrupt):
        with Session(db) as s:
            s.add(Item(name="kb"))
            raise KeyboardInterrupt
    assert s.closed
    assert db.a7_items.find_one({"name": "kb"}) is None
