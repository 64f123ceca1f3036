"""A small LRU cache (``cache_size`` 0-3) over many documents.

SPEC: "Eviction never loses a change: a document that is pending, dirty
(including in-place mutation) or deleted is never evicted, and a document the
user still holds stays the one identity." and "One object per (collection,
`_id`) per session ... A query result never overwrites an already loaded
object's unflushed changes."

The program loads documents, mutates some in place and drops every reference to
them (``gc.collect()``), touches many others so the LRU turns over, and flushes.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import uow
from uow import Document, Session, field

from ._h import SETTINGS, dc, fresh, stored, values

COLL = "a10_cache"
NDOCS = 8
D = st.integers(0, NDOCS - 1)
WORDS = st.sampled_from(["a", "b", "c", "d"])


class Place(uow.Embedded):
    city: str = "x"
    zip: str | None = None


class Item(Document):
    __collection__ = COLL
    name: str = ""
    hits: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)
    place: Place = field(factory=Place)
    meta: dict[str, int] = field(factory=dict)


def make_machine(db: Any, cache_size: int) -> type[RuleBasedStateMachine]:
    class Cache(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            fresh(db, COLL)
            seed = Session(db)
            docs = [Item(name=f"n{i}") for i in range(NDOCS)]
            seed.add_all(docs)
            seed.commit()
            seed.close()
            self.ids = [d.id for d in docs]
            self.store = [values(d) for d in docs]
            self.mem = dc(self.store)  # what the session's object must hold
            self.held: dict[int, Any] = {}
            # Documents changed at any time in this session (even back to their
            # stored value, as ``hits += 0``). Known bug, see
            # test_dirty_dropped_document_released_after_commit and
            # test_container_reference_released_unpins_document: uow keeps such a
            # document tracked for good once the user drops it, beyond cache_size,
            # so the bound below only holds for documents never changed.
            self.touched: set[int] = set()
            self.s = Session(db, cache_size=cache_size, transactional=False)

        def teardown(self) -> None:
            self.held.clear()
            self.s.rollback()
            self.s.close()

        def dirty(self) -> set[int]:
            return {d for d in range(NDOCS) if self.mem[d] != self.store[d]}

        def obj(self, d: int) -> Any:
            o = self.s.get(Item, self.ids[d])
            assert o is not None
            if d in self.held:
                assert o is self.held[d], "get() gave another object for a held document"
            assert values(o) == self.mem[d], (
                f"get() lost unflushed changes or read stale values: {values(o)} != {self.mem[d]}"
            )
            return o

        def wrote(self) -> None:
            self.store = dc(self.mem)
            for d in range(NDOCS):
                got = stored(db, COLL, self.ids[d])
                assert got == {"_id": self.ids[d], **self.store[d]}, (
                    f"doc {d}: stored {got!r}, expected {self.store[d]!r}"
                )

        # ------------------------------------------------------------ rules
        @rule(d=D, keep=st.booleans())
        def get(self, d: int, keep: bool) -> None:
            o = self.obj(d)
            if keep:
                self.held[d] = o

        @rule(ds=st.lists(D, min_size=1, max_size=NDOCS, unique=True))
        def touch_many(self, ds: list[int]) -> None:
            for d in ds:
                self.obj(d)

        @rule(d=D, value=WORDS, keep=st.booleans())
        def append_tag(self, d: int, value: str, keep: bool) -> None:
            o = self.obj(d)
            self.touched.add(d)
            o.tags.append(value)
            self.mem[d]["tags"].append(value)
            if keep:
                self.held[d] = o

        @rule(d=D, value=WORDS)
        def set_city(self, d: int, value: str) -> None:
            o = self.obj(d)
            self.touched.add(d)
            o.place.city = value
            self.mem[d]["place"]["city"] = value

        @rule(d=D, key=WORDS, value=st.integers(0, 3))
        def meta_set(self, d: int, key: str, value: int) -> None:
            o = self.obj(d)
            self.touched.add(d)
            o.meta[key] = value
            self.mem[d]["meta"][key] = value

        @rule(d=D, delta=st.integers(-2, 2))
        def inc(self, d: int, delta: int) -> None:
            o = self.obj(d)
            self.touched.add(d)
            o.hits += delta
            self.mem[d]["hits"] += delta

        @rule(d=D)
        def undo_tag(self, d: int) -> None:
            # Back to the stored value: clean again, and evictable.
            o = self.obj(d)
            self.touched.add(d)
            if self.mem[d]["tags"] != self.store[d]["tags"]:
                o.tags = list(self.store[d]["tags"])
                self.mem[d]["tags"] = list(self.store[d]["tags"])

        @rule(d=D)
        def drop(self, d: int) -> None:
            self.held.pop(d, None)
            gc.collect(0)

        @rule()
        def drop_all(self) -> None:
            self.held.clear()
            gc.collect(0)

        @rule(names=st.lists(st.sampled_from([f"n{i}" for i in range(NDOCS)]), max_size=4))
        def query(self, names: list[str]) -> None:
            q = self.s.query(Item)
            if names:
                q = q.filter(Item.name.in_(names))
            got = q.all()  # autoflush first: the session reads its own writes
            self.wrote()
            seen = set()
            for o in got:
                d = self.ids.index(o.id)
                assert d not in seen, "a query returned one document twice"
                seen.add(d)
                if d in self.held:
                    assert o is self.held[d]
                assert values(o) == self.mem[d]
            want = {d for d in range(NDOCS) if not names or self.store[d]["name"] in names}
            assert seen == want

        @rule()
        def flush(self) -> None:
            self.s.flush()
            self.wrote()

        @rule()
        def commit(self) -> None:
            self.s.commit()
            self.wrote()

        @rule(d=D)
        def refresh(self, d: int) -> None:
            o = self.obj(d)
            self.s.refresh(o)
            self.mem[d] = dc(self.store[d])
            assert values(o) == self.mem[d]

        @rule()
        def rollback(self) -> None:
            self.s.rollback()
            self.mem = dc(self.store)

        @rule()
        def clear_queue(self) -> None:
            self.s.clear_queue()

        @rule()
        def clear_cache(self) -> None:
            self.s.clear_cache()
            dirty = self.dirty()
            for d in list(self.held):
                if d not in dirty:
                    o = self.held.pop(d)
                    assert self.s.state(o) is uow.ObjectState.DETACHED
                else:
                    assert self.s.state(self.held[d]) is uow.ObjectState.PERSISTENT

        @rule(d=D)
        def expunge(self, d: int) -> None:
            o = self.obj(d)
            self.s.expunge(o)
            self.held.pop(d, None)
            self.mem[d] = dc(self.store[d])  # its unflushed changes left with it

        @invariant()
        def bounded_and_held(self) -> None:
            gc.collect(0)
            for d, o in self.held.items():
                assert values(o) == self.mem[d]
                assert self.s.state(o) is uow.ObjectState.PERSISTENT
            size = self.s.stats().identity_map_size
            bound = len(set(self.held) | self.dirty() | self.touched) + cache_size
            assert size <= bound, f"{size} documents tracked, at most {bound} expected"

    return Cache


@pytest.mark.parametrize("cache_size", [0, 1, 3])
def test_small_cache(db: Any, cache_size: int) -> None:
    run_state_machine_as_test(make_machine(db, cache_size), settings=SETTINGS)


@pytest.mark.parametrize("cache_size", [0, 1])
def test_dropped_dirty_document_is_written(db: Any, cache_size: int) -> None:
    """The plain case: mutate in place, drop every reference, churn the cache."""
    fresh(db, COLL)
    seed = Session(db)
    docs = [Item(name=f"n{i}") for i in range(6)]
    seed.add_all(docs)
    seed.commit()
    seed.close()
    ids = [d.id for d in docs]
    del docs, seed

    s = Session(db, cache_size=cache_size)
    o = s.get(Item, ids[0])
    assert o is not None
    o.tags.append("kept")
    o.place.city = "Oslo"
    del o
    gc.collect()
    for _id in ids[1:]:
        assert s.get(Item, _id) is not None
    gc.collect()
    again = s.get(Item, ids[0])
    assert again is not None
    assert again.tags == ["kept"] and again.place.city == "Oslo"
    del again
    gc.collect()
    s.commit()
    got = stored(db, COLL, ids[0])
    assert got is not None
    assert got["tags"] == ["kept"] and got["place"] == {"city": "Oslo", "zip": None}
    s.close()


def _one_item(db: Any) -> Any:
    fresh(db, COLL)
    seed = Session(db)
    doc = Item(name="n0")
    seed.add(doc)
    seed.commit()
    seed.close()
    return doc.id


def test_container_reference_released_unpins_document(db: Any) -> None:
    """SPEC: "`cache_size` bounds how many clean documents the session keeps
    alive ... `0` keeps none beyond what the user still references"."""
    _id = _one_item(db)
    s = Session(db, cache_size=0)
    o = s.get(Item, _id)
    assert o is not None
    tags = o.tags
    del o
    gc.collect()  # the user still holds the list: keeping the document is right
    del tags
    gc.collect()  # now the user holds nothing of it, and nothing changed
    assert not s.has_changes()
    s.commit()
    gc.collect()
    assert s.stats().identity_map_size == 0  # uow: 1, after commit too
    s.close()


def test_dirty_dropped_document_released_after_commit(db: Any) -> None:
    """The change is written (right), but the clean document then outlives
    ``cache_size=0`` for good. SPEC: "`0` keeps none beyond what the user still
    references"."""
    _id = _one_item(db)
    s = Session(db, cache_size=0)
    o = s.get(Item, _id)
    assert o is not None
    o.place.city = "Oslo"
    del o
    gc.collect()
    s.commit()
    assert stored(db, COLL, _id)["place"]["city"] == "Oslo"
    gc.collect()
    assert not s.has_changes()
    assert s.stats().identity_map_size == 0  # uow: 1, and still 1 after more commits
    s.close()


def test_close_does_not_warn_of_phantom_changes(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    """SPEC: "Closing a session ... that still holds unflushed changes ... logs a
    WARNING on the `uow` logger saying how many changes were dropped." Here
    there are none: has_changes() is False and a flush sends nothing."""
    _id = _one_item(db)
    s = Session(db, cache_size=0)
    o = s.get(Item, _id)
    assert o is not None
    tags = o.tags
    del o
    gc.collect()
    del tags
    gc.collect()
    s.commit()
    assert not s.has_changes()
    with caplog.at_level("WARNING", logger="uow"):
        s.close()
    # uow: "closing <uow.Session ...> dropped 1 unsaved change(s): ..."
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
