"""The conversion benchmark runs and reports every row (no timing assertions)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "conversion.py"


@pytest.fixture(scope="module")
def conversion() -> ModuleType:
    spec = importlib.util.spec_from_file_location("uow_benchmark_conversion", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_main_prints_a_table_with_every_row(
    conversion: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    table = conversion.main(["--n", "50", "--repeat", "2"])
    assert capsys.readouterr().out.strip() == table.strip()
    assert "N = 50, median of 2 runs" in table
    rows = {}
    for line in table.splitlines():
        match = re.fullmatch(r"\| (.+?) \| ([0-9.]+) \| ([0-9.]+)x \|", line)
        if match:
            rows[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    for label in (conversion.CONSTRUCT, conversion.LOAD, conversion.BASELINE):
        assert label in rows, f"missing row {label!r} in\n{table}"
    assert "plain dict literal of the fields" in rows
    assert rows[conversion.BASELINE][1] == 1.0
    for us, ratio in rows.values():
        assert us > 0 and ratio > 0


def test_the_benchmark_model_matches_the_attrs_one(conversion: ModuleType) -> None:
    import attrs

    uow_fields = [a.name for a in attrs.fields(conversion.User) if a.name != "id"]
    assert uow_fields == [a.name for a in attrs.fields(conversion.PlainUser)]
    built = conversion.User(name="a", email="b", age=1)
    loaded = conversion.User.from_bson(built.to_bson())
    assert loaded.to_bson() == built.to_bson()
