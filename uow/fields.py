"""``uow.field()``: attrs fields with uow's settings kept in their metadata.

The settings live in ``attrs.Attribute.metadata[METADATA_KEY]`` as a
:class:`FieldOptions`, so ``attrs.fields(User)`` shows them and other attrs tools
keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

import attrs

from .exceptions import DefinitionError
from .operators import OPERATORS

__all__ = ["METADATA_KEY", "FieldOptions", "UpdateOperator", "field"]

#: The key of uow's settings in ``attrs.Attribute.metadata``.
METADATA_KEY = "uow"

T = TypeVar("T")

#: What ``field(on_update=...)`` takes: the operators a field's changes can be sent
#: with (``uow.operators.OPERATORS``). A type checker reports any other string; at
#: run time it is a ``DefinitionError``.
UpdateOperator = Literal["$set", "$inc", "$max", "$min", "$push", "$addToSet", "$currentDate"]
Validator = Callable[[Any, "attrs.Attribute[Any]", Any], Any]


@attrs.frozen
class FieldOptions:
    """uow's settings of one field (see :func:`field`)."""

    on_update: str | None = None
    version: bool = False
    db_name: str | None = None
    validator: Validator | None = None
    index: bool = False
    unique: bool = False


@overload
def field(
    *,
    default: T,
    on_update: UpdateOperator | None = ...,
    version: bool = ...,
    db_name: str | None = ...,
    validator: Validator | None = ...,
    index: bool = ...,
    unique: bool = ...,
    repr: bool = ...,
) -> T: ...


@overload
def field(
    *,
    factory: Callable[[], T],
    on_update: UpdateOperator | None = ...,
    version: bool = ...,
    db_name: str | None = ...,
    validator: Validator | None = ...,
    index: bool = ...,
    unique: bool = ...,
    repr: bool = ...,
) -> T: ...


@overload
def field(
    *,
    on_update: UpdateOperator | None = ...,
    version: bool = ...,
    db_name: str | None = ...,
    validator: Validator | None = ...,
    index: bool = ...,
    unique: bool = ...,
    repr: bool = ...,
) -> Any: ...


def field(
    *,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    on_update: str | None = None,
    version: bool = False,
    db_name: str | None = None,
    validator: Validator | None = None,
    index: bool = False,
    unique: bool = False,
    repr: bool = True,
) -> Any:
    """Declare a Document or Embedded field with uow's options.

    Args:
        default: the value when none is given (and when a stored document lacks it).
        factory: a callable making the default (``factory=list``); not with ``default``.
        on_update: the update operator that persists a change: ``"$set"``,
            ``"$inc"``, ``"$max"``, ``"$min"``, ``"$push"``, ``"$addToSet"`` or
            ``"$currentDate"``. Without it, the smallest faithful change is sent.
        version: an int counter for optimistic concurrency: updates and deletes are
            conditional on it and bump it.
        db_name: the key stored in MongoDB, when it differs from the attribute name.
        validator: an attrs-style ``fn(instance, attribute, value)``; a ``ValueError``
            or ``TypeError`` it raises becomes ``uow.ValidationError``.
        index: declare a single-field index on it.
        unique: declare a unique single-field index on it.
        repr: include the field in the class's repr.

    Raises:
        DefinitionError: for an unknown operator, or both ``default`` and ``factory``.
    """
    if on_update is not None and on_update not in OPERATORS:
        raise DefinitionError(
            f"on_update={on_update!r} is not an operator uow can persist a field with; "
            f"use one of {', '.join(OPERATORS)}"
        )
    if factory is not None and default is not attrs.NOTHING:
        raise DefinitionError("field(): give either default= or factory=, not both")
    if isinstance(default, (list, dict, set)):
        raise DefinitionError(
            f"field(default={default!r}): a mutable default would be shared by every "
            f"instance; use field(factory={type(default).__name__})"
        )
    if version and default is attrs.NOTHING and factory is None:
        default = 0
    options = FieldOptions(
        on_update=on_update,
        version=version,
        db_name=db_name,
        validator=validator,
        index=index,
        unique=unique or False,
    )
    if factory is not None:
        return attrs.field(
            factory=factory, metadata={METADATA_KEY: options}, repr=repr, kw_only=True
        )
    return attrs.field(default=default, metadata={METADATA_KEY: options}, repr=repr, kw_only=True)
