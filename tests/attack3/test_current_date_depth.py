"""`on_update="$currentDate"` fields inside embedded documents (single, in lists,
in dicts, nested): the server sets them on every update of the document, and
after the flush the session reads what is stored.

Reading chosen: "every update of the document" means every `$currentDate` field
present in the document held by the session (an element appended in that very
update included); a `None` embedded document holds no such field."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import assert_recent, emb, insert_raw, reload, stored

OLD = datetime.datetime(2001, 1, 1, 0, 0, 0)


class A3Stamp(Embedded):
    note: str = ""
    at: datetime.datetime | None = field(default=None, on_update="$currentDate")


class A3Deep(Embedded):
    inner: A3Stamp | None = None
    items: list[A3Stamp] = field(factory=list)


class A3Stamped(Document):
    __collection__ = "a3_stamped"

    name: str
    n: int = 0
    one: A3Stamp | None = None
    many: list[A3Stamp] = field(factory=list)
    by: dict[str, A3Stamp] = field(factory=dict)
    deep: A3Deep | None = None
    touched: datetime.datetime | None = field(default=None, on_update="$currentDate")


class A3VStamped(Document):
    __collection__ = "a3_vstamped"

    name: str
    one: A3Stamp | None = None
    many: list[A3Stamp] = field(factory=list)
    version: int = field(default=0, version=True)


def _st(note: str = "", at: Any = OLD) -> dict[str, Any]:
    return {"note": note, "at": at}


def _raw(**values: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "s",
        "n": 0,
        "one": _st("one"),
        "many": [_st("m0"), _st("m1")],
        "by": {"a": _st("ba")},
        "deep": {"inner": _st("in"), "items": [_st("i0")]},
        "touched": OLD,
    }
    doc.update(values)
    return doc


def _all_stamps(raw: dict[str, Any]) -> list[Any]:
    out = []
    if raw.get("one") is not None:
        out.append(raw["one"]["at"])
    out += [m["at"] for m in raw.get("many", [])]
    out += [v["at"] for v in raw.get("by", {}).values()]
    deep = raw.get("deep")
    if deep is not None:
        if deep.get("inner") is not None:
            out.append(deep["inner"]["at"])
        out += [m["at"] for m in deep.get("items", [])]
    return out


def _memory_matches(db: Any, o: A3Stamped) -> dict[str, Any]:
    raw = stored(db, "a3_stamped", o.id)
    assert raw["n"] == o.n
    assert raw["one"] == emb(o.one)
    assert raw["many"] == emb(o.many)
    assert raw["by"] == emb(o.by)
    assert raw["deep"] == emb(o.deep)
    assert raw["touched"] == o.touched
    again = reload(db, A3Stamped, o.id)
    assert emb(again.one) == emb(o.one) and emb(again.deep) == emb(o.deep)
    assert emb(again.many) == emb(o.many) and emb(again.by) == emb(o.by)
    return raw


def test_update_of_a_top_level_field_sets_every_stamp_at_depth(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.n = 1
    s.commit()
    raw = _memory_matches(db, o)
    stamps = _all_stamps(raw)
    assert len(stamps) == 6
    for at in [*stamps, raw["touched"]]:
        assert_recent(at)


def test_every_update_advances_the_stamps(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.n = 1
    s.commit()
    first = _all_stamps(stored(db, "a3_stamped", oid))
    time.sleep(0.01)
    o.n = 2
    s.commit()
    raw = _memory_matches(db, o)
    second = _all_stamps(raw)
    assert all(b > a for a, b in zip(first, second, strict=True)), (first, second)


def test_stamp_in_element_appended_in_the_same_update(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.many.append(A3Stamp(note="m2"))
    o.deep.items.append(A3Stamp(note="i1"))  # type: ignore[union-attr]
    s.commit()
    raw = _memory_matches(db, o)
    assert [m["note"] for m in raw["many"]] == ["m0", "m1", "m2"]
    for at in _all_stamps(raw):
        assert_recent(at)


def test_stamp_when_an_element_changed_inside_and_list_appended(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.many[0].note = "changed"
    o.many.append(A3Stamp(note="m2"))
    s.commit()
    raw = _memory_matches(db, o)
    assert [m["note"] for m in raw["many"]] == ["changed", "m1", "m2"]
    for at in _all_stamps(raw):
        assert_recent(at)


def test_stamp_when_list_lost_an_element_and_is_set_whole(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    del o.many[0]
    s.commit()
    raw = _memory_matches(db, o)
    assert [m["note"] for m in raw["many"]] == ["m1"]
    for at in _all_stamps(raw):
        assert_recent(at)


def test_stamp_when_the_single_embedded_is_replaced(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.one = A3Stamp(note="new")
    s.commit()
    raw = _memory_matches(db, o)
    assert raw["one"]["note"] == "new"
    assert_recent(raw["one"]["at"])


def test_stamp_when_a_dict_key_is_added_and_another_removed(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw(by={"a": _st("ba"), "b": _st("bb")}))
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.by["c"] = A3Stamp(note="bc")
    del o.by["b"]
    s.commit()
    raw = _memory_matches(db, o)
    assert sorted(raw["by"]) == ["a", "c"]
    for at in _all_stamps(raw):
        assert_recent(at)


def test_stamp_when_the_nested_embedded_is_replaced_whole(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.deep = A3Deep(inner=A3Stamp(note="x"), items=[A3Stamp(note="y")])
    s.commit()
    raw = _memory_matches(db, o)
    assert raw["deep"]["inner"]["note"] == "x"
    assert_recent(raw["deep"]["inner"]["at"])
    assert_recent(raw["deep"]["items"][0]["at"])


def test_none_embedded_gets_no_stamp_and_flush_succeeds(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw(one=None, deep={"inner": None, "items": []}))
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.n = 5
    s.commit()
    raw = _memory_matches(db, o)
    assert raw["one"] is None
    assert raw["deep"] == {"inner": None, "items": []}


def test_embedded_set_to_none_in_the_same_update(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.one = None
    o.deep.inner = None  # type: ignore[union-attr]
    s.commit()
    raw = _memory_matches(db, o)
    assert raw["one"] is None
    assert raw["deep"]["inner"] is None


def test_stamp_key_missing_in_stored_elements(db: Any) -> None:
    """Legacy elements without `at`: the update sets it by the server all the same."""
    oid = insert_raw(
        db, "a3_stamped", _raw(many=[{"note": "m0"}], one={"note": "o"}, by={"a": {"note": "a"}})
    )
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.n = 3
    s.commit()
    raw = _memory_matches(db, o)
    assert_recent(raw["many"][0]["at"])
    assert_recent(raw["one"]["at"])
    assert_recent(raw["by"]["a"]["at"])


def test_insert_then_update_sets_stamps(db: Any) -> None:
    s = uow.Session(db)
    o = A3Stamped(name="new", one=A3Stamp(), many=[A3Stamp()], by={"k": A3Stamp()})
    s.add(o)
    s.commit()
    raw = stored(db, "a3_stamped", o.id)
    assert raw["one"] == emb(o.one)
    assert raw["many"] == emb(o.many)
    o.n = 1
    s.commit()
    raw = _memory_matches(db, o)
    assert_recent(raw["one"]["at"])
    assert_recent(raw["many"][0]["at"])
    assert_recent(raw["by"]["k"]["at"])


def test_forced_update_with_nothing_changed_sets_stamps_at_depth(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    s.update(o)
    s.commit()
    raw = _memory_matches(db, o)
    for at in _all_stamps(raw):
        assert_recent(at)


def test_no_change_sends_nothing_and_stamps_stay(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    assert o.one is not None
    s.commit()
    raw = stored(db, "a3_stamped", oid)
    assert _all_stamps(raw) == [OLD] * 6


def test_versioned_update_sets_stamps_and_bumps(db: Any) -> None:
    oid = insert_raw(db, "a3_vstamped", {"name": "v", "one": _st(), "many": [_st()], "version": 1})
    s = uow.Session(db)
    o = s.get(A3VStamped, oid)
    o.name = "w"
    s.commit()
    raw = stored(db, "a3_vstamped", oid)
    assert raw["version"] == 2 == o.version
    assert raw["one"] == emb(o.one)
    assert raw["many"] == emb(o.many)
    assert_recent(raw["one"]["at"])


def test_refresh_after_update_reads_the_stamps(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.n = 9
    s.commit()
    s.refresh(o)
    _memory_matches(db, o)


def test_two_sessions_both_update_and_both_read_what_is_stored(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s1, s2 = uow.Session(db), uow.Session(db)
    o1, o2 = s1.get(A3Stamped, oid), s2.get(A3Stamped, oid)
    o1.n = 1
    s1.commit()
    time.sleep(0.01)
    o2.many.append(A3Stamp(note="two"))
    s2.commit()
    raw = stored(db, "a3_stamped", oid)
    assert raw["n"] == 1, "s2 wrote back the n it loaded"
    assert raw["many"] == emb(o2.many)
    assert raw["one"] == emb(o2.one)
    assert raw["deep"] == emb(o2.deep)
    assert raw["touched"] == o2.touched
    assert [m["note"] for m in raw["many"]] == ["m0", "m1", "two"]


def test_partial_load_update_without_embedded_loaded_flushes(db: Any) -> None:
    """Only `name` and `n` loaded, `one` stored as null: updating `n` must flush
    without error and leave the unloaded `one` as stored (null)."""
    oid = insert_raw(db, "a3_stamped", _raw(one=None))
    s = uow.Session(db)
    o = s.query(A3Stamped).filter(A3Stamped.id == oid).fields("name", "n").one()
    o.n = 4
    s.commit()
    raw = stored(db, "a3_stamped", oid)
    assert raw["n"] == 4
    assert raw["one"] is None
    assert [m["note"] for m in raw["many"]] == ["m0", "m1"]


@pytest.mark.transactions
def test_rollback_puts_stamps_back_to_committed(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db)
    o = s.get(A3Stamped, oid)
    o.n = 1
    s.flush()
    s.rollback()
    assert o.one is not None and o.one.at == OLD
    assert [m.at for m in o.many] == [OLD, OLD]
    assert stored(db, "a3_stamped", oid)["one"]["at"] == OLD


def test_tz_aware_session_stamps_read_aware(db: Any) -> None:
    oid = insert_raw(db, "a3_stamped", _raw())
    s = uow.Session(db, tz_aware=True)
    o = s.get(A3Stamped, oid)
    o.n = 1
    s.commit()
    raw = stored(db, "a3_stamped", oid)
    assert o.one is not None and o.one.at is not None
    assert o.one.at.tzinfo is not None
    assert o.one.at.replace(tzinfo=None) == raw["one"]["at"]
    assert o.many[0].at.replace(tzinfo=None) == raw["many"][0]["at"]  # type: ignore[union-attr]
