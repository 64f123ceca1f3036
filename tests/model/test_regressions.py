"""Plain regression tests for what the model-based test (``test_stateful.py``) found.

One test per distinct failure, each the shrunk program hypothesis printed,
written out by hand, with the stored document checked by raw pymongo. They run
on every lane unless the failure is about transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bson
import pytest

from tests._blackbox import assert_stored_is_memory
from tests._hash_order import pair_whose_set_order_moves
from uow import ObjectState, Session

from ._models import MdDoc, MdLine, MdOther


@pytest.fixture
def sessions(db: Any) -> Iterator[list[Session]]:
    opened: list[Session] = []
    yield opened
    for s in opened:
        s.close()


def _open(db: Any, opened: list[Session]) -> Session:
    s = Session(db)
    opened.append(s)
    return s


FULL: dict[str, Any] = {
    "name": "a",
    "n": 0,
    "visits": 0,
    "best": 0,
    "log": [],
    "kinds": [],
    "tags": [],
    "labels": [],
    "lines": [],
    "by_key": {},
    "by_sku": {},
    "outer": {"inner": {"n": 0, "words": []}, "label": "a"},
    "refs": [],
    "extra_n": 0,
    "extra_list": [],
    "extra_emb": {"n": 0, "words": []},
}


def _insert(db: Any, *, without: tuple[str, ...] = (), **values: Any) -> bson.ObjectId:
    doc: dict[str, Any] = {k: v for k, v in FULL.items() if k not in without}
    doc.update(values)
    doc["_id"] = bson.ObjectId()
    db.md_docs.insert_one(doc)
    return doc["_id"]


def _stored(db: Any, id_: Any) -> dict[str, Any]:
    found = db.md_docs.find_one({"_id": id_})
    assert found is not None
    return dict(found)


def _other(db: Any) -> bson.ObjectId:
    oid = bson.ObjectId()
    db.md_others.insert_one({"_id": oid, "name": "other"})
    return oid


# ------------------------------------------------- 1. containers of refs, by mutation


@pytest.mark.parametrize("what", ["id", "document"])
def test_ref_list_of_a_loaded_document_takes_an_appended_id_or_document(
    db: Any, sessions: list[Session], what: str
) -> None:
    """SPEC: ``list[Ref[X]]`` accepts a document or an id put in place by mutation.

    Found as: ``o1 = s.get(MdDoc, id0); o1.refs.append(other_id0); s.commit()``.
    Today the flush raises ``AttributeError: 'ObjectId' object has no attribute
    'cls'`` (``'MdOther' object…`` for a document): the dump of a ref list
    assumes every element is a ``Ref``.
    """
    oid = _other(db)
    doc_id = _insert(db)
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    obj.refs.append(oid if what == "id" else s.get(MdOther, oid))  # type: ignore[arg-type]
    s.commit()
    assert _stored(db, doc_id)["refs"] == [oid]


def test_clear_cache_keeps_a_document_with_a_ref_appended_and_it_is_stored(
    db: Any, sessions: list[Session]
) -> None:
    """Found as: ``o1 = s.get(MdDoc, id0); o1.refs.append(s.get(MdOther, other_id0));
    s.clear_cache()``: today clear_cache raises AttributeError ('MdOther' object
    has no attribute 'cls') while asking whether o1 is dirty."""
    oid = _other(db)
    doc_id = _insert(db)
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    obj.refs.append(s.get(MdOther, oid))  # type: ignore[arg-type]
    s.clear_cache()  # o1 has an unflushed change: it stays
    s.commit()
    assert _stored(db, doc_id)["refs"] == [oid]


@pytest.mark.parametrize("what", ["id", "document"])
def test_ref_list_of_a_pending_document_takes_an_appended_id_or_document(
    db: Any, sessions: list[Session], what: str
) -> None:
    """Found as: ``o1 = MdDoc(name='a'); s.add(o1); o1.refs.append(other_id0);
    s.commit()``. Today the insert refuses it: ``ValidationError: MdDoc.refs[0]:
    expected Ref[MdOther], a MdOther or its id, got ObjectId``."""
    oid = _other(db)
    s = _open(db, sessions)
    obj = MdDoc(name="a")
    s.add(obj)
    obj.refs.append(oid if what == "id" else s.get(MdOther, oid))  # type: ignore[arg-type]
    s.commit()
    assert _stored(db, obj.id)["refs"] == [oid]


# ------------------------------------------------ 2. add() of a detached document


@pytest.mark.parametrize("how", ["expunge", "clear_cache", "closed session"])
def test_add_of_a_detached_document_writes_the_changes_made_while_detached(
    db: Any, sessions: list[Session], how: str
) -> None:
    """SPEC, Unit of work: adding a DETACHED document tracks it again with the
    snapshot it had when it was last stored; changes made while it was detached
    are written at the next flush.

    Found as: ``o1 = s.get(MdDoc, id0); s.clear_cache(); o1.n += 1; s.add(o1);
    s.commit()``: today the stored ``n`` stays 0 (the change is lost silently).
    """
    doc_id = _insert(db)
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    if how == "expunge":
        s.expunge(obj)
    elif how == "clear_cache":
        s.clear_cache()
    else:
        s.close()
        s = _open(db, sessions)
    obj.n += 1
    obj.tags.append("b")
    s.add(obj)
    s.commit()
    stored = _stored(db, doc_id)
    assert (stored["n"], stored["tags"]) == (1, ["b"])


# --------------------------------------- 3. a key missing from the stored document


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("extra_n", lambda o: setattr(o, "extra_n", o.extra_n + 1), 6),
        ("extra_list", lambda o: o.extra_list.append("b"), ["a", "b"]),
        (
            "extra_emb",
            lambda o: setattr(o.extra_emb, "n", o.extra_emb.n + 1),
            {"n": 2, "words": ["w"]},
        ),
        ("extra_n", lambda o: setattr(o, "extra_n", 0), 0),
        (
            "outer",
            lambda o: setattr(o.outer.inner, "n", 1),
            {"inner": {"n": 1, "words": []}, "label": ""},
        ),
    ],
    ids=[
        "inc-from-default-5",
        "append-to-default-list",
        "embedded-default",
        "assign-inc-field",
        "nested-embedded-default",
    ],
)
def test_first_change_of_a_missing_key_sets_the_whole_value(
    db: Any, sessions: list[Session], name: str, change: Any, expected: Any
) -> None:
    """SPEC, the one rule: a key missing from the stored document (a field added
    to the class later, with a default) is known as missing: its first change is
    a ``$set`` of its whole value.

    Found as: ``db.md_docs.insert_one({... no 'extra_list' ...}); o1 =
    s.query(MdDoc).all()[0]; o1.extra_list.append('a'); s.commit()``: stored
    ``['a']``, expected ``['a', 'a']``. Today the change is sent relative to the
    default as if it were stored: ``$inc`` 1 stores 1 (not 6), ``$push`` stores
    ``['b']``, ``$set extra_emb.n`` stores ``{'n': 2}`` without ``words``.
    """
    doc_id = _insert(db, without=(name,))
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    change(obj)
    s.commit()
    assert _stored(db, doc_id)[name] == expected


# ------------------------------------------- 4. an unloaded field that is assigned


@pytest.mark.parametrize(
    ("name", "value"),
    [("visits", 3), ("extra_n", 0), ("best", 0)],
    ids=["inc", "inc-default-5", "max"],
)
def test_assigning_a_field_not_loaded_sets_it_whatever_its_operator(
    db: Any, sessions: list[Session], name: str, value: int
) -> None:
    """SPEC, the one rule: a field not loaded (``fields(...)``) that is assigned is
    written with ``$set`` of the assigned value, whatever its ``on_update``.

    Found (SecantusDB lane) as: ``o1 = MdDoc(name='a'); s.add(o1); s.commit();
    s.close(); s = Session(db); o2 = s.query(MdDoc).fields('name').all()[0];
    o2.extra_n = 0; s.commit()``: stored 5, expected 0. Today the declared
    operator is used on the assigned value: ``visits = 3`` over a stored 4 is
    sent as ``$inc 3`` (stores 7), ``best = 0`` as ``$max 0`` (stores 4).
    """
    doc_id = _insert(db, visits=4, extra_n=4, best=4)
    s = _open(db, sessions)
    (obj,) = s.query(MdDoc).fields("name").all()
    setattr(obj, name, value)
    s.commit()
    assert _stored(db, doc_id)[name] == value


# ------------------------------------------ 5. a change inside a list element


LINE: dict[str, Any] = {
    "sku": "a",
    "qty": 0,
    "tags": [],
    "hits": 0,
    "peak": 3,
    "log": [],
    "kinds": [],
}


def test_a_change_inside_a_list_element_is_sent_on_its_positional_path(
    db: Any, sessions: list[Session]
) -> None:
    """SPEC, the one rule: a change inside an element of a list is sent on the
    element's positional path (``lines.0.qty``) as long as the list kept its
    length and order, so another client's change to another path stays.

    Found as: ``o1 = s.query(MdDoc).all()[0]``; another client
    ``update_one({'_id': id0}, {'$inc': {'lines.0.hits': 1}})``; ``o1.lines[0].qty
    += 1; s.commit()``: the other client's ``hits`` is lost. Today any change
    inside ``lines`` is sent as ``$set`` of the whole list.
    """
    doc_id = _insert(db, lines=[dict(LINE), dict(LINE, sku="b")])
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    db.md_docs.update_one({"_id": doc_id}, {"$inc": {"lines.0.hits": 1, "lines.1.qty": 5}})
    obj.lines[0].qty += 1
    obj.lines[1].tags.append("x")
    s.commit()
    lines = _stored(db, doc_id)["lines"]
    assert [(line["qty"], line["hits"], line["tags"]) for line in lines] == [
        (1, 1, []),
        (5, 0, ["x"]),
    ]


# ------------------------- 6. declared operators inside embedded documents at depth


@pytest.mark.parametrize("where", ["by_sku", "lines"])
def test_an_inc_field_of_an_embedded_document_at_depth_is_sent_as_inc(
    db: Any, sessions: list[Session], where: str
) -> None:
    """SPEC, the one rule: a declared ``on_update`` applies wherever the field
    lives: an embedded ``$inc`` field in a list element or a dict value is sent
    as ``$inc`` on its path (``lines.0.hits``, ``by_sku.a.hits``).

    Found as: ``o1 = s.get(MdDoc, id0)``; another client ``$inc``s
    ``by_sku.a.hits`` (or ``lines.0.hits``) by 2; ``o1.by_sku['a'].hits += 1;
    s.commit()``: stored 1, expected 3. Today ``by_sku.a.hits`` is sent as
    ``$set`` (and ``lines`` as ``$set`` of the whole list).
    """
    doc_id = _insert(db, lines=[dict(LINE)], by_sku={"a": dict(LINE)})
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    path = "by_sku.a.hits" if where == "by_sku" else "lines.0.hits"
    db.md_docs.update_one({"_id": doc_id}, {"$inc": {path: 2}})
    element = obj.by_sku["a"] if where == "by_sku" else obj.lines[0]
    element.hits += 1
    s.commit()
    stored = _stored(db, doc_id)
    element_stored = stored["by_sku"]["a"] if where == "by_sku" else stored["lines"][0]
    assert element_stored["hits"] == 3


@pytest.mark.parametrize("where", ["by_sku", "lines"])
def test_a_max_field_of_an_embedded_document_at_depth_is_sent_as_max(
    db: Any, sessions: list[Session], where: str
) -> None:
    """The same for ``$max``, found without any other client: ``o1 =
    s.get(MdDoc, id0); o1.by_sku['a'].peak = 1; s.commit()`` over a stored peak
    of 3 stores 1 today (sent as ``$set by_sku.a.peak``); ``$max`` keeps 3."""
    doc_id = _insert(db, lines=[dict(LINE)], by_sku={"a": dict(LINE)})
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    element = obj.by_sku["a"] if where == "by_sku" else obj.lines[0]
    element.peak = 1
    s.commit()
    stored = _stored(db, doc_id)
    element_stored = stored["by_sku"]["a"] if where == "by_sku" else stored["lines"][0]
    assert element_stored["peak"] == 3


def test_a_list_changed_inside_and_appended_to_keeps_both_operators(
    db: Any, sessions: list[Session]
) -> None:
    """docs/flush.md, rule 3: a list whose old elements stayed in place, changed
    inside and appended to, is sent on positional paths with each field's
    operator, then ``$push``: another client's ``$inc`` inside stays, and a
    ``$max`` field keeps the larger value.

    Found by the long profile (the model expected the whole list): ``o1 =
    s.get(MdDoc, id0)``; another client ``$inc``s ``lines.0.hits``;
    ``o1.lines = [MdLine(peak=0, hits=1), MdLine(sku='b')]``; ``s.commit()``.
    """
    doc_id = _insert(db, lines=[dict(LINE)])
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    db.md_docs.update_one({"_id": doc_id}, {"$inc": {"lines.0.hits": 2}})
    first = type(obj.lines[0])(**dict(LINE, peak=0, hits=1))
    obj.lines = [first, type(first)(**dict(LINE, sku="b"))]
    s.commit()
    lines = _stored(db, doc_id)["lines"]
    assert [(line["sku"], line["hits"], line["peak"]) for line in lines] == [
        ("a", 3, 3),
        ("b", 0, 3),
    ]
    # Memory differs where the declared operators say so (another client's
    # $inc; $max keeps the larger), and only there.
    stored = _stored(db, doc_id)
    assert {k: v for k, v in stored.items() if k != "lines"} == {
        k: v for k, v in obj.to_bson().items() if k != "lines"
    }


def test_a_list_whose_elements_moved_is_set_whole(db: Any, sessions: list[Session]) -> None:
    """SPEC, the one rule: a list that lost or reordered elements is set whole,
    so no element's ``$max`` is taken against another element's stored value.

    Found by the long profile (the model expected a ``$max`` per position):
    lines [peak 0, peak 1]; ``o1.lines.pop(0); o1.lines.append(MdLine(peak=0))``;
    ``s.commit()`` stores [peak 1, peak 0], what memory holds.
    """
    doc_id = _insert(db, lines=[dict(LINE, peak=0), dict(LINE, peak=1)])
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    obj.lines.pop(0)
    obj.lines.append(type(obj.lines[0])(**dict(LINE, peak=0)))
    s.commit()
    assert [line["peak"] for line in _stored(db, doc_id)["lines"]] == [1, 0]
    assert_stored_is_memory(db, obj)


# ------------------- 7. rollback of a document inserted and deleted in a transaction


@pytest.mark.transactions
def test_rollback_of_an_insert_then_delete_in_one_transaction_leaves_a_usable_session(
    db: Any, sessions: list[Session]
) -> None:
    """SPEC, rollback: documents first inserted in the aborted transaction become
    TRANSIENT; the session goes on.

    Found (SecantusDB lane) as: ``o1 = MdDoc(name='a'); s.add(o1); s.flush();
    s.delete(o1); s.flush(); s.rollback(); s.commit()``: today the commit fails
    with an internal ``AssertionError`` (``_update_op``: ``assert old is not
    None``): o1 is left tracked as persistent without a snapshot, and every later
    flush of the session fails the same way.
    """
    from uow import ObjectState

    s = _open(db, sessions)
    obj = MdDoc(name="a")
    s.add(obj)
    s.flush()
    s.delete(obj)
    s.flush()
    s.rollback()
    assert s.state(obj) is ObjectState.TRANSIENT
    other = MdDoc(name="b")
    s.add(other)
    s.commit()
    assert [doc["name"] for doc in db.md_docs.find()] == ["b"]


# --------- 8. rollback of a partial document that a later query filled in


@pytest.mark.transactions
def test_rollback_puts_back_the_committed_values_of_fields_a_later_query_filled_in(
    db: Any, sessions: list[Session]
) -> None:
    """SPEC, Transactions: after ``rollback()`` every tracked document reads what
    the database holds, "never left with aborted values or with defaults".

    Found (SecantusDB lane) as: ``o2 = s.query(MdDoc).fields('name').all()[0];
    s.query(MdDoc).all()`` (fills o2 in); ``o2.n += 1; s.flush(); s.rollback()``:
    today o2.outer reads ``MdOuter(label='')`` (the default) where ``'a'`` is
    stored: the rollback goes back to the snapshot of the partial load and
    gives the fields filled in since their defaults.
    """
    doc_id = _insert(db, n=3, tags=["t"], outer={"inner": {"n": 2, "words": ["w"]}, "label": "a"})
    s = _open(db, sessions)
    (obj,) = s.query(MdDoc).fields("name").all()
    s.query(MdDoc).all()  # fills in obj's other fields (it is clean)
    assert (obj.n, obj.tags, obj.outer.label) == (3, ["t"], "a")
    obj.n += 1
    s.flush()
    s.rollback()
    stored = _stored(db, doc_id)
    assert (obj.n, obj.tags, obj.outer.label) == (stored["n"], stored["tags"], "a")
    s.commit()  # nothing to write: the stored document is untouched
    assert _stored(db, doc_id) == stored


@pytest.mark.transactions
def test_after_an_aborted_transaction_documents_read_what_the_database_holds(db: Any) -> None:
    # Found by the model: a document restored by rollback() kept what the session
    # had read before the transaction, not what another client committed since;
    # and a second rollback() read the fields back too early.
    doc_id = bson.ObjectId()
    db.md_docs.insert_one({"_id": doc_id, "name": "a", "tags": []})
    s = Session(db)
    (loaded,) = s.query(MdDoc).all()
    db.md_docs.update_one({"_id": doc_id}, {"$push": {"tags": "x"}})  # another client
    s.delete(loaded)
    s.flush()
    s.rollback()  # the delete is undone: the document is tracked again
    s.commit()
    s.rollback()
    db.md_docs.update_one({"_id": doc_id}, {"$push": {"tags": "y"}})  # another client
    again = s.get(MdDoc, doc_id)
    assert again is loaded
    assert again.tags == ["x", "y"] == db.md_docs.find_one({"_id": doc_id})["tags"]
    again.tags.append("z")
    s.commit()
    s.close()
    assert db.md_docs.find_one({"_id": doc_id})["tags"] == ["x", "y", "z"]


def test_refresh_knows_the_keys_the_stored_document_lacks(db: Any) -> None:
    # Found in review: refresh() took the defaults it filled in for stored, so the
    # next += 1 on a field added later was sent as $inc from the default.
    doc_id = bson.ObjectId()
    db.md_docs.insert_one({"_id": doc_id, "name": "a"})
    s = Session(db)
    doc = s.get(MdDoc, doc_id)
    assert doc is not None
    s.refresh(doc)
    doc.extra_n += 1
    s.commit()
    s.close()
    assert db.md_docs.find_one({"_id": doc_id})["extra_n"] == doc.extra_n


def test_a_set_rebuilt_by_a_rollback_is_not_a_change(db: Any, sessions: list[Session]) -> None:
    """Long profile, seed 92 (SecantusDB lane, under some hash seeds only): a set
    field rebuilt from the snapshot by a rollback iterated in another order than
    the set loaded, its dump differed from the snapshot, and ``dirty_fields()``
    named it, so ``clear_cache()`` kept a clean document. Shrunk program: a
    stored document, ``get``, ``o.lines.append(...)``, ``rollback()``,
    ``clear_cache()``. Sets now dump in an order of their items alone."""
    a, b = pair_whose_set_order_moves()
    doc_id = _insert(db, labels=[a, b])
    s = _open(db, sessions)
    obj = s.get(MdDoc, doc_id)
    assert obj is not None
    obj.lines.append(MdLine(sku="a"))
    s.rollback()
    assert obj.labels == {a, b}
    assert obj.lines == []
    assert s.dirty_fields(obj) == []
    assert s.what_changed() == {}
    assert not s.has_changes()
    s.clear_cache()
    assert s.state(obj) is ObjectState.DETACHED
    assert _stored(db, doc_id)["labels"] == [a, b]
    assert_stored_is_memory(db, obj)
