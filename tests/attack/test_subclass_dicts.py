"""Embedded subclass hierarchies held in lists and dicts (changed in place,
replaced by another subclass), and dict fields with unusual keys."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import Document, Embedded, field

from ._h import insert_raw, reload, stored


class ScShape(Embedded):
    name: str = ""
    n: int = field(default=0, on_update="$inc")


class ScCircle(ScShape):
    r: int = 1
    tags: list[str] = field(factory=list)


class ScSquare(ScShape):
    side: int = 1


class ScCanvas(Document):
    __collection__ = "sc_canvas"

    name: str
    shapes: list[ScShape] = field(factory=list)
    by: dict[str, ScShape] = field(factory=dict)
    main: ScShape | None = None


def _canvas(s: uow.Session) -> ScCanvas:
    c = ScCanvas(
        name="c",
        shapes=[ScCircle(name="c0", r=2), ScSquare(name="s0", side=3), ScShape(name="b0")],
        by={"c": ScCircle(name="bc"), "s": ScSquare(name="bs")},
        main=ScSquare(name="m"),
    )
    s.add(c)
    s.commit()
    return c


def _check_shape(raw: dict[str, Any], obj: ScShape) -> None:
    assert raw["name"] == obj.name
    assert raw["n"] == obj.n
    if isinstance(obj, ScCircle):
        assert raw["r"] == obj.r and raw["tags"] == obj.tags
        assert "side" not in raw
    elif isinstance(obj, ScSquare):
        assert raw["side"] == obj.side
        assert "r" not in raw
    else:
        assert "r" not in raw and "side" not in raw


def _same_classes(a: list[Any], b: list[Any]) -> None:
    assert [type(x) for x in a] == [type(x) for x in b]


def test_subclass_instances_round_trip_in_list_and_dict(db: Any) -> None:
    s = uow.Session(db)
    c = _canvas(s)
    s.close()
    again = reload(db, ScCanvas, c.id)
    _same_classes(again.shapes, c.shapes)
    assert type(again.by["c"]) is ScCircle and type(again.by["s"]) is ScSquare
    assert type(again.main) is ScSquare
    assert again.shapes == c.shapes


def test_subclass_element_changed_in_place(db: Any) -> None:
    s = uow.Session(db)
    c = _canvas(s)
    c.shapes[0].r = 10
    c.shapes[0].tags.append("x")
    c.shapes[0].n += 2
    c.shapes[1].side = 7
    c.by["c"].tags.append("y")
    c.main.side = 9
    s.commit()
    raw = stored(db, "sc_canvas", c.id)
    for r, o in zip(raw["shapes"], c.shapes, strict=True):
        _check_shape(r, o)
    _check_shape(raw["by"]["c"], c.by["c"])
    _check_shape(raw["main"], c.main)
    s.close()
    again = reload(db, ScCanvas, c.id)
    _same_classes(again.shapes, c.shapes)
    assert again.shapes == c.shapes
    assert again.by == c.by


def test_replace_list_element_with_other_subclass(db: Any) -> None:
    s = uow.Session(db)
    c = _canvas(s)
    c.shapes[0] = ScSquare(name="now-square", side=5)
    c.by["s"] = ScCircle(name="now-circle", r=4)
    c.main = ScCircle(name="main-circle")
    s.commit()
    raw = stored(db, "sc_canvas", c.id)
    for r, o in zip(raw["shapes"], c.shapes, strict=True):
        _check_shape(r, o)
    _check_shape(raw["by"]["s"], c.by["s"])
    _check_shape(raw["main"], c.main)
    s.close()
    again = reload(db, ScCanvas, c.id)
    _same_classes(again.shapes, c.shapes)
    assert type(again.by["s"]) is ScCircle
    assert type(again.main) is ScCircle
    assert again.shapes == c.shapes


def test_replace_subclass_element_with_base_class(db: Any) -> None:
    s = uow.Session(db)
    c = _canvas(s)
    c.shapes[1] = ScShape(name="plain", n=1)
    s.commit()
    raw = stored(db, "sc_canvas", c.id)
    _check_shape(raw["shapes"][1], c.shapes[1])
    s.close()
    again = reload(db, ScCanvas, c.id)
    _same_classes(again.shapes, c.shapes)


def test_replace_by_other_subclass_then_change_in_place_next_flush(db: Any) -> None:
    s = uow.Session(db)
    c = _canvas(s)
    c.shapes[2] = ScCircle(name="was-base")
    s.flush()
    c.shapes[2].tags.append("t")
    c.shapes[2].n += 1
    s.commit()
    raw = stored(db, "sc_canvas", c.id)
    _check_shape(raw["shapes"][2], c.shapes[2])
    s.close()
    again = reload(db, ScCanvas, c.id)
    assert type(again.shapes[2]) is ScCircle
    assert again.shapes[2].tags == ["t"]


def test_two_sessions_append_subclass_instances(db: Any) -> None:
    s = uow.Session(db)
    c = _canvas(s)
    s.close()
    s1, s2 = uow.Session(db), uow.Session(db)
    a, b = s1.get(ScCanvas, c.id), s2.get(ScCanvas, c.id)
    a.shapes.append(ScCircle(name="from1"))
    b.shapes.append(ScSquare(name="from2"))
    s2.commit()
    s1.commit()
    s1.close()
    s2.close()
    again = reload(db, ScCanvas, c.id)
    assert [type(x).__name__ for x in again.shapes[3:]] == ["ScSquare", "ScCircle"]


def test_subclass_in_legacy_stored_list_without_cls(db: Any) -> None:
    doc_id = insert_raw(db, "sc_canvas", {"name": "old", "shapes": [{"name": "x", "n": 1}]})
    s = uow.Session(db)
    c = s.get(ScCanvas, doc_id)
    assert type(c.shapes[0]) is ScShape
    c.shapes[0].n += 1
    c.shapes.append(ScCircle(name="new"))
    s.commit()
    raw = stored(db, "sc_canvas", doc_id)
    assert raw["shapes"][0] == {"name": "x", "n": 2}
    _check_shape(raw["shapes"][1], c.shapes[1])
    s.close()


# ========================================================== dict keys


class DkDoc(Document):
    __collection__ = "dk_docs"

    name: str
    m: dict[str, int] = field(factory=dict)
    lists: dict[str, list[ScShape]] = field(factory=dict)
    counts: dict[str, list[int]] = field(factory=dict)


ODD_KEYS = ["0", "12", "ünï cødé", "with space", "-1", "", "x$", "emoji🙂", "a-b_c", "00"]


@pytest.mark.parametrize("key", ODD_KEYS, ids=[repr(k) for k in ODD_KEYS])
def test_odd_dict_key_set_changed_and_removed(db: Any, key: str) -> None:
    s = uow.Session(db)
    d = DkDoc(name="d", m={"base": 1})
    s.add(d)
    s.commit()
    d.m[key] = 5
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == d.m
    d.m[key] += 1
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == d.m
    del d.m[key]
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == d.m == {"base": 1}
    s.close()
    assert reload(db, DkDoc, d.id).m == {"base": 1}


def test_digit_key_dict_holding_lists_is_not_read_as_array_index(db: Any) -> None:
    """A key "0" in a dict[str, list[...]]: MongoDB reads `counts.0` as a path
    component; on a sub-document it is a key, not an index. The stored dict must
    keep "0" as a key and "1" beside it."""
    s = uow.Session(db)
    d = DkDoc(name="d", counts={"0": [1], "1": [2]})
    s.add(d)
    s.commit()
    d.counts["0"].append(9)
    d.counts["1"][0] = 20
    d.counts["2"] = []
    s.commit()
    raw = stored(db, "dk_docs", d.id)
    assert raw["counts"] == {"0": [1, 9], "1": [20], "2": []} == d.counts
    s.close()


def test_empty_dict_stored_and_filled_and_emptied(db: Any) -> None:
    s = uow.Session(db)
    d = DkDoc(name="d")
    s.add(d)
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == {}
    d.m["a"] = 1
    s.commit()
    d.m.clear()
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == {}
    d.m.update({"x": 1, "y": 2})
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == {"x": 1, "y": 2}
    d.m = {}
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == {}
    s.close()


def test_nested_dict_of_lists_of_embedded_in_place(db: Any) -> None:
    s = uow.Session(db)
    d = DkDoc(name="d", lists={"a b": [ScShape(name="1")], "0": [ScCircle(name="c")]})
    s.add(d)
    s.commit()
    d.lists["a b"][0].n += 3
    d.lists["a b"].append(ScSquare(name="sq"))
    d.lists["0"][0].tags.append("t")
    d.lists["new"] = [ScShape(name="n")]
    s.commit()
    raw = stored(db, "dk_docs", d.id)
    assert raw["lists"]["a b"][0]["n"] == 3
    _check_shape(raw["lists"]["a b"][1], d.lists["a b"][1])
    _check_shape(raw["lists"]["0"][0], d.lists["0"][0])
    assert raw["lists"]["new"][0]["name"] == "n"
    s.close()
    again = reload(db, DkDoc, d.id)
    assert again.lists == d.lists
    assert type(again.lists["a b"][1]) is ScSquare


def test_two_sessions_digit_key_dict_list_append(db: Any) -> None:
    s = uow.Session(db)
    d = DkDoc(name="d", counts={"0": [1]})
    s.add(d)
    s.commit()
    s.close()
    s1, s2 = uow.Session(db), uow.Session(db)
    a, b = s1.get(DkDoc, d.id), s2.get(DkDoc, d.id)
    a.counts["0"].append(2)
    b.counts["0"].append(3)
    s2.commit()
    s1.commit()
    # s2 committed first: its item comes first
    assert stored(db, "dk_docs", d.id)["counts"] == {"0": [1, 3, 2]}
    s1.close()
    s2.close()


@pytest.mark.parametrize("bad", ["a.b", "$x", "$"])
def test_bad_dict_key_in_place_refused_and_session_recovers(db: Any, bad: str) -> None:
    """SPEC names only the dot for dict keys ("checked the same way": a stored
    name that starts with $ or contains .). Reading chosen: both are refused
    with ValidationError at flush, and removing the key lets the flush finish."""
    s = uow.Session(db)
    d = DkDoc(name="d")
    s.add(d)
    s.commit()
    d.m[bad] = 1
    d.m["ok"] = 2
    with pytest.raises(uow.ValidationError):
        s.commit()
    del d.m[bad]
    s.commit()
    assert stored(db, "dk_docs", d.id)["m"] == {"ok": 2}
    s.close()


def test_bad_dict_key_nested_in_dict_of_lists_refused(db: Any) -> None:
    class DkDeep(Embedded):
        m: dict[str, int] = field(factory=dict)

    class DkHolder(Document):
        __collection__ = "dk_holder"
        name: str
        deep: dict[str, list[DkDeep]] = field(factory=dict)

    s = uow.Session(db)
    h = DkHolder(name="h", deep={"k": [DkDeep()]})
    s.add(h)
    s.commit()
    h.deep["k"][0].m["x.y"] = 1
    with pytest.raises(uow.ValidationError):
        s.commit()
    h.deep["k"][0].m.pop("x.y")
    h.deep["k"][0].m["fine"] = 3
    s.commit()
    assert stored(db, "dk_holder", h.id)["deep"] == {"k": [{"m": {"fine": 3}}]}
    s.close()
