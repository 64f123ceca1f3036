"""uow against raw pymongo and peer ODMs: workloads, MongoDB's ODM benchmark, CPU, scaling.

One run measures, on one backend:

* workloads W1-W5 on N small documents (name, email, age, tags, score, created),
  for raw pymongo (the floor), uow, MongoEngine, Ming, ODMantic and Bunnet: time
  (median of --runs fresh runs), ratio to raw, commands sent, update statements;
* the tasks of MongoDB's ODM benchmark on its data set, in MB/s, for uow and raw;
* the CPU per document of uow without a database, beside attrs and a plain dict;
* optionally (--sections scaling) W1 and W2 at several N, as a table and a PNG;

then checks the targets of benchmarks/targets.toml and prints PASS/FAIL for
each. Progress goes to stderr, the report (Markdown) to stdout. See
docs/benchmarks.md; benchmarks/report.py makes its results section from --json files.

    python benchmarks/run.py                                  # mongomock, N = 10,000
    python benchmarks/run.py --backend secantus               # SecantusDB in process
    python benchmarks/run.py --backend mongodb://localhost:27017 --libs raw,uow
    python benchmarks/run.py --sections scaling --plot docs/scaling.png
    python benchmarks/run.py --freeze-heap    # the collector walks only the timed work
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import random
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if importlib.util.find_spec("uow") is None:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from bson import ObjectId  # noqa: E402
from uowbench import counting, cpu, odm, targets  # noqa: E402
from uowbench.backends import Backend, make_backend  # noqa: E402
from uowbench.collector import GC_CLOCK, settled_heap  # noqa: E402
from uowbench.libs import ALL_LIBS, COLLECTION, WORKLOADS, Lib, make_lib, row  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "benchmarks" / "odm-data"
DEFAULT_PLOT = REPO / "docs" / "scaling.png"

W5_IDS = targets.W5_IDS
W5_ROUNDS = 10
SECTIONS = ("workloads", "odm", "cpu", "scaling")

_started = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ arguments


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backend", default="mongomock", help="mongomock (default), secantus, or a mongodb:// URI"
    )
    parser.add_argument("--n", type=int, default=10_000, help="documents per workload (10,000)")
    parser.add_argument(
        "--runs", type=int, default=5, help="fresh runs per cell; the median is kept"
    )
    parser.add_argument(
        "--libs",
        default=",".join(ALL_LIBS),
        help=f"comma-separated, among {','.join(ALL_LIBS)} (default: all)",
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated, among W1..W5"
    )
    parser.add_argument(
        "--sections",
        default="workloads,odm,cpu",
        help=f"comma-separated, among {','.join(SECTIONS)} (default: workloads,odm,cpu)",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="the ODM benchmark's data set directory"
    )
    parser.add_argument(
        "--odm-n", type=int, default=None, help="operations per ODM task (default: --n)"
    )
    parser.add_argument(
        "--odm-runs", type=int, default=None, help="iterations per ODM task (default: --runs)"
    )
    parser.add_argument(
        "--odm-tasks",
        default=None,
        help="comma-separated task numbers 1-7 to run (default: all seven)",
    )
    parser.add_argument(
        "--odm-large-binary",
        action="store_true",
        help="keep large_doc.json's extended-JSON image_field (2.4 MB per document)",
    )
    parser.add_argument(
        "--cpu-n", type=int, default=None, help="documents per CPU run (default: --n)"
    )
    parser.add_argument(
        "--scaling-sizes",
        default="1000,10000,100000,150000",
        help="N values of the scaling run (default: 1000,10000,100000,150000)",
    )
    parser.add_argument(
        "--scaling-libs", default="raw,uow", help="libraries of the scaling run (raw,uow)"
    )
    parser.add_argument(
        "--plot", type=Path, default=DEFAULT_PLOT, help="where the scaling PNG goes"
    )
    parser.add_argument(
        "--scaling-from",
        type=Path,
        action="append",
        default=[],
        help="add the scaling rows of an earlier --json output (repeatable): one table "
        "and plot from runs made separately",
    )
    parser.add_argument(
        "--raw-delete",
        choices=("auto", "in", "bulk"),
        default="auto",
        help="raw W4: delete_many $in, or one bulk_write of DeleteOne; auto: $in on "
        "mongomock, bulk on wire servers (SecantusDB's $in on _id is quadratic)",
    )
    parser.add_argument(
        "--freeze-heap",
        action="store_true",
        help="gc.freeze() what is alive before each timed region (the in-process "
        "database, earlier runs): its collections walk only what the timed work makes",
    )
    parser.add_argument(
        "--mongomock-stock",
        action="store_true",
        help="stock mongomock: uow's speed fixes off (_id lookups scan, cursors are quadratic)",
    )
    parser.add_argument(
        "--slow-peers",
        action="store_true",
        help="run peer workloads the harness leaves out as too slow on this backend",
    )
    parser.add_argument(
        "--targets",
        type=Path,
        default=targets.TARGETS_FILE,
        help="the targets checked at the end (default: benchmarks/targets.toml)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.libs = _names(args.libs, ALL_LIBS, "--libs")
    args.workloads = _names(args.workloads, tuple(WORKLOADS), "--workloads")
    args.sections = _names(args.sections, SECTIONS, "--sections")
    args.scaling_libs = _names(args.scaling_libs, ALL_LIBS, "--scaling-libs")
    args.scaling_sizes = [int(s) for s in args.scaling_sizes.split(",") if s.strip()]
    args.odm_n = args.odm_n or args.n
    numbers = [str(i) for i in range(1, len(odm.TASKS) + 1)]
    chosen = _names(args.odm_tasks, numbers, "--odm-tasks") if args.odm_tasks else numbers
    args.odm_tasks = [odm.TASKS[int(i) - 1] for i in chosen]
    args.odm_runs = args.odm_runs or args.runs
    args.cpu_n = args.cpu_n or args.n
    if args.raw_delete == "auto":
        args.raw_delete = "in" if args.backend == "mongomock" else "bulk"
    return args


def _names(text: str, allowed: Sequence[str], option: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise SystemExit(
            f"{option}: unknown {', '.join(unknown)}; choose among {', '.join(allowed)}"
        )
    return names


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in (
        "uow",
        "pymongo",
        "attrs",
        "mongomock",
        "secantusdb",
        "mongoengine",
        "Ming",
        "odmantic",
        "bunnet",
        "matplotlib",
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def git_commit() -> str:
    """The checkout's commit, ``+`` when uow/ or benchmarks/ differ from it; or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "uow", "benchmarks"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+" if dirty else "")


# ------------------------------------------------------------------------ workloads


def prepare(workload: str, backend: Backend, n: int, run: int) -> dict[str, Any]:
    """Drop and seed the collection for one run (not timed)."""
    coll = backend.admin()[COLLECTION]
    coll.drop()
    if workload == "W1":
        return {"rows": [row(i) for i in range(n)]}
    ids = [ObjectId() for _ in range(n)]
    for start in range(0, n, 10_000):
        coll.insert_many([{"_id": ids[i], **row(i)} for i in range(start, min(n, start + 10_000))])
    if workload == "W5":
        picks = random.Random(run).sample(ids, min(W5_IDS, n))
        return {"ids": picks}
    return {}


def execute(workload: str, lib: Lib, ctx: dict[str, Any]) -> Any:
    if workload == "W1":
        return lib.insert(ctx["rows"])
    if workload == "W2":
        return lib.change_all()
    if workload == "W3":
        return lib.persist_unchanged()
    if workload == "W4":
        return lib.delete_all()
    return lib.lookups(ctx["ids"], W5_ROUNDS)


def check(workload: str, backend: Backend, n: int, ctx: dict[str, Any], result: Any) -> str | None:
    """None when the run did the work it claims, else what is wrong (not timed)."""
    coll = backend.admin()[COLLECTION]
    if workload == "W1":
        count = coll.count_documents({})
        return None if count == n else f"{count} documents stored, expected {n}"
    if workload == "W2":
        count = coll.count_documents({"age": 31})
        return None if count == n else f"{count} documents changed, expected {n}"
    if workload == "W3":
        count = coll.count_documents({"age": 30})
        return None if count == n else f"{count} documents unchanged, expected {n}"
    if workload == "W4":
        count = coll.count_documents({})
        return None if count == 0 else f"{count} documents left, expected 0"
    expected = len(ctx["ids"]) * W5_ROUNDS
    return None if result == expected else f"{result} lookups found, expected {expected}"


def documents_of(workload: str, n: int) -> int:
    return min(W5_IDS, n) * W5_ROUNDS if workload == "W5" else n


def run_workloads(
    backend: Backend, libs: dict[str, Lib], unavailable: dict[str, str], args: argparse.Namespace
) -> dict[str, dict[str, dict[str, Any]]]:
    n = args.n
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in args.workloads:
        cells: dict[str, dict[str, Any]] = {}
        for name in args.libs:
            slow = None if name in unavailable else libs[name].too_slow(workload, backend, n)
            if name in unavailable:
                cells[name] = {"status": "n/a", "reason": unavailable[name]}
            elif slow is not None and not args.slow_peers:
                cells[name] = {"status": "n/a", "reason": slow}
                progress(f"{workload} {name}: left out: {slow}")
            else:
                cells[name] = {"status": "ok", "times": [], "gc": [], "runs_commands": []}
        for run in range(args.runs):
            for name in args.libs:
                cell = cells[name]
                if cell["status"] != "ok":
                    continue
                ctx = prepare(workload, backend, n, run)
                try:
                    with settled_heap(args.freeze_heap), counting.LOG.recording() as log:
                        GC_CLOCK.reset()
                        start = time.perf_counter()
                        result = execute(workload, libs[name], ctx)
                        elapsed = time.perf_counter() - start
                        collecting = GC_CLOCK.seconds
                except Exception as exc:  # a library failing is a result, not a crash
                    cell.update(status="error", reason=f"{type(exc).__name__}: {exc}"[:300])
                    progress(f"{workload} {name} run {run + 1}: ERROR {cell['reason']}")
                    continue
                problem = check(workload, backend, n, ctx, result)
                if problem:
                    cell.update(status="error", reason=f"wrong result: {problem}")
                    progress(f"{workload} {name} run {run + 1}: WRONG {problem}")
                    continue
                cell["times"].append(elapsed)
                cell["gc"].append(collecting)
                cell["runs_commands"].append(dict(log.counts))
                cell["updates"] = counting.statement_stats(log.statements())
                progress(f"{workload} {name} run {run + 1}/{args.runs}: {elapsed:.3f} s")
        docs = documents_of(workload, n)
        for cell in cells.values():
            if cell["status"] != "ok":
                continue
            cell["median_s"] = statistics.median(cell["times"])
            cell["us_per_doc"] = cell["median_s"] / docs * 1e6
            cell["gc_us_per_doc"] = statistics.median(cell["gc"]) / docs * 1e6
            cell["commands"] = cell["runs_commands"][-1]
            cell["commands_vary"] = any(c != cell["commands"] for c in cell["runs_commands"])
        raw = cells.get("raw")
        for cell in cells.values():
            if cell["status"] == "ok" and raw is not None and raw["status"] == "ok":
                cell["ratio"] = cell["median_s"] / raw["median_s"]
        table[workload] = cells
    return table


# ----------------------------------------------------------------------------- ODM


def run_odm(backend: Backend, args: argparse.Namespace, libs: Sequence[str]) -> dict[str, Any]:
    if not (args.data / "small_doc.json").is_file():
        note = f"the data set is not at {args.data} (--data): ODM tasks not run"
        progress(note)
        return {"n": args.odm_n, "iterations": args.odm_runs, "notes": [note], "tasks": {}}
    data = odm.OdmData(args.data, large_binary=args.odm_large_binary)
    models = odm.UowModels(data)
    results: dict[str, dict[str, Any]] = {task: {} for task in args.odm_tasks}
    tasks = {
        lib: {
            task.name: task
            for task in odm.make_tasks(lib, backend, backend.client(), data, models, args.odm_n)
        }
        for lib in libs
    }
    for name in args.odm_tasks:
        times: dict[str, list[float]] = {lib: [] for lib in libs}
        commands: dict[str, dict[str, int]] = {lib: {} for lib in libs}
        problems: dict[str, str] = {}
        for iteration in range(args.odm_runs):
            # The libraries take turns, iteration by iteration (and which goes first
            # alternates): a burst of noise on the machine hits both, not one.
            order = list(libs) if iteration % 2 == 0 else list(reversed(libs))
            for lib in order:
                if lib in problems:
                    continue
                task = tasks[lib][name]
                # Set up each time: the libraries share the task's collection.
                task.setup()
                task.before()
                with settled_heap(args.freeze_heap), counting.LOG.recording() as log:
                    start = time.perf_counter()
                    task.do()
                    elapsed = time.perf_counter() - start
                commands[lib] = dict(log.counts)
                task.after()
                problem = task.check()
                task.teardown()
                if problem:
                    problems[lib] = problem
                    continue
                times[lib].append(elapsed)
                progress(f"ODM {name}: {lib} {iteration + 1}/{args.odm_runs}: {elapsed:.3f} s")
        for lib in libs:
            if lib in problems:
                results[name][lib] = {"status": "error", "reason": problems[lib]}
                continue
            median = statistics.median(times[lib])
            size = tasks[lib][name].size
            results[name][lib] = {
                "status": "ok",
                "size_mb": size / 1e6,
                "times": times[lib],
                "median_s": median,
                "mb_per_s": size / 1e6 / median,
                "percentiles": _nearest_rank(times[lib]),
                "commands": commands[lib],
            }
    return {"n": args.odm_n, "iterations": args.odm_runs, "notes": data.notes, "tasks": results}


def _nearest_rank(times: Sequence[float]) -> dict[int, float]:
    """The spec's percentiles: index int(N * p / 100) - 1 of the sorted times."""
    ordered = sorted(times)
    return {p: ordered[max(0, int(len(ordered) * p / 100) - 1)] for p in (10, 25, 50, 75, 90)}


# -------------------------------------------------------------------------- scaling


def run_scaling(backend: Backend, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    libs = {name: make_lib(name, raw_delete=args.raw_delete) for name in args.scaling_libs}
    for lib in libs.values():
        lib.open(backend)
    try:
        for size in args.scaling_sizes:
            scaled = argparse.Namespace(**{**vars(args), "n": size, "workloads": ["W1", "W2"]})
            scaled.libs = list(libs)
            progress(f"scaling: N = {size:,}")
            table = run_workloads(backend, libs, {}, scaled)
            for workload, cells in table.items():
                for name, cell in cells.items():
                    rows.append({"n": size, "workload": workload, "lib": name, **cell})
    finally:
        for lib in libs.values():
            lib.close()
        backend.admin()[COLLECTION].drop()
    return rows


def plot_scaling(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    styles = {"W1": ("-", "o"), "W2": ("--", "s")}
    libs = list(dict.fromkeys(r["lib"] for r in rows))
    colors = {lib: f"C{i}" for i, lib in enumerate(libs)}
    for workload, (line, marker) in styles.items():
        for lib in libs:
            points = [
                (r["n"], r["us_per_doc"])
                for r in rows
                if r["workload"] == workload and r["lib"] == lib and r["status"] == "ok"
            ]
            if points:
                xs, ys = zip(*sorted(points), strict=True)
                ax.plot(xs, ys, line, marker=marker, color=colors[lib], label=f"{lib} {workload}")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("N documents (log scale)")
    ax.set_ylabel("µs per document (median)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# -------------------------------------------------------------------------- targets


def evaluate_targets(
    results: dict[str, Any], spec: targets.Targets | Path | None = None
) -> list[dict[str, Any]]:
    """Every target in the targets file this run measured: PASS, FAIL, or n/a with why.

    The targets (what each reads from ``results``, its comparison, threshold and
    backend) are data, in ``benchmarks/targets.toml`` unless ``spec`` says otherwise.
    """
    if not isinstance(spec, targets.Targets):
        spec = targets.load(spec)
    return targets.evaluate(results, spec)


# --------------------------------------------------------------------------- report


def _fmt_updates(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "-"
    fields = (
        f"{stats['fields_max']}"
        if stats["fields_min"] == stats["fields_max"]
        else f"{stats['fields_min']}-{stats['fields_max']}"
    )
    sizes = (
        f"{stats['bytes_max']} B"
        if stats["bytes_min"] == stats["bytes_max"]
        else f"{stats['bytes_min']}-{stats['bytes_max']} B"
    )
    return f"{stats['count']:,} x {fields} field(s), {sizes}"


def format_report(results: dict[str, Any]) -> str:
    config = results["config"]
    out: list[str] = []
    sizes = (
        f"N = {config['n']:,}"
        if results.get("workloads") or results.get("odm") or results.get("cpu")
        else "scaling"
    )
    out.append(f"## uow benchmark: {config['backend']}, {sizes}, median of {config['runs']} runs")
    out.append("")
    out.append(f"- backend: {config['backend_detail']}")
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in config["versions"].items()))
    out.append(f"- machine: {config['machine']}")
    out.append(f"- raw W4: {config['raw_delete']}; statements' bytes: BSON of {{q, u}}")
    out.append(f"- command: `{config['command']}`")
    if config.get("freeze_heap"):
        out.append(
            "- heap: frozen before each timed region (`--freeze-heap`): the collector "
            "walks only what the timed work makes"
        )
    table = results.get("workloads")
    if table:
        out += ["", "### Workloads", ""]
        out.append(
            "| workload | library | median s | µs/doc | of which GC | vs raw | commands "
            "| update statements |"
        )
        out.append("| --- | --- | ---: | ---: | ---: | ---: | --- | --- |")
        for workload, cells in table.items():
            for name, cell in cells.items():
                label = f"{workload} {WORKLOADS[workload]}"
                if cell["status"] != "ok":
                    out.append(
                        f"| {label} | {name} | {cell['status']}: {cell['reason']} | | | | | |"
                    )
                    continue
                ratio = f"{cell['ratio']:.2f}x" if "ratio" in cell else "-"
                commands = counting.summarize(cell["commands"])
                if cell.get("commands_vary"):
                    commands += " (last run; runs differ)"
                out.append(
                    f"| {label} | {name} | {cell['median_s']:.3f} | {cell['us_per_doc']:.1f} | "
                    f"{cell.get('gc_us_per_doc', 0.0):.1f} | {ratio} | {commands} | "
                    f"{_fmt_updates(cell.get('updates'))} |"
                )
        out += ["", "How each library does each workload:", ""]
        for name, how in config["how"].items():
            out.append(f"- {name}: " + "; ".join(f"{w} {h}" for w, h in how.items()))
    odm_results = results.get("odm")
    if odm_results:
        out += [
            "",
            f"### MongoDB ODM benchmark tasks ({odm_results['n']:,} operations, "
            f"median of {odm_results['iterations']} iterations)",
            "",
        ]
        for note in odm_results["notes"]:
            out.append(f"- {note}")
        out.append("")
        out.append("| task | MB | raw s | raw MB/s | uow s | uow MB/s | uow/raw | uow commands |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for task, cells in odm_results["tasks"].items():
            raw, mine = cells.get("raw"), cells.get("uow")
            size = next((c["size_mb"] for c in (raw, mine) if c and c["status"] == "ok"), 0.0)

            def cols(cell: dict[str, Any] | None) -> str:
                if not cell:
                    return "- | -"
                if cell["status"] != "ok":
                    return f"{cell['status']}: {cell['reason']} | -"
                return f"{cell['median_s']:.3f} | {cell['mb_per_s']:.3g}"

            share = (
                f"{mine['mb_per_s'] / raw['mb_per_s']:.0%}"
                if raw and mine and raw["status"] == mine["status"] == "ok"
                else "-"
            )
            commands = (
                counting.summarize(mine["commands"]) if mine and mine["status"] == "ok" else "-"
            )
            out.append(
                f"| {task} | {size:.3g} | {cols(raw)} | {cols(mine)} | {share} | {commands} |"
            )
    cpu_rows = results.get("cpu")
    if cpu_rows:
        out += ["", f"### CPU per document, no database (N = {config['cpu_n']:,})", ""]
        out.append("| path | operation | µs per document |")
        out.append("| --- | --- | ---: |")
        for r in cpu_rows:
            out.append(f"| {r['path']} | {r['label']} | {r['us_per_doc']:.2f} |")
    scaling = results.get("scaling")
    if scaling:
        out += ["", "### Scaling: W1 and W2 at several N", ""]
        out.append("| N | workload | library | median s | µs/doc | vs raw | commands |")
        out.append("| ---: | --- | --- | ---: | ---: | ---: | --- |")
        for r in scaling:
            if r["status"] != "ok":
                out.append(f"| {r['n']:,} | {r['workload']} | {r['lib']} | {r['status']} | | | |")
                continue
            ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
            out.append(
                f"| {r['n']:,} | {r['workload']} | {r['lib']} | {r['median_s']:.3f} | "
                f"{r['us_per_doc']:.1f} | {ratio} | {counting.summarize(r['commands'])} |"
            )
        if results.get("plot"):
            out.append("")
            out.append(f"Plot: {results['plot']}")
    targets = results.get("targets")
    if targets:
        out += ["", "### Targets", ""]
        out.append("| target | measured | result |")
        out.append("| --- | --- | --- |")
        for t in targets:
            out.append(f"| {t['target']} | {t['measured']} | {t['status']} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run what the arguments ask, print the report, and return the results."""
    args = parse_args(argv)
    try:
        spec = targets.load(args.targets)  # before the run: a bad file fails at once
    except (OSError, targets.TargetFileError) as exc:
        raise SystemExit(f"--targets: {exc}") from exc
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else list(argv))
    progress(f"backend {args.backend}: starting")
    backend = make_backend(args.backend, mongomock_id_index=not args.mongomock_stock)
    results: dict[str, Any] = {
        "config": {
            "backend": backend.name,
            "backend_detail": backend.describe(),
            "n": args.n,
            "runs": args.runs,
            "cpu_n": args.cpu_n,
            "libs": args.libs,
            "versions": versions(),
            "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
            "raw_delete": (
                "delete_many {_id: {$in: ids}}"
                if args.raw_delete == "in"
                else "one bulk_write of DeleteOne"
            ),
            "command": command.strip(),
            "commit": git_commit(),
            "max_write_batch_size": backend.max_write_batch_size,
            "w5_ids": min(W5_IDS, args.n),
            "freeze_heap": args.freeze_heap,
            "how": {},
        }
    }
    try:
        if "cpu" in args.sections:
            # First: it needs no database, and after the ODM tasks (30,000 large
            # documents made and dropped) the same code measured 10-15% slower in
            # the same process, gc.collect() or not: a fragmented heap, not uow.
            progress(f"CPU profile: {args.cpu_n:,} documents per run")
            results["cpu"] = cpu.measure(args.cpu_n, max(args.runs, 3))
        if "workloads" in args.sections:
            libs: dict[str, Lib] = {}
            unavailable: dict[str, str] = {}
            for name in args.libs:
                lib = make_lib(name, raw_delete=args.raw_delete)
                results["config"]["how"][name] = lib.how
                reason = lib.unavailable(backend)
                if reason is None:
                    try:
                        lib.open(backend)
                    except Exception as exc:
                        reason = f"could not start: {type(exc).__name__}: {exc}"[:300]
                if reason is not None:
                    unavailable[name] = reason
                    progress(f"{name}: n/a on {backend.name}: {reason}")
                else:
                    libs[name] = lib
            try:
                results["workloads"] = run_workloads(backend, libs, unavailable, args)
            finally:
                for lib in libs.values():
                    lib.close()
                backend.admin()[COLLECTION].drop()
        if "odm" in args.sections:
            results["odm"] = run_odm(backend, args, [n for n in ("raw", "uow") if n in args.libs])
        if "scaling" in args.sections or args.scaling_from:
            rows = []
            for path in args.scaling_from:
                rows += json.loads(path.read_text(encoding="utf-8")).get("scaling") or []
            if "scaling" in args.sections:
                rows += run_scaling(backend, args)
            results["scaling"] = sorted(rows, key=lambda r: (r["n"], r["workload"]))
            title = "\n".join(
                textwrap.wrap(
                    f"W1 insert N, W2 load + change + persist N, median of {args.runs} runs; "
                    f"{backend.describe()}",
                    90,
                )
            )
            plot_scaling(results["scaling"], args.plot, title)
            results["plot"] = str(args.plot)
            progress(f"scaling plot written to {args.plot}")
        results["targets"] = evaluate_targets(results, spec)
    finally:
        backend.close()
    report = format_report(results)
    print(report)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    progress("done")
    return results


if __name__ == "__main__":
    main()
