"""Documents stored by an "older class", loaded by the new one, changed, flushed.

SPEC: "A key missing from the stored document (a field added to the class
later, with a default) is known as missing: the first change of that field is a
`$set` of its whole value"; "Loading a document whose stored form has keys the
class does not declare keeps those keys and writes them back untouched";
"Unknown stored keys are kept at every depth, inside embedded documents and
list elements too"; "Stored values of another type than declared (legacy data)
load as they are and never block a flush: a flush validates what this session
changed, not what it merely loaded."; "Paths at any depth are diffed ... a list
that lost, gained (other than by appending) or reordered elements is `$set`
whole."

The model keeps the stored document (``T``), what the object holds (``M``, with
each list element's unknown keys and a private ``__uid`` to follow it through a
reordering) and the snapshot of the last load/flush (``P``).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import uow
from uow import Document, Session, field

from ._h import SETTINGS, dc, fresh, stored, values

COLL = "a10_legacy"
WORDS = st.sampled_from(["a", "b", "c"])
_uids = itertools.count()


class Line(uow.Embedded):
    sku: str = ""
    qty: int = field(default=1, on_update="$inc")
    notes: list[str] = field(factory=list)


class Spot(uow.Embedded):
    city: str = "x"
    zip: str | None = None


def _default_tags() -> list[str]:
    return ["a"]


class New(Document):
    __collection__ = COLL
    name: str = ""
    count: int = field(default=5, on_update="$inc")
    tags: list[str] = field(factory=_default_tags)
    spot: Spot = field(factory=Spot)
    meta: dict[str, int] = field(factory=dict)
    lines: list[Line] = field(factory=list)
    best: int = field(default=0, on_update="$max")


DEFAULTS: dict[str, Any] = {
    "name": "",
    "count": 5,
    "tags": ["a"],
    "spot": {"city": "x", "zip": None},
    "meta": {},
    "lines": [],
    "best": 0,
}
LINE_KEYS = ("sku", "qty", "notes")
LINE_DEFAULTS: dict[str, Any] = {"sku": "", "qty": 1, "notes": []}
SPOT_KEYS = ("city", "zip")
FIELDS = tuple(DEFAULTS)

# ------------------------------------------------------------ legacy documents
EXTRA = st.sampled_from(["old", 7, None, [1, {"deep": "x"}], {"k": {"kk": 1}}])


def _maybe_missing(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(KeyError), strategy)


@st.composite
def legacy_line(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, strat in (
        ("sku", st.one_of(WORDS, st.integers(0, 9))),  # an int sku is legacy
        ("qty", st.one_of(st.integers(0, 5), st.just("2"))),  # "2" is legacy
        ("notes", st.lists(WORDS, max_size=2)),
    ):
        if draw(st.booleans()) or key == "sku":
            out[key] = draw(strat)
    if draw(st.booleans()):
        out["legacy_note"] = draw(EXTRA)
    return out


@st.composite
def legacy_doc(draw: st.DrawFn) -> dict[str, Any]:
    choices: dict[str, st.SearchStrategy[Any]] = {
        "name": st.one_of(WORDS, st.integers(0, 3)),
        "count": st.one_of(st.integers(0, 9), st.just("7")),
        "tags": st.one_of(st.lists(WORDS, max_size=2), st.just(["a", 3]), st.just("csv")),
        "spot": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "city": WORDS,
                    "zip": st.one_of(st.none(), WORDS, st.just(5)),
                    "floor": EXTRA,
                },
            ),
            st.just("Oslo"),
        ),
        "meta": st.dictionaries(WORDS, st.one_of(st.integers(0, 3), st.just("x")), max_size=2),
        "lines": st.lists(legacy_line(), max_size=3),
        "best": st.integers(0, 9),
    }
    doc: dict[str, Any] = {}
    for key, strat in choices.items():
        value = draw(_maybe_missing(strat))
        if value is not KeyError:
            doc[key] = value
    if draw(st.booleans()):
        doc["removed_field"] = draw(EXTRA)
    return doc


# ----------------------------------------------------------------- the model
def load(stored_doc: dict[str, Any]) -> dict[str, Any]:
    """What the new class holds for a stored document (plus unknown nested keys)."""
    out: dict[str, Any] = {}
    for f in FIELDS:
        if f not in stored_doc:
            out[f] = dc(DEFAULTS[f])
            continue
        value = dc(stored_doc[f])
        if f == "spot" and isinstance(value, dict):
            value = {"city": "x", "zip": None, **value}
        if f == "lines" and isinstance(value, list):
            value = [{**dc(LINE_DEFAULTS), **e, "__uid": next(_uids)} for e in value]
        out[f] = value
    return out


def memory_view(m: dict[str, Any]) -> dict[str, Any]:
    """``M`` as values(obj) reads it: declared keys only."""
    out = dict(m)
    if isinstance(m["spot"], dict):
        out["spot"] = {k: m["spot"][k] for k in SPOT_KEYS}
    if isinstance(m["lines"], list):
        out["lines"] = [{k: e[k] for k in LINE_KEYS} for e in m["lines"]]
    return out


def whole_line(e: dict[str, Any]) -> dict[str, Any]:
    return {k: dc(v) for k, v in e.items() if k != "__uid"}


def by_value(m: dict[str, Any]) -> dict[str, Any]:
    """``m`` without the private element ids: what a change is judged by (a
    reordering of equal elements is no change)."""
    out = dict(m)
    if isinstance(m["lines"], list):
        out["lines"] = [whole_line(e) for e in m["lines"]]
    return out


def normalize_lines(value: Any) -> Any:
    """Stored list elements with their missing keys read as the defaults."""
    if not isinstance(value, list):
        return value
    return [{**dc(LINE_DEFAULTS), **e} if isinstance(e, dict) else e for e in value]


def whole(f: str, value: Any) -> Any:
    if f == "lines" and isinstance(value, list):
        return [whole_line(e) for e in value]
    return dc(value)


def _push_or_set(t: Any, p: Any, m: Any) -> Any:
    if isinstance(t, list) and isinstance(p, list) and m[: len(p)] == p:
        return t + dc(m[len(p) :])
    return dc(m)


def apply_flush(t: dict[str, Any], p: dict[str, Any], m: dict[str, Any]) -> None:
    pv, mv = by_value(p), by_value(m)
    for f in FIELDS:
        old, new = p[f], m[f]
        if pv[f] == mv[f]:
            continue
        if f not in t:
            t[f] = whole(f, new)
        elif f == "count":
            both = all(isinstance(x, int) for x in (t[f], old, new))
            t[f] = t[f] + new - old if both else new
        elif f == "best":
            t[f] = max(t[f], new) if isinstance(t[f], int) else new
        elif f == "tags":
            t[f] = _push_or_set(t[f], old, new)
        elif f in {"meta", "spot"}:
            if isinstance(old, dict) and isinstance(t[f], dict):
                for k in set(old) | set(new):
                    if k not in new:
                        t[f].pop(k, None)
                    elif old.get(k, KeyError) != new[k]:
                        t[f][k] = new[k]
            else:
                t[f] = dc(new)
        elif f == "lines":
            apply_lines(t, old, new)
        else:  # name: $set
            t[f] = dc(new)


def apply_lines(t: dict[str, Any], old: Any, new: Any) -> None:
    if not (isinstance(old, list) and isinstance(t["lines"], list)):
        t["lines"] = whole("lines", new)
        return
    puids = [e["__uid"] for e in old]
    muids = [e["__uid"] for e in new]
    if muids[: len(puids)] == puids:
        # Same elements in the same order, maybe some appended: each kept
        # element is diffed on its positional path, the new ones are pushed.
        for i, (pe, me) in enumerate(zip(old, new[: len(old)], strict=True)):
            te = t["lines"][i]
            for k in LINE_KEYS:
                if pe[k] == me[k]:
                    continue
                if k not in te:
                    te[k] = dc(me[k])
                elif k == "qty" and all(isinstance(x, int) for x in (te[k], pe[k], me[k])):
                    te[k] += me[k] - pe[k]
                elif k == "notes":
                    te[k] = _push_or_set(te[k], pe[k], me[k])
                else:
                    te[k] = dc(me[k])
        t["lines"] = t["lines"] + [whole_line(e) for e in new[len(old) :]]
    else:
        t["lines"] = whole("lines", new)


# ------------------------------------------------------------------ machine
def make_machine(db: Any) -> type[RuleBasedStateMachine]:
    class Legacy(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            fresh(db, COLL)
            self.s = Session(db, transactional=False)
            self.obj: Any = None

        @initialize(doc=legacy_doc())
        def setup(self, doc: dict[str, Any]) -> None:
            self.id = db[COLL].insert_one(dict(doc)).inserted_id
            self.t = dc(doc)
            self.reload()

        def teardown(self) -> None:
            self.s.rollback()
            self.s.close()

        def reload(self) -> None:
            self.obj = self.s.get(New, self.id)
            assert self.obj is not None
            self.m = load(self.t)
            self.p = dc(self.m)

        def check_stored(self) -> None:
            got = stored(db, COLL, self.id)
            assert got == {"_id": self.id, **self.t}, f"stored {got!r}\nmodel  {self.t!r}"

        def reordered(self) -> bool:
            old, new = self.p["lines"], self.m["lines"]
            if not (isinstance(old, list) and isinstance(new, list)):
                return False
            puids = [e["__uid"] for e in old]
            return [e["__uid"] for e in new][: len(puids)] != puids

        def lines(self) -> bool:
            return isinstance(self.m["lines"], list) and bool(self.m["lines"])

        # ------------------------------------------------------------ changes
        @rule(v=WORDS)
        def set_name(self, v: str) -> None:
            self.obj.name = v
            self.m["name"] = v

        @precondition(lambda self: isinstance(self.m["count"], int))
        @rule(d=st.integers(-3, 3))
        def inc_count(self, d: int) -> None:
            self.obj.count += d
            self.m["count"] += d

        @rule(v=st.integers(0, 9))
        def assign_count(self, v: int) -> None:
            self.obj.count = v
            self.m["count"] = v

        @rule(v=st.integers(0, 12))
        def set_best(self, v: int) -> None:
            self.obj.best = v
            self.m["best"] = v

        @precondition(lambda self: isinstance(self.m["tags"], list))
        @rule(v=WORDS)
        def append_tag(self, v: str) -> None:
            self.obj.tags.append(v)
            self.m["tags"].append(v)

        @rule(v=st.lists(WORDS, max_size=2))
        def assign_tags(self, v: list[str]) -> None:
            self.obj.tags = list(v)
            self.m["tags"] = list(v)

        @precondition(lambda self: isinstance(self.m["spot"], dict))
        @rule(v=WORDS)
        def set_city(self, v: str) -> None:
            self.obj.spot.city = v
            self.m["spot"]["city"] = v

        @precondition(lambda self: isinstance(self.m["spot"], dict))
        @rule(v=st.none() | WORDS)
        def set_zip(self, v: str | None) -> None:
            self.obj.spot.zip = v
            self.m["spot"]["zip"] = v

        @rule(city=WORDS)
        def assign_spot(self, city: str) -> None:
            # A new embedded value is diffed key by key against what was loaded.
            # SPEC ambiguity ("Unknown stored keys are kept at every depth"): the
            # unknown keys belonged to the replaced value, and uow unsets them
            # ($unset spot.floor); the model follows uow here.
            self.obj.spot = Spot(city=city)
            self.m["spot"] = {"city": city, "zip": None}

        @precondition(lambda self: isinstance(self.m["meta"], dict))
        @rule(k=WORDS, v=st.integers(0, 3))
        def meta_set(self, k: str, v: int) -> None:
            self.obj.meta[k] = v
            self.m["meta"][k] = v

        @precondition(lambda self: isinstance(self.m["meta"], dict))
        @rule(k=WORDS)
        def meta_del(self, k: str) -> None:
            if k in self.m["meta"]:
                del self.obj.meta[k]
                del self.m["meta"][k]

        @precondition(lines)
        @rule(i=st.integers(0, 2), v=WORDS)
        def line_sku(self, i: int, v: str) -> None:
            i %= len(self.m["lines"])
            self.obj.lines[i].sku = v
            self.m["lines"][i]["sku"] = v

        @precondition(lines)
        @rule(i=st.integers(0, 2), d=st.integers(1, 3))
        def line_inc(self, i: int, d: int) -> None:
            i %= len(self.m["lines"])
            if isinstance(self.m["lines"][i]["qty"], int):
                self.obj.lines[i].qty += d
                self.m["lines"][i]["qty"] += d

        @precondition(lines)
        @rule(i=st.integers(0, 2), v=WORDS)
        def line_note(self, i: int, v: str) -> None:
            i %= len(self.m["lines"])
            self.obj.lines[i].notes.append(v)
            self.m["lines"][i]["notes"].append(v)

        @precondition(lambda self: isinstance(self.m["lines"], list))
        @rule(sku=WORDS)
        def append_line(self, sku: str) -> None:
            self.obj.lines.append(Line(sku=sku))
            self.m["lines"].append({**dc(LINE_DEFAULTS), "sku": sku, "__uid": next(_uids)})

        def lines_valid(self) -> bool:
            # Known bug, see test_legacy_element_does_not_block_a_whole_list_write:
            # a list rewritten whole may be refused for a legacy value it holds.
            return self.lines() and all(
                isinstance(e["sku"], str) and isinstance(e["qty"], int) for e in self.m["lines"]
            )

        @precondition(lines_valid)
        @rule()
        def reverse_lines(self) -> None:
            self.obj.lines.reverse()
            self.m["lines"].reverse()

        @precondition(lines_valid)
        @rule()
        def pop_line(self) -> None:
            self.obj.lines.pop(0)
            self.m["lines"].pop(0)

        # ---------------------------------------------------- session calls
        @rule(commit=st.booleans())
        def flush(self, commit: bool) -> None:
            (self.s.commit if commit else self.s.flush)()
            reordered = self.reordered()
            apply_flush(self.t, self.p, self.m)
            if reordered:
                # A reordered list: $set whole, or (uow, when the reordering
                # cannot be told from changes in place) positional paths. Either
                # way the elements must read back as memory holds them, unknown
                # keys included; the model adopts what was stored.
                got = stored(db, COLL, self.id)
                assert got is not None
                assert normalize_lines(got["lines"]) == normalize_lines(self.t["lines"])
                self.t["lines"] = got["lines"]
            self.p = dc(self.m)
            self.check_stored()
            assert not self.s.is_dirty(self.obj)

        @rule()
        def refresh(self) -> None:
            self.s.refresh(self.obj)
            self.m = load(self.t)
            self.p = dc(self.m)

        @rule()
        def rollback(self) -> None:
            self.s.rollback()
            self.m = dc(self.p)

        @rule()
        def clear_queue(self) -> None:
            self.s.clear_queue()

        @rule()
        def expunge_and_reload(self) -> None:
            self.s.expunge(self.obj)
            self.reload()

        @rule()
        def clear_cache(self) -> None:
            self.s.clear_cache()
            if by_value(self.m) == by_value(self.p):
                assert self.s.state(self.obj) is uow.ObjectState.DETACHED
                self.reload()

        @invariant()
        def memory(self) -> None:
            if self.obj is not None:
                assert values(self.obj) == memory_view(self.m)

    return Legacy


def test_legacy_documents(db: Any) -> None:
    run_state_machine_as_test(make_machine(db), settings=SETTINGS)


def test_legacy_plain_example(db: Any) -> None:
    """One hand-written case of everything above at once."""
    fresh(db, COLL)
    raw = {
        "name": 3,  # legacy type
        "tags": ["a", 3],  # a legacy element
        "spot": {"city": "Oslo", "floor": 4},  # unknown key, zip missing
        "lines": [{"sku": 9, "legacy_note": "x"}, {"sku": "b", "qty": 2}],
        "removed_field": {"k": [1, 2]},
    }
    _id = db[COLL].insert_one(dict(raw)).inserted_id
    s = Session(db)
    o = s.get(New, _id)
    assert o is not None
    o.count += 1  # missing: stored whole, 5 + 1
    o.spot.city = "Bergen"
    o.lines[1].qty += 1
    o.tags.append("b")
    s.commit()
    got = stored(db, COLL, _id)
    assert got == {
        "_id": _id,
        "name": 3,
        "count": 6,
        "tags": ["a", 3, "b"],
        "spot": {"city": "Bergen", "floor": 4},
        "lines": [{"sku": 9, "legacy_note": "x"}, {"sku": "b", "qty": 3}],
        "removed_field": {"k": [1, 2]},
    }
    s.close()


def _reads_back_as_memory(db: Any, o: New) -> None:
    """What is stored, loaded by a fresh session, is what ``o`` holds."""
    fresh = Session(db)
    back = fresh.get(New, o.id)
    assert back is not None and back.to_bson() == o.to_bson()
    fresh.close()


@pytest.mark.parametrize(
    "case",
    [
        "tags_pop",
        "lines_reorder",
    ],
)
def test_legacy_element_does_not_block_a_whole_list_write(db: Any, case: str) -> None:
    """SPEC: "Stored values of another type than declared (legacy data) load as
    they are and never block a flush: a flush validates what this session
    changed, not what it merely loaded." The session removes or moves other
    elements; the legacy one was only loaded (uow: ValidationError
    "New.tags[0]: expected str, got int (3)" / "New.lines.0.sku: expected str,
    got int (0)"). Inconsistently, ``lines.reverse()`` alone is accepted."""
    fresh(db, COLL)
    raw = {"tags": ["a", 3, "c"]} if case == "tags_pop" else {"lines": [{"sku": "a"}, {"sku": 0}]}
    _id = db[COLL].insert_one(dict(raw)).inserted_id
    s = Session(db)
    o = s.get(New, _id)
    assert o is not None
    if case == "tags_pop":
        o.tags.pop(0)
        want = {"tags": [3, "c"]}
    else:
        o.lines[0].qty += 1
        o.lines[1].qty += 1
        o.lines.reverse()
        # (a key the loaded element lacked, held as its default, may stay absent)
        want = {"lines": [{"sku": 0, "qty": 2}, {"sku": "a", "qty": 2}]}
    s.commit()
    got = stored(db, COLL, _id)
    assert got is not None
    if case == "lines_reorder":
        got["lines"] = [{k: v for k, v in line.items() if k != "notes"} for line in got["lines"]]
        assert o.lines[0].notes == [] and o.lines[1].notes == []
    assert {k: v for k, v in got.items() if k != "_id"}.items() >= want.items()
    _reads_back_as_memory(db, o)
    s.close()


def test_a_wrong_value_put_in_a_changed_element_is_still_refused(db: Any) -> None:
    """The other side of the rule above: what this session put inside a changed
    element (here a number in a ``list[str]`` of an element that also moved) is
    refused, the legacy value beside it notwithstanding, and nothing is written."""
    fresh(db, COLL)
    raw = {"lines": [{"sku": "a"}, {"sku": 0}]}
    _id = db[COLL].insert_one(dict(raw)).inserted_id
    s = Session(db)
    o = s.get(New, _id)
    assert o is not None
    o.lines[1].qty += 1
    o.lines[0].notes.append(5)  # type: ignore[arg-type]
    o.lines.reverse()
    with pytest.raises(uow.ValidationError, match="notes"):
        s.flush()
    got = stored(db, COLL, _id)
    assert got is not None and got["lines"] == raw["lines"]
    s.rollback()
    _reads_back_as_memory(db, o)  # rolled back: memory is the store again
    s.close()


def test_a_legacy_value_moved_between_elements_does_not_block(db: Any) -> None:
    """A legacy value the session only moved (elements reordered, one of their
    fields changed) is written where it now is, as it was loaded."""
    fresh(db, COLL)
    raw = {"lines": [{"sku": 1, "notes": ["x", 2]}, {"sku": "b"}, {"sku": "c"}]}
    _id = db[COLL].insert_one(dict(raw)).inserted_id
    s = Session(db)
    o = s.get(New, _id)
    assert o is not None
    for line in o.lines:
        line.qty += 1
    o.lines.insert(0, o.lines.pop())
    s.commit()
    got = stored(db, COLL, _id)
    assert got is not None
    assert [(line["sku"], line.get("qty")) for line in got["lines"]] == [("c", 2), (1, 2), ("b", 2)]
    assert got["lines"][1]["notes"] == ["x", 2]
    _reads_back_as_memory(db, o)
    s.close()
