"""CPU per document without a database: what uow costs before anything is sent.

Two paths, each in µs per document (median of ``repeat`` runs of ``n`` documents):

* construct + serialize: build a new document and turn it into what the driver
  is handed (``User(...).to_bson()``).
* load + change + diff: a stored document as pymongo hands it over (already
  decoded) becomes an object, one field changes, and change tracking computes
  the update: the stored document is the snapshot (as a Session keeps it), and
  the diff is the one a flush computes for a document assigned to (its assigned
  fields and those that change in place).

These two are the targets (the document model's own cost). Beside them, the
same two paths through a whole Session on a database that does nothing: the
unit of work's bookkeeping on top (identity map, state, write operations,
pymongo's ``InsertOne``/``UpdateOne`` requests, marking documents clean),
which the workloads W1 and W2 measure against raw pymongo.

Beside them, on the same machine: a plain attrs class (construct +
``attrs.asdict``; from a dict + change + asdict + a dict diff) and a plain dict
(literal; copy + change + dict diff).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import bson

from .libs import CREATED, row, uow_user_class

CONSTRUCT_TARGET = "uow: construct + to_bson()"
LOAD_TARGET = "uow: load + change + diff (change tracking, no session)"
CONSTRUCT_SESSION = "uow: construct + add_all + flush (session path, no-op database)"
LOAD_SESSION = "uow: load + change + flush diff (session path, no-op database)"


# --------------------------------------------------------------- a no-op database


class _NullCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self._it = iter(docs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._it)

    def close(self) -> None:
        pass


class _NullCollection:
    def __init__(self, db: NullDatabase, name: str) -> None:
        self.database = db
        self.name = name

    def find(self, *args: Any, **kwargs: Any) -> _NullCursor:
        return _NullCursor(self.database.stored)

    def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def insert_many(self, documents: Any, **kwargs: Any) -> None:
        self.database.sent += len(documents)

    def bulk_write(self, requests: Any, **kwargs: Any) -> None:
        self.database.sent += len(requests)

    def create_indexes(self, *args: Any, **kwargs: Any) -> list[str]:
        return []


class _NullDriverSession:
    def end_session(self) -> None:
        pass


class _NullAdmin:
    def command(self, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # A standalone server: no transactions, MongoDB's default limits.
        return {"ok": 1, "isWritablePrimary": True, "maxWireVersion": 21}


class _NullClient:
    admin = _NullAdmin()

    def start_session(self, **kwargs: Any) -> _NullDriverSession:
        return _NullDriverSession()

    def close(self) -> None:
        pass


class NullDatabase:
    """Just enough of a pymongo Database for a Session; stores and sends nothing.

    ``find`` hands out ``stored`` (documents as pymongo would return them).
    """

    name = "null"

    def __init__(self) -> None:
        self.client = _NullClient()
        self.stored: list[dict[str, Any]] = []
        self.sent = 0

    def __getitem__(self, name: str) -> _NullCollection:
        return _NullCollection(self, name)


# ------------------------------------------------------------------------ cases


@attrs.define
class PlainUser:
    """The same fields as a plain attrs class (no validation, no BSON)."""

    name: str
    email: str
    age: int
    tags: list[str] = attrs.field(factory=list)
    score: float = 0.0
    created: Any = attrs.field(default=CREATED)


def _time_batch(
    prepare: Callable[[], Any], run: Callable[[Any], Any], n: int, repeat: int
) -> float:
    """Median µs per document of ``run(prepare())``, ``prepare`` not timed."""
    samples = []
    for _ in range(repeat + 1):  # the first run warms up and is dropped
        state = prepare()
        gc.collect()  # as before every workload run: no earlier garbage to walk
        start = time.perf_counter()
        run(state)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:]) / n * 1e6


#: A cell: its row's path and label, what prepares its input (not timed), and the
#: timed work, given that input.
Cell = tuple[str, str, Callable[[], Any], Callable[[Any], Any]]


def cells(n: int) -> list[Cell]:
    """The CPU section's cells over ``n`` documents, in the report's order (also
    what ``benchmarks/instructions.py`` counts)."""
    import uow

    try:
        from uow._diff import update_for
    except ImportError:  # a uow from before the diff had its own module (a "before" run)
        from uow._state import update_for  # type: ignore[attr-defined,no-redef]

    User = uow_user_class()
    meta = User._uow_meta
    age_bit = User._uow_setters["age"].bit
    rows_in = [row(i) for i in range(n)]
    stored = [
        bson.decode(bson.encode({"_id": bson.ObjectId(), **row(i)})) for i in range(n)
    ]  # what pymongo hands back for each stored document

    # -- construct + serialize
    def uow_public(_: Any) -> None:
        for r in rows_in:
            User(**r).to_bson()

    def uow_session_insert(db: NullDatabase) -> None:
        s = uow.Session(db)
        s.add_all([User(**r) for r in rows_in])
        s.flush()
        assert db.sent == n

    def attrs_asdict(_: Any) -> None:
        for r in rows_in:
            attrs.asdict(PlainUser(**r))

    def plain_dict(_: Any) -> None:
        for r in rows_in:
            {
                "name": r["name"],
                "email": r["email"],
                "age": r["age"],
                "tags": list(r["tags"]),
                "score": r["score"],
                "created": r["created"],
            }

    # -- load + change + diff
    def null_db_with_stored() -> NullDatabase:
        db = NullDatabase()
        db.stored = stored
        return db

    def uow_change_tracking(_: Any) -> None:
        for raw in stored:
            user = User.from_bson(raw)  # copies every list it hands out: raw stays as loaded
            user.age += 1
            update_for(meta, raw, user.to_bson(), age_bit)

    def uow_session_update(db: NullDatabase) -> None:
        s = uow.Session(db)
        for user in s.query(User).all():
            user.age += 1
        s.flush()
        assert db.sent == n

    def attrs_load_diff(_: Any) -> None:
        for raw in stored:
            fields = {k: v for k, v in raw.items() if k != "_id"}
            obj = PlainUser(**fields)
            obj.age += 1
            new = attrs.asdict(obj)
            {k: v for k, v in new.items() if fields.get(k) != v}

    def dict_load_diff(_: Any) -> None:
        for raw in stored:
            doc = dict(raw)
            doc["age"] += 1
            {k: v for k, v in doc.items() if raw.get(k) != v}

    none: Callable[[], Any] = lambda: None  # noqa: E731
    cases: list[Cell] = [
        ("construct + serialize", CONSTRUCT_TARGET, none, uow_public),
        ("construct + serialize", CONSTRUCT_SESSION, NullDatabase, uow_session_insert),
        ("construct + serialize", "attrs: construct + attrs.asdict", none, attrs_asdict),
        ("construct + serialize", "plain dict literal", none, plain_dict),
        ("load + change + diff", LOAD_TARGET, none, uow_change_tracking),
        ("load + change + diff", LOAD_SESSION, null_db_with_stored, uow_session_update),
        (
            "load + change + diff",
            "attrs: from dict + change + asdict + dict diff",
            none,
            attrs_load_diff,
        ),
        ("load + change + diff", "plain dict: copy + change + dict diff", none, dict_load_diff),
    ]
    return cases


def measure(n: int, repeat: int) -> list[dict[str, Any]]:
    """Every row: ``{"path", "label", "us_per_doc"}``."""
    return [
        {"path": path, "label": label, "us_per_doc": _time_batch(prepare, run, n, repeat)}
        for path, label, prepare, run in cells(n)
    ]
