"""The garbage collector's share of a timed region (``gc.callbacks``)."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any


class GcClock:
    """Seconds the garbage collector ran, and its full collections, since ``reset()``.

    Collections run when enough objects were allocated, and a full one walks every
    object alive (the store's included): a library pays for them in proportion to
    what it allocates and keeps, and the reports show that share.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._start
        if info["generation"] == 2:
            self.full += 1

    def reset(self) -> None:
        self.seconds = 0.0
        self.full = 0


#: The process's clock, registered once.
GC_CLOCK = GcClock()
gc.callbacks.append(GC_CLOCK)


@contextlib.contextmanager
def settled_heap(freeze: bool = False) -> Iterator[None]:
    """Around a timed region: collect first, so no earlier garbage is walked in it.

    With ``freeze``, what is alive then (an in-process database's documents, the
    libraries' modules, what earlier runs left) is also moved out of the
    collector's reach (``gc.freeze()``) until the region ends: its collections
    walk only what the timed work makes, as they would in a client whose
    database runs in another process. The collector stays enabled either way.
    """
    gc.collect()
    if not freeze:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
