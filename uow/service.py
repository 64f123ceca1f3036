"""Service layers: a process-wide default for sessions, and ``unit_of_work()``.

``configure(uri, database, **options)`` says where sessions opened without
arguments go; ``unit_of_work()`` opens one there (a decorator or a ``with``
block), makes it ``current_session()``, commits on success and rolls back on an
exception. Inside a block where a session is already current it joins that one
instead, like Django's ``atomic``: MongoDB has no savepoints, so a joined block
neither commits nor rolls back, and an exception leaving it marks the session so
that its commit refuses until ``rollback()``.

The default holds one client per process, made on first use: a pymongo client
is a connection pool meant to be shared, so a unit of work costs a session, not
a connection.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

import attrs

from . import _backend, _context
from .exceptions import UowError
from .session import Session

__all__ = ["UnitOfWork", "configure", "unit_of_work"]

logger = logging.getLogger("uow")

P = ParamSpec("P")
R = TypeVar("R")


def _session_option_names() -> frozenset[str]:
    parameters = inspect.signature(Session.__init__).parameters
    return frozenset(
        name
        for name, parameter in parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    )


_SESSION_OPTIONS = _session_option_names()


def _check_options(where: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - _SESSION_OPTIONS)
    if unknown:
        raise TypeError(
            f"{where}() got unknown session option(s) {', '.join(unknown)}; "
            f"the options are those of Session: {', '.join(sorted(_SESSION_OPTIONS))}"
        )


@attrs.frozen
class _Config:
    """What ``configure()`` was given; compared by value, so the same call twice is free."""

    uri: str | None
    database: str | None
    options: tuple[tuple[str, Any], ...]


class _Default:
    """The process's default: what ``configure()`` was given, and its one client."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config = _Config(None, None, ())
        self.configured = False
        self.client: Any = None  # made from config on first use, under lock

    def replace(self, config: _Config, configured: bool) -> None:
        """Switch to ``config``, closing the client of the previous one (if made)."""
        with self.lock:
            if (config, configured) == (self.config, self.configured):
                return
            old_client, self.client = self.client, None
            self.config, self.configured = config, configured
        if old_client is not None:
            old_client.close()


_default = _Default()


def configure(uri: str | None = None, database: str | None = None, **session_options: Any) -> None:
    """Set the process's default for sessions opened without arguments.

    ``uow.unit_of_work()``, ``UnitOfWorkMiddleware`` and the testing fixtures open
    their sessions here. ``uri`` works as in ``Session.connect``: ``None`` means
    ``$UOW_MONGODB_URI``, else ``mongodb://localhost:27017``; ``mongomock://name``
    is the embedded backend. ``database`` defaults to the one named in the URI
    (``mongodb://host/shop``). ``session_options`` are ``Session``'s keyword
    options (``max_requests=50``, ``echo=True``...), applied to every session
    opened from this default.

    Nothing connects here: the one client of the default is made on first use
    (so a process that forks after ``configure`` is fine). Configuring again with
    other values closes that client: call it at start-up and in tests, not while
    sessions of the previous configuration are open. The same values again change
    nothing.

    Raises:
        TypeError: an option that ``Session`` does not take.
    """
    _check_options("configure", session_options)
    _default.replace(_Config(uri, database, tuple(sorted(session_options.items()))), True)
    logger.debug("uow.configure: uri=%r database=%r options=%r", uri, database, session_options)


def _snapshot() -> tuple[_Config, bool]:
    """The current default, for fixtures that change it and put it back."""
    with _default.lock:
        return _default.config, _default.configured


def _restore(snapshot: tuple[_Config, bool]) -> None:
    """Put back a default taken by ``_snapshot()`` (closing the client made since)."""
    _default.replace(*snapshot)


def _is_configured() -> bool:
    """Whether ``configure()`` was called in this process."""
    return _snapshot()[1]


def _open_session(**session_options: Any) -> Session:
    """A new session on the configured default, ``session_options`` overriding its options.

    The session uses the default's shared client and does not close it.

    Raises:
        TypeError: an option that ``Session`` does not take.
        UowError: no database was configured and the URI names none.
    """
    _check_options("unit_of_work", session_options)
    with _default.lock:
        config = _default.config
        if _default.client is None:
            _default.client = _backend.make_client(config.uri)
        client = _default.client
    options = dict(config.options)
    options.update(session_options)
    return Session(client[_database_name(config, client)], **options)


def _database_name(config: _Config, client: Any) -> str:
    if config.database is not None:
        return config.database
    if not _backend.is_mongomock(client):
        from pymongo.errors import ConfigurationError

        try:
            return str(client.get_default_database().name)
        except ConfigurationError:
            pass
    raise UowError(
        "no database to open a session on: call uow.configure(database='shop') at "
        "start-up (or name it in the URI, mongodb://host/shop); in Django, set "
        "UOW = {'DATABASE': 'shop', ...} in settings"
    )


@attrs.define
class _Frame:
    session: Session
    joined: bool


class UnitOfWork:
    """What ``unit_of_work()`` returns: a context manager, and a decorator.

    As a decorator each call of the function is a unit of work of its own, so a
    decorated function is safe to call from many threads and tasks at once. As a
    ``with`` block one object serves one block at a time (nesting is fine).
    """

    def __init__(self, options: dict[str, Any], name: str | None = None) -> None:
        self._options = options
        self._name = name
        self._frames: list[_Frame] = []

    def __enter__(self) -> Session:
        current = _context.peek()
        if current is not None and not current.closed:
            self._frames.append(_Frame(current, joined=True))
            logger.debug("unit_of_work%s: joined the current %r", self._where(), current)
            return cast(Session, current)
        session = _open_session(**self._options)
        session.__enter__()  # current from here until __exit__
        self._frames.append(_Frame(session, joined=False))
        logger.debug("unit_of_work%s: opened %r", self._where(), session)
        return session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        frame = self._frames.pop()
        session = frame.session
        if not frame.joined:
            outcome = "commit" if exc_type is None else "rollback"
            logger.debug("unit_of_work%s: %s and close %r", self._where(), outcome, session)
            session.__exit__(exc_type, exc, tb)
            return
        if exc_type is None or session.closed:
            return
        # Half of this block's work may be queued or flushed, and MongoDB cannot
        # undo only that half: the whole outer unit of work must not commit.
        reason = (
            f"{exc_type.__name__}: {exc} left a unit_of_work block{self._where()} "
            "that had joined this session; rollback() it, or let the exception "
            "reach the block that opened the session"
        )
        logger.debug("unit_of_work%s: %r marked rollback-only", self._where(), session)
        session._mark_rollback_only(reason)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func``: every call runs in a unit of work (joined where one is current)."""
        options = self._options
        name = getattr(func, "__qualname__", None) or repr(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with UnitOfWork(options, name):
                    return await func(*args, **kwargs)

            return cast(Callable[P, R], run_async)

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with UnitOfWork(options, name):
                return func(*args, **kwargs)

        return run

    def _where(self) -> str:
        return f" of {self._name}" if self._name else ""

    def __repr__(self) -> str:
        return f"<UnitOfWork{self._where()} options={self._options!r}>"


@overload
def unit_of_work(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def unit_of_work(**session_options: Any) -> UnitOfWork: ...


def unit_of_work(
    func: Callable[P, R] | None = None, /, **session_options: Any
) -> UnitOfWork | Callable[P, R]:
    """A unit of work: ``@uow.unit_of_work()`` or ``with uow.unit_of_work() as s:``.

    ``@uow.unit_of_work`` without parentheses decorates too, with no options.

    Opens a session on the ``configure()``d default (``session_options``
    overriding its options), makes it ``uow.current_session()``, commits when
    the block or function returns, rolls back when an exception leaves it, and
    closes it. Where a session is already current (any ``with`` block, the
    Django middleware, an outer unit of work), it joins that session instead and
    ``session_options`` are not used: a joined block neither commits nor rolls
    back, and an exception leaving it marks the session so that its
    ``commit()`` raises ``uow.TransactionError`` until ``rollback()`` (MongoDB
    has no savepoints, so half of a unit of work is never committed).

    Raises:
        TypeError: an option that ``Session`` does not take (when called).
        UowError: when the block opens a session and no database is configured.
    """
    _check_options("unit_of_work", session_options)
    work = UnitOfWork(session_options)
    if func is None:
        return work
    if not callable(func):
        raise TypeError(
            f"unit_of_work() takes session options as keywords, got {func!r}; "
            "write @uow.unit_of_work or @uow.unit_of_work(option=...)"
        )
    return work(func)
