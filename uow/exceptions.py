"""The errors uow raises.

Every error inherits :class:`UowError`, so ``except uow.UowError`` catches them all;
several also inherit the built-in error a Python user would try first::

    UowError
    ├── DefinitionError       (TypeError)       a Document class is declared wrongly
    ├── ValidationError       (ValueError)      a value does not fit its field, or a
    │                                           lookup value would become an operator
    ├── FlushError                              writes failed; says what landed
    │   ├── DuplicateKeyError                   a unique index refused a document
    │   └── StaleDocumentError                  a versioned document changed under us
    ├── NotFound                                ``Query.one()`` / ``dereference`` found nothing
    ├── MultipleFound                           ``Query.one()`` found more than one
    ├── FieldNotLoaded        (AttributeError)  reading a field a partial load left out
    ├── SessionClosedError                      using a session after ``close()``
    ├── NoActiveSession                         ``current_session()`` outside any session
    ├── TooManyRequests                         ``max_requests`` would be exceeded
    └── TransactionError                        transactions unavailable or failed

This module imports nothing from uow, so every other module can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "DefinitionError",
    "DuplicateKeyError",
    "FieldNotLoaded",
    "FlushError",
    "MultipleFound",
    "NoActiveSession",
    "NotFound",
    "SessionClosedError",
    "StaleDocumentError",
    "TooManyRequests",
    "TransactionError",
    "UowError",
    "ValidationError",
]


class UowError(Exception):
    """The root of every error uow raises."""


class DefinitionError(UowError, TypeError):
    """A Document or Embedded class is declared in a way uow cannot store.

    Raised when the class statement runs: an unsupported annotation, a stored name
    that starts with ``$`` or contains ``.``, an ``on_update`` operator that does not
    fit the field's type.
    """


class ValidationError(UowError, ValueError):
    """A value does not fit its field, or user input would become a query operator.

    Attributes name what was wrong: ``document_class`` (class name or ``None``),
    ``field`` (dotted attribute path, or ``None``), ``expected`` and ``value``.
    """

    def __init__(
        self,
        message: str,
        *,
        document_class: str | None = None,
        field: str | None = None,
        expected: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.document_class = document_class
        self.field = field
        self.expected = expected
        self.value = value


class FlushError(UowError):
    """A flush failed part-way or entirely; nothing that was not applied is lost.

    Attributes:
        cause: the driver's exception (also the ``__cause__``).
        documents: the documents whose writes failed.
        applied: the documents whose writes landed (they are clean now, unless
            ``transaction_aborted``).
        not_applied: every document whose write did not land: still queued, so a
            corrected ``flush()`` finishes the work.
        in_doubt: documents whose write may or may not have landed (the reply
            never came: a lost connection, a timeout). Still queued; the next
            flush reads them back before sending anything, so nothing is applied
            twice. ``applied``, ``not_applied`` and ``in_doubt`` never overlap.
        transaction_aborted: the server aborted the enclosing transaction, so every
            change since the last commit is unflushed again.
    """

    def __init__(
        self,
        message: str,
        *,
        cause: BaseException | None = None,
        documents: Sequence[Any] = (),
        applied: Sequence[Any] = (),
        not_applied: Sequence[Any] = (),
        in_doubt: Sequence[Any] = (),
        transaction_aborted: bool = False,
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.documents = list(documents)
        self.applied = list(applied)
        self.not_applied = list(not_applied)
        self.in_doubt = list(in_doubt)
        self.transaction_aborted = transaction_aborted


class DuplicateKeyError(FlushError):
    """A unique index refused a document.

    ``document`` is the refused document (also first in ``documents``); the message
    names its class, its id and the duplicated value.
    """

    @property
    def document(self) -> Any:
        """The document the unique index refused."""
        return self.documents[0] if self.documents else None


class StaleDocumentError(FlushError):
    """A versioned document was changed or deleted by someone else since it was loaded.

    ``documents`` lists the stale documents. Reload them (``refresh``) and retry.
    """


class NotFound(UowError):
    """Nothing matched where exactly one document was required."""


class MultipleFound(UowError):
    """More than one document matched where exactly one was required."""


class FieldNotLoaded(UowError, AttributeError):
    """The field was left out of a partial load (``Query.fields``) or absent when stored."""


class SessionClosedError(UowError):
    """The session was closed; open a new one."""


class NoActiveSession(UowError):
    """``uow.current_session()`` was called outside any session block."""


class TooManyRequests(UowError):
    """The session's ``max_requests`` limit would be exceeded by the next command."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class TransactionError(UowError):
    """Transactions are unavailable on this server, or a transaction failed.

    ``retryable`` is ``True`` when running the same work again may succeed (the
    server labelled the failure ``TransientTransactionError``).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
