"""benchmarks/gc_share.py: every cell it names exists, and its report is whole."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gc_share.py"


def test_it_reports_each_cell_with_and_without_the_collector() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "200", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| uow:")]
    rows += [line for line in done.stdout.splitlines() if line.startswith("| attrs:")]
    assert len(rows) == 4
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        on, faults, off = float(cells[1]), float(cells[3]), float(cells[4])
        assert on > 0 and off > 0 and faults >= 0
    ratios = re.findall(r"(\d+\.\d\d)x attrs with the collector, (\d+\.\d\d)x without", done.stdout)
    assert len(ratios) == 2
