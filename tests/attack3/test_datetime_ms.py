"""Datetimes are kept to the millisecond (BSON's precision) on construction and on
assignment, at any depth, so memory equals stored; a value put in place by
mutation equals the stored one after the flush (the one rule)."""

from __future__ import annotations

import datetime
from typing import Any

import uow
from uow import Document, Embedded, field

from ._h import emb, insert_raw, reload, stored

US = datetime.datetime(2020, 1, 2, 3, 4, 5, 123456)
MS = datetime.datetime(2020, 1, 2, 3, 4, 5, 123000)
US2 = datetime.datetime(2021, 6, 7, 8, 9, 10, 999999)
MS2 = datetime.datetime(2021, 6, 7, 8, 9, 10, 999000)


class A3When(Embedded):
    at: datetime.datetime | None = None
    ats: list[datetime.datetime] = field(factory=list)


class A3Times(Document):
    __collection__ = "a3_times"

    name: str = "t"
    at: datetime.datetime | None = None
    hi: datetime.datetime | None = field(default=None, on_update="$max")
    lo: datetime.datetime | None = field(default=None, on_update="$min")
    ats: list[datetime.datetime] = field(factory=list)
    log: list[datetime.datetime] = field(factory=list, on_update="$push")
    by: dict[str, datetime.datetime] = field(factory=dict)
    when: A3When | None = None
    whens: list[A3When] = field(factory=list)
    opt: datetime.datetime | None = field(default=None, db_name="o")


def _check(db: Any, o: A3Times) -> dict[str, Any]:
    raw = stored(db, "a3_times", o.id)
    assert raw.get("at") == o.at
    assert raw.get("hi") == o.hi
    assert raw.get("lo") == o.lo
    assert raw.get("ats", []) == o.ats
    assert raw.get("log", []) == o.log
    assert raw.get("by", {}) == o.by
    assert raw.get("when") == emb(o.when)
    assert raw.get("whens", []) == emb(o.whens)
    assert raw.get("o") == o.opt
    again = reload(db, A3Times, o.id)
    assert (again.at, again.hi, again.lo, again.ats, again.log, again.by, again.opt) == (
        o.at,
        o.hi,
        o.lo,
        o.ats,
        o.log,
        o.by,
        o.opt,
    )
    return raw


def test_construction_truncates_at_every_depth() -> None:
    o = A3Times(
        at=US,
        hi=US,
        ats=[US, US2],
        by={"k": US},
        when=A3When(at=US, ats=[US2]),
        whens=[A3When(at=US2)],
        opt=US,
    )
    assert o.at == MS and o.hi == MS and o.opt == MS
    assert o.ats == [MS, MS2]
    assert o.by == {"k": MS}
    assert o.when == A3When(at=MS, ats=[MS2])
    assert o.whens[0].at == MS2


def test_constructed_then_inserted_memory_equals_stored(db: Any) -> None:
    s = uow.Session(db)
    o = A3Times(at=US, hi=US, lo=US2, ats=[US], log=[US2], by={"k": US}, opt=US2)
    o.when = A3When(at=US, ats=[US])
    o.whens = [A3When(at=US2, ats=[US])]
    s.add(o)
    s.commit()
    _check(db, o)


def test_assignment_truncates_top_level_and_embedded(db: Any) -> None:
    oid = insert_raw(db, "a3_times", {"name": "t", "when": {"at": None, "ats": []}})
    s = uow.Session(db)
    o = s.get(A3Times, oid)
    o.at = US
    o.opt = US2
    assert o.when is not None
    o.when.at = US2
    assert o.at == MS and o.opt == MS2 and o.when.at == MS2
    s.commit()
    _check(db, o)


def test_assignment_of_a_container_truncates_its_elements(db: Any) -> None:
    s = uow.Session(db)
    o = A3Times()
    s.add(o)
    s.commit()
    o.ats = [US, US2]
    o.by = {"a": US}
    assert o.ats == [MS, MS2]
    assert o.by == {"a": MS}
    s.commit()
    _check(db, o)


def test_appended_by_mutation_memory_equals_stored_after_flush(db: Any) -> None:
    oid = insert_raw(db, "a3_times", {"name": "t", "ats": [MS], "log": []})
    s = uow.Session(db)
    o = s.get(A3Times, oid)
    o.ats.append(US2)
    o.log.append(US)
    s.commit()
    _check(db, o)


def test_dict_value_put_by_mutation_memory_equals_stored_after_flush(db: Any) -> None:
    oid = insert_raw(db, "a3_times", {"name": "t", "by": {"a": MS}})
    s = uow.Session(db)
    o = s.get(A3Times, oid)
    o.by["b"] = US
    o.by["a"] = US2
    s.commit()
    _check(db, o)


def test_list_element_embedded_inner_list_by_mutation(db: Any) -> None:
    oid = insert_raw(db, "a3_times", {"name": "t", "whens": [{"at": MS, "ats": []}]})
    s = uow.Session(db)
    o = s.get(A3Times, oid)
    o.whens[0].ats.append(US)
    o.whens[0].at = US2
    o.whens.append(A3When(at=US))
    s.commit()
    _check(db, o)
    assert stored(db, "a3_times", oid)["whens"] == [
        {"at": MS2, "ats": [MS]},
        {"at": MS, "ats": []},
    ]


def test_max_min_with_microseconds(db: Any) -> None:
    oid = insert_raw(db, "a3_times", {"name": "t", "hi": MS, "lo": MS2})
    s = uow.Session(db)
    o = s.get(A3Times, oid)
    o.hi = US2
    o.lo = US
    s.commit()
    raw = _check(db, o)
    assert raw["hi"] == MS2 and raw["lo"] == MS


def test_same_millisecond_assignment_is_not_a_change(db: Any) -> None:
    oid = insert_raw(db, "a3_times", {"name": "t", "at": MS, "when": {"at": MS, "ats": []}})
    s = uow.Session(db)
    o = s.get(A3Times, oid)
    o.at = US
    assert o.when is not None
    o.when.at = US
    assert not s.is_dirty(o)
    assert s.what_changed() == {}
    result = s.flush()
    assert result.updated == 0 and result.round_trips == 0


def test_tz_aware_assignment_with_offset_and_microseconds(db: Any) -> None:
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    aware = datetime.datetime(2020, 1, 2, 5, 4, 5, 123456, tzinfo=plus2)
    s = uow.Session(db, tz_aware=True)
    o = A3Times(at=aware)
    s.add(o)
    s.commit()
    raw = stored(db, "a3_times", o.id)
    assert raw["at"] == MS
    assert o.at == MS.replace(tzinfo=datetime.timezone.utc)
    s2 = uow.Session(db, tz_aware=True)
    again = s2.get(A3Times, o.id)
    assert again is not None and again.at == o.at


def test_untracked_update_upsert_with_microseconds(db: Any) -> None:
    s = uow.Session(db)
    o = A3Times(at=US, ats=[US2])
    s.update(o, upsert=True)
    s.commit()
    raw = stored(db, "a3_times", o.id)
    assert raw["at"] == MS == o.at
    assert raw["ats"] == [MS2] == o.ats
