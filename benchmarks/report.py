"""The results section of docs/benchmarks.md, made from stored ``run.py --json`` results.

Reads one or more results JSON files (runs of the same command: each table gives
every run's number), optionally a "before" set to compare with, checks the
targets of benchmarks/targets.toml on each run again (so old results are judged
by today's targets), and prints a Markdown section: the runs (command, backend,
versions), workloads (uow against raw, with the commands each sent), CPU per
document, targets, and before against after. With ``--update FILE`` it replaces
what is between the markers in FILE instead, leaving the rest of the file as it is:

    <!-- results:begin -->
    ...generated...
    <!-- results:end -->

    python benchmarks/report.py results/a-1.json results/a-2.json \\
        --before results/b-1.json --before results/b-2.json \\
        --before-label 86ba7d7 --after-label 69e8e72 --update docs/benchmarks.md

The output depends only on the files and the arguments: running it twice gives
the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from uowbench import counting, targets  # noqa: E402
from uowbench.libs import WORKLOADS  # noqa: E402

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
SUBJECT, FLOOR = "uow", "raw"
SHORT = 30  # a target's measured text up to this long is shown in the before/after table


class ReportError(Exception):
    """Input the report cannot use (no markers, a file that is not results)."""


@dataclass(frozen=True)
class Run:
    label: str  # "69e8e72 #1"
    path: str
    results: dict[str, Any]
    targets: list[dict[str, Any]]


def load_runs(paths: Sequence[Path], label: str | None, spec: targets.Targets) -> list[Run]:
    loaded = []
    for path in paths:
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{path}: {exc}") from exc
        if not isinstance(results, dict) or "config" not in results:
            raise ReportError(f"{path}: not the --json output of benchmarks/run.py")
        loaded.append(results)
    name = label or _common_commit(loaded)
    return [
        Run(
            f"{name} #{i}" if len(loaded) > 1 else name, str(path), res, targets.evaluate(res, spec)
        )
        for i, (path, res) in enumerate(zip(paths, loaded, strict=True), start=1)
    ]


def _common_commit(loaded: Sequence[dict[str, Any]]) -> str:
    commits = {r["config"].get("commit") for r in loaded}
    if len(commits) == 1 and None not in commits and "unknown" not in commits:
        return str(commits.pop())
    return "run"


# ----------------------------------------------------------------------- tables


def _table(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    rule = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(rule) + " |",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows),
    ]


def _cell(results: dict[str, Any], workload: str, lib: str) -> dict[str, Any] | None:
    cell = (results.get("workloads") or {}).get(workload, {}).get(lib)
    return cell if isinstance(cell, dict) else None


def _per_run(runs: Sequence[Run], get: Callable[[Run], str | None]) -> str:
    values = [get(r) for r in runs]
    if all(v is None for v in values):
        return "-"
    return " / ".join("-" if v is None else v for v in values)


def _same_or_each(values: Sequence[str]) -> str:
    return values[0] if len(set(values)) == 1 else " / ".join(values)


def _ratio(results: dict[str, Any], workload: str) -> float | None:
    mine, floor = _cell(results, workload, SUBJECT), _cell(results, workload, FLOOR)
    if not mine or not floor or mine.get("status") != "ok" or floor.get("status") != "ok":
        return None
    return float(mine["median_s"]) / float(floor["median_s"])


def _us(results: dict[str, Any], workload: str, lib: str) -> float | None:
    cell = _cell(results, workload, lib)
    return float(cell["us_per_doc"]) if cell and cell.get("status") == "ok" else None


def _cpu(results: dict[str, Any], label: str) -> float | None:
    for row in results.get("cpu") or []:
        if row.get("label") == label:
            return float(row["us_per_doc"])
    return None


def _fmt(value: float | None, spec: str, unit: str = "") -> str | None:
    return None if value is None else format(value, spec) + unit


def _workloads_of(runs: Sequence[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(run.results.get("workloads") or {}))
    return list(seen)


def _cpu_rows_of(runs: Sequence[Run]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for run in runs:
        for row in run.results.get("cpu") or []:
            seen[(row["path"], row["label"])] = None
    return list(seen)


def runs_table(runs: Sequence[Run]) -> list[str]:
    rows = []
    for run in runs:
        config = run.results["config"]
        versions = ", ".join(
            f"{k} {v}" for k, v in config.get("versions", {}).items() if v != "not installed"
        )
        rows.append(
            [
                run.label,
                f"`{config.get('command', '?')}`",
                str(config.get("backend_detail") or config.get("backend")),
                f"{config['n']:,}",
                str(config.get("runs", "?")),
                versions,
                str(config.get("machine", "?")),
            ]
        )
    header = ["run", "command", "backend", "N", "runs", "versions", "machine"]
    return _table(header, ["l", "l", "l", "r", "r", "l", "l"], rows)


def workloads_table(runs: Sequence[Run]) -> list[str]:
    rows = []
    for workload in _workloads_of(runs):

        def commands(lib: str, workload: str = workload) -> str:
            seen = []
            for run in runs:
                cell = _cell(run.results, workload, lib)
                if cell and cell.get("status") == "ok":
                    seen.append(counting.summarize(cell.get("commands") or {}))
                elif cell:
                    seen.append(str(cell.get("status")))
            return _same_or_each(seen) if seen else "-"

        rows.append(
            [
                f"{workload} {WORKLOADS.get(workload, '')}".strip(),
                _per_run(runs, lambda r, w=workload: _fmt(_us(r.results, w, FLOOR), ".1f")),
                _per_run(runs, lambda r, w=workload: _fmt(_us(r.results, w, SUBJECT), ".1f")),
                _per_run(runs, lambda r, w=workload: _fmt(_ratio(r.results, w), ".2f", "x")),
                commands(SUBJECT),
                commands(FLOOR),
            ]
        )
    header = ["workload", "raw µs/doc", "uow µs/doc", "uow/raw", "uow commands", "raw commands"]
    return _table(header, ["l", "r", "r", "r", "l", "l"], rows)


def cpu_table(runs: Sequence[Run]) -> list[str]:
    rows = [
        [path, label, _per_run(runs, lambda r, lab=label: _fmt(_cpu(r.results, lab), ".2f"))]
        for path, label in _cpu_rows_of(runs)
    ]
    return _table(["path", "operation", "µs per document"], ["l", "l", "r"], rows)


def _target_names(runs: Sequence[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(t["target"] for t in run.targets))
    return list(seen)


def _verdict(run: Run, name: str) -> str:
    for t in run.targets:
        if t["target"] == name:
            return f"{t['status']}: {t['measured']}"
    return "-"


def targets_table(runs: Sequence[Run]) -> list[str]:
    why = {t["target"]: t["why"] for run in runs for t in run.targets}
    rows = [[name, *(_verdict(r, name) for r in runs), why[name]] for name in _target_names(runs)]
    header = ["target", *(r.label for r in runs), "why"]
    return _table(header, ["l"] * len(header), rows)


def _change(before: Sequence[float | None], after: Sequence[float | None]) -> str:
    """After's best run against before's: noise on a shared machine only adds time."""
    old = [v for v in before if v is not None]
    new = [v for v in after if v is not None]
    if not old or not new or min(old) == 0:
        return "-"
    return f"{min(new) / min(old) - 1:+.0%}"


def comparison_table(before: Sequence[Run], after: Sequence[Run]) -> list[str]:
    rows: list[list[str]] = []

    def add(
        what: str, get: Callable[[dict[str, Any]], float | None], spec: str, unit: str = ""
    ) -> None:
        old = [get(r.results) for r in before]
        new = [get(r.results) for r in after]
        if all(v is None for v in old + new):
            return
        cells = [" / ".join(_fmt(v, spec, unit) or "-" for v in values) for values in (old, new)]
        rows.append([what, *cells, _change(old, new)])

    for workload in _workloads_of([*before, *after]):
        add(f"{workload} uow/raw", lambda res, w=workload: _ratio(res, w), ".2f", "x")
        add(f"{workload} uow µs/doc", lambda res, w=workload: _us(res, w, SUBJECT), ".1f")
        add(f"{workload} raw µs/doc", lambda res, w=workload: _us(res, w, FLOOR), ".1f")
    for _, label in _cpu_rows_of([*before, *after]):
        add(f"CPU {label}, µs", lambda res, lab=label: _cpu(res, lab), ".2f")
    labels = (before[0].label.split(" #")[0], after[0].label.split(" #")[0])
    header = ["measure", f"before ({labels[0]})", f"after ({labels[1]})", "change (best runs)"]
    return _table(header, ["l", "r", "r", "r"], rows)


def comparison_targets(before: Sequence[Run], after: Sequence[Run]) -> list[str]:
    def statuses(runs: Sequence[Run], name: str) -> str:
        found = []
        for run in runs:
            hit = [t for t in run.targets if t["target"] == name]
            if not hit:
                found.append("-")
            elif len(hit[0]["measured"]) <= SHORT:
                found.append(f"{hit[0]['status']} {hit[0]['measured']}")
            else:
                found.append(hit[0]["status"])
        return "; ".join(found)

    labels = (before[0].label.split(" #")[0], after[0].label.split(" #")[0])
    rows = [
        [name, statuses(before, name), statuses(after, name)]
        for name in _target_names([*before, *after])
    ]
    return _table(["target", f"before ({labels[0]})", f"after ({labels[1]})"], "lll", rows)


# ---------------------------------------------------------------------- section


def section(after: Sequence[Run], before: Sequence[Run], command: str, spec_source: str) -> str:
    out = [
        f"Generated by `{command}` (targets from `{spec_source}`); edit the script, the "
        "targets or the JSON files, not these tables.",
        "",
        "Runs:",
        "",
        *runs_table([*before, *after]),
    ]
    config = after[0].results["config"]
    if after[0].results.get("workloads"):
        out += [
            "",
            f"#### Workloads: uow against raw pymongo ({after[0].label.split(' #')[0]})",
            "",
            f"{config['backend']}, N = {config['n']:,}, median of {config.get('runs', '?')} "
            "runs per cell, µs per document (W5: per lookup); one number per run, in the "
            "order of the runs above; commands: what each sent to the server (round trips).",
            "",
            *workloads_table(after),
        ]
    if after[0].results.get("cpu"):
        out += [
            "",
            f"#### CPU per document, no database (N = {config.get('cpu_n', config['n']):,})",
            "",
            *cpu_table(after),
        ]
    out += ["", "#### Targets", "", *targets_table(after)]
    if before:
        out += [
            "",
            f"#### Before and after: {before[0].label.split(' #')[0]} against "
            f"{after[0].label.split(' #')[0]}",
            "",
            "Each cell lists the runs, in order; the change compares the best run of "
            "each side (noise on a shared machine only adds time).",
            "",
            *comparison_table(before, after),
            "",
            *comparison_targets(before, after),
        ]
    return "\n".join(out)


def replace_section(text: str, body: str) -> str:
    """``text`` with what is between the markers replaced by ``body``."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ReportError(f"expected one {BEGIN} and one {END}")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    if end < start:
        raise ReportError(f"{END} comes before {BEGIN}")
    return text[:start] + "\n" + body.strip("\n") + "\n" + text[end:]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", type=Path, nargs="+", help="run.py --json files (after)")
    parser.add_argument(
        "--before", type=Path, action="append", default=[], help="a results file to compare with"
    )
    parser.add_argument("--before-label", default=None, help="name of the before runs")
    parser.add_argument("--after-label", default=None, help="name of the after runs")
    parser.add_argument(
        "--targets", type=Path, default=None, help="targets file (benchmarks/targets.toml)"
    )
    parser.add_argument(
        "--update", type=Path, default=None, help="replace the marked section of this file"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Print the section, or write it into ``--update``'s file; return the section."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(arguments)
    try:
        spec = targets.load(args.targets)
    except (OSError, targets.TargetFileError) as exc:
        raise SystemExit(f"targets: {exc}") from exc
    try:
        spec_source = str(Path(spec.source).resolve().relative_to(HERE.parent))
    except ValueError:
        spec_source = spec.source
    try:
        after = load_runs(args.results, args.after_label, spec)
        before = load_runs(args.before, args.before_label, spec) if args.before else []
    except ReportError as exc:
        raise SystemExit(str(exc)) from exc
    command = " ".join(["python benchmarks/report.py", *arguments])
    body = section(after, before, command, spec_source)
    if args.update is None:
        print(body)
        return body
    text = args.update.read_text(encoding="utf-8")
    try:
        updated = replace_section(text, body)
    except ReportError as exc:
        raise SystemExit(f"{args.update}: {exc}") from exc
    if updated != text:
        args.update.write_text(updated, encoding="utf-8")
    print(f"{args.update}: results section {'updated' if updated != text else 'unchanged'}")
    return body


if __name__ == "__main__":
    main()
