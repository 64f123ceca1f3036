"""``uow.__all__`` is exactly the public API, and the error tree is SPEC's."""

from __future__ import annotations

import inspect
import types

import pytest

import uow
import uow.exceptions


def _defined_in_uow(value: object) -> bool:
    module = getattr(value, "__module__", None) or ""
    return module == "uow" or module.startswith("uow.")


def test_every_public_class_and_function_is_in_all() -> None:
    public = {
        name
        for name, value in vars(uow).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules are not API
        and (inspect.isclass(value) or inspect.isfunction(value))
        and _defined_in_uow(value)
    }
    assert {"Document", "field", "UowError"} <= public  # the scan sees the package
    assert public - set(uow.__all__) == set(), "public but missing from __all__"


def test_every_name_in_all_exists_and_is_not_a_module() -> None:
    assert len(uow.__all__) == len(set(uow.__all__)), "duplicates in __all__"
    for name in uow.__all__:
        assert hasattr(uow, name), f"uow.__all__ names {name!r}, which uow lacks"
        value = getattr(uow, name)
        assert not isinstance(value, types.ModuleType), name
        assert _defined_in_uow(value), f"{name} is not uow's own"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from uow import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(uow.__all__)


@pytest.mark.parametrize(
    "name",
    [
        "Document",
        "Embedded",
        "Index",
        "Ref",
        "field",
        "q",  # SPEC "Typing": the typed spelling of a query field
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
def test_documented_names_are_exported(name: str) -> None:
    assert name in uow.__all__


def test_public_names_have_docstrings() -> None:
    for name in uow.__all__:
        doc = inspect.getdoc(getattr(uow, name))
        assert doc and doc.strip(), f"uow.{name} has no docstring"


def test_exceptions_module_exports_its_errors() -> None:
    errors = {
        name
        for name, value in vars(uow.exceptions).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and not name.startswith("_")
        and value.__module__ == "uow.exceptions"
    }
    assert errors == set(uow.exceptions.__all__)
    assert errors <= set(uow.__all__)


# ---------------------------------------------------------------- error tree

TREE: list[tuple[str, tuple[type, ...]]] = [
    ("UowError", (Exception,)),
    ("DefinitionError", (uow.UowError, TypeError)),
    ("ValidationError", (uow.UowError, ValueError)),
    ("FlushError", (uow.UowError,)),
    ("DuplicateKeyError", (uow.FlushError,)),
    ("StaleDocumentError", (uow.FlushError,)),
    ("NotFound", (uow.UowError,)),
    ("MultipleFound", (uow.UowError,)),
    ("FieldNotLoaded", (uow.UowError, AttributeError)),
    ("SessionClosedError", (uow.UowError,)),
    ("NoActiveSession", (uow.UowError,)),
    ("TooManyRequests", (uow.UowError,)),
    ("TransactionError", (uow.UowError,)),
]


@pytest.mark.parametrize(("name", "bases"), TREE)
def test_error_tree(name: str, bases: tuple[type, ...]) -> None:
    error = getattr(uow, name)
    for base in bases:
        assert issubclass(error, base), f"{name} should inherit {base.__name__}"
    assert issubclass(error, uow.UowError)


def test_errors_that_are_not_builtin_kinds() -> None:
    # Only the errors SPEC names as such are also built-in errors.
    for name in ("FlushError", "NotFound", "MultipleFound", "SessionClosedError"):
        error = getattr(uow, name)
        assert not issubclass(error, (TypeError, ValueError, AttributeError, LookupError))
    assert not issubclass(uow.DuplicateKeyError, uow.StaleDocumentError)
    assert not issubclass(uow.StaleDocumentError, uow.DuplicateKeyError)


def test_every_uow_error_is_in_the_tree() -> None:
    exported = {
        name
        for name in uow.__all__
        if inspect.isclass(getattr(uow, name)) and issubclass(getattr(uow, name), BaseException)
    }
    assert exported == {name for name, _ in TREE}


def test_errors_carry_their_data() -> None:
    error = uow.ValidationError(
        "User.age: expected int", document_class="User", field="age", expected="int", value="x"
    )
    assert (error.document_class, error.field, error.expected, error.value) == (
        "User",
        "age",
        "int",
        "x",
    )
    cause = RuntimeError("driver")
    flush = uow.DuplicateKeyError(
        "dup", cause=cause, documents=["doc"], applied=["a"], not_applied=["doc"]
    )
    assert flush.document == "doc" and flush.cause is cause
    assert flush.applied == ["a"] and flush.not_applied == ["doc"]
    assert not flush.transaction_aborted
    assert uow.DuplicateKeyError("dup").document is None
    assert uow.TooManyRequests("limit 3", limit=3).limit == 3
    assert uow.TransactionError("x", retryable=True).retryable is True
    assert uow.TransactionError("x").retryable is False


def test_the_error_tree_is_drawn_in_the_module_docstring() -> None:
    doc = uow.exceptions.__doc__ or ""
    for name, _ in TREE:
        assert name in doc


def test_q_is_the_query_field_itself() -> None:
    class QUser(uow.Document):
        name: str

    assert uow.q(QUser.name) is QUser.name
    assert uow.q(QUser.name).in_(["a"]).filter == {"name": {"$in": ["a"]}}
    with pytest.raises(TypeError, match=r"uow\.q\(\) takes a query field.*on the class"):
        uow.q(QUser(name="a").name)
