"""SPEC "Documents": field options, naming, ids, types, validation, stored forms."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, Optional

import attrs
import bson
import pytest

import uow
from uow import Document, Session, field

from ._h import insert_raw, stored


class A4DocAddress(uow.Embedded):
    city: str
    zip: str | None = None


def _positive(instance: Any, attribute: Any, value: int) -> None:
    if value < 0:
        raise ValueError("must be positive")


def _not_seven(instance: Any, attribute: Any, value: int) -> None:
    if value == 7:
        raise TypeError("seven refused")


class A4DocUser(Document):
    __collection__ = "a4_doc_users"
    name: str
    email: str = field(default="", db_name="mail")
    score: int = field(default=0, validator=_positive)
    lucky: int = field(default=0, validator=_not_seven)
    tags: list[str] = field(factory=list)
    address: A4DocAddress | None = None


class A4Unique(Document):
    __collection__ = "a4_unique"
    code: str = field(unique=True)
    city: str = field(default="", index=True)


class A4Kinds(Document):
    __collection__ = "a4_kinds"
    s: str = ""
    i: int = 0
    f: float = 0.0
    b: bool = False
    raw: bytes = b""
    when: datetime.datetime | None = None
    day: datetime.date | None = None
    price: decimal.Decimal | None = None
    oid: bson.ObjectId | None = None
    u: uuid.UUID | None = None
    li: list[int] = field(factory=list)
    st: set[str] = field(factory=set)
    di: dict[str, int] = field(factory=dict)
    opt: Optional[int] = None  # noqa: UP045 - SPEC names Optional[T]


class A4StrId(Document):
    __collection__ = "a4_str_id"
    id: str
    n: int = 0


def test_a4_document_is_attrs_class() -> None:
    names = [a.name for a in attrs.fields(A4DocUser)]
    for name in ("id", "name", "email", "score", "tags", "address"):
        assert name in names


def test_a4_db_name_is_the_stored_key(db: Any) -> None:
    s = Session(db)
    u = A4DocUser(name="ann", email="a@x")
    s.add(u)
    s.commit()
    doc = stored(db, "a4_doc_users", u.id)
    assert doc["mail"] == "a@x"
    assert "email" not in doc
    u.email = "b@x"
    s.commit()
    assert stored(db, "a4_doc_users", u.id)["mail"] == "b@x"
    assert s.filter(A4DocUser, email="b@x") == [u]
    s.close()


def test_a4_validator_value_error_becomes_validation_error() -> None:
    with pytest.raises(uow.ValidationError):
        A4DocUser(name="x", score=-1)
    u = A4DocUser(name="x")
    with pytest.raises(uow.ValidationError):
        u.score = -5
    assert u.score == 0


def test_a4_validator_type_error_becomes_validation_error() -> None:
    with pytest.raises(uow.ValidationError):
        A4DocUser(name="x", lucky=7)
    u = A4DocUser(name="x")
    with pytest.raises(uow.ValidationError):
        u.lucky = 7


def test_a4_unique_and_index_shortcuts(db: Any) -> None:
    s = Session(db)
    s.ensure_indexes(A4Unique)
    info = db["a4_unique"].index_information()
    by_key = {tuple(k for k, _ in v["key"]): v for v in info.values()}
    assert ("code",) in by_key and by_key[("code",)].get("unique") is True
    assert ("city",) in by_key and not by_key[("city",)].get("unique", False)
    s.save(A4Unique(code="a"))
    dup = A4Unique(code="a")
    s.add(dup)
    with pytest.raises(uow.DuplicateKeyError) as err:
        s.flush()
    assert isinstance(err.value, uow.FlushError)
    assert "A4Unique" in str(err.value)
    assert str(dup.id) in str(err.value)
    assert "'a'" in str(err.value) or '"a"' in str(err.value)
    assert err.value.document is dup or "A4Unique" in str(err.value.document)
    s.close()


def test_a4_documents_compare_by_identity_embedded_by_value() -> None:
    oid = bson.ObjectId()
    a = A4DocUser(id=oid, name="x")
    b = A4DocUser(id=oid, name="x")
    assert a != b
    assert a == a  # noqa: PLR0124 - identity equality
    assert len({a, b}) == 2
    assert A4DocAddress(city="Oslo") == A4DocAddress(city="Oslo")
    assert A4DocAddress(city="Oslo") != A4DocAddress(city="Bergen")


def test_a4_collection_snake_case(db: Any) -> None:
    class OrderLine(Document):
        qty: int = 0

    class HTTPLog(Document):
        path: str = ""

    s = Session(db)
    ol, hl = OrderLine(qty=2), HTTPLog(path="/")
    s.add_all([ol, hl])
    s.commit()
    assert stored(db, "order_line", ol.id)["qty"] == 2
    assert stored(db, "http_log", hl.id)["path"] == "/"
    s.close()


def test_a4_id_is_client_objectid(db: Any) -> None:
    u = A4DocUser(name="x")
    assert isinstance(u.id, bson.ObjectId)
    s = Session(db)
    s.add(u)
    s.commit()
    assert stored(db, "a4_doc_users", u.id)["_id"] == u.id
    assert "id" not in stored(db, "a4_doc_users", u.id)
    s.close()


def test_a4_declared_id_type(db: Any) -> None:
    d = A4StrId(id="k1", n=1)
    s = Session(db)
    s.add(d)
    s.commit()
    assert stored(db, "a4_str_id", "k1") == {"_id": "k1", "n": 1}
    assert s.get(A4StrId, "k1") is d
    s.close()


def test_a4_types_round_trip(db: Any) -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000)
    oid = bson.ObjectId()
    uid = uuid.uuid4()
    k = A4Kinds(
        s="x",
        i=3,
        f=1.5,
        b=True,
        raw=b"\x00\x01",
        when=when,
        day=datetime.date(2024, 1, 2),
        price=decimal.Decimal("12.34"),
        oid=oid,
        u=uid,
        li=[1, 2],
        st={"a"},
        di={"k": 1},
        opt=None,
    )
    s = Session(db)
    s.add(k)
    s.commit()
    doc = stored(db, "a4_kinds", k.id)
    assert doc["price"] == bson.Decimal128("12.34")
    assert isinstance(doc["st"], list) and doc["st"] == ["a"]
    assert doc["opt"] is None
    assert doc["li"] == [1, 2]
    assert doc["di"] == {"k": 1}
    s.close()
    s2 = Session(db)
    back = s2.get(A4Kinds, k.id)
    assert back is not None
    assert back.price == decimal.Decimal("12.34")
    assert back.st == {"a"}
    assert back.day == datetime.date(2024, 1, 2)
    assert back.u == uid
    assert back.oid == oid
    assert back.raw == b"\x00\x01"
    assert back.when == when
    assert not s2.is_dirty(back)
    s2.close()


def test_a4_validation_names_class_field_expected_came() -> None:
    with pytest.raises(uow.ValidationError) as err:
        A4DocUser(name="x", tags=[1, 2])
    msg = str(err.value)
    assert "A4DocUser" in msg
    assert "tags" in msg
    assert "str" in msg
    assert "int" in msg or "1" in msg
    u = A4DocUser(name="x")
    with pytest.raises(uow.ValidationError):
        u.name = 5
    with pytest.raises(uow.ValidationError):
        u.tags = ["a", 2]


def test_a4_in_place_wrong_value_refused_at_flush(db: Any) -> None:
    s = Session(db)
    u = A4DocUser(name="x")
    s.add(u)
    s.commit()
    u.tags.append(3)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    assert stored(db, "a4_doc_users", u.id)["tags"] == []
    u.tags.pop()
    u.tags.append("ok")
    s.commit()
    assert stored(db, "a4_doc_users", u.id)["tags"] == ["ok"]
    s.close()


def test_a4_definition_errors() -> None:
    with pytest.raises(uow.DefinitionError):

        class A4BadDollar(Document):
            x: int = field(default=0, db_name="$x")

    with pytest.raises(uow.DefinitionError):

        class A4BadDot(Document):
            x: int = field(default=0, db_name="a.b")

    with pytest.raises(uow.DefinitionError):

        class A4BadType(Document):
            x: complex = 0j

    with pytest.raises(TypeError):

        class A4BadDollar2(Document):
            x: int = field(default=0, db_name="$y")


class A4Dicts(Document):
    __collection__ = "a4_dicts"
    d: dict[str, int] = field(factory=dict)


def test_a4_dict_keys_checked_at_assignment_and_flush(db: Any) -> None:
    with pytest.raises(uow.ValidationError):
        A4Dicts(d={"a.b": 1})
    x = A4Dicts()
    with pytest.raises(uow.ValidationError):
        x.d = {"$a": 1}
    s = Session(db)
    s.add(x)
    s.commit()
    x.d["a.b"] = 1
    with pytest.raises(uow.ValidationError):
        s.flush()
    del x.d["a.b"]
    x.d["ok"] = 2
    s.commit()
    assert stored(db, "a4_dicts", x.id)["d"] == {"ok": 2}
    s.close()


def test_a4_none_stored_as_null_and_missing_key_is_default(db: Any) -> None:
    s = Session(db)
    u = A4DocUser(name="x", address=None)
    s.add(u)
    s.commit()
    assert stored(db, "a4_doc_users", u.id)["address"] is None
    oid = insert_raw(db, "a4_doc_users", {"name": "raw"})
    s2 = Session(db)
    r = s2.get(A4DocUser, oid)
    assert r is not None
    assert r.tags == [] and r.score == 0 and r.email == "" and r.address is None
    assert not s2.is_dirty(r)
    assert s2.flush().updated == 0
    assert stored(db, "a4_doc_users", oid) == {"_id": oid, "name": "raw"}
    s.close()
    s2.close()


def test_a4_unknown_keys_kept(db: Any) -> None:
    oid = insert_raw(
        db,
        "a4_doc_users",
        {"name": "x", "extra": {"deep": 1}, "address": {"city": "Oslo", "legacy": 9}},
    )
    s = Session(db)
    u = s.get(A4DocUser, oid)
    assert u is not None
    u.name = "y"
    assert u.address is not None
    u.address.city = "Rome"
    s.commit()
    doc = stored(db, "a4_doc_users", oid)
    assert doc["extra"] == {"deep": 1}
    assert doc["address"] == {"city": "Rome", "legacy": 9}
    assert doc["name"] == "y"
    s.close()
