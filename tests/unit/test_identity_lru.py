"""The identity map's bound: staged LRU uses evict exactly what an LRU would, when it would.

``IdentityMap`` stages its cache's insertions and hits and replays them only
when an eviction may be due. These tests hold it against a reference that
applies every use to a cachetools ``LRUCache`` at once (what the map did
before staging), over random sequences of map operations.
"""

from __future__ import annotations

from typing import Any

from cachetools import LRUCache
from hypothesis import example, given, settings
from hypothesis import strategies as st

from uow._identity import IdentityMap


class _Obj:
    """A stand-in for a tracked document (weak-referenceable)."""

    def __init__(self, key: Any) -> None:
        self.key = key


class _ReferenceMap:
    """The bounded part of the map, every use applied to the cache immediately."""

    def __init__(self, cache_size: int) -> None:
        self.held: dict[Any, Any] = {}
        self.pinned: set[Any] = set()
        self.lru: LRUCache[Any, None] = _Evicting(cache_size, self._evicted)

    def _evicted(self, key: Any) -> None:
        if key not in self.pinned:
            self.held.pop(key, None)

    def load(self, key: Any, obj: Any) -> None:
        self.held[key] = obj
        self.lru[key] = None

    def get(self, key: Any) -> Any:
        obj = self.held.get(key)
        if obj is not None and key not in self.pinned:
            self.lru.get(key)
        return obj

    def hold(self, key: Any, obj: Any) -> None:
        self.held[key] = obj
        self.pinned.add(key)

    def release(self, key: Any, obj: Any) -> None:
        if key in self.pinned and self.held.get(key) is obj:
            self.pinned.discard(key)
            if key in self.lru and self.held.get(key) is obj:
                return
            self.load(key, obj)

    def discard(self, key: Any) -> None:
        self.held.pop(key, None)
        self.pinned.discard(key)
        self.lru.pop(key, None)


class _Evicting(LRUCache[Any, None]):
    def __init__(self, maxsize: int, evicted: Any) -> None:
        super().__init__(maxsize=maxsize)
        self._evicted_hook = evicted

    def popitem(self) -> tuple[Any, None]:
        key, value = super().popitem()
        self._evicted_hook(key)
        return key, value


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["load", "load", "get", "get", "hold", "release", "discard", "insert", "landed"]
        ),
        st.integers(0, 4),
    ),
    max_size=60,
)


@settings(max_examples=500, deadline=None)
@given(cache_size=st.integers(1, 5), ops=OPS)
@example(cache_size=2, ops=[("load", 0), ("load", 1), ("get", 0), ("load", 2)])
@example(cache_size=2, ops=[("load", 0), ("hold", 0), ("load", 1), ("load", 2), ("release", 0)])
@example(cache_size=1, ops=[("load", 0), ("discard", 0), ("load", 0), ("get", 0), ("load", 1)])
@example(
    cache_size=2,
    ops=[("load", 0), ("discard", 0), ("insert", 0), ("landed", 0), ("load", 1), ("load", 2)],
)
# A staged insertion of a key discarded, then held again (pending): replayed, it
# put the pinned key among the cached and evicted another (found by hypothesis).
@example(cache_size=2, ops=[("load", 1), ("load", 2), ("discard", 2), ("insert", 2), ("load", 0)])
@example(
    cache_size=1,
    ops=[("load", 2), ("load", 1), ("get", 1), ("discard", 1), ("insert", 1), ("load", 0)],
)
def test_staged_uses_evict_what_an_immediate_lru_evicts(cache_size: int, ops: list[Any]) -> None:
    staged = IdentityMap(cache_size)
    reference = _ReferenceMap(cache_size)
    alive: dict[Any, Any] = {}  # strong references: nothing leaves through the weak tier
    for op, number in ops:
        key = ("c", number)
        if op == "load":
            if staged.get_quiet(key) is None:
                assert reference.held.get(key) is None
                obj = alive[key] = _Obj(key)
                staged.add_loaded(key, obj)
                reference.load(key, obj)
        elif op == "get":
            found = staged.get(key)
            expected = reference.get(key)
            assert found is expected or (expected is None and found is alive.get(key))
        elif op == "hold":
            obj = staged.get_quiet(key)
            if obj is not None:
                staged.hold(key, obj)
                reference.hold(key, obj)
        elif op == "release":
            obj = staged.get_quiet(key)
            if obj is not None:
                staged.release(key, obj)
                reference.release(key, obj)
        elif op == "insert":  # a new document, pending: held until its insert lands
            if staged.get_quiet(key) is None:
                obj = alive[key] = _Obj(key)
                staged.hold(key, obj)
                reference.hold(key, obj)
        elif op == "landed":  # its insert landed: clean (add_inserted is add_clean's case)
            obj = staged.get_quiet(key)
            if obj is not None and key in staged.pinned:
                staged.add_inserted(key, obj)
                reference.release(key, obj)
        else:
            staged.discard(key)
            reference.discard(key)
            alive.pop(key, None)
        assert set(staged.held) == set(reference.held), (op, number)
        assert staged.pinned == reference.pinned


def test_a_hit_protects_a_document_from_the_next_eviction() -> None:
    m = IdentityMap(2)
    a, b, c = _Obj("a"), _Obj("b"), _Obj("c")
    m.add_loaded(("c", "a"), a)
    m.add_loaded(("c", "b"), b)
    assert m.get(("c", "a")) is a  # a is now the most recently used
    m.add_loaded(("c", "c"), c)
    assert set(m.held) == {("c", "a"), ("c", "c")}  # b, the least recently used, went
    assert m.get(("c", "b")) is b  # still the one identity, through the weak tier


def test_many_hits_do_not_grow_the_staged_list_without_bound() -> None:
    m = IdentityMap(3)
    a = _Obj("a")
    m.add_loaded(("c", "a"), a)
    for _ in range(10_000):
        assert m.get(("c", "a")) is a
    assert len(m._staged) <= 2 * 3 + 64 + 1
