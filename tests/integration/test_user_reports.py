"""What a new user hit (#19): field names that clashed with parameters, and errors
that did not say what was meant. Each message says what was wrong, with what, and
what to do."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, Ref, Session, field


class Note(Document):
    __collection__ = "notes_19"
    meta: str = ""
    cls: str = ""
    name: str = ""


class Stats(Embedded):
    scores: list[int] = field(factory=list)


class Writer(Document):
    __collection__ = "writers_19"
    name: str


class Article(Document):
    __collection__ = "articles_19"
    title: str | None = None
    author: Ref[Writer] | None = None
    stats: Stats | None = None


@pytest.fixture
def s(mongomock_db: Any) -> Any:
    session = Session(mongomock_db)
    yield session
    session.close()


def test_fields_named_meta_and_cls_are_lookups_everywhere(s: Session) -> None:
    s.add_all([Note(meta="m", cls="c"), Note(meta="other")])
    s.flush()
    assert [n.meta for n in s.query(Note).filter(meta="m")] == ["m"]
    assert [n.cls for n in s.filter(Note, cls="c")] == ["c"]
    assert s.count(Note, meta="other") == 1
    assert s.count(Note, cls="c", meta="m") == 1
    assert s.remove_query(Note).filter(meta="m").execute() == 1


def test_a_field_named_self_is_refused_with_the_fix() -> None:
    with pytest.raises(uow.DefinitionError, match=r"Bad\.self: .*field\(db_name='self'\)"):

        class Bad(Document):
            self: str

    class Good(Document):
        self_: str = field(db_name="self")

    assert Good(self_="x").to_bson()["self"] == "x"


def test_an_unknown_query_method_names_the_ones_that_exist() -> None:
    with pytest.raises(AttributeError, match=r"Article\.title has no method 'like'.*startswith"):
        Article.title.like("p%")  # type: ignore[union-attr]
    with pytest.raises(AttributeError, match=r"no field or method 'nope'.*in_, nin"):
        _ = Article.title.nope  # type: ignore[union-attr]


def test_a_field_of_a_referenced_document_is_not_queryable_and_says_why() -> None:
    with pytest.raises(
        AttributeError, match=r"Article\.author is a reference \(Ref\[Writer\]\).*query Writer"
    ):
        _ = Article.author.name  # type: ignore[union-attr]


def test_reading_a_field_through_a_ref_points_at_dereference(s: Session) -> None:
    w = Writer(name="w")
    a = Article(author=w)
    assert a.author is not None
    with pytest.raises(AttributeError, match=r"session\.dereference\(ref\).*Writer\.name"):
        _ = a.author.name  # type: ignore[attr-defined]
    assert not hasattr(a.author, "__html__")  # dunder probes stay plain AttributeErrors


def test_a_dotted_lookup_suggests_double_underscores(s: Session) -> None:
    with pytest.raises(uow.ValidationError, match=r"stats__scores=\.\.\."):
        s.filter(Article, **{"stats.scores": 5})
    assert s.filter(Article, stats__scores=5) == []


def test_an_operator_as_a_value_suggests_the_lookup_and_expression(s: Session) -> None:
    with pytest.raises(
        uow.ValidationError, match=r"title__ne=value.*uow\.q\(Article\.title\) != value"
    ):
        s.filter(Article, title={"$ne": None})
    with pytest.raises(uow.ValidationError, match=r"title__in=value.*\.in_\(\[\.\.\.\]\)"):
        s.filter(Article, title={"$in": ["a"]})


def test_the_mongomock_client_behind_a_session_is_its_databases_client() -> None:
    # docs/testing.md: a plain mongomock.MongoClient() has a store of its own; the
    # client holding the session's data is session.database.client.
    with Session.connect("reach_19", "mongomock://") as s:
        s.add(Writer(name="ann"))
        s.flush()
        client = s.database.client
        assert client["reach_19"]["writers_19"].count_documents({}) == 1


def test_the_echo_of_an_update_names_the_document_it_targets(
    mongomock_db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = Session(mongomock_db, echo=True)
    try:
        w = Writer(name="ann")
        s.add(w)
        s.flush()
        w.name = "bob"
        with caplog.at_level("INFO", logger="uow"):
            s.flush()
    finally:
        s.close()
    updates = [r.getMessage() for r in caplog.records if r.getMessage().startswith("update ")]
    assert len(updates) == 1
    assert f"'q': {{'_id': {w.id!r}}}" in updates[0]
    assert "'u': {'$set': {'name': 'bob'}}" in updates[0]
