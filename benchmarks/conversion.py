"""Per-document cost of uow's BSON conversion, next to plain attrs on the same model.

The model is the small one of PERFORMANCE.md: name, email, age, a list of tags,
score and a creation time. Each row is the median, over several ``timeit`` runs,
of the time per document; the ratio is to "attrs construct + asdict" on a plain
attrs class with the same six fields, the most common plain-attrs way to get a
dict for pymongo. That baseline is the strict one: a uow document also makes its
``bson.ObjectId`` id on construction (about 1.4 µs of its time), so a second attrs
class with the same id field is measured too, as the like-for-like model.

    python benchmarks/conversion.py            # N = 20,000 documents per run
    python benchmarks/conversion.py --n 100000 --repeat 9
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

if importlib.util.find_spec("uow") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attrs
import bson

import uow

CREATED = dt.datetime(2024, 5, 1, 12, 30, 15, 250000)
TAGS = ["vip", "beta"]


class User(uow.Document):
    """The benchmark model, as uow declares it (validated, BSON in and out)."""

    name: str
    email: str
    age: int
    tags: list[str] = uow.field(factory=list)
    score: float = 0.0
    created: dt.datetime = uow.field(factory=dt.datetime.now)


@attrs.define
class PlainUser:
    """The same fields as a plain attrs class: no validation, no BSON conversion."""

    name: str
    email: str
    age: int
    tags: list[str] = attrs.field(factory=list)
    score: float = 0.0
    created: dt.datetime = attrs.field(factory=dt.datetime.now)


@attrs.define
class PlainUserWithId(PlainUser):
    """The same again with the client-side ObjectId id a uow document makes."""

    id: bson.ObjectId = attrs.field(factory=bson.ObjectId)


class Row(NamedTuple):
    """One measured operation: its label and the median µs per document."""

    label: str
    us_per_doc: float


CONSTRUCT = "uow construct + to_bson"
LOAD = "uow from_bson (load)"
BASELINE = "attrs construct + attrs.asdict"


def _cases() -> list[tuple[str, Callable[[], Any]]]:
    built = User(name="ann", email="ann@x.io", age=31, tags=TAGS, score=1.5, created=CREATED)
    stored = bson.decode(bson.encode(built.to_bson()))  # what pymongo hands back
    plain_fields = {k: v for k, v in stored.items() if k != "_id"}
    existing = User.from_bson(stored)
    existing_plain = PlainUser(**plain_fields)

    def uow_construct_serialize() -> Any:
        return User(
            name="ann", email="ann@x.io", age=31, tags=list(TAGS), score=1.5, created=CREATED
        ).to_bson()

    def uow_load() -> Any:
        return User.from_bson(stored)

    def uow_serialize_only() -> Any:
        return existing.to_bson()

    def attrs_construct_asdict() -> Any:
        return attrs.asdict(
            PlainUser(
                name="ann", email="ann@x.io", age=31, tags=list(TAGS), score=1.5, created=CREATED
            )
        )

    def attrs_with_id_construct_asdict() -> Any:
        return attrs.asdict(
            PlainUserWithId(
                name="ann", email="ann@x.io", age=31, tags=list(TAGS), score=1.5, created=CREATED
            )
        )

    def attrs_asdict_only() -> Any:
        return attrs.asdict(existing_plain)

    def attrs_load() -> Any:
        return PlainUser(**plain_fields)

    def plain_dict() -> Any:
        return {
            "name": "ann",
            "email": "ann@x.io",
            "age": 31,
            "tags": list(TAGS),
            "score": 1.5,
            "created": CREATED,
        }

    return [
        (CONSTRUCT, uow_construct_serialize),
        (LOAD, uow_load),
        (BASELINE, attrs_construct_asdict),
        ("attrs with an ObjectId id: construct + asdict", attrs_with_id_construct_asdict),
        ("attrs from a stored dict (load, no checks)", attrs_load),
        ("uow to_bson of a built document", uow_serialize_only),
        ("attrs.asdict of a built instance", attrs_asdict_only),
        ("plain dict literal of the fields", plain_dict),
    ]


def measure(n: int, repeat: int) -> list[Row]:
    """Median µs per document of every case, ``repeat`` timeit runs of ``n`` each."""
    rows = []
    for label, case in _cases():
        case()  # warm up (first-call costs are not per-document costs)
        runs = timeit.repeat(case, number=n, repeat=repeat)
        rows.append(Row(label, statistics.median(runs) / n * 1e6))
    return rows


def format_table(rows: Sequence[Row], n: int, repeat: int) -> str:
    """A Markdown table of the rows with their ratio to the baseline."""
    baseline = next(row.us_per_doc for row in rows if row.label == BASELINE)
    lines = [
        f"Per-document conversion cost (N = {n:,}, median of {repeat} runs, "
        f"Python {sys.version.split()[0]}, attrs {attrs.__version__})",
        "",
        "| operation | µs per document | ratio to attrs construct + asdict |",
        "| --- | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row.label} | {row.us_per_doc:.2f} | {row.us_per_doc / baseline:.2f}x |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    """Measure, print the table, and return it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000, help="documents per timeit run")
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs (the median is kept)")
    args = parser.parse_args(argv)
    table = format_table(measure(args.n, args.repeat), args.n, args.repeat)
    print(table)
    return table


if __name__ == "__main__":
    main()
