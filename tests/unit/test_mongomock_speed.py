"""uow.testing.fast_mongomock: mongomock's _id lookup and linear cursor change no result.

The fixes are in place only inside ``fast_mongomock()`` (uow never installs them
by itself). Every comparison runs the same operation twice on identically seeded
in-process mongomock collections, once inside the block and once outside (stock
mongomock, the reference), and compares ``repr`` of the outcome: ``repr`` tells ``True`` from
``1``, ``1.0`` from ``1`` and ``Int64(1)`` from ``1``, where ``==`` would not. An
outcome is the returned value or the exception's type and message.

The speed itself is proved without timing: a counter on mongomock's
``filter_applies`` shows that an ``_id`` lookup tests one document where stock
mongomock tests all 20,000, and a list that counts copied slices shows that the
cursor no longer copies its results once per document.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import mongomock
import mongomock.collection
import mongomock.store
import pytest
from bson import Binary, Int64, ObjectId
from bson.decimal128 import Decimal128
from bson.son import SON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uow import _mongomock_speed
from uow.testing import fast_mongomock

NAN = float("nan")  # one object: mongomock's `in` matches NaN by identity
OID = ObjectId("5f0000000000000000000001")
OTHER_OID = ObjectId("5f0000000000000000000002")
BIN = Binary.from_uuid(uuid.UUID(int=5))
WHEN = datetime.datetime(2020, 1, 2, 3, 4, 5, 123456)

# Seeds: the _id values of each collection (each document also gets v and tag).
SEEDS: dict[str, list[Any]] = {
    # 1 and True, 1 and 1.0, 0 and False cannot share a collection in mongomock
    # (one key in its store), so the traps are spread over several.
    "mixed": [
        0,
        1,
        2,
        7,
        Int64(8),
        2.5,
        float("inf"),
        -3,
        "a",
        "1",
        "",
        OID,
        BIN,
        {"k": 1},
        {"k": [1, 2]},
        WHEN,
        None,
        b"raw",
        NAN,
        SON([("s", 1)]),
    ],
    "bools": [True, False, 2, "t"],
    "floats": [1.0, 2.0, 3.5, Int64(4)],
    # mongomock keeps a tuple _id as a list in the document, where {"_id": 1}
    # matches [1, 2]: no lookup by key can find that.
    "tuples": [(1, 2), 3, "a", ("a", "b")],
    "empty": [],
}

PROBES: list[Any] = [
    0,
    1,
    2,
    3,
    8,
    99,
    -0.0,
    1.0,
    2.0,
    8.0,
    3.5,
    True,
    False,
    Int64(1),
    Int64(8),
    "a",
    "b",
    "1",
    "",
    "t",
    OID,
    OTHER_OID,
    str(OID),
    BIN,
    uuid.UUID(int=5),
    b"raw",
    Decimal128("1"),
    NAN,
    float("nan"),
    float("inf"),
    None,
    WHEN,
    re.compile("^a"),
    {"k": 1},
    {"s": 1},
    [1, 2],
    (1, 2),
]


def filters_for(probe: Any) -> list[Any]:
    """The filter shapes tried with one probe value."""
    return [
        {"_id": probe},
        {"_id": probe, "v": 1},
        {"_id": probe, "v": {"$gte": 0}},
        {"v": 1, "_id": probe},
        {"tag": "x", "_id": probe},
        {"v": {"$gte": 0}, "_id": probe},
        {"v": {"$bad": 1}, "_id": probe},
        {"_id": {"$in": [probe]}},
        {"_id": {"$in": [probe, 2, "a", probe]}},
        {"_id": {"$in": [probe]}, "v": {"$lt": 2}},
        {"_id": probe, "v": {"$bad": 1}},
        {"_id": {"$eq": probe}},
        {"$comment": "c", "_id": probe},
    ]


SPECIAL_FILTERS: list[Any] = [
    {},
    {"v": 1},
    {"_id": {"$in": []}},
    {"_id": {"$in": [2, 1, 0, 1, 7]}},
    {"_id": {"$in": (1, 2)}},
    {"_id": {"$in": [re.compile("^a"), 1]}},
    {"_id": {"$in": [{"k": 1}, 1]}},
    {"_id": {"$in": [NAN, 1]}},
    {"_id": {"$in": "12"}},
    {"_id": {"$in": [1, 2], "$nin": [2]}},
    {"_id": 1, "$or": [{"v": 1}, {"v": 2}]},
    {"_id": 1, "$foo": 1},
    {"_id": 99, "v": {"$bad": 1}},
    {"v": {"$bad": 1}, "_id": 1},
    {"v": {"$bad": 1}, "_id": 99},
    {"$or": [{"_id": 1}, {"_id": "a"}]},
    {"_id": {"$in": [1, "a"]}, "v": {"$in": [1, 3]}},
    SON([("_id", 1)]),
    SON([("v", 1), ("_id", 1)]),
]

ALL_FILTERS: list[Any] = [f for probe in PROBES for f in filters_for(probe)] + SPECIAL_FILTERS


@contextlib.contextmanager
def speed(enabled: bool) -> Iterator[None]:
    """The fixes installed (``fast_mongomock``), or stock mongomock."""
    assert not _mongomock_speed.is_installed()
    if not enabled:
        yield
        return
    with fast_mongomock() as active:
        assert active
        yield


def seeded(ids: list[Any]) -> Any:
    """A collection of a fresh in-process server holding one document per id."""
    collection = mongomock.MongoClient()["db"]["c"]
    for index, id_ in enumerate(ids):
        collection.insert_one({"_id": id_, "v": index % 4, "tag": "x"})
    return collection


def outcome(action: Callable[[], Any]) -> str:
    try:
        return repr(action())
    except Exception as exc:  # the error is part of the outcome to compare
        return f"{type(exc).__name__}: {exc}"


def contents(collection: Any) -> str:
    """Everything stored, in store order, read the stock way."""
    with speed(False):
        return repr(list(collection.find()))


@contextlib.contextmanager
def counting_filter() -> Iterator[list[int]]:
    """Count the calls of mongomock's filter_applies (by _iter_documents and us)."""
    original = mongomock.collection.filter_applies
    calls = [0]

    def counted(filter_: Any, document: Any) -> bool:
        calls[0] += 1
        return bool(original(filter_, document))

    mongomock.collection.filter_applies = counted
    try:
        yield calls
    finally:
        mongomock.collection.filter_applies = original


def both(
    ids: list[Any], action: Callable[[Any], Any], *, writes: bool = False
) -> tuple[str, str, int]:
    """(stock outcome, patched outcome, filter calls saved) of ``action``."""
    results = {}
    calls = {}
    for enabled in (False, True):
        collection = seeded(ids)
        with speed(enabled), counting_filter() as counter:
            result = outcome(lambda c=collection: action(c))
        if writes:
            result += " -> " + contents(collection)
        results[enabled] = result
        calls[enabled] = counter[0]
    return results[False], results[True], calls[False] - calls[True]


# ------------------------------------------------------------------ equivalence


READS: dict[str, Callable[[Any, Any], Any]] = {
    "find": lambda c, f: list(c.find(f)),
    "find sorted": lambda c, f: list(c.find(f, sort=[("v", -1)], skip=1, limit=3)),
    "find_one": lambda c, f: c.find_one(f),
    "count_documents": lambda c, f: c.count_documents(f),
    "distinct": lambda c, f: sorted(map(repr, c.distinct("v", f))),
}


def raw(result: Any) -> dict[str, Any]:
    """A write's raw result without the id of the client, which differs per run."""
    return {k: v for k, v in result.raw_result.items() if k != "connectionId"}


WRITES: dict[str, Callable[[Any, Any], Any]] = {
    "update_many": lambda c, f: raw(c.update_many(f, {"$inc": {"v": 10}})),
    # An upsert without an _id would insert a random ObjectId: give it one.
    "update_one upsert": lambda c, f: raw(
        c.update_one(f, {"$set": {"w": 1}, "$setOnInsert": {"_id": "new"}}, upsert=True)
    ),
    "replace_one": lambda c, f: raw(c.replace_one(f, {"r": 1})),
    "delete_many": lambda c, f: raw(c.delete_many(f)),
    "delete_one": lambda c, f: raw(c.delete_one(f)),
    "find_one_and_update": lambda c, f: c.find_one_and_update(f, {"$set": {"w": 2}}),
}


@pytest.mark.parametrize("seed", SEEDS)
def test_reads_return_what_stock_mongomock_returns(seed: str) -> None:
    collection = seeded(SEEDS[seed])  # reads change nothing: one collection serves both
    mismatches = []
    saved = 0
    for filter_ in ALL_FILTERS:
        for name, read in READS.items():
            with speed(False), counting_filter() as stock_calls:
                stock = outcome(lambda r=read, f=filter_: r(collection, f))
            with speed(True), counting_filter() as calls:
                patched = outcome(lambda r=read, f=filter_: r(collection, f))
            saved += stock_calls[0] - calls[0]
            if stock != patched:
                mismatches.append((name, filter_, stock, patched))
    assert mismatches == []
    if SEEDS[seed] and seed != "tuples":
        # Not vacuous: the lookup did replace scans here.
        assert saved > 0
    else:
        # Empty, or holding an _id the lookup cannot find by key: mongomock's path.
        assert saved == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_writes_change_what_stock_mongomock_changes(seed: str) -> None:
    mismatches = []
    for filter_ in ALL_FILTERS:
        for name, write in WRITES.items():
            stock, patched, _ = both(
                SEEDS[seed], lambda c, w=write, f=filter_: w(c, f), writes=True
            )
            if stock != patched:
                mismatches.append((name, filter_, stock, patched))
    assert mismatches == []


def test_the_traps_really_differ_from_a_naive_lookup() -> None:
    # What the comparisons above rely on: mongomock's own answers for the traps.
    bools = seeded(SEEDS["bools"])
    assert bools.find_one({"_id": 1}) == {"_id": True, "v": 0, "tag": "x"}
    assert repr(bools.find_one({"_id": 1})["_id"]) == "True"
    tuples = seeded(SEEDS["tuples"])
    assert [d["_id"] for d in tuples.find({"_id": 1})] == [[1, 2]]
    assert [d["_id"] for d in tuples.find({"_id": {"$in": ["b"]}})] == [["a", "b"]]
    mixed = seeded(SEEDS["mixed"])
    assert list(mixed.find({"_id": NAN})) == []
    assert [d["v"] for d in mixed.find({"_id": {"$in": [NAN]}})] == [2]
    assert [d["_id"] for d in mixed.find({"_id": {"$in": [7, 0, 2]}})] == [0, 2, 7]


def test_an_irregular_id_stored_before_installing_is_found_by_the_survey() -> None:
    collection = seeded([3, (1, 2)])  # inserted outside the block: not watched
    store = collection._store
    with speed(True):
        assert store not in _mongomock_speed._irregular
        assert [d["_id"] for d in collection.find({"_id": 1})] == [[1, 2]]
        assert _mongomock_speed._irregular[store] is True


def test_a_regular_store_is_surveyed_once_and_then_uses_the_lookup() -> None:
    with speed(True):
        collection = seeded(list(range(50)))
        store = collection._store
        assert store not in _mongomock_speed._irregular  # never surveyed
        with counting_filter() as calls:
            assert collection.find_one({"_id": 30})["_id"] == 30
        assert calls[0] == 1
        assert _mongomock_speed._irregular[store] is False
        collection.insert_one({"_id": (50, 51)})
        assert _mongomock_speed._irregular[store] is True
        with counting_filter() as calls:
            assert [d["_id"] for d in collection.find({"_id": 50})] == [[50, 51]]
        assert calls[0] == 51


def test_leaving_the_block_forgets_the_surveys() -> None:
    # An irregular _id inserted between two blocks is not watched: the second
    # block must survey again rather than trust the first one's "clean".
    collection = seeded(list(range(5)))
    with speed(True):
        assert collection.find_one({"_id": 3})["_id"] == 3
        assert _mongomock_speed._irregular[collection._store] is False
    collection.insert_one({"_id": (7, 8)})
    assert len(_mongomock_speed._irregular) == 0
    with speed(True):
        assert [d["_id"] for d in collection.find({"_id": 7})] == [[7, 8]]


def test_a_ttl_collection_takes_mongomocks_path() -> None:
    def seed_and_read(collection: Any) -> Any:
        collection.create_index("at", expireAfterSeconds=60)
        old = datetime.datetime(2000, 1, 1)
        collection.insert_many([{"_id": 1, "at": old}, {"_id": 2, "at": WHEN.max}])
        return list(collection.find({"_id": {"$in": [1, 2]}}))

    stock, patched, saved = both([], seed_and_read)
    assert stock == patched
    assert "'_id': 2" in patched and "'_id': 1" not in patched
    assert saved == 0


def test_update_many_tests_each_document_after_updating_the_previous_one() -> None:
    # mongomock filters lazily: an error on the second candidate comes after the
    # first was updated, and that update stays. An eager lookup would change
    # nothing before raising.
    def partial(collection: Any) -> Any:
        collection.insert_many([{"_id": i, "d": int(i != 1), "n": 0} for i in range(3)])
        divide = {"$gt": [{"$divide": [1, "$d"]}, 0]}
        return raw(
            collection.update_many({"_id": {"$in": [0, 1, 2]}, "$expr": divide}, {"$inc": {"n": 1}})
        )

    stock, patched, saved = both([], partial, writes=True)
    assert stock == patched
    assert patched.startswith("ZeroDivisionError")
    assert "{'_id': 0, 'd': 1, 'n': 1}, {'_id': 1, 'd': 0, 'n': 0}" in patched
    assert saved == 0  # every document is a candidate here


ID_VALUES = st.one_of(
    st.integers(-3, 6),
    st.sampled_from([True, False, 1.0, 2.5, -0.0, NAN, "a", "1", OID, BIN, Int64(2)]),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.fixed_dictionaries({"k": st.integers(0, 2)}),
)
CONDITIONS = st.one_of(
    ID_VALUES,
    st.builds(lambda values: {"$in": values}, st.lists(ID_VALUES, max_size=4)),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    ids=st.lists(ID_VALUES, max_size=8),
    condition=CONDITIONS,
    extra=st.sampled_from([None, ("v", 1), ("v", {"$lt": 2}), ("tag", "x")]),
    extra_first=st.booleans(),
)
def test_random_ids_and_filters_match_stock(
    ids: list[Any], condition: Any, extra: tuple[str, Any] | None, extra_first: bool
) -> None:
    filter_: dict[str, Any] = {"_id": condition}
    if extra is not None:
        key, value = extra
        filter_ = {key: value, "_id": condition} if extra_first else {"_id": condition, key: value}

    def seed_and_read(collection: Any) -> Any:
        for index, id_ in enumerate(ids):
            # Duplicate keys (1 and True...) fail alike on both paths.
            with contextlib.suppress(mongomock.DuplicateKeyError, TypeError):
                collection.insert_one({"_id": id_, "v": index % 4, "tag": "x"})
        return list(collection.find(filter_)), collection.count_documents(filter_)

    stock, patched, _ = both([], seed_and_read)
    assert stock == patched, filter_


# ----------------------------------------------------------------- no more scans


N = 20_000


@pytest.fixture(scope="module")
def big() -> Any:
    collection = mongomock.MongoClient()["db"]["big"]
    collection.insert_many([{"_id": i, "v": i % 7} for i in range(N)])
    return collection


@pytest.mark.parametrize(
    ("action", "patched_calls", "stock_calls"),
    [
        (lambda c: c.find_one({"_id": 12_345}), 1, N),
        (lambda c: c.find_one(12_345), 1, N),
        (lambda c: c.find_one({"_id": 12_345, "v": 4}), 1, N),
        (lambda c: list(c.find({"_id": {"$in": [5, 19_999, 7, 123_456]}})), 3, N),
        (lambda c: c.count_documents({"_id": 77}), 1, N),
        # update_one stops at the first match: stock tests the documents before it.
        (lambda c: c.update_one({"_id": 19_000}, {"$inc": {"v": 7}}).modified_count, 1, 19_001),
        # A find, then an update_one.
        (
            lambda c: c.find_one_and_update({"_id": 19_001}, {"$inc": {"v": 7}})["_id"],
            2,
            N + 19_002,
        ),
        (lambda c: c.find_one({"_id": -1}), 0, N),
    ],
)
def test_an_id_lookup_tests_its_candidates_only(
    big: Any, action: Callable[[Any], Any], patched_calls: int, stock_calls: int
) -> None:
    with speed(False), counting_filter() as stock:
        stock_outcome = outcome(lambda: action(big))
    with speed(True), counting_filter() as patched:
        patched_outcome = outcome(lambda: action(big))
    assert patched_outcome == stock_outcome
    assert (patched[0], stock[0]) == (patched_calls, stock_calls)


def test_an_in_lookup_never_tests_a_candidate_against_the_whole_id_list() -> None:
    # Re-testing each of k candidates against k ids is quadratic: a delete of
    # 10,000 documents by id took 11 s. Only the rest of the filter is tested.
    big = mongomock.MongoClient()["db"]["in_lookup"]
    big.insert_many([{"_id": i, "v": i % 7} for i in range(5_000)])
    ids = list(range(0, 4_000, 2))
    tested: list[Any] = []
    original = mongomock.collection.filter_applies

    def recording(filter_: Any, document: Any) -> bool:
        tested.append(filter_)
        return bool(original(filter_, document))

    mongomock.collection.filter_applies = recording
    try:
        with speed(True):
            assert big.count_documents({"_id": {"$in": ids}, "v": {"$gte": 0}}) == len(ids)
            assert big.delete_many({"_id": {"$in": ids}}).deleted_count == len(ids)
    finally:
        mongomock.collection.filter_applies = original
    assert len(tested) == 2 * len(ids)
    assert all("_id" not in filter_ for filter_ in tested)
    with speed(False):
        assert big.count_documents({"_id": {"$in": ids}}) == 0


def test_other_filters_still_scan(big: Any) -> None:
    with speed(True), counting_filter() as calls:
        assert big.find_one({"v": 3})["_id"] == 3
        assert big.count_documents({"_id": {"$gte": N - 2}}) == 2
    assert calls[0] == 2 * N


class CountingList(list[Any]):
    """A result list that counts the elements slices copy out of it."""

    copied = 0

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        if isinstance(index, slice):
            CountingList.copied += len(item)
        return item


@pytest.mark.parametrize(("enabled", "low", "high"), [(True, 0, 0), (False, 3_000**2 // 4, None)])
def test_the_cursor_no_longer_copies_its_results_per_document(
    enabled: bool, low: int, high: int | None
) -> None:
    collection = seeded(list(range(3_000)))
    with speed(enabled):
        cursor = collection.find()
        first = next(cursor)
        cursor._results = CountingList(cursor._results)
        CountingList.copied = 0
        rest = list(cursor)
    assert [first["_id"], *(d["_id"] for d in rest)] == list(range(3_000))
    assert CountingList.copied >= low
    if high is not None:
        assert CountingList.copied <= high


# ----------------------------------------------------------------------- cursor


def cursor_outcome(ids: list[Any], steps: Callable[[Any], Any]) -> tuple[str, str]:
    stock, patched, _ = both(ids, steps, writes=True)
    return stock, patched


TWENTY = list(range(20))


@pytest.mark.parametrize("sort", [None, [("v", 1)], [("v", -1), ("_id", 1)]])
def test_skip_limit_and_sort_read_the_same_sequence(sort: Any) -> None:
    mismatches = []
    for skip in (0, 1, 7, 19, 20, 25):
        for limit in (0, 1, 3, -3, 19, 20, 100):

            def read(c: Any, s: int = skip, n: int = limit) -> Any:
                return list(c.find({}, sort=sort, skip=s, limit=n))

            stock, patched = cursor_outcome(TWENTY, read)
            if stock != patched:
                mismatches.append((skip, limit, stock, patched))
    assert mismatches == []


def _partial_then_rest(c: Any) -> Any:
    cursor = c.find().skip(2).limit(6)
    head = [next(cursor), cursor.next()]
    alive = cursor.alive
    cursor.rewind()
    return head, alive, list(cursor), list(cursor)


def _sort_after_reading(c: Any) -> Any:
    cursor = c.find()
    first = next(cursor)
    cursor.sort("v", -1)
    return first, list(cursor)


def _changed_while_open(c: Any) -> Any:
    cursor = c.find({"v": {"$lt": 3}})
    head = [next(cursor), next(cursor)]
    c.insert_one({"_id": 100, "v": 0})
    c.delete_one({"_id": 5})
    c.update_many({}, {"$set": {"tag": "changed"}})
    return head, list(cursor)


def _empty_then_inserted(c: Any) -> Any:
    # mongomock recomputes an empty result list on every read: the cursor then
    # sees a document inserted after it was exhausted.
    cursor = c.find({"v": 99})
    before = list(cursor)
    c.insert_one({"_id": 200, "v": 99})
    return before, list(cursor), list(cursor)


@pytest.mark.parametrize(
    "steps",
    [
        lambda c: list(c.find()[2:5]),
        lambda c: list(c.find()[3:]),
        lambda c: list(c.find()[2:2]),  # mongomock: limit 0 means no limit
        lambda c: c.find()[3],
        lambda c: list(c.find().skip(-2)),
        lambda c: list(c.find().skip(None)),
        lambda c: list(c.find().limit(2).skip(3)),
        lambda c: list(c.find({}, {"v": 1}).sort("v")),
        lambda c: list(c.find({"_id": {"$in": [3, 1, 2]}}).sort("_id", -1)),
        _partial_then_rest,
        _sort_after_reading,
        _changed_while_open,
        _empty_then_inserted,
    ],
)
def test_cursor_steps_match_stock(steps: Callable[[Any], Any]) -> None:
    stock, patched = cursor_outcome(TWENTY, steps)
    assert stock == patched


def test_a_cursor_does_not_see_changes_once_it_has_results() -> None:
    # The documented behaviour, kept from mongomock: results are computed on the
    # first read and cached.
    collection = seeded(TWENTY)
    with speed(True):
        cursor = collection.find({"v": 0})
        assert next(cursor)["_id"] == 0
        collection.delete_many({})
        assert [d["_id"] for d in cursor] == [4, 8, 12, 16]


# ----------------------------------------------------------- opting in and out


def _current() -> tuple[Any, ...]:
    return (
        mongomock.collection.Collection.__dict__["_iter_documents"],
        mongomock.collection.Cursor.__dict__["__next__"],
        mongomock.collection.Cursor.__dict__["next"],
        mongomock.store.CollectionStore.__dict__["__setitem__"],
    )


def test_blocks_in_many_threads_wrap_once_and_the_last_one_restores() -> None:
    stock = _current()
    entered = threading.Barrier(8)
    leave = threading.Event()
    seen: list[tuple[Any, ...]] = []

    def block() -> None:
        with fast_mongomock():
            entered.wait()
            seen.append(_current())
            leave.wait()

    threads = [threading.Thread(target=block) for _ in range(8)]
    for thread in threads:
        thread.start()
    while len(seen) < 8:
        threading.Event().wait(0.01)
    assert _mongomock_speed.is_installed()
    leave.set()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1  # one installation, shared
    wrapped = seen[0]
    assert wrapped[1] is wrapped[2]  # Cursor.next is Cursor.__next__, as in mongomock
    for wrapper, original in zip(wrapped, stock, strict=True):
        assert getattr(wrapper, _mongomock_speed._MARKER) is True
        # Wrapping mongomock's own function, not another of our wrappers.
        assert wrapper.__wrapped__ is original
    assert _current() == stock
    assert all(a is b for a, b in zip(_current(), stock, strict=True))
    assert not _mongomock_speed.is_installed()


def test_outside_the_block_it_is_stock_mongomock(big: Any) -> None:
    with counting_filter() as calls:
        big.find_one({"_id": 1})
    assert calls[0] == N
    with speed(True), counting_filter() as calls:
        big.find_one({"_id": 1})
    assert calls[0] == 1
    with counting_filter() as calls:
        big.find_one({"_id": 1})
    assert calls[0] == N
