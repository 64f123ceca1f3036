"""Refs inside embedded documents held in lists, a custom id type with upsert
and tracked/untracked updates, $currentDate inside an embedded whose key is
present, untracked update() of push/addToSet fields."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

import uow
from uow import Document, Embedded, Ref, field

from ._h import assert_recent, insert_raw, reload, stored


class ExAuthor(Document):
    __collection__ = "ex_authors"
    name: str


class ExCredit(Embedded):
    who: Ref[ExAuthor] | None = None
    many: list[Ref[ExAuthor]] = field(factory=list)


class ExBook(Document):
    __collection__ = "ex_books"
    title: str
    credits: list[ExCredit] = field(factory=list)


def _rid(v: Any) -> Any:
    return getattr(v, "id", v)


@pytest.mark.parametrize("put", ["document", "id"])
def test_ref_list_inside_list_element_in_place(db: Any, put: str) -> None:
    """SPEC lets a container of refs accept a document or an id put in place by
    mutation (stored as the id) or refuse it at flush; uow accepts both."""
    aid = insert_raw(db, "ex_authors", {"name": "ann"})
    bid = insert_raw(db, "ex_books", {"title": "t", "credits": [{"who": None, "many": []}]})
    s = uow.Session(db)
    a = s.get(ExAuthor, aid)
    b = s.get(ExBook, bid)
    value = a if put == "document" else aid
    b.credits[0].many.append(value)
    s.commit()
    raw = stored(db, "ex_books", bid)
    assert raw["credits"] == [{"who": None, "many": [aid]}]
    assert [_rid(x) for x in b.credits[0].many] == [aid]
    again = reload(db, ExBook, bid)
    assert [_rid(x) for x in again.credits[0].many] == [aid]


def test_ref_field_of_list_element_assigned_document(db: Any) -> None:
    aid = insert_raw(db, "ex_authors", {"name": "ann"})
    bid = insert_raw(db, "ex_books", {"title": "t", "credits": [{"who": None, "many": []}]})
    s = uow.Session(db)
    a = s.get(ExAuthor, aid)
    b = s.get(ExBook, bid)
    b.credits[0].who = a
    b.credits.append(ExCredit(who=a, many=[a]))
    s.commit()
    raw = stored(db, "ex_books", bid)
    assert raw["credits"] == [{"who": aid, "many": []}, {"who": aid, "many": [aid]}]
    assert s.dereference(b.credits[1].who) is a


class ExCounter(Document):
    __collection__ = "ex_counters"
    id: str
    hits: int = field(default=0, on_update="$inc")
    seen: list[str] = field(factory=list, on_update="$push")
    uniq: list[str] = field(factory=list, on_update="$addToSet")
    peak: int = field(default=0, on_update="$max")


def test_str_id_counter_upsert_push_add_to_set(db: Any) -> None:
    s = uow.Session(db)
    s.update(ExCounter(id="page:1", hits=1, seen=["a"], uniq=["x"], peak=3), upsert=True)
    s.update(ExCounter(id="page:1", hits=2, seen=["b"], uniq=["x", "y"], peak=2), upsert=True)
    s.commit()
    raw = stored(db, "ex_counters", "page:1")
    assert raw == {"_id": "page:1", "hits": 3, "seen": ["a", "b"], "uniq": ["x", "y"], "peak": 3}
    s.close()
    again = reload(db, ExCounter, "page:1")
    assert again.hits == 3


def test_str_id_tracked_and_untracked_update_in_one_session(db: Any) -> None:
    insert_raw(db, "ex_counters", {"_id": "p", "hits": 1, "seen": [], "uniq": [], "peak": 0})
    s = uow.Session(db)
    tracked = s.get(ExCounter, "p")
    tracked.hits += 1
    s.update(ExCounter(id="p", hits=10))
    s.commit()
    raw = stored(db, "ex_counters", "p")
    assert raw["hits"] == 12
    # the tracked object now differs from the store by the untracked update;
    # refresh reads the server's values
    s.refresh(tracked)
    assert tracked.hits == 12
    s.close()


class ExStampInner(Embedded):
    label: str = ""
    at: datetime.datetime | None = field(default=None, on_update="$currentDate")


class ExStamped(Document):
    __collection__ = "ex_stamped"
    name: str
    inner: ExStampInner = field(factory=ExStampInner)


def test_current_date_inside_embedded_with_key_present(db: Any) -> None:
    old = datetime.datetime(2000, 1, 1)
    doc_id = insert_raw(db, "ex_stamped", {"name": "n", "inner": {"label": "", "at": old}})
    s = uow.Session(db)
    d = s.get(ExStamped, doc_id)
    d.name = "changed"
    s.commit()
    raw = stored(db, "ex_stamped", doc_id)
    assert raw["name"] == "changed"
    assert raw["inner"]["label"] == ""
    assert_recent(raw["inner"]["at"])
    # "reloaded on its next read": memory equals the store
    assert d.inner.at == raw["inner"]["at"]
    s.close()


def test_current_date_top_level_after_insert_and_each_update(db: Any) -> None:
    class ExTop(Document):
        __collection__ = "ex_top"
        name: str
        at: datetime.datetime | None = field(default=None, on_update="$currentDate")

    s = uow.Session(db)
    d = ExTop(name="a")
    s.add(d)
    s.commit()
    d.name = "b"
    s.commit()
    first = stored(db, "ex_top", d.id)["at"]
    assert isinstance(first, datetime.datetime)
    time.sleep(0.01)
    d.name = "c"
    s.commit()
    second = stored(db, "ex_top", d.id)["at"]
    assert second > first
    assert_recent(second)
    # "reloaded on its next read": memory equals the store
    assert d.at == second
    s.close()


def test_current_date_inside_embedded_when_the_embedded_itself_changes(db: Any) -> None:
    old = datetime.datetime(2000, 1, 1)
    doc_id = insert_raw(db, "ex_stamped", {"name": "n", "inner": {"label": "", "at": old}})
    s = uow.Session(db)
    d = s.get(ExStamped, doc_id)
    d.inner.label = "changed"
    s.commit()
    raw = stored(db, "ex_stamped", doc_id)
    assert raw["inner"]["label"] == "changed"
    assert_recent(raw["inner"]["at"])
    assert d.inner.at == raw["inner"]["at"]
    s.close()
