"""Two or three sessions interleaved on the same documents (hypothesis stateful).

A plain-Python model says what must be stored after every flush/commit:
``$inc`` deltas and appends (``$push``, list prefix, ``$addToSet``) add up,
``$max`` keeps the larger, a ``$set`` (of a dotted path for embedded documents
and dicts) is last-writer-wins. Read back with raw pymongo after every write.

SPEC: "Every operator is relative to what is *stored*, never to a default";
"(so two sessions appending to the same list both keep their items)";
"`"$inc"` (numbers: the delta since load)"; "nested documents and dicts diffed
to dotted paths".
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import uow
from uow import Document, Session, field

from ._h import SETTINGS, dc, fresh, stored, values

COLL = "a10_ctr"
WORDS = st.sampled_from(["a", "b", "c", "d", "e"])
SMALL = st.integers(-5, 5)


class Addr(uow.Embedded):
    city: str = "x"
    zip: str | None = None


class Ctr(Document):
    __collection__ = COLL
    name: str = ""
    hits: int = field(default=0, on_update="$inc")
    log: list[str] = field(factory=list)
    pushed: list[int] = field(factory=list, on_update="$push")
    tags: list[str] = field(factory=list, on_update="$addToSet")
    best: int = field(default=0, on_update="$max")
    addr: Addr = field(factory=Addr)
    meta: dict[str, int] = field(factory=dict)


def _append_part(old: list[Any], new: list[Any]) -> list[Any] | None:
    """The appended items when ``old`` is a prefix of ``new``, else None."""
    if len(new) >= len(old) and new[: len(old)] == old:
        return new[len(old) :]
    return None


def apply_ctr(store: dict[str, Any], snap: dict[str, Any], cur: dict[str, Any]) -> None:
    """What a flush of ``cur`` (base ``snap``) does to the stored document."""
    if cur["name"] != snap["name"]:
        store["name"] = cur["name"]
    if cur["hits"] != snap["hits"]:
        store["hits"] += cur["hits"] - snap["hits"]
    for key in ("log", "pushed"):
        if cur[key] != snap[key]:
            added = _append_part(snap[key], cur[key])
            store[key] = store[key] + added if added is not None else list(cur[key])
    if cur["tags"] != snap["tags"]:
        added = _append_part(snap["tags"], cur["tags"])
        if added is None:
            store["tags"] = list(cur["tags"])
        else:
            for t in added:
                if t not in store["tags"]:
                    store["tags"].append(t)
    if cur["best"] != snap["best"]:
        store["best"] = max(store["best"], cur["best"])
    for key in ("city", "zip"):
        if cur["addr"][key] != snap["addr"][key]:
            store["addr"][key] = cur["addr"][key]
    for key in set(snap["meta"]) | set(cur["meta"]):
        if key not in cur["meta"]:
            store["meta"].pop(key, None)
        elif snap["meta"].get(key, object()) != cur["meta"][key]:
            store["meta"][key] = cur["meta"][key]


class View:
    """One session's object for one document: the base of its next diff (snap)
    and what it must hold (mem)."""

    def __init__(self, obj: Any, snap: dict[str, Any]) -> None:
        self.obj = obj
        self.snap = dc(snap)
        self.mem = dc(snap)

    @property
    def dirty(self) -> bool:
        return self.mem != self.snap


def make_machine(db: Any, nsess: int, ndocs: int, txn: bool) -> type[RuleBasedStateMachine]:
    S = st.integers(0, nsess - 1)
    D = st.integers(0, ndocs - 1)

    class Interleaved(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            fresh(db, COLL)
            seed = Session(db)
            docs = [Ctr(name=f"n{i}") for i in range(ndocs)]
            seed.add_all(docs)
            seed.commit()
            seed.close()
            self.ids = [d.id for d in docs]
            self.store = {d.id: values(d) for d in docs}
            # Transactional sessions only ever commit (flush + commit at once):
            # a transaction left open would hold the documents against the
            # other sessions (a write conflict, not what this test is about).
            opts: dict[str, Any] = (
                {"autoflush": False} if txn else {"transactional": False, "autoflush": False}
            )
            self.sessions = [Session(db, **opts) for _ in range(nsess)]
            self.views: list[dict[int, View]] = [{} for _ in range(nsess)]
            self.detached: list[dict[int, View]] = [{} for _ in range(nsess)]

        def teardown(self) -> None:
            for s in self.sessions:
                s.rollback()
                s.close()

        # ---------------------------------------------------------- helpers
        def view(self, s: int, d: int) -> View:
            v = self.views[s].get(d)
            obj = self.sessions[s].get(Ctr, self.ids[d])
            if v is not None:
                assert obj is v.obj, "get() returned another object for a tracked id"
                return v
            assert obj is not None
            assert values(obj) == self.store[self.ids[d]], "a fresh load is not what is stored"
            v = self.views[s][d] = View(obj, self.store[self.ids[d]])
            return v

        def check_stored(self) -> None:
            for _id in self.ids:
                got = stored(db, COLL, _id)
                want = {"_id": _id, **self.store[_id]}
                assert got == want, f"stored {got!r}\nmodel  {want!r}"

        def write(self, s: int) -> None:
            sess = self.sessions[s]
            if txn:
                sess.commit()
            else:
                (sess.flush if s % 2 else sess.commit)()
            for v in self.views[s].values():
                if v.dirty:
                    apply_ctr(self.store[v.obj.id], v.snap, v.mem)
                    v.snap = dc(v.mem)
            self.check_stored()
            for v in self.views[s].values():
                assert values(v.obj) == v.mem, "a flush changed what the session holds"
                assert not sess.is_dirty(v.obj)

        # ------------------------------------------------------------ rules
        @rule(s=S, d=D)
        def load(self, s: int, d: int) -> None:
            self.view(s, d)

        @rule(s=S, d=D, value=WORDS)
        def set_name(self, s: int, d: int, value: str) -> None:
            v = self.view(s, d)
            v.obj.name = value
            v.mem["name"] = value

        @rule(s=S, d=D, delta=SMALL)
        def inc(self, s: int, d: int, delta: int) -> None:
            v = self.view(s, d)
            v.obj.hits += delta
            v.mem["hits"] += delta

        @rule(s=S, d=D, value=WORDS)
        def append_log(self, s: int, d: int, value: str) -> None:
            v = self.view(s, d)
            v.obj.log.append(value)
            v.mem["log"].append(value)

        @rule(s=S, d=D, value=st.lists(WORDS, max_size=3))
        def assign_log(self, s: int, d: int, value: list[str]) -> None:
            v = self.view(s, d)
            v.obj.log = list(value)
            v.mem["log"] = list(value)

        @rule(s=S, d=D)
        def pop_log(self, s: int, d: int) -> None:
            v = self.view(s, d)
            if v.mem["log"]:
                v.obj.log.pop(0)
                v.mem["log"].pop(0)

        @rule(s=S, d=D, value=SMALL)
        def push(self, s: int, d: int, value: int) -> None:
            v = self.view(s, d)
            v.obj.pushed.append(value)
            v.mem["pushed"].append(value)

        @rule(s=S, d=D, value=WORDS)
        def add_tag(self, s: int, d: int, value: str) -> None:
            v = self.view(s, d)
            # Only values the session does not hold yet: appending a duplicate
            # to a $addToSet list would make memory and store differ by design.
            if value not in v.mem["tags"]:
                v.obj.tags.append(value)
                v.mem["tags"].append(value)

        @rule(s=S, d=D, value=st.integers(0, 20))
        def set_best(self, s: int, d: int, value: int) -> None:
            v = self.view(s, d)
            v.obj.best = value
            v.mem["best"] = value

        @rule(s=S, d=D, value=WORDS)
        def set_city(self, s: int, d: int, value: str) -> None:
            v = self.view(s, d)
            v.obj.addr.city = value
            v.mem["addr"]["city"] = value

        @rule(s=S, d=D, value=st.none() | WORDS)
        def set_zip(self, s: int, d: int, value: str | None) -> None:
            v = self.view(s, d)
            v.obj.addr.zip = value
            v.mem["addr"]["zip"] = value

        @rule(s=S, d=D, city=WORDS)
        def assign_addr(self, s: int, d: int, city: str) -> None:
            # A new embedded value: diffed to dotted paths against the snapshot,
            # so a zip another session set survives when this one keeps None.
            v = self.view(s, d)
            zip_ = v.mem["addr"]["zip"]
            v.obj.addr = Addr(city=city, zip=zip_)
            v.mem["addr"] = {"city": city, "zip": zip_}

        @rule(s=S, d=D, key=WORDS, value=SMALL)
        def meta_set(self, s: int, d: int, key: str, value: int) -> None:
            v = self.view(s, d)
            v.obj.meta[key] = value
            v.mem["meta"][key] = value

        @rule(s=S, d=D, key=WORDS)
        def meta_del(self, s: int, d: int, key: str) -> None:
            v = self.view(s, d)
            if key in v.mem["meta"]:
                del v.obj.meta[key]
                del v.mem["meta"][key]

        @rule(s=S, d=D, key=WORDS, value=SMALL)
        def meta_assign(self, s: int, d: int, key: str, value: int) -> None:
            v = self.view(s, d)
            new = dict(v.mem["meta"])
            new[key] = value
            v.obj.meta = dict(new)
            v.mem["meta"] = new

        @rule(s=S, name=st.none() | st.sampled_from(["n0", "n1", "a", "b"]))
        def query(self, s: int, name: str | None) -> None:
            # autoflush is off: a query sends nothing, returns the tracked object
            # for a tracked id (never overwriting its changes, nor, as uow does,
            # refreshing a clean one) and loads the others as stored.
            q = self.sessions[s].query(Ctr)
            if name is not None:
                q = q.filter(Ctr.name == name)
            got = q.all()
            assert len({id(o) for o in got}) == len(got)
            for o in got:
                d = self.ids.index(o.id)
                v = self.views[s].get(d)
                if v is not None:
                    assert o is v.obj, "a query returned another object for a tracked id"
                    assert values(o) == v.mem, "a query overwrote what the session holds"
                else:
                    assert values(o) == self.store[o.id]
                    self.views[s][d] = View(o, self.store[o.id])
            want = {
                i
                for i, _id in enumerate(self.ids)
                if name is None or self.store[_id]["name"] == name
            }
            assert {self.ids.index(o.id) for o in got} == want

        @rule(s=S)
        def flush_or_commit(self, s: int) -> None:
            self.write(s)

        @rule(s=S, d=D)
        def refresh(self, s: int, d: int) -> None:
            v = self.views[s].get(d)
            if v is None:
                return
            self.sessions[s].refresh(v.obj)
            v.snap = dc(self.store[self.ids[d]])
            v.mem = dc(v.snap)
            assert values(v.obj) == v.mem, "refresh() did not read the stored values"

        @rule(s=S)
        def rollback(self, s: int) -> None:
            self.sessions[s].rollback()
            for v in self.views[s].values():
                v.mem = dc(v.snap)
                assert values(v.obj) == v.mem, "rollback() left unflushed values"

        @rule(s=S)
        def clear_queue(self, s: int) -> None:
            # In-memory changes of tracked documents stay (and are written later).
            self.sessions[s].clear_queue()

        @rule(s=S, d=D)
        def expunge(self, s: int, d: int) -> None:
            v = self.views[s].pop(d, None)
            if v is None:
                return
            self.sessions[s].expunge(v.obj)
            assert self.sessions[s].state(v.obj) is uow.ObjectState.DETACHED
            self.detached[s][d] = v

        @rule(s=S)
        def clear_cache(self, s: int) -> None:
            self.sessions[s].clear_cache()
            for d, v in list(self.views[s].items()):
                if not v.dirty:
                    del self.views[s][d]
                    self.detached[s][d] = v
                    assert self.sessions[s].state(v.obj) is uow.ObjectState.DETACHED
                else:
                    assert self.sessions[s].state(v.obj) is uow.ObjectState.PERSISTENT

        @precondition(lambda self: any(self.detached))
        @rule(s=S, d=D, delta=SMALL, value=WORDS)
        def change_detached(self, s: int, d: int, delta: int, value: str) -> None:
            v = self.detached[s].get(d)
            if v is None:
                return
            v.obj.hits += delta
            v.mem["hits"] += delta
            v.obj.log.append(value)
            v.mem["log"].append(value)

        @precondition(lambda self: any(self.detached))
        @rule(s=S, d=D)
        def re_add(self, s: int, d: int) -> None:
            # SPEC: add() of a DETACHED document "tracks it again with the
            # snapshot it had when it was last stored".
            if d not in self.detached[s] or d in self.views[s]:
                return
            v = self.detached[s].pop(d)
            self.sessions[s].add(v.obj)
            assert self.sessions[s].state(v.obj) is uow.ObjectState.PERSISTENT
            self.views[s][d] = v

        @invariant()
        def memory_is_untouched(self) -> None:
            for views in self.views:
                for v in views.values():
                    assert values(v.obj) == v.mem

    return Interleaved


@pytest.mark.parametrize("nsess", [2, 3])
def test_interleaved_sessions(db: Any, nsess: int) -> None:
    run_state_machine_as_test(make_machine(db, nsess, 2, txn=False), settings=SETTINGS)


@pytest.mark.transactions
@pytest.mark.parametrize("nsess", [2, 3])
def test_interleaved_sessions_transactional(db: Any, nsess: int) -> None:
    run_state_machine_as_test(make_machine(db, nsess, 2, txn=True), settings=SETTINGS)
