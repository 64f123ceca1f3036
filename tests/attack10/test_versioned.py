"""Interleaved sessions on documents with a ``version=True`` field.

SPEC: "A field with `version=True` makes updates and deletes conditional on the
version loaded and bumps it; a lost race raises `uow.StaleDocumentError` and
nothing of that flush is silently skipped." and "whatever was not applied stays
queued, so fixing the cause and flushing again finishes the work."

The model knows which documents are stale (the version a session based its
change on is not the stored one); the error's ``applied`` list says which of the
others landed (all of them without a transaction; none when the transaction was
aborted), and the stored documents must agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import uow
from uow import Document, Session, field

from ._h import SETTINGS, dc, fresh, stored, values

COLL = "a10_ver"
WORDS = st.sampled_from(["a", "b", "c"])


class Ver(Document):
    __collection__ = COLL
    name: str = ""
    n: int = field(default=0, on_update="$inc")
    items: list[str] = field(factory=list)
    version: int = field(default=0, version=True)


def apply_ver(store: dict[str, Any], snap: dict[str, Any], cur: dict[str, Any]) -> None:
    if cur["name"] != snap["name"]:
        store["name"] = cur["name"]
    if cur["n"] != snap["n"]:
        store["n"] += cur["n"] - snap["n"]
    if cur["items"] != snap["items"]:
        old, new = snap["items"], cur["items"]
        if new[: len(old)] == old:
            store["items"] = store["items"] + new[len(old) :]
        else:
            store["items"] = list(new)
    store["version"] += 1


class View:
    def __init__(self, obj: Any, snap: dict[str, Any]) -> None:
        self.obj = obj
        self.snap = dc(snap)
        self.mem = dc(snap)
        self.deleting = False

    @property
    def dirty(self) -> bool:
        return self.deleting or self.mem != self.snap


def make_machine(db: Any, nsess: int, ndocs: int, txn: bool) -> type[RuleBasedStateMachine]:
    S = st.integers(0, nsess - 1)
    D = st.integers(0, ndocs - 1)

    class Versioned(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            fresh(db, COLL)
            seed = Session(db)
            docs = [Ver(name=f"n{i}") for i in range(ndocs)]
            seed.add_all(docs)
            seed.commit()
            seed.close()
            self.ids = [d.id for d in docs]
            self.store: dict[Any, dict[str, Any] | None] = {d.id: values(d) for d in docs}
            opts: dict[str, Any] = (
                {"autoflush": False} if txn else {"transactional": False, "autoflush": False}
            )
            self.sessions = [Session(db, **opts) for _ in range(nsess)]
            self.views: list[dict[int, View]] = [{} for _ in range(nsess)]
            self.stale_seen = 0

        def teardown(self) -> None:
            for s in self.sessions:
                s.rollback()
                s.close()

        def view(self, s: int, d: int) -> View | None:
            v = self.views[s].get(d)
            if v is not None:
                if v.deleting:
                    return None
                assert self.sessions[s].get(Ver, self.ids[d]) is v.obj
                return v
            obj = self.sessions[s].get(Ver, self.ids[d])
            want = self.store[self.ids[d]]
            if want is None:
                assert obj is None, "get() found a deleted document"
                return None
            assert obj is not None
            assert values(obj) == want
            v = self.views[s][d] = View(obj, want)
            return v

        def check_stored(self) -> None:
            for _id in self.ids:
                want = self.store[_id]
                got = stored(db, COLL, _id)
                assert got == (None if want is None else {"_id": _id, **want}), (
                    f"stored {got!r}, model {want!r}"
                )

        @rule(s=S, d=D)
        def load(self, s: int, d: int) -> None:
            self.view(s, d)

        @rule(s=S, d=D, value=WORDS)
        def set_name(self, s: int, d: int, value: str) -> None:
            v = self.view(s, d)
            if v is not None:
                v.obj.name = value
                v.mem["name"] = value

        @rule(s=S, d=D, delta=st.integers(1, 3))
        def inc(self, s: int, d: int, delta: int) -> None:
            v = self.view(s, d)
            if v is not None:
                v.obj.n += delta
                v.mem["n"] += delta

        @rule(s=S, d=D, value=WORDS)
        def append(self, s: int, d: int, value: str) -> None:
            v = self.view(s, d)
            if v is not None:
                v.obj.items.append(value)
                v.mem["items"].append(value)

        @rule(s=S, d=D)
        def delete(self, s: int, d: int) -> None:
            v = self.view(s, d)
            if v is not None:
                self.sessions[s].delete(v.obj)
                v.deleting = True

        @rule(s=S)
        def flush_or_commit(self, s: int) -> None:
            sess = self.sessions[s]
            dirty = [v for v in self.views[s].values() if v.dirty]
            stale = [
                v
                for v in dirty
                if self.store[v.obj.id] is None
                or self.store[v.obj.id]["version"] != v.snap["version"]
            ]
            for v in stale:
                if self._same_result(v):
                    # Known bug, see test_lost_race_with_identical_result_is_reported:
                    # a stale document whose change would leave exactly what the
                    # winner stored is taken as written (no StaleDocumentError) when
                    # the batch holds another document. Not flushed here.
                    self.rollback(s)
                    return
            try:
                if txn or s % 2 == 0:
                    sess.commit()
                else:
                    sess.flush()
            except uow.StaleDocumentError as err:
                assert stale, f"StaleDocumentError with no stale document: {err}"
                self.stale_seen += 1
                applied = {id(o) for o in err.applied}
                not_applied = {id(o) for o in err.not_applied}
                in_doubt = {id(o) for o in err.in_doubt}
                for v in stale:
                    assert id(v.obj) in not_applied | in_doubt, (
                        "a stale document is in neither not_applied nor in_doubt"
                    )
                    assert id(v.obj) not in applied
                landed = [v for v in dirty if id(v.obj) in applied]
                if txn:
                    assert not landed, "documents reported applied in an aborted transaction"
                if in_doubt:
                    self._resolve_in_doubt(s, [v for v in dirty if id(v.obj) in in_doubt])
                    assert not landed
                    return
            else:
                assert not stale, "a lost race was not reported (StaleDocumentError expected)"
                landed = dirty
            for v in landed:
                if v.deleting:
                    self.store[v.obj.id] = None
                    del self.views[s][self.ids.index(v.obj.id)]
                    assert sess.state(v.obj) is uow.ObjectState.DETACHED
                    continue
                apply_ver(self.store[v.obj.id], v.snap, v.mem)
                v.mem["version"] = v.snap["version"] + 1
                v.snap = dc(v.mem)
            self.check_stored()
            for v in self.views[s].values():
                # Not applied: still queued, memory as the user left it.
                assert sess.is_dirty(v.obj) == v.dirty or v.deleting
                if v.deleting:
                    assert sess.state(v.obj) is uow.ObjectState.DELETED

        def _resolve_in_doubt(self, s: int, views: list[View]) -> None:
            """SPEC: where the outcome "cannot be known ... the documents are listed
            in `in_doubt`". Each stored document must be one of the two outcomes;
            the model follows what is stored, then the session rolls back."""
            for v in views:
                _id = v.obj.id
                got = stored(db, COLL, _id)
                before = self.store[_id]
                if v.deleting or before is None:
                    after = None
                else:
                    after = dc(v.snap)
                    apply_ver(after, v.snap, v.mem)
                outcomes = [None if x is None else {"_id": _id, **x} for x in (before, after)]
                assert got in outcomes, f"in_doubt {_id}: stored {got!r}, outcomes {outcomes!r}"
                self.store[_id] = (
                    None if got is None else {k: val for k, val in got.items() if k != "_id"}
                )
            self.check_stored()
            self.rollback(s)

        def _same_result(self, v: View) -> bool:
            now = self.store[v.obj.id]
            if now is None or v.deleting:
                return False
            would = dc(v.snap)
            apply_ver(would, v.snap, v.mem)
            return would == now

        @rule(s=S, d=D)
        def refresh(self, s: int, d: int) -> None:
            v = self.views[s].get(d)
            if v is None or v.deleting:
                return
            want = self.store[self.ids[d]]
            if want is None:
                return  # refresh of a vanished document: not this test's subject
            if txn:
                # Known bug, see test_refresh_survives_an_aborted_transaction: on
                # the transactional lane a later aborted transaction (or rollback)
                # puts a refreshed document back to its pre-refresh snapshot. Here
                # the session forgets the document and loads it again instead.
                self.sessions[s].expunge(v.obj)
                del self.views[s][d]
                self.view(s, d)
                return
            self.sessions[s].refresh(v.obj)
            v.snap = dc(want)
            v.mem = dc(want)

        @rule(s=S)
        def rollback(self, s: int) -> None:
            self.sessions[s].rollback()
            for v in self.views[s].values():
                v.mem = dc(v.snap)
                v.deleting = False
                assert self.sessions[s].state(v.obj) is uow.ObjectState.PERSISTENT

        @rule(s=S, d=D)
        def expunge(self, s: int, d: int) -> None:
            v = self.views[s].pop(d, None)
            if v is not None:
                self.sessions[s].expunge(v.obj)

        @rule(s=S)
        def clear_cache(self, s: int) -> None:
            self.sessions[s].clear_cache()
            for d, v in list(self.views[s].items()):
                if not v.dirty:
                    del self.views[s][d]

        @invariant()
        def memory_is_untouched(self) -> None:
            for views in self.views:
                for v in views.values():
                    assert values(v.obj) == v.mem

    return Versioned


@pytest.mark.parametrize("nsess", [2, 3])
def test_versioned_interleaved(db: Any, nsess: int) -> None:
    run_state_machine_as_test(make_machine(db, nsess, 2, txn=False), settings=SETTINGS)


@pytest.mark.transactions
@pytest.mark.parametrize("nsess", [2, 3])
def test_versioned_interleaved_transactional(db: Any, nsess: int) -> None:
    run_state_machine_as_test(make_machine(db, nsess, 2, txn=True), settings=SETTINGS)


def test_lost_race_with_identical_result_is_reported(db: Any) -> None:
    """Two sessions each add 1 to the same versioned document; the loser's batch
    also holds a second document. SPEC: "a lost race raises
    `uow.StaleDocumentError` and nothing of that flush is silently skipped"."""
    fresh(db, COLL)
    seed = Session(db)
    doc, other = Ver(), Ver()
    seed.add_all([doc, other])
    seed.commit()
    seed.close()

    s1 = Session(db, transactional=False)
    s2 = Session(db, transactional=False)
    a = s1.get(Ver, doc.id)
    b = s2.get(Ver, doc.id)
    o = s2.get(Ver, other.id)
    assert a is not None and b is not None and o is not None
    a.n += 1
    b.n += 1
    o.n += 1
    s1.commit()  # stored: n=1, version=1

    with pytest.raises(uow.StaleDocumentError):
        s2.commit()  # b's and o's writes cannot be told apart: both in doubt
    assert stored(db, COLL, doc.id) == {
        "_id": doc.id,
        "name": "",
        "n": 1,
        "items": [],
        "version": 1,
    }
    assert s2.is_dirty(b)  # the +1 stays queued


def test_in_doubt_stale_delete_names_the_documents(db: Any) -> None:
    """SPEC: "Messages say what was wrong, with what, and what to do." A batch of
    two versioned deletes, one of whose documents another session deleted."""
    fresh(db, COLL)
    seed = Session(db)
    a, b = Ver(name="a"), Ver(name="b")
    seed.add_all([a, b])
    seed.commit()
    seed.close()
    s0 = Session(db, transactional=False)
    s1 = Session(db, transactional=False)
    s0.delete(s0.get(Ver, a.id))
    a1, b1 = s1.get(Ver, a.id), s1.get(Ver, b.id)
    s0.commit()
    s1.delete(a1)
    s1.delete(b1)
    with pytest.raises(uow.StaleDocumentError) as info:
        s1.flush()
    err = info.value
    assert {id(o) for o in err.in_doubt} == {id(a1), id(b1)}  # holds
    assert {id(o) for o in err.documents} == {id(a1), id(b1)}
    assert f"Ver {a1.id!r}" in str(err) and "in_doubt" in str(err)


@pytest.mark.transactions
def test_refresh_survives_an_aborted_transaction(db: Any) -> None:
    """SPEC: rollback puts "every tracked document back to what the database now
    holds: with a transaction, the last committed snapshot"; "After `rollback()`
    every tracked document reads what the database holds"."""
    fresh(db, COLL)
    seed = Session(db)
    d, e = Ver(), Ver()
    seed.add_all([d, e])
    seed.commit()
    seed.close()
    s0, s1 = Session(db), Session(db)
    a0, b0 = s0.get(Ver, d.id), s0.get(Ver, e.id)
    a1, b1 = s1.get(Ver, d.id), s1.get(Ver, e.id)
    assert a0 and b0 and a1 and b1
    a0.items.append("x")
    b0.items.append("x")
    s0.commit()  # both stored at version 1
    s1.refresh(a1)  # a1: items ["x"], version 1: up to date
    a1.items.append("y")
    b1.items.append("y")  # b1 is stale (version 0)
    with pytest.raises(uow.StaleDocumentError):
        s1.commit()  # right: the transaction is aborted, both stay queued
    s1.expunge(b1)  # give up the stale one
    s1.commit()  # uow: StaleDocumentError for a1 (its update is based on version 0)
    assert stored(db, COLL, d.id)["items"] == ["x", "y"]
    s1.rollback()
    # uow (without the commit above): a1 reads items [], version 0 after rollback
    assert values(a1) == {"name": "", "n": 0, "items": ["x", "y"], "version": 2}
