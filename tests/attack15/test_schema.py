"""Schema changes: documents stored by an older or a newer version of a class.

SPEC: "Loading a document whose stored form has keys the class does not declare
keeps those keys and writes them back untouched: no data is ever dropped by a
load followed by a save."; "a key missing from the stored document loads as the
field's default, and that default is not a change"; "A key missing from the
stored document (a field added to the class later, with a default) is known as
missing: the first change of that field is a `$set` of its whole value";
"Stored values of another type than declared (legacy data) load as they are and
never block a flush"; "after a flush, the stored document equals what the
session holds"; "Every operator is relative to what is *stored*, never to a
default."
"""

from __future__ import annotations

import copy
from typing import Any

import bson
import pytest

import uow
from uow import Document, Session, field

from ._h import Addr, Line, Rec, Shape, VCounter, assert_stored_is_memory

FULL_NEWER: dict[str, Any] = {
    "code": "r1",
    "nm": "ann",
    "n": 1,
    "hi": 2,
    "lo": 3,
    "log": ["x"],
    "bag": ["b"],
    "tags": ["t"],
    "kinds": ["k"],
    "addr": {"city": "Oslo", "postcode": "0150", "floor": 2, "geo": {"lat": 59.9}},
    "lines": [
        {"sku": "a", "qty": 1, "notes": [], "u": {"deep": [1, 2]}},
        {"sku": "b", "qty": 2, "notes": ["n"], "u": "second"},
    ],
    "by": {"k": {"sku": "k", "qty": 3, "notes": [], "extra": True}},
    "prefs": {"p": 1},
    "when": None,
    "v3_only": {"nested": {"list": [1, {"a": 2}]}},
    "_meta": "kept",
}


def _insert(db: Any, raw: dict[str, Any]) -> bson.ObjectId:
    doc = dict(raw)
    doc.setdefault("_id", bson.ObjectId())
    db.a15_rec.insert_one(doc)
    return doc["_id"]


# ---------------------------------------------------------------- newer documents


CHANGES = {
    "name": lambda r: setattr(r, "name", "bob"),
    "n_inc": lambda r: setattr(r, "n", r.n + 4),
    "addr_city": lambda r: setattr(r.addr, "city", "Bergen"),
    "addr_floor": lambda r: setattr(r.addr, "floor", r.addr.floor + 1),
    "line_qty": lambda r: setattr(r.lines[1], "qty", r.lines[1].qty + 5),
    "line_note": lambda r: r.lines[0].notes.append("z"),
    "line_pop_first": lambda r: r.lines.pop(0),
    "line_reverse": lambda r: r.lines.reverse(),
    "line_append": lambda r: r.lines.append(Line(sku="c")),
    "line_insert_copy": lambda r: r.lines.insert(0, copy.deepcopy(r.lines[1])),
    "by_qty": lambda r: setattr(r.by["k"], "qty", 9),
    "by_new_key": lambda r: r.by.__setitem__("m", Line(sku="m")),
    "prefs_del": lambda r: r.prefs.pop("p"),
    "kinds_add": lambda r: r.kinds.add("z"),
    "tags_replace": lambda r: setattr(r, "tags", ["other"]),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_newer_document_keeps_unknown_keys_after_one_change(db: Any, change: str) -> None:
    """A document written by a newer class (unknown keys at the top, inside an
    embedded document, list elements and dict values): load, make one change,
    flush: every other stored key is intact, and stored == memory."""
    oid = _insert(db, FULL_NEWER)
    before = db.a15_rec.find_one({"_id": oid})
    with Session(db) as s:
        r = s.get(Rec, oid)
        assert r is not None
        CHANGES[change](r)
        s.commit()
        assert_stored_is_memory(db, r)
        after = db.a15_rec.find_one({"_id": oid})
        # unknown keys at the top stay exactly as stored
        assert after["v3_only"] == before["v3_only"], change
        assert after["_meta"] == "kept", change
        # unknown keys inside the embedded document stay
        assert after["addr"]["geo"] == {"lat": 59.9}, (change, after["addr"])
        # unknown keys of list elements stay with their element, wherever it moved
        by_sku = {el["sku"]: el for el in after["lines"]}
        if "a" in by_sku:
            assert by_sku["a"]["u"] == {"deep": [1, 2]}, (change, after["lines"])
        assert by_sku["b"]["u"] == "second", (change, after["lines"])
        assert after["by"]["k"]["extra"] is True, (change, after["by"])
    # a fresh session reads back the same document
    with Session(db) as s2:
        again = s2.get(Rec, oid)
        assert again.to_bson() == db.a15_rec.find_one({"_id": oid})


def test_delete_then_add_copy_with_same_id_is_replace_keeping_its_keys(db: Any) -> None:
    """SPEC: "Deleting a stored document and adding a new one with the same id
    before the flush replaces it (one replace ...)". The new object is a deep
    copy, which keeps the unknown keys (docs/documents.md, Copies): the replace
    stores what that object holds."""
    oid = _insert(db, FULL_NEWER)
    s = Session(db)
    r = s.get(Rec, oid)
    c = copy.deepcopy(r)
    s.delete(r)
    c.name = "again"
    s.add(c)
    s.commit()
    got = db.a15_rec.find_one({"_id": oid})
    assert got is not None, "delete + add of an object with the same id deleted the document"
    assert got == c.to_bson(), f"stored {got}, memory {c.to_bson()}"
    assert got["v3_only"] == FULL_NEWER["v3_only"]
    s.close()


def test_unknown_cls_written_back(db: Any) -> None:
    """docs/documents.md: "A stored `_cls` naming a class this process does not
    know loads as the class asked for and is written back unchanged."""
    oid = bson.ObjectId()
    db.a15_shape.insert_one({"_id": oid, "_cls": "Triangle", "name": "t", "corners": 3})
    with Session(db) as s:
        sh = s.query(Shape).one()
        assert type(sh) is Shape
        sh.name = "tri"
    got = db.a15_shape.find_one({"_id": oid})
    assert got == {"_id": oid, "_cls": "Triangle", "name": "tri", "corners": 3}


# ---------------------------------------------------------------- older documents


FIRST_CHANGES: dict[str, tuple[Any, str, Any]] = {
    # name: (change, stored key, expected stored value)
    "inc_from_default": (lambda r: setattr(r, "n", r.n + 1), "n", 6),
    "max_from_default": (lambda r: setattr(r, "hi", 3), "hi", 3),
    "min_from_default": (lambda r: setattr(r, "lo", 50), "lo", 50),
    "push_field_from_default": (lambda r: r.log.append("b"), "log", ["init", "b"]),
    "addtoset_from_default": (lambda r: r.bag.append("q"), "bag", ["q"]),
    "list_append_from_default": (lambda r: r.tags.append("b"), "tags", ["a", "b"]),
    "set_add_from_default": (lambda r: r.kinds.add("k"), "kinds", ["k"]),
    "embedded_one_key": (
        lambda r: setattr(r.addr, "city", "Bergen"),
        "addr",
        {"city": "Bergen", "postcode": "0150", "floor": 0},
    ),
    "embedded_inc_key": (
        lambda r: setattr(r.addr, "floor", r.addr.floor + 2),
        "addr",
        {"city": "Oslo", "postcode": "0150", "floor": 2},
    ),
    "dict_key": (lambda r: r.prefs.__setitem__("x", 1), "prefs", {"x": 1}),
    "dict_of_embedded": (lambda r: r.by.__setitem__("k", Line(sku="k")), "by", None),
    "list_of_embedded": (lambda r: r.lines.append(Line(sku="l", qty=2)), "lines", None),
}


@pytest.mark.parametrize("case", list(FIRST_CHANGES))
def test_older_document_first_change_of_missing_key(db: Any, case: str) -> None:
    """The stored document lacks every key but code: the defaults load, are not
    changes, and the first change of one field stores its whole value."""
    change, key, expected = FIRST_CHANGES[case]
    oid = _insert(db, {"code": "old", "legacy": 1})
    s = Session(db)
    r = s.get(Rec, oid)
    assert not s.is_dirty(r), s.dirty_fields(r)
    assert s.flush().round_trips == 0
    assert db.a15_rec.find_one({"_id": oid}) == {"_id": oid, "code": "old", "legacy": 1}
    change(r)
    s.commit()
    got = db.a15_rec.find_one({"_id": oid})
    if expected is None:
        expected = r.to_bson()[key]
    assert got.get(key, "<missing>") == expected, f"{case}: stored {got}"
    # the fields nobody changed are still not written, and the unknown key stays
    assert got["legacy"] == 1
    untouched = {"nm", "n", "hi", "lo", "log", "bag", "tags", "kinds", "addr", "by", "prefs"}
    untouched.discard(key)
    assert not (untouched & set(got)), f"{case}: wrote defaults of untouched fields: {got}"
    # a second change of the same field is relative to what is now stored
    change2 = {
        "n": lambda: setattr(r, "n", r.n + 1),
        "log": lambda: r.log.append("c"),
        "tags": lambda: r.tags.append("c"),
        "addr": lambda: setattr(r.addr, "floor", r.addr.floor + 1),
    }.get(key)
    if change2 is not None:
        change2()
        s.commit()
        got = db.a15_rec.find_one({"_id": oid})
        assert got[key] == r.to_bson()[key], f"{case} (second change): stored {got[key]}"
    s.close()


def test_second_change_after_missing_key_is_minimal(
    secantus_listened_db: Any, command_log: Any
) -> None:
    """SPEC: "the first change of that field is a $set of its whole value ...;
    later changes are minimal again"."""
    db = secantus_listened_db
    oid = _insert(db, {"code": "old"})
    with Session(db, transactional=False) as s:
        r = s.get(Rec, oid)
        r.n += 1
        r.log.append("b")
        s.commit()
        command_log.clear()
        r.n += 2
        r.log.append("c")
        s.commit()
        ups = command_log.of("update")
        assert len(ups) == 1, command_log.names()
        u = ups[0]["updates"][0]["u"]
        assert u.get("$inc") == {"n": 2}, u
        assert u.get("$push") == {"log": {"$each": ["c"]}}, u
        assert "$set" not in u, u
    got = db.a15_rec.find_one({"_id": oid})
    assert got["n"] == 8 and got["log"] == ["init", "b", "c"], got


def test_missing_keys_inside_list_elements(db: Any) -> None:
    """A list element stored by an older Line (no qty, no notes): a change of
    qty ($inc) inside it must store what memory holds."""
    oid = _insert(db, {"code": "x", "lines": [{"sku": "a"}, {"sku": "b", "qty": 4}]})
    with Session(db) as s:
        r = s.get(Rec, oid)
        r.lines[0].qty += 3
        r.lines[0].notes.append("n")
        r.lines[1].qty += 1
        s.commit()
        got = db.a15_rec.find_one({"_id": oid})
        assert got["lines"][0].get("qty") == 3, got["lines"]
        assert got["lines"][0].get("notes") == ["n"], got["lines"]
        assert got["lines"][1]["qty"] == 5, got["lines"]


def test_missing_version_key_is_matched_and_set(db: Any) -> None:
    """SPEC: "A stored document without the version key is matched by the key's
    absence, and its first update sets it."""
    oid = bson.ObjectId()
    db.a15_vcounter.insert_one({"_id": oid, "code": "v", "n": 1})
    with Session(db) as s:
        v = s.get(VCounter, oid)
        v.n += 1
        s.commit()
        got = db.a15_vcounter.find_one({"_id": oid})
        assert got == {"_id": oid, "code": "v", "n": 2, "version": 1}, got
        assert v.version == 1
        v.name = "again"
    got = db.a15_vcounter.find_one({"_id": oid})
    assert got["version"] == 2 and got["name"] == "again", got


# ------------------------------------------------------ legacy values of other types


LEGACY: dict[str, tuple[str, Any, Any, Any]] = {
    # case: (attribute, stored legacy value, value assigned, expected stored)
    "inc_over_null": ("n", None, 3, 3),
    "inc_over_string": ("n", "7", 10, 10),
    "inc_over_double": ("n", 2.5, 4, 4),
    "max_over_string": ("hi", "zz", 4, 4),
    "min_over_string": ("lo", "aa", 300, 300),
    "max_over_bool": ("hi", True, 4, 4),
    "max_over_object": ("hi", {"v": 1}, 4, 4),
    "push_field_over_null": ("log", None, ["x"], ["x"]),
    "push_field_over_string": ("log", "legacy", ["x"], ["x"]),
    "addtoset_over_null": ("bag", None, ["q"], ["q"]),
    "addtoset_over_object": ("bag", {"q": 1}, ["q"], ["q"]),
    "list_over_string": ("tags", "a,b", ["a", "b"], ["a", "b"]),
    "dict_over_null": ("prefs", None, {"a": 1}, {"a": 1}),
    "dict_over_array": ("prefs", [1, 2], {"a": 1}, {"a": 1}),
    "dict_over_string": ("prefs", "p=1", {"a": 1}, {"a": 1}),
    "embedded_over_null": ("addr", None, "ADDR", {"city": "X", "postcode": None, "floor": 0}),
    "embedded_over_string": ("addr", "Oslo", "ADDR", {"city": "X", "postcode": None, "floor": 0}),
    "set_over_null": ("kinds", None, {"a"}, ["a"]),
    "list_of_embedded_over_dict": (
        "lines",
        {"0": 1},
        "LINES",
        [{"sku": "s", "qty": 1, "notes": []}],
    ),
    "dict_of_embedded_over_null": ("by", None, "BY", {"k": {"sku": "k", "qty": 0, "notes": []}}),
}

STORED_NAME = {"name": "nm"}


def _value(token: Any) -> Any:
    if token == "ADDR":
        return Addr(city="X")
    if token == "LINES":
        return [Line(sku="s", qty=1)]
    if token == "BY":
        return {"k": Line(sku="k")}
    return copy.deepcopy(token)


@pytest.mark.parametrize("case", list(LEGACY))
def test_legacy_value_loads_kept_and_replaced(db: Any, case: str) -> None:
    """A value of another type than declared loads as it is, is written back
    untouched when another field changes, and assigning a proper value stores
    that value (whatever operator the field declares: the operator is relative
    to what is stored)."""
    attr, legacy, assigned, expected = LEGACY[case]
    oid = _insert(db, {"code": case, "nm": "a", attr: legacy})
    s = Session(db)
    r = s.get(Rec, oid)
    assert getattr(r, attr) == legacy or legacy is None or attr == "kinds", getattr(r, attr)
    r.name = "changed"
    s.commit()
    got = db.a15_rec.find_one({"_id": oid})
    assert got[attr] == legacy, f"{case}: the legacy value was rewritten: {got[attr]!r}"
    assert got["nm"] == "changed"
    setattr(r, attr, _value(assigned))
    try:
        s.commit()
    except uow.FlushError as e:  # pragma: no cover - a failure is the finding
        pytest.fail(f"{case}: assigning {assigned!r} over stored {legacy!r} failed to flush: {e}")
    got = db.a15_rec.find_one({"_id": oid})
    assert got[attr] == expected, f"{case}: stored {got[attr]!r}, memory {getattr(r, attr)!r}"
    assert got[attr] == r.to_bson()[attr]
    s.close()


DEEP_LEGACY: dict[str, tuple[dict[str, Any], Any, str, Any]] = {
    "inc_in_list_element_over_string": (
        {"lines": [{"sku": "a", "qty": "3", "notes": []}]},
        lambda r: setattr(r.lines[0], "qty", 5),
        "lines.0.qty",
        5,
    ),
    "inc_in_dict_value_over_null": (
        {"by": {"k": {"sku": "k", "qty": None, "notes": []}}},
        lambda r: setattr(r.by["k"], "qty", 2),
        "by.k.qty",
        2,
    ),
    "inc_in_embedded_over_null": (
        {"addr": {"city": "c", "postcode": None, "floor": None}},
        lambda r: setattr(r.addr, "floor", 1),
        "addr.floor",
        1,
    ),
    "push_in_list_element_over_null": (
        {"lines": [{"sku": "a", "qty": 1, "notes": None}]},
        lambda r: setattr(r.lines[0], "notes", ["x"]),
        "lines.0.notes",
        ["x"],
    ),
    "dict_key_over_null_dict": (
        {"prefs": None},
        lambda r: setattr(r, "prefs", {"a": 1}),
        "prefs",
        {"a": 1},
    ),
}


def _at(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


@pytest.mark.parametrize("case", list(DEEP_LEGACY))
def test_legacy_value_below_the_top_replaced(db: Any, case: str) -> None:
    """A legacy value inside an embedded document, a list element or a dict
    value, whose field declares an operator: assigning a proper value stores it."""
    raw, change, path, expected = DEEP_LEGACY[case]
    oid = _insert(db, {"code": case, **raw})
    s = Session(db)
    r = s.get(Rec, oid)
    change(r)
    try:
        s.commit()
    except uow.FlushError as e:
        pytest.fail(f"{case}: the flush failed: {e}")
    got = db.a15_rec.find_one({"_id": oid})
    assert _at(got, path) == expected, f"{case}: stored {got}"
    s.close()


def test_legacy_value_in_place_change_of_loaded_container(db: Any) -> None:
    """A legacy dict field holding values of another type: adding one proper
    key is a change of that key only, the legacy values stay."""
    oid = _insert(db, {"code": "d", "prefs": {"old": "str", "deep": {"x": 1}}})
    with Session(db) as s:
        r = s.get(Rec, oid)
        r.prefs["new"] = 2
    got = db.a15_rec.find_one({"_id": oid})
    assert got["prefs"] == {"old": "str", "deep": {"x": 1}, "new": 2}, got["prefs"]


# ------------------------------------------------------------ renamed via db_name


class RenamedV2(Document):
    """Version 2 of a class whose stored key "name" is now the attribute full_name."""

    __collection__ = "a15_renamed"
    full_name: str = field(default="", db_name="name")
    city: str = field(default="", db_name="town")
    score: int = field(default=0, on_update="$inc", db_name="pts")


def test_renamed_attribute_reads_and_writes_old_key(db: Any) -> None:
    oid = bson.ObjectId()
    db.a15_renamed.insert_one({"_id": oid, "name": "ann", "town": "Oslo", "pts": 1, "old": 0})
    db.a15_renamed.insert_one({"_id": bson.ObjectId(), "name": "bob", "town": "Rome", "pts": 7})
    with Session(db) as s:
        r = s.query(RenamedV2).filter(full_name="ann").one()
        assert (r.full_name, r.city, r.score) == ("ann", "Oslo", 1)
        assert s.query(RenamedV2).filter(RenamedV2.city == "Rome").one().full_name == "bob"
        assert [x.full_name for x in s.query(RenamedV2).sort("-score").all()] == ["bob", "ann"]
        r.full_name = "Ann"
        r.score += 2
        assert s.dirty_fields(r) == ["full_name", "score"]
        changes = s.what_changed()[("a15_renamed", oid)]
        assert set(changes) == {"full_name", "score"}, changes
        assert s.original_value(r, "full_name") == "ann"
    got = db.a15_renamed.find_one({"_id": oid})
    assert got == {"_id": oid, "name": "Ann", "town": "Oslo", "pts": 3, "old": 0}, got
    with Session(db) as s:
        part = s.query(RenamedV2).fields("full_name").filter(full_name="Ann").one()
        assert part.full_name == "Ann"
        with pytest.raises(uow.FieldNotLoaded):
            _ = part.city
        part.score = 10  # not loaded: $set of the assigned value
    got = db.a15_renamed.find_one({"_id": oid})
    assert got == {"_id": oid, "name": "Ann", "town": "Oslo", "pts": 10, "old": 0}, got


# ------------------------------------------------------------------ partial loads


def test_partial_load_flush_keeps_every_other_key(db: Any) -> None:
    oid = _insert(db, FULL_NEWER)
    before = db.a15_rec.find_one({"_id": oid})
    with Session(db) as s:
        r = s.query(Rec).fields("name", "tags").one()
        r.name = "p"
        r.tags.append("u")
        r.n = 40  # not loaded, $inc field: $set of the assigned value
        r.addr = Addr(city="New")  # not loaded: $set of the whole value
    got = db.a15_rec.find_one({"_id": oid})
    expected = dict(
        before, nm="p", tags=["t", "u"], n=40, addr={"city": "New", "postcode": None, "floor": 0}
    )
    assert got == expected, got


def test_partial_load_does_not_clobber_other_writer(db: Any) -> None:
    """A partial document's flush writes only what this session changed: a
    field another writer changed meanwhile, which this session never loaded,
    keeps the other writer's value."""
    oid = _insert(db, FULL_NEWER)
    s = Session(db)
    r = s.query(Rec).fields("name").one()
    db.a15_rec.update_one({"_id": oid}, {"$set": {"hi": 99, "addr.city": "Other"}})
    r.name = "mine"
    s.commit()
    got = db.a15_rec.find_one({"_id": oid})
    assert got["nm"] == "mine" and got["hi"] == 99 and got["addr"]["city"] == "Other", got
    s.close()


def test_partial_by_query_field_of_embedded_path(db: Any) -> None:
    """fields() takes query fields; an embedded field's query field
    (Rec.addr.city) either loads a partial embedded document whose save keeps
    the embedded keys not loaded, or is refused with a clear error; it never
    makes a flush that drops postcode/floor/geo."""
    oid = _insert(db, FULL_NEWER)
    s = Session(db)
    try:
        r = s.query(Rec).fields(Rec.addr.city).one()
    except (uow.ValidationError, TypeError, ValueError) as e:
        assert "addr" in str(e), e
        s.close()
        return
    try:
        r.addr.city = "Tromso"
    except uow.FieldNotLoaded:
        s.close()
        return
    s.commit()
    got = db.a15_rec.find_one({"_id": oid})
    assert got["addr"] == {
        "city": "Tromso",
        "postcode": "0150",
        "floor": 2,
        "geo": {"lat": 59.9},
    }, f"a partial load of addr.city dropped the rest of addr: {got['addr']}"
    s.close()


def test_partial_load_of_missing_key_then_inc(db: Any) -> None:
    """fields('n') of a document that lacks n: n reads its default; n += 1
    stores the value memory holds."""
    oid = _insert(db, {"code": "m"})
    with Session(db) as s:
        r = s.query(Rec).fields("n").one()
        assert r.n == 5
        r.n += 1
    got = db.a15_rec.find_one({"_id": oid})
    assert got.get("n") == 6, got


def test_partial_then_full_query_then_change(db: Any) -> None:
    """A partial document filled in by a later full query is whole: a change of
    a formerly not loaded $inc field is a delta from the stored value."""
    oid = _insert(db, FULL_NEWER)
    with Session(db) as s:
        part = s.query(Rec).fields("name").one()
        full = s.query(Rec).one()
        assert full is part
        assert part.n == 1
        part.n += 2
        db.a15_rec.update_one({"_id": oid}, {"$inc": {"n": 10}})  # another writer
    got = db.a15_rec.find_one({"_id": oid})
    assert got["n"] == 13, f"$inc expected (1 + 10 by another writer + 2), stored {got['n']}"


# ------------------------------------------------------- key names that collide


def test_stored_key_named_like_an_attribute_with_another_db_name(db: Any) -> None:
    """Rec.name is stored as "nm". A stored key "name" (an older version's, before
    the rename) is an unknown key: kept, never read as the attribute, never
    overwritten."""
    oid = _insert(db, {"code": "k", "name": "old-version", "nm": "current"})
    with Session(db) as s:
        r = s.get(Rec, oid)
        assert r.name == "current"
        r.name = "changed"
        assert s.query(Rec).filter(name="changed").one() is r
    got = db.a15_rec.find_one({"_id": oid})
    assert got["nm"] == "changed" and got["name"] == "old-version", got


def test_stored_key_id_is_an_unknown_key(db: Any) -> None:
    """Imported data often has its own "id" key beside "_id". The attribute id
    is stored as _id, so "id" is a key the class does not declare: kept as it is."""
    oid = _insert(db, {"code": "i", "id": 12345, "nm": "a"})
    with Session(db) as s:
        r = s.get(Rec, oid)
        assert r is not None and r.id == oid, r
        r.name = "b"
    got = db.a15_rec.find_one({"_id": oid})
    assert got["id"] == 12345 and got["nm"] == "b", got


def test_legacy_string_ids_load_and_update(db: Any) -> None:
    """Stored values of another type than declared load as they are: a legacy
    document whose _id is a string (the class makes ObjectIds) loads, and its
    change is written to it."""
    db.a15_rec.insert_one({"_id": "legacy-1", "code": "s1", "nm": "x"})
    with Session(db) as s:
        r = s.query(Rec).filter(code="s1").one()
        assert r.id == "legacy-1"
        r.name = "y"
        r.tags.append("b")
    got = db.a15_rec.find_one({"_id": "legacy-1"})
    assert got["nm"] == "y" and got["tags"] == ["a", "b"], got
    assert db.a15_rec.count_documents({}) == 1
    with Session(db) as s:
        r = s.query(Rec).filter(code="s1").one()
        s.delete(r)
    assert db.a15_rec.count_documents({}) == 0


@pytest.mark.parametrize("dup", [copy.deepcopy, copy.copy], ids=["deepcopy", "copy"])
def test_refresh_after_other_writer_keeps_all_unknown_keys(db: Any, dup: Any) -> None:
    oid = _insert(db, FULL_NEWER)
    with Session(db) as s:
        r = s.get(Rec, oid)
        db.a15_rec.update_one(
            {"_id": oid}, {"$set": {"added_later": [1], "n": 50, "addr.extra2": 1}}
        )
        s.refresh(r)
        assert r.n == 50
        r.n += 1
        r.addr.city = "Z"
        snapshot_copy = dup(r)
        assert snapshot_copy.to_bson() == r.to_bson()
    got = db.a15_rec.find_one({"_id": oid})
    assert got["added_later"] == [1] and got["addr"]["extra2"] == 1 and got["n"] == 51, got
    assert got == r.to_bson(), f"stored {got}\n memory {r.to_bson()}"


def test_mixed_old_and_new_documents_flush_in_one_command(
    secantus_listened_db: Any, command_log: Any
) -> None:
    """SPEC: "Each (collection, kind) is one write command". Documents stored by
    three versions of the class, each changed, are one update command; with an
    insert and a delete, the order is inserts, updates, deletes."""
    db = secantus_listened_db
    ids = [
        _insert(db, {"code": "v1"}),
        _insert(db, {"code": "v2", "n": 3, "lines": [{"sku": "a"}]}),
        _insert(db, dict(FULL_NEWER, code="v3")),
        _insert(db, {"code": "gone"}),
    ]
    with Session(db) as s:
        docs = [s.get(Rec, i) for i in ids[:3]]
        gone = s.get(Rec, ids[3])
        command_log.clear()
        for d in docs:
            d.n += 1
            d.tags.append("z")
        docs[1].lines[0].qty += 1
        s.delete(gone)
        s.add(Rec(code="fresh"))
        r = s.flush()
        writes = [c for c in command_log.names() if c in ("insert", "update", "delete")]
        assert writes == ["insert", "update", "delete"], command_log.names()
        assert len(command_log.of("update")[0]["updates"]) == 3
        assert (r.inserted, r.updated, r.deleted, r.round_trips) == (1, 3, 1, 3), r
    got = {d["code"]: d for d in db.a15_rec.find()}
    assert got["v1"]["n"] == 6 and got["v1"]["tags"] == ["a", "z"], got["v1"]
    assert got["v2"]["n"] == 4 and got["v2"]["lines"][0]["qty"] == 1, got["v2"]
    assert got["v3"]["n"] == 2 and got["v3"]["v3_only"] == FULL_NEWER["v3_only"], got["v3"]
    assert "gone" not in got and "fresh" in got


def test_what_changed_of_missing_key_reads_none(db: Any) -> None:
    """docs/session.md: in what_changed(), "a key the stored document lacks
    reads `None`"."""
    oid = _insert(db, {"code": "w", "addr": {"city": "c"}})
    with Session(db) as s:
        r = s.get(Rec, oid)
        r.n += 1
        r.addr.floor += 1
        r.prefs["a"] = 1
        wc = s.what_changed()[("a15_rec", oid)]
        assert wc.get("n") == (None, 6), wc
        assert s.dirty_fields(r) == ["addr", "n", "prefs"]
    got = db.a15_rec.find_one({"_id": oid})
    assert got["n"] == 6 and got["addr"]["floor"] == 1 and got["prefs"] == {"a": 1}, got
