"""The benchmark's targets: read from ``benchmarks/targets.toml``, checked against results.

The file says what each target reads from a results JSON (``run.py --json``),
how it is compared and on which backend it applies; this module only knows the
four kinds (``commands``, ``statements``, ``value``, ``ratio``) and how to walk a
path. So a target is changed, or added, in the data file, and the same targets
are checked by ``run.py`` at the end of a run and by ``report.py`` on stored
results (old ones included).

TOML is read with ``tomllib`` on Python 3.11+ and with ``tomli`` (the same
parser, in the bench and test extras for Python < 3.11) before that.
"""

from __future__ import annotations

import math
import operator
import string
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import counting

TARGETS_FILE = Path(__file__).resolve().parents[1] / "targets.toml"
#: run.py's W5 looks up min(W5_IDS, N) ids; results from before the config
#: recorded ``w5_ids`` fall back to this
W5_IDS = 1_000

KINDS = ("commands", "statements", "value", "ratio")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
}
QUANTITIES = ("batches", "w5_ids")
COMMAND_GROUPS = {"reads": counting.READ_COMMANDS, "writes": counting.WRITE_COMMANDS}
WILDCARD = "*"

_KEYS = {
    # kind: (required keys, optional keys), besides name, kind, metric, backend, why
    "commands": ({"checks"}, {"measured"}),
    "statements": ({"of", "checks"}, {"measured"}),
    "value": ({"op", "value"}, {"measured"}),
    "ratio": ({"of", "op", "value"}, {"measured"}),
}
_COMMON = {"name", "kind", "metric", "backend", "why"}
_OPTIONAL = {"elsewhere"}
_CHECK_KEYS = {
    "commands": ({"count", "op", "value"}, set()),
    "statements": ({"field", "op"}, {"value", "of_field"}),
}
DEFAULT_MEASURED = {
    "commands": "{summary}",
    "statements": "{metric} / {of}",
    "value": "{value:.3g}",
    "ratio": "{value:.2f}x",
}
DEFAULT_ELSEWHERE = "{measured} on {backend} (the target is for {target_backend})"


class TargetFileError(ValueError):
    """The targets file is not what this module reads."""


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    metric: tuple[str, ...]
    backend: str
    why: str
    of: tuple[str, ...] | None = None
    op: str | None = None
    value: float | str | None = None
    checks: tuple[Mapping[str, Any], ...] = ()
    measured: str = ""
    elsewhere: str = DEFAULT_ELSEWHERE

    def paths(self) -> list[tuple[str, ...]]:
        """The paths this target reads: its metric, and ``of`` when it has one."""
        return [self.metric] if self.of is None else [self.metric, self.of]


@dataclass(frozen=True)
class Targets:
    subject: str
    targets: tuple[Target, ...]
    source: str


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # tomli is tomllib's parser, packaged for 3.10 (the bench and test extras)
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise TargetFileError(
                "reading benchmarks/targets.toml on Python 3.10 needs the tomli package "
                "(pip install -e '.[bench]', or pip install tomli)"
            ) from None
    result: dict[str, Any] = tomllib.loads(text)
    return result


def load(path: Path | str | None = None) -> Targets:
    """Read and check a targets file (default: ``benchmarks/targets.toml``)."""
    path = Path(path) if path is not None else TARGETS_FILE
    return parse(path.read_text(encoding="utf-8"), str(path))


def parse(text: str, source: str = "<targets>") -> Targets:
    try:
        data = _toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise TargetFileError(f"{source}: {exc}") from exc
    unknown = set(data) - {"subject", "target"}
    if unknown:
        raise TargetFileError(f"{source}: unknown top-level keys {sorted(unknown)}")
    subject = data.get("subject")
    if not isinstance(subject, str) or not subject:
        raise TargetFileError(f"{source}: subject (the library the targets judge) is missing")
    raw_targets = data.get("target") or []
    targets = tuple(
        _target(entry, f"{source}: target {i + 1}") for i, entry in enumerate(raw_targets)
    )
    names = [t.name for t in targets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TargetFileError(f"{source}: targets named twice: {repeated}")
    return Targets(subject, targets, source)


def _target(entry: Any, where: str) -> Target:
    if not isinstance(entry, dict):
        raise TargetFileError(f"{where}: not a table")
    where = f"{where} ({entry.get('name', 'no name')!r})"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise TargetFileError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    required, optional = _KEYS[kind]
    missing = (_COMMON | required) - set(entry)
    unknown = set(entry) - _COMMON - required - optional - _OPTIONAL
    if missing:
        raise TargetFileError(f"{where}: missing {sorted(missing)}")
    if unknown:
        raise TargetFileError(f"{where}: unknown keys {sorted(unknown)} for kind {kind}")
    for key in ("name", "backend", "why"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise TargetFileError(f"{where}: {key} must be a non-empty string")
    try:
        entry["name"].format(key="key", **dict.fromkeys(QUANTITIES, 1))
    except (KeyError, IndexError, ValueError) as exc:
        raise TargetFileError(f"{where}: name: {exc!r}; it may use {{key}}, {QUANTITIES}") from exc
    metric = _path(entry["metric"], f"{where}: metric")
    of = _path(entry["of"], f"{where}: of") if "of" in entry else None
    if of is not None and (WILDCARD in metric) != (WILDCARD in of):
        raise TargetFileError(f"{where}: metric and of must both have a * or neither")
    if metric.count(WILDCARD) > 1:
        raise TargetFileError(f"{where}: at most one * in a path")
    if "op" in entry:
        _op(entry["op"], where)
        _threshold(entry["value"], where)
    checks = tuple(
        _check(kind, c, f"{where}: check {i + 1}") for i, c in enumerate(entry.get("checks", ()))
    )
    if "checks" in entry and not checks:
        raise TargetFileError(f"{where}: checks is empty")
    for key in ("measured", "elsewhere"):
        if key in entry and not isinstance(entry[key], str):
            raise TargetFileError(f"{where}: {key} must be a string")
    return Target(
        name=entry["name"],
        kind=kind,
        metric=metric,
        backend=entry["backend"],
        why=entry["why"].strip(),
        of=of,
        op=entry.get("op"),
        value=entry.get("value"),
        checks=checks,
        measured=entry.get("measured", DEFAULT_MEASURED[kind]),
        elsewhere=entry.get("elsewhere", DEFAULT_ELSEWHERE),
    )


def _path(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(k, str) and k for k in value):
        raise TargetFileError(f"{where}: a path is a non-empty list of keys")
    return tuple(value)


def _op(value: Any, where: str) -> None:
    if value not in OPS:
        raise TargetFileError(f"{where}: op {value!r} is not one of {', '.join(OPS)}")


def _threshold(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TargetFileError(f"{where}: value must be a number or one of {QUANTITIES}")
    if isinstance(value, str) and value not in QUANTITIES:
        raise TargetFileError(f"{where}: value {value!r} is not one of {QUANTITIES}")


def _check(kind: str, check: Any, where: str) -> Mapping[str, Any]:
    if kind not in _CHECK_KEYS or not isinstance(check, dict):
        raise TargetFileError(f"{where}: not a check of a {kind} target")
    required, optional = _CHECK_KEYS[kind]
    missing, unknown = required - set(check), set(check) - required - optional
    if missing or unknown:
        raise TargetFileError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    _op(check["op"], where)
    if kind == "commands":
        count = check["count"]
        if not isinstance(count, list) or not count or not all(isinstance(c, str) for c in count):
            raise TargetFileError(f"{where}: count is a non-empty list of command names")
        _threshold(check["value"], where)
    elif ("value" in check) == ("of_field" in check):
        raise TargetFileError(f"{where}: give value or of_field, one of them")
    elif "value" in check:
        _threshold(check["value"], where)
    return dict(check)


# -------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class Found:
    value: Any


@dataclass(frozen=True)
class Missing:
    """The path is not in the results: this run did not measure it."""

    at: tuple[str, ...]


@dataclass(frozen=True)
class Failed:
    """A cell on the path did not run ok (errored, n/a): ``lib`` and why."""

    lib: str
    reason: str


def resolve(results: Any, path: Sequence[str]) -> Found | Missing | Failed:
    """Walk ``path`` into ``results``; a list is indexed by its rows' ``label``."""
    node = results
    for i, key in enumerate(path):
        failed = _failed(node, path[i - 1] if i else "")
        if failed is not None:
            return failed
        if isinstance(node, dict):
            if key not in node:
                return Missing(tuple(path[: i + 1]))
            node = node[key]
        elif isinstance(node, list):
            rows = [r for r in node if isinstance(r, dict) and r.get("label") == key]
            if not rows:
                return Missing(tuple(path[: i + 1]))
            node = rows[0]
        else:
            return Missing(tuple(path[: i + 1]))
    failed = _failed(node, path[-1])
    return failed if failed is not None else Found(node)


def _failed(node: Any, name: str) -> Failed | None:
    if isinstance(node, dict) and "status" in node and node["status"] != "ok":
        return Failed(name, str(node.get("reason") or node["status"]))
    return None


def expand(
    results: Any, target: Target
) -> Iterator[tuple[str, tuple[str, ...], tuple[str, ...] | None]]:
    """(key, metric path, of path) for each key the target's ``*`` stands for."""
    if WILDCARD not in target.metric:
        yield "", target.metric, target.of
        return
    at = target.metric.index(WILDCARD)
    found = resolve(results, target.metric[:at])
    if not isinstance(found, Found) or not isinstance(found.value, dict):
        return
    for key in found.value:

        def put(path: tuple[str, ...], key: str = key) -> tuple[str, ...]:
            return tuple(key if k == WILDCARD else k for k in path)

        yield key, put(target.metric), None if target.of is None else put(target.of)


def unknown_metrics(targets: Targets, results: Mapping[str, Any]) -> list[str]:
    """Every path of the targets that ``results`` does not have (a wildcard must match)."""
    unknown = []
    for target in targets.targets:
        for path in target.paths():
            if WILDCARD in path:
                at = path.index(WILDCARD)
                prefix = resolve(results, path[:at])
                keys = list(prefix.value) if isinstance(prefix, Found) else []
                if not keys:
                    unknown.append(f"{target.name}: {list(path)} (nothing at {list(path[:at])})")
                    continue
                concrete = [tuple(k if p == WILDCARD else p for p in path) for k in keys]
            else:
                concrete = [path]
            for one in concrete:
                if isinstance(resolve(results, one), Missing):
                    unknown.append(f"{target.name}: {list(one)}")
    return unknown


# ------------------------------------------------------------------- evaluating


def quantities(config: Mapping[str, Any]) -> dict[str, int]:
    """The numbers a threshold may name, from a run's config."""
    n = int(config["n"])
    batch = int(config.get("max_write_batch_size") or counting.MAX_WRITE_BATCH)
    return {"batches": math.ceil(n / batch), "w5_ids": int(config.get("w5_ids") or min(W5_IDS, n))}


def evaluate(results: Mapping[str, Any], targets: Targets | None = None) -> list[dict[str, Any]]:
    """Each target the results measured: ``{"target", "measured", "status", "why"}``.

    ``status`` is PASS, FAIL, or n/a (for another backend, or nothing to compare with).
    """
    targets = targets if targets is not None else load()
    config = results["config"]
    amounts = quantities(config)
    backend = config["backend"]
    rows = []
    for target in targets.targets:
        for key, metric, of in expand(results, target):
            name = target.name.format(key=key, **amounts)
            row = _evaluate_one(results, target, metric, of, amounts, backend, targets.subject)
            if row is not None:
                rows.append({"target": name, **row, "why": target.why})
    return rows


def _evaluate_one(
    results: Mapping[str, Any],
    target: Target,
    metric: tuple[str, ...],
    of: tuple[str, ...] | None,
    amounts: Mapping[str, int],
    backend: str,
    subject: str,
) -> dict[str, str] | None:
    found = [resolve(results, path) for path in (metric, of) if path is not None]
    if any(isinstance(f, Missing) for f in found):
        return None
    failed = [f for f in found if isinstance(f, Failed)]
    if failed:
        mine = [f for f in failed if f.lib == subject]
        first = (mine or failed)[0]
        return {"measured": f"{first.lib}: {first.reason}", "status": "FAIL" if mine else "n/a"}
    values = [f.value for f in found if isinstance(f, Found)]
    judged = _judge(target, values, amounts)
    if judged is None:
        return {"measured": "none seen", "status": "FAIL"}
    ok, fields = judged
    measured = _format(target.measured, fields, target.name)
    if target.backend not in ("any", backend):
        fields = {
            **fields,
            "measured": measured,
            "backend": backend,
            "target_backend": target.backend,
        }
        return {"measured": _format(target.elsewhere, fields, target.name), "status": "n/a"}
    return {"measured": measured, "status": "PASS" if ok else "FAIL"}


def _judge(
    target: Target, values: list[Any], amounts: Mapping[str, int]
) -> tuple[bool, dict[str, Any]] | None:
    """(passed, the fields ``measured`` may show), or None when there is nothing to judge."""

    def threshold(value: Any) -> Any:
        return amounts[value] if isinstance(value, str) else value

    if target.kind == "commands":
        counts = values[0] or {}
        ok, sums = True, []
        for check in target.checks:
            names = [n for c in check["count"] for n in COMMAND_GROUPS.get(c, (c,))]
            total = sum(int(counts.get(n, 0)) for n in names)
            sums.append(total)
            ok = ok and OPS[check["op"]](total, threshold(check["value"]))
        return ok, {"value": sums[0], "summary": counting.summarize(counts)}
    if target.kind == "statements":
        mine, theirs = values
        if not mine or not theirs:
            return None
        ok = all(
            OPS[c["op"]](
                mine[c["field"]], threshold(c["value"]) if "value" in c else theirs[c["of_field"]]
            )
            for c in target.checks
        )
        return ok, {"metric": mine, "of": theirs}
    assert target.op is not None
    if target.kind == "value":
        value = float(values[0])
        return OPS[target.op](value, threshold(target.value)), {"value": value}
    numerator, denominator = float(values[0]), float(values[1])
    value = numerator / denominator if denominator else math.inf
    fields = {"value": value, "metric": numerator, "of": denominator}
    return OPS[target.op](value, threshold(target.value)), fields


def _format(template: str, fields: Mapping[str, Any], name: str) -> str:
    try:
        return string.Formatter().vformat(template, (), dict(fields))
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise TargetFileError(f"target {name!r}: cannot format {template!r}: {exc!r}") from exc
