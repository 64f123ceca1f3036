"""The identity map: one object per (collection, _id), bounded without losing a change.

What keeps a tracked document alive:

* ``pinned``: pending, changed, deleted documents (and ones rescued by the
  finalizer): never evicted, so no change can be dropped by the bound.
* ``lru``: a cachetools ``LRUCache`` of clean documents, the only bounded part
  (``cache_size``); with ``None`` every clean document is kept, with ``0``
  none. A document that changes stays in it while pinned (an LRUCache costs a
  Python call per operation; moving it out and back would be two more per
  changed document): when the cache evicts a pinned document nothing happens.

  Its uses (an insertion, a hit) are staged in a list and replayed into the
  cache, in order, only when an eviction may be due (the staged insertions
  would take it past ``cache_size``) or the list grows long. Until the bound
  is reached nobody needs the order, and a session that loads 10,000
  documents and ends pays a list append per document instead of an
  LRUCache insertion (a Python call, ~0.7 µs). The replay is the same
  sequence of operations the cache would have seen, so it evicts exactly
  what it would have evicted, at the moment the bound is passed.
* ``weak``: a weak reference to each clean document the cache let go of (or
  never kept, with ``cache_size=0``). It is what keeps "one object per
  document" true for a document the user still references. When nobody does,
  the document's finalizer (``Document.__del__``) asks the session whether it
  changed in place: if so it is pinned again, if not its entry goes
  (``forget_dead``).

``held`` indexes every document pinned or in the cache, so that a lookup, a
miss above all, and a walk over the map are plain dict operations; only
documents the cache lets go of cost a weak reference.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from cachetools import LRUCache

from .document import Document, ModelMeta, Ref
from .exceptions import UowError, ValidationError

__all__: list[str] = []

#: A document's key in the identity map and the queues: see key_for.
Key = bytes | tuple[Any, ...]

#: The prefix of each collection's ObjectId keys (its name, encoded, and a NUL).
_PREFIXES: dict[str, bytes] = {}


def key_prefix(collection: str) -> bytes:
    """What the keys of ``collection``'s ObjectId documents start with."""
    prefix = _PREFIXES.get(collection)
    if prefix is None:
        # A collection name holds no NUL (MongoDB refuses one): the NUL ends it.
        prefix = _PREFIXES[collection] = collection.encode() + b"\0"
    return prefix


def key_for(collection: str, stored_id: Any) -> Key:
    """The key of the stored document ``stored_id`` of ``collection``.

    For an ObjectId (nearly every document), bytes: the collection's prefix and
    the id's 12 bytes. A bytes object keeps its hash once computed, where a
    tuple computes it again at every dict or set operation (a flushed document
    meets about nine), and it is no object for the garbage collector to track;
    an ObjectId itself would hash in Python code. For any other id,
    ``(collection, id)``, which no bytes key equals. (The tracker builds the
    ObjectId keys inline on its hot paths.)
    """
    if type(stored_id) is ObjectId:
        return key_prefix(collection) + stored_id.binary
    return (collection, stored_id)


def meta_of(obj: Any) -> ModelMeta:
    """``obj``'s class metadata; refuses what is not a stored document."""
    if not isinstance(obj, Document):
        raise ValidationError(f"expected a uow.Document instance, got {type(obj).__name__}")
    meta: ModelMeta = type(obj)._uow_meta
    if meta.collection is None:
        raise UowError(f"{meta.name} is abstract: it has no collection")
    return meta


def stored_id(meta: ModelMeta, value: Any) -> Any:
    """An id as stored, checked so that it can never become an operator."""
    if type(value) is meta.plain_id_type:
        return value  # the usual case, ~100 ns less per document added or looked up
    spec = meta.id_spec
    if spec is None:
        return value
    if isinstance(value, Ref):
        value = value.id
    spec.check(meta.name, "id", value)
    return spec.dump(value) if spec.needs_dump else value


def id_of(key: Key) -> Any:
    """The stored id a key stands for."""
    return ObjectId(key[-_OID_SIZE:]) if type(key) is bytes else key[1]


#: The bytes of an ObjectId.
_OID_SIZE = 12


class _EvictingLRU(LRUCache[Key, None]):
    """An LRUCache of keys that tells the map what it evicts (cachetools' popitem hook)."""

    def __init__(self, maxsize: int, evicted: Callable[[Key], None]) -> None:
        super().__init__(maxsize=maxsize)
        self._evicted = evicted

    def popitem(self) -> tuple[Key, None]:
        key, value = super().popitem()
        self._evicted(key)
        return key, value


class IdentityMap:
    """Tracked documents by key; see the module docstring."""

    def __init__(self, cache_size: int | None) -> None:
        if cache_size is not None and cache_size < 0:
            raise ValueError(f"cache_size must be None or >= 0, got {cache_size}")
        self._cache_size = cache_size
        self.held: dict[Key, Any] = {}
        self.pinned: set[Key] = set()
        self.lru: LRUCache[Key, None] | None = self._new_lru()
        self.weak: dict[Key, weakref.ref[Any]] = {}
        #: uses of the cache not replayed into it yet (insertions and hits, in order)
        self._staged: list[Key] = []
        #: the keys inserted among them (a key there counts as in the cache)
        self._staged_keys: set[Key] = set()
        #: insertions that can be staged before the cache may have to evict
        self._room = cache_size or 0
        #: whether the cache was ever given a key (only ``_replay`` does): until then
        #: nothing is in it, and asking it (a Python call, ~60 ns) can be skipped
        self._replayed = False

    def _new_lru(self) -> LRUCache[Key, None] | None:
        if not self._cache_size:
            return None
        return _EvictingLRU(self._cache_size, self._evicted)

    def _evicted(self, key: Key) -> None:
        if key not in self.pinned:
            obj = self.held.pop(key, None)
            if obj is not None:
                self.weak[key] = weakref.ref(obj)

    def _replay(self) -> None:
        """Apply the staged uses to the cache, in order (it evicts as it goes)."""
        lru = self.lru
        assert lru is not None and self._cache_size is not None
        staged = self._staged
        self._staged = []
        self._staged_keys = set()
        self._replayed = True
        held = self.held
        for key in staged:
            # A key dropped since (or evicted by this replay, before a later use)
            # is not in the map any more: the use would have missed.
            if key in held:
                lru[key] = None  # an insertion, or a use that moves it to the end
        self._room = self._cache_size - len(lru)

    def get(self, key: Key) -> Any:
        """The tracked object for ``key`` or None; a hit refreshes its LRU place."""
        obj = self.held.get(key)
        if obj is not None:
            if self.lru is not None and key not in self.pinned:
                staged = self._staged
                staged.append(key)  # a use
                if len(staged) > 2 * self._room + 64:  # many hits: keep the list short
                    self._replay()
            return obj
        ref = self.weak.get(key)
        return None if ref is None else ref()

    def get_quiet(self, key: Key) -> Any:
        """The tracked object for ``key`` or None, leaving the LRU order alone."""
        obj = self.held.get(key)
        if obj is None:
            ref = self.weak.get(key)
            obj = None if ref is None else ref()
        return obj

    def _keep_clean(self, key: Key, obj: Any) -> None:
        """``obj`` is clean and unpinned: in the cache, or weakly held."""
        if self.lru is not None:
            self.held[key] = obj
            self._staged.append(key)
            self._staged_keys.add(key)
            self._room -= 1
            if self._room < 0:
                self._replay()  # may evict another (or, at size 1, this one)
        elif self._cache_size is None:
            self.held[key] = obj
        else:
            self.held.pop(key, None)
            self.weak[key] = weakref.ref(obj)

    def add_clean(self, key: Key, obj: Any) -> None:
        """Track a clean document (loaded or just flushed)."""
        lru = self.lru
        if self.pinned:
            try:
                self.pinned.remove(key)  # (one lookup, not a test and a discard)
                was_pinned = True
            except KeyError:
                was_pinned = False
        else:
            was_pinned = False
        if (
            was_pinned
            and lru is not None
            and (key in self._staged_keys or (self._replayed and key in lru))
            and self.held.get(key) is obj
        ):
            return  # still cached from before it changed
        if self.weak:
            self.weak.pop(key, None)
        if lru is not None and self._room > 0:
            # _keep_clean's common case inline: every document a flush wrote comes here.
            self.held[key] = obj
            self._staged.append(key)
            self._staged_keys.add(key)
            self._room -= 1
            return
        self._keep_clean(key, obj)

    def add_inserted(self, key: Key, obj: Any) -> None:
        """A document just inserted is clean: pinned until now, never in the LRU.

        ``add_clean``'s common case with its tests in one: where the key has no
        use staged (a document of the same id cached before, replaced or let go
        of since), nothing was replayed yet and there is room, the same work."""
        if (
            self.lru is None
            or self._room <= 0
            or self.weak
            or self._replayed
            or key in self._staged_keys
        ):
            self.add_clean(key, obj)
            return
        self.pinned.discard(key)
        self.held[key] = obj
        self._staged.append(key)
        self._staged_keys.add(key)
        self._room -= 1

    def add_loaded(self, key: Key, obj: Any) -> None:
        """Track a document just loaded, under a key nothing holds."""
        if self.weak:
            self.weak.pop(key, None)  # a dead entry the finalizer has not removed yet
        # _keep_clean's two common cases inline: one call per loaded document, not two.
        if self.lru is not None:
            if self._room > 0:
                self.held[key] = obj
                self._staged.append(key)
                self._staged_keys.add(key)
                self._room -= 1
                return
        elif self._cache_size is None:
            self.held[key] = obj
            return
        self._keep_clean(key, obj)

    def hold(self, key: Key, obj: Any) -> None:
        """Track a document that must not be evicted (pending, changed, deleted)."""
        self.held[key] = obj
        self.pinned.add(key)
        if self.weak:
            self.weak.pop(key, None)

    def release(self, key: Key, obj: Any) -> None:
        """A held document is clean again: back to the bounded tier (if it was held)."""
        if key in self.pinned and self.held.get(key) is obj:
            self.add_clean(key, obj)

    def discard(self, key: Key, obj: Any = None) -> None:
        """Forget ``key`` entirely; with ``obj``, only if ``key`` stands for that object.

        (A deleted document and the new one replacing it share a key: dropping
        one must not drop the other.)
        """
        if obj is not None and self.get_quiet(key) is not obj:
            return
        if self._staged:
            # Its staged uses belong to the cache before it left: replayed now, or
            # a later one would find the key held again (pinned, say) and put it
            # back among the cached (amortized: each use is replayed once).
            self._replay()
        self.held.pop(key, None)
        self.pinned.discard(key)
        if self.lru is not None:
            self.lru.pop(key, None)
        self.weak.pop(key, None)

    def forget_dead(self, key: Key, obj: Any) -> None:
        """``obj`` is being finalized: drop its weak entry (not a newer object's)."""
        ref = self.weak.get(key)
        if ref is not None:
            target = ref()
            if target is None or target is obj:
                self.weak.pop(key, None)

    def objects(self) -> list[Any]:
        """Every tracked object alive now (a list: the map may change as we go)."""
        found = list(self.held.values())
        if self.weak:
            # list() of the values allocates no Python object while it copies, so
            # no finalizer can run (and change the dict) in the middle of the copy.
            refs = list(self.weak.values())
            found += [obj for obj in (ref() for ref in refs) if obj is not None]
        return found

    def size_bound(self) -> int:
        """At least the number of objects alive in the map (dead weak entries count)."""
        return len(self.held) + len(self.weak)

    def __len__(self) -> int:
        return len(self.objects())

    def __contains__(self, key: Key) -> bool:
        return self.get_quiet(key) is not None

    def clear(self) -> None:
        self.held = {}
        self.pinned = set()
        # A new cache, not clear(): LRUCache.clear() evicts one by one.
        self.lru = self._new_lru()
        self.weak = {}
        self._staged = []
        self._staged_keys = set()
        self._room = self._cache_size or 0
        self._replayed = False
