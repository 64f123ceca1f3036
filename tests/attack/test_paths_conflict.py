"""Several operators on overlapping paths of one document in one flush (MongoDB
refuses an update that touches `a` and `a.0.x` together), with another writer
between load and flush."""

from __future__ import annotations

from typing import Any

import uow
from uow import Document, Embedded, field

from ._h import emb, insert_raw, reload, stored


class PxLine(Embedded):
    sku: str = ""
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class PxDoc(Document):
    __collection__ = "px_docs"
    name: str
    grid: list[list[int]] = field(factory=list)
    nested: dict[str, dict[str, int]] = field(factory=dict)
    lines: list[PxLine] = field(factory=list)
    deep: list[list[PxLine]] = field(factory=list)


def _d(db: Any) -> Any:
    return insert_raw(
        db,
        "px_docs",
        {
            "name": "x",
            "grid": [[1], [2, 3]],
            "nested": {"0": {"a": 1, "1": 2}, "b": {"c": 3}},
            "lines": [{"sku": "a", "qty": 1, "tags": []}],
            "deep": [[{"sku": "d", "qty": 1, "tags": []}]],
        },
    )


def test_list_of_lists_inner_append_outer_append_inner_set(db: Any) -> None:
    doc_id = _d(db)
    s = uow.Session(db)
    d = s.get(PxDoc, doc_id)
    d.grid[0].append(9)
    d.grid[1][0] = 20
    d.grid.append([7])
    s.commit()
    assert stored(db, "px_docs", doc_id)["grid"] == d.grid == [[1, 9], [20, 3], [7]]
    s.close()


def test_nested_dict_digit_keys_add_remove_at_two_levels(db: Any) -> None:
    doc_id = _d(db)
    s = uow.Session(db)
    d = s.get(PxDoc, doc_id)
    del d.nested["0"]["1"]
    d.nested["0"]["2"] = 5
    del d.nested["b"]
    d.nested["9"] = {"0": 0}
    s.commit()
    raw = stored(db, "px_docs", doc_id)
    assert raw["nested"] == d.nested == {"0": {"a": 1, "2": 5}, "9": {"0": 0}}
    s.close()
    assert reload(db, PxDoc, doc_id).nested == d.nested


def test_list_of_lists_of_embedded_inc_push_and_append(db: Any) -> None:
    """Reading chosen: SPEC sends a list change on positional paths "as long
    as the list kept its length and order", sets it whole when it "gained
    (other than by appending)", and applies a declared $inc "wherever the field
    lives". A list that only gained by appending, with a change inside an old
    element, is therefore not a $set-whole case: the other writer's +10 on the
    element is kept."""
    doc_id = _d(db)
    s = uow.Session(db)
    d = s.get(PxDoc, doc_id)
    db["px_docs"].update_one({"_id": doc_id}, {"$inc": {"deep.0.0.qty": 10}})
    d.deep[0][0].qty += 1
    d.deep[0][0].tags.append("t")
    d.deep[0].append(PxLine(sku="e", qty=2))
    d.deep.append([PxLine(sku="f")])
    s.commit()
    raw = stored(db, "px_docs", doc_id)
    assert raw["deep"] == [
        [{"sku": "d", "qty": 12, "tags": ["t"]}, {"sku": "e", "qty": 2, "tags": []}],
        [{"sku": "f", "qty": 0, "tags": []}],
    ]
    s.refresh(d)
    assert emb(d.deep) == raw["deep"]
    s.close()


def test_raw_append_between_load_and_flush_then_change_and_append(db: Any) -> None:
    """Same reading as above: an append plus an in-element change must not
    overwrite an append another writer made between load and flush ("so two
    sessions appending to the same list both keep their items")."""
    doc_id = _d(db)
    s = uow.Session(db)
    d = s.get(PxDoc, doc_id)
    db["px_docs"].update_one(
        {"_id": doc_id}, {"$push": {"lines": {"sku": "other", "qty": 0, "tags": []}}}
    )
    d.lines[0].qty += 1
    d.lines[0].tags.append("m")
    d.lines.append(PxLine(sku="mine"))
    s.commit()
    raw = stored(db, "px_docs", doc_id)
    assert raw["lines"] == [
        {"sku": "a", "qty": 2, "tags": ["m"]},
        {"sku": "other", "qty": 0, "tags": []},
        {"sku": "mine", "qty": 0, "tags": []},
    ]
    # memory does not know "other" until refreshed; after refresh they agree
    s.refresh(d)
    assert emb(d.lines) == raw["lines"]
    s.close()


def test_element_replaced_and_other_element_changed_and_appended(db: Any) -> None:
    doc_id = insert_raw(
        db,
        "px_docs",
        {
            "name": "x",
            "lines": [{"sku": "a", "qty": 1, "tags": []}, {"sku": "b", "qty": 1, "tags": []}],
        },
    )
    s = uow.Session(db)
    d = s.get(PxDoc, doc_id)
    d.lines[0] = PxLine(sku="A", qty=9)
    d.lines[1].qty += 1
    d.lines.append(PxLine(sku="c"))
    s.commit()
    raw = stored(db, "px_docs", doc_id)
    assert raw["lines"] == emb(d.lines)
    s.close()


def test_list_emptied_then_refilled_in_two_flushes(db: Any) -> None:
    doc_id = _d(db)
    s = uow.Session(db)
    d = s.get(PxDoc, doc_id)
    d.lines.clear()
    d.grid.clear()
    s.flush()
    d.lines.append(PxLine(sku="n", qty=3))
    d.lines[0].tags.append("z")
    d.grid.append([])
    d.grid[0].append(1)
    s.commit()
    raw = stored(db, "px_docs", doc_id)
    assert raw["lines"] == emb(d.lines) == [{"sku": "n", "qty": 3, "tags": ["z"]}]
    assert raw["grid"] == d.grid == [[1]]
    s.close()
