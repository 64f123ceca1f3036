"""Nothing lost at depth: issue #17 families 4 (positional paths inside list
elements, lists of lists), 5 (declared `on_update` inside embedded documents
held in a list or a dict), and 3 again inside embedded documents (a key
missing from a stored embedded document, non-empty default).

Concurrency pattern: two sessions load the same document, the second commits
first, then the first; SPEC promises both effects wherever the operator is
relative ($push, $inc, $addToSet, $max/$min) or the paths do not overlap.
"""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._nl import insert_raw, reload, stored


class NldNote(Embedded):
    text: str = ""
    hits: int = field(default=0, on_update="$inc")


class NldLine(Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    peak: int = field(default=0, on_update="$max")
    low: int = field(default=100, on_update="$min")
    price: int = 0
    tags: list[str] = field(factory=list)
    log: list[str] = field(factory=list, on_update="$push")
    marks: list[str] = field(factory=list, on_update="$addToSet")
    note: NldNote | None = None


class NldItem(Embedded):
    """Non-empty defaults, for keys missing from a stored embedded document."""

    sku: str = "?"
    count: int = field(default=5, on_update="$inc")
    plain: int = 5
    labels: list[str] = field(factory=lambda: ["a"])
    pushed: list[str] = field(factory=lambda: ["a"], on_update="$push")
    opts: dict[str, int] = field(factory=lambda: {"k": 1})
    note: NldNote = field(factory=lambda: NldNote(text="t", hits=1))


class NldOrder(Document):
    __collection__ = "nld_orders"

    name: str
    lines: list[NldLine] = field(factory=list)
    by_sku: dict[str, NldLine] = field(factory=dict)
    grid: list[list[str]] = field(factory=list)
    rows: list[dict[str, int]] = field(factory=list)
    main: NldLine | None = None
    items: list[NldItem] = field(factory=list)
    item_map: dict[str, NldItem] = field(factory=dict)
    item: NldItem | None = None


def _line(sku: str, **values: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "qty": 5,
        "peak": 5,
        "low": 5,
        "price": 1,
        "tags": ["a"],
        "log": ["a"],
        "marks": ["x"],
        "note": {"text": "", "hits": 0},
        **values,
    }


def _order(db: Any, **values: Any) -> Any:
    doc = {
        "name": "o",
        "lines": [_line("a"), _line("b")],
        "by_sku": {"a": _line("a"), "b": _line("b")},
        "grid": [["a"], ["b"]],
        "rows": [{"k": 1, "j": 1}, {"k": 2}],
        "main": _line("m"),
        **values,
    }
    return insert_raw(db, "nld_orders", doc)


def _race(db: Any, doc_id: Any, first: Any, second: Any) -> dict[str, Any]:
    """Both sessions load; `second` commits first, then `first`. Returns the stored doc."""
    s1, s2 = uow.Session(db), uow.Session(db)
    o1, o2 = s1.get(NldOrder, doc_id), s2.get(NldOrder, doc_id)
    first(o1)
    second(o2)
    s2.commit()
    s2.close()
    s1.commit()
    s1.close()
    return stored(db, "nld_orders", doc_id)


# ====================================================== family 4: positional paths


def test_two_sessions_push_to_a_list_inside_a_list_element(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db, doc_id, lambda o: o.lines[0].tags.append("b"), lambda o: o.lines[0].tags.append("c")
    )
    assert raw["lines"][0]["tags"] == ["a", "c", "b"]
    assert raw["lines"][1] == _line("b")


def test_two_sessions_push_to_a_list_inside_a_dict_value(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: o.by_sku["a"].tags.append("b"),
        lambda o: o.by_sku["a"].tags.append("c"),
    )
    assert raw["by_sku"]["a"]["tags"] == ["a", "c", "b"]


def test_two_sessions_push_to_a_list_of_lists(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(db, doc_id, lambda o: o.grid[0].append("x"), lambda o: o.grid[0].append("y"))
    assert raw["grid"] == [["a", "y", "x"], ["b"]]


def test_two_sessions_change_different_fields_of_list_elements(db: Any) -> None:
    doc_id = _order(db)

    def first(o: Any) -> None:
        o.lines[1].price = 9

    def second(o: Any) -> None:
        o.lines[0].price = 7

    raw = _race(db, doc_id, first, second)
    assert [line["price"] for line in raw["lines"]] == [7, 9]


def test_two_sessions_change_nested_embedded_inside_list_element(db: Any) -> None:
    doc_id = _order(db)

    def first(o: Any) -> None:
        o.lines[0].note.text = "mine"
        o.lines[0].note.hits += 1

    def second(o: Any) -> None:
        o.lines[0].note.hits += 1
        o.lines[0].sku = "A"

    raw = _race(db, doc_id, first, second)
    assert raw["lines"][0]["note"] == {"text": "mine", "hits": 2}
    assert raw["lines"][0]["sku"] == "A"


def test_two_sessions_change_different_keys_of_a_dict_in_a_list(db: Any) -> None:
    doc_id = _order(db)

    def first(o: Any) -> None:
        o.rows[0]["k"] = 10

    def second(o: Any) -> None:
        o.rows[0]["j"] = 20

    raw = _race(db, doc_id, first, second)
    assert raw["rows"] == [{"k": 10, "j": 20}, {"k": 2}]


def test_list_that_lost_an_element_is_set_whole(db: Any) -> None:
    doc_id = _order(db)
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    del o.lines[0]
    o.lines[0].qty += 1
    o.grid.pop(0)
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["lines"] == [_line("b", qty=6)]
    assert raw["grid"] == [["b"]]
    assert [line.qty for line in reload(db, NldOrder, doc_id).lines] == [6]


def test_reordered_list_with_inner_changes_stores_absolute_values(db: Any) -> None:
    doc_id = _order(db)
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.lines.reverse()
    o.lines[0].qty += 1  # the former lines[1]
    o.lines[1].tags.append("z")
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["lines"] == [_line("b", qty=6), _line("a", tags=["a", "z"])]


def test_append_element_and_change_existing_element_in_one_flush(db: Any) -> None:
    """`$push` on `lines` and `$inc` on `lines.0.qty` in one update would
    conflict on the server; whatever is sent, the stored list equals memory."""
    doc_id = _order(db)
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.lines[0].qty += 1
    o.lines.append(NldLine(sku="c"))
    o.grid[0].append("x")
    o.grid.append(["c"])
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert [(line["sku"], line["qty"]) for line in raw["lines"]] == [("a", 6), ("b", 5), ("c", 0)]
    assert raw["grid"] == [["a", "x"], ["b"], ["c"]]


def test_push_then_change_inside_the_new_element_in_the_next_flush(db: Any) -> None:
    doc_id = _order(db)
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.lines.append(NldLine(sku="c", qty=1))
    s.flush()
    o.lines[2].qty += 1
    o.lines[2].tags.append("t")
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["lines"][2]["qty"] == 2 and raw["lines"][2]["tags"] == ["t"]


# =============================================== family 5: on_update at depth


def test_inc_in_a_list_element_two_sessions(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: setattr(o.lines[0], "qty", o.lines[0].qty + 1),
        lambda o: setattr(o.lines[0], "qty", o.lines[0].qty + 1),
    )
    assert raw["lines"][0]["qty"] == 7


def test_inc_in_a_dict_value_two_sessions(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: setattr(o.by_sku["a"], "qty", o.by_sku["a"].qty + 1),
        lambda o: setattr(o.by_sku["a"], "qty", o.by_sku["a"].qty + 2),
    )
    assert raw["by_sku"]["a"]["qty"] == 8


def test_inc_in_a_single_embedded_two_sessions(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: setattr(o.main, "qty", o.main.qty + 1),
        lambda o: setattr(o.main, "qty", o.main.qty + 1),
    )
    assert raw["main"]["qty"] == 7


def test_max_in_a_list_element_keeps_the_larger(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: setattr(o.lines[0], "peak", 7),
        lambda o: setattr(o.lines[0], "peak", 9),
    )
    assert raw["lines"][0]["peak"] == 9
    raw = _race(
        db,
        doc_id,
        lambda o: setattr(o.lines[0], "peak", 12),
        lambda o: setattr(o.lines[0], "peak", 10),
    )
    assert raw["lines"][0]["peak"] == 12


def test_min_in_a_dict_value_keeps_the_smaller(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: setattr(o.by_sku["b"], "low", 3),
        lambda o: setattr(o.by_sku["b"], "low", 4),
    )
    assert raw["by_sku"]["b"]["low"] == 3


def test_declared_push_in_a_list_element_two_sessions(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db, doc_id, lambda o: o.lines[1].log.append("m"), lambda o: o.lines[1].log.append("n")
    )
    assert raw["lines"][1]["log"] == ["a", "n", "m"]


def test_declared_add_to_set_in_a_dict_value_two_sessions(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: o.by_sku["a"].marks.append("m"),
        lambda o: o.by_sku["a"].marks.extend(["m", "n"]),
    )
    assert sorted(raw["by_sku"]["a"]["marks"]) == ["m", "n", "x"]


def test_inc_in_a_nested_embedded_in_a_dict_value_two_sessions(db: Any) -> None:
    doc_id = _order(db)
    raw = _race(
        db,
        doc_id,
        lambda o: setattr(o.by_sku["b"].note, "hits", o.by_sku["b"].note.hits + 1),
        lambda o: setattr(o.by_sku["b"].note, "hits", o.by_sku["b"].note.hits + 1),
    )
    assert raw["by_sku"]["b"]["note"]["hits"] == 2


def test_inc_at_depth_stored_equals_memory_without_concurrency(db: Any) -> None:
    doc_id = _order(db)
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.lines[0].qty += 3
    o.by_sku["b"].qty -= 2
    o.main.peak = 50
    s.commit()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["lines"][0]["qty"] == o.lines[0].qty == 8
    assert raw["by_sku"]["b"]["qty"] == o.by_sku["b"].qty == 3
    assert raw["main"]["peak"] == o.main.peak == 50
    # a second flush with no change sends nothing and changes nothing
    s.commit()
    s.close()
    assert stored(db, "nld_orders", doc_id) == raw


def test_new_dict_value_with_inc_field_is_stored_whole(db: Any) -> None:
    doc_id = _order(db)
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.by_sku["c"] = NldLine(sku="c", qty=4)
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["by_sku"]["c"]["qty"] == 4 and raw["by_sku"]["c"]["sku"] == "c"


# ============================ family 3 at depth: keys missing from stored embedded

# (change, path into the stored document from the container's element, expected)
DEPTH_MISSING_CASES = [
    ("inc", lambda e: setattr(e, "count", e.count + 1), "count", 6),
    ("plain", lambda e: setattr(e, "plain", e.plain + 1), "plain", 6),
    ("append", lambda e: e.labels.append("b"), "labels", ["a", "b"]),
    ("push", lambda e: e.pushed.append("b"), "pushed", ["a", "b"]),
    ("dict-key", lambda e: e.opts.__setitem__("j", 2), "opts", {"k": 1, "j": 2}),
    ("embedded-field", lambda e: setattr(e.note, "text", "u"), "note", {"text": "u", "hits": 1}),
    (
        "embedded-inc",
        lambda e: setattr(e.note, "hits", e.note.hits + 1),
        "note",
        {"text": "t", "hits": 2},
    ),
]


@pytest.mark.parametrize("where", ["list", "dict", "single"])
@pytest.mark.parametrize(
    ("kind", "change", "key", "expected"),
    DEPTH_MISSING_CASES,
    ids=[c[0] for c in DEPTH_MISSING_CASES],
)
def test_missing_key_inside_embedded_first_change_stores_whole_value(
    db: Any, where: str, kind: str, change: Any, key: str, expected: Any
) -> None:
    doc_id = insert_raw(
        db,
        "nld_orders",
        {
            "name": "o",
            "items": [{"sku": "s"}],
            "item_map": {"x": {"sku": "s"}},
            "item": {"sku": "s"},
        },
    )
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    element = {
        "list": lambda: o.items[0],
        "dict": lambda: o.item_map["x"],
        "single": lambda: o.item,
    }[where]()
    change(element)
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    raw_element = {
        "list": lambda: raw["items"][0],
        "dict": lambda: raw["item_map"]["x"],
        "single": lambda: raw["item"],
    }[where]()
    assert raw_element.get(key) == expected, f"stored {raw_element!r}, memory {element!r}"
    assert raw_element["sku"] == "s"


def test_missing_key_inside_list_element_later_changes_minimal_again(db: Any) -> None:
    doc_id = insert_raw(db, "nld_orders", {"name": "o", "items": [{"sku": "s"}]})
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.items[0].count += 1
    s.commit()
    db["nld_orders"].update_one({"_id": doc_id}, {"$inc": {"items.0.count": 10}})
    o.items[0].count += 1
    s.commit()
    s.close()
    assert stored(db, "nld_orders", doc_id)["items"][0]["count"] == 17


def test_missing_key_untouched_inside_embedded_is_not_written(db: Any) -> None:
    doc_id = insert_raw(
        db, "nld_orders", {"name": "o", "items": [{"sku": "s"}], "item": {"sku": "s"}}
    )
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.items[0].sku = "t"
    o.item.sku = "u"
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["items"] == [{"sku": "t"}] and raw["item"] == {"sku": "u"}


# ===================================== more positional paths and legacy at depth


def test_replacing_one_list_element_keeps_a_concurrent_change_to_another(db: Any) -> None:
    doc_id = _order(db)

    def first(o: Any) -> None:
        o.lines[0] = NldLine(sku="z", qty=1)

    def second(o: Any) -> None:
        o.lines[1].price = 42

    raw = _race(db, doc_id, first, second)
    assert raw["lines"][0]["sku"] == "z" and raw["lines"][0]["qty"] == 1
    assert raw["lines"][1]["price"] == 42


def test_changing_an_item_of_a_list_of_lists_keeps_a_concurrent_sibling_change(db: Any) -> None:
    doc_id = _order(db)

    def first(o: Any) -> None:
        o.grid[0][0] = "z"

    def second(o: Any) -> None:
        o.grid[1][0] = "y"

    raw = _race(db, doc_id, first, second)
    assert raw["grid"] == [["z"], ["y"]]


def test_legacy_value_in_an_untouched_field_of_a_list_element(db: Any) -> None:
    """SPEC: stored values of another type load as they are and never block a
    flush; here the legacy value sits beside the changed field, in the same
    list element, and in a sibling element."""
    lines = [_line("a", price="one"), _line("b", tags=[1, 2])]
    doc_id = _order(db, lines=lines)
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.lines[0].qty += 1
    o.lines[0].tags.append("t")
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["lines"][0]["price"] == "one" and raw["lines"][0]["qty"] == 6
    assert raw["lines"][0]["tags"] == ["a", "t"]
    assert raw["lines"][1]["tags"] == [1, 2]


def test_legacy_value_inside_a_dict_value_beside_a_change(db: Any) -> None:
    doc_id = _order(db, by_sku={"a": _line("a", low="low"), "b": _line("b")})
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.by_sku["a"].qty += 1
    o.by_sku["b"].price = 3
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert raw["by_sku"]["a"]["low"] == "low" and raw["by_sku"]["a"]["qty"] == 6
    assert raw["by_sku"]["b"]["price"] == 3


def test_unknown_keys_in_list_elements_kept_on_positional_change(db: Any) -> None:
    doc_id = _order(db, lines=[{**_line("a"), "ghost": 1}, {**_line("b"), "ghost": 2}])
    s = uow.Session(db)
    o = s.get(NldOrder, doc_id)
    o.lines[1].tags.append("z")
    o.lines[0].note.text = "n"
    s.commit()
    s.close()
    raw = stored(db, "nld_orders", doc_id)
    assert [line["ghost"] for line in raw["lines"]] == [1, 2]
    assert raw["lines"][1]["tags"] == ["a", "z"] and raw["lines"][0]["note"]["text"] == "n"
