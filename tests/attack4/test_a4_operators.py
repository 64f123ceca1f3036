"""SPEC "How a change is sent" and "the one rule": operators proven by concurrent raw writes."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest

import uow
from uow import Document, Session, field

from ._h import assert_recent, insert_raw, stored

D1 = datetime.datetime(2024, 1, 1)
D3 = datetime.datetime(2024, 3, 1)
D5 = datetime.datetime(2024, 5, 1)


class A4OpLine(uow.Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class A4OpAddr(uow.Embedded):
    city: str = ""
    zip: str | None = None


class A4Ops(Document):
    __collection__ = "a4_ops"
    n: int = field(default=0, on_update="$inc")
    hi: datetime.datetime | None = field(default=None, on_update="$max")
    lo: int = field(default=100, on_update="$min")
    pushed: list[str] = field(factory=list, on_update="$push")
    added: list[str] = field(factory=list, on_update="$addToSet")
    whole: list[str] = field(factory=list, on_update="$set")
    stamp: datetime.datetime | None = field(default=None, on_update="$currentDate")
    plain: list[str] = field(factory=list)
    addr: A4OpAddr = field(factory=A4OpAddr)
    d: dict[str, int] = field(factory=dict)
    lines: list[A4OpLine] = field(factory=list)
    by_sku: dict[str, A4OpLine] = field(factory=dict)
    label: str = ""


def _saved(db: Any, **kw: Any) -> tuple[Session, A4Ops]:
    s = Session(db)
    obj = A4Ops(**kw)
    s.add(obj)
    s.commit()
    return s, obj


def _raw(db: Any, obj: A4Ops, update: dict[str, Any]) -> None:
    db["a4_ops"].update_one({"_id": obj.id}, update)


def test_a4_inc_sends_delta(db: Any) -> None:
    s, o = _saved(db)
    _raw(db, o, {"$set": {"n": 10}})
    o.n += 1
    s.commit()
    assert stored(db, "a4_ops", o.id)["n"] == 11
    assert o.n == 1  # memory holds what this session computed
    s.close()


def test_a4_max_and_min(db: Any) -> None:
    s, o = _saved(db, hi=D1, lo=50)
    _raw(db, o, {"$set": {"hi": D5, "lo": 10}})
    o.hi = D3
    o.lo = 20
    s.commit()
    doc = stored(db, "a4_ops", o.id)
    assert doc["hi"] == D5
    assert doc["lo"] == 10
    s.close()


def test_a4_push_and_add_to_set(db: Any) -> None:
    s, o = _saved(db, pushed=["a"], added=["a"])
    _raw(db, o, {"$push": {"pushed": "x"}, "$addToSet": {"added": "b"}})
    o.pushed.append("y")
    o.added.extend(["b", "c"])
    s.commit()
    doc = stored(db, "a4_ops", o.id)
    assert doc["pushed"] == ["a", "x", "y"]
    assert doc["added"] == ["a", "b", "c"]
    s.close()


def test_a4_set_operator_sends_whole_field(db: Any) -> None:
    s, o = _saved(db, whole=["a"])
    _raw(db, o, {"$push": {"whole": "x"}})
    o.whole.append("y")
    s.commit()
    assert stored(db, "a4_ops", o.id)["whole"] == ["a", "y"]
    s.close()


def test_a4_current_date_on_every_update(db: Any) -> None:
    s, o = _saved(db)
    o.label = "changed"
    s.commit()
    doc = stored(db, "a4_ops", o.id)
    assert_recent(doc["stamp"])
    s.close()
    s2 = Session(db)
    back = s2.get(A4Ops, o.id)
    assert back is not None
    assert back.stamp is not None
    s2.close()


def test_a4_current_date_reloaded_on_next_read(db: Any) -> None:
    s, o = _saved(db)
    o.label = "x"
    s.commit()
    value = o.stamp
    assert isinstance(value, datetime.datetime)
    assert value.replace(tzinfo=None) == stored(db, "a4_ops", o.id)["stamp"]
    s.close()


def test_a4_plain_list_append_is_push(db: Any) -> None:
    s, o = _saved(db, plain=["a"])
    _raw(db, o, {"$push": {"plain": "other"}})
    o.plain.append("mine")
    s.commit()
    assert stored(db, "a4_ops", o.id)["plain"] == ["a", "other", "mine"]
    s.close()


def test_a4_list_removal_falls_back_to_set(db: Any) -> None:
    s, o = _saved(db, pushed=["a", "b"], added=["a", "b"], plain=["a", "b"])
    _raw(db, o, {"$push": {"pushed": "x", "added": "x", "plain": "x"}})
    o.pushed.remove("a")
    o.added.reverse()
    o.plain.remove("b")
    s.commit()
    doc = stored(db, "a4_ops", o.id)
    assert doc["pushed"] == ["b"]
    assert doc["added"] == ["b", "a"]
    assert doc["plain"] == ["a"]
    s.close()


def test_a4_embedded_and_dict_dotted_paths(db: Any) -> None:
    s, o = _saved(db, addr=A4OpAddr(city="Oslo", zip="1"), d={"a": 1, "b": 2})
    _raw(db, o, {"$set": {"addr.zip": "server", "d.c": 3}})
    o.addr.city = "Rome"
    o.d["a"] = 10
    del o.d["b"]
    s.commit()
    doc = stored(db, "a4_ops", o.id)
    assert doc["addr"] == {"city": "Rome", "zip": "server"}
    assert doc["d"] == {"a": 10, "c": 3}
    s.close()


def test_a4_positional_paths_in_lists(db: Any) -> None:
    s, o = _saved(db, lines=[A4OpLine(sku="a", qty=1), A4OpLine(sku="b", qty=1)])
    _raw(db, o, {"$set": {"lines.0.sku": "server", "lines.1.qty": 50}})
    o.lines[0].tags.append("t")
    o.lines[1].qty += 2
    s.commit()
    doc = stored(db, "a4_ops", o.id)
    assert doc["lines"] == [
        {"sku": "server", "qty": 1, "tags": ["t"]},
        {"sku": "b", "qty": 52, "tags": []},
    ]
    s.close()


def test_a4_inc_at_depth_in_dict_value(db: Any) -> None:
    s, o = _saved(db, by_sku={"a": A4OpLine(sku="a", qty=1)})
    _raw(db, o, {"$inc": {"by_sku.a.qty": 5}})
    o.by_sku["a"].qty += 1
    s.commit()
    assert stored(db, "a4_ops", o.id)["by_sku"]["a"]["qty"] == 7
    s.close()


def test_a4_list_reordered_is_set_whole(db: Any) -> None:
    s, o = _saved(db, lines=[A4OpLine(sku="a"), A4OpLine(sku="b")])
    _raw(db, o, {"$set": {"lines.0.qty": 9}})
    o.lines.reverse()
    s.commit()
    assert [x["sku"] for x in stored(db, "a4_ops", o.id)["lines"]] == ["b", "a"]
    assert stored(db, "a4_ops", o.id)["lines"][1]["qty"] == 0
    s.close()


def test_a4_missing_key_first_change_sets_whole(db: Any) -> None:
    class A4Later(Document):
        __collection__ = "a4_later"
        n: int = field(default=5, on_update="$inc")
        li: list[str] = field(factory=lambda: ["a"])
        addr: A4OpAddr = field(factory=lambda: A4OpAddr(city="Oslo", zip="0"))

    oid = insert_raw(db, "a4_later", {})
    s = Session(db)
    x = s.get(A4Later, oid)
    assert x is not None
    x.n += 1
    x.li.append("b")
    x.addr.city = "Rome"
    s.commit()
    assert stored(db, "a4_later", oid) == {
        "_id": oid,
        "n": 6,
        "li": ["a", "b"],
        "addr": {"city": "Rome", "zip": "0"},
    }
    _raw_later = db["a4_later"]
    _raw_later.update_one({"_id": oid}, {"$set": {"n": 100}})
    x.n += 1
    s.commit()
    assert stored(db, "a4_later", oid)["n"] == 101  # later changes are minimal again
    s.close()


def test_a4_partial_document(db: Any) -> None:
    s, o = _saved(db, n=3, label="keep", plain=["p"])
    s.close()
    s2 = Session(db)
    part = s2.query(A4Ops).fields("label").first()
    assert part is not None
    assert part.id == o.id
    with pytest.raises(uow.FieldNotLoaded):
        _ = part.n
    with pytest.raises(AttributeError):
        _ = part.plain
    with pytest.raises(uow.FieldNotLoaded) as err:
        s2.clone(part)
    assert "n" in str(err.value) and "plain" in str(err.value)
    _raw(db, o, {"$set": {"n": 40}})
    part.n = 7  # not loaded: $set of the assigned value, whatever its on_update
    part.label = "new"
    s2.commit()
    doc = stored(db, "a4_ops", o.id)
    assert doc["n"] == 7
    assert doc["label"] == "new"
    assert doc["plain"] == ["p"]
    s2.close()


def test_a4_partial_fields_by_query_field(db: Any) -> None:
    s, _o = _saved(db, n=3, label="keep")
    s.close()
    s2 = Session(db)
    part = s2.query(A4Ops).fields(A4Ops.n).one()
    assert part.n == 3
    with pytest.raises(uow.FieldNotLoaded):
        _ = part.label
    s2.close()


def test_a4_legacy_values_never_block(db: Any) -> None:
    oid = insert_raw(db, "a4_ops", {"n": "ten", "plain": [1, 2], "label": "x"})
    s = Session(db)
    o = s.get(A4Ops, oid)
    assert o is not None
    assert o.n == "ten"
    o.label = "y"
    s.commit()
    doc = stored(db, "a4_ops", oid)
    assert doc["n"] == "ten" and doc["plain"] == [1, 2] and doc["label"] == "y"
    s.close()


def test_a4_echo_shows_spec_operators(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uow")
    s, o = _saved(db, n=1, plain=["a"])
    s.close()
    s2 = Session(db, echo=True)
    x = s2.get(A4Ops, o.id)
    assert x is not None
    caplog.clear()
    x.n += 2
    x.plain.append("b")
    s2.flush()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "uow")
    assert "'$inc': {'n': 2}" in text
    assert "'$push': {'plain': {'$each': ['b']}}" in text
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "uow")
    s2.close()


def test_a4_update_transient_sends_each_fields_operator(db: Any) -> None:
    s, o = _saved(db, n=1, hi=D3, lo=50, pushed=["a"], added=["a"], label="L")
    s.close()
    s2 = Session(db)
    change = A4Ops(id=o.id, n=2, hi=D1, lo=10, pushed=["b"], added=["a", "c"], label="T")
    s2.update(change)
    s2.commit()
    doc = stored(db, "a4_ops", o.id)
    assert doc["n"] == 3
    assert doc["hi"] == D3
    assert doc["lo"] == 10
    assert doc["pushed"] == ["a", "b"]
    assert doc["added"] == ["a", "c"]
    assert doc["label"] == "T"
    assert_recent(doc["stamp"])
    s2.close()
