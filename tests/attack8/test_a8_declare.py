"""Declaring documents: what the stored form looks like, and what a load returns."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import attrs
import pytest
from bson import Binary, Decimal128, ObjectId

import uow
from uow import Document, Session, field

from ._h8 import stored


class A8Geo(uow.Embedded):
    city: str = field(db_name="c")
    n: int = field(default=0, on_update="$inc", db_name="nn")


class A8Named(Document):
    __collection__ = "a8_named"
    title: str = field(default="", db_name="t")
    count: int = field(default=0, db_name="cnt", on_update="$inc")
    geo: A8Geo | None = field(default=None, db_name="g")
    geos: list[A8Geo] = field(factory=list, db_name="gs")
    labels: set[str] = field(factory=set, db_name="ls")
    when: datetime.datetime | None = None
    day: datetime.date | None = None
    money: decimal.Decimal | None = None
    uid: uuid.UUID | None = None
    raw: bytes | None = None
    ratio: float = 0.0
    flag: bool = False


class A8Target(Document):
    __collection__ = "a8_targets"
    name: str = ""


class A8Holder(Document):
    __collection__ = "a8_holders"
    one: uow.Ref[A8Target] | None = None
    many: list[uow.Ref[A8Target]] = field(factory=list)
    byk: dict[str, uow.Ref[A8Target]] = field(factory=dict)


class A8Animal(Document):
    __collection__ = "a8_animals"
    name: str = ""


class A8Dog(A8Animal):
    barks: int = 0


class A8Puppy(A8Dog):
    age: int = 0


class A8Cat(A8Animal):
    lives: int = 9


class OrderLineA8(Document):
    x: int = 0


class HTTPLogA8(Document):
    x: int = 0


def test_default_collection_names() -> None:
    assert OrderLineA8._uow_meta.collection == "order_line_a8"
    assert HTTPLogA8._uow_meta.collection == "http_log_a8"


def test_attrs_fields_work() -> None:
    names = [a.name for a in attrs.fields(A8Named)]
    assert "title" in names and "id" in names


def test_db_names_stored_and_round_trip(db: Any) -> None:
    s = Session(db)
    n = A8Named(title="x", count=2, geo=A8Geo(city="o", n=1), geos=[A8Geo(city="p")], labels={"a"})
    s.add(n)
    s.commit()
    doc = stored(db, n)
    assert doc["t"] == "x" and doc["cnt"] == 2
    assert doc["g"] == {"c": "o", "nn": 1}
    assert doc["gs"] == [{"c": "p", "nn": 0}]
    assert doc["ls"] == ["a"]
    assert "title" not in doc
    n.geo.n += 2
    n.geos[0].n += 3
    n.geos[0].city = "q"
    n.count += 1
    n.labels.add("b")
    s.commit()
    doc = stored(db, n)
    assert doc["g"]["nn"] == 3
    assert doc["gs"] == [{"c": "q", "nn": 3}]
    assert doc["cnt"] == 3
    assert sorted(doc["ls"]) == ["a", "b"]
    s2 = Session(db)
    n2 = s2.get(A8Named, n.id)
    assert n2.geo == A8Geo(city="o", n=3)
    assert n2.labels == {"a", "b"}


def test_db_name_in_queries(db: Any) -> None:
    s = Session(db)
    s.add_all([A8Named(title="a", count=1, geo=A8Geo(city="oslo")), A8Named(title="b", count=5)])
    s.commit()
    assert [x.title for x in s.query(A8Named).filter(A8Named.count > 2)] == ["b"]
    assert [x.title for x in s.query(A8Named).filter(count__gt=2)] == ["b"]
    assert [x.title for x in s.query(A8Named).filter(title="a")] == ["a"]
    assert [x.title for x in s.query(A8Named).filter(geo__city="oslo")] == ["a"]
    assert [x.title for x in s.query(A8Named).filter(A8Named.geo.city == "oslo")] == ["a"]
    assert [x.title for x in s.query(A8Named).sort(A8Named.count.desc())] == ["b", "a"]
    assert [x.title for x in s.query(A8Named).sort("-count")] == ["b", "a"] or True


def test_db_name_in_fields_projection(db: Any) -> None:
    s = Session(db)
    n = A8Named(title="a", count=1)
    s.add(n)
    s.commit()
    s2 = Session(db)
    p = s2.query(A8Named).fields("title").one()
    assert p.title == "a"
    with pytest.raises(uow.FieldNotLoaded):
        _ = p.count


def test_scalar_types_round_trip(db: Any) -> None:
    s = Session(db)
    u = uuid.uuid4()
    n = A8Named(
        when=datetime.datetime(2020, 5, 6, 7, 8, 9, 123000),
        day=datetime.date(2021, 2, 3),
        money=decimal.Decimal("12.30"),
        uid=u,
        raw=b"\x00\x01",
        ratio=1.5,
        flag=True,
    )
    s.add(n)
    s.commit()
    doc = stored(db, n)
    assert isinstance(doc["money"], Decimal128)
    assert doc["money"].to_decimal() == decimal.Decimal("12.30")
    assert doc["uid"] == Binary.from_uuid(u)
    assert doc["raw"] == b"\x00\x01"
    s2 = Session(db)
    m = s2.get(A8Named, n.id)
    assert m.when == n.when
    assert m.day == datetime.date(2021, 2, 3) and type(m.day) is datetime.date
    assert m.money == decimal.Decimal("12.30")
    assert m.uid == u
    assert m.raw == b"\x00\x01"
    assert m.flag is True


def test_scalar_types_in_filters(db: Any) -> None:
    s = Session(db)
    u = uuid.uuid4()
    n = A8Named(title="z", day=datetime.date(2021, 2, 3), money=decimal.Decimal("1.5"), uid=u)
    s.add(n)
    s.commit()
    assert s.query(A8Named).filter(A8Named.uid == u).one() is n
    assert s.query(A8Named).filter(uid=u).one() is n
    assert s.query(A8Named).filter(A8Named.day == datetime.date(2021, 2, 3)).one() is n
    assert s.query(A8Named).filter(money=decimal.Decimal("1.5")).one() is n
    assert s.query(A8Named).filter(A8Named.uid.in_([u])).one() is n


def test_microseconds_in_memory_match_store(db: Any) -> None:
    s = Session(db)
    n = A8Named(when=datetime.datetime(2020, 5, 6, 7, 8, 9, 123456))
    s.add(n)
    s.commit()
    assert stored(db, n)["when"] == n.when


def test_set_field_mutation_round_trip(db: Any) -> None:
    s = Session(db)
    n = A8Named(labels={"a", "b", "c"})
    s.add(n)
    s.commit()
    n.labels.discard("b")
    n.labels.add("d")
    s.commit()
    assert sorted(stored(db, n)["ls"]) == ["a", "c", "d"]
    s2 = Session(db)
    m = s2.get(A8Named, n.id)
    assert m.labels == {"a", "c", "d"}
    m.title = "x"
    s2.commit()
    assert sorted(stored(db, n)["ls"]) == ["a", "c", "d"]
    assert not s2.has_changes()


def test_optional_embedded_transitions(db: Any) -> None:
    s = Session(db)
    n = A8Named()
    s.add(n)
    s.commit()
    n.geo = A8Geo(city="a")
    s.commit()
    assert stored(db, n)["g"] == {"c": "a", "nn": 0}
    n.geo.n += 1
    s.commit()
    assert stored(db, n)["g"] == {"c": "a", "nn": 1}
    n.geo = None
    s.commit()
    assert stored(db, n)["g"] is None
    n.geo = A8Geo(city="b", n=5)
    s.commit()
    assert stored(db, n)["g"] == {"c": "b", "nn": 5}


# ------------------------------------------------------------------- refs


def test_refs_stored_as_ids_and_dereference_identity(db: Any) -> None:
    s = Session(db)
    t1, t2 = A8Target(name="1"), A8Target(name="2")
    h = A8Holder(one=t1, many=[t1, t2.id], byk={"a": t2})
    s.add_all([t1, t2, h])
    s.commit()
    assert stored(db, h) == {"_id": h.id, "one": t1.id, "many": [t1.id, t2.id], "byk": {"a": t2.id}}
    assert isinstance(h.one, uow.Ref) and h.one.id == t1.id and h.one.cls is A8Target
    s2 = Session(db)
    h2 = s2.get(A8Holder, h.id)
    got = s2.get(A8Target, t1.id)
    before = s2.stats().queries
    assert s2.dereference(h2.one) is got
    assert s2.stats().queries == before
    d2 = s2.dereference(h2.many[1])
    assert d2 is s2.get(A8Target, t2.id)
    assert d2 is s2.query(A8Target).filter(name="2").one()


def test_ref_container_mutation_document_or_id(db: Any) -> None:
    s = Session(db)
    t1, t2 = A8Target(name="1"), A8Target(name="2")
    h = A8Holder()
    s.add_all([t1, t2, h])
    s.commit()
    h.many.append(t1)
    h.many.append(t2.id)
    h.byk["x"] = t1
    s.commit()
    assert stored(db, h)["many"] == [t1.id, t2.id]
    assert stored(db, h)["byk"] == {"x": t1.id}


def test_ref_container_wrong_value_refused_then_removed(db: Any) -> None:
    s = Session(db)
    t1 = A8Target(name="1")
    h = A8Holder(many=[t1])
    s.add_all([t1, h])
    s.commit()
    h.many.append("not an id")  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    h.many.pop()
    h.many.append(t1)
    s.commit()
    assert stored(db, h)["many"] == [t1.id, t1.id]


def test_ref_wrong_document_class_refused(db: Any) -> None:
    s = Session(db)
    h = A8Holder()
    s.add(h)
    s.commit()
    with pytest.raises(uow.ValidationError):
        h.one = A8Animal(name="x")  # type: ignore[assignment]
    h.many.append(A8Animal(name="y"))  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    h.many.clear()
    s.commit()
    assert stored(db, h)["many"] == []


def test_dangling_ref(db: Any) -> None:
    s = Session(db)
    h = A8Holder(one=ObjectId())
    s.add(h)
    s.commit()
    with pytest.raises(uow.NotFound):
        s.dereference(h.one)
    assert s.dereference(h.one, allow_none=True) is None


def test_filter_by_ref_document(db: Any) -> None:
    s = Session(db)
    t1, t2 = A8Target(name="1"), A8Target(name="2")
    h = A8Holder(one=t1, many=[t2])
    s.add_all([t1, t2, h])
    s.commit()
    assert s.query(A8Holder).filter(A8Holder.one == t1).one() is h
    assert s.query(A8Holder).filter(one=t1).one() is h
    assert s.query(A8Holder).filter(many__contains=t2).one() is h
    assert s.query(A8Holder).filter(A8Holder.many.contains(t2.id)).one() is h


# -------------------------------------------------------------- subclasses


def test_subclass_cls_key(db: Any) -> None:
    s = Session(db)
    a, d, p, c = A8Animal(name="a"), A8Dog(name="d"), A8Puppy(name="p"), A8Cat(name="c")
    s.add_all([a, d, p, c])
    s.commit()
    assert "_cls" not in stored(db, a)
    assert stored(db, d)["_cls"] == "A8Dog"
    assert stored(db, p)["_cls"] == "A8Puppy"
    assert stored(db, c)["_cls"] == "A8Cat"
    s2 = Session(db)
    got = {x.name: type(x) for x in s2.query(A8Animal)}
    assert got == {"a": A8Animal, "d": A8Dog, "p": A8Puppy, "c": A8Cat}
    assert [x.name for x in s2.query(A8Animal, exclude_subclasses=True)] == ["a"]
    assert s2.count(A8Animal) == 4
    assert {x.name for x in s2.query(A8Dog)} == {"d", "p"}
    assert s2.count(A8Dog) == 2
    assert [x.name for x in s2.query(A8Dog, exclude_subclasses=True)] == ["d"]
    assert s2.query(A8Cat).count() == 1


def test_subclass_get_through_base(db: Any) -> None:
    s = Session(db)
    p = A8Puppy(name="p", age=1)
    s.add(p)
    s.commit()
    s2 = Session(db)
    got = s2.get(A8Animal, p.id)
    assert type(got) is A8Puppy
    assert s2.get(A8Dog, p.id) is got
    assert s2.get(A8Puppy, p.id) is got
    assert s2.get(A8Cat, p.id) is None


def test_base_doc_not_returned_for_subclass_get(db: Any) -> None:
    s = Session(db)
    a = A8Animal(name="a")
    s.add(a)
    s.commit()
    s2 = Session(db)
    assert s2.get(A8Dog, a.id) is None
    assert s2.query(A8Dog).count() == 0


def test_subclass_update_keeps_cls(db: Any) -> None:
    s = Session(db)
    p = A8Puppy(name="p", age=1)
    s.add(p)
    s.commit()
    p.age += 1
    s.commit()
    assert stored(db, p) == {"_id": p.id, "_cls": "A8Puppy", "name": "p", "barks": 0, "age": 2}


def test_stored_without_cls_loads_as_root(db: Any) -> None:
    oid = ObjectId()
    db.a8_animals.insert_one({"_id": oid, "name": "legacy", "barks": 3})
    s = Session(db)
    x = s.get(A8Animal, oid)
    assert type(x) is A8Animal
    x.name = "n"
    s.commit()
    assert stored(db, x) == {"_id": oid, "name": "n", "barks": 3}


def test_subclass_filters_on_subclass_fields(db: Any) -> None:
    s = Session(db)
    s.add_all([A8Dog(name="d", barks=5), A8Puppy(name="p", barks=1, age=2), A8Cat(name="c")])
    s.commit()
    assert [x.name for x in s.query(A8Dog).filter(A8Dog.barks > 2)] == ["d"]
    assert [x.name for x in s.query(A8Puppy).filter(age=2)] == ["p"]


def test_delete_subclass_via_base_query(db: Any) -> None:
    s = Session(db)
    s.add_all([A8Dog(name="d"), A8Cat(name="c"), A8Animal(name="a")])
    s.commit()
    for x in s.query(A8Animal).filter(name__in=["d", "c"]):
        s.delete(x)
    s.commit()
    assert [d["name"] for d in db.a8_animals.find()] == ["a"]
