"""SPEC's public names, signatures, keyword names and defaults, read line by line."""

from __future__ import annotations

import enum
import inspect
from typing import Any

import pytest

import uow
from uow import Session

EMPTY = inspect.Parameter.empty
KW = inspect.Parameter.KEYWORD_ONLY
# Read at import: this directory's conftest wraps Session.__init__ during each test.
SESSION_SIGNATURE = inspect.signature(Session)


def _params(fn: Any) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)


@pytest.mark.parametrize(
    "name",
    [
        "Document",
        "Embedded",
        "Session",
        "field",
        "Index",
        "Ref",
        "ObjectState",
        "current_session",
        "configure",
        "unit_of_work",
        "q",
        "Query",
        "RemoveQuery",
        "UowError",
        "DefinitionError",
        "ValidationError",
        "FlushError",
        "DuplicateKeyError",
        "StaleDocumentError",
        "NotFound",
        "MultipleFound",
        "FieldNotLoaded",
        "SessionClosedError",
        "NoActiveSession",
        "TooManyRequests",
        "TransactionError",
    ],
)
def test_a4_module_level_name(name: str) -> None:
    assert hasattr(uow, name), f"uow.{name} is missing"


@pytest.mark.parametrize(
    ("name", "bases"),
    [
        ("DefinitionError", (TypeError,)),
        ("ValidationError", (ValueError,)),
        ("FlushError", ()),
        ("DuplicateKeyError", ("FlushError",)),
        ("StaleDocumentError", ("FlushError",)),
        ("NotFound", ()),
        ("MultipleFound", ()),
        ("FieldNotLoaded", (AttributeError,)),
        ("SessionClosedError", ()),
        ("NoActiveSession", ()),
        ("TooManyRequests", ()),
        ("TransactionError", ()),
    ],
)
def test_a4_exception_hierarchy(name: str, bases: tuple[Any, ...]) -> None:
    cls = getattr(uow, name)
    assert issubclass(cls, uow.UowError)
    assert issubclass(cls, Exception)
    for base in bases:
        base_cls = getattr(uow, base) if isinstance(base, str) else base
        assert issubclass(cls, base_cls), f"{name} is not a {base_cls.__name__}"


SESSION_OPTIONS: dict[str, Any] = {
    "cache_size": 10_000,
    "autoflush": True,
    "tz_aware": False,
    "timezone": None,
    "auto_ensure": True,
    "transactional": None,
    "no_tracking": False,
    "max_requests": None,
    "echo": False,
    "transaction_retry_s": 120.0,
    "read_preference": None,
    "read_concern": None,
    "write_concern": None,
}


def test_a4_session_signature() -> None:
    params = dict(SESSION_SIGNATURE.parameters)
    names = list(params)
    assert names[0] == "database"
    assert params["database"].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.POSITIONAL_ONLY,
    )
    assert params["database"].default is EMPTY
    for name, default in SESSION_OPTIONS.items():
        assert name in params, f"Session has no option {name}"
        assert params[name].kind is KW, f"{name} is not keyword-only"
        assert params[name].default == default, f"{name} defaults to {params[name].default!r}"
        assert type(params[name].default) is type(default)


def test_a4_connect_signature() -> None:
    params = _params(Session.connect)
    names = list(params)
    assert names[:2] == ["database", "host"]
    assert params["host"].default is None
    assert params["replica_set"].kind is KW
    assert params["replica_set"].default is None
    for name, default in SESSION_OPTIONS.items():
        assert name in params, f"connect has no option {name}"
        assert params[name].default == default
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_a4_field_parameters() -> None:
    params = _params(uow.field)
    for name in (
        "default",
        "factory",
        "on_update",
        "version",
        "db_name",
        "validator",
        "index",
        "unique",
    ):
        assert name in params, f"field() has no {name}"


def test_a4_update_signature() -> None:
    params = _params(Session.update)
    assert params["upsert"].kind is KW and params["upsert"].default is False
    assert params["update_ops"].kind is KW and params["update_ops"].default is None
    assert params["id_expression"].kind is KW and params["id_expression"].default is None
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_a4_query_and_dereference_signatures() -> None:
    assert _params(Session.query)["exclude_subclasses"].default is False
    assert _params(Session.dereference)["allow_none"].default is False
    params = list(_params(Session.run_in_transaction).values())
    assert [p.kind for p in params[-2:]] == [
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    ]


def test_a4_session_methods_exist() -> None:
    for name in (
        "connect",
        "add",
        "add_all",
        "save",
        "delete",
        "update",
        "flush",
        "commit",
        "close",
        "end",
        "rollback",
        "expunge",
        "expunge_all",
        "refresh",
        "clear_queue",
        "clear_cache",
        "clone",
        "clear_collection",
        "ensure_indexes",
        "get_indexes",
        "is_dirty",
        "dirty_fields",
        "original_value",
        "has_changes",
        "what_changed",
        "stats",
        "state",
        "get",
        "query",
        "filter",
        "all",
        "count",
        "remove_query",
        "dereference",
        "transaction",
        "run_in_transaction",
    ):
        assert callable(getattr(Session, name, None)), f"Session.{name} is missing"


def test_a4_query_methods_exist() -> None:
    for name in (
        "filter",
        "sort",
        "skip",
        "limit",
        "fields",
        "all",
        "first",
        "one",
        "count",
        "raw",
    ):
        assert callable(getattr(uow.Query, name, None)), f"Query.{name} is missing"
    assert hasattr(uow.Query, "__iter__")
    for name in ("filter", "execute"):
        assert callable(getattr(uow.RemoveQuery, name, None))


def test_a4_object_state_enum() -> None:
    assert issubclass(uow.ObjectState, enum.Enum)
    assert {m.name for m in uow.ObjectState} == {
        "TRANSIENT",
        "PENDING",
        "PERSISTENT",
        "DELETED",
        "DETACHED",
    }


def test_a4_flush_result_and_stats_fields() -> None:
    s = Session.connect("a4", "mongomock://a4-surface")
    try:
        result = s.flush()
        for name in ("inserted", "updated", "deleted", "round_trips"):
            value = getattr(result, name)
            assert type(value) is int and value == 0, name
        stats = s.stats()
        expected = [
            "identity_map_size",
            "pending_inserts",
            "pending_updates",
            "pending_deletes",
            "round_trips",
            "flushes",
            "queries",
            "requests",
            "cache_hits",
            "cache_misses",
        ]
        for name in expected:
            assert type(getattr(stats, name)) is int, name
        d = stats.as_dict()
        assert isinstance(d, dict)
        assert set(d) == set(expected)
        assert all(type(v) is int for v in d.values())
    finally:
        s.close()
        from uow._backend import reset_embedded

        reset_embedded("mongomock://a4-surface")


def test_a4_contrib_names() -> None:
    from uow.contrib.django import UnitOfWorkMiddleware
    from uow.contrib.flask import UnitOfWork

    assert _params(UnitOfWork)["app"].default is None
    assert callable(UnitOfWork.init_app)
    assert callable(UnitOfWorkMiddleware)


def test_a4_configure_signature() -> None:
    params = _params(uow.configure)
    assert list(params)[:2] == ["uri", "database"]
    assert params["uri"].default is None and params["database"].default is None
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_a4_py_typed() -> None:
    import pathlib

    assert (pathlib.Path(uow.__file__).parent / "py.typed").is_file()
