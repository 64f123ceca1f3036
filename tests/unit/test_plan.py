"""uow._plan.build_plan: ordering and splitting of write operations (no database)."""

from __future__ import annotations

import pytest

from uow._plan import DELETE, INSERT, UPDATE, Batch, WriteOp, build_plan


def op(kind: str, collection: str, name: str) -> WriteOp:
    return WriteOp(kind, collection, name, {"name": name}, None, {"name": name})


def shape(plan: list[Batch]) -> list[tuple[str, str, list[str]]]:
    return [(batch.kind, batch.collection, [o.doc for o in batch.ops]) for batch in plan]


def test_an_empty_queue_is_an_empty_plan() -> None:
    assert build_plan([], ["a", "b"], 10) == []


def test_kinds_go_inserts_then_updates_then_deletes() -> None:
    ops = [op(DELETE, "c", "d1"), op(UPDATE, "c", "u1"), op(INSERT, "c", "i1")]
    assert shape(build_plan(ops, ["c"], 10)) == [
        (INSERT, "c", ["i1"]),
        (UPDATE, "c", ["u1"]),
        (DELETE, "c", ["d1"]),
    ]


def test_collections_go_in_the_order_first_queued() -> None:
    ops = [
        op(INSERT, "a", "a1"),
        op(INSERT, "b", "b1"),
        op(DELETE, "a", "a2"),
        op(UPDATE, "b", "b2"),
        op(UPDATE, "a", "a3"),
        op(INSERT, "a", "a4"),
    ]
    assert shape(build_plan(ops, ["b", "a"], 10)) == [
        (INSERT, "b", ["b1"]),
        (INSERT, "a", ["a1", "a4"]),
        (UPDATE, "b", ["b2"]),
        (UPDATE, "a", ["a3"]),
        (DELETE, "a", ["a2"]),
    ]


def test_collections_not_in_the_given_order_follow_in_the_order_met() -> None:
    ops = [op(UPDATE, "z", "z1"), op(UPDATE, "y", "y1"), op(UPDATE, "x", "x1")]
    assert [b.collection for b in build_plan(ops, ["x"], 10)] == ["x", "z", "y"]


def test_a_collection_named_but_without_work_makes_no_batch() -> None:
    assert shape(build_plan([op(INSERT, "a", "a1")], ["empty", "a"], 10)) == [(INSERT, "a", ["a1"])]


def test_one_batch_per_collection_and_kind_up_to_the_limit() -> None:
    ops = [op(INSERT, "a", f"i{n}") for n in range(1000)]
    plan = build_plan(ops, ["a"], 1000)
    assert len(plan) == 1
    assert [o.doc for o in plan[0].ops] == [f"i{n}" for n in range(1000)]


@pytest.mark.parametrize(
    ("count", "limit", "sizes"),
    [
        (10, 4, [4, 4, 2]),
        (8, 4, [4, 4]),
        (4, 4, [4]),
        (5, 1, [1, 1, 1, 1, 1]),
        (100_001, 100_000, [100_000, 1]),
    ],
)
def test_batches_split_only_at_the_limit(count: int, limit: int, sizes: list[int]) -> None:
    ops = [op(UPDATE, "a", f"u{n}") for n in range(count)]
    plan = build_plan(ops, ["a"], limit)
    assert [len(b.ops) for b in plan] == sizes
    assert all(b.kind == UPDATE and b.collection == "a" for b in plan)
    assert [o.doc for b in plan for o in b.ops] == [f"u{n}" for n in range(count)]


def test_splitting_keeps_the_order_of_kinds_and_collections() -> None:
    ops = [op(DELETE, "a", f"d{n}") for n in range(3)]
    ops += [op(INSERT, "b", f"i{n}") for n in range(3)]
    ops += [op(INSERT, "a", f"j{n}") for n in range(2)]
    assert shape(build_plan(ops, ["a", "b"], 2)) == [
        (INSERT, "a", ["j0", "j1"]),
        (INSERT, "b", ["i0", "i1"]),
        (INSERT, "b", ["i2"]),
        (DELETE, "a", ["d0", "d1"]),
        (DELETE, "a", ["d2"]),
    ]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        build_plan([op(INSERT, "a", "i")], ["a"], limit)


def test_records_have_readable_reprs() -> None:
    write = op(INSERT, "a", "i")
    assert repr(write) == "<WriteOp insert a {'name': 'i'}>"
    assert repr(Batch("a", INSERT, [write, write])) == "<Batch insert a x2>"
