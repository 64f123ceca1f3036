"""Hostile input, through the server: lookup values, filter() arguments, get()
ids and dict-field keys can never become operators or paths.

tests/unit/test_properties.py checks the compiled filters; these tests go to
SecantusDB and back. Hypothesis feeds JSON-like values (dicts with ``$`` keys,
``$where`` strings, dotted keys, nested lists) to every lookup and to every dict
field; each query must return exactly the stored documents the literal value
matches (computed here in Python, with MongoDB's comparison rules), or raise
ValidationError. Every command sent is then scanned: no ``$where``,
``$function``, ``$accumulator`` or ``$expr`` ever reached the server, and no
operator a lookup does not emit.

SecantusDB only: the Python model of regex case folding below is Python's,
which is what SecantusDB uses (a real server's PCRE may fold a few exotic
characters differently).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import bson
import pymongo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import monitoring

from uow import Document, Embedded, ValidationError, field
from uow.query import LOOKUPS
from uow.session import Session

if TYPE_CHECKING:
    from pymongo.database import Database
    from secantus import SecantusDBServer


class Wire(monitoring.CommandListener):
    """Every command as it went on the wire: a copy taken when it was sent (a
    shallow copy would show later in-place changes of the documents it holds)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name.lower() not in {"hello", "ismaster", "endsessions"}:
            self.commands.append((event.command_name, bson.decode(bson.encode(event.command))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def names(self) -> list[str]:
        return [name for name, _ in self.commands]


@pytest.fixture(scope="module")
def wire() -> Wire:
    return Wire()


@pytest.fixture(scope="module")
def wire_client(
    secantus_server: SecantusDBServer, wire: Wire
) -> Iterator[pymongo.MongoClient[Any]]:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        secantus_server.uri, retryWrites=False, event_listeners=[wire]
    )
    yield client
    client.close()


@pytest.fixture
def sdb(wire_client: pymongo.MongoClient[Any], wire: Wire) -> Iterator[Database[Any]]:
    """A database of its own whose commands ``wire`` records (cleared first)."""
    name = f"sec_{uuid.uuid4().hex[:12]}"
    wire.commands.clear()
    yield wire_client[name]
    wire_client.drop_database(name)


class ScAddress(Embedded):
    city: str
    zip: str | None = None


class ScUser(Document):
    __collection__ = "users"

    name: str
    nick: str | None = None
    age: int = 0
    tags: list[str] = field(factory=list)
    scores: dict[str, int] = field(factory=dict)
    labels: dict[str, str] = field(factory=dict)
    nested: dict[str, list[str]] = field(factory=dict)
    address: ScAddress | None = None


class ScKeyed(Document):
    """String ids: a hostile id is data too."""

    __collection__ = "keyed"

    id: str = field(factory=str)
    note: str = ""


NASTY = [
    "$where",
    "$gt",
    "$ne",
    "$regex",
    "$expr",
    "$function",
    "$accumulator",
    "a.b",
    ".b",
    "^.*$",
    ".*",
    "",
    "ann",
    "Ann",
    "ANN",
    "this.age > 0",
    "function() { return true; }",
    "sleep(1000)",
    "\\",
    "[x",
    "O'Brien",
    "a\nb",
]
TEXT = st.sampled_from(NASTY) | st.text(
    alphabet=st.characters(exclude_categories=("Cs",)), max_size=6
)
LEAVES = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3) | TEXT
JSON = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
#: JSON, with more of the values a lookup accepts (so that many reach the server).
VALUES = JSON | LEAVES | st.lists(TEXT | st.integers(-3, 3) | st.none(), max_size=3)

#: attribute path -> stored path (the same here: no db_name)
PATHS = [
    "name",
    "nick",
    "age",
    "tags",
    "scores",
    "scores__a",
    "scores__zz",
    "labels__k",
    "nested__k",
    "address",
    "address__city",
    "address__zip",
    "id",
]
VALID_LOOKUPS = [p if op == "exact" else f"{p}__{op}" for p in PATHS for op in ("exact", *LOOKUPS)]
HOSTILE_LOOKUPS = [
    "name__$where",
    "$where",
    "scores__$gt",
    "scores__a.b",
    "scores__",
    "address__$ne",
    "address__city__$regex",
    "tags__0",
    "name__regex",
    "name__where",
    "__proto__",
    "age__$expr",
    "labels__$function",
]

#: Every operator a lookup may put in a filter (tests/unit/test_properties.py).
ALLOWED = {"$gt", "$gte", "$lt", "$lte", "$ne", "$in", "$nin", "$exists", "$regex", "$options"}
ALLOWED |= {"$and", "$or", "$nor"}
FORBIDDEN = {"$where", "$function", "$accumulator", "$expr"}


# ------------------------------------------------------------------ the corpus


def _corpus() -> list[ScUser]:
    users = [
        ScUser(
            name=name,
            nick=None if k % 3 == 0 else NASTY[(k + 5) % len(NASTY)],
            age=k % 5 - 1,
            tags=[NASTY[(k + j) % len(NASTY)] for j in range(k % 4)],
            scores={"a": k % 3, "b": 1} if k % 2 else {"b": 1, "a": k % 3},
            labels={"k": NASTY[(k * 7) % len(NASTY)]},
            nested={"k": [NASTY[k % len(NASTY)], "x"]} if k % 2 else {},
            address=None if k % 4 == 0 else ScAddress(city=NASTY[(k * 3) % len(NASTY)]),
        )
        for k, name in enumerate(NASTY)
    ]
    return users


@pytest.fixture
def corpus(sdb: Database[Any]) -> Iterator[list[dict[str, Any]]]:
    """The stored documents (raw, as the server holds them), some with keys missing."""
    db = sdb
    with Session(db, transactional=False) as s:
        s.add_all(_corpus())
    db["users"].insert_many([{"name": "raw"}, {"name": "nulls", "nick": None, "address": None}])
    yield list(db["users"].find())


# ----------------------------------------------- MongoDB's matching, in Python

_MISSING = object()
_TYPE_ORDER = {type(None): 1, int: 2, float: 2, str: 3, dict: 4, list: 5, bool: 8}


def _bracket(value: Any) -> int:
    return _TYPE_ORDER[type(value)]


def _cmp(a: Any, b: Any) -> int:
    """BSON order of two values (the types used here)."""
    ta, tb = _bracket(a), _bracket(b)
    if ta != tb:
        return -1 if ta < tb else 1
    if isinstance(a, list):
        for x, y in zip(a, b, strict=False):
            c = _cmp(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if isinstance(a, dict):
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=False):
            c = _cmp(va, vb) if ka == kb else (-1 if ka < kb else 1)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if a is None:
        return 0
    return (a > b) - (a < b)


def _eq(a: Any, b: Any) -> bool:
    return _bracket(a) == _bracket(b) and _cmp(a, b) == 0


def _values(doc: Any, parts: list[str]) -> list[Any]:
    """What a dotted path reaches in a stored document (arrays of documents traversed)."""
    if not parts:
        return [doc]
    if isinstance(doc, dict):
        return _values(doc[parts[0]], parts[1:]) if parts[0] in doc else [_MISSING]
    if isinstance(doc, list):
        reached = [v for item in doc if isinstance(item, dict) for v in _values(item, parts)]
        return reached or [_MISSING]
    return [_MISSING]


def _any_match(values: list[Any], predicate: Any) -> bool:
    """A value matches, or (an array) one of its elements does."""
    for value in values:
        if value is _MISSING:
            continue
        if predicate(value) or (isinstance(value, list) and any(predicate(item) for item in value)):
            return True
    return False


def _equals(values: list[Any], operand: Any) -> bool:
    if operand is None and any(v is _MISSING for v in values):
        return True
    return _any_match(values, lambda v: _eq(v, operand))


def _compares(values: list[Any], operand: Any, ok: Any) -> bool:
    if operand is None:  # $gte/$lte null mean "is null or missing"; $gt/$lt nothing
        return ok(0) and _equals(values, None)
    return _any_match(values, lambda v: _bracket(v) == _bracket(operand) and ok(_cmp(v, operand)))


def _regex(values: list[Any], pattern: str, flags: int = 0) -> bool:
    return _any_match(values, lambda v: isinstance(v, str) and re.search(pattern, v, flags))


def _expected(doc: dict[str, Any], condition: Any, path: str) -> bool:
    """Whether ``doc`` matches ``{path: condition}`` as MongoDB reads it."""
    values = _values(doc, path.split("."))
    if not (isinstance(condition, dict) and condition and next(iter(condition)).startswith("$")):
        return _equals(values, condition)
    (op, operand), *rest = condition.items()
    if op == "$regex":
        flags = re.IGNORECASE if rest and rest[0][1] == "i" else 0
        return _regex(values, operand, flags)
    return {
        "$gt": lambda: _compares(values, operand, lambda c: c > 0),
        "$gte": lambda: _compares(values, operand, lambda c: c >= 0),
        "$lt": lambda: _compares(values, operand, lambda c: c < 0),
        "$lte": lambda: _compares(values, operand, lambda c: c <= 0),
        "$ne": lambda: not _equals(values, operand),
        "$in": lambda: any(_equals(values, item) for item in operand),
        "$nin": lambda: not any(_equals(values, item) for item in operand),
        "$exists": lambda: any(v is not _MISSING for v in values) is operand,
    }[op]()


def _literal_matches(corpus: list[dict[str, Any]], lookup: str, value: Any) -> set[Any]:
    """The ids the literal ``value`` matches under ``lookup``, without asking uow.

    The condition is built here from the lookup's meaning and the value as given
    (a str taken literally by the regex lookups), never from uow's output.
    """
    parts = lookup.split("__")
    op = parts.pop() if parts[-1] in LOOKUPS else "exact"
    path = ".".join("_id" if p == "id" else p for p in parts)
    condition: Any = {
        "exact": value,
        "gt": {"$gt": value},
        "gte": {"$gte": value},
        "lt": {"$lt": value},
        "lte": {"$lte": value},
        "ne": {"$ne": value},
        "in": {"$in": value},
        "nin": {"$nin": value},
        "exists": {"$exists": value},
        "startswith": {"$regex": "^" + re.escape(value) if isinstance(value, str) else ""},
        "icontains": {
            "$regex": re.escape(value) if isinstance(value, str) else "",
            "$options": "i",
        },
        "contains": (
            value
            if parts == ["tags"] or (parts[-1] == "k" and parts[0] == "nested")
            else {"$regex": re.escape(value) if isinstance(value, str) else ""}
        ),
    }[op]
    return {doc["_id"] for doc in corpus if _expected(doc, condition, path)}


def _operator_keys(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("$"):
                found.add(key)
            found |= _operator_keys(item)
    elif isinstance(value, list):
        for item in value:
            found |= _operator_keys(item)
    return found


def _assert_no_operator_reached_the_server(wire: Wire) -> None:
    assert wire.commands
    for name, command in wire.commands:
        assert not (_operator_keys(command) & FORBIDDEN), command
        if name == "find":
            assert _operator_keys(command["filter"]) <= ALLOWED, command
        if name == "insert":
            for document in command["documents"]:
                assert not _operator_keys(document), document
        if name == "update":
            for statement in command["updates"]:
                assert _operator_keys(statement["q"]) <= ALLOWED, statement
                for operator, paths in statement["u"].items():
                    assert operator in {"$set", "$unset"}, statement  # what these tests change
                    assert not _operator_keys(paths), statement
                    for path in paths:  # a path: no part an operator, none empty
                        assert all(p and not p.startswith("$") for p in path.split(".")), path


# ---------------------------------------------------------------------- lookups

SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def test_every_lookup_matches_only_what_its_literal_value_matches(
    sdb: Database[Any], corpus: list[dict[str, Any]], wire: Wire
) -> None:
    asked = [0]
    with Session(sdb, transactional=False, no_tracking=True) as s:

        @SETTINGS
        @given(lookup=st.sampled_from(VALID_LOOKUPS), value=VALUES)
        def check(lookup: str, value: Any) -> None:
            try:
                found = s.filter(ScUser, **{lookup: value})
            except ValidationError:
                return
            asked[0] += 1
            assert {user.id for user in found} == _literal_matches(corpus, lookup, value), (
                lookup,
                value,
            )

        check()
    assert asked[0] >= 80  # most hostile values are refused (about 15% reach the server)
    _assert_no_operator_reached_the_server(wire)


@pytest.mark.parametrize("lookup", HOSTILE_LOOKUPS)
def test_lookup_names_are_never_operators_or_paths(
    sdb: Database[Any], wire: Wire, lookup: str
) -> None:
    with Session(sdb) as s:
        for value in (1, "x", {"$gt": ""}, None):
            with pytest.raises(ValidationError):
                s.filter(ScUser, **{lookup: value})
    assert wire.names() == []


def test_literal_strings_that_look_like_operators_or_patterns(
    sdb: Database[Any], corpus: list[dict[str, Any]]
) -> None:
    """A few worked examples: each value matches itself, literally."""
    by_name = {doc["name"]: doc["_id"] for doc in corpus}
    with Session(sdb, transactional=False) as s:
        for name in ("$where", "a.b", "^.*$", ".*", "", "this.age > 0", "\\", "[x"):
            assert [u.id for u in s.filter(ScUser, name=name)] == [by_name[name]]
            assert s.count(ScUser, name=name) == 1
        assert [u.name for u in s.filter(ScUser, name__startswith="^.*")] == ["^.*$"]
        assert sorted(u.name for u in s.filter(ScUser, name__icontains=".")) == [
            ".*",
            ".b",
            "^.*$",
            "a.b",
            "this.age > 0",
        ]
        assert sorted(u.name for u in s.filter(ScUser, name__icontains="ANN")) == [
            "ANN",
            "Ann",
            "ann",
        ]
        assert [u.name for u in s.filter(ScUser, name__startswith="[")] == ["[x"]
        with pytest.raises(ValidationError):
            s.filter(ScUser, name={"$ne": None})
        with pytest.raises(ValidationError):
            s.filter(ScUser, name__in=[{"$gt": ""}])
        with pytest.raises(ValidationError):
            s.filter(ScUser, {"$where": "sleep(1000)"})  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            s.query(ScUser).filter(ScUser.tags == [{"$where": "1"}])
        with pytest.raises(ValidationError):
            s.query(ScUser).sort("$where").all()
        with pytest.raises(ValidationError):
            s.query(ScUser).fields("$where")
        with pytest.raises(ValidationError):
            s.count(ScUser, scores={"$gt": 0})


# --------------------------------------------------------------------- get() ids


def test_get_ids_are_data(sdb: Database[Any], wire: Wire) -> None:
    db = sdb
    keys = ("$where", "a.b", "")
    with Session(db, transactional=False) as s:
        s.add_all([ScKeyed(id=key, note=f"n{k}") for k, key in enumerate(keys)])
        s.flush()
    with Session(db, transactional=False) as s:

        @SETTINGS
        @given(value=VALUES)
        def check(value: Any) -> None:
            try:
                found = s.get(ScKeyed, value)
            except ValidationError:
                return
            assert (found.id if found else None) == (value if value in keys else None)

        check()
        for key in ("$where", "a.b", ""):
            s.expunge_all()
            got = s.get(ScKeyed, key)
            assert got is not None and got.id == key
        for hostile in ({"$ne": None}, {"$gt": ""}, ["$where"]):
            with pytest.raises(ValidationError):
                s.get(ScKeyed, hostile)
            with pytest.raises(ValidationError):
                s.get(ScUser, hostile)
    _assert_no_operator_reached_the_server(wire)


# ------------------------------------------------------------------ dict fields

DICT_FIELDS = ("scores", "labels", "nested")


def test_dict_fields_store_hostile_keys_exactly_or_refuse_them(
    sdb: Database[Any], wire: Wire
) -> None:
    """Assigned whole (an insert), and changed in place (an update of dotted
    paths): what is stored is exactly the dict, or ValidationError is raised."""
    db = sdb
    with Session(db, transactional=False) as s:

        @SETTINGS
        @given(
            name=st.sampled_from(DICT_FIELDS),
            value=st.dictionaries(TEXT, JSON, max_size=3),
            key=TEXT,
            item=JSON,
        )
        def check(name: str, value: dict[str, Any], key: str, item: Any) -> None:
            user = ScUser(name="d")
            try:
                setattr(user, name, value)
            except ValidationError:
                return
            s.add(user)
            s.flush()
            raw = db["users"].find_one({"_id": user.id})
            assert raw is not None
            assert list(raw[name].items()) == list(value.items())
            getattr(user, name)[key] = item  # in place: checked at the flush
            try:
                s.flush()
            except ValidationError:
                s.rollback()
                return
            raw = db["users"].find_one({"_id": user.id})
            assert raw is not None
            assert raw[name] == {**value, key: item}

        check()
    _assert_no_operator_reached_the_server(wire)


def test_dict_keys_that_read_as_operators_or_paths_are_refused(
    sdb: Database[Any],
) -> None:
    with Session(sdb, transactional=False) as s:
        for key in ("$where", "$set", "a.b", ".", "a\x00b"):
            with pytest.raises(ValidationError):
                ScUser(name="x", scores={key: 1})
            user = ScUser(name="x")
            s.add(user)
            s.flush()
            user.scores[key] = 1
            with pytest.raises(ValidationError, match="scores"):
                s.flush()
            s.rollback()
            assert user.scores == {}
        assert s.count(ScUser) == 5
