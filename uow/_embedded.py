"""Bulk writes on the embedded backend (mongomock) without mongomock's ``bulk_write``.

mongomock 4.3.0's ``Collection.bulk_write`` gives each pymongo request a
``BulkOperationBuilder`` to add itself to (``request._add_to_bulk(builder)``).
Since pymongo 4.11, ``UpdateOne`` and ``ReplaceOne`` pass ``sort=`` (``None``
when unused) to ``add_update`` / ``add_replace``, which mongomock's methods do not
take: every such ``bulk_write`` fails with ``TypeError: add_update() got an
unexpected keyword argument 'sort'`` (mongomock issue #912).

uow does not patch mongomock for that: a library must not change another
library's behaviour, and a user's own ``bulk_write`` on mongomock fails exactly
as it would without uow. Instead uow's own write path (``_persistence.run_batch``)
sends its ordered bulk writes on a mongomock collection through :func:`bulk_write`
here: the same builder mongomock's ``bulk_write`` uses, fed through a small
adapter that takes ``sort``, so each write runs mongomock's own code and the
result and errors are the ones mongomock's ``bulk_write`` gives:

* a :class:`pymongo.results.BulkWriteResult` over the builder's result
  (``nMatched``, ``nModified``, ``nRemoved``, ``nUpserted``, ``upserted``...);
* a failed write raises mongomock's ``BulkWriteError`` (pymongo's class), with
  ``details["writeErrors"][0]`` giving the failed write's ``index``, ``code`` and
  ``errmsg`` after the writes before it were applied (ordered). A write that
  mongomock fails with some other exception than a ``WriteError`` (its ``$max``
  and ``$min`` compare with Python's ``max``/``min``, so a stored null raises
  ``TypeError`` where MongoDB would set the value) is reported the same way,
  with ``code`` None, rather than escaping with no word of what landed. That is
  mongomock's answer, not MongoDB's: uow does not change it.

Two updates mongomock would store otherwise than MongoDB are given to it in a
form it stores as MongoDB does: a ``$addToSet`` through a list index (which
mongomock cannot walk) and a ``$currentDate`` (which mongomock stores with
microseconds); see ``_positional_add_to_set`` and
``_current_date_to_the_millisecond``. Only uow's own writes pass through here.

A ``sort`` other than ``None`` raises ``NotImplementedError`` before anything is
written: mongomock cannot honour it, and updating whichever document matches
first would be silent data damage. (uow never sends one.)

mongomock is never imported here: the collection's own methods are used.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pymongo.errors import WriteError
from pymongo.results import BulkWriteResult

__all__ = ["bulk_write"]


def bulk_write(collection: Any, requests: Iterable[Any]) -> BulkWriteResult:
    """Run pymongo ``requests`` as one ordered bulk write on a mongomock ``collection``.

    What ``collection.bulk_write(requests, ordered=True)`` would do were it not
    for mongomock issue #912 (see the module docstring).

    Raises:
        pymongo.errors.BulkWriteError: a write failed; the earlier ones landed.
        NotImplementedError: a request with a ``sort`` (nothing is written).
    """
    builder = collection.initialize_ordered_bulk_op()
    adapter = _Builder(builder, collection)
    for request in requests:
        request._add_to_bulk(adapter)
    # mongomock's builder reports a WriteError as a write error at its index, but
    # lets any other exception (a TypeError from one of its operators, say) out
    # of the batch with the writes before it applied: nothing would tell which.
    executors = getattr(builder, "executors", None)
    if isinstance(executors, list):
        builder.executors = _Reporting(executors)
    return BulkWriteResult(builder.execute(), True)


class _Reporting:
    """The builder's writes, each handed out wrapped by ``_reported`` as the builder
    runs it: one wrapper alive at a time (one per write, all alive at once, was
    garbage every collection of the batch walked)."""

    __slots__ = ("_executors",)

    def __init__(self, executors: list[Callable[[], Any]]) -> None:
        self._executors = executors

    def __len__(self) -> int:
        return len(self._executors)

    def __iter__(self) -> Iterator[Callable[[], Any]]:
        for execute in self._executors:
            yield _reported(execute)


def _reported(execute: Callable[[], Any]) -> Callable[[], Any]:
    """``execute`` (one write of the batch), raising any failure as a WriteError."""

    def reported() -> Any:
        try:
            return execute()
        except WriteError:
            raise
        except Exception as exc:
            raise WriteError(f"mongomock raised {type(exc).__name__}: {exc}") from exc

    # The builder tells writes apart by __name__. Not functools.wraps: one of
    # these per write, and wraps costs several times the closure.
    reported.__name__ = execute.__name__
    return reported


class _Builder:
    """What pymongo's ``_add_to_bulk`` calls, passed on to mongomock's builder.

    Options left at ``None`` are not passed on: mongomock's defaults are the
    same, and an option pymongo adds later (as it added ``sort``) cannot break
    the call while it is unused.
    """

    __slots__ = ("_builder", "_collection")

    def __init__(self, builder: Any, collection: Any) -> None:
        self._builder = builder
        self._collection = collection

    def add_insert(self, document: Any) -> None:
        self._builder.add_insert(document)

    def add_update(
        self, selector: Any, document: Any, multi: bool, upsert: bool, **options: Any
    ) -> None:
        if isinstance(document, dict):
            if "$currentDate" in document:
                document = _current_date_to_the_millisecond(document)
            if not multi and "$addToSet" in document:
                document = _positional_add_to_set(self._collection, selector, document)
        self._builder.add_update(selector, document, multi, upsert, **_used(options, "update"))

    def add_replace(self, selector: Any, document: Any, upsert: bool, **options: Any) -> None:
        self._builder.add_replace(selector, document, upsert, **_used(options, "replace"))

    def add_delete(self, selector: Any, limit: int, **options: Any) -> None:
        self._builder.add_delete(selector, limit, **_used(options, "delete"))


def _used(options: dict[str, Any], what: str) -> dict[str, Any]:
    """The options that are set; a ``sort`` is refused (mongomock cannot apply it)."""
    sort = options.get("sort")
    if sort is not None:
        raise NotImplementedError(
            f"mongomock cannot apply sort={sort!r} in a bulk {what} (UpdateOne/ReplaceOne "
            "with sort): it would write whichever document matches first. Use a real "
            "MongoDB server, or a filter that matches one document."
        )
    return {name: value for name, value in options.items() if value is not None}


def _current_date_to_the_millisecond(update: dict[str, Any]) -> dict[str, Any]:
    """``update`` with its ``$currentDate`` dates given as a ``$set`` of the time now,
    to the millisecond.

    MongoDB stores a date to the millisecond, as BSON does; mongomock 4.3.0's
    ``$currentDate`` stores Python's microseconds (where its ``$set`` of a datetime
    keeps milliseconds), so what the flush reads back would not be what a later
    write of the same value stores. A ``{"$type": "timestamp"}`` is left to mongomock.
    """
    dates = {
        path: how
        for path, how in update["$currentDate"].items()
        if how is True or how == {"$type": "date"}
    }
    if not dates:
        return update
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    now -= datetime.timedelta(microseconds=now.microsecond % 1000)
    rewritten = {operator: dict(paths) for operator, paths in update.items()}
    for path in dates:
        del rewritten["$currentDate"][path]
        rewritten.setdefault("$set", {})[path] = now
    if not rewritten["$currentDate"]:
        del rewritten["$currentDate"]
    return rewritten


def _positional_add_to_set(collection: Any, selector: Any, update: dict[str, Any]) -> Any:
    """``update`` with each ``$addToSet`` on a path through a list element
    (``lines.0.kinds``) turned into the ``$push`` of the items not stored there yet.

    mongomock 4.3.0's ``$addToSet`` cannot walk a list index (it raises
    ``TypeError: list indices must be integers``); MongoDB can. The stored array
    is read first (in process, as the write itself is): the result is what
    MongoDB's ``$addToSet`` stores.
    """
    adding = update["$addToSet"]
    positional = [path for path in adding if any(part.isdigit() for part in path.split("."))]
    if not positional:
        return update
    # (A projection cannot name a list index: the top-level fields are read.)
    stored = collection.find_one(selector, {path.split(".", 1)[0]: 1 for path in positional})
    rewritten = {operator: dict(paths) for operator, paths in update.items()}
    for path in positional:
        value = rewritten["$addToSet"].pop(path)
        items = value["$each"] if isinstance(value, dict) and "$each" in value else [value]
        present = list(_at(stored, path)) if stored is not None else []
        new: list[Any] = []
        for item in items:
            if item not in present and item not in new:
                new.append(item)
        if new:
            rewritten.setdefault("$push", {})[path] = {"$each": new}
    if not rewritten["$addToSet"]:
        del rewritten["$addToSet"]
    if not rewritten and stored is not None:
        # Every item was there: nothing changes, but the write must still match
        # (a lost race is told by the count). The field, set to what it holds.
        top = positional[0].split(".", 1)[0]
        rewritten = {"$set": {top: stored.get(top)}}
    return rewritten or update


def _at(document: Any, path: str) -> Any:
    """The array stored at dotted ``path`` (list indexes included), or ``[]``."""
    value = document
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return []
    return value if isinstance(value, list) else []

