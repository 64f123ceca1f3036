"""Identity map with cache_size, inspection answers (dirty_fields, has_changes,
what_changed, original_value, state, stats) and error messages.

SPEC: "Eviction never loses a change: a document that is pending, dirty
(including in-place mutation) or deleted is never evicted, and a document the
user still holds stays the one identity."; "`dirty_fields(obj) -> list[str]`
(top-level attribute names, sorted)"; "`what_changed()` ... paths of attribute
names, dotted"; "Messages say what was wrong, with what, and what to do."
"""

from __future__ import annotations

import datetime
import gc
from typing import Any

import bson
import pytest

import uow
from uow import Document, ObjectState, Session, field

from ._h import Addr, Counter, Line, Person, Rec, stored


def _seed_people(db: Any, n: int = 6) -> list[bson.ObjectId]:
    with Session(db) as s:
        ps = [
            Person(name=f"p{i}", age=i, tags=["t"], addr=Addr(city="c"), prefs={"k": i})
            for i in range(n)
        ]
        s.add_all(ps)
    return [p.id for p in ps]


# ------------------------------------------------------------------ cache_size


@pytest.mark.parametrize("size", [0, 1])
def test_held_document_changed_after_eviction_is_flushed(db: Any, size: int) -> None:
    """A document the user holds, pushed out of the LRU by later loads, then
    changed (assigned and in place): the change is seen by has_changes, by an
    autoflushing query and written at commit."""
    ids = _seed_people(db)
    s = Session(db, cache_size=size)
    held = s.get(Person, ids[0])
    for i in ids[1:]:
        s.get(Person, i)
    gc.collect()
    held.age = 100
    held.tags.append("late")
    held.addr.city = "late"
    assert s.has_changes()
    assert s.dirty_fields(held) == ["addr", "age", "tags"]
    assert s.query(Person).filter(age=100).one() is held
    assert s.get(Person, ids[0]) is held
    s.commit()
    got = stored(db, held)
    assert (
        got["age"] == 100 and got["tags"] == ["t", "late"] and got["address"]["city"] == "late"
    ), got
    s.close()


@pytest.mark.parametrize("alias", ["list", "embedded", "dict"])
def test_alias_changed_after_document_dropped(db: Any, alias: str) -> None:
    """cache_size=0; the user keeps only a list / embedded document / dict of a
    loaded document and changes it after the document itself was let go of:
    the change is a change of that document (nothing is lost)."""
    ids = _seed_people(db, 3)
    s = Session(db, cache_size=0)
    p = s.get(Person, ids[0])
    part = getattr(p, {"list": "tags", "embedded": "addr", "dict": "prefs"}[alias])
    del p
    for i in ids[1:]:
        s.get(Person, i)
    gc.collect()
    if alias == "list":
        part.append("via-alias")
    elif alias == "embedded":
        part.city = "via-alias"
    else:
        part["via"] = 1
    assert s.has_changes(), f"{alias}: a change made through a held {alias} is not seen"
    s.commit()
    got = db.a15_person.find_one({"_id": ids[0]})
    assert (
        got["tags"] == ["t", "via-alias"]
        if alias == "list"
        else got["address"]["city"] == "via-alias"
        if alias == "embedded"
        else got["prefs"] == {"k": 0, "via": 1}
    ), f"{alias}: stored {got}"
    s.close()


@pytest.mark.parametrize("size", [0, 2])
def test_loop_over_query_changing_each_document(db: Any, size: int) -> None:
    ids = _seed_people(db, 8)
    s = Session(db, cache_size=size)
    for p in s.query(Person).sort("age"):
        p.visits += p.age
        p.tags.append(f"x{p.age}")
        p.prefs.pop("k")
    del p
    gc.collect()
    assert s.stats().pending_updates == 8, s.stats().as_dict()
    s.commit()
    for i, oid in enumerate(ids):
        got = db.a15_person.find_one({"_id": oid})
        assert got["visits"] == i and got["tags"] == ["t", f"x{i}"] and got["prefs"] == {}, got
    s.close()


def test_deleted_and_pending_never_evicted(db: Any) -> None:
    ids = _seed_people(db, 4)
    s = Session(db, cache_size=0)
    s.delete(s.get(Person, ids[0]))
    s.add(Person(name="new"))
    gc.collect()
    for i in ids[1:]:
        s.get(Person, i)
    gc.collect()
    st = s.stats()
    assert st.pending_deletes == 1 and st.pending_inserts == 1, st.as_dict()
    s.commit()
    assert db.a15_person.find_one({"_id": ids[0]}) is None
    assert db.a15_person.find_one({"name": "new"}) is not None
    s.close()


# ------------------------------------------------------------------ inspection


NO_CHANGE = {
    "assign_same": lambda p: setattr(p, "age", p.age),
    "append_then_pop": lambda p: (p.tags.append("x"), p.tags.pop()),
    "dict_set_then_del": lambda p: (p.prefs.__setitem__("z", 1), p.prefs.pop("z")),
    "embedded_assign_equal": lambda p: setattr(p, "addr", Addr(city="c")),
    "embedded_change_back": lambda p: (setattr(p.addr, "city", "x"), setattr(p.addr, "city", "c")),
    "inc_and_back": lambda p: (
        setattr(p, "visits", p.visits + 3),
        setattr(p, "visits", p.visits - 3),
    ),
    "list_assign_equal_copy": lambda p: setattr(p, "tags", list(p.tags)),
}


@pytest.mark.parametrize("case", list(NO_CHANGE))
def test_net_no_change_is_not_dirty_and_sends_nothing(db: Any, case: str) -> None:
    ids = _seed_people(db, 1)
    with Session(db) as s:
        p = s.get(Person, ids[0])
        NO_CHANGE[case](p)
        assert s.dirty_fields(p) == [], f"{case}: {s.dirty_fields(p)}"
        assert not s.is_dirty(p) and not s.has_changes(), case
        assert s.what_changed() == {}, s.what_changed()
        assert s.stats().pending_updates == 0
        assert s.flush().round_trips == 0, case


class Measure(Document):
    __collection__ = "a15_measure"
    v: float = 0.0
    at: datetime.datetime | None = None


def test_datetime_equal_to_stored_millisecond_is_not_a_change(db: Any) -> None:
    with Session(db) as s:
        m = Measure(v=1.5, at=datetime.datetime(2024, 1, 1, 0, 0, 0, 123000))
        s.add(m)
    with Session(db) as s:
        m2 = s.get(Measure, m.id)
        m2.at = datetime.datetime(2024, 1, 1, 0, 0, 0, 123456)  # same millisecond
        assert s.dirty_fields(m2) == [], s.dirty_fields(m2)
        assert s.flush().round_trips == 0


def test_int_given_to_float_field_is_stored_as_double(db: Any) -> None:
    """docs/documents.md, Types: "`float` | `float`, or an `int` (not `bool`) |
    double". An int given to a float field is stored as a double, so
    assigning 3 over a stored 3.0 is no change."""
    with Session(db) as s:
        m = Measure(v=3)
        s.add(m)
    raw = db.a15_measure.find_one({"_id": m.id})
    assert isinstance(raw["v"], float), (
        f"Measure(v=3) stored v as {type(raw['v']).__name__} {raw['v']!r}, not a double"
    )
    with Session(db) as s:
        m2 = s.get(Measure, m.id)
        m2.v = 3
        assert s.dirty_fields(m2) == [], (
            f"3 assigned over a stored 3.0 is a change: {s.what_changed()}"
        )
    raw = db.a15_measure.find_one({"_id": m.id})
    assert isinstance(raw["v"], float), f"stored v is now {type(raw['v']).__name__} {raw['v']!r}"


def test_inspection_uses_attribute_names(db: Any) -> None:
    ids = _seed_people(db, 1)
    with Session(db) as s:
        p = s.get(Person, ids[0])
        p.email = "new@x.io"  # stored as "mail"
        p.addr.zip = "9999"  # stored as "address.postcode"
        p.prefs["k"] = 42
        p.visits += 2
        assert s.dirty_fields(p) == ["addr", "email", "prefs", "visits"]
        wc = s.what_changed()
        assert set(wc) == {("a15_person", p.id)}, wc
        paths = wc[("a15_person", p.id)]
        assert paths == {
            "email": ("", "new@x.io"),
            "addr.zip": (None, "9999"),
            "prefs.k": (0, 42),
            "visits": (0, 2),
        }, paths
        assert s.original_value(p, "email") == ""
        assert s.original_value(p, "addr") == Addr(city="c")
        assert s.original_value(p, "visits") == 0
    got = stored(db, p)
    assert got["mail"] == "new@x.io" and got["address"]["postcode"] == "9999", got


def test_what_changed_and_pending_counts(db: Any) -> None:
    ids = _seed_people(db, 3)
    s = Session(db)
    a, b, c = (s.get(Person, i) for i in ids)
    new = Person(name="new")
    s.add(new)
    a.age = 50
    s.update(a)  # explicit update of a dirty document: still one per document
    s.update(b)  # explicit update of a clean document
    s.delete(c)
    wc = s.what_changed()
    assert ("a15_person", new.id) not in wc, "what_changed lists persistent documents only"
    assert ("a15_person", c.id) not in wc
    assert ("a15_person", a.id) in wc
    st = s.stats()
    assert (st.pending_inserts, st.pending_updates, st.pending_deletes) == (1, 2, 1), st.as_dict()
    assert st.identity_map_size == 4, st.as_dict()
    assert s.has_changes()
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted) == (1, 2, 1), r
    assert not s.has_changes()
    s.commit()
    s.close()


def test_has_changes_for_each_kind_alone(db: Any) -> None:
    ids = _seed_people(db, 1)
    for kind in ("insert", "delete", "update", "in_place"):
        s = Session(db)
        p = s.get(Person, ids[0])
        assert not s.has_changes()
        if kind == "insert":
            s.add(Person(name="x"))
        elif kind == "delete":
            s.delete(p)
        elif kind == "update":
            s.update(p)
        else:
            p.tags.append("q")
        assert s.has_changes(), kind
        s.rollback()
        assert not s.has_changes(), kind
        s.close()


def test_state_lifecycle(db: Any) -> None:
    s = Session(db)
    p = Person(name="life")
    assert s.state(p) is ObjectState.TRANSIENT
    s.add(p)
    assert s.state(p) is ObjectState.PENDING
    s.delete(p)  # cancels the insert
    assert s.state(p) is ObjectState.TRANSIENT, s.state(p)
    assert s.flush().inserted == 0
    s.add(p)
    s.flush()
    assert s.state(p) is ObjectState.PERSISTENT
    s.expunge(p)
    assert s.state(p) is ObjectState.DETACHED
    s.add(p)
    assert s.state(p) is ObjectState.PERSISTENT
    s.delete(p)
    assert s.state(p) is ObjectState.DELETED
    s.flush()
    assert s.state(p) is ObjectState.DETACHED
    q = Person(name="q")
    s.add(q)
    s.clear_queue()
    assert s.state(q) is ObjectState.TRANSIENT
    s.commit()
    other = Session(db)
    r = Person(name="r")
    other.add(r)
    other.commit()
    assert s.state(r) is ObjectState.DETACHED, "a document of another session is DETACHED here"
    other.close()
    s.close()
    assert db.a15_person.count_documents({}) == 1


def test_rollback_pending_insert_is_transient_and_dirty_reverted(db: Any) -> None:
    ids = _seed_people(db, 1)
    s = Session(db)
    p = s.get(Person, ids[0])
    p.tags.append("x")
    p.addr.city = "y"
    new = Person(name="n")
    s.add(new)
    s.rollback()
    assert s.state(new) is ObjectState.TRANSIENT
    assert p.tags == ["t"] and p.addr.city == "c", (p.tags, p.addr)
    assert not s.has_changes()
    s.close()


# ------------------------------------------------------------------ errors


def test_in_place_wrong_value_refused_at_flush_with_path(db: Any) -> None:
    ids = _seed_people(db, 1)
    s = Session(db)
    p = s.get(Person, ids[0])
    p.tags.append(3)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError) as e:
        s.flush()
    msg = str(e.value)
    assert "Person.tags" in msg and "str" in msg and "int" in msg and "3" in msg, msg
    p.tags.pop()
    assert s.flush().round_trips == 0
    s.close()


def test_wrong_embedded_element_named_at_flush(db: Any) -> None:
    with Session(db) as s0:
        r = Rec(code="e", lines=[Line(sku="a")])
        s0.add(r)
    s = Session(db)
    r2 = s.get(Rec, r.id)
    r2.lines.append("not a line")  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError) as e:
        s.flush()
    msg = str(e.value)
    assert "Rec.lines" in msg and "Line" in msg and "str" in msg, msg
    r2.lines.pop()
    assert s.flush().round_trips == 0
    s.close()


def test_assignment_to_embedded_in_list_refused(db: Any) -> None:
    r = Rec(code="x", lines=[Line(sku="a")])
    with pytest.raises(uow.ValidationError) as e:
        r.lines[0].qty = "7"  # type: ignore[assignment]
    msg = str(e.value)
    assert "Line.qty" in msg and "int" in msg and "str" in msg, msg
    with pytest.raises(uow.ValidationError) as e2:
        Rec(code="x", prefs={"a": "b"})  # type: ignore[dict-item]
    assert "Rec.prefs" in str(e2.value), str(e2.value)


def test_duplicate_key_names_class_id_value(db: Any) -> None:
    with Session(db) as s0:
        s0.add(Counter(code="dup"))
    s = Session(db)
    c = Counter(code="dup")
    s.add(c)
    with pytest.raises(uow.DuplicateKeyError) as e:
        s.flush()
    msg = str(e.value)
    assert "Counter" in msg and str(c.id) in msg and "dup" in msg, msg
    assert e.value.document is c
    c.code = "dup2"
    s.commit()
    assert db.a15_counter.count_documents({}) == 2
    s.close()


def test_session_closed_and_no_active_session_messages(db: Any) -> None:
    s = Session(db)
    s.close()
    with pytest.raises(uow.SessionClosedError) as e:
        s.query(Person).all()
    assert "closed" in str(e.value)
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    with Session(db) as s2:
        assert uow.current_session() is s2
        with Session(db) as s3:
            assert uow.current_session() is s3
        assert uow.current_session() is s2


def test_definition_errors_name_class_and_field() -> None:
    with pytest.raises(uow.DefinitionError) as e:

        class BadDot(Document):
            __collection__ = "a15_bad"
            price: int = field(default=0, db_name="a.b")

    assert "BadDot.price" in str(e.value) and "a.b" in str(e.value), str(e.value)
    with pytest.raises(uow.DefinitionError) as e2:

        class BadOp(Document):
            __collection__ = "a15_bad2"
            label: str = field(default="", on_update="$inc")

    assert "BadOp.label" in str(e2.value) and "$inc" in str(e2.value), str(e2.value)
    with pytest.raises(uow.DefinitionError) as e3:

        class BadEmb(uow.Embedded):
            x: int = field(default=0, db_name="$x")

    assert "BadEmb.x" in str(e3.value), str(e3.value)
