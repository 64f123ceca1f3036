"""SPEC "Reading", query fields, lookups, subclasses and refs."""

from __future__ import annotations

from typing import Any

import bson
import pytest

import uow
from uow import Document, Session, field

from ._h import insert_raw, stored

S = uow.ObjectState


class A4RAddr(uow.Embedded):
    city: str = ""


class A4RUser(Document):
    __collection__ = "a4_r_users"
    name: str = ""
    email: str | None = None
    visits: int = 0
    tags: list[str] = field(factory=list)
    address: A4RAddr | None = None


class A4RAnimal(Document):
    __collection__ = "a4_r_animals"
    name: str = ""


class A4RDog(A4RAnimal):
    barks: int = 0


class A4RPost(Document):
    __collection__ = "a4_r_posts"
    author: uow.Ref[A4RUser] | None = None
    readers: list[uow.Ref[A4RUser]] = field(factory=list)


def _seed(db: Any) -> list[A4RUser]:
    s = Session(db)
    users = [
        A4RUser(name="ann", email="a@x", visits=5, tags=["x"], address=A4RAddr(city="Oslo")),
        A4RUser(name="bob", email=None, visits=15, tags=["y"], address=A4RAddr(city="Rome")),
        A4RUser(name="abe", visits=25, tags=["x", "y"]),
    ]
    s.add_all(users)
    s.commit()
    s.close()
    db["a4_r_users"].update_one({"name": "abe"}, {"$unset": {"email": ""}})
    return users


def _names(objs: Any) -> list[str]:
    return sorted(o.name for o in objs)


def test_a4_get_hit_pending_and_miss(db: Any) -> None:
    s = Session(db)
    p = A4RUser(name="p")
    s.add(p)
    q0 = s.stats().queries
    assert s.get(A4RUser, p.id) is p
    assert s.stats().queries == q0
    assert s.get(A4RUser, bson.ObjectId()) is None
    s.close()


def test_a4_query_fields_expressions(db: Any) -> None:
    _seed(db)
    s = Session(db)
    assert _names(s.filter(A4RUser, A4RUser.visits > 10)) == ["abe", "bob"]
    assert _names(s.filter(A4RUser, A4RUser.visits >= 15)) == ["abe", "bob"]
    assert _names(s.filter(A4RUser, A4RUser.visits < 15)) == ["ann"]
    assert _names(s.filter(A4RUser, A4RUser.visits <= 15)) == ["ann", "bob"]
    assert _names(s.filter(A4RUser, A4RUser.visits != 15)) == ["abe", "ann"]
    assert _names(s.filter(A4RUser, A4RUser.tags.contains("x"))) == ["abe", "ann"]
    assert _names(s.filter(A4RUser, A4RUser.address.city == "Oslo")) == ["ann"]
    assert _names(s.filter(A4RUser, (A4RUser.visits > 10) & (A4RUser.name == "bob"))) == ["bob"]
    assert _names(s.filter(A4RUser, (A4RUser.name == "ann") | (A4RUser.name == "bob"))) == [
        "ann",
        "bob",
    ]
    assert _names(s.filter(A4RUser, ~(A4RUser.name == "ann"))) == ["abe", "bob"]
    assert _names(s.filter(A4RUser, A4RUser.name.in_(["ann", "abe"]))) == ["abe", "ann"]
    assert _names(s.filter(A4RUser, uow.q(A4RUser.name).in_(["bob"]))) == ["bob"]
    assert _names(s.filter(A4RUser, A4RUser.email.exists())) == ["ann", "bob"]
    by_desc = s.query(A4RUser).sort(A4RUser.visits.desc()).all()
    assert [u.name for u in by_desc] == ["abe", "bob", "ann"]
    by_asc = s.query(A4RUser).sort(A4RUser.visits.asc()).all()
    assert [u.name for u in by_asc] == ["ann", "bob", "abe"]
    s.close()


def test_a4_lookups(db: Any) -> None:
    _seed(db)
    s = Session(db)
    assert _names(s.filter(A4RUser, name="ann")) == ["ann"]
    assert _names(s.filter(A4RUser, visits__gt=5)) == ["abe", "bob"]
    assert _names(s.filter(A4RUser, visits__gte=15)) == ["abe", "bob"]
    assert _names(s.filter(A4RUser, visits__lt=15)) == ["ann"]
    assert _names(s.filter(A4RUser, visits__lte=15)) == ["ann", "bob"]
    assert _names(s.filter(A4RUser, visits__ne=15)) == ["abe", "ann"]
    assert _names(s.filter(A4RUser, name__in=["ann", "bob"])) == ["ann", "bob"]
    assert _names(s.filter(A4RUser, name__nin=["ann", "bob"])) == ["abe"]
    assert _names(s.filter(A4RUser, email__exists=True)) == ["ann", "bob"]
    assert _names(s.filter(A4RUser, email__exists=False)) == ["abe"]
    assert _names(s.filter(A4RUser, tags__contains="y")) == ["abe", "bob"]
    assert _names(s.filter(A4RUser, name__startswith="a")) == ["abe", "ann"]
    assert _names(s.filter(A4RUser, name__icontains="N")) == ["ann"]
    assert _names(s.filter(A4RUser, address__city="Oslo")) == ["ann"]
    assert s.count(A4RUser, visits__gt=10) == 2
    assert s.count(A4RUser, A4RUser.visits > 20) == 1
    with pytest.raises(uow.ValidationError):
        s.filter(A4RUser, name={"$ne": None})
    s.close()


def test_a4_startswith_is_data_not_regex(db: Any) -> None:
    s = Session(db)
    s.add_all([A4RUser(name="a.b"), A4RUser(name="axb")])
    s.commit()
    assert _names(s.filter(A4RUser, name__startswith="a.")) == ["a.b"]
    assert _names(s.filter(A4RUser, name__icontains=".")) == ["a.b"]
    s.close()


def test_a4_query_methods(db: Any) -> None:
    _seed(db)
    s = Session(db)
    q = s.query(A4RUser).filter(visits__gt=0).sort("visits")
    assert [u.name for u in q.skip(1).limit(1).all()] == ["bob"]
    assert [u.name for u in s.query(A4RUser).sort(A4RUser.visits.desc()).all()] == [
        "abe",
        "bob",
        "ann",
    ]
    assert isinstance(s.query(A4RUser).all(), list)
    assert s.query(A4RUser).filter(name="zzz").first() is None
    with pytest.raises(uow.NotFound):
        s.query(A4RUser).filter(name="zzz").one()
    with pytest.raises(uow.MultipleFound):
        s.query(A4RUser).one()
    assert s.query(A4RUser).filter(name="ann").one().name == "ann"
    assert s.query(A4RUser).count() == 3
    assert type(s.query(A4RUser).count()) is int
    assert s.query(A4RUser).filter(visits__gt=10).raw() == {"visits": {"$gt": 10}}
    assert sorted(u.name for u in s.query(A4RUser)) == ["abe", "ann", "bob"]
    assert _names(s.all(A4RUser)) == ["abe", "ann", "bob"]
    s.close()


def test_a4_query_iteration_streams(db: Any) -> None:
    s = Session(db)
    s.add_all([A4RUser(name=str(i)) for i in range(5)])
    s.commit()
    s.close()
    s2 = Session(db)
    it = iter(s2.query(A4RUser).sort("name"))
    first = next(it)
    assert first.name == "0"
    assert s2.stats().identity_map_size == 1
    assert [u.name for u in it] == ["1", "2", "3", "4"]
    s2.close()


def test_a4_autoflush_reads_own_writes(db: Any) -> None:
    s = Session(db)
    s.add(A4RUser(name="new"))
    assert s.count(A4RUser) == 1
    assert _names(s.filter(A4RUser, name="new")) == ["new"]
    s.close()
    s2 = Session(db, autoflush=False)
    s2.add(A4RUser(name="other"))
    assert s2.filter(A4RUser, name="other") == []
    s2.close()


def test_a4_remove_query(db: Any) -> None:
    users = _seed(db)
    s = Session(db)
    ann = s.get(A4RUser, users[0].id)
    assert ann is not None
    s.add(A4RUser(name="ant"))  # autoflushed before the delete
    n = s.remove_query(A4RUser).filter(name__startswith="an").execute()
    assert n == 2
    assert type(n) is int
    assert s.state(ann) is S.DETACHED
    s.commit()
    assert db["a4_r_users"].count_documents({}) == 2
    s.close()


def test_a4_subclasses(db: Any) -> None:
    s = Session(db)
    a, d = A4RAnimal(name="cat"), A4RDog(name="rex", barks=3)
    s.add_all([a, d])
    s.commit()
    assert "_cls" not in stored(db, "a4_r_animals", a.id)
    assert stored(db, "a4_r_animals", d.id)["_cls"] == "A4RDog"
    s.close()
    raw = insert_raw(db, "a4_r_animals", {"name": "raw"})
    s2 = Session(db)
    got = {x.name: type(x) for x in s2.query(A4RAnimal)}
    assert got == {"cat": A4RAnimal, "rex": A4RDog, "raw": A4RAnimal}
    only = s2.query(A4RAnimal, exclude_subclasses=True).all()
    assert sorted(x.name for x in only) == ["cat", "raw"]
    assert [x.name for x in s2.query(A4RDog)] == ["rex"]
    assert type(s2.get(A4RAnimal, raw)) is A4RAnimal
    s2.close()


def test_a4_refs(db: Any) -> None:
    users = _seed(db)
    s = Session(db)
    ann = s.get(A4RUser, users[0].id)
    assert ann is not None
    p1 = A4RPost(author=ann)
    p2 = A4RPost(author=users[1].id)
    s.add_all([p1, p2])
    s.commit()
    assert stored(db, "a4_r_posts", p1.id)["author"] == ann.id
    assert stored(db, "a4_r_posts", p2.id)["author"] == users[1].id
    s.close()
    s2 = Session(db)
    post = s2.get(A4RPost, p1.id)
    assert post is not None
    ref = post.author
    assert isinstance(ref, uow.Ref)
    assert ref.cls is A4RUser
    assert ref.id == ann.id
    first = s2.dereference(ref)
    assert isinstance(first, A4RUser) and first.name == "ann"
    q = s2.stats().queries
    assert s2.dereference(ref) is first
    assert s2.stats().queries == q
    assert s2.get(A4RUser, ann.id) is first
    dangling = A4RPost(author=bson.ObjectId())
    assert dangling.author is not None
    assert s2.dereference(dangling.author, allow_none=True) is None
    with pytest.raises(uow.NotFound):
        s2.dereference(dangling.author)
    s2.close()


def test_a4_ref_list_mutation(db: Any) -> None:
    users = _seed(db)
    s = Session(db)
    p = A4RPost()
    s.add(p)
    s.commit()
    ann = s.get(A4RUser, users[0].id)
    p.readers.append(ann)  # type: ignore[arg-type]
    p.readers.append(users[1].id)  # type: ignore[arg-type]
    s.commit()
    assert stored(db, "a4_r_posts", p.id)["readers"] == [users[0].id, users[1].id]
    p.readers.append(A4RAnimal(name="wrong"))  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    p.readers.pop()
    s.commit()
    assert stored(db, "a4_r_posts", p.id)["readers"] == [users[0].id, users[1].id]
    s.close()
