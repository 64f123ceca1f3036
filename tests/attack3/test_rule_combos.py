"""The one rule (stored equals what the session holds) combined with subclasses,
`db_name`, versioned documents, transactions, partial loads, refresh, expunge /
add of detached documents and `update()`."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import emb, insert_raw, reload, stored, stored_or_none


class A3Item(Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    hi: int = field(default=0, on_update="$max")
    marks: list[str] = field(factory=list, on_update="$addToSet")


class A3Base(Document):
    __collection__ = "a3_base"

    name: str
    count: int = field(default=0, on_update="$inc", db_name="c")
    items: list[A3Item] = field(factory=list, db_name="its")
    tags: list[str] = field(factory=list)
    version: int = field(default=0, version=True)


class A3Sub(A3Base):
    extra: dict[str, A3Item] = field(factory=dict)
    more: int = field(default=5, on_update="$inc")


def _item(sku: str, qty: int = 0, hi: int = 0, marks: list[str] | None = None) -> dict[str, Any]:
    return {"sku": sku, "qty": qty, "hi": hi, "marks": list(marks or [])}


def _raw_sub(**values: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_cls": "A3Sub",
        "name": "s",
        "c": 1,
        "its": [_item("a", 1, 1)],
        "tags": ["t"],
        "version": 1,
        "extra": {"x": _item("x", 2, 2)},
        "more": 5,
    }
    doc.update(values)
    return doc


def _check_sub(db: Any, o: A3Sub) -> dict[str, Any]:
    raw = stored(db, "a3_base", o.id)
    assert raw["_cls"] == "A3Sub"
    assert raw["name"] == o.name
    assert raw["c"] == o.count
    assert raw["its"] == emb(o.items)
    assert raw["tags"] == o.tags
    assert raw["version"] == o.version
    assert raw["extra"] == emb(o.extra)
    assert raw["more"] == o.more
    assert "count" not in raw and "items" not in raw
    again = reload(db, A3Base, o.id)
    assert type(again) is A3Sub
    assert (again.count, again.version, again.more) == (o.count, o.version, o.more)  # type: ignore[attr-defined]
    assert emb(again.items) == emb(o.items)
    return raw


def test_subclass_missing_key_via_base_query_then_minimal(db: Any) -> None:
    raw0 = _raw_sub()
    del raw0["more"]
    oid = insert_raw(db, "a3_base", raw0)
    s = uow.Session(db)
    o = s.query(A3Base).filter(A3Base.name == "s").one()
    assert isinstance(o, A3Sub)
    o.more += 1
    s.commit()
    assert stored(db, "a3_base", oid)["more"] == 6
    _check_sub(db, o)
    db.a3_base.update_one({"_id": oid}, {"$inc": {"more": 10}})
    o.more += 1
    s.commit()
    assert stored(db, "a3_base", oid)["more"] == 17
    assert o.version == 3


def test_subclass_depth_changes_in_dict_and_list_with_db_names(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Base, oid)
    assert isinstance(o, A3Sub)
    o.extra["x"].qty += 3
    o.extra["x"].marks.append("m")
    o.extra["y"] = A3Item(sku="y", qty=1)
    o.items[0].hi = 9
    o.items.append(A3Item(sku="b"))
    o.count += 2
    s.commit()
    raw = _check_sub(db, o)
    assert raw["version"] == 2
    assert raw["extra"]["x"] == _item("x", 5, 2, ["m"])


def test_what_changed_uses_attribute_names_at_depth(db: Any) -> None:
    """Reading: what_changed() gives the dotted paths of attribute names that the
    flush writes (SPEC: "paths of attribute names, dotted"); a change inside a
    list element is written on its positional path, so it is reported there, as
    a change inside an embedded document or a dict is."""
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    o.items[0].qty = 4
    o.count = 7
    changed = s.what_changed()[("a3_base", oid)]
    assert changed == {"items.0.qty": (1, 4), "count": (1, 7)}
    assert s.dirty_fields(o) == ["count", "items"]


@pytest.mark.transactions
def test_subclass_versioned_two_flushes_rolled_back_then_committed_once(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    o.count += 1
    o.extra["x"].qty += 1
    s.flush()
    o.count += 2
    o.items[0].marks.append("z")
    s.flush()
    s.rollback()
    assert (o.count, o.version, o.extra["x"].qty, o.items[0].marks) == (1, 1, 2, [])
    assert stored(db, "a3_base", oid) == {"_id": oid, **_raw_sub()}
    o.count += 4
    o.extra["x"].qty += 4
    s.commit()
    raw = _check_sub(db, o)
    assert raw["c"] == 5 and raw["extra"]["x"]["qty"] == 6 and raw["version"] == 2


@pytest.mark.transactions
def test_subclass_insert_rolled_back_then_added_again(db: Any) -> None:
    s = uow.Session(db)
    o = A3Sub(name="n", extra={"k": A3Item(sku="k", qty=2)})
    s.add(o)
    s.flush()
    s.rollback()
    assert s.state(o) is uow.ObjectState.TRANSIENT
    assert stored_or_none(db, "a3_base", o.id) is None
    o.extra["k"].qty += 1
    s.add(o)
    s.commit()
    raw = _check_sub(db, o)
    assert raw["extra"]["k"]["qty"] == 3
    assert db.a3_base.count_documents({}) == 1


def test_expunged_subclass_changed_at_depth_then_added_to_new_session(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    s.expunge(o)
    o.extra["x"].qty += 2
    o.items.append(A3Item(sku="new"))
    o.more += 1
    db.a3_base.update_one({"_id": oid}, {"$inc": {"extra.x.qty": 100, "more": 10}})
    s2 = uow.Session(db)
    s2.add(o)
    s2.commit()
    raw = stored(db, "a3_base", oid)
    assert raw["extra"]["x"]["qty"] == 104
    assert raw["more"] == 16
    assert [i["sku"] for i in raw["its"]] == ["a", "new"]
    assert raw["version"] == 2 == o.version
    assert raw["_cls"] == "A3Sub"


def test_detached_by_clear_cache_changed_then_added_back(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    s.clear_cache()
    assert s.state(o) is uow.ObjectState.DETACHED
    o.items[0].qty += 5
    o.tags.append("u")
    s.add(o)
    s.commit()
    raw = _check_sub(db, o)
    assert raw["its"][0]["qty"] == 6 and raw["tags"] == ["t", "u"]


def test_detached_from_closed_session_after_commit_added_twice(db: Any) -> None:
    """Detached, changed, added to s2 and committed; then detached again (s2
    closed), changed again, added to s3: each change written once."""
    oid = insert_raw(db, "a3_base", _raw_sub())
    s1 = uow.Session(db)
    o = s1.get(A3Sub, oid)
    assert o is not None
    s1.close()
    o.count += 1
    s2 = uow.Session(db)
    s2.add(o)
    s2.commit()
    s2.close()
    o.count += 10
    o.extra["x"].qty += 1
    s3 = uow.Session(db)
    s3.add(o)
    s3.commit()
    raw = _check_sub(db, o)
    assert raw["c"] == 12 and raw["extra"]["x"]["qty"] == 3 and raw["version"] == 3


def test_refresh_after_concurrent_writes_then_change(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    o.count += 100  # discarded by refresh
    db.a3_base.update_one({"_id": oid}, {"$inc": {"c": 10, "extra.x.qty": 10, "version": 1}})
    s.refresh(o)
    assert (o.count, o.version, o.extra["x"].qty) == (11, 2, 12)
    assert not s.is_dirty(o)
    o.count += 1
    o.extra["x"].qty += 1
    s.commit()
    raw = _check_sub(db, o)
    assert raw["c"] == 12 and raw["extra"]["x"]["qty"] == 13 and raw["version"] == 3


def test_refresh_discards_depth_changes_and_flush_sends_nothing(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    o.items[0].marks.append("m")
    o.extra["x"].qty += 1
    s.refresh(o)
    assert not s.has_changes()
    result = s.flush()
    assert result.updated == 0
    assert stored(db, "a3_base", oid) == {"_id": oid, **_raw_sub()}


def test_forced_update_of_subclass_bumps_version_keeps_cls(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Base, oid)
    assert o is not None
    s.update(o)
    s.commit()
    raw = _check_sub(db, o)  # type: ignore[arg-type]
    assert raw["version"] == 2


def test_untracked_subclass_update_upsert_stores_cls(db: Any) -> None:
    """`update(obj, upsert=True)` of a transient subclass document creates it:
    stored with `_cls` so that it loads as the subclass again."""
    s = uow.Session(db)
    o = A3Sub(name="u", count=2, more=3)
    s.update(o, upsert=True)
    s.commit()
    raw = stored(db, "a3_base", o.id)
    assert raw["_cls"] == "A3Sub"
    assert raw["c"] == 2 and raw["more"] == 3
    again = reload(db, A3Base, o.id)
    assert type(again) is A3Sub


def test_untracked_subclass_update_adds_increments(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = A3Sub(name="s", count=2, more=3)
    o.id = oid
    s.update(o, name="$set", tags="$set", items="$set", extra="$set", version="$set")
    s.commit()
    raw = stored(db, "a3_base", oid)
    assert raw["c"] == 3 and raw["more"] == 8
    assert raw["_cls"] == "A3Sub"


def test_update_override_on_tracked_subclass(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    db.a3_base.update_one({"_id": oid}, {"$inc": {"more": 50}})
    o.more = 9
    s.update(o, more="$set")
    s.commit()
    raw = stored(db, "a3_base", oid)
    assert raw["more"] == 9 == o.more
    assert raw["version"] == 2 == o.version


def test_delete_then_add_same_id_subclass_replaces(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub(legacy="kept?"))
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    s.delete(o)
    new = A3Sub(name="r", extra={"z": A3Item(sku="z")})
    new.id = oid
    s.add(new)
    s.commit()
    raw = stored(db, "a3_base", oid)
    assert raw["_cls"] == "A3Sub"
    assert raw["name"] == "r"
    assert raw["extra"] == {"z": _item("z")}
    assert "legacy" not in raw, "a replace by a new object keeps the old object's unknown key"
    assert db.a3_base.count_documents({}) == 1


def test_root_document_never_gains_cls(db: Any) -> None:
    oid = insert_raw(db, "a3_base", {"name": "root", "c": 0, "its": [], "tags": [], "version": 0})
    s = uow.Session(db)
    o = s.get(A3Base, oid)
    assert type(o) is A3Base
    o.count += 1
    o.items.append(A3Item(sku="a"))
    s.commit()
    raw = stored(db, "a3_base", oid)
    assert "_cls" not in raw
    assert raw["c"] == 1 and raw["version"] == 1


def test_query_exclude_subclasses_and_partial_subclass_change(db: Any) -> None:
    sid = insert_raw(db, "a3_base", _raw_sub())
    rid = insert_raw(db, "a3_base", {"name": "root", "c": 0, "its": [], "tags": [], "version": 0})
    s = uow.Session(db)
    roots = s.query(A3Base, exclude_subclasses=True).all()
    assert [r.id for r in roots] == [rid]
    o = s.query(A3Base).filter(A3Base.id == sid).fields("name", "items").one()
    assert isinstance(o, A3Sub)
    o.items[0].qty += 1
    o.items.append(A3Item(sku="p"))
    o.count = 50  # not loaded: a $set of the value
    o.more = 1  # not loaded, declared $inc: a $set of the value all the same
    s.commit()
    raw = stored(db, "a3_base", sid)
    assert raw["its"] == [_item("a", 2, 1), _item("p")]
    assert raw["c"] == 50 and raw["more"] == 1
    assert raw["extra"] == {"x": _item("x", 2, 2)} and raw["tags"] == ["t"]
    assert raw["_cls"] == "A3Sub"


def test_partial_subclass_load_then_full_load_then_change(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.query(A3Sub).filter(A3Sub.id == oid).fields("name").one()
    with pytest.raises(uow.FieldNotLoaded):
        _ = o.more
    full = s.get(A3Sub, oid)
    assert full is o
    o2 = s.query(A3Sub).filter(A3Sub.id == oid).one()
    assert o2 is o
    o.more += 2
    o.items[0].qty += 1
    s.commit()
    _check_sub(db, o)
    assert stored(db, "a3_base", oid)["more"] == 7


def test_stale_subclass_then_refresh_and_redo(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s1, s2 = uow.Session(db), uow.Session(db)
    a, b = s1.get(A3Sub, oid), s2.get(A3Sub, oid)
    assert a is not None and b is not None
    a.extra["x"].qty += 1
    s1.commit()
    b.extra["x"].qty += 10
    b.items.append(A3Item(sku="b"))
    with pytest.raises(uow.StaleDocumentError):
        s2.commit()
    raw = stored(db, "a3_base", oid)
    assert raw["extra"]["x"]["qty"] == 3 and len(raw["its"]) == 1
    s2.rollback()
    s2.refresh(b)
    b.extra["x"].qty += 10
    b.items.append(A3Item(sku="b"))
    s2.commit()
    raw = _check_sub(db, b)
    assert raw["extra"]["x"]["qty"] == 13 and raw["version"] == 3


def test_unknown_keys_inside_dict_values_of_subclass_survive(db: Any) -> None:
    raw0 = _raw_sub(extra={"x": {**_item("x", 2), "legacy": [1, {"a": 2}]}}, top_legacy=1)
    oid = insert_raw(db, "a3_base", raw0)
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    o.extra["x"].qty += 1
    o.extra["x"].marks.append("q")
    s.commit()
    raw = stored(db, "a3_base", oid)
    assert raw["extra"]["x"] == {**_item("x", 3, 0, ["q"]), "legacy": [1, {"a": 2}]}
    assert raw["top_legacy"] == 1


def test_original_value_after_flush_is_the_flushed_value(db: Any) -> None:
    oid = insert_raw(db, "a3_base", _raw_sub())
    s = uow.Session(db)
    o = s.get(A3Sub, oid)
    assert o is not None
    o.count += 4
    assert s.original_value(o, "count") == 1
    s.commit()
    assert s.original_value(o, "count") == 5
    assert not s.is_dirty(o)
