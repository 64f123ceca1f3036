"""``Model.from_dict(data)``: what ``Model(**data)`` builds, and nested mappings built too.

``from_dict`` is generated per class and has a fast path (a dict holding every
field, each value of its field's exact type) beside the general one; both must
give what the constructor gives, the same errors included. These tests compare
the two ways of building on the same inputs.
"""

from __future__ import annotations

import datetime
import decimal
import types
from typing import Any

import attrs
import pytest
from bson import Decimal128, ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

import uow
from uow import Document, Embedded, field


class FdPoint(Embedded):
    x: int
    y: int = 0
    label: str | None = None


class FdWords(Embedded):
    a: str
    b: str
    c: str


class FdPrice(Embedded):
    amount: decimal.Decimal
    day: datetime.date


class FdBase(Embedded):
    name: str


class FdSub(FdBase):
    rank: int


class FdOrder(Document):
    __collection__ = "fd_orders"
    name: str
    qty: int
    price: float = 1.0
    tags: list[str] = field(factory=list)
    at: datetime.datetime | None = None
    origin: FdPoint | None = None
    path: list[FdPoint] = field(factory=list)
    named: dict[str, FdPoint] = field(factory=dict)
    words: FdWords | None = None


class FdPlain(Document):
    __collection__ = "fd_plain"
    name: str
    qty: int
    score: float


class FdSpecial(FdPlain):
    level: int = 1


def _positive(instance: Any, attribute: Any, value: int) -> None:
    if value < 0:
        raise ValueError("must not be negative")


class FdChecked(Embedded):
    n: int = field(validator=_positive)
    twice: int = 0

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "twice", self.n * 2)


class FdSecret(Embedded):
    _code: str


def _same(a: Any, b: Any) -> bool:
    """Built alike: the same class, the same fields, the same stored form."""
    if type(a) is not type(b):
        return False
    return bool(attrs.asdict(a, recurse=False) == attrs.asdict(b, recurse=False)) and bool(
        a.to_bson() == b.to_bson()
    )


# ------------------------------------------------------------------ as the constructor


def test_a_flat_document_is_what_the_constructor_builds() -> None:
    given_id = ObjectId()
    data = {"id": given_id, "name": "pen", "qty": 3, "score": 1.5}
    assert _same(FdPlain.from_dict(data), FdPlain(**data))
    built = FdPlain.from_dict({"name": "pen", "qty": 3, "score": 1.5})
    assert type(built.id) is ObjectId and built.id != given_id  # the factory ran
    assert built.to_bson() == {"_id": built.id, "name": "pen", "qty": 3, "score": 1.5}


def test_values_of_other_accepted_types_take_the_constructors_checks() -> None:
    class Flag(int):
        pass

    data = {"name": "pen", "qty": Flag(3), "score": 2}  # an int subclass; an int for float
    built = FdPlain.from_dict(data)
    twin = FdPlain(**data)
    assert built.qty == twin.qty and built.score == twin.score
    assert type(built.qty) is type(twin.qty) and type(built.score) is type(twin.score)


def test_defaults_and_factories_fill_missing_keys() -> None:
    order = FdOrder.from_dict({"name": "pen", "qty": 1})
    assert (order.price, order.tags, order.at, order.path, order.named) == (1.0, [], None, [], {})
    other = FdOrder.from_dict({"name": "pen", "qty": 1})
    assert order.tags is not other.tags  # a factory per instance, as the constructor does


def test_a_subclass_builds_itself() -> None:
    built = FdSpecial.from_dict({"name": "a", "qty": 1, "score": 0.5, "level": 3})
    assert type(built) is FdSpecial
    assert built.to_bson()["_cls"] == "FdSpecial"
    assert _same(built, FdSpecial(id=built.id, name="a", qty=1, score=0.5, level=3))


def test_validators_and_post_init_run() -> None:
    assert FdChecked.from_dict({"n": 4}).twice == 8
    with pytest.raises(uow.ValidationError, match="must not be negative"):
        FdChecked.from_dict({"n": -1})


def test_keys_are_the_constructors_argument_names() -> None:
    assert FdSecret.from_dict({"code": "x"})._code == "x"
    with pytest.raises(TypeError, match="'_code'"):
        FdSecret.from_dict({"_code": "x"})


def test_any_mapping_is_taken() -> None:
    proxy = types.MappingProxyType({"name": "pen", "qty": 2, "score": 1.0})
    assert FdPlain.from_dict(proxy).qty == 2


# ------------------------------------------------------------------------- errors


def test_a_key_that_is_not_a_field_is_refused_with_the_fields_named() -> None:
    with pytest.raises(TypeError, match=r"'\$where', which is not a field; the fields are id"):
        FdPlain.from_dict({"name": "pen", "qty": 2, "score": 1.0, "$where": "1"})
    with pytest.raises(TypeError, match="'_id'"):
        FdPlain.from_dict({"_id": ObjectId(), "name": "pen", "qty": 2, "score": 1.0})
    with pytest.raises(TypeError, match="1, which is not a field"):
        FdPlain.from_dict({"name": "pen", "qty": 2, 1: 1.0})


def test_a_missing_field_without_default_is_refused_with_the_fields_named() -> None:
    with pytest.raises(TypeError, match=r"FdPlain.from_dict\(\) lacks 'qty', 'score': fields"):
        FdPlain.from_dict({"name": "pen"})
    with pytest.raises(TypeError, match=r"lacks 'x': a field with no default"):
        FdOrder.from_dict({"name": "pen", "qty": 1, "origin": {"y": 1}})


def test_something_other_than_a_mapping_is_refused() -> None:
    with pytest.raises(TypeError, match=r"FdPlain\.from_dict\(\) takes a mapping.*got list"):
        FdPlain.from_dict([("name", "pen")])  # type: ignore[arg-type]


def test_a_wrong_value_raises_the_constructors_validation_error() -> None:
    cases: list[dict[str, Any]] = [
        {"name": 42, "qty": 1, "score": 1.0},
        {"name": "pen", "qty": "1", "score": 1.0},
        {"name": "pen", "qty": True, "score": 1.0},
        {"name": "pen", "qty": 2**63, "score": 1.0},  # beyond BSON's int64
        {"name": "pen", "qty": -(2**63) - 1, "score": 1.0},
        {"name": "pen", "qty": 1, "score": None},
        {"id": "not an ObjectId", "name": "pen", "qty": 1, "score": 1.0},
    ]
    for data in cases:
        with pytest.raises(uow.ValidationError) as from_dict:
            FdPlain.from_dict(data)
        with pytest.raises(uow.ValidationError) as constructor:
            FdPlain(**data)
        assert str(from_dict.value) == str(constructor.value), data


def test_an_int64_out_of_range_is_refused_inside_an_embedded_document() -> None:
    with pytest.raises(uow.ValidationError, match=r"FdPoint\.x"):
        FdPoint.from_dict({"x": 2**63, "y": 0, "label": "a"})
    with pytest.raises(uow.ValidationError, match=r"FdPoint\.y"):
        FdPoint.from_dict({"x": 0, "y": -(2**64), "label": "a"})
    assert FdPoint.from_dict({"x": 2**63 - 1, "y": -(2**63), "label": "a"}).x == 2**63 - 1


def test_a_dict_field_key_that_reads_as_an_operator_is_refused() -> None:
    with pytest.raises(uow.ValidationError):
        FdOrder.from_dict({"name": "pen", "qty": 1, "named": {"$gt": {"x": 1}}})
    with pytest.raises(uow.ValidationError):
        FdOrder.from_dict({"name": "pen", "qty": 1, "named": {"a.b": {"x": 1}}})


# ------------------------------------------------------------------------- nesting


def test_nested_mappings_become_embedded_documents() -> None:
    order = FdOrder.from_dict(
        {
            "name": "pen",
            "qty": 1,
            "origin": {"x": 1, "y": 2, "label": "o"},
            "path": [{"x": 1}, FdPoint(x=2)],
            "named": {"home": {"x": 3}},
            "words": {"a": "x", "b": "y", "c": "z"},
        }
    )
    assert order.origin == FdPoint(x=1, y=2, label="o")
    assert order.path == [FdPoint(x=1), FdPoint(x=2)]
    assert order.named == {"home": FdPoint(x=3)}
    assert order.words == FdWords(a="x", b="y", c="z")
    expected = FdOrder(
        id=order.id,
        name="pen",
        qty=1,
        origin=FdPoint(x=1, y=2, label="o"),
        path=[FdPoint(x=1), FdPoint(x=2)],
        named={"home": FdPoint(x=3)},
        words=FdWords(a="x", b="y", c="z"),
    )
    assert order.to_bson() == expected.to_bson()


def test_built_instances_and_none_pass_through_and_a_list_needing_nothing_is_kept() -> None:
    point = FdPoint(x=1)
    path = [point]
    order = FdOrder.from_dict({"name": "a", "qty": 1, "origin": point, "path": path})
    assert order.origin is point and order.path is path
    assert FdOrder.from_dict({"name": "a", "qty": 1, "origin": None}).origin is None


def test_a_wrong_nested_value_names_the_nested_field() -> None:
    with pytest.raises(uow.ValidationError, match=r"FdPoint\.x: expected int"):
        FdOrder.from_dict({"name": "a", "qty": 1, "path": [{"x": "one"}]})
    with pytest.raises(TypeError, match="'z', which is not a field"):
        FdOrder.from_dict({"name": "a", "qty": 1, "origin": {"x": 1, "z": 2}})
    with pytest.raises(uow.ValidationError, match=r"FdOrder\.path"):
        FdOrder.from_dict({"name": "a", "qty": 1, "path": "not a list"})


# ---------------------------------------------------------------- the kept dump


def test_the_dump_kept_by_the_fast_path_is_the_constructors_and_follows_assignments() -> None:
    words = FdWords.from_dict({"a": "x", "b": "y", "c": "z"})
    expected = {"a": "x", "b": "y", "c": "z"}
    assert words.to_bson() == FdWords(a="x", b="y", c="z").to_bson() == expected
    assert list(words.to_bson()) == ["a", "b", "c"]  # the declared order, as stored
    words.b = "changed"
    assert words.to_bson() == {"a": "x", "b": "changed", "c": "z"}
    reordered = FdWords.from_dict({"c": "z", "a": "x", "b": "y"})
    assert list(reordered.to_bson()) == ["a", "b", "c"]


def test_values_stored_in_another_form_are_dumped_as_the_constructors_are() -> None:
    data = {
        "amount": decimal.Decimal("1.50"),
        "day": datetime.date(2026, 1, 2),
    }
    built = FdPrice.from_dict(data)
    assert built.to_bson() == FdPrice(**data).to_bson()
    assert built.to_bson() == {
        "amount": Decimal128("1.50"),
        "day": datetime.datetime(2026, 1, 2),
    }


def test_an_embedded_subclass_keeps_its_class_in_the_stored_form() -> None:
    built = FdSub.from_dict({"name": "a", "rank": 2})
    assert (
        built.to_bson()
        == FdSub(name="a", rank=2).to_bson()
        == {
            "_cls": "FdSub",
            "name": "a",
            "rank": 2,
        }
    )


def test_the_kept_dump_is_not_the_callers_dict() -> None:
    data = {"a": "x", "b": "y", "c": "z"}
    words = FdWords.from_dict(data)
    data["a"] = "changed by the caller"
    assert words.a == "x" and words.to_bson()["a"] == "x"


def test_a_document_from_nested_json_is_stored_as_the_constructor_would_store_it(
    mongomock_db: Any,
) -> None:
    payload = {
        "name": "pen",
        "qty": 2,
        "origin": {"x": 1, "y": 2, "label": "o"},
        "path": [{"x": 3}],
        "words": {"a": "x", "b": "y", "c": "z"},
    }
    with uow.Session(mongomock_db) as s:
        order = FdOrder.from_dict(payload)
        s.add(order)
    built = FdOrder(
        id=order.id,
        name="pen",
        qty=2,
        origin=FdPoint(x=1, y=2, label="o"),
        path=[FdPoint(x=3)],
        words=FdWords(a="x", b="y", c="z"),
    )
    assert mongomock_db["fd_orders"].find_one({"_id": order.id}) == built.to_bson()
    with uow.Session(mongomock_db) as s:
        loaded = s.get(FdOrder, order.id)
        assert loaded is not None and loaded.words == FdWords(a="x", b="y", c="z")
        loaded.words.b = "changed"
    assert mongomock_db["fd_orders"].find_one({"_id": order.id})["words"]["b"] == "changed"


# ------------------------------------------------------------------------ property


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.lists(st.text(max_size=2), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["x", "y", "label", "z"]), _values, min_size=0, max_size=4))
def test_from_dict_agrees_with_the_constructor_on_any_input(data: dict[str, Any]) -> None:
    outcomes = []
    for build in (FdPoint.from_dict, lambda d: FdPoint(**d)):
        try:
            outcomes.append(("built", build(data)))
        except uow.ValidationError as error:
            outcomes.append(("invalid", str(error)))
        except TypeError:
            outcomes.append(("type error", None))
    (kind, got), (expected_kind, expected) = outcomes
    assert kind == expected_kind, (data, outcomes)
    if kind == "built":
        assert _same(got, expected)
    elif kind == "invalid":
        assert got == expected
