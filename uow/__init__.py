"""uow: a unit-of-work ORM for MongoDB.

A ``Session`` keeps an identity map and a queue of pending inserts, updates and
deletes; ``flush()`` writes them in as few round trips as the work allows.
Documents are attrs classes whose fields may name the update operator that
persists them.
"""

from ._context import current_session
from ._reading import Query, RemoveQuery
from ._state import ObjectState
from .document import Document, Embedded, Index, Ref
from .exceptions import (
    DefinitionError,
    DuplicateKeyError,
    FieldNotLoaded,
    FlushError,
    MultipleFound,
    NoActiveSession,
    NotFound,
    SessionClosedError,
    StaleDocumentError,
    TooManyRequests,
    TransactionError,
    UowError,
    ValidationError,
)
from .fields import field
from .query import q
from .service import configure, unit_of_work
from .session import FlushResult, Session, SessionStats

__version__ = "0.1.0.dev0"

__all__ = [
    "DefinitionError",
    "Document",
    "DuplicateKeyError",
    "Embedded",
    "FieldNotLoaded",
    "FlushError",
    "FlushResult",
    "Index",
    "MultipleFound",
    "NoActiveSession",
    "NotFound",
    "ObjectState",
    "Query",
    "Ref",
    "RemoveQuery",
    "Session",
    "SessionClosedError",
    "SessionStats",
    "StaleDocumentError",
    "TooManyRequests",
    "TransactionError",
    "UowError",
    "ValidationError",
    "configure",
    "current_session",
    "field",
    "q",
    "unit_of_work",
]
