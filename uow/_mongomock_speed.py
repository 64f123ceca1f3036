"""Two speed fixes for mongomock 4.x, for tests that opt in: :func:`installed`.

uow never applies these by itself: a library must not change another library
for the whole process as a side effect of being used. A test suite that wants
them says so, with ``uow.testing.fast_mongomock()`` (or the ``uow_fast_mongomock``
fixture), and gets mongomock's own functions back, the very same objects, when
it ends. They make mongomock faster without changing a single answer; they
exist because mongomock 4.3.0 has two slow paths that make a test suite with a
few thousand documents crawl:

1. ``Collection._iter_documents`` answers every filter, ``{"_id": x}`` included,
   by calling ``filter_applies`` on every document of the collection. Loading one
   document by id costs a scan, so loading or updating N documents one by one
   costs N^2 filter evaluations (10,000 ``find_one`` by id: about 165 s).
2. ``Cursor.__next__`` slices the whole cached result list for every document it
   returns (``results[skip:][:limit][emitted]``), so reading N documents copies N^2
   pointers (about 30 s for 100,000 documents).

The fixes:

1. A filter whose ``_id`` condition is a plain scalar (exact type ObjectId, str,
   int, bool, Int64, float other than NaN, UUID or Binary) or ``{"$in": [...]}``
   of such scalars, and comes first or after plain scalar equalities on fields
   only (``{"_id": x, ...}``, ``{"_cls": "User", "_id": x}``), takes its
   candidates from mongomock's store, a dict keyed by ``_id``, instead of from
   every document. Every candidate still goes through mongomock's own
   ``filter_applies`` with the *whole* filter, so mongomock still decides what
   matches; the lookup only skips documents that cannot match. Every other
   filter, and every collection that is empty (where mongomock validates the
   filter against ``{}``), has a TTL index (its store expires documents on each
   access), or holds an irregular ``_id`` (see below), takes mongomock's path
   unchanged.
2. The cursor returns ``results[skip + emitted]`` while ``emitted`` is below the
   limit, the same element the slices end at. It still calls mongomock's
   ``_compute_results`` each time, so the result list is computed, cached and
   recomputed exactly when mongomock does it: on the first read, when ``sort()``
   changed the query, and (a mongomock quirk kept as it is) on every read while the
   cached list is empty. A collection changed while a cursor is open is therefore
   seen exactly as mongomock sees it: not at all once the cursor has results.

Why the documents, their order and the errors are mongomock's:

* For a scalar ``x``, mongomock matches a document when ``doc["_id"] == x`` (a
  list ``_id`` also when it contains ``x``). For the types above, Python's
  equality keeps the hash contract, and the store's key for a document is the
  ``_id`` object itself, so a dict lookup with ``x`` finds every document with
  ``doc["_id"] == x``: ``True`` finds ``1`` and ``1.0`` finds ``1``, because
  mongomock (unlike MongoDB) treats them as equal too; ``Int64(1)`` finds ``1``.
  NaN is left out: it equals nothing, not even itself, while a dict lookup also
  matches by identity. ``$in`` is the union of those lookups (mongomock compares
  with ``in``, which is ``==`` or identity: the same as a dict lookup for these
  types), and with more than one candidate they are put back in store order by
  one pass over the store.
* mongomock stores a tuple ``_id`` under the tuple but keeps a list in the
  document, and then ``{"_id": 1}`` matches ``{"_id": [1, 2]}`` (the list rule),
  which no lookup by key can find. So the store's ``__setitem__`` is wrapped to
  mark a collection whose documents hold an ``_id`` of any type outside a known
  plain set (a list, an OrderedDict...); such a collection takes mongomock's path
  for as long as the fixes are installed. A collection filled before they were
  installed is surveyed once, on its first fast lookup.
* mongomock's ``filter_applies`` tests the filter's keys in order and returns
  False at the first that fails. Before ``_id`` there are only plain equalities,
  which cannot raise, and a document the lookup skips fails at ``_id`` at the
  latest, before any later key is looked at: so the skipped documents would
  neither have matched nor raised. (A filter with an invalid operator after
  ``_id`` raises, as with mongomock, as soon as a candidate reaches it.) The
  candidates are taken when ``_iter_documents`` is called and filtered lazily, as
  mongomock's generator does, which matters to ``update_many``: it changes each
  document before the next one is tested.

Installing replaces ``Collection._iter_documents``, ``Cursor.__next__`` (and its
alias ``Cursor.next``) and ``CollectionStore.__setitem__`` on mongomock's classes;
uninstalling puts the saved originals back and forgets every survey (a store
written to meanwhile was not watched). mongomock is imported only by
:func:`installed`.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import math
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import bson
from bson.binary import Binary
from bson.decimal128 import Decimal128

__all__ = ["installed"]

# Set on our wrappers, so that a test can tell them from mongomock's functions.
_MARKER = "__uow_mongomock_speed__"

# Guards installing and uninstalling: the depth, the saved originals.
_install_lock = threading.Lock()
_depth = 0
# (class, attribute name, mongomock's own value from the class __dict__).
_saved: list[tuple[Any, str, Any]] = []

# Per mongomock CollectionStore: True once it holds an irregular _id, False once
# surveyed clean; absent: not surveyed (since the fixes were installed). Kept
# here, not on the store: nothing of uow is left on mongomock's objects.
_irregular: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
# Guards _irregular: a survey and a concurrent insert of an irregular _id must
# not leave False behind (see _has_irregular_ids).
_survey_lock = threading.Lock()

# Exact types of an _id value the lookup answers. Exact: a subclass may redefine
# equality (bool is listed on purpose: mongomock matches True and 1 both ways,
# and so does a dict lookup).
_LOOKUP_TYPES: frozenset[type] = frozenset(
    {bson.ObjectId, str, int, bool, bson.Int64, float, uuid.UUID, Binary}
)

# Exact types of a stored _id that mongomock compares with plain ==, and that
# either are stored under themselves (the lookup types) or equal none of the
# lookup types (dict ids are stored under a hashdict; datetimes under the value
# before mongomock cut it to milliseconds; None: no _id at all).
_PLAIN_ID_TYPES: frozenset[type] = _LOOKUP_TYPES | {
    dict,
    type(None),
    datetime.datetime,
    bytes,
    Decimal128,
}


@contextlib.contextmanager
def installed() -> Iterator[bool]:
    """Both fixes installed on mongomock 4.x while the block runs, then removed.

    Yields whether they are in place: False when mongomock is missing or is not
    a 4.x release (the wrappers mirror 4.x internals), and then nothing is
    touched. Nested or concurrent blocks share one installation; the last to
    leave puts back what was there before (mongomock's own functions: the very
    same objects) and forgets every survey.
    """
    active = _install()
    try:
        yield active
    finally:
        if active:
            _uninstall()


def is_installed() -> bool:
    """Whether an :func:`installed` block is open (in any thread)."""
    with _install_lock:
        return _depth > 0


def _install() -> bool:
    global _depth  # noqa: PLW0603 - one installation per process, counted
    targets = _targets()
    if targets is None:
        return False
    with _install_lock:
        if _depth == 0:
            collection_class, cursor_class, store_class, collection_module = targets
            originals = {
                (store_class, "__setitem__"): store_class.__dict__["__setitem__"],
                (collection_class, "_iter_documents"): collection_class.__dict__["_iter_documents"],
                (cursor_class, "__next__"): cursor_class.__dict__["__next__"],
                (cursor_class, "next"): cursor_class.__dict__["next"],
            }
            fast_next = _indexing_next(cursor_class.__dict__["__next__"])
            replacements = {
                (store_class, "__setitem__"): _noting_irregular_ids(
                    store_class.__dict__["__setitem__"]
                ),
                (collection_class, "_iter_documents"): _looking_up_ids(
                    collection_class.__dict__["_iter_documents"], collection_module
                ),
                # mongomock's class body says `next = __next__`: the alias is a second name.
                (cursor_class, "__next__"): fast_next,
                (cursor_class, "next"): fast_next,
            }
            _saved[:] = [(owner, name, value) for (owner, name), value in originals.items()]
            for (owner, name), value in replacements.items():
                setattr(owner, name, value)
        _depth += 1
    return True


def _uninstall() -> None:
    global _depth  # noqa: PLW0603 - see _install
    with _install_lock:
        _depth -= 1
        if _depth:
            return
        for owner, name, original in _saved:
            setattr(owner, name, original)
        _saved.clear()
        with _survey_lock:
            _irregular.clear()


def _targets() -> tuple[Any, Any, Any, Any] | None:
    """mongomock 4.x's classes to wrap, or None (missing, another release)."""
    try:
        import mongomock
        import mongomock.collection
        import mongomock.store
    except ImportError:
        return None
    if not str(getattr(mongomock, "__version__", "")).startswith("4."):
        return None
    # Typed as Any: mongomock has no annotations.
    collection_class: Any = getattr(mongomock.collection, "Collection", None)
    cursor_class: Any = getattr(mongomock.collection, "Cursor", None)
    store_class: Any = getattr(mongomock.store, "CollectionStore", None)
    if (
        "_iter_documents" not in getattr(collection_class, "__dict__", {})
        or "__next__" not in getattr(cursor_class, "__dict__", {})
        or "next" not in getattr(cursor_class, "__dict__", {})
        or "__setitem__" not in getattr(store_class, "__dict__", {})
        or not hasattr(cursor_class, "_compute_results")
        or not hasattr(mongomock.collection, "filter_applies")
    ):  # pragma: no cover - a mongomock 4.x that reorganised itself
        return None
    return collection_class, cursor_class, store_class, mongomock.collection


# ------------------------------------------------------------------ _id lookups


def _noting_irregular_ids(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``CollectionStore.__setitem__`` to mark a store given an irregular _id."""

    @functools.wraps(original)
    def __setitem__(self: Any, key: Any, value: Any) -> None:
        # Marked before the write, so a survey running meanwhile cannot miss it.
        if not _is_plain_document(value):
            _mark_irregular(self)
        original(self, key, value)

    setattr(__setitem__, _MARKER, True)
    return __setitem__


def _is_plain_document(document: Any) -> bool:
    return isinstance(document, dict) and type(document.get("_id")) in _PLAIN_ID_TYPES


def _mark_irregular(store: Any) -> None:
    with _survey_lock:
        _irregular[store] = True


def _has_irregular_ids(store: Any) -> bool:
    """Whether ``store`` holds (or held) an irregular _id; surveys it the first time."""
    irregular = _irregular.get(store)  # set once surveyed: no lock needed to read it
    if irregular is not None:
        return irregular
    with _survey_lock:
        irregular = _irregular.get(store)
        if irregular is None:
            # A store filled before installing: its inserts were not watched.
            irregular = not all(_is_plain_document(doc) for doc in store.documents)
            _irregular[store] = irregular
    return irregular


def _is_lookup_value(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return not math.isnan(value)
    return kind in _LOOKUP_TYPES


def _wanted_ids(filter_: Any) -> tuple[Any, ...] | None:
    """The _id values to look up for ``filter_``, or None for mongomock's scan."""
    if type(filter_) is not dict:
        return None
    for key, condition in filter_.items():
        if key == "_id":
            return _ids_in(condition)
        # mongomock tests this condition on every document before it reaches _id:
        # only a plain equality on a field, which cannot raise, may come first.
        if type(key) is not str or key.startswith("$") or not _is_lookup_value(condition):
            return None
    return None


def _ids_in(condition: Any) -> tuple[Any, ...] | None:
    if _is_lookup_value(condition):
        return (condition,)
    if type(condition) is dict and len(condition) == 1:
        values: Any = condition.get("$in")
        # Exact list or tuple: mongomock tests membership with `in`, which a
        # subclass could redefine.
        if type(values) in (list, tuple) and all(_is_lookup_value(v) for v in values):
            return tuple(values)
    return None


def _lookup(store: Any, ids: tuple[Any, ...]) -> list[Any]:
    """The stored documents whose _id equals one of ``ids``, in store order."""
    found: dict[int, Any] = {}
    for value in ids:
        try:
            document = store[value]
        except KeyError:
            continue
        found[id(document)] = document
    if len(found) <= 1:
        return list(found.values())
    # Back into store (insertion) order, the order mongomock's scan yields.
    return [document for document in store.documents if id(document) in found]


def _looking_up_ids(original: Callable[..., Any], collection_module: Any) -> Callable[..., Any]:
    """Wrap ``Collection._iter_documents`` to take _id candidates from the store."""

    @functools.wraps(original)
    def _iter_documents(self: Any, filter: Any) -> Any:
        ids = _wanted_ids(filter)
        if ids is None:
            return original(self, filter)
        store = self._store
        if store.is_empty or getattr(store, "_ttl_indexes", True) or _has_irregular_ids(store):
            return original(self, filter)
        # Candidates now, as mongomock lists the store now; tested lazily, as it does.
        candidates = _lookup(store, ids)
        # Read at call time, like the original's global lookup, so that a patched
        # filter_applies (a test counting calls, say) is honoured.
        filter_applies: Callable[[Any, Any], bool] = collection_module.filter_applies
        if type(filter["_id"]) is dict:
            # {"$in": [...]}: every candidate is a member by construction (the store
            # found it by hash, which for these id types is the equality mongomock
            # tests). Testing it again would compare each candidate with every id:
            # quadratic for a delete of N documents by id.
            rest = {key: value for key, value in filter.items() if key != "_id"}
            return (document for document in candidates if filter_applies(rest, document))
        return (document for document in candidates if filter_applies(filter, document))

    setattr(_iter_documents, _MARKER, True)
    return _iter_documents


# ---------------------------------------------------------------------- cursor


def _indexing_next(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap ``Cursor.__next__`` to index the cached results instead of slicing them."""

    @functools.wraps(original)
    def __next__(self: Any) -> Any:
        skip, limit, emitted = self._skip, self._limit, self._emitted
        if not (
            isinstance(skip, int)
            and skip >= 0
            and isinstance(emitted, int)
            and emitted >= 0
            and (limit is None or isinstance(limit, int))
        ):
            # Anything odd (a negative or None skip...) slices as mongomock does.
            return original(self)
        try:
            results = self._compute_results()
        except IndexError as exc:
            # The original turns an IndexError from anywhere inside into the end.
            raise StopIteration from exc
        # mongomock: results[skip:][:abs(limit)] when the limit is truthy.
        if limit and emitted >= abs(limit):
            raise StopIteration
        index = skip + emitted
        if index >= len(results):
            raise StopIteration
        self._emitted = emitted + 1
        return results[index]

    setattr(__next__, _MARKER, True)
    return __next__
