"""Shared settings and helpers for tests/attack10.

Example counts: small by default (the directory runs in well under a minute,
derandomized so CI is reproducible); ``ATTACK10_EXAMPLES=N`` runs N examples per
test with fresh randomness (``ATTACK10_SEED`` pins it) to hunt for bugs.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, settings

from tests._blackbox import emb

_HUNT = os.environ.get("ATTACK10_EXAMPLES")
EXAMPLES = int(_HUNT) if _HUNT else 40
STEPS = int(os.environ.get("ATTACK10_STEPS", "40" if _HUNT else "25"))

SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    derandomize=not _HUNT,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


def fresh(db: Any, *names: str) -> None:
    """Start an example on empty collections (one ``db`` serves every example)."""
    for name in names:
        db[name].delete_many({})


def values(obj: Any) -> dict[str, Any]:
    """What ``obj`` holds, as plain Python with attribute names (no ``_id``)."""
    import attrs

    return {a.name: emb(getattr(obj, a.name)) for a in attrs.fields(type(obj)) if a.name != "id"}


def stored(db: Any, coll: str, _id: Any) -> Any:
    """The stored document, read with raw pymongo."""
    return db[coll].find_one({"_id": _id})


def dc(value: Any) -> Any:
    return copy.deepcopy(value)
