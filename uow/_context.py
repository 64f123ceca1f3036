"""The current session of a thread or asyncio task (``uow.current_session()``).

A ``ContextVar`` rather than a thread-local, so each asyncio task and each thread
sees the session its own ``with`` block opened, and the outer one again after.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from .exceptions import NoActiveSession

if TYPE_CHECKING:  # the session sits above this module: named for types only
    from .session import Session

__all__ = ["current_session"]

_current: ContextVar[Session | None] = ContextVar("uow_current_session", default=None)


def current_session() -> Session:
    """The session of the innermost ``with Session(...)`` block in this thread or task.

    Raises:
        NoActiveSession: outside any session block.
    """
    session = _current.get()
    if session is None:
        raise NoActiveSession(
            "no uow session is active here: open one with `with Session.connect(...) as s:` "
            "(or uow.unit_of_work()) and call current_session() inside the block"
        )
    return session


def push(session: Any) -> Token[Any]:
    return _current.set(session)


def pop(token: Token[Any]) -> None:
    _current.reset(token)


def peek() -> Any:
    """The current session, or None."""
    return _current.get()
