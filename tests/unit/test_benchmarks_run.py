"""The conversion benchmark runs and reports every row (no timing assertions)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "conversion.py"


def _load_script(path: Path) -> ModuleType:
    """A benchmark script, imported as a module (its main() not run)."""
    spec = importlib.util.spec_from_file_location(f"uow_benchmark_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def conversion() -> ModuleType:
    return _load_script(SCRIPT)


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


# --------------------------------------------------------------- benchmarks/run.py

RUN_SCRIPT = SCRIPT.parent / "run.py"
WORKLOAD_IDS = ("W1", "W2", "W3", "W4", "W5")


@pytest.fixture(scope="module")
def run_results() -> Iterator[dict]:
    """One small run of the harness: mongomock, N = 200, one run, raw and uow.

    The harness counts commands by wrapping mongomock's methods for its process
    (benchmarks/uowbench/counting.py); run here, inside the test process, they are
    put back afterwards, so that later tests meet mongomock as it ships.
    """
    from mongomock.collection import BulkOperationBuilder, Collection

    from uow import _embedded

    saved = [(cls, dict(vars(cls))) for cls in (Collection, BulkOperationBuilder)]
    embedded_bulk_write = _embedded.bulk_write
    module = _load_script(RUN_SCRIPT)
    try:
        yield module.main(
            ["--backend", "mongomock", "--n", "200", "--runs", "1", "--libs", "raw,uow"]
        )
    finally:
        for cls, before in saved:
            for name in [n for n in vars(cls) if n not in before]:
                delattr(cls, name)
            for name, value in before.items():
                if vars(cls).get(name) is not value:
                    setattr(cls, name, value)
        _embedded.bulk_write = embedded_bulk_write


def test_run_measures_every_workload_for_raw_and_uow(run_results: dict) -> None:
    workloads = run_results["workloads"]
    assert tuple(workloads) == WORKLOAD_IDS
    for workload in WORKLOAD_IDS:
        assert set(workloads[workload]) == {"raw", "uow"}
        for lib, cell in workloads[workload].items():
            assert cell["status"] == "ok", (workload, lib, cell.get("reason"))
            assert len(cell["times"]) == 1 and cell["median_s"] > 0
            assert cell["ratio"] > 0 and cell["us_per_doc"] > 0
            assert cell["commands"], f"no commands counted for {lib} {workload}"
    assert workloads["W1"]["raw"]["ratio"] == 1.0


def test_run_counts_the_commands_raw_pymongo_sends(run_results: dict) -> None:
    raw = {w: cells["raw"]["commands"] for w, cells in run_results["workloads"].items()}
    assert raw["W1"] == {"insert": 1}
    assert raw["W2"] == {"find": 1, "update": 1}
    assert raw["W3"] == {"find": 1}
    assert raw["W4"] == {"find": 1, "delete": 1}
    assert raw["W5"] == {"find": 200 * 10}
    statements = run_results["workloads"]["W2"]["raw"]["updates"]
    assert statements["count"] == 200 and statements["fields_max"] == 1
    assert statements["bytes_max"] > 0


def test_run_counts_uow_commands_and_statements(run_results: dict) -> None:
    cells = {w: cells["uow"] for w, cells in run_results["workloads"].items()}
    for workload in ("W2", "W3", "W4"):
        assert cells[workload]["commands"].get("find", 0) >= 1, workload
    assert cells["W1"]["commands"].get("insert", 0) >= 1
    assert cells["W2"]["updates"]["count"] == 200
    assert 0 < sum(cells["W5"]["commands"].values()) <= 200 * 10


def test_run_reports_odm_tasks_cpu_rows_and_targets(
    run_results: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = run_results["odm"]["tasks"]
    data = RUN_SCRIPT.resolve().parents[2] / "shared" / "benchmarks" / "odm-data"
    if not (data / "small_doc.json").is_file():
        assert not tasks and "not run" in run_results["odm"]["notes"][0]
        pytest.skip(f"the ODM data set is not at {data}")
    assert len(tasks) == 7
    for task, cells in tasks.items():
        for lib in ("raw", "uow"):
            assert cells[lib]["status"] == "ok", (task, lib, cells[lib].get("reason"))
            assert cells[lib]["mb_per_s"] > 0
    labels = {row["label"] for row in run_results["cpu"]}
    assert {"plain dict literal", "attrs: construct + attrs.asdict"} <= labels
    assert all(row["us_per_doc"] > 0 for row in run_results["cpu"])
    statuses = {t["target"]: t["status"] for t in run_results["targets"]}
    assert any(t.startswith("W1 commands") for t in statuses)
    assert any(t.startswith("ODM ") for t in statuses)
    assert set(statuses.values()) <= {"PASS", "FAIL", "n/a"}


def test_every_target_reads_a_number_the_run_measured(run_results: dict) -> None:
    """The paths of benchmarks/targets.toml against a real run, not a made-up one."""
    from uowbench import targets

    config = run_results["config"]
    assert config["max_write_batch_size"] == 100_000 and config["w5_ids"] == 200
    assert config["commit"] != ""
    spec = targets.load()
    ran = set(config["libs"])
    others = {"mongoengine", "ming", "odmantic", "bunnet"} - ran
    unknown = [
        u
        for u in targets.unknown_metrics(spec, run_results)
        if not any(f"'{lib}'" in u for lib in others)  # peers this run left out
        and not ("['odm', 'tasks'" in u and not run_results["odm"]["tasks"])  # no data set
    ]
    assert unknown == []
    names = {t["target"] for t in run_results["targets"]}
    assert any(name.startswith("CPU session path: construct") for name in names)
    assert any(name.startswith("CPU session path: load") for name in names)


def test_the_gc_floor_script_reports_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    module = _load_script(SCRIPT.parent / "gc_floor.py")
    report = module.main(["--n", "300", "--runs", "1"])
    cases = [case["case"] for case in report]
    assert cases == [f"raw + {k} lists per document" for k in range(6)] + ["uow"]
    for case in report:
        assert case["seconds"] > 0 and case["gc_seconds"] >= 0 and case["full"] >= 0
    table = capsys.readouterr().out
    assert table.count("\n| ") == 9  # the header, its rule, and seven cases


def test_freeze_heap_hides_what_was_alive_only_during_the_timed_region(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import gc

    run = _load_script(RUN_SCRIPT)  # puts benchmarks/ on sys.path
    from uowbench.collector import settled_heap

    before = gc.get_freeze_count()
    with settled_heap(freeze=True):
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == before
    with settled_heap():
        assert gc.get_freeze_count() == before
    arguments = "--n 50 --runs 1 --libs raw,uow --sections workloads --workloads W2"
    results = run.main([*arguments.split(), "--freeze-heap"])
    assert results["config"]["freeze_heap"] is True
    assert results["workloads"]["W2"]["uow"]["status"] == "ok"
    assert gc.get_freeze_count() == before
    assert "heap: frozen before each timed region" in capsys.readouterr().out
