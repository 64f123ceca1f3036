"""Partial documents (`query().fields(...)`) combined with versions, shard keys,
subclasses, db_name, refresh, rollback, delete, clone and a second query."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import ids, insert_raw, stored, stored_or_none


class PcAddr(Embedded):
    city: str = ""
    zip: str = ""


class PcVer(Document):
    __collection__ = "pc_vers"

    name: str
    n: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    addr: PcAddr | None = None
    nick: str = field(default="", db_name="nk")
    version: int = field(default=0, version=True)


class PcShard(Document):
    __collection__ = "pc_shard"
    __shard_key__ = ("tenant",)

    tenant: str
    name: str
    n: int = field(default=0, on_update="$inc")


class PcBase(Document):
    __collection__ = "pc_animals"

    name: str
    legs: int = 4


class PcDog(PcBase):
    bark: str = "woof"
    n: int = field(default=0, on_update="$inc")


def _ver(db: Any, **v: Any) -> Any:
    return insert_raw(
        db,
        "pc_vers",
        {
            "name": "a",
            "n": 1,
            "tags": ["t"],
            "addr": {"city": "Oslo", "zip": "1"},
            "nk": "nick",
            "version": 3,
            "extra": "keep",
            **v,
        },
    )


def test_partial_versioned_assign_bumps_version_and_keeps_unloaded(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("name").one()
    d.name = "b"
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["name"] == "b"
    assert raw["version"] == 4
    assert raw["n"] == 1 and raw["tags"] == ["t"] and raw["nk"] == "nick" and raw["extra"] == "keep"
    # version is always needed for the conditional update; memory holds the bump
    assert d.version == 4
    s.close()


def test_partial_versioned_lost_race_is_stale(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db, transactional=False)
    d = s.query(PcVer).fields("name").one()
    db["pc_vers"].update_one({"_id": doc_id}, {"$inc": {"version": 1}, "$set": {"name": "other"}})
    d.name = "mine"
    with pytest.raises(uow.StaleDocumentError) as caught:
        s.flush()
    assert ids(caught.value.not_applied) == {id(d)}
    assert not caught.value.applied and not caught.value.in_doubt
    assert stored(db, "pc_vers", doc_id)["name"] == "other"
    # the advice: refresh and redo
    s.refresh(d)
    assert d.name == "other"
    d.name = "mine"
    s.flush()
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["name"] == "mine" and raw["version"] == 5 == d.version
    assert raw["n"] == 1
    s.close()


def test_partial_versioned_delete_is_conditional(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db, transactional=False)
    d = s.query(PcVer).fields("name").one()
    db["pc_vers"].update_one({"_id": doc_id}, {"$inc": {"version": 1}})
    s.delete(d)
    with pytest.raises(uow.StaleDocumentError):
        s.flush()
    assert stored_or_none(db, "pc_vers", doc_id) is not None
    s.close()


def test_partial_without_version_field_then_full_query_then_change(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("tags").one()
    d.tags.append("u")
    s.flush()
    full = s.query(PcVer).one()
    assert full is d
    assert d.name == "a" and d.n == 1
    d.n += 2
    d.addr.city = "Rome"
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["tags"] == ["t", "u"]
    assert raw["n"] == 3
    assert raw["addr"] == {"city": "Rome", "zip": "1"}
    assert raw["version"] == d.version
    s.close()


def test_partial_by_db_name_field_assign(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields(PcVer.nick).one()
    assert d.nick == "nick"
    d.nick = "nn"
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["nk"] == "nn"
    assert "nick" not in raw
    assert raw["name"] == "a"
    s.close()


def test_partial_assign_unloaded_db_name_field(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("name").one()
    d.nick = "set-unloaded"
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["nk"] == "set-unloaded"
    assert "nick" not in raw
    s.close()


def test_partial_embedded_subfield_projection(db: Any) -> None:
    """A dotted name in fields() loads the whole top-level field it starts
    with (uow's choice; SPEC names only fields), so saving keeps addr.zip."""
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("addr.city").one()
    assert d.addr == PcAddr(city="Oslo", zip="1")
    with pytest.raises(uow.FieldNotLoaded):
        _ = d.name
    d.addr.city = "Rome"
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["addr"] == {"city": "Rome", "zip": "1"}
    assert raw["name"] == "a" and raw["nk"] == "nick" and raw["extra"] == "keep"
    s.close()


def test_partial_shard_key_not_loaded_update_still_targets(db: Any) -> None:
    """SPEC: updates put the shard key values "as loaded" into their filters.
    When the shard key was not loaded (fields() without it), the update must
    still land on the document (reading chosen: the shard key is loaded with
    id, or the filter leaves it out; either way the update lands)."""
    doc_id = insert_raw(db, "pc_shard", {"tenant": "t1", "name": "a", "n": 1})
    s = uow.Session(db)
    d = s.query(PcShard).fields("name").one()
    d.name = "b"
    s.commit()
    raw = stored(db, "pc_shard", doc_id)
    assert raw == {"_id": doc_id, "tenant": "t1", "name": "b", "n": 1}
    s.close()


def test_shard_key_changed_in_memory_filter_uses_loaded_value(db: Any) -> None:
    doc_id = insert_raw(db, "pc_shard", {"tenant": "t1", "name": "a", "n": 1})
    s = uow.Session(db)
    d = s.get(PcShard, doc_id)
    d.tenant = "t2"
    d.n += 1
    s.commit()
    raw = stored(db, "pc_shard", doc_id)
    assert raw["tenant"] == d.tenant == "t2"
    assert raw["n"] == 2
    # a later change uses the new (flushed) shard key value
    d.n += 1
    s.commit()
    assert stored(db, "pc_shard", doc_id)["n"] == 3
    s.close()


def test_shard_key_delete_of_partial_document(db: Any) -> None:
    doc_id = insert_raw(db, "pc_shard", {"tenant": "t1", "name": "a", "n": 1})
    s = uow.Session(db)
    d = s.query(PcShard).fields("n").one()
    s.delete(d)
    s.commit()
    assert stored_or_none(db, "pc_shard", doc_id) is None
    s.close()


def test_partial_subclass_via_base_query_change_inc(db: Any) -> None:
    doc_id = insert_raw(
        db, "pc_animals", {"_cls": "PcDog", "name": "rex", "legs": 4, "bark": "w", "n": 1}
    )
    s = uow.Session(db)
    d = s.query(PcBase).fields("name").one()
    assert type(d) is PcDog
    d.n = 5  # unloaded $inc field assigned: $set of the assigned value
    d.name = "max"
    s.commit()
    raw = stored(db, "pc_animals", doc_id)
    assert raw == {"_id": doc_id, "_cls": "PcDog", "name": "max", "legs": 4, "bark": "w", "n": 5}
    s.close()


def test_partial_then_refresh_then_rollback(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db, transactional=False)
    d = s.query(PcVer).fields("name").one()
    d.name = "x"
    s.refresh(d)
    assert d.name == "a"
    assert d.n == 1  # refresh loads every field
    d.n += 1
    s.flush()
    d.n += 5
    s.rollback()
    assert d.n == 2
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["n"] == 2 == d.n
    s.close()


def test_partial_second_partial_query_with_other_fields(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("name").one()
    d2 = s.query(PcVer).fields("tags").one()
    assert d2 is d
    # both fields now loaded
    assert d.name == "a"
    assert d.tags == ["t"]
    d.tags.append("z")
    d.name = "q"
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["tags"] == ["t", "z"] and raw["name"] == "q" and raw["n"] == 1
    s.close()


def test_partial_second_partial_query_does_not_overwrite_change(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db, autoflush=False)
    d = s.query(PcVer).fields("name", "tags").one()
    d.tags.append("mine")
    s.query(PcVer).fields("tags", "n").one()
    assert d.tags == ["t", "mine"]
    s.commit()
    assert stored(db, "pc_vers", doc_id)["tags"] == ["t", "mine"]
    s.close()


def test_clone_of_partial_after_filling_in_is_allowed(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("name").one()
    assert d.id == doc_id
    with pytest.raises(uow.FieldNotLoaded):
        s.clone(d)
    s.refresh(d)
    c = s.clone(d)
    assert c.id != d.id
    s.add(c)
    s.commit()
    raw = stored(db, "pc_vers", c.id)
    assert raw["name"] == "a" and raw["nk"] == "nick" and raw["tags"] == ["t"]
    s.close()


def test_partial_expunge_then_add_keeps_unloaded_fields(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("name").one()
    s.expunge(d)
    d.name = "detached-change"
    s.add(d)
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["name"] == "detached-change"
    assert raw["n"] == 1 and raw["tags"] == ["t"] and raw["nk"] == "nick"
    s.close()


def test_partial_in_new_session_add_keeps_unloaded(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("name").one()
    s.commit()
    s.close()
    d.name = "later"
    s2 = uow.Session(db)
    s2.add(d)
    s2.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["name"] == "later"
    assert raw["n"] == 1 and raw["tags"] == ["t"] and raw["extra"] == "keep"
    s2.close()


def test_partial_no_tracking_update_keeps_unloaded(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db, no_tracking=True)
    d = s.query(PcVer).fields("name").one()
    d.name = "nt"
    s.update(d)
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["name"] == "nt"
    assert raw["n"] == 1 and raw["tags"] == ["t"] and raw["nk"] == "nick"
    s.close()


def test_partial_document_replaced_by_delete_and_add(db: Any) -> None:
    doc_id = _ver(db)
    s = uow.Session(db)
    d = s.query(PcVer).fields("name").one()
    s.delete(d)
    new = PcVer(name="fresh")
    new.id = doc_id
    s.add(new)
    s.commit()
    raw = stored(db, "pc_vers", doc_id)
    assert raw["name"] == "fresh"
    assert raw["n"] == 0 and raw["tags"] == []
    s.close()
