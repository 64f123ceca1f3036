"""The query API of SPEC ("Reading", "Identity map") and docs/session.md,
docs/queries.md: filters, sort, skip/limit, fields(), first/one/count/raw,
autoflush before a query, refs and dereference."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import bson
import pytest

import uow
from uow import Document, ObjectState, Session, field

from ._h import Addr, Author, Book, Circle, Person, Shape, Square, stored


def _people(db: Any) -> list[Person]:
    with Session(db) as s:
        ps = [
            Person(
                name="ann",
                email="ann@x.io",
                age=30,
                visits=3,
                tags=["vip", "a"],
                addr=Addr(city="Oslo", zip="01"),
            ),
            Person(
                name="bob", email="bob@x.io", age=25, visits=12, tags=["b"], addr=Addr(city="Rome")
            ),
            Person(name="cy", email="cy@y.io", age=35, visits=7, tags=[], prefs={"dark": 1}),
            Person(
                name="dan",
                email="",
                age=25,
                visits=0,
                tags=["vip"],
                addr=Addr(city="Oslo", zip="02"),
            ),
            Person(name="eve", email="eve@x.io", age=41, visits=20, tags=["a"]),
        ]
        s.add_all(ps)
    return ps


def names(objs: Any) -> list[str]:
    return [o.name for o in objs]


def test_filters_and_lookups_match_python(db: Any) -> None:
    _people(db)
    with Session(db) as s:
        P = Person
        cases: list[tuple[Any, set[str]]] = [
            (s.query(P).filter(P.visits > 10), {"bob", "eve"}),
            (s.query(P).filter(visits__gte=12), {"bob", "eve"}),
            (s.query(P).filter(P.tags.contains("vip")), {"ann", "dan"}),
            (s.query(P).filter(tags__contains="a"), {"ann", "eve"}),
            (s.query(P).filter(P.addr.city == "Oslo"), {"ann", "dan"}),
            (s.query(P).filter(addr__city="Oslo", addr__zip="02"), {"dan"}),
            (s.query(P).filter(P.email == "cy@y.io"), {"cy"}),
            (s.query(P).filter(email__startswith="eve"), {"eve"}),
            (s.query(P).filter(email__icontains="X.IO"), {"ann", "bob", "eve"}),
            (s.query(P).filter((P.age == 25) | (P.visits > 19)), {"bob", "dan", "eve"}),
            (s.query(P).filter(~(P.age == 25)), {"ann", "cy", "eve"}),
            (s.query(P).filter(P.name.in_(["ann", "cy", "zz"])), {"ann", "cy"}),
            (s.query(P).filter(name__nin=["ann", "cy"]), {"bob", "dan", "eve"}),
            (s.query(P).filter(P.visits > 1, P.visits < 13), {"ann", "bob", "cy"}),
            (s.query(P).filter(prefs__dark__gt=0), {"cy"}),
            (s.query(P).filter(addr__zip__exists=True, addr__zip__ne=None), {"ann", "dan"}),
            (s.query(P).filter(age__lt=30).filter(age__lte=25), {"bob", "dan"}),
        ]
        for q, want in cases:
            got = set(names(q))
            assert got == want, f"{q.raw()}: got {sorted(got)}, want {sorted(want)}"
            assert q.count() == len(want), q.raw()
            assert s.count(P, *[]) == 5


def test_sort_skip_limit_count_first(db: Any) -> None:
    _people(db)
    with Session(db) as s:
        q = s.query(Person).sort("age", Person.name.desc())
        assert names(q) == ["dan", "bob", "ann", "cy", "eve"]
        assert names(q.skip(1).limit(2)) == ["bob", "ann"]
        assert q.skip(1).limit(2).count() == 2
        assert q.skip(4).count() == 1
        assert q.limit(3).count() == 3
        assert q.first().name == "dan"
        assert q.skip(5).first() is None
        assert names(s.query(Person).sort("-visits").limit(2)) == ["eve", "bob"]
        assert names(s.query(Person).sort("-addr.city", "name").limit(2)) == ["bob", "ann"]
        # builder calls return new queries
        base = s.query(Person)
        narrowed = base.filter(age=25)
        assert base.count() == 5 and narrowed.count() == 2
        assert base.limit(1).count() == 1 and base.count() == 5


def test_one_errors_name_the_class(db: Any) -> None:
    _people(db)
    with Session(db) as s:
        with pytest.raises(uow.NotFound) as nf:
            s.query(Person).filter(name="nobody").one()
        assert "Person" in str(nf.value), str(nf.value)
        with pytest.raises(uow.MultipleFound) as mf:
            s.query(Person).filter(age=25).one()
        assert "Person" in str(mf.value), str(mf.value)
        assert s.query(Person).filter(name="nobody").first() is None


def test_raw_is_the_filter_dict(db: Any) -> None:
    with Session(db) as s:
        raw = s.query(Person).filter(Person.email == "a", age__gt=3).raw()
        assert raw == {"mail": "a", "age": {"$gt": 3}}, raw


def test_query_value_conversion_matches_stored(db: Any) -> None:
    class Typed(Document):
        __collection__ = "a15_typed"
        price: decimal.Decimal = decimal.Decimal("0")
        day: datetime.date = datetime.date(2024, 1, 1)
        at: datetime.datetime | None = None

    with Session(db) as s:
        t = Typed(
            price=decimal.Decimal("9.90"),
            day=datetime.date(2024, 2, 29),
            at=datetime.datetime(2024, 1, 1, 12, 0, 0, 123456),
        )
        s.add(t)
        s.flush()
        assert s.query(Typed).filter(price=decimal.Decimal("9.90")).first() is t
        assert s.query(Typed).filter(day=datetime.date(2024, 2, 29)).first() is t
        assert (
            s.query(Typed).filter(at=datetime.datetime(2024, 1, 1, 12, 0, 0, 123456)).first() is t
        )


def test_query_returns_identity_and_keeps_unflushed_changes(db: Any) -> None:
    _people(db)
    s = Session(db, autoflush=False)
    ann = s.query(Person).filter(name="ann").one()
    ann.age = 99
    ann.tags.append("new")
    again = s.query(Person).filter(name="ann").one()
    assert again is ann
    assert ann.age == 99 and ann.tags == ["vip", "a", "new"], "a query overwrote unflushed changes"
    for p in s.query(Person):
        if p.name == "ann":
            assert p is ann and p.age == 99
    assert s.dirty_fields(ann) == ["age", "tags"]
    s.commit()
    assert stored(db, ann)["age"] == 99 and stored(db, ann)["tags"] == ["vip", "a", "new"]
    s.close()


AUTOFLUSH_CASES = ["assign", "in_place_list", "in_place_embedded", "in_place_dict", "add", "delete"]


@pytest.mark.parametrize("case", AUTOFLUSH_CASES)
@pytest.mark.parametrize("how", ["query", "filter", "count", "first", "iterate", "all"])
def test_autoflush_before_a_query(db: Any, case: str, how: str) -> None:
    """SPEC: "With autoflush, a query first flushes pending changes, so a
    session reads its own writes." A changed, added or deleted document is seen
    by the next query of the same session."""
    _people(db)
    s = Session(db)
    ann = s.query(Person).filter(name="ann").one()
    if case == "assign":
        ann.age = 77
        expr, want = Person.age == 77, {"ann"}
    elif case == "in_place_list":
        ann.tags.append("zz")
        expr, want = Person.tags.contains("zz"), {"ann"}
    elif case == "in_place_embedded":
        ann.addr.city = "Tromso"
        expr, want = Person.addr.city == "Tromso", {"ann"}
    elif case == "in_place_dict":
        ann.prefs["k9"] = 9
        expr, want = Person.prefs["k9"] == 9, {"ann"}
    elif case == "add":
        s.add(Person(name="new", age=77))
        expr, want = Person.age == 77, {"new"}
    else:
        s.delete(ann)
        expr, want = Person.age >= 30, {"cy", "eve"}
    if how == "query":
        got = set(names(s.query(Person).filter(expr)))
    elif how == "filter":
        got = set(names(s.filter(Person, expr)))
    elif how == "count":
        got_n = s.count(Person, expr)
        assert got_n == len(want), f"{case}: count {got_n}, want {len(want)}"
        s.close()
        return
    elif how == "first":
        first = s.query(Person).filter(expr).sort("name").first()
        got = {first.name} if first else set()
        want = {sorted(want)[0]}
    elif how == "iterate":
        got = {p.name for p in s.query(Person).filter(expr)}
    else:
        got = set(names(s.query(Person).filter(expr).all()))
    assert got == want, f"{case}/{how}: the query did not see the session's own change: {got}"
    s.close()


def test_autoflush_subclass_query_sees_in_place_change_of_base_loaded(db: Any) -> None:
    """An in-place change of a document loaded through the base class is seen
    by a query on its subclass (same collection)."""
    with Session(db) as s:
        s.add_all([Circle(name="c", r=1), Book(title="t")])
    s = Session(db)
    c = s.query(Shape).filter(name="c").one()
    assert isinstance(c, Circle)
    c.r = 5
    assert s.query(Circle).filter(r=5).first() is c
    by_id = s.query(Shape).filter(Shape.id == c.id).one()
    assert by_id is c
    assert s.query(Circle).filter(Circle.id.in_([c.id, bson.ObjectId()])).one() is c
    s.close()


def test_autoflush_off_query_does_not_flush(db: Any) -> None:
    _people(db)
    s = Session(db, autoflush=False)
    ann = s.query(Person).filter(name="ann").one()
    ann.age = 77
    assert s.query(Person).filter(age=77).first() is None
    assert stored(db, ann)["age"] == 30
    assert s.is_dirty(ann)
    s.close()


def test_deleted_not_returned_and_get_is_none(db: Any) -> None:
    _people(db)
    s = Session(db, autoflush=False)
    ann = s.query(Person).filter(name="ann").one()
    s.delete(ann)
    assert s.get(Person, ann.id) is None, "docs: get of a deleted one is None"
    assert s.state(ann) is ObjectState.DELETED
    s.close()


def test_fields_partial_and_id(db: Any) -> None:
    ps = _people(db)
    with Session(db) as s:
        part = s.query(Person).fields(Person.name, "visits").sort("name").all()
        assert [p.id for p in part] == [p.id for p in sorted(ps, key=lambda p: p.name)]
        assert part[0].name == "ann" and part[0].visits == 3
        with pytest.raises(uow.FieldNotLoaded) as e:
            _ = part[0].email
        assert "email" in str(e.value)
        assert isinstance(e.value, AttributeError)
        part[0].visits += 2
    got = db.a15_person.find_one({"name": "ann"})
    assert got["visits"] == 5 and got["mail"] == "ann@x.io" and got["address"]["city"] == "Oslo", (
        got
    )


def test_refs_and_dereference(db: Any) -> None:
    with Session(db) as s:
        a1, a2 = Author(name="a1"), Author(name="a2")
        s.add_all([a1, a2])
        s.add(Book(title="b1", author=a1, reviewers=[a2, a1.id], year=2001))
        s.add(Book(title="b2", author=a2.id, year=2002))
        s.add(Book(title="b3", year=2003))
    assert db.a15_book.find_one({"title": "b1"})["author"] == a1.id
    assert db.a15_book.find_one({"title": "b1"})["reviewers"] == [a2.id, a1.id]
    with Session(db) as s:
        b1 = s.query(Book).filter(title="b1").one()
        assert isinstance(b1.author, uow.Ref) and b1.author.cls is Author and b1.author.id == a1.id
        author = s.dereference(b1.author)
        assert author.name == "a1"
        assert s.dereference(b1.author) is author
        assert s.get(Author, a1.id) is author
        assert s.query(Author).filter(name="a1").one() is author
        rev = [s.dereference(r) for r in b1.reviewers]
        assert [r.name for r in rev] == ["a2", "a1"] and rev[1] is author
        assert names_of(s.query(Book).filter(author=author)) == ["b1"]
        assert names_of(s.query(Book).filter(Book.author == a2.id)) == ["b2"]
        assert names_of(s.query(Book).filter(author__in=[a1, a2.id]).sort("title")) == ["b1", "b2"]
        assert names_of(s.query(Book).filter(reviewers__contains=a2)) == ["b1"]
        assert names_of(s.query(Book).filter(author=None)) == ["b3"]
        b3 = s.query(Book).filter(title="b3").one()
        assert s.dereference(b3.author) is None
        # dangling ref
        b3.author = Author(name="never stored")
        s.flush()
        with pytest.raises(uow.NotFound):
            s.dereference(b3.author)
        assert s.dereference(b3.author, allow_none=True) is None
        b3.author = None


def names_of(q: Any) -> list[str]:
    return [b.title for b in q]


def test_dereference_hit_sends_no_query(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    with Session(db) as s:
        a = Author(name="a")
        s.add(a)
        s.add(Book(title="b", author=a))
    with Session(db) as s:
        b = s.query(Book).one()
        a1 = s.dereference(b.author)
        command_log.clear()
        assert s.dereference(b.author) is a1
        assert s.get(Author, a1.id) is a1
        assert command_log.of("find") == [], command_log.names()


def test_subclass_queries(db: Any) -> None:
    with Session(db) as s:
        s.add_all([Shape(name="s"), Circle(name="c", r=2), Square(name="q", side=3)])
    with Session(db) as s:
        got = {type(x).__name__ for x in s.query(Shape)}
        assert got == {"Shape", "Circle", "Square"}
        assert {type(x).__name__ for x in s.query(Shape, exclude_subclasses=True)} == {"Shape"}
        assert [x.name for x in s.query(Circle)] == ["c"]
        assert s.count(Circle) == 1
        assert s.query(Square).count() == 1
        c = s.query(Circle).filter(r=2).one()
        assert s.query(Shape).filter(name="c").one() is c
    raw = db.a15_shape.find_one({"name": "s"})
    assert "_cls" not in raw
    assert db.a15_shape.find_one({"name": "c"})["_cls"] == "Circle"


def test_remove_query_detaches_and_autoflushes(db: Any) -> None:
    _people(db)
    s = Session(db)
    ann = s.query(Person).filter(name="ann").one()
    dan = s.query(Person).filter(name="dan").one()
    dan.tags.append("gone")  # autoflushed first
    bob = s.query(Person).filter(name="bob").one()
    bob.age = 26  # would match age__lt=26 only if not flushed
    n = s.remove_query(Person).filter(tags__contains="gone").execute()
    assert n == 1
    assert s.state(dan) is ObjectState.DETACHED
    n2 = s.remove_query(Person).filter(age__lt=26).execute()
    assert n2 == 0, "bob's unflushed age (26) must be flushed before the delete by filter"
    assert s.state(ann) is ObjectState.PERSISTENT
    s.commit()
    assert db.a15_person.count_documents({}) == 4
    s.close()


def test_query_iteration_after_close_raises(db: Any) -> None:
    _people(db)
    s = Session(db)
    it = iter(s.query(Person))
    next(it)
    s.close()
    with pytest.raises(uow.SessionClosedError):
        next(it)


def test_lookup_value_never_an_operator(db: Any) -> None:
    _people(db)
    with Session(db) as s:
        for kw in (
            {"name": {"$ne": None}},
            {"name__in": [{"$gt": ""}]},
            {"prefs": {"$where": 1}},
            {"addr": {"$ne": None}},
            {"tags__contains": {"$exists": True}},
        ):
            with pytest.raises(uow.ValidationError):
                s.query(Person).filter(**kw).all()
        with pytest.raises(uow.ValidationError) as e:
            s.filter(Person, nosuch=1)
        assert "nosuch" in str(e.value) and "Person" in str(e.value)
        with pytest.raises(uow.ValidationError) as e2:
            s.filter(Person, age="3")
        msg = str(e2.value)
        assert "Person.age" in msg and "int" in msg and "str" in msg, msg


def test_stats_counts_queries(db: Any) -> None:
    _people(db)
    with Session(db) as s:
        st0 = s.stats()
        ann = s.query(Person).filter(name="ann").one()
        s.get(Person, ann.id)  # hit
        s.get(Person, bson.ObjectId())  # miss: a query
        s.count(Person)
        st = s.stats()
        assert st.queries - st0.queries == 3, st.as_dict()
        assert st.identity_map_size == 1, st.as_dict()


def test_max_requests_message_gives_limit(db: Any) -> None:
    _people(db)
    s = Session(db, max_requests=2)
    s.query(Person).first()
    s.count(Person)
    with pytest.raises(uow.TooManyRequests) as e:
        s.query(Person).all()
    assert "2" in str(e.value), str(e.value)
    s.close()


def test_ref_list_mutation_accepts_docs_and_ids_refuses_others(db: Any) -> None:
    """SPEC: "`list[Ref[X]]` ... accept a document or an id put in place by
    mutation (stored as the id), or refuse it at flush with `ValidationError`; a
    refused value never leaves the session unable to flush once it is removed."""
    with Session(db) as s:
        a1, a2, a3 = Author(name="a1"), Author(name="a2"), Author(name="a3")
        b = Book(title="b", reviewers=[a1])
        s.add_all([a1, a2, a3, b])
    s = Session(db)
    book = s.get(Book, b.id)
    book.reviewers.append(a2)  # a document
    book.reviewers.append(a3.id)  # an id
    s.flush()
    s.commit()
    assert stored(db, book)["reviewers"] == [a1.id, a2.id, a3.id]
    kinds = [type(r).__name__ for r in book.reviewers]
    # SPEC: a Ref field "reads as a `uow.Ref` with `.cls` and `.id`" (as a fresh load does)
    with Session(db) as fresh:
        assert [type(r).__name__ for r in fresh.get(Book, b.id).reviewers] == ["Ref"] * 3
    assert kinds == ["Ref", "Ref", "Ref"], (
        f"after the flush the list[Ref[Author]] elements read as {kinds}, a fresh load as Ref"
    )
    assert [s.dereference(r).name for r in book.reviewers] == ["a1", "a2", "a3"]
    for bad in (Book(title="wrong class"), "not an id", 42):
        book.reviewers.append(bad)  # type: ignore[arg-type]
        with pytest.raises(uow.ValidationError) as e:
            s.flush()
        assert "Book.reviewers" in str(e.value), str(e.value)
        book.reviewers.pop()
        assert s.flush().round_trips == 0, f"after removing {bad!r} the session still has work"
    book.reviewers.pop(0)
    s.commit()
    assert stored(db, book)["reviewers"] == [a2.id, a3.id]
    s.close()


def test_get_after_remove_query_is_none(db: Any) -> None:
    _people(db)
    s = Session(db)
    ann = s.query(Person).filter(name="ann").one()
    s.remove_query(Person).filter(name="ann").execute()
    assert s.state(ann) is ObjectState.DETACHED
    assert s.get(Person, ann.id) is None
    assert s.query(Person).filter(name="ann").first() is None
    s.close()


def test_refresh_discards_changes_and_never_autoflushes(db: Any) -> None:
    _people(db)
    s = Session(db)
    ann = s.query(Person).filter(name="ann").one()
    bob = s.query(Person).filter(name="bob").one()
    bob.age = 1  # queued for bob, must not be flushed by refresh(ann)
    ann.age = 2
    ann.tags.append("x")
    db.a15_person.update_one({"_id": ann.id}, {"$set": {"visits": 99}})
    s.refresh(ann)
    assert (ann.age, ann.tags, ann.visits) == (30, ["vip", "a"], 99)
    assert db.a15_person.find_one({"_id": bob.id})["age"] == 25, "refresh() flushed"
    assert s.dirty_fields(bob) == ["age"] and not s.is_dirty(ann)
    s.close()


def test_ref_containers_refuse_bad_values_at_flush_then_recover(db: Any) -> None:
    class Shelf(Document):
        __collection__ = "a15_shelf"
        books: list[uow.Ref[Author]] = field(factory=list)
        by_key: dict[str, uow.Ref[Author]] = field(factory=dict)

    with Session(db) as s:
        a = Author(name="a")
        sh = Shelf(books=[a], by_key={"x": a})
        s.add_all([a, sh])
    s = Session(db)
    shelf = s.get(Shelf, sh.id)
    for bad in (Book(title="wrong class"), "not an id", 42):
        shelf.books.append(bad)  # type: ignore[arg-type]
        shelf.by_key["bad"] = bad  # type: ignore[assignment]
        with pytest.raises(uow.ValidationError) as e:
            s.flush()
        assert "Shelf." in str(e.value), str(e.value)
        shelf.books.pop()
        del shelf.by_key["bad"]
        assert s.flush().round_trips == 0, f"after removing {bad!r} the session still has work"
    shelf.by_key["y"] = a.id
    s.commit()
    assert stored(db, shelf) == {"_id": sh.id, "books": [a.id], "by_key": {"x": a.id, "y": a.id}}
    s.close()


def test_autoflush_of_changes_inside_list_elements_and_dict_values(db: Any) -> None:
    from ._h import Line, Rec

    with Session(db) as s0:
        s0.add(Rec(code="a", lines=[Line(sku="x", qty=1)], by={"k": Line(sku="y", qty=2)}))
    s = Session(db)
    r = s.query(Rec).filter(lines__sku="x").one()
    r.lines[0].notes.append("nn")
    r.by["k"].qty += 5
    assert s.query(Rec).filter(lines__notes__contains="nn").first() is r
    assert s.query(Rec).filter(Rec.by["k"].qty == 7).count() == 1
    s.commit()
    got = stored(db, r)
    assert got["lines"][0]["notes"] == ["nn"] and got["by"]["k"]["qty"] == 7, got
    s.close()
