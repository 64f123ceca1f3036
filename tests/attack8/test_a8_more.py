"""More of the rule, the identity map and validation."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from bson import ObjectId

import uow
from uow import Document, Session, field

from ._h8 import stored


def _max3(instance: Any, attribute: Any, value: Any) -> None:
    if len(value) > 3:
        raise ValueError("at most 3")


class A8MLine(uow.Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class A8MDoc(Document):
    __collection__ = "a8_more"
    name: str = ""
    kv: dict[str, int] = field(factory=lambda: {"a": 1})
    lst: list[str] = field(factory=lambda: ["a"])
    st: set[str] = field(factory=lambda: {"a"})
    lines: list[A8MLine] = field(factory=list)
    by: dict[str, A8MLine] = field(factory=dict)
    small: list[int] = field(factory=list, validator=_max3)
    hits: int = field(default=0, on_update="$inc")


class A8MBase(Document):
    __collection__ = "a8_more_animals"
    name: str = ""


class A8MDog(A8MBase):
    barks: int = 0


def _load(db: Any, raw: dict[str, Any], **kw: Any) -> tuple[Session, A8MDoc]:
    raw.setdefault("_id", ObjectId())
    db.a8_more.insert_one(raw)
    s = Session(db, **kw)
    d = s.get(A8MDoc, raw["_id"])
    assert d is not None
    return s, d


# ------------------------------------------------- missing keys, removals


def test_missing_dict_with_default_key_removed(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    assert d.kv == {"a": 1}
    del d.kv["a"]
    s.commit()
    assert stored(db, d).get("kv") == {}


def test_missing_dict_with_default_key_added(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    d.kv["b"] = 2
    s.commit()
    assert stored(db, d)["kv"] == {"a": 1, "b": 2}


def test_missing_list_with_default_popped(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    d.lst.pop()
    s.commit()
    assert stored(db, d).get("lst") == []


def test_missing_set_with_default_added(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    d.st.add("b")
    s.commit()
    assert sorted(stored(db, d)["st"]) == ["a", "b"]


def test_missing_key_in_dict_value_embedded(db: Any) -> None:
    s, d = _load(db, {"by": {"k": {"sku": "k"}}})
    d.by["k"].qty += 2
    d.by["k"].tags.append("t")
    s.commit()
    assert stored(db, d)["by"]["k"] == {"sku": "k", "qty": 2, "tags": ["t"]}


def test_legacy_non_dict_element_in_embedded_list(db: Any) -> None:
    s, d = _load(db, {"lines": ["legacy", {"sku": "a", "qty": 1}]})
    assert d.lines[0] == "legacy"
    d.lines[1].qty += 1
    d.lines.append(A8MLine(sku="b"))
    s.commit()
    assert stored(db, d)["lines"] == [
        "legacy",
        {"sku": "a", "qty": 2},
        {"sku": "b", "qty": 0, "tags": []},
    ]


# ------------------------------------------------------- detached re-add


def test_readd_detached_keeps_unknown_keys_and_writes_change(db: Any) -> None:
    s, d = _load(db, {"name": "x", "extra": 1, "lines": [{"sku": "a", "qty": 1, "ex": 2}]})
    s.expunge(d)
    d.name = "y"
    d.lines[0].qty += 1
    s.add(d)
    s.commit()
    doc = stored(db, d)
    assert doc["extra"] == 1
    assert doc["name"] == "y"
    assert doc["lines"] == [{"sku": "a", "qty": 2, "ex": 2}]


def test_readd_after_clear_cache_missing_key_still_missing(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    s.clear_cache()
    d.hits += 1
    s.add(d)
    s.commit()
    doc = stored(db, d)
    assert doc["hits"] == 1
    assert "kv" not in doc


# ------------------------------------------------------------ partials


def test_partial_base_query_keeps_subclass(db: Any) -> None:
    s = Session(db)
    dog = A8MDog(name="rex", barks=3)
    s.add(dog)
    s.commit()
    s.close()
    s2 = Session(db)
    p = s2.query(A8MBase).fields("name").one()
    assert type(p) is A8MDog
    p.name = "max"
    s2.commit()
    assert stored(db, dog) == {"_id": dog.id, "_cls": "A8MDog", "name": "max", "barks": 3}


def test_two_partial_queries_union(db: Any) -> None:
    s, d = _load(db, {"name": "x", "hits": 4, "lst": ["q"]})
    s.close()
    s2 = Session(db)
    p = s2.query(A8MDoc).fields("name").one()
    q = s2.query(A8MDoc).fields("hits").one()
    assert p is q
    assert p.hits == 4
    assert p.name == "x"
    p.hits += 1
    s2.commit()
    assert stored(db, d)["hits"] == 5


# ------------------------------------------------------- eviction extras


def test_evicted_doc_list_held_by_user_mutated_later(db: Any) -> None:
    ids = []
    s0 = Session(db)
    for i in range(4):
        x = A8MDoc(name=str(i))
        s0.add(x)
        ids.append(x.id)
    s0.commit()
    s = Session(db, cache_size=1)
    lines = s.get(A8MDoc, ids[0]).lst
    gc.collect()
    for i in ids[1:]:
        s.get(A8MDoc, i)
    gc.collect()
    lines.append("late")  # the user still holds the list of that document
    s.commit()
    assert db.a8_more.find_one({"_id": ids[0]})["lst"] == ["a", "late"]


# ------------------------------------------------------------ validation


def test_inplace_wrong_types_refused_at_flush(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    d.kv["b"] = "str"  # type: ignore[assignment]
    with pytest.raises(uow.ValidationError) as ei:
        s.flush()
    assert "kv" in str(ei.value)
    d.kv["b"] = 2
    d.st.add(5)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    d.st.discard(5)  # type: ignore[arg-type]
    d.lines.append({"sku": "raw"})  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    d.lines.pop()
    s.commit()
    assert stored(db, d)["kv"] == {"a": 1, "b": 2}


def test_validator_runs_on_inplace_change_at_flush(db: Any) -> None:
    s, d = _load(db, {"small": [1]})
    d.small.extend([2, 3, 4])
    with pytest.raises(uow.ValidationError):
        s.flush()
    d.small.pop()
    s.commit()
    assert stored(db, d)["small"] == [1, 2, 3]


def test_validation_message_shape(db: Any) -> None:
    with pytest.raises(uow.ValidationError) as ei:
        A8MDoc(name=5)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert "A8MDoc" in msg and "name" in msg and "str" in msg and "int" in msg


def test_validation_error_in_autoflush_before_query(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    d.name = "ok"
    d.lst.append(3)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.query(A8MDoc).all()
    assert s.is_dirty(d)
    d.lst[-1] = "3"
    s.commit()
    assert stored(db, d)["name"] == "ok" and stored(db, d)["lst"] == ["a", "3"]


def test_validation_names_nested_path(db: Any) -> None:
    s, d = _load(db, {"lines": [{"sku": "a"}]})
    d.lines[0].tags.append(7)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError) as ei:
        s.flush()
    assert "lines" in str(ei.value) and "tags" in str(ei.value)


# ----------------------------------------------------------------- reads


def test_get_with_string_id(db: Any) -> None:
    s, d = _load(db, {"name": "x"})
    try:
        got = s.get(A8MDoc, str(d.id))
    except uow.ValidationError:
        return
    assert got is d or got is None


def test_subclass_identity_across_reads(db: Any) -> None:
    s = Session(db)
    dog = A8MDog(name="rex")
    s.add(dog)
    s.commit()
    s.close()
    s2 = Session(db)
    a = s2.get(A8MBase, dog.id)
    assert s2.query(A8MDog).one() is a
    assert s2.query(A8MBase).filter(name="rex").one() is a


def test_query_count_with_limit_skip(db: Any) -> None:
    s = Session(db)
    s.add_all([A8MDoc(name=str(i)) for i in range(5)])
    s.commit()
    n = s.query(A8MDoc).skip(1).limit(2).count()
    assert n in (2, 5)


def test_embedded_equality_query(db: Any) -> None:
    s = Session(db)
    d = A8MDoc(by={"k": A8MLine(sku="k")}, lines=[A8MLine(sku="z", qty=2)])
    s.add(d)
    s.commit()
    assert s.query(A8MDoc).filter(A8MDoc.lines.contains(A8MLine(sku="z", qty=2))).all() == [d]
