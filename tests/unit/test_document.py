"""Document and Embedded classes: ids, collections, equality, hierarchies, stored forms."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import inspect
import pickle
import typing
import uuid
from typing import Any, ClassVar

import attrs
import bson
import pytest

import uow
from uow import Document, Embedded, Index, field
from uow.document import collection_name


class Address(Embedded):
    city: str
    zip: str | None = None


class Line(Embedded):
    sku: str
    qty: int = 1


class Customer(Document):
    __collection__ = "customers"
    name: str
    address: Address | None = None
    lines: list[Line] = field(factory=list)
    by_tag: dict[str, Line] = field(factory=dict)
    tags: list[str] = field(factory=list)
    score: int = 0


# --------------------------------------------------------------------- ids


def test_a_new_document_gets_a_client_side_object_id() -> None:
    first, second = Customer(name="a"), Customer(name="b")
    assert isinstance(first.id, bson.ObjectId)
    assert first.id != second.id
    assert first.to_bson()["_id"] == first.id
    assert "id" not in first.to_bson()


def test_an_id_can_be_given() -> None:
    oid = bson.ObjectId()
    assert Customer(name="a", id=oid).id == oid
    with pytest.raises(uow.ValidationError, match=r"Customer\.id: expected ObjectId"):
        Customer(name="a", id=str(oid))


def test_a_class_can_declare_another_id_type() -> None:
    class Sku(Document):
        id: str
        price: int = 0

    class Ticket(Document):
        id: uuid.UUID = field(factory=uuid.uuid4)

    sku = Sku(id="A-1")
    assert sku.to_bson() == {"_id": "A-1", "price": 0}
    assert Sku.from_bson({"_id": "A-1", "price": 3}).id == "A-1"
    with pytest.raises(uow.ValidationError, match=r"Sku\.id: expected str"):
        Sku(id=1)
    with pytest.raises(TypeError, match="id"):
        Sku()  # type: ignore[call-arg]
    ticket = Ticket()
    assert isinstance(ticket.id, uuid.UUID)
    stored = ticket.to_bson()["_id"]
    assert isinstance(stored, bson.Binary) and stored.as_uuid() == ticket.id
    assert Ticket.from_bson(ticket.to_bson()).id == ticket.id


def test_embedded_documents_have_no_id() -> None:
    assert "id" not in attrs.fields_dict(Address)
    assert Address(city="x").to_bson() == {"city": "x", "zip": None}


# -------------------------------------------------------------- collections


@pytest.mark.parametrize(
    ("class_name", "collection"),
    [
        ("User", "user"),
        ("OrderLine", "order_line"),
        ("HTTPLog", "http_log"),
        ("APIKeyV2", "api_key_v2"),
        ("Item2Tag", "item2_tag"),
        ("A", "a"),
    ],
)
def test_default_collection_is_snake_case(class_name: str, collection: str) -> None:
    assert collection_name(class_name) == collection
    cls = type(class_name, (Document,), {"__annotations__": {}})
    assert cls._uow_meta.collection == collection


def test_collection_can_be_named() -> None:
    assert Customer._uow_meta.collection == "customers"


def test_abstract_bases_have_no_collection_and_each_subclass_starts_one() -> None:
    class Timestamped(Document):
        __abstract__ = True
        created: dt.datetime = field(factory=dt.datetime.now)

    class Invoice(Timestamped):
        total: int = 0

    class Receipt(Timestamped):
        pass

    assert Timestamped._uow_meta.collection is None
    assert Invoice._uow_meta.collection == "invoice"
    assert Receipt._uow_meta.collection == "receipt"
    assert "_cls" not in Invoice(total=1).to_bson()
    assert "created" in Invoice().to_bson()


def test_shard_key() -> None:
    class Tenanted(Document):
        __shard_key__ = ("tenant",)
        tenant: str = ""

    assert Tenanted._uow_meta.shard_key == ("tenant",)
    with pytest.raises(uow.DefinitionError, match="__shard_key__ names 'nope'"):

        class BadShard(Document):
            __shard_key__ = ("nope",)


# ---------------------------------------------------------------- equality


def test_documents_compare_and_hash_by_identity() -> None:
    oid = bson.ObjectId()
    first, second = Customer(name="a", id=oid), Customer(name="a", id=oid)
    same = first
    assert first == same
    assert first != second
    assert hash(first) == hash(first) and hash(first) != hash(second)
    assert len({first, second, first}) == 2
    assert Customer.from_bson(first.to_bson()) != first


def test_embedded_documents_compare_by_value() -> None:
    assert Address(city="Oslo") == Address(city="Oslo")
    assert Address(city="Oslo") != Address(city="Oslo", zip="0150")
    assert Address(city="Oslo") != Line(sku="Oslo")
    assert Customer(name="a", address=Address(city="x")).address == Address(city="x")


def test_embedded_equality_ignores_unknown_stored_keys() -> None:
    assert Address.from_bson({"city": "x", "extra": 1}) == Address(city="x")


def test_embedded_values_are_not_hashable_so_they_cannot_be_set_elements() -> None:
    with pytest.raises(TypeError):
        hash(Address(city="x"))
    with pytest.raises(uow.DefinitionError, match="cannot be hashed into a set"):

        class Places(Document):
            places: set[Address]


def test_embedded_copy_is_equal_and_independent() -> None:
    line = Line(sku="a")
    clone = copy.deepcopy(line)
    assert clone == line and clone is not line
    clone.qty = 5
    assert line.qty == 1


# ---------------------------------------------------- assignment and repr


def test_embedded_fields_are_validated_on_assignment() -> None:
    address = Address(city="Oslo")
    with pytest.raises(uow.ValidationError, match=r"^Address\.city: expected str, got int \(5\)"):
        address.city = 5  # type: ignore[assignment]
    assert address.city == "Oslo"


def test_in_place_changes_inside_an_embedded_value_are_checked_when_it_is_assigned() -> None:
    line = Line(sku="a")
    customer = Customer(name="c")
    customer.by_tag = {"x": line}
    line_list: list[Any] = customer.tags
    line_list.append(3)  # in place: no assignment to see it
    with pytest.raises(uow.ValidationError, match=r"Customer\.tags\[0\]: expected str"):
        customer.tags = line_list


def test_wrong_value_inside_an_embedded_value_is_named_by_its_path() -> None:
    class Tagged(Embedded):
        tags: list[str] = field(factory=list)

    class Holder(Document):
        items: list[Tagged] = field(factory=list)

    bad = Tagged()
    bad.tags.append(1)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError, match=r"^Holder\.items\[1\]\.tags\[0\]: expected str"):
        Holder(items=[Tagged(), bad])


def test_non_field_attributes_are_refused() -> None:
    customer = Customer(name="a")
    with pytest.raises(AttributeError):
        customer.nickname = "x"  # type: ignore[attr-defined]


def test_class_attributes_cannot_be_assigned() -> None:
    with pytest.raises(AttributeError, match="set it on an instance"):
        Customer.name = "x"  # type: ignore[assignment]


def test_repr_names_the_fields() -> None:
    assert repr(Address(city="Oslo")) == "Address(city='Oslo', zip=None)"


def test_reserved_names() -> None:
    with pytest.raises(uow.DefinitionError, match="reserved"):
        type("Reserved", (Document,), {"__annotations__": {"_uow_x": int}})


def test_class_variables_are_not_fields() -> None:
    class WithConstant(Document):
        LIMIT: ClassVar[int] = 10
        n: int = 0

    assert "LIMIT" not in attrs.fields_dict(WithConstant)
    assert WithConstant.LIMIT == 10
    assert WithConstant().to_bson().keys() == {"_id", "n"}


# ---------------------------------------------------- unsupported annotations


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (tuple[int, int], "not supported"),
        (typing.Any, "not supported"),
        (object, "not supported"),
        (complex, "not supported"),
        (type(None), "not supported"),
        (typing.Literal["a"], "not supported"),
        (int | str, "is a union"),
        (typing.Union[int, str, None], "is a union"),  # noqa: UP007 - the spelling under test
        (list, "bare list"),
        (dict, "bare dict"),
        (set, "bare set"),
        (dict[int, str], "dict keys must be str"),
        (list[typing.Any], "not supported"),
        (dict[str, tuple[int]], "not supported"),
        (set[list[int]], "cannot be hashed into a set"),
        (set[dict[str, int]], "cannot be hashed into a set"),
        (Customer, "not supported"),  # a Document is not a nested value: use Ref
    ],
)
def test_unsupported_annotations_are_refused(annotation: Any, message: str) -> None:
    with pytest.raises(uow.DefinitionError, match=message) as info:
        type("Unsupported", (Document,), {"__annotations__": {"x": annotation}})
    assert "Unsupported.x" in str(info.value)
    with pytest.raises(uow.DefinitionError):
        type("UnsupportedEmbedded", (Embedded,), {"__annotations__": {"x": annotation}})


def test_unresolvable_string_annotation() -> None:
    with pytest.raises(uow.DefinitionError, match="cannot resolve the annotation 'list\\[Nope\\]'"):
        type("Unresolved", (Document,), {"__annotations__": {"x": "list[Nope]"}})


def test_string_annotations_are_resolved() -> None:
    cls = type("Stringly", (Document,), {"__annotations__": {"x": "list[int]", "a": "Address"}})
    assert cls._uow_meta.by_name["x"].spec.name == "list[int]"
    assert cls._uow_meta.by_name["a"].spec.name == "Address"


# ------------------------------------------------------------- missing keys


def test_missing_keys_load_as_defaults() -> None:
    oid = bson.ObjectId()
    customer = Customer.from_bson({"_id": oid, "name": "ann"})
    assert customer.id == oid
    assert customer.address is None and customer.lines == [] and customer.score == 0
    other = Customer.from_bson({"_id": oid, "name": "bob"})
    assert customer.lines is not other.lines  # factories run per load
    assert Address.from_bson({"city": "x"}).zip is None


def test_a_missing_required_field_reads_as_not_loaded() -> None:
    customer = Customer.from_bson({"_id": bson.ObjectId()})
    with pytest.raises(uow.FieldNotLoaded, match=r"Customer\.name was not loaded"):
        _ = customer.name
    with pytest.raises(AttributeError):
        _ = customer.name
    assert "name=<not loaded>" in repr(customer)
    assert "name" not in customer.to_bson()  # never written as something it was not
    customer.name = "set later"
    assert customer.name == "set later"
    assert customer.to_bson()["name"] == "set later"


class Shapes(Document):
    n: int = 0
    strs: list[str] = field(factory=list)
    ints: set[int] = field(factory=set)
    counts: dict[str, int] = field(factory=dict)
    day: dt.date | None = None
    key: uuid.UUID | None = None
    price: decimal.Decimal | None = None
    address: Address | None = None
    lines: list[Line] = field(factory=list)


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("n", "five"),
        ("strs", "abc"),  # a str is iterable: it must not become ["a", "b", "c"]
        ("strs", {"a": 1}),
        ("ints", "abc"),
        ("ints", [[1], [2]]),  # unhashable elements
        ("counts", ["a", 1]),
        ("day", "2020-01-01"),
        ("key", "0f0e"),
        ("price", 1.5),
        ("address", "Main street 1"),
        ("lines", [{"sku": "a", "qty": 1}, "legacy", 3]),
    ],
)
def test_stored_values_of_another_shape_are_loaded_and_written_back_as_they_were(
    name: str, stored: Any
) -> None:
    # Stored data is trusted, not re-validated on load; whatever it is, a load
    # followed by a save never changes or drops it.
    raw = {"_id": bson.ObjectId(), **{k: v for k, v in Shapes().to_bson().items() if k != "_id"}}
    raw[name] = stored
    loaded = Shapes.from_bson(raw)
    assert loaded.to_bson() == raw
    assert bson.decode(bson.encode(loaded.to_bson())) == bson.decode(bson.encode(raw))


def test_copy_and_pickle_keep_unknown_keys_and_are_independent() -> None:
    raw = {
        "_id": bson.ObjectId(),
        "name": "ann",
        "address": {"city": "Oslo", "zip": None, "floor": 3},
        "lines": [],
        "by_tag": {},
        "tags": ["a"],
        "score": 1,
        "legacy": {"x": 1},
    }
    customer = Customer.from_bson(raw)
    for clone in (
        copy.copy(customer),
        copy.deepcopy(customer),
        pickle.loads(pickle.dumps(customer)),
    ):
        assert clone is not customer
        assert clone.to_bson() == raw
        clone.score = 2  # a copy is a working document
        assert customer.score == 1
    deep = copy.deepcopy(customer)
    deep.tags.append("b")
    assert customer.tags == ["a"]
    line = Line(sku="a")
    assert pickle.loads(pickle.dumps(line)) == line


def test_copy_of_a_partly_loaded_document_keeps_what_is_not_loaded() -> None:
    customer = Customer.from_bson({"_id": 1, "score": 3})
    clone = copy.deepcopy(customer)
    with pytest.raises(uow.FieldNotLoaded):
        _ = clone.name
    assert clone.to_bson() == customer.to_bson()


# ------------------------------------------------------------- unknown keys


def test_unknown_keys_are_kept_at_every_depth_and_written_back() -> None:
    raw = {
        "_id": bson.ObjectId(),
        "name": "ann",
        "address": {"city": "Oslo", "zip": None, "floor": 3},
        "lines": [
            {"sku": "a", "qty": 1, "note": {"gift": True}},
            {"sku": "b", "qty": 2},
        ],
        "by_tag": {"x": {"sku": "c", "qty": 1, "legacy": [1, 2]}},
        "tags": [],
        "score": 0,
        "legacy_flag": True,
        "history": [{"at": dt.datetime(2020, 1, 1)}],
    }
    customer = Customer.from_bson(raw)
    assert customer.to_bson() == raw
    encoded = bson.encode(raw)
    assert bson.encode(Customer.from_bson(bson.decode(encoded)).to_bson()) == encoded


def test_unknown_keys_survive_changes_to_known_fields() -> None:
    raw = {"_id": bson.ObjectId(), "name": "ann", "address": {"city": "Oslo", "floor": 3}, "x": 1}
    customer = Customer.from_bson(raw)
    customer.name = "bob"
    assert customer.address is not None
    customer.address.city = "Bergen"
    stored = customer.to_bson()
    assert stored["x"] == 1
    assert stored["name"] == "bob"
    assert stored["address"] == {"city": "Bergen", "zip": None, "floor": 3}


def test_new_documents_have_no_unknown_keys() -> None:
    assert set(Customer(name="a").to_bson()) == {
        "_id",
        "name",
        "address",
        "lines",
        "by_tag",
        "tags",
        "score",
    }


# ----------------------------------------------------------------- subclasses


class Animal(Document):
    name: str


class Dog(Animal):
    good: bool = True


class Puppy(Dog):
    weeks: int = 8


class Cat(Animal):
    lives: int = 9


def test_subclasses_share_the_collection_and_carry_cls() -> None:
    for cls in (Animal, Dog, Puppy, Cat):
        assert cls._uow_meta.collection == "animal"
        assert cls._uow_meta.root is Animal
    assert "_cls" not in Animal(name="a").to_bson()
    dog = Dog(name="rex").to_bson()
    assert dog["_cls"] == "Dog"
    assert list(dog)[:2] == ["_id", "_cls"]
    assert Puppy(name="p").to_bson()["_cls"] == "Puppy"
    assert Cat(name="c").to_bson()["_cls"] == "Cat"


def test_loading_from_the_root_class_gives_the_subclass() -> None:
    for obj in (Dog(name="rex"), Puppy(name="p", weeks=3), Cat(name="tom")):
        loaded = Animal.from_bson(obj.to_bson())
        assert type(loaded) is type(obj)
        assert loaded.to_bson() == obj.to_bson()
    assert type(Dog.from_bson(Puppy(name="p").to_bson())) is Puppy


def test_a_stored_document_without_cls_is_the_root_class() -> None:
    loaded = Animal.from_bson({"_id": bson.ObjectId(), "name": "x"})
    assert type(loaded) is Animal
    assert "_cls" not in loaded.to_bson()


def test_an_unknown_cls_is_kept() -> None:
    raw = {"_id": bson.ObjectId(), "_cls": "Parrot", "name": "polly", "words": 12}
    loaded = Animal.from_bson(raw)
    assert type(loaded) is Animal
    assert loaded.to_bson() == raw


def test_hierarchy_names() -> None:
    assert set(Animal._uow_meta.hierarchy_names()) == {"Animal", "Dog", "Puppy", "Cat"}
    assert set(Dog._uow_meta.hierarchy_names()) == {"Dog", "Puppy"}


def test_a_subclass_with_its_own_collection_starts_a_hierarchy() -> None:
    class Archived(Animal):
        __collection__ = "archive"

    assert Archived._uow_meta.collection == "archive"
    assert Archived._uow_meta.root is Archived
    assert "_cls" not in Archived(name="old").to_bson()


def test_embedded_subclasses_are_told_apart_too() -> None:
    class Shape(Embedded):
        color: str = "red"

    class Circle(Shape):
        radius: float = 1.0

    class Drawing(Document):
        shapes: list[Shape] = field(factory=list)

    drawing = Drawing(shapes=[Shape(), Circle(radius=2.0)])
    stored = drawing.to_bson()
    assert stored["shapes"] == [{"color": "red"}, {"_cls": "Circle", "color": "red", "radius": 2.0}]
    loaded = Drawing.from_bson(stored)
    assert [type(shape) for shape in loaded.shapes] == [Shape, Circle]
    assert loaded.shapes == drawing.shapes


# ------------------------------------------------------------------ indexes


def test_index_key_forms() -> None:
    assert Index("email").keys == (("email", 1),)
    assert Index("-created").keys == (("created", -1),)
    assert Index(("location", "2dsphere")).keys == (("location", "2dsphere"),)
    assert Index("a", "-b").keys == (("a", 1), ("b", -1))
    assert Index(Customer.name).keys == (("name", 1),)
    assert Index(Customer.score.desc()).keys == (("score", -1),)
    assert Index(Customer.address.city).keys == (("address.city", 1),)


def test_index_options() -> None:
    index = Index(
        "a",
        unique=True,
        sparse=True,
        name="a_idx",
        expire_after_seconds=60,
        partial_filter_expression={"a": {"$exists": True}},
        collation={"locale": "en"},
    )
    assert index.options == {
        "unique": True,
        "sparse": True,
        "name": "a_idx",
        "expireAfterSeconds": 60,
        "partialFilterExpression": {"a": {"$exists": True}},
        "collation": {"locale": "en"},
    }


def test_index_errors() -> None:
    with pytest.raises(uow.DefinitionError, match="at least one key"):
        Index()
    with pytest.raises(uow.DefinitionError, match="give a field name or a query field"):
        Index(3)
    with pytest.raises(uow.DefinitionError, match=r"use uow\.Index"):

        class BadIndexes(Document):
            __indexes__: ClassVar[list[Any]] = ["email"]


def test_declared_indexes_map_to_stored_names_and_are_inherited() -> None:
    class Shop(Document):
        __indexes__: ClassVar[list[Index]] = [Index("title", "-city"), Index("address.city")]
        title: str = field(default="", db_name="t")
        city: str = ""
        address: Address | None = field(default=None, db_name="addr")

    class Outlet(Shop):
        pass

    assert [index.stored_keys(Shop) for index in Shop._uow_meta.indexes] == [
        [("t", 1), ("city", -1)],
        [("addr.city", 1)],
    ]
    assert Outlet._uow_meta.indexes == Shop._uow_meta.indexes


# ------------------------------------------------------------------ BSON api


def test_embedded_to_and_from_bson() -> None:
    address = Address(city="Oslo", zip="0150")
    assert address.to_bson() == {"city": "Oslo", "zip": "0150"}
    assert Address.from_bson(address.to_bson()) == address


def test_to_bson_returns_a_fresh_dict() -> None:
    customer = Customer(name="a")
    first = customer.to_bson()
    first["name"] = "changed"
    assert customer.to_bson()["name"] == "a"


# ------------------------------------------------------------ many fields: **kwargs __init__

_WIDE_FIELDS = {f"f{i}": (str if i % 2 else int) for i in range(40)}
Wide = type(
    "Wide",
    (uow.Document,),
    {"__collection__": "wide", "__annotations__": {**_WIDE_FIELDS, "note": str}, "note": "n"},
)


def _wide_values() -> dict[str, Any]:
    # Keys made at run time, as json.load makes them (not interned like a literal's).
    return {"".join(["f", str(i)]): (str(i) if i % 2 else i) for i in range(40)}


def test_a_class_with_many_fields_is_built_from_keywords_like_any_other() -> None:
    values = _wide_values()
    wide = Wide(**values)
    assert [getattr(wide, name) for name in values] == list(values.values())
    assert wide.note == "n"
    assert Wide(**values, note="x").note == "x"
    assert wide.to_bson()["f39"] == "39"


def test_a_class_with_many_fields_refuses_what_python_would_refuse() -> None:
    values = _wide_values()
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'nope'"):
        Wide(**values, nope=1)
    del values["f3"], values["f7"]
    with pytest.raises(TypeError, match=r"missing 2 required keyword-only arguments: 'f3', 'f7'"):
        Wide(**values)
    with pytest.raises(TypeError):
        Wide(1)  # type: ignore[misc]
    values = _wide_values()
    values["f0"] = "not an int"
    with pytest.raises(uow.ValidationError, match="f0"):
        Wide(**values)


def test_a_class_with_many_fields_shows_its_keyword_signature() -> None:
    parameters = inspect.signature(Wide).parameters
    assert list(parameters)[:3] == ["id", "f0", "f1"]
    assert parameters["f0"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["f0"].default is inspect.Parameter.empty
    assert parameters["note"].default == "n"
