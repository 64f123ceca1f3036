"""benchmarks/instructions.py: its cells run, and valgrind's count is read right.

valgrind itself is not needed here (a fresh CI machine has none): each cell's
child runs as it does under valgrind, with a few documents, and must exit
cleanly; the count is parsed from a cachegrind report's text.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "instructions.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("uow_bench_instructions", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cell", ["uow-insert", "attrs-insert", "uow-update", "attrs-update"])
def test_each_cell_runs_in_its_child(cell: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--child", cell, "--n", "20", "--reps", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_count_is_read_from_cachegrinds_report() -> None:
    report = (
        "==1== Cachegrind, a high-precision tracing profiler\n"
        "==1== \n"
        "==1== I   refs:      1,234,567,890\n"
    )
    assert _module().instruction_count(report) == 1_234_567_890
    with pytest.raises(RuntimeError, match="no instruction count"):
        _module().instruction_count("==1== something else\n")
