"""The identity map: one object per (collection, _id), bounded without losing a change.

Three tiers:

* ``refs``: a weak reference to every tracked document still alive, whoever
  holds it. It is what makes "one object per document" true even after the
  cache let go of one the user still references.
* ``clean``: a cachetools ``LRUCache`` of clean documents, the only tier that is
  bounded (``cache_size``); ``None`` keeps every clean document, ``0`` none.
* ``strong``: pending, changed, deleted documents (and ones rescued by the
  finalizer): never evicted, so no change can be dropped by the bound.
"""

from __future__ import annotations

import weakref
from typing import Any

from cachetools import LRUCache

__all__: list[str] = []

Key = tuple[str, Any]


class IdentityMap:
    """Tracked documents by key; see the module docstring for the tiers."""

    def __init__(self, cache_size: int | None) -> None:
        if cache_size is not None and cache_size < 0:
            raise ValueError(f"cache_size must be None or >= 0, got {cache_size}")
        # Plain weak references, not a WeakValueDictionary (whose KeyedRef costs a
        # Python call per document): a dead entry is removed by the document's own
        # finalizer (``forget_dead``), and readers skip one whose target is gone.
        self.refs: dict[Key, weakref.ref[Any]] = {}
        self.strong: dict[Key, Any] = {}
        self.clean: dict[Key, Any] | LRUCache[Key, Any] | None
        self._lru = cache_size is not None and cache_size > 0
        if cache_size is None:
            self.clean = {}
        elif cache_size == 0:
            self.clean = None
        else:
            self.clean = LRUCache(maxsize=cache_size)

    def get(self, key: Key) -> Any:
        """The tracked object for ``key`` or None; a hit refreshes its LRU place."""
        ref = self.refs.get(key)
        if ref is None:
            return None
        obj = ref()
        if obj is not None and self._lru:
            clean = self.clean
            if key in clean:  # type: ignore[operator]
                clean[key]  # type: ignore[index]
        return obj

    def _track(self, key: Key, obj: Any) -> None:
        ref = self.refs.get(key)
        if ref is None or ref() is not obj:
            self.refs[key] = weakref.ref(obj)

    def add_clean(self, key: Key, obj: Any) -> None:
        """Track a clean document (loaded or just flushed)."""
        self._track(key, obj)
        if self.strong:
            self.strong.pop(key, None)
        if self.clean is not None:
            self.clean[key] = obj

    def add_loaded(self, key: Key, obj: Any) -> None:
        """Track a document just loaded, under a key nothing tracks yet."""
        self.refs[key] = weakref.ref(obj)
        if self.clean is not None:
            self.clean[key] = obj

    def hold(self, key: Key, obj: Any) -> None:
        """Track a document that must not be evicted (pending, changed, deleted)."""
        self._track(key, obj)
        self.strong[key] = obj
        if self.clean is not None:
            self.clean.pop(key, None)

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
        self.refs.pop(key, None)
        self.strong.pop(key, None)
        if self.clean is not None:
            self.clean.pop(key, None)

    def forget_dead(self, key: Key, obj: Any) -> None:
        """``obj`` is being finalized: drop its entry (not a newer object's)."""
        ref = self.refs.get(key)
        if ref is not None:
            target = ref()
            if target is None or target is obj:
                self.refs.pop(key, None)

    def get_quiet(self, key: Key) -> Any:
        """The tracked object for ``key`` or None, leaving the LRU order alone."""
        ref = self.refs.get(key)
        return None if ref is None else ref()

    def objects(self) -> list[Any]:
        """Every tracked object alive now (a list: the map may change as we go)."""
        # list() of the values allocates no Python object while it copies, so no
        # finalizer can run (and change the dict) in the middle of the copy.
        refs = list(self.refs.values())
        return [obj for obj in (ref() for ref in refs) if obj is not None]

    def __len__(self) -> int:
        return len(self.objects())

    def __contains__(self, key: Key) -> bool:
        return self.get_quiet(key) is not None

    def clear(self) -> None:
        self.refs = {}
        self.strong.clear()
        if self.clean is not None:
            self.clean.clear()
