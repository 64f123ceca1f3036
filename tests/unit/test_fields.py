"""uow.field(): defaults, factories, db_name, validators, indexes, operators, versions."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import attrs
import pytest

import uow
from uow import Document, Embedded, Index, field
from uow.fields import METADATA_KEY, FieldOptions


class Account(Document):
    owner: str = field(db_name="o", index=True)
    email: str = field(default="", unique=True)
    visits: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list, on_update="$push")
    seen: dt.datetime | None = field(default=None, on_update="$max")
    secret: str = field(default="", repr=False)
    version: int = field(version=True)


# ------------------------------------------------------------ attrs metadata


def test_documents_are_attrs_classes_with_uow_options_in_metadata() -> None:
    assert attrs.has(Account)
    names = [a.name for a in attrs.fields(Account)]
    assert names == ["id", "owner", "email", "visits", "tags", "seen", "secret", "version"]
    options = attrs.fields_dict(Account)["owner"].metadata[METADATA_KEY]
    assert isinstance(options, FieldOptions)
    assert options.db_name == "o" and options.index is True
    assert attrs.fields_dict(Account)["visits"].metadata[METADATA_KEY].on_update == "$inc"


def test_plain_annotations_and_attrs_fields_get_default_options() -> None:
    class Plain(Document):
        a: int = 1
        b: int = attrs.field(default=2)

    for name in ("a", "b"):
        assert attrs.fields_dict(Plain)[name].metadata[METADATA_KEY] == FieldOptions()
    assert Plain().to_bson()["b"] == 2


# ----------------------------------------------------------- defaults


def test_defaults_and_factories() -> None:
    first, second = Account(owner="a"), Account(owner="b")
    assert first.visits == 0 and first.email == "" and first.seen is None
    assert first.tags == [] and first.tags is not second.tags  # one list each
    assert first.version == 0  # a version field starts at 0


def test_a_required_field_must_be_given() -> None:
    with pytest.raises(TypeError, match="owner"):
        Account()  # type: ignore[call-arg]


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Account("ann")  # type: ignore[misc]


def test_factory_taking_self() -> None:
    class Slug(Document):
        title: str
        slug: str = attrs.field(default=attrs.Factory(lambda self: self.title.lower(), True))

    assert Slug(title="Hello").slug == "hello"


def test_default_and_factory_together_are_refused() -> None:
    with pytest.raises(uow.DefinitionError, match="either default= or factory="):
        field(default=1, factory=int)


@pytest.mark.parametrize("default", [[], {}, set()])
def test_mutable_defaults_are_refused(default: Any) -> None:
    with pytest.raises(uow.DefinitionError, match=f"factory={type(default).__name__}"):
        field(default=default)
    with pytest.raises(uow.DefinitionError, match="mutable default"):
        type("Shared", (Document,), {"__annotations__": {"x": list[int]}, "x": default})


def test_default_values_are_validated_on_construction() -> None:
    class WrongDefault(Document):
        n: int = field(default="zero")

    with pytest.raises(uow.ValidationError, match=r"WrongDefault\.n: expected int"):
        WrongDefault()


def test_repr_false_hides_the_field() -> None:
    text = repr(Account(owner="ann", secret="hunter2"))
    assert "hunter2" not in text and "secret" not in text
    assert text.startswith("Account(id=ObjectId(") and "owner='ann'" in text


# -------------------------------------------------------------- db_name


def test_db_name_is_the_stored_key() -> None:
    account = Account(owner="ann")
    stored = account.to_bson()
    assert stored["o"] == "ann" and "owner" not in stored
    assert Account.from_bson(stored).owner == "ann"
    meta = Account._uow_meta
    assert meta.by_name["owner"].key == "o"
    assert meta.by_key["o"].name == "owner"


def test_db_name_inside_embedded_documents() -> None:
    class Geo(Embedded):
        latitude: float = field(db_name="lat")

    class Spot(Document):
        geo: Geo

    spot = Spot(geo=Geo(latitude=1.5))
    assert spot.to_bson()["geo"] == {"lat": 1.5}
    assert Spot.from_bson(spot.to_bson()).geo == Geo(latitude=1.5)


@pytest.mark.parametrize("stored", ["$set", "$", "a.b", ".a", "a.", "_id", "_cls", "a\x00"])
def test_stored_names_mongodb_would_misread_are_refused(stored: str) -> None:
    with pytest.raises(uow.DefinitionError, match=r"stored name .* cannot be used") as info:

        class Bad(Document):
            x: int = field(default=0, db_name=stored)

    assert "Bad.x" in str(info.value)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("name", ["$where", "a.b"])
def test_attribute_names_mongodb_would_misread_are_refused(name: str) -> None:
    with pytest.raises(uow.DefinitionError, match="cannot be used"):
        type("Odd", (Document,), {"__annotations__": {name: int}})


def test_embedded_stored_names_are_checked_too() -> None:
    with pytest.raises(uow.DefinitionError):

        class BadEmbedded(Embedded):
            x: int = field(default=0, db_name="$x")


def test_two_fields_with_one_stored_name_are_refused() -> None:
    with pytest.raises(uow.DefinitionError, match=r"'x' is already the stored name"):

        class Clash(Document):
            a: int = field(default=1, db_name="x")
            x: int = 2


# ------------------------------------------------------------ validators


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0")


def _short(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if len(value) > 3:
        raise TypeError("too long")


class Counter(Document):
    n: int = field(default=0, validator=_non_negative)
    code: str = field(default="", validator=_short)
    limit: int = attrs.field(default=1, validator=attrs.validators.gt(0))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("n", -1, "n must be >= 0"), ("code", "long!", "too long"), ("limit", 0, "must be > 0")],
)
def test_user_validators_raise_validation_error(name: str, value: Any, message: str) -> None:
    with pytest.raises(uow.ValidationError, match=rf"^Counter\.{name}: .*{message}") as info:
        Counter(**{name: value})
    assert info.value.document_class == "Counter" and info.value.field == name
    assert isinstance(info.value.__cause__, (ValueError, TypeError))
    counter = Counter()
    before = getattr(counter, name)
    with pytest.raises(uow.ValidationError, match=message):
        setattr(counter, name, value)
    assert getattr(counter, name) == before


def test_user_validator_sees_the_instance_and_runs_after_the_type_check() -> None:
    seen: list[tuple[Any, str, Any]] = []

    def record(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        seen.append((instance, attribute.name, value))

    class Watched(Document):
        n: int = field(default=0, validator=record)

    watched = Watched(n=5)
    watched.n = 6
    assert seen == [(watched, "n", 5), (watched, "n", 6)]
    with pytest.raises(uow.ValidationError, match="expected int"):
        watched.n = "7"  # type: ignore[assignment]
    assert len(seen) == 2  # the type check refused it first


def test_validation_error_from_a_validator_passes_through() -> None:
    def strict(instance: Any, attribute: Any, value: Any) -> None:
        raise uow.ValidationError("custom", field="x")

    class Strict(Document):
        x: int = field(default=0, validator=strict)

    with pytest.raises(uow.ValidationError, match=r"^custom$"):
        Strict()


def test_other_exceptions_from_a_validator_are_not_hidden() -> None:
    def broken(instance: Any, attribute: Any, value: Any) -> None:
        raise KeyError("bug")

    class Broken(Document):
        x: int = field(default=0, validator=broken)

    with pytest.raises(KeyError):
        Broken()


# --------------------------------------------------------------- indexes


def test_index_and_unique_shortcuts_declare_indexes() -> None:
    indexes = Account._uow_meta.indexes
    assert Index("owner") in indexes
    assert Index("email", unique=True) in indexes
    by_keys = {index.keys: index.options for index in indexes}
    assert by_keys[(("owner", 1),)] == {}
    assert by_keys[(("email", 1),)] == {"unique": True}
    owner_index = next(i for i in indexes if i.keys == (("owner", 1),))
    assert owner_index.stored_keys(Account) == [("o", 1)]  # db_name


def test_index_shortcuts_are_not_repeated_by_subclasses() -> None:
    class Premium(Account):
        level: int = field(default=0, index=True)

    keys = [index.keys for index in Premium._uow_meta.indexes]
    assert keys.count((("owner", 1),)) == 1
    assert (("level", 1),) in keys


# -------------------------------------------------------------- on_update


@pytest.mark.parametrize(
    ("annotation", "operator"),
    [
        (int, "$inc"),
        (float, "$inc"),
        (decimal.Decimal, "$inc"),
        (int | None, "$inc"),
        (int, "$max"),
        (dt.datetime, "$min"),
        (list[int], "$push"),
        (list[int], "$addToSet"),
        (set[str], "$addToSet"),
        (dt.datetime, "$currentDate"),
        (dt.date, "$currentDate"),
        (dict[str, int], "$set"),
    ],
)
def test_operators_that_fit_their_field(annotation: Any, operator: str) -> None:
    cls = type(
        "Fits",
        (Document,),
        {"__annotations__": {"x": annotation}, "x": field(on_update=operator)},
    )
    assert cls._uow_meta.by_name["x"].on_update == operator
    expected = uow.operators.OPERATORS[operator]
    if annotation == set[str]:
        # A set's additions go anywhere: its stored order means nothing.
        expected = uow.operators.add_to_set_unordered
    assert cls._uow_meta.by_name["x"].operator is expected


@pytest.mark.parametrize(
    ("annotation", "operator"),
    [
        (str, "$inc"),
        (bool, "$inc"),
        (list[int], "$inc"),
        (list[int], "$max"),
        (dict[str, int], "$min"),
        (set[int], "$push"),
        (int, "$push"),
        (str, "$addToSet"),
        (str, "$currentDate"),
    ],
)
def test_operators_that_do_not_fit_are_refused(annotation: Any, operator: str) -> None:
    with pytest.raises(uow.DefinitionError, match=rf"on_update='\{operator}' cannot persist"):
        type(
            "Misfit",
            (Document,),
            {"__annotations__": {"x": annotation}, "x": field(on_update=operator)},
        )


@pytest.mark.parametrize("operator", ["$rename", "$pull", "inc", "$setOnInsert"])
def test_unknown_operators_are_refused(operator: str) -> None:
    with pytest.raises(uow.DefinitionError, match="is not an operator uow can persist"):
        field(on_update=operator)


# -------------------------------------------------------------- versions


def test_version_field() -> None:
    meta = Account._uow_meta
    assert meta.version_field is not None and meta.version_field.name == "version"
    assert Account(owner="a").version == 0


@pytest.mark.parametrize(
    ("annotation", "options"),
    [(str, {"version": True}), (int, {"version": True, "on_update": "$inc"})],
)
def test_version_field_must_be_a_plain_int(annotation: Any, options: dict[str, Any]) -> None:
    with pytest.raises(uow.DefinitionError, match="version=True field is an int"):
        type(
            "Versioned", (Document,), {"__annotations__": {"v": annotation}, "v": field(**options)}
        )


def test_only_one_version_field() -> None:
    with pytest.raises(uow.DefinitionError, match="only one field can have version=True"):

        class TwoVersions(Document):
            a: int = field(version=True)
            b: int = field(version=True)
