"""Queries: filters, operators, sort/skip/limit/fields, first/one/count."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Session, field


class A8Addr(uow.Embedded):
    city: str
    zip: str | None = None


class A8Person(Document):
    __collection__ = "a8_people"
    name: str
    age: int = 0
    tags: list[str] = field(factory=list)
    addr: A8Addr | None = None
    nick: str | None = None
    extra: dict[str, int] = field(factory=dict)


def _seed(db: Any) -> Session:
    s = Session(db)
    s.add_all(
        [
            A8Person(name="ann", age=30, tags=["a", "vip"], addr=A8Addr(city="Oslo")),
            A8Person(name="bob", age=20, tags=["b"], addr=A8Addr(city="Bergen", zip="5000")),
            A8Person(name="Anna", age=40, nick="an", extra={"k": 1}),
            A8Person(name="a.b", age=50),
            A8Person(name="c(d", age=60),
        ]
    )
    s.commit()
    return s


def names(q: Any) -> list[str]:
    return sorted(x.name for x in q)


def test_comparison_lookups(db: Any) -> None:
    s = _seed(db)
    P = A8Person
    assert names(s.query(P).filter(age__gt=30)) == ["Anna", "a.b", "c(d"]
    assert names(s.query(P).filter(age__gte=30, age__lt=50)) == ["Anna", "ann"]
    assert names(s.query(P).filter(age__lte=20)) == ["bob"]
    assert names(s.query(P).filter(age__ne=20, age__lt=40)) == ["ann"]
    assert names(s.query(P).filter(age__in=[20, 40])) == ["Anna", "bob"]
    assert names(s.query(P).filter(age__nin=[20, 40, 50, 60])) == ["ann"]
    assert names(s.query(P).filter(nick__exists=True)) == ["Anna"] or names(
        s.query(P).filter(nick__exists=True)
    ) == sorted(["ann", "bob", "Anna", "a.b", "c(d"])
    assert names(s.query(P).filter(tags__contains="vip")) == ["ann"]
    assert names(s.query(P).filter(addr__city="Oslo")) == ["ann"]


def test_string_lookups_escape_regex(db: Any) -> None:
    s = _seed(db)
    P = A8Person
    assert names(s.query(P).filter(name__startswith="a")) == ["a.b", "ann"]
    assert names(s.query(P).filter(name__startswith="a.")) == ["a.b"]
    assert names(s.query(P).filter(name__icontains="AN")) == ["Anna", "ann"]
    assert names(s.query(P).filter(name__icontains="C(")) == ["c(d"]
    assert names(s.query(P).filter(name__startswith="^")) == []
    assert names(s.query(P).filter(name__icontains=".")) == ["a.b"]
    assert names(s.query(P).filter(name__startswith="a*")) == []


def test_expressions(db: Any) -> None:
    s = _seed(db)
    P = A8Person
    assert names(s.query(P).filter(P.age > 30)) == ["Anna", "a.b", "c(d"]
    assert names(s.query(P).filter((P.age > 30) & (P.age < 60))) == ["Anna", "a.b"]
    assert names(s.query(P).filter((P.age == 20) | (P.name == "ann"))) == ["ann", "bob"]
    assert names(s.query(P).filter(~(P.age > 30))) == ["ann", "bob"]
    assert names(s.query(P).filter(P.name.in_(["ann", "zz"]))) == ["ann"]
    assert names(s.query(P).filter(P.tags.contains("b"))) == ["bob"]
    assert names(s.query(P).filter(P.addr.city == "Bergen")) == ["bob"]
    assert names(s.query(P).filter(P.addr.zip == "5000")) == ["bob"]
    assert names(s.query(P).filter(P.nick.exists())) == names(s.query(P).filter(nick__exists=True))
    assert names(s.query(P).filter(P.age > 10, name__startswith="a")) == ["a.b", "ann"]
    assert names(s.query(P).filter(P.age > 10).filter(P.age < 40)) == ["ann", "bob"]


def test_same_field_two_conditions_anded(db: Any) -> None:
    s = _seed(db)
    P = A8Person
    assert names(s.query(P).filter(P.age > 20, P.age < 50)) == ["Anna", "ann"]
    assert names(s.query(P).filter(P.age > 20).filter(P.age < 50)) == ["Anna", "ann"]
    assert names(s.query(P).filter(P.name == "ann", P.name == "bob")) == []
    assert names(s.query(P).filter(P.age > 20, age__lt=50)) == ["Anna", "ann"]


def test_typed_q(db: Any) -> None:
    s = _seed(db)
    assert names(s.query(A8Person).filter(uow.q(A8Person.name).in_(["bob"]))) == ["bob"]
    assert names(s.query(A8Person).filter(uow.q(A8Person.age) >= 50)) == ["a.b", "c(d"]


def test_lookup_values_are_data(db: Any) -> None:
    s = _seed(db)
    with pytest.raises(uow.ValidationError):
        s.filter(A8Person, name={"$ne": None})
    with pytest.raises(uow.ValidationError):
        s.query(A8Person).filter(age__in=[{"$gt": 0}]).all()
    with pytest.raises(uow.ValidationError):
        s.query(A8Person).filter(A8Person.name == {"$ne": None}).all()  # type: ignore[comparison-overlap]
    with pytest.raises(uow.ValidationError):
        s.query(A8Person).filter(addr__city={"$exists": True}).all()


def test_lookup_dict_value_on_dict_field_is_data(db: Any) -> None:
    s = _seed(db)
    # extra is dict[str, int]: a dict is a legitimate value, but not an operator
    assert names(s.query(A8Person).filter(extra={"k": 1})) == ["Anna"]
    with pytest.raises(uow.ValidationError):
        s.query(A8Person).filter(extra={"$gt": {}}).all()


def test_unknown_lookup_field_refused(db: Any) -> None:
    s = _seed(db)
    with pytest.raises((uow.ValidationError, AttributeError, TypeError, ValueError)):
        s.query(A8Person).filter(nosuch=1).all()
    with pytest.raises((uow.ValidationError, AttributeError, TypeError, ValueError)):
        s.query(A8Person).filter(age__bogus=1).all()


def test_sort_skip_limit(db: Any) -> None:
    s = _seed(db)
    P = A8Person
    assert [x.name for x in s.query(P).sort(P.age.desc()).limit(2)] == ["c(d", "a.b"]
    assert [x.name for x in s.query(P).sort(P.age.asc()).skip(1).limit(2)] == ["ann", "Anna"]
    assert [x.name for x in s.query(P).sort(P.age).skip(4)] == ["c(d"]
    assert s.query(P).sort(P.age.desc()).first().name == "c(d"
    assert s.query(P).filter(P.age > 100).first() is None


def test_sort_two_keys(db: Any) -> None:
    s = Session(db)
    s.add_all([A8Person(name=n, age=a) for n, a in [("b", 1), ("a", 1), ("c", 0)]])
    s.commit()
    P = A8Person
    assert [x.name for x in s.query(P).sort(P.age.desc(), P.name.asc())] == ["a", "b", "c"]
    assert [x.name for x in s.query(P).sort(P.age.asc(), P.name.desc())] == ["c", "b", "a"]


def test_one_not_found_multiple(db: Any) -> None:
    s = _seed(db)
    with pytest.raises(uow.NotFound):
        s.query(A8Person).filter(name="zz").one()
    with pytest.raises(uow.MultipleFound):
        s.query(A8Person).filter(A8Person.age > 20).one()
    assert s.query(A8Person).filter(name="bob").one().age == 20


def test_count_variants(db: Any) -> None:
    s = _seed(db)
    assert s.count(A8Person) == 5
    assert s.count(A8Person, A8Person.age > 30) == 3
    assert s.count(A8Person, age__lt=30) == 1
    assert s.query(A8Person).filter(A8Person.age > 30).count() == 3
    assert len(s.all(A8Person)) == 5
    assert len(s.filter(A8Person, A8Person.age > 30)) == 3
    # within skip and limit: as many as all() returns
    assert s.query(A8Person).skip(1).limit(2).count() == 2
    assert s.query(A8Person).skip(4).count() == 1
    assert s.query(A8Person).limit(3).count() == len(s.query(A8Person).limit(3).all()) == 3


def test_raw_filter(db: Any) -> None:
    s = _seed(db)
    r = s.query(A8Person).filter(A8Person.age > 30, name="x").raw()
    assert isinstance(r, dict)
    assert list(db.a8_people.find(r)) == []
    r2 = s.query(A8Person).filter(A8Person.age > 30).raw()
    assert sorted(d["name"] for d in db.a8_people.find(r2)) == ["Anna", "a.b", "c(d"]


def test_fields_partial_and_id(db: Any) -> None:
    _seed(db)
    s2 = Session(db)
    p = s2.query(A8Person).filter(name="ann").fields(A8Person.age).one()
    assert p.age == 30
    assert p.id is not None
    with pytest.raises(uow.FieldNotLoaded):
        _ = p.name
    with pytest.raises(AttributeError):
        _ = p.tags
    p.age += 1
    s2.commit()
    doc = db.a8_people.find_one({"_id": p.id})
    assert doc["name"] == "ann" and doc["age"] == 31 and doc["tags"] == ["a", "vip"]


def test_fields_of_embedded_subpath(db: Any) -> None:
    _seed(db)
    s2 = Session(db)
    p = s2.query(A8Person).filter(name="bob").fields("addr").one()
    assert p.addr == A8Addr(city="Bergen", zip="5000")


def test_query_iteration_streams_identity(db: Any) -> None:
    s = _seed(db)
    a = s.query(A8Person).filter(name="ann").one()
    for x in s.query(A8Person):
        if x.name == "ann":
            assert x is a
    assert s.get(A8Person, a.id) is a
    assert s.filter(A8Person, name="ann")[0] is a


def test_query_missing_field_lookup_none(db: Any) -> None:
    s = _seed(db)
    # nick stored as null for most: == None matches null and missing
    assert len(s.filter(A8Person, nick=None)) == 4
    assert len(s.filter(A8Person, A8Person.nick == None)) == 4  # noqa: E711


def test_limit_zero_and_negative(db: Any) -> None:
    s = _seed(db)
    # pymongo: limit(0) means no limit
    assert len(s.query(A8Person).limit(0).all()) in (0, 5)


def test_in_with_generator_and_set(db: Any) -> None:
    s = _seed(db)
    assert names(s.query(A8Person).filter(name__in={"ann", "bob"})) == ["ann", "bob"]
    assert names(s.query(A8Person).filter(A8Person.name.in_(n for n in ["ann"]))) == ["ann"]


def test_query_value_validated_type(db: Any) -> None:
    s = _seed(db)
    # a filter value of the wrong type: either refused or simply matches nothing
    try:
        r = s.filter(A8Person, age="30")
    except uow.ValidationError:
        return
    assert r == []
