"""Instructions per document of the CPU section's session-path cells, counted by valgrind.

The CPU section's times (``run.py --sections cpu``) move with the machine by
10% and more from one minute to the next, on the same code. The number of
machine instructions a cell executes does not: run under valgrind's cachegrind
with a fixed hash seed, the same code gives the same count to a few parts in a
hundred thousand. This counts, per document, the two session-path cells and
the two attrs cells they are compared with, so a change to a hot path can be
judged before the noisy timings agree::

    python benchmarks/instructions.py [--n 2000]

Each cell runs in a child process, twice (once with no documents, once with
``--reps`` rounds of ``--n``); the difference divided by the documents is what
the cell costs per document. The collector is off in the child (its share, on
the time of the objects a unit of work keeps, is what ``gc_floor.py`` and the
timings show) and the child exits without tearing anything down. Needs
``valgrind`` on the PATH (Debian: ``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: The cells counted: a short name each, for the child's command line, and the
#: label of the CPU section's row (``uowbench/cpu.py``) that it runs.
CELLS = {
    "uow-insert": "uow: construct + add_all + flush (session path, no-op database)",
    "attrs-insert": "attrs: construct + attrs.asdict",
    "uow-update": "uow: load + change + flush diff (session path, no-op database)",
    "attrs-update": "attrs: from dict + change + asdict + dict diff",
}
RATIOS = (("uow-insert", "attrs-insert"), ("uow-update", "attrs-update"))


def run_cell(cell: str, n: int, reps: int) -> None:
    """The child: ``reps`` rounds of ``cell`` over ``n`` documents, then exit at once."""
    gc.disable()
    sys.path[:0] = [str(HERE), str(REPO)]
    from uowbench.cpu import cells

    (prepare, run) = next((p, r) for _, label, p, r in cells(n) if label == CELLS[cell])
    for _ in range(reps):
        run(prepare())
    sys.stdout.flush()
    os._exit(0)  # no teardown: only what the rounds executed is counted


def instructions(cell: str, n: int, reps: int) -> int:
    """The instructions valgrind counted for one child process."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        cell,
        "--n",
        str(n),
        "--reps",
        str(reps),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return instruction_count(done.stderr)


def instruction_count(report: str) -> int:
    """The ``I refs`` total of a cachegrind report."""
    match = re.search(r"I\s+refs:\s+([\d,]+)", report)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{report}")
    return int(match.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="documents per round (2,000)")
    parser.add_argument("--reps", type=int, default=2, help="rounds counted (2)")
    parser.add_argument("--child", choices=sorted(CELLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_cell(args.child, args.n, args.reps)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    per_doc = {}
    for cell in CELLS:
        empty = instructions(cell, args.n, 0)
        full = instructions(cell, args.n, args.reps)
        per_doc[cell] = (full - empty) / (args.n * args.reps)
    print(f"Instructions per document (valgrind, N = {args.n:,}, {args.reps} rounds)\n")
    print("| cell | instructions per document |\n| --- | ---: |")
    for cell, label in CELLS.items():
        print(f"| {label} | {per_doc[cell]:,.0f} |")
    print()
    for mine, theirs in RATIOS:
        print(f"{CELLS[mine]}: {per_doc[mine] / per_doc[theirs]:.2f}x {CELLS[theirs]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
