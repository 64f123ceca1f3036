"""What the collector and fresh memory charge the CPU section's session-path cells.

The session-path cells (``run.py --sections cpu``) execute about as many
instructions per document as the attrs cells they are compared with
(``instructions.py``), yet take longer: a unit of work keeps what it loads and
the statements of its flush until the flush ends, where attrs' cells free each
object before building the next. This runs the two session-path cells and their
attrs cells, each ``--runs`` times, and prints for each the best time per
document with the collector on (as ``run.py`` measures) and off (an experiment:
a library must never switch it off), the collections of each generation the
timed run caused, and the page faults (fresh memory touched) per document::

    python benchmarks/gc_share.py [--n 10000] [--runs 9]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from uowbench.cpu import cells  # noqa: E402

#: The cells measured, as the CPU section labels them: (session path, attrs).
PAIRS = (
    (
        "uow: construct + add_all + flush (session path, no-op database)",
        "attrs: construct + attrs.asdict",
    ),
    (
        "uow: load + change + flush diff (session path, no-op database)",
        "attrs: from dict + change + asdict + dict diff",
    ),
)


def measure(
    prepare: Callable[[], Any], run: Callable[[Any], Any], n: int, runs: int, collector: bool
) -> tuple[float, dict[int, int], float]:
    """Best µs per document, collections by generation and page faults per
    document of that best run."""
    best: tuple[float, dict[int, int], float] | None = None
    for _ in range(runs):
        state = prepare()
        gc.collect()
        collections: dict[int, int] = {}

        def count(phase: str, info: dict[str, int], seen: dict[int, int] = collections) -> None:
            if phase == "start":
                seen[info["generation"]] = seen.get(info["generation"], 0) + 1

        gc.callbacks.append(count)
        if not collector:
            gc.disable()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        try:
            run(state)
        finally:
            elapsed = time.perf_counter() - start
            gc.enable()
            gc.callbacks.remove(count)
        faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        sample = (elapsed / n * 1e6, collections, faulted / n)
        if best is None or sample[0] < best[0]:
            best = sample
    assert best is not None
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="documents per run (10,000)")
    parser.add_argument("--runs", type=int, default=9, help="runs per cell; the best is kept (9)")
    args = parser.parse_args(argv)
    by_label = {label: (prepare, run) for _, label, prepare, run in cells(args.n)}
    print(f"Collector and fresh memory (N = {args.n:,}, best of {args.runs} runs)\n")
    print(
        "| cell | µs/doc, collector on | collections (gen: count) | page faults/doc "
        "| µs/doc, collector off |"
    )
    print("| --- | ---: | --- | ---: | ---: |")
    times: dict[str, tuple[float, float]] = {}
    for pair in PAIRS:
        for label in pair:
            prepare, run = by_label[label]
            on, collections, faults = measure(prepare, run, args.n, args.runs, collector=True)
            off, _, _ = measure(prepare, run, args.n, args.runs, collector=False)
            times[label] = (on, off)
            shown = ", ".join(f"{g}: {c}" for g, c in sorted(collections.items())) or "none"
            print(f"| {label} | {on:.2f} | {shown} | {faults:.3f} | {off:.2f} |")
    print()
    for mine, theirs in PAIRS:
        (on, off), (their_on, their_off) = times[mine], times[theirs]
        print(
            f"{mine}: {on / their_on:.2f}x attrs with the collector, {off / their_off:.2f}x without"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
