"""Keys missing from stored embedded documents (written before the field
existed), inside lists of embedded documents and dict values, then every
operator. SPEC: the first change of a missing field is a `$set` of its whole
value; later changes are minimal again; an untouched default is never written.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import assert_recent, emb, insert_raw, reload, stored


class MdInner(Embedded):
    v: int = 3


class MdLine(Embedded):
    sku: str = "?"
    qty: int = field(default=5, on_update="$inc")
    peak: int = field(default=5, on_update="$max")
    low: int = field(default=5, on_update="$min")
    log: list[str] = field(factory=lambda: ["d"], on_update="$push")
    marks: list[str] = field(factory=lambda: ["d"], on_update="$addToSet")
    whole: list[str] = field(factory=lambda: ["w"], on_update="$set")
    plain: str = "p"
    inner: MdInner = field(factory=MdInner)
    opts: dict[str, int] = field(factory=lambda: {"k": 1})
    when: datetime.datetime | None = field(default=None, on_update="$currentDate")


class MdDoc(Document):
    __collection__ = "md_docs"

    name: str
    lines: list[MdLine] = field(factory=list)
    by: dict[str, MdLine] = field(factory=dict)
    nested: dict[str, list[MdLine]] = field(factory=dict)
    one: MdLine = field(factory=MdLine)


# Stored before every MdLine field except sku existed.
OLD: dict[str, Any] = {
    "name": "o",
    "lines": [{"sku": "a"}, {"sku": "b"}],
    "by": {"a": {"sku": "a"}},
    "nested": {"g": [{"sku": "n0"}]},
    "one": {"sku": "one"},
}


def _old(db: Any) -> Any:
    return insert_raw(db, "md_docs", copy.deepcopy(OLD))


def _without_when(value: Any) -> Any:
    """The stored value without the `when` keys ($currentDate is the server's)."""
    if isinstance(value, dict):
        return {k: _without_when(v) for k, v in value.items() if k != "when"}
    if isinstance(value, list):
        return [_without_when(v) for v in value]
    return value


CASES = [
    ("qty", lambda el: setattr(el, "qty", el.qty + 1), 6),
    ("qty_dec", lambda el: setattr(el, "qty", el.qty - 7), -2),
    ("peak", lambda el: setattr(el, "peak", 3), 3),
    ("low", lambda el: setattr(el, "low", 9), 9),
    ("log", lambda el: el.log.append("x"), ["d", "x"]),
    ("marks", lambda el: el.marks.append("d"), ["d", "d"]),
    ("marks_new", lambda el: el.marks.append("x"), ["d", "x"]),
    ("whole", lambda el: el.whole.append("x"), ["w", "x"]),
    ("plain", lambda el: setattr(el, "plain", "q"), "q"),
    ("inner", lambda el: setattr(el.inner, "v", 4), {"v": 4}),
    ("opts", lambda el: el.opts.__setitem__("j", 2), {"k": 1, "j": 2}),
    ("opts_del", lambda el: el.opts.pop("k"), {}),
]
KEY = {"qty_dec": "qty", "marks_new": "marks", "opts_del": "opts"}

WHERE = {
    "list": (lambda d: d.lines[1], lambda raw: raw["lines"][1]),
    "dict": (lambda d: d.by["a"], lambda raw: raw["by"]["a"]),
    "dict_list": (lambda d: d.nested["g"][0], lambda raw: raw["nested"]["g"][0]),
    "single": (lambda d: d.one, lambda raw: raw["one"]),
}


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize(("name", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_missing_key_at_depth_first_change(
    db: Any, where: str, name: str, change: Any, expected: Any
) -> None:
    doc_id = _old(db)
    get, raw_at = WHERE[where]
    s = uow.Session(db)
    d = s.get(MdDoc, doc_id)
    line = get(d)
    change(line)
    s.commit()
    raw = stored(db, "md_docs", doc_id)
    key = KEY.get(name, name)
    sub = raw_at(raw)
    # "marks": $addToSet of an item already in the default still stores
    # ["d", "d"]: the first change of a missing key is a $set of the whole value.
    assert sub[key] == expected, (
        f"{where}.{key}: stored {sub.get(key)!r}, memory {emb(getattr(line, key))!r}"
    )
    assert sub[key] == emb(getattr(line, key))
    # untouched missing keys are not written, siblings are kept as stored
    want = copy.deepcopy(OLD)
    want["_id"] = doc_id
    raw_at(want)[key] = expected
    assert _without_when(raw) == want
    s.close()
    again = reload(db, MdDoc, doc_id)
    assert emb(getattr(get(again), key)) == expected


@pytest.mark.parametrize("where", list(WHERE))
def test_missing_keys_at_depth_second_flush_minimal_and_concurrent(db: Any, where: str) -> None:
    doc_id = _old(db)
    get, raw_at = WHERE[where]
    s = uow.Session(db)
    d = s.get(MdDoc, doc_id)
    line = get(d)
    line.qty += 1
    line.log.append("x")
    line.peak = 8
    s.commit()
    # now the keys exist; another writer changes them
    path = {
        "list": "lines.1",
        "dict": "by.a",
        "dict_list": "nested.g.0",
        "single": "one",
    }[where]
    db["md_docs"].update_one(
        {"_id": doc_id},
        {
            "$inc": {f"{path}.qty": 100},
            "$push": {f"{path}.log": "other"},
            "$max": {f"{path}.peak": 50},
        },
    )
    line.qty += 1
    line.log.append("y")
    line.peak = 9
    s.commit()
    sub = raw_at(stored(db, "md_docs", doc_id))
    assert sub["qty"] == 107
    assert sub["log"] == ["d", "x", "other", "y"]
    assert sub["peak"] == 50
    s.close()


def test_missing_current_date_inside_list_element_is_set_by_server(db: Any) -> None:
    doc_id = _old(db)
    s = uow.Session(db)
    d = s.get(MdDoc, doc_id)
    d.lines[0].plain = "changed"
    s.commit()
    raw = stored(db, "md_docs", doc_id)
    # Reading chosen: "$currentDate (the server sets it on every update of the
    # document)" applies to an embedded field too: the element's `when` is set.
    assert _without_when(raw["lines"][0]) == {"sku": "a", "plain": "changed"}
    assert_recent(raw["lines"][0].get("when"))
    # reloaded on its next read
    assert d.lines[0].when == raw["lines"][0]["when"]
    s.close()


def test_missing_keys_then_append_element_in_same_flush(db: Any) -> None:
    doc_id = _old(db)
    s = uow.Session(db)
    d = s.get(MdDoc, doc_id)
    d.lines[0].qty += 2
    d.lines.append(MdLine(sku="c"))
    s.commit()
    raw = stored(db, "md_docs", doc_id)
    assert raw["lines"][0]["qty"] == 7
    assert raw["lines"][2]["sku"] == "c"
    assert raw["lines"][2]["qty"] == 5
    assert len(raw["lines"]) == 3
    s.close()
    again = reload(db, MdDoc, doc_id)
    assert [el.qty for el in again.lines] == [7, 5, 5]


def test_missing_whole_list_then_inc_in_element_of_default_list(db: Any) -> None:
    """The stored document lacks `lines` entirely; its default is [] and the user
    appends an element then changes it before the flush."""
    doc_id = insert_raw(db, "md_docs", {"name": "bare"})
    s = uow.Session(db)
    d = s.get(MdDoc, doc_id)
    d.lines.append(MdLine(sku="z"))
    d.lines[0].qty += 1
    d.by["k"] = MdLine(sku="k")
    d.by["k"].log.append("e")
    d.one.qty += 10
    s.commit()
    raw = stored(db, "md_docs", doc_id)
    assert _without_when(raw["lines"]) == _without_when(emb(d.lines))
    assert raw["lines"][0]["qty"] == 6
    assert raw["by"]["k"]["log"] == ["d", "e"]
    assert raw["one"]["qty"] == 15
    assert raw["one"]["sku"] == "?"
    s.close()


def test_missing_dict_value_keys_two_sessions_inc(db: Any) -> None:
    """Both sessions load the element without `qty` (default 5) and add 1.
    Each saw a missing key, so each first change is a $set of 6; after each
    flush the stored document equals what that session holds (6), never a
    value relative to a default twice (11 or 12)."""
    doc_id = _old(db)
    s1, s2 = uow.Session(db), uow.Session(db)
    a, b = s1.get(MdDoc, doc_id), s2.get(MdDoc, doc_id)
    a.by["a"].qty += 1
    b.by["a"].qty += 1
    s2.commit()
    s1.commit()
    raw = stored(db, "md_docs", doc_id)
    assert _without_when(raw["by"]["a"]) == {"sku": "a", "qty": 6}
    # Every update of the document stamps the element (the server's $currentDate),
    # and the flush reads the stamp back: memory holds what is stored.
    assert raw["by"]["a"]["when"] == a.by["a"].when
    assert a.by["a"].qty == b.by["a"].qty == 6
    s1.close()
    s2.close()


def test_current_date_in_single_embedded_set_when_the_document_is_updated(db: Any) -> None:
    """`one` is a single embedded document whose field declares $currentDate;
    SPEC: "the server sets it on every update of the document" and "a declared
    on_update applies wherever the field lives"."""
    doc_id = _old(db)
    s = uow.Session(db)
    d = s.get(MdDoc, doc_id)
    d.one.plain = "changed"
    s.commit()
    raw = stored(db, "md_docs", doc_id)
    assert _without_when(raw["one"]) == {"sku": "one", "plain": "changed"}
    assert_recent(raw["one"].get("when"))
    # reloaded on its next read
    assert d.one.when == raw["one"]["when"]
    s.close()
