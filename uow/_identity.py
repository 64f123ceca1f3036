"""The identity map: one object per (collection, _id), bounded without losing a change.

Three tiers:

* ``strong``: pending, changed, deleted documents (and ones rescued by the
  finalizer): never evicted, so no change can be dropped by the bound.
* ``clean``: a cachetools ``LRUCache`` of clean documents, the only tier that is
  bounded (``cache_size``); ``None`` keeps every clean document (a dict), ``0``
  none. A document that changes stays in it while ``strong`` holds it too: an
  LRUCache costs a Python call per operation, and moving it out and back in
  would be two more per changed document. What ``strong`` holds counts as
  strong; when the cache evicts it, nothing happens to it.
* ``weak``: a weak reference to each clean document the cache let go of (or
  never kept, with ``cache_size=0``). It is what keeps "one object per
  document" true for a document the user still references. When nobody does,
  the document's finalizer (``Document.__del__``) asks the session whether it
  changed in place: if so it is kept (``strong``), if not its entry goes
  (``forget_dead``).

Only documents the cache lets go of cost a weak reference: a session that
stays within ``cache_size`` makes none.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from cachetools import Cache, LRUCache

__all__: list[str] = []

#: (collection, id), or (collection, an ObjectId's 12 bytes, ObjectId): see key_for
Key = tuple[Any, ...]


def key_for(collection: str, stored_id: Any) -> Key:
    """The key of the stored document ``stored_id`` of ``collection``.

    An ObjectId hashes in Python code (``ObjectId.__hash__``), which every dict
    operation on a key holding one would run; its bytes hash in C, once.
    """
    if type(stored_id) is ObjectId:
        return (collection, stored_id.binary, ObjectId)
    return (collection, stored_id)


def id_of(key: Key) -> Any:
    """The stored id a key stands for."""
    return ObjectId(key[1]) if len(key) == 3 else key[1]


class _EvictingLRU(LRUCache[Key, Any]):
    """An LRUCache that tells the map what it evicts (cachetools' popitem hook)."""

    def __init__(self, maxsize: int, evicted: Callable[[Key, Any], None]) -> None:
        super().__init__(maxsize=maxsize)
        self._evicted = evicted

    def popitem(self) -> tuple[Key, Any]:
        key, obj = super().popitem()
        self._evicted(key, obj)
        return key, obj


def _peek(clean: dict[Key, Any] | LRUCache[Key, Any], key: Key) -> Any:
    """``clean[key]``, not counted as a use (LRUCache's own __getitem__ would)."""
    return Cache.__getitem__(clean, key) if isinstance(clean, LRUCache) else clean[key]


class IdentityMap:
    """Tracked documents by key; see the module docstring for the tiers."""

    def __init__(self, cache_size: int | None) -> None:
        if cache_size is not None and cache_size < 0:
            raise ValueError(f"cache_size must be None or >= 0, got {cache_size}")
        self._cache_size = cache_size
        self.strong: dict[Key, Any] = {}
        self.clean: dict[Key, Any] | LRUCache[Key, Any] | None = self._new_clean()
        self.weak: dict[Key, weakref.ref[Any]] = {}

    def _new_clean(self) -> dict[Key, Any] | LRUCache[Key, Any] | None:
        if self._cache_size is None:
            return {}
        if self._cache_size == 0:
            return None
        return _EvictingLRU(self._cache_size, self._to_weak)

    def _to_weak(self, key: Key, obj: Any) -> None:
        if key not in self.strong:
            self.weak[key] = weakref.ref(obj)

    def get(self, key: Key) -> Any:
        """The tracked object for ``key`` or None; a hit refreshes its LRU place."""
        obj = self.strong.get(key)
        if obj is not None:
            return obj
        clean = self.clean
        if clean is not None:
            obj = clean.get(key)  # an LRUCache's get counts as a use
            if obj is not None:
                return obj
        ref = self.weak.get(key)
        return None if ref is None else ref()

    def get_quiet(self, key: Key) -> Any:
        """The tracked object for ``key`` or None, leaving the LRU order alone."""
        obj = self.strong.get(key)
        clean = self.clean
        if obj is None and clean is not None and key in clean:
            obj = _peek(clean, key)
        if obj is None:
            ref = self.weak.get(key)
            obj = None if ref is None else ref()
        return obj

    def add_clean(self, key: Key, obj: Any) -> None:
        """Track a clean document (loaded or just flushed)."""
        if self.strong:
            self.strong.pop(key, None)
        clean = self.clean
        if clean is None:
            self._to_weak(key, obj)
            return
        if self.weak:
            self.weak.pop(key, None)
        if clean.get(key) is not obj:  # (a get counts as a use, as a set would)
            clean[key] = obj

    def add_loaded(self, key: Key, obj: Any) -> None:
        """Track a document just loaded, under a key no tier has."""
        clean = self.clean
        if clean is None:
            self.weak[key] = weakref.ref(obj)
        else:
            if self.weak:
                self.weak.pop(key, None)  # a dead entry the finalizer has not removed yet
            clean[key] = obj

    def hold(self, key: Key, obj: Any) -> None:
        """Track a document that must not be evicted (pending, changed, deleted)."""
        self.strong[key] = obj
        clean = self.clean
        if clean is not None and key in clean and _peek(clean, key) is not obj:
            clean.pop(key, None)  # another object under this key (a replaced delete)
        if self.weak:
            self.weak.pop(key, None)

    def pin(self, key: Key, obj: Any) -> None:
        """``hold()`` a document this map already tracks under ``key``."""
        self.strong[key] = obj
        if self.weak:
            self.weak.pop(key, None)

    def release(self, key: Key, obj: Any) -> None:
        """A held document is clean again: back to the bounded tier (if it was held)."""
        if self.strong.get(key) is obj:
            self.add_clean(key, obj)

    def discard(self, key: Key, obj: Any = None) -> None:
        """Forget ``key`` entirely; with ``obj``, only if ``key`` stands for that object.

        (A deleted document and the new one replacing it share a key: dropping
        one must not drop the other.)
        """
        if obj is not None and self.get_quiet(key) is not obj:
            return
        self.strong.pop(key, None)
        if self.clean is not None:
            self.clean.pop(key, None)
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
        strong = self.strong
        found = list(strong.values())
        clean = self.clean
        if isinstance(clean, LRUCache):
            found += [Cache.__getitem__(clean, key) for key in list(clean) if key not in strong]
        elif clean is not None:
            found += [obj for key, obj in list(clean.items()) if key not in strong]
        if self.weak:
            # list() of the values allocates no Python object while it copies, so
            # no finalizer can run (and change the dict) in the middle of the copy.
            refs = list(self.weak.values())
            found += [obj for obj in (ref() for ref in refs) if obj is not None]
        return found

    def __len__(self) -> int:
        return len(self.objects())

    def __contains__(self, key: Key) -> bool:
        return self.get_quiet(key) is not None

    def clear(self) -> None:
        self.strong.clear()
        # A new cache, not clear(): LRUCache.clear() evicts one by one (into weak).
        self.clean = self._new_clean()
        self.weak = {}
