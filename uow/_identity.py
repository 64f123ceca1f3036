"""The identity map: one object per (collection, _id), bounded without losing a change.

Three tiers:

* ``weak``: every tracked document still alive, whoever holds it. It is what
  makes "one object per document" true even after the cache let go of one the
  user still references.
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
        self.weak: weakref.WeakValueDictionary[Key, Any] = weakref.WeakValueDictionary()
        self.strong: dict[Key, Any] = {}
        self.clean: dict[Key, Any] | LRUCache[Key, Any] | None
        if cache_size is None:
            self.clean = {}
        elif cache_size == 0:
            self.clean = None
        else:
            self.clean = LRUCache(maxsize=cache_size)

    def get(self, key: Key) -> Any:
        """The tracked object for ``key`` or None; a hit refreshes its LRU place."""
        obj = self.weak.get(key)
        clean = self.clean
        if obj is not None and clean is not None and key in clean:
            clean[key]
        return obj

    def add_clean(self, key: Key, obj: Any) -> None:
        """Track a clean document (loaded or just flushed)."""
        self.weak[key] = obj
        self.strong.pop(key, None)
        if self.clean is not None:
            self.clean[key] = obj

    def hold(self, key: Key, obj: Any) -> None:
        """Track a document that must not be evicted (pending, changed, deleted)."""
        self.weak[key] = obj
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
        if obj is not None and self.weak.get(key) is not obj:
            return
        self.weak.pop(key, None)
        self.strong.pop(key, None)
        if self.clean is not None:
            self.clean.pop(key, None)

    def objects(self) -> list[Any]:
        """Every tracked object alive now (a list: the map may change as we go)."""
        return list(self.weak.values())

    def items(self) -> list[tuple[Key, Any]]:
        return list(self.weak.items())

    def __len__(self) -> int:
        return len(self.weak)

    def __contains__(self, key: Key) -> bool:
        return key in self.weak

    def clear(self) -> None:
        self.weak = weakref.WeakValueDictionary()
        self.strong.clear()
        if self.clean is not None:
            self.clean.clear()
