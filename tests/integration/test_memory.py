"""Memory: iterating 100,000 documents through one session.

With ``cache_size=1_000`` the identity map stays at 1,000 documents and the
memory traced while iterating does not grow; with ``cache_size=None`` the
session keeps every document, and the memory grows with them.

The lane: SecantusDB, in a child process. mongomock takes about 30 s to stream
100,000 documents (it copies every document it returns), and an in-process
SecantusDB server allocates on this process's heap as it serves the batches,
which tracemalloc would count as ours. With the server in a child process,
tracemalloc sees only the client: the driver's batches and the session.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from uow import Document, field
from uow.session import Session

N = 100_000
SAMPLE_EVERY = 5_000

_SERVER = textwrap.dedent(
    """
    import sys
    from secantus import SecantusDBServer

    server = SecantusDBServer(storage_path=":memory:")
    server.start()
    print(server.uri, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.stop()
    """
)


class SxMemItem(Document):
    __collection__ = "items"

    n: int
    name: str
    text: str
    tags: list[str] = field(factory=list)


@pytest.fixture(scope="module")
def items_db() -> Iterator[Any]:
    """A database of N documents on a SecantusDB server in a child process."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None and server.stdout is not None
    client: pymongo.MongoClient[Any] | None = None
    try:
        uri = server.stdout.readline().strip()
        assert uri.startswith("mongodb://"), f"the SecantusDB child did not start: {uri!r}"
        client = pymongo.MongoClient(uri, retryWrites=False)
        db = client["memory"]
        filler = "x" * 100
        db.items.insert_many(
            [{"n": i, "name": f"item{i}", "text": filler, "tags": ["a", "b"]} for i in range(N)]
        )
        yield db
    finally:
        if client is not None:
            client.close()
        server.stdin.close()
        server.wait(timeout=60)


class Measured:
    def __init__(self) -> None:
        self.map_sizes: list[int] = []
        self.samples: list[int] = []
        self.peak = 0
        self.retained = 0
        self.seen = 0
        self.final_map_size = 0


def _iterate(db: Any, cache_size: int | None, *, limit: int = 0, trace: bool = True) -> Measured:
    """Stream the items through one session, sampling the map and the traced memory."""
    measured = Measured()
    gc.collect()
    if trace:
        tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        session = Session(db, cache_size=cache_size)
        for index, item in enumerate(session.query(SxMemItem).limit(limit), 1):
            assert item.n >= 0
            if index % SAMPLE_EVERY == 0:
                measured.map_sizes.append(session.stats().identity_map_size)
                measured.samples.append(tracemalloc.get_traced_memory()[0] - baseline)
            measured.seen = index
        del item
        gc.collect()
        measured.final_map_size = session.stats().identity_map_size
        current, peak = tracemalloc.get_traced_memory()
        measured.retained = current - baseline
        measured.peak = peak - baseline
        session.close()
    finally:
        if trace:
            tracemalloc.stop()
    return measured


@pytest.mark.secantus
def test_a_bounded_cache_keeps_1000_documents_and_flat_memory(items_db: Any) -> None:
    bounded = _iterate(items_db, 1_000)
    assert bounded.seen == N
    assert bounded.map_sizes == [1_000] * (N // SAMPLE_EVERY)
    assert bounded.final_map_size == 1_000
    half = len(bounded.samples) // 2
    # Flat: the second half of the iteration never needs more than the first
    # (what the driver buffers comes and goes; what the session keeps does not grow).
    assert max(bounded.samples[half:]) <= max(bounded.samples[:half]) * 1.1
    # What stays once the cursor is done: 1,000 documents' worth. The yardstick
    # is what an unbounded session keeps of 10,000 (tracing all 100,000 unbounded
    # would double the test's time for the same answer).
    ten_thousand = _iterate(items_db, None, limit=10_000)
    assert ten_thousand.final_map_size == 10_000
    assert bounded.retained * 5 < ten_thousand.retained


@pytest.mark.secantus
def test_cache_size_none_keeps_every_document(items_db: Any) -> None:
    unbounded = _iterate(items_db, None, trace=False)
    assert unbounded.seen == N
    assert unbounded.map_sizes == list(range(SAMPLE_EVERY, N + 1, SAMPLE_EVERY))
    assert unbounded.final_map_size == N
    growing = _iterate(items_db, None, limit=20_000)
    # Every document kept costs memory: at least its 100-character text.
    assert growing.retained > 100 * 20_000
    assert growing.samples == sorted(growing.samples)
