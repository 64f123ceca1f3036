"""The benchmark's targets as data (benchmarks/targets.toml) and the generated results section.

No benchmark runs here: the results are a made-up JSON of the shape run.py writes.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from uowbench import targets  # noqa: E402

N = 10_000
UPDATES = {
    "count": N,
    "fields_min": 1,
    "fields_max": 1,
    "bytes_min": 58,
    "bytes_median": 58,
    "bytes_max": 58,
    "example": "{'$set': {'age': 31}}",
}
# workload -> lib -> (median seconds, commands)
CELLS: dict[str, dict[str, tuple[float, dict[str, int]]]] = {
    "W1": {
        "raw": (0.212, {"insert": 1}),
        "uow": (0.285, {"insert": 1}),
        "mongoengine": (1.085, {"insert": N}),
        "ming": (0.805, {"insert": N}),
    },
    "W2": {
        "raw": (0.547, {"find": 1, "update": 1}),
        "uow": (0.765, {"find": 1, "update": 1}),
        "mongoengine": (1.907, {"find": 1, "update": N}),
        "ming": (1.706, {"find": 1, "update": N}),
    },
    "W3": {
        "raw": (0.092, {"find": 1}),
        "uow": (0.124, {"find": 1}),
        "mongoengine": (1.209, {"find": 1}),
        "ming": (0.542, {"find": 1}),
    },
    "W4": {
        "raw": (0.204, {"find": 1, "delete": 1}),
        "uow": (0.459, {"find": 1, "delete": 1}),
        "mongoengine": (1.279, {"find": 1, "delete": N}),
        "ming": (0.808, {"find": 1, "delete": N}),
    },
    "W5": {
        "raw": (0.176, {"find": N}),
        "uow": (0.037, {"find": 1000}),
        "mongoengine": (0.972, {"find": N}),
        "ming": (0.065, {"find": 1000}),
    },
}
CPU = [
    ("construct + serialize", "uow: construct + to_bson()", 4.00),
    (
        "construct + serialize",
        "uow: construct + add_all + flush (session path, no-op database)",
        9.75,
    ),
    ("construct + serialize", "attrs: construct + attrs.asdict", 3.83),
    ("construct + serialize", "plain dict literal", 0.27),
    ("load + change + diff", "uow: load + change + diff (change tracking, no session)", 5.55),
    (
        "load + change + diff",
        "uow: load + change + flush diff (session path, no-op database)",
        6.62,
    ),
    ("load + change + diff", "attrs: from dict + change + asdict + dict diff", 4.80),
    ("load + change + diff", "plain dict: copy + change + dict diff", 0.98),
]
# task -> (MB, raw MB/s, uow MB/s)
ODM = {"flat small create": (2.52, 11.1, 8.27), "nested large create": (76.4, 41.6, 25.1)}


def stored_results(backend: str = "mongomock") -> dict[str, Any]:
    """A results JSON as run.py writes it (no `max_write_batch_size`: an old one)."""
    workloads: dict[str, Any] = {}
    for workload, cells in CELLS.items():
        table: dict[str, Any] = {}
        for lib, (median, commands) in cells.items():
            table[lib] = {
                "status": "ok",
                "times": [median],
                "median_s": median,
                "us_per_doc": median / N * 1e6,
                "gc_us_per_doc": 0.5,
                "commands": dict(commands),
                "commands_vary": False,
                "updates": copy.deepcopy(UPDATES) if workload == "W2" else None,
            }
        for cell in table.values():
            cell["ratio"] = cell["median_s"] / table["raw"]["median_s"]
        table["odmantic"] = {"status": "n/a", "reason": "needs client sessions"}
        workloads[workload] = table
    odm_tasks = {
        task: {
            lib: {
                "status": "ok",
                "size_mb": size,
                "median_s": size / speed,
                "mb_per_s": speed,
                "commands": {"insert": 1},
            }
            for lib, speed in (("raw", raw), ("uow", mine))
        }
        for task, (size, raw, mine) in ODM.items()
    }
    return {
        "config": {
            "backend": backend,
            "backend_detail": f"{backend} (made up)",
            "n": N,
            "runs": 3,
            "cpu_n": N,
            "libs": ["raw", "uow", "mongoengine", "ming", "odmantic"],
            "versions": {"python": "3.11.7", "uow": "0.1.0.dev0", "ming": "not installed"},
            "machine": "x86_64, Linux",
            "raw_delete": "delete_many {_id: {$in: ids}}",
            "command": "python benchmarks/run.py --runs 3",
            "freeze_heap": False,
            "how": {},
        },
        "cpu": [{"path": p, "label": label, "us_per_doc": us} for p, label, us in CPU],
        "workloads": workloads,
        "odm": {"n": N, "iterations": 3, "notes": [], "tasks": odm_tasks},
    }


# What run.py's evaluate_targets printed for stored_results() when the targets were
# code (commit 69e8e72), backend by backend: the data file must give the same.
BEFORE_DATA = {
    "mongomock": [
        ("W1 commands: ceil(N/maxWriteBatchSize) = 1 insert", "insert 1", "PASS"),
        (
            "W2 commands: 1 find + 1 update",
            "find 1, update 1 (getMore not counted as a find)",
            "PASS",
        ),
        ("W3 commands: 1 find, 0 writes", "find 1", "PASS"),
        ("W4 commands: 1 find + 1 delete", "find 1, delete 1", "PASS"),
        ("W5 commands: at most 1,000 reads", "1,000 reads", "PASS"),
        (
            "W2 update statements: one field, no bigger than raw's",
            "uow 1 field(s), max 58 B; raw max 58 B",
            "PASS",
        ),
        ("W1 time on mongomock <= 1.5x raw", "1.34x", "PASS"),
        ("W2 time on mongomock <= 1.3x raw", "1.40x", "FAIL"),
        ("W3 time on mongomock <= 1.5x raw find", "1.35x", "PASS"),
        ("W4 time on mongomock <= 1.1x raw", "2.25x", "FAIL"),
        ("W5 time on mongomock <= 0.5x raw", "0.21x", "PASS"),
        (
            "W1 on SecantusDB: >= 5x faster than mongoengine",
            "3.8x on mongomock (the target is for SecantusDB)",
            "n/a",
        ),
        (
            "W1 on SecantusDB: >= 5x faster than ming",
            "2.8x on mongomock (the target is for SecantusDB)",
            "n/a",
        ),
        (
            "W2 on SecantusDB: >= 5x faster than mongoengine",
            "2.5x on mongomock (the target is for SecantusDB)",
            "n/a",
        ),
        (
            "W2 on SecantusDB: >= 5x faster than ming",
            "2.2x on mongomock (the target is for SecantusDB)",
            "n/a",
        ),
        ("CPU construct + serialize <= 5 µs per document", "4.00 µs", "PASS"),
        ("CPU load + change + diff <= 5 µs per document", "5.55 µs", "FAIL"),
        ("ODM flat small create: uow >= 70% of raw MB/s", "75% (8.27 vs 11.1 MB/s)", "PASS"),
        ("ODM nested large create: uow >= 70% of raw MB/s", "60% (25.1 vs 41.6 MB/s)", "FAIL"),
    ],
}
_ELSEWHERE = "here (on secantus; the target is for mongomock)"
BEFORE_DATA["secantus"] = [
    *BEFORE_DATA["mongomock"][:6],
    ("W1 time on mongomock <= 1.5x raw", f"1.34x {_ELSEWHERE}", "n/a"),
    ("W2 time on mongomock <= 1.3x raw", f"1.40x {_ELSEWHERE}", "n/a"),
    ("W3 time on mongomock <= 1.5x raw find", f"1.35x {_ELSEWHERE}", "n/a"),
    ("W4 time on mongomock <= 1.1x raw", f"2.25x {_ELSEWHERE}", "n/a"),
    ("W5 time on mongomock <= 0.5x raw", f"0.21x {_ELSEWHERE}", "n/a"),
    ("W1 on SecantusDB: >= 5x faster than mongoengine", "3.8x", "FAIL"),
    ("W1 on SecantusDB: >= 5x faster than ming", "2.8x", "FAIL"),
    ("W2 on SecantusDB: >= 5x faster than mongoengine", "2.5x", "FAIL"),
    ("W2 on SecantusDB: >= 5x faster than ming", "2.2x", "FAIL"),
    *BEFORE_DATA["mongomock"][15:],
]
SESSION_CONSTRUCT = (
    "CPU session path: construct + add_all + flush <= 1.5x attrs' construct + asdict"
)
SESSION_LOAD = (
    "CPU session path: load + change + flush diff <= 1.5x attrs' from-dict + change + "
    "asdict + dict diff"
)


def _rows(results: dict[str, Any], spec: targets.Targets | None = None) -> list[tuple[str, ...]]:
    return [(t["target"], t["measured"], t["status"]) for t in targets.evaluate(results, spec)]


# ------------------------------------------------------------------- the file


def test_every_metric_the_targets_file_names_is_in_the_results() -> None:
    spec = targets.load()
    assert spec.subject == "uow"
    assert len(spec.targets) >= 20
    assert targets.unknown_metrics(spec, stored_results()) == []
    for target in spec.targets:
        assert target.why and "\n" not in target.why, target.name


def test_a_target_naming_a_metric_the_results_lack_is_reported() -> None:
    text = targets.TARGETS_FILE.read_text(encoding="utf-8")
    text = text.replace('"W3", "uow", "median_s"', '"W3", "uow", "medain_s"')
    text = text.replace('"attrs: construct + attrs.asdict"', '"attrs: construct + asdict"')
    text = text.replace('["odm", "tasks", "*", "raw", "mb_per_s"]', '["odm", "task", "*", "raw"]')
    unknown = targets.unknown_metrics(targets.parse(text), stored_results())
    assert len(unknown) == 3, unknown
    assert any("medain_s" in u for u in unknown)
    assert any("attrs: construct + asdict" in u for u in unknown)
    assert any("'task'" in u for u in unknown)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('kind = "ratio"', 'kind = "quotient"', 1), "kind 'quotient'"),
        (('op = "<="', 'op = "=<"', 1), "op '=<'"),
        (('value = "batches"', 'value = "batch"', 1), "'batch'"),
        (("why = ", "reason = ", 1), "missing ['why']"),
        (('backend = "any"', 'backend = "any"\nthreshold = 2', 1), "unknown keys ['threshold']"),
        (("subject = ", "# subject = ", 1), "subject"),
        (("W5 commands: at most {w5_ids:,}", "W5 commands: at most {ids}", 1), "name"),
    ],
)
def test_a_malformed_targets_file_is_refused(change: tuple[str, str, int], message: str) -> None:
    text = targets.TARGETS_FILE.read_text(encoding="utf-8")
    old, new, count = change
    assert old in text
    with pytest.raises(targets.TargetFileError, match=message.replace("[", r"\[")):
        targets.parse(text.replace(old, new, count))


# ------------------------------------------------------------------ evaluation


@pytest.mark.parametrize("backend", ["mongomock", "secantus"])
def test_the_data_file_gives_the_table_the_code_gave(backend: str) -> None:
    rows = _rows(stored_results(backend))
    new = {SESSION_CONSTRUCT, SESSION_LOAD}
    assert [r for r in rows if r[0] not in new] == BEFORE_DATA[backend]
    assert [r[0] for r in rows if r[0] in new] == [SESSION_CONSTRUCT, SESSION_LOAD]


def test_the_session_path_targets_are_ratios_of_two_cpu_cells_of_the_run() -> None:
    found = {r[0]: r[1:] for r in _rows(stored_results())}
    # 9.75 / 3.83 and 6.62 / 4.80
    assert found[SESSION_CONSTRUCT] == ("2.55x (9.75 vs 3.83 µs)", "FAIL")
    assert found[SESSION_LOAD] == ("1.38x (6.62 vs 4.80 µs)", "PASS")
    results = stored_results()
    results["cpu"] = [r for r in results["cpu"] if not r["label"].startswith("attrs")]
    assert not {SESSION_CONSTRUCT, SESSION_LOAD} & {r[0] for r in _rows(results)}


def test_thresholds_follow_the_run_batches_and_w5_ids() -> None:
    results = stored_results()
    results["config"].update(n=250_000, max_write_batch_size=100_000)
    results["workloads"]["W1"]["uow"]["commands"] = {"insert": 3}
    results["workloads"]["W5"]["uow"]["commands"] = {"find": 999, "getMore": 1}
    found = {r[0]: r[1:] for r in _rows(results)}
    assert found["W1 commands: ceil(N/maxWriteBatchSize) = 3 insert"] == ("insert 3", "PASS")
    assert found["W2 commands: 1 find + 3 update"][1] == "FAIL"
    assert found["W5 commands: at most 1,000 reads"] == ("1,000 reads", "PASS")
    results["config"]["w5_ids"] = 500
    found = {r[0]: r[1:] for r in _rows(results)}
    assert found["W5 commands: at most 500 reads"] == ("1,000 reads", "FAIL")


def test_uow_failing_fails_a_target_and_another_library_failing_makes_it_na() -> None:
    results = stored_results("secantus")
    results["workloads"]["W1"]["uow"] = {"status": "error", "reason": "KeyError: boom"}
    results["workloads"]["W3"]["raw"] = {"status": "error", "reason": "wrong result"}
    results["workloads"]["W2"]["ming"] = {"status": "n/a", "reason": "not installed"}
    results["odm"]["tasks"]["flat small create"]["raw"]["status"] = "error"
    found = {r[0]: r[1:] for r in _rows(results)}
    for name in (
        "W1 commands: ceil(N/maxWriteBatchSize) = 1 insert",
        "W1 time on mongomock <= 1.5x raw",
        "W1 on SecantusDB: >= 5x faster than mongoengine",
    ):
        assert found[name] == ("uow: KeyError: boom", "FAIL"), name
    assert found["W3 time on mongomock <= 1.5x raw find"] == ("raw: wrong result", "n/a")
    assert found["W3 commands: 1 find, 0 writes"] == ("find 1", "PASS")
    assert found["W2 on SecantusDB: >= 5x faster than ming"] == ("ming: not installed", "n/a")
    assert found["ODM flat small create: uow >= 70% of raw MB/s"] == ("raw: error", "n/a")


def test_what_the_run_did_not_measure_is_left_out() -> None:
    results = stored_results()
    del results["odm"], results["cpu"]
    del results["workloads"]["W5"]
    for cells in results["workloads"].values():
        del cells["mongoengine"]
    names = [r[0] for r in _rows(results)]
    assert not [n for n in names if n.startswith(("ODM", "CPU", "W5"))]
    assert not [n for n in names if "mongoengine" in n]
    assert "W1 on SecantusDB: >= 5x faster than ming" in names
    results["workloads"]["W2"]["uow"]["updates"] = None
    found = {r[0]: r[1:] for r in _rows(results)}
    assert found["W2 update statements: one field, no bigger than raw's"] == ("none seen", "FAIL")


# ---------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("uow_benchmark_report", BENCHMARKS / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


DOC = (
    "# Benchmarks\n\nHand-written text, kept byte for byte: trailing spaces   \n"
    + """
and a table:

| a | b |
| --- | --- |

<!-- results:begin -->
stale generated text
<!-- results:end -->

## History

More hand-written text, no final newline."""
)


def _write(tmp_path: Path, name: str, results: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(results), encoding="utf-8")
    return path


def test_report_replaces_only_the_marked_section_and_again_gives_the_same_file(
    report: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    after = stored_results()
    after["config"]["commit"] = "abc1234"
    before = stored_results()
    before["workloads"]["W2"]["uow"]["median_s"] = 0.9
    paths = [_write(tmp_path, "after.json", after), _write(tmp_path, "before.json", before)]
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC, encoding="utf-8")
    argv = [str(paths[0]), "--before", str(paths[1]), "--before-label", "old", "--update", str(doc)]
    body = report.main(argv)
    first = doc.read_text(encoding="utf-8")
    head, tail = DOC.split("stale generated text\n")
    assert first.startswith(head) and first.endswith(tail)
    assert first == head + body + "\n" + tail
    assert "stale" not in first
    report.main(argv)
    assert doc.read_text(encoding="utf-8") == first
    assert "unchanged" in capsys.readouterr().out.splitlines()[-1]

    assert body.startswith(f"Generated by `python benchmarks/report.py {paths[0]}")
    for heading in ("Workloads: uow against raw pymongo (abc1234)", "CPU per document", "Targets"):
        assert f"#### {heading}" in body
    assert "#### Before and after: old against abc1234" in body
    assert "| W1 insert N new | 21.2 | 28.5 | 1.34x | insert 1 | insert 1 |" in body
    assert "| W2 uow/raw | 1.65x | 1.40x | -15% |" in body
    assert "| W2 time on mongomock <= 1.3x raw | FAIL 1.65x | FAIL 1.40x |" in body
    assert f"| {SESSION_LOAD} | PASS: 1.38x (6.62 vs 4.80 µs) |" in body
    assert "`python benchmarks/run.py --runs 3`" in body  # each run's command
    assert "uow 0.1.0.dev0" in body and "not installed" not in body  # its versions


def test_report_lists_every_run_of_a_set(report: ModuleType, tmp_path: Path) -> None:
    one, two = stored_results(), stored_results()
    two["workloads"]["W1"]["uow"]["median_s"] = 0.3
    two["workloads"]["W1"]["uow"]["us_per_doc"] = 30.0
    paths = [str(_write(tmp_path, f"{i}.json", r)) for i, r in enumerate((one, two))]
    body = report.main([*paths, "--after-label", "head"])
    assert (
        "| W1 insert N new | 21.2 / 21.2 | 28.5 / 30.0 | 1.34x / 1.42x | insert 1 | insert 1 |"
        in body
    )
    assert "| target | head #1 | head #2 | why |" in body


def test_report_refuses_a_file_without_its_markers(report: ModuleType, tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# no markers\n", encoding="utf-8")
    results = str(_write(tmp_path, "r.json", stored_results()))
    with pytest.raises(SystemExit, match="expected one"):
        report.main([results, "--update", str(doc)])
    assert doc.read_text(encoding="utf-8") == "# no markers\n"
    with pytest.raises(report.ReportError, match="comes before"):
        report.replace_section(f"{report.END}\n{report.BEGIN}\n", "x")


def test_the_docs_section_is_what_report_makes_of_the_stored_results(
    report: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = BENCHMARKS.parent / "docs" / "benchmarks.md"
    text = doc.read_text(encoding="utf-8")
    section = text.split(report.BEGIN)[1].split(report.END)[0]
    command = section.strip().split("`")[1]
    argv = command.split()[2:]
    assert argv[-2:] == ["--update", "docs/benchmarks.md"]
    monkeypatch.chdir(BENCHMARKS.parent)
    body = report.main(argv[:-2])
    # The command line written in the section names --update; the body is otherwise equal.
    assert section.strip("\n") == body.replace(" ".join(argv[:-2]), " ".join(argv), 1)
