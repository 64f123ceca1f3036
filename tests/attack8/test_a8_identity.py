"""Identity map, autoflush, cache_size eviction, validation errors."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from bson import ObjectId

import uow
from uow import Document, Session, field

from ._h8 import stored


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if value < 0:
        raise ValueError("must be >= 0")


class A8Part(uow.Embedded):
    code: str
    qty: int = field(default=0, validator=_positive)


class A8Box(Document):
    __collection__ = "a8_boxes"
    name: str = ""
    n: int = field(default=0, validator=_positive)
    hits: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    parts: list[A8Part] = field(factory=list)
    kv: dict[str, int] = field(factory=dict)
    nested: dict[str, list[A8Part]] = field(factory=dict)


def _seed(db: Any, n: int = 5) -> list[ObjectId]:
    s = Session(db)
    boxes = [A8Box(name=f"b{i}", n=i) for i in range(n)]
    s.add_all(boxes)
    s.commit()
    s.close()
    return [b.id for b in boxes]


# ------------------------------------------------------------ identity map


def test_same_object_from_every_read(db: Any) -> None:
    ids = _seed(db)
    s = Session(db)
    a = s.get(A8Box, ids[0])
    assert s.query(A8Box).filter(name="b0").one() is a
    assert s.query(A8Box).filter(A8Box.n == 0).first() is a
    assert next(x for x in s.all(A8Box) if x.id == ids[0]) is a
    assert s.filter(A8Box, name="b0")[0] is a
    assert s.get(A8Box, ids[0]) is a


def test_pending_found_by_get(db: Any) -> None:
    s = Session(db)
    b = A8Box(name="p")
    s.add(b)
    before = s.stats().queries
    assert s.get(A8Box, b.id) is b
    assert s.stats().queries == before


def test_query_never_overwrites_unflushed_change(db: Any) -> None:
    ids = _seed(db)
    s = Session(db, autoflush=False)
    a = s.get(A8Box, ids[0])
    a.name = "mine"
    a.tags.append("t")
    a.parts.append(A8Part(code="c"))
    a.kv["x"] = 1
    # another writer changes the stored doc
    db.a8_boxes.update_one({"_id": ids[0]}, {"$set": {"name": "theirs", "n": 33}})
    again = s.query(A8Box).filter(A8Box.n == 33).one()
    assert again is a
    assert a.name == "mine"
    assert a.tags == ["t"]
    assert a.parts == [A8Part(code="c")]
    assert a.kv == {"x": 1}
    s.commit()
    doc = stored(db, a)
    assert doc["name"] == "mine" and doc["tags"] == ["t"] and doc["kv"] == {"x": 1}


def test_query_on_partial_does_not_lose_changes(db: Any) -> None:
    _seed(db)
    s = Session(db, autoflush=False)
    a = s.query(A8Box).filter(name="b1").fields("name").one()
    a.name = "mine"
    full = s.query(A8Box).filter(A8Box.n == 1).one()
    assert full is a
    assert a.name == "mine"
    assert a.n == 1
    s.commit()
    assert stored(db, a)["name"] == "mine"
    assert stored(db, a)["n"] == 1


def test_autoflush_before_query_and_count(db: Any) -> None:
    ids = _seed(db)
    s = Session(db)
    a = s.get(A8Box, ids[0])
    a.name = "renamed"
    assert s.query(A8Box).filter(name="renamed").one() is a
    b = A8Box(name="new")
    s.add(b)
    assert s.count(A8Box) == 6
    s.delete(b)
    assert s.count(A8Box, name="new") == 0
    a.tags.append("x")
    assert s.query(A8Box).filter(tags__contains="x").first() is a


def test_autoflush_off_does_not_flush(db: Any) -> None:
    ids = _seed(db)
    s = Session(db, autoflush=False)
    a = s.get(A8Box, ids[0])
    a.name = "renamed"
    assert s.query(A8Box).filter(name="renamed").first() is None
    assert s.is_dirty(a)


def test_refresh_never_autoflushes(db: Any) -> None:
    ids = _seed(db)
    s = Session(db)
    a = s.get(A8Box, ids[0])
    a.name = "renamed"
    s.refresh(a)
    assert a.name == "b0"
    assert not s.is_dirty(a)
    s.commit()
    assert stored(db, a)["name"] == "b0"


def test_dereference_identity(db: Any) -> None:
    ids = _seed(db)
    s = Session(db)
    r = uow.Ref(A8Box, ids[2]) if callable(uow.Ref) else None
    if r is None:
        pytest.skip("Ref not constructible")
    d = s.dereference(r)
    assert d is s.get(A8Box, ids[2])


# --------------------------------------------------------------- eviction


@pytest.mark.parametrize("size", [0, 1, 2])
def test_eviction_never_loses_inplace_change(db: Any, size: int) -> None:
    ids = _seed(db, 6)
    s = Session(db, cache_size=size)
    a = s.get(A8Box, ids[0])
    a.tags.append("kept")
    a.kv["k"] = 7
    a.parts.append(A8Part(code="z"))
    del a
    gc.collect()
    for i in ids[1:]:
        s.get(A8Box, i)
    list(s.query(A8Box))
    gc.collect()
    s.commit()
    doc = db.a8_boxes.find_one({"_id": ids[0]})
    assert doc["tags"] == ["kept"]
    assert doc["kv"] == {"k": 7}
    assert doc["parts"] == [{"code": "z", "qty": 0}]


@pytest.mark.parametrize("size", [0, 1])
def test_eviction_nested_embedded_change_kept(db: Any, size: int) -> None:
    ids = _seed(db, 4)
    db.a8_boxes.update_one({"_id": ids[0]}, {"$set": {"parts": [{"code": "a", "qty": 1}]}})
    s = Session(db, cache_size=size, autoflush=False)
    part = s.get(A8Box, ids[0]).parts[0]
    gc.collect()
    part.qty = 5  # user holds only the embedded element
    for i in ids[1:]:
        s.get(A8Box, i)
    gc.collect()
    s.commit()
    assert db.a8_boxes.find_one({"_id": ids[0]})["parts"][0]["qty"] == 5


@pytest.mark.parametrize("size", [0, 1])
def test_eviction_keeps_identity_of_held(db: Any, size: int) -> None:
    ids = _seed(db, 4)
    s = Session(db, cache_size=size)
    a = s.get(A8Box, ids[0])
    for i in ids[1:]:
        s.get(A8Box, i)
    gc.collect()
    assert s.get(A8Box, ids[0]) is a
    assert s.query(A8Box).filter(name="b0").one() is a


@pytest.mark.parametrize("size", [0, 1])
def test_eviction_never_loses_pending_or_deleted(db: Any, size: int) -> None:
    ids = _seed(db, 4)
    s = Session(db, cache_size=size, autoflush=False)
    s.add(A8Box(name="pending"))
    s.delete(s.get(A8Box, ids[0]))
    x = s.get(A8Box, ids[1])
    x.hits += 3
    del x
    gc.collect()
    for i in ids[2:]:
        s.get(A8Box, i)
    gc.collect()
    s.commit()
    assert db.a8_boxes.count_documents({"name": "pending"}) == 1
    assert db.a8_boxes.find_one({"_id": ids[0]}) is None
    assert db.a8_boxes.find_one({"_id": ids[1]})["hits"] == 3


def test_eviction_lru_counts(db: Any) -> None:
    ids = _seed(db, 5)
    s = Session(db, cache_size=2)
    for i in ids:
        s.get(A8Box, i)
    gc.collect()
    assert s.stats().identity_map_size <= 2


def test_cache_none_keeps_all(db: Any) -> None:
    ids = _seed(db, 5)
    s = Session(db, cache_size=None)
    for i in ids:
        s.get(A8Box, i)
    gc.collect()
    before = s.stats().queries
    for i in ids:
        s.get(A8Box, i)
    assert s.stats().queries == before


# -------------------------------------------------------------- validation


def test_validation_on_construction_and_assignment_names_field(db: Any) -> None:
    with pytest.raises(uow.ValidationError) as ei:
        A8Box(name=3)  # type: ignore[arg-type]
    assert "A8Box" in str(ei.value) and "name" in str(ei.value)
    b = A8Box(name="ok")
    with pytest.raises(uow.ValidationError) as ei:
        b.n = -1
    assert "n" in str(ei.value)
    assert b.n == 0
    with pytest.raises(uow.ValidationError):
        b.tags = [1, 2]  # type: ignore[list-item]
    assert b.tags == []
    with pytest.raises(uow.ValidationError):
        b.kv = {"a.b": 1}
    assert b.kv == {}
    with pytest.raises(uow.ValidationError):
        b.kv = {"$x": 1}
    with pytest.raises(uow.ValidationError):
        A8Part(code="x", qty=-5)
    assert isinstance(uow.ValidationError("x"), ValueError)


def test_bool_for_int_field(db: Any) -> None:
    # bool is an int subclass in Python; SPEC lists bool and int as distinct types
    with pytest.raises(uow.ValidationError):
        A8Box(n=True)  # type: ignore[arg-type]


def test_failed_flush_keeps_work_and_data(db: Any) -> None:
    ids = _seed(db, 2)
    s = Session(db)
    a = s.get(A8Box, ids[0])
    b = s.get(A8Box, ids[1])
    new = A8Box(name="new")
    s.add(new)
    a.name = "a2"
    a.hits += 2
    b.tags.append(5)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError) as ei:
        s.flush()
    assert "tags" in str(ei.value)
    assert b.tags in (["5"], [5])
    assert a.name == "a2" and a.hits == 2
    b.tags[0] = "5"
    s.commit()
    assert stored(db, a)["name"] == "a2"
    assert stored(db, a)["hits"] == 2
    assert stored(db, b)["tags"] == ["5"]
    assert stored(db, new) is not None


def test_inplace_validator_refused_at_flush(db: Any) -> None:
    ids = _seed(db, 1)
    s = Session(db)
    a = s.get(A8Box, ids[0])
    a.parts.append(A8Part(code="c", qty=1))
    s.commit()
    a.parts[0].qty = 3
    with pytest.raises(uow.ValidationError):
        a.parts[0].qty = -3
    assert a.parts[0].qty == 3
    s.commit()
    assert stored(db, a)["parts"][0]["qty"] == 3


def test_dict_key_with_dot_put_in_place_refused_at_flush(db: Any) -> None:
    ids = _seed(db, 1)
    s = Session(db)
    a = s.get(A8Box, ids[0])
    a.kv["a.b"] = 1
    with pytest.raises(uow.ValidationError):
        s.flush()
    del a.kv["a.b"]
    a.kv["ok"] = 2
    s.commit()
    assert stored(db, a)["kv"] == {"ok": 2}


def test_wrong_element_put_in_nested_container_refused(db: Any) -> None:
    ids = _seed(db, 1)
    s = Session(db)
    a = s.get(A8Box, ids[0])
    a.nested["x"] = [A8Part(code="1")]
    s.commit()
    a.nested["x"].append("nope")  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError) as ei:
        s.flush()
    assert "nested" in str(ei.value)
    a.nested["x"].pop()
    a.nested["x"].append(A8Part(code="2"))
    s.commit()
    assert stored(db, a)["nested"] == {"x": [{"code": "1", "qty": 0}, {"code": "2", "qty": 0}]}


def test_failed_validation_does_not_half_write(db: Any) -> None:
    # two dirty docs, the second invalid: nothing of that flush is written
    ids = _seed(db, 2)
    s = Session(db, transactional=False)
    a = s.get(A8Box, ids[0])
    b = s.get(A8Box, ids[1])
    a.name = "written?"
    b.kv["bad.key"] = 1
    with pytest.raises(uow.ValidationError):
        s.flush()
    # validation happens before anything is sent
    assert stored(db, a)["name"] == "b0"
    assert s.is_dirty(a)
