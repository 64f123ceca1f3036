"""Query fields, expressions and Django-style lookups compiled to filter dicts (no I/O)."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

import bson
import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128

import uow
from uow import Document, Embedded, Ref, field
from uow.query import LOOKUPS, Expr, QueryField, SortKey, compile_filter, compile_sort, lookup


class Geo(Embedded):
    lat: float = 0.0
    lng: float = 0.0


class Address(Embedded):
    city: str
    zip: str | None = field(default=None, db_name="postcode")
    geo: Geo | None = None


class Team(Document):
    name: str = ""


class Member(Document):
    name: str
    email: str = field(default="", db_name="mail")
    age: int = 0
    score: float = 0.0
    active: bool = True
    visits: int = 0
    balance: decimal.Decimal = decimal.Decimal("0")
    born: dt.date | None = None
    seen: dt.datetime | None = None
    token: uuid.UUID | None = None
    avatar: bytes = b""
    tags: list[str] = field(factory=list)
    roles: set[str] = field(factory=set)
    prefs: dict[str, int] = field(factory=dict)
    address: Address | None = field(default=None, db_name="addr")
    past: list[Address] = field(factory=list)
    team: Ref[Team] | None = None
    teams: list[Ref[Team]] = field(factory=list)


META = Member._uow_meta


def compiled(*exprs: Expr, **lookups: Any) -> dict[str, Any]:
    return compile_filter(META, *exprs, **lookups)


# ----------------------------------------------------------- query fields


def test_class_attributes_are_query_fields() -> None:
    assert isinstance(Member.name, QueryField)
    assert Member.email.stored_path == "mail"
    assert Member.email.attribute_path == "email"
    assert Member.address.city.stored_path == "addr.city"
    assert Member.address.zip.stored_path == "addr.postcode"
    assert Member.address.geo.lat.stored_path == "addr.geo.lat"
    assert Member.past.city.stored_path == "past.city"  # elements of a list of documents
    assert Member.prefs["dark"].stored_path == "prefs.dark"
    assert Member.id.stored_path == "_id"


def test_instances_read_values_not_query_fields() -> None:
    member = Member(name="ann")
    assert member.name == "ann"


def test_unknown_attributes_of_query_fields() -> None:
    with pytest.raises(AttributeError, match="has no field 'town'"):
        _ = Member.address.town
    with pytest.raises(AttributeError, match="not an embedded document"):
        _ = Member.name.first
    with pytest.raises(uow.ValidationError, match="only dict fields take keys"):
        _ = Member.name["x"]
    with pytest.raises(uow.ValidationError, match="cannot be stored"):
        _ = Member.prefs["$gt"]


# ------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (Member.name == "ann", {"name": "ann"}),
        (Member.name != "ann", {"name": {"$ne": "ann"}}),
        (Member.visits > 10, {"visits": {"$gt": 10}}),
        (Member.visits >= 10, {"visits": {"$gte": 10}}),
        (Member.visits < 10, {"visits": {"$lt": 10}}),
        (Member.visits <= 10, {"visits": {"$lte": 10}}),
        (Member.score > 1, {"score": {"$gt": 1}}),
        (Member.email == "a@x.io", {"mail": "a@x.io"}),
        (Member.name.in_(["a", "b"]), {"name": {"$in": ["a", "b"]}}),
        (Member.name.in_(("a",)), {"name": {"$in": ["a"]}}),
        (Member.name.nin(["a"]), {"name": {"$nin": ["a"]}}),
        (Member.email.exists(), {"mail": {"$exists": True}}),
        (Member.email.exists(False), {"mail": {"$exists": False}}),
        (Member.tags.contains("vip"), {"tags": "vip"}),
        (Member.roles.contains("admin"), {"roles": "admin"}),
        (Member.name.contains("a.b"), {"name": {"$regex": r"a\.b"}}),
        (Member.name.startswith("a"), {"name": {"$regex": "^a"}}),
        (Member.name.startswith("a.*("), {"name": {"$regex": r"^a\.\*\("}}),
        (Member.name.icontains("Ann+"), {"name": {"$regex": r"Ann\+", "$options": "i"}}),
        (Member.address.city == "Oslo", {"addr.city": "Oslo"}),
        (Member.address.zip == None, {"addr.postcode": None}),  # noqa: E711
        (Member.address.geo.lat > 59.0, {"addr.geo.lat": {"$gt": 59.0}}),
        (Member.past.city == "Rome", {"past.city": "Rome"}),
        (Member.prefs["dark"] == 1, {"prefs.dark": 1}),
        (Member.tags == ["a", "b"], {"tags": ["a", "b"]}),
        (Member.tags == "a", {"tags": "a"}),  # an array field equals one of its elements
        (Member.tags.in_(["a", "b"]), {"tags": {"$in": ["a", "b"]}}),
        (Member.born == None, {"born": None}),  # noqa: E711
    ],
)
def test_expressions(expr: Expr, expected: dict[str, Any]) -> None:
    assert isinstance(expr, Expr)
    assert expr.filter == expected
    assert compiled(expr) == expected


def test_and_or_not() -> None:
    young, named = Member.age < 30, Member.name == "ann"
    assert (young & named).filter == {"$and": [{"age": {"$lt": 30}}, {"name": "ann"}]}
    assert (young | named).filter == {"$or": [{"age": {"$lt": 30}}, {"name": "ann"}]}
    assert (~young).filter == {"$nor": [{"age": {"$lt": 30}}]}
    three = young & named & (Member.active == True)  # noqa: E712
    assert three.filter == {"$and": [{"age": {"$lt": 30}}, {"name": "ann"}, {"active": True}]}
    mixed = (young | named) & ~(Member.visits > 3)
    assert mixed.filter == {
        "$and": [
            {"$or": [{"age": {"$lt": 30}}, {"name": "ann"}]},
            {"$nor": [{"visits": {"$gt": 3}}]},
        ]
    }
    assert (young | named | (Member.age > 90)).filter["$or"][2] == {"age": {"$gt": 90}}


def test_expressions_have_no_truth_value() -> None:
    with pytest.raises(TypeError, match="combine expressions with &"):
        bool(Member.age > 3)
    with pytest.raises(TypeError):
        _ = (Member.age > 3) and (Member.age < 9)


def test_expression_equality_and_repr() -> None:
    assert (Member.age > 3) == Expr({"age": {"$gt": 3}})
    assert (Member.age > 3) != Expr({"age": {"$gt": 4}})
    assert repr(Member.age > 3) == "Expr({'age': {'$gt': 3}})"


def test_comparing_two_fields_is_refused_in_a_filter() -> None:
    same_field = Member.age == Member.age
    assert bool(same_field)  # query fields work as dict keys
    assert {Member.age: 1}[Member.age] == 1
    with pytest.raises(uow.ValidationError, match="comparing two fields"):
        compiled(Member.name == Member.email)
    with pytest.raises(uow.ValidationError, match="comparing two fields"):
        _ = (Member.name == Member.email) & (Member.age > 1)
    with pytest.raises(uow.ValidationError, match="comparing two fields"):
        _ = (Member.age > 1) | (Member.name == Member.email)
    with pytest.raises(uow.ValidationError, match="comparing two fields"):
        _ = ~(Member.name == Member.email)


def test_expressions_combine_only_with_expressions() -> None:
    with pytest.raises(TypeError):
        _ = (Member.age > 1) & {"age": 1}  # type: ignore[operator]


# ------------------------------------------------------------ stored values


def test_values_are_converted_to_their_stored_form() -> None:
    token = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert compiled(Member.balance > decimal.Decimal("1.5")) == {
        "balance": {"$gt": Decimal128("1.5")}
    }
    assert compiled(born=dt.date(2020, 2, 29)) == {"born": dt.datetime(2020, 2, 29)}
    stored = compiled(token=token)["token"]
    assert isinstance(stored, Binary) and stored.subtype == 4 and stored.as_uuid() == token
    assert compiled(roles=["a"]) == {"roles": ["a"]}
    assert compiled(address=Address(city="Oslo")) == {
        "addr": {"city": "Oslo", "postcode": None, "geo": None}
    }
    assert compiled(balance__in=[decimal.Decimal("1")]) == {"balance": {"$in": [Decimal128("1")]}}


def test_refs_compare_by_id() -> None:
    team = Team()
    for value in (team, team.id, Ref(Team, team.id)):
        assert compiled(team=value) == {"team": team.id}
        assert compiled(teams__contains=value) == {"teams": team.id}
    assert compiled(teams=[team]) == {"teams": [team.id]}
    assert compiled(team__in=[team, team.id]) == {"team": {"$in": [team.id, team.id]}}
    assert compiled(team=None) == {"team": None}
    with pytest.raises(uow.ValidationError, match=r"Member\.team"):
        compiled(team="not-an-id")
    with pytest.raises(uow.ValidationError):
        compiled(team=Member(name="x"))


def test_datetime_values() -> None:
    when = dt.datetime(2024, 1, 1, 12)
    assert compiled(seen__gte=when) == {"seen": {"$gte": when}}
    with pytest.raises(uow.ValidationError, match="expected datetime"):
        compiled(seen__gte="2024-01-01")


# ----------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("lookups", "expected"),
    [
        ({"name": "ann"}, {"name": "ann"}),
        ({"age__gt": 3}, {"age": {"$gt": 3}}),
        ({"age__gte": 3}, {"age": {"$gte": 3}}),
        ({"age__lt": 3}, {"age": {"$lt": 3}}),
        ({"age__lte": 3}, {"age": {"$lte": 3}}),
        ({"age__ne": 3}, {"age": {"$ne": 3}}),
        ({"age__in": [1, 2]}, {"age": {"$in": [1, 2]}}),
        ({"age__nin": {1}}, {"age": {"$nin": [1]}}),
        ({"email__exists": True}, {"mail": {"$exists": True}}),
        ({"email__exists": False}, {"mail": {"$exists": False}}),
        ({"tags__contains": "x"}, {"tags": "x"}),
        ({"name__contains": "n"}, {"name": {"$regex": "n"}}),
        ({"name__startswith": "a"}, {"name": {"$regex": "^a"}}),
        ({"name__startswith": "^$."}, {"name": {"$regex": r"^\^\$\."}}),
        ({"name__icontains": "AN"}, {"name": {"$regex": "AN", "$options": "i"}}),
        ({"address__city": "Oslo"}, {"addr.city": "Oslo"}),
        ({"address__zip": "0150"}, {"addr.postcode": "0150"}),
        ({"address__city__startswith": "O"}, {"addr.city": {"$regex": "^O"}}),
        ({"address__geo__lat__lt": 1.0}, {"addr.geo.lat": {"$lt": 1.0}}),
        ({"past__city__in": ["a"]}, {"past.city": {"$in": ["a"]}}),
        ({"prefs__dark": 1}, {"prefs.dark": 1}),
        ({"prefs__dark__gt": 0}, {"prefs.dark": {"$gt": 0}}),
        (
            {"id": bson.ObjectId("0123456789ab0123456789ab")},
            {"_id": bson.ObjectId("0123456789ab0123456789ab")},
        ),
        ({"name": "a", "age__gt": 1}, {"name": "a", "age": {"$gt": 1}}),
        ({"age__gt": 1, "age__lt": 9}, {"$and": [{"age": {"$gt": 1}}, {"age": {"$lt": 9}}]}),
    ],
)
def test_lookups(lookups: dict[str, Any], expected: dict[str, Any]) -> None:
    assert compiled(**lookups) == expected


def test_the_documented_lookups_are_all_there() -> None:
    assert set(LOOKUPS) == {
        "gt",
        "gte",
        "lt",
        "lte",
        "ne",
        "in",
        "nin",
        "exists",
        "contains",
        "startswith",
        "icontains",
    }


def test_lookups_and_expressions_are_the_same_thing() -> None:
    assert lookup(META, "age__gt", 3) == (Member.age > 3)
    assert lookup(META, "address__city", "x") == (Member.address.city == "x")
    assert compiled(Member.age > 3, name="a") == {"age": {"$gt": 3}, "name": "a"}
    assert compiled(Member.age > 3, age__lt=9) == {
        "$and": [{"age": {"$gt": 3}}, {"age": {"$lt": 9}}]
    }
    assert compiled(Member.age > 3, (Member.age < 1) | (Member.age > 9)) == {
        "$and": [{"age": {"$gt": 3}}, {"$or": [{"age": {"$lt": 1}}, {"age": {"$gt": 9}}]}]
    }


def test_an_empty_filter() -> None:
    assert compiled() == {}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nickname", "Member has no field 'nickname'"),
        ("nickname__gt", "no field 'nickname'"),
        ("address__town", r"Member\.address has no field 'town'"),
        ("name__regex", "only dict fields take keys"),
        ("name__where", "only dict fields take keys"),
        ("age____gt", "malformed"),
        ("__gt", "malformed"),
        ("mail", "no field 'mail'"),  # the stored name is not the attribute name
        ("addr__city", "no field 'addr'"),
        ("prefs__$gt", "cannot be stored"),
        ("prefs__a.b", "cannot be stored"),
        ("name.first", "no field 'name.first'"),
        ("$where", "no field '\\$where'"),
        ("$or", "no field"),
    ],
)
def test_unknown_or_malformed_lookups_are_refused(name: str, message: str) -> None:
    with pytest.raises(uow.ValidationError, match=message):
        compiled(**{name: 1})


# --------------------------------------------------- values are data only


@pytest.mark.parametrize(
    "lookups",
    [
        {"name": {"$ne": None}},
        {"name": {"$gt": ""}},
        {"name": {"$regex": ".*"}},
        {"name__ne": {"$exists": True}},
        {"name__in": [{"$gt": ""}]},
        {"name__in": {"$gt": ""}},
        {"name__in": "abc"},  # a str is not a list of values
        {"name__nin": [["a"]]},
        {"age": {"$gt": 0}},
        {"age__gt": "0"},
        {"age": "1"},
        {"age": True},
        {"age": 1.5},
        {"score": "1"},
        {"active": 1},
        {"email__exists": "yes"},
        {"email__exists": {"$ne": 1}},
        {"email__exists": 1},
        {"name__startswith": {"$ne": ""}},
        {"name__startswith": 1},
        {"name__icontains": ["a"]},
        {"name__contains": None},
        {"age__startswith": "1"},  # a text lookup on a number
        {"tags__icontains": 1},
        {"tags": [{"$gt": ""}]},
        {"tags": {"$size": 0}},
        {"tags__contains": {"$gt": ""}},
        {"tags__contains": 1},
        {"prefs": {"$gt": 1}},
        {"prefs": {"a": {"$gt": 1}}},
        {"prefs": {"a.b": 1}},
        {"prefs__dark": {"$gt": 0}},
        {"address": {"city": "Oslo"}},  # a dict where an embedded document belongs
        {"address": {"$ne": None}},
        {"address__city": {"$ne": None}},
        {"address__city__in": [{"$ne": None}]},
        {"past__contains": {"city": "x"}},
        {"balance": 1},
        {"balance": {"$gt": decimal.Decimal("1")}},
        {"token": str(uuid.uuid4())},
        {"born": "2020-01-01"},
        {"born": dt.datetime(2020, 1, 1)},
        {"avatar": "text"},
        {"id": str(bson.ObjectId())},
        {"id": {"$ne": None}},
        {"id__in": [{"$gt": ""}]},
        {"team": {"$ne": None}},
        {"teams__contains": {"$ne": None}},
        {"name": re.compile(".*")},
        {"name": bson.Regex(".*")},
        {"age": bson.Code("sleep(1000)")},
    ],
)
def test_a_lookup_value_is_always_data(lookups: dict[str, Any]) -> None:
    with pytest.raises(uow.ValidationError) as info:
        compiled(**lookups)
    assert info.value.document_class == "Member"


def test_operator_keys_hidden_in_documents_are_refused() -> None:
    # A document loaded from hostile data keeps its unknown keys; as a query value
    # they would read as operators.
    tampered = Address.from_bson({"city": "Oslo", "$where": "sleep(1000)"})
    with pytest.raises(uow.ValidationError, match="would read as an operator"):
        compiled(address=tampered)
    nested = Address.from_bson({"city": "Oslo", "geo": {"lat": 1.0, "$gt": 1}})
    with pytest.raises(uow.ValidationError, match="would read as an operator"):
        compiled(address=nested)
    # pymongo sends a tuple as an array: one is looked into like a list.
    in_tuple = Address.from_bson({"city": "Oslo", "": (None, {"$where": "sleep(1000)"})})
    with pytest.raises(uow.ValidationError, match="would read as an operator"):
        compiled(address=in_tuple)
    forged = Ref(Team, {"$ne": None})
    with pytest.raises(uow.ValidationError):
        compiled(team=forged)


def test_expressions_check_their_values_too() -> None:
    # Refused, and the message says how uow spells the operator meant.
    with pytest.raises(
        uow.ValidationError, match=r"Member\.name: .*'\$ne'.*name__ne=value.*!= value"
    ):
        _ = Member.name == {"$ne": None}
    with pytest.raises(uow.ValidationError):
        _ = Member.age > {"$gt": 0}
    with pytest.raises(uow.ValidationError):
        Member.name.in_([{"$gt": ""}])
    with pytest.raises(uow.ValidationError):
        Member.name.startswith({"$ne": ""})  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError, match="expected int, got list"):
        Member.age.in_([[1]])


def test_dollar_strings_are_plain_data() -> None:
    assert compiled(name="$where") == {"name": "$where"}
    assert compiled(name__in=["$gt", "$ne"]) == {"name": {"$in": ["$gt", "$ne"]}}
    assert compiled(prefs={"a$": 1}) == {"prefs": {"a$": 1}}


def test_raw_dicts_are_not_filters() -> None:
    with pytest.raises(uow.ValidationError, match="not a raw dict"):
        compile_filter(META, {"name": {"$ne": None}})  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError, match="takes query expressions"):
        compile_filter(META, "name")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["a.b", "^start", "end$", "(group)", "[set]", "a|b", "a*b+c?", "\\d", "{2}", " "]
)
def test_regex_lookups_take_their_text_literally(text: str) -> None:
    started = compiled(name__startswith=text)["name"]["$regex"]
    assert started == "^" + re.escape(text)
    assert re.match(started, text + "tail")
    assert not re.match(started, "x" + text)
    inside = compiled(name__icontains=text)["name"]
    assert inside == {"$regex": re.escape(text), "$options": "i"}
    assert re.search(inside["$regex"], "x" + text.upper() + "y", re.IGNORECASE)
    assert compiled(name__contains=text)["name"]["$regex"] == re.escape(text)


# -------------------------------------------------------------------- sort


def test_sort_keys() -> None:
    assert isinstance(Member.age.asc(), SortKey)
    assert compile_sort(META, [Member.age.asc(), Member.email.desc()]) == [
        ("age", 1),
        ("mail", -1),
    ]
    assert compile_sort(META, ["name", "-email", "+age"]) == [
        ("name", 1),
        ("mail", -1),
        ("age", 1),
    ]
    assert compile_sort(META, ["address.city", "-address__zip"]) == [
        ("addr.city", 1),
        ("addr.postcode", -1),
    ]
    assert compile_sort(META, [Member.address.zip.desc(), Member.name]) == [
        ("addr.postcode", -1),
        ("name", 1),
    ]
    assert compile_sort(META, []) == []
    assert repr(Member.age.desc()) == "SortKey('age', -1)"


@pytest.mark.parametrize("key", ["nickname", "$natural", "-address.town", 3, {"age": 1}])
def test_sort_by_unknown_things_is_refused(key: Any) -> None:
    with pytest.raises(uow.ValidationError):
        compile_sort(META, [key])


def test_an_empty_dict_key_cannot_be_part_of_a_query_path() -> None:
    class WithScores(Document):
        scores: dict[str, int] = field(factory=dict)

    with pytest.raises(uow.ValidationError, match="empty key"):
        WithScores.scores[""]
    assert (WithScores.scores["math"] == 3).filter == {"scores.math": 3}


# -- the equality fast path (values stored as given) -----------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (Member.name == "ann", {"name": "ann"}),
        (Member.email == "a@x", {"mail": "a@x"}),
        (Member.age == 2**63 - 1, {"age": 2**63 - 1}),
        (Member.age == -(2**63), {"age": -(2**63)}),
        (Member.score == 1.5, {"score": 1.5}),
        (Member.active == False, {"active": False}),  # noqa: E712
    ],
)
def test_equality_with_a_plain_value_is_stored_as_given(
    expr: Expr, expected: dict[str, Any]
) -> None:
    assert expr.filter == expected
    assert compile_filter(Member._uow_meta, expr) == expected


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, True, "3", 1.5, {"$gt": 1}, None])
def test_equality_still_refuses_what_the_field_cannot_hold(value: Any) -> None:
    with pytest.raises(uow.ValidationError):
        Member.age == value  # noqa: B015


def test_an_id_lookup_compiles_to_the_id_alone() -> None:
    oid = bson.ObjectId()
    assert compile_filter(Member._uow_meta, Member.id == oid) == {"_id": oid}


def test_one_expression_comparing_two_fields_is_still_refused() -> None:
    with pytest.raises(uow.ValidationError, match="comparing two fields"):
        compile_filter(Member._uow_meta, Member.name == Member.email)
