# pyright: strict
# pyright: reportUnnecessaryTypeIgnoreComment=true
"""User code as SPEC.md and the docs write it, type-checked from an installed uow.

Not a test module pytest collects (no ``test_`` prefix): ``tests/typing/run``
installs uow into a fresh virtual environment and runs ``mypy --strict`` and
pyright (strict, by the comment above) over this file, outside the repository,
so the types a user sees are the ones checked. Every ``assert_type`` is a claim
about the public API's types; every ``# type: ignore`` a mistake both checkers
must catch (mypy's ``warn_unused_ignores``, in strict mode, and pyright's
``reportUnnecessaryTypeIgnoreComment``, set above, fail if one does not).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import bson
from typing_extensions import assert_type

import uow
from uow import Document, Embedded, Ref, Session, field


class Address(Embedded):
    city: str
    zip: str | None = None


class Author(Document):
    __collection__ = "authors"
    __indexes__ = [uow.Index("email", unique=True)]
    name: str
    email: str = ""
    visits: int = field(default=0, on_update="$inc")
    last_seen: dt.datetime | None = field(default=None, on_update="$max")
    # factory=list would do at run time; pyright (as for dataclasses and attrs)
    # infers list[Unknown] from a bare `list`, so strict code names the element type.
    tags: list[str] = field(factory=list[str])
    address: Address | None = None
    version: int = field(default=0, version=True)


class Post(Document):
    title: str
    author: Ref[Author]
    editor: Ref[Author] | None = None


def documents() -> None:
    a = Author(name="ann", email="ann@x.io", address=Address(city="Oslo"))
    assert_type(a.id, bson.ObjectId)
    assert_type(a.tags, list[str])
    assert_type(a.address, Address | None)
    # A name the class does not declare is reported (no ``__getattr__`` answers Any).
    _ = a.nmae  # type: ignore[attr-defined]
    _ = Address(city="Oslo").towm  # type: ignore[attr-defined]
    # ...and so is an assignment to one (at run time: AttributeError, slots).
    a.nmae = "x"  # type: ignore[attr-defined]
    # A model class is an attrs class (SPEC), to type checkers too.
    _ = attrs.fields(Author)
    # A Ref[X] field takes an X, its id, or a Ref, at construction and assignment.
    p = Post(title="t", author=a)
    Post(title="t", author=a.id)
    Post(title="t", author=Ref(Author, a.id))
    p.author = a
    p.author = a.id
    assert_type(p.author, Ref[Author])
    assert_type(p.author.cls, type[Author])
    Post(title="t", author=p)  # type: ignore[arg-type]  # a Post is not an Author
    Author(name=1)  # type: ignore[arg-type]
    assert_type(Author.from_dict({"name": "bob"}), Author)
    assert_type(a.to_bson(), dict[str, Any])
    assert_type(Author.from_bson({"_id": a.id, "name": "x"}), Author)
    assert_type(Address.from_bson({"city": "x"}), Address)


def constructors_take_fields_only() -> None:
    # uow's own slots are typed for uow's code (see uow_internals.py), yet are no
    # fields: the constructor a checker sees takes the declared fields only.
    Author(name="ann", _uow_state=None)  # type: ignore[call-arg]
    Author(name="ann", _uow_absent=None)  # type: ignore[call-arg]
    Author(name="ann", _uow_extra={})  # type: ignore[call-arg]
    Address(city="Oslo", _uow_dumped=None)  # type: ignore[call-arg]


def queries(s: Session) -> None:
    assert_type(s.get(Author, bson.ObjectId()), Author | None)
    fallback = Author(name="none")
    assert_type(s.get(Author, bson.ObjectId(), default=fallback), Author)
    assert_type(s.get(Author, bson.ObjectId(), default=None), Author | None)
    # update()'s target, spelled as filter() takes a comparison.
    s.update(fallback, id_expression=Author.name == "none")
    q = s.query(Author)
    assert_type(q, uow.Query[Author])
    q = q.filter(Author.visits > 10, name__startswith="a")
    q = q.filter(uow.q(Author.name).in_(["ann", "bob"]))
    q = q.filter(uow.q(Author.email).exists(), uow.q(Author.name).icontains("a"))
    q = q.filter(uow.q(Author.tags).contains("vip"), uow.q(Author.address).city == "Oslo")
    q = q.filter((uow.q(Author.visits) > 1) | ~(uow.q(Author.visits) < 5))
    q = q.sort(uow.q(Author.name).desc(), uow.q(Author.visits).asc(), "-email")
    q = q.skip(1).limit(2).fields("name", uow.q(Author.email))
    assert_type(q.first(), Author | None)
    assert_type(q.one(), Author)
    assert_type(q.all(), list[Author])
    assert_type(q.count(), int)
    assert_type(q.raw(), dict[str, Any])
    for author in q:
        assert_type(author, Author)
    assert_type(s.filter(Author, name="ann"), list[Author])
    assert_type(s.all(Author), list[Author])
    assert_type(s.count(Author, Author.visits > 3), int)
    removed = s.remove_query(Author).filter(name="x")
    assert_type(removed, uow.RemoveQuery[Author])
    assert_type(removed.execute(), int)
    Author.name.in_(["a"])  # type: ignore[attr-defined]  # uow.q() is the typed spelling


def references(s: Session, p: Post) -> None:
    assert_type(s.dereference(p.author), Author)
    assert_type(s.dereference(p.author, allow_none=True), Author | None)
    assert_type(s.dereference(p.editor), Author | None)
    assert_type(s.dereference(None), None)


def writes(s: Session) -> None:
    a = Author(name="ann")
    s.add(a)
    s.add_all([a, Author(name="bob")])
    result = s.flush()
    assert_type(result, uow.FlushResult)
    assert_type(result.inserted + result.updated + result.deleted + result.round_trips, int)
    assert_type(s.save(a), uow.FlushResult)
    s.update(a, upsert=True, update_ops={Author.visits: "$inc"})
    s.update(a, id_expression=uow.q(Author.id) == a.id)
    s.delete(a)
    s.refresh(a)
    s.expunge(a)
    s.expunge_all()
    s.clear_queue()
    s.clear_cache()
    assert_type(s.clone(a), Author)
    assert_type(s.state(a), uow.ObjectState)
    assert_type(s.is_dirty(a), bool)
    assert_type(s.dirty_fields(a), list[str])
    assert_type(s.original_value(a, "name"), Any)
    assert_type(s.has_changes(), bool)
    assert_type(s.what_changed(), dict[tuple[str, Any], dict[str, tuple[Any, Any]]])
    assert_type(s.stats(), uow.SessionStats)
    assert_type(s.stats().as_dict(), dict[str, int])
    assert_type(s.ensure_indexes(Author), list[str])
    assert_type(s.get_indexes(Author), dict[str, Any])
    assert_type(s.clear_collection(Author, Post), int)
    s.commit()
    s.rollback()
    s.close()


def sessions() -> None:
    with Session.connect("shop", "mongomock://") as s:
        assert_type(s, Session)
        with s.transaction() as t:
            assert_type(t, Session)

        def work(x: int) -> str:
            return str(x)

        assert_type(s.run_in_transaction(work, 3), str)
        assert_type(s.run_in_transaction(work, x=3), str)
        s.run_in_transaction(work, "3")  # type: ignore[arg-type]  # fn's own parameters
        s.run_in_transaction(work)  # type: ignore[call-arg]
        assert_type(s.closed, bool)
        assert_type(s.transactional, bool)
    script = Session.connect("shop", "mongomock://", echo=True, max_requests=100)
    script.close()


def service_layer() -> None:
    uow.configure("mongomock://", "shop", cache_size=100)

    @uow.unit_of_work
    def place(name: str) -> Author:
        s = uow.current_session()
        assert_type(s, Session)
        a = Author(name=name)
        s.add(a)
        return a

    @uow.unit_of_work(max_requests=10)
    def count() -> int:
        return uow.current_session().count(Author)

    assert_type(place("ann"), Author)
    assert_type(count(), int)
    with uow.unit_of_work() as s:
        assert_type(s, Session)


def update_operators() -> None:
    class Counter(Document):
        hits: int = field(default=0, on_update="$inc")
        peak: int = field(default=0, on_update="$max")
        seen: dt.datetime | None = field(default=None, on_update="$currentDate")
        tags: list[str] = field(factory=list[str], on_update="$addToSet")
        bad: int = field(default=0, on_update="$incr")  # type: ignore[call-overload]

    assert_type(Counter(hits=1).hits, int)
    chosen: uow.fields.UpdateOperator = "$min"
    unknown: uow.fields.UpdateOperator = "$mul"  # type: ignore[assignment]
    field(default=0, on_update=chosen)
    field(default=0, on_update=unknown)


def errors() -> None:
    try:
        documents()
    except uow.DuplicateKeyError as exc:
        assert_type(exc, uow.DuplicateKeyError)
    except uow.FlushError:
        pass
    except (uow.ValidationError, uow.DefinitionError, uow.NotFound, uow.MultipleFound):
        pass
    except (uow.FieldNotLoaded, uow.SessionClosedError, uow.NoActiveSession):
        pass
    except (uow.TooManyRequests, uow.TransactionError, uow.StaleDocumentError, uow.UowError):
        pass
