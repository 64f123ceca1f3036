"""What CPython's garbage collector charges W2 for every object kept per document.

W2 (load N documents, change one field each, persist) makes raw pymongo keep,
per document, the decoded dict, its list, and an ``UpdateOne`` with its filter
and update. Any unit of work keeps more: at least the tracked object and its own
copy of the list (the snapshot must not share it). CPython 3.11 runs a full
collection, which walks every object alive (the mongomock store included, in
process), whenever the objects that survived younger collections reach a quarter
of the long-lived ones: a few more objects per document can add one.

This runs raw's W2 keeping ``k`` extra empty lists per document (k = 0..5), and
uow's W2, and prints for each the median time, the full collections and the time
the collector ran::

    python benchmarks/gc_floor.py [--n 10000] [--runs 5] [--backend mongomock|secantus|URI]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pymongo import UpdateOne
from uowbench.backends import DB_NAME, make_backend
from uowbench.collector import GC_CLOCK
from uowbench.libs import COLLECTION, make_lib, row


def _raw_w2(coll: Any, extra: int) -> None:
    docs = list(coll.find())
    kept = [[] for _ in range(extra * len(docs))]
    requests = []
    for doc in docs:
        doc["age"] += 1
        requests.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"age": doc["age"]}}))
    coll.bulk_write(requests)
    del kept


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", default="mongomock")
    args = parser.parse_args(argv)
    backend = make_backend(args.backend)
    rows = [row(i) for i in range(args.n)]
    seed = make_lib("raw")
    seed.open(backend)
    raw_client = backend.client()
    coll = raw_client[DB_NAME][COLLECTION]
    uow_lib = make_lib("uow")
    uow_lib.open(backend)
    collector = GC_CLOCK
    cases: list[tuple[str, Any]] = [
        (f"raw + {k} lists per document", lambda k=k: _raw_w2(coll, k)) for k in range(6)
    ]
    cases.append(("uow", uow_lib.change_all))
    results: dict[str, list[tuple[float, int, float]]] = {label: [] for label, _ in cases}
    for _ in range(args.runs):
        for label, run in cases:  # interleaved, so that drift hits every case alike
            backend.admin()[COLLECTION].drop()
            seed.insert(rows)
            gc.collect()
            collector.reset()
            started = time.perf_counter()
            run()
            elapsed = time.perf_counter() - started
            results[label].append((elapsed, collector.full, collector.seconds))
            changed = backend.admin()[COLLECTION].count_documents({"age": 31})
            if changed != args.n:
                raise RuntimeError(f"{label}: {changed} of {args.n} documents changed")
    backend.close()
    report = []
    base = statistics.median(t for t, _, _ in results[cases[0][0]])
    print(f"W2, N = {args.n:,}, {backend.describe()}, median of {args.runs}\n")
    print("| case | µs/doc | vs raw | full collections | GC µs/doc |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, runs in results.items():
        seconds = statistics.median(t for t, _, _ in runs)
        full = statistics.median(f for _, f, _ in runs)
        collecting = statistics.median(g for _, _, g in runs)
        report.append({"case": label, "seconds": seconds, "full": full, "gc_seconds": collecting})
        print(
            f"| {label} | {seconds / args.n * 1e6:.1f} | {seconds / base:.2f}x | {full:g} "
            f"| {collecting / args.n * 1e6:.1f} |"
        )
    return report


if __name__ == "__main__":
    main()
