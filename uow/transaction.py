"""A session's MongoDB transaction, with explicit states.

``Transaction`` is in one of three states (``TxState``): ``NONE`` (no
transaction open: the next flush begins one), ``ACTIVE`` (begun: the flushes
write in it) and ``COMMITTING`` (commitTransaction sent, retried while its
outcome is unknown). Each method that changes the state declares the states it
may be called in (``@_requires``), as SQLAlchemy's ``SessionTransaction`` does:
a call in another state is a bug in uow, refused with ``IllegalStateChange``.

::

    NONE --begin--> ACTIVE --commit--> COMMITTING --(landed, or failed)--> NONE
                      |--abort / failed--> NONE

``transaction_block`` and ``run_in_transaction`` are ``Session.transaction()``
and ``Session.run_in_transaction()``: pymongo's retry rules over a session's
``commit`` and ``rollback``.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pymongo.errors import PyMongoError, WriteConcernError

from ._channel import Channel
from ._tracker import Tracker
from .exceptions import FlushError, TransactionError

if TYPE_CHECKING:
    from ._indoubt import Doubts
    from .document import Document

__all__: list[str] = []

logger = logging.getLogger("uow")

T = TypeVar("T")
S = TypeVar("S", bound="_Committing")
F = TypeVar("F", bound=Callable[..., Any])


class TxState(enum.Enum):
    """Where a session's transaction stands."""

    #: no transaction is open (the next flush of a transactional session begins one)
    NONE = "none"
    #: begun: flushes write in it
    ACTIVE = "active"
    #: commitTransaction sent (and retried while its outcome is unknown)
    COMMITTING = "committing"


_NONE, _ACTIVE, _COMMITTING = TxState.NONE, TxState.ACTIVE, TxState.COMMITTING


class IllegalStateChange(TransactionError):
    """A transaction method was called in a state it does not accept (a bug in uow)."""


def _requires(*states: TxState) -> Callable[[F], F]:
    """Declare the states a ``Transaction`` method may be called in."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def checked(self: Transaction, *args: Any, **kwargs: Any) -> Any:
            if self.state not in states:
                allowed = " or ".join(s.name for s in states)
                raise IllegalStateChange(
                    f"Transaction.{method.__name__}() needs {allowed}; the transaction "
                    f"is {self.state.name}"
                )
            return method(self, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


class Transaction:
    """One session's transaction: begin, commit (with retries), abort; see the module docstring.

    ``enabled``: whether the session's commits run in transactions at all.
    """

    def __init__(
        self,
        channel: Channel,
        tracker: Tracker,
        doubts: Doubts,
        *,
        enabled: bool,
        supported: bool,
        options: dict[str, Any],
        retry_s: float,
    ) -> None:
        self._channel = channel
        self._tracker = tracker
        self._doubts = doubts
        self.enabled = enabled
        self._supported = supported
        #: the session's concerns: given to start_transaction, not to its commands
        self._options = options
        self.retry_s = retry_s
        self.state = _NONE
        #: why commits are refused until rollback() (a joined unit of work failed)
        self.rollback_only: str | None = None
        #: transaction() blocks (and run_in_transaction calls) open now: an inner
        #: one joins the outermost, which alone commits or rolls back
        self.blocks = 0

    @property
    def active(self) -> bool:
        """Whether a transaction is open (begun, or committing)."""
        return self.state is not _NONE

    def require(self, what: str) -> None:
        """Raises ``TransactionError`` if this session runs no transactions."""
        if not self.enabled:
            reason = (
                "this server has no transactions (they need a replica set or a sharded cluster)"
                if not self._supported
                else "the session was opened with transactional=False"
            )
            raise TransactionError(f"{what}: {reason}")

    def check_can_commit(self) -> None:
        """Raises ``TransactionError`` if the session was marked rollback-only."""
        if self.rollback_only is not None:
            raise TransactionError(
                f"this session cannot commit: {self.rollback_only}. Call rollback() "
                "first: MongoDB has no savepoints, so half a unit of work is never committed"
            )

    def begin_if_needed(self) -> None:
        """Begin a transaction if the session runs them and none is open."""
        if self.enabled and self.state is _NONE:
            self.begin()

    @_requires(_NONE)
    def begin(self) -> None:
        self._channel.driver_session.start_transaction(**self._options)
        self.state = _ACTIVE

    @_requires(_ACTIVE)
    def commit(self) -> PyMongoError | None:
        """commitTransaction, retried while its outcome is unknown (as pymongo's
        ``with_transaction`` does), within ``retry_s``.

        Returns the error of a commit that was applied but whose write concern
        failed (not a timeout: that outcome is unknown, and retried).

        Raises:
            TransactionError: the server aborted the transaction (everything is
                queued again), or the outcome stayed unknown (queued again, in doubt).
        """
        self.state = _COMMITTING
        try:
            return self._commit()
        finally:
            if self.state is _COMMITTING:
                # Interrupted before any answer (refused by max_requests, a
                # KeyboardInterrupt): still open, as it was; commit() may run again.
                self.state = _ACTIVE

    def _commit(self) -> PyMongoError | None:
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                commit = self._channel.driver_session.commit_transaction
                self._channel.send("commitTransaction", "admin", commit, None)
            except PyMongoError as exc:
                unknown = exc.has_error_label("UnknownTransactionCommitResult")
                if unknown and not _max_time_expired(exc) and time.monotonic() < deadline:
                    logger.info("commitTransaction outcome unknown (%s); retrying", exc)
                    continue
                if unknown:
                    self._commit_unknown(exc)
                if isinstance(exc, WriteConcernError):
                    self.state = _NONE  # committed: only durability is in question
                    return exc
                retryable = exc.has_error_label("TransientTransactionError")
                self.failed(abort=False)
                raise TransactionError(
                    f"the transaction could not commit: {exc}. Nothing of it was applied; "
                    + Tracker.REQUEUED
                    + ("; run the work again (or use run_in_transaction)" if retryable else ""),
                    retryable=retryable,
                ) from exc
            self.state = _NONE
            return None

    def _commit_unknown(self, exc: PyMongoError) -> None:
        """The commit's outcome stayed unknown: queue it all again, as in doubt."""
        ops = list(self._tracker.tx_ops)
        self.failed(abort=False)
        if ops:
            self._doubts.add(True, ops)
        if _max_time_expired(exc):
            # As pymongo's with_transaction: the commit's time limit ran out, and
            # sending it again would run out the same way.
            why = "its time limit ran out (MaxTimeMSExpired), so it was not retried"
        else:
            why = f"after retrying for {self.retry_s} s"
        raise TransactionError(
            f"the outcome of commitTransaction is unknown: {why} ({exc}); the "
            "transaction may or may not have committed. Its changes are queued again "
            "as in doubt: the next flush first reads back whether they landed and sends "
            "only what is missing (a write it cannot check is refused, never applied "
            "twice). rollback() forgets them instead.",
            retryable=False,
        ) from exc

    @_requires(_ACTIVE, _COMMITTING)
    def abort(self) -> None:
        """abortTransaction; its failure is ignored (the server aborts it anyway)."""
        self.state = _NONE
        try:
            self._channel.send_unlimited(
                "abortTransaction", self._channel.driver_session.abort_transaction
            )
        except Exception as exc:
            logger.debug("abortTransaction failed (ignored): %s", exc)

    @_requires(_ACTIVE, _COMMITTING)
    def failed(self, *, abort: bool = True) -> list[Document]:
        """The open transaction is aborted (by the server, or by ``abort``): queue
        all of it again (``Tracker.requeue_transaction``).

        ``abort=False`` when a commit was sent (the driver cannot abort after that;
        the server aborted it, or will when it expires). Returns the documents
        whose writes are unflushed again.
        """
        if abort:
            self.abort()
        else:
            self.state = _NONE
        return self._tracker.requeue_transaction()


class _Committing(Protocol):
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def has_changes(self) -> bool: ...


@contextlib.contextmanager
def transaction_block(session: S, tx: Transaction) -> Iterator[S]:
    """``Session.transaction()``: run the block's flushes in one transaction.

    Inside another block (or ``run_in_transaction``'s function) it joins that
    one, as a joined ``unit_of_work`` does: it neither commits nor rolls back,
    and an exception leaving it marks the session so that the outermost block
    rolls everything back and raises ``TransactionError`` (MongoDB has no
    savepoints: half of a unit of work is never committed).
    """
    tx.require("transaction()")
    if tx.blocks:
        tx.blocks += 1
        try:
            yield session
        except BaseException as exc:
            if tx.rollback_only is None:
                tx.rollback_only = f"a transaction() block inside another one failed ({exc!r})"
            raise
        finally:
            tx.blocks -= 1
        return
    tx.blocks = 1
    try:
        yield from _outermost_block(session, tx)
    finally:
        tx.blocks = 0


def _outermost_block(session: S, tx: Transaction) -> Iterator[S]:
    marked_before = tx.rollback_only
    try:
        yield session
    except BaseException as exc:
        session.rollback()
        if isinstance(exc, (FlushError, PyMongoError)) and _transient(exc):
            raise TransactionError(
                f"the transaction was aborted by the server ({_cause(exc)}) and rolled "
                "back; run the block again (or use run_in_transaction)",
                retryable=True,
            ) from exc
        raise
    if tx.rollback_only is not None and marked_before is None:
        # A block inside this one failed: the unit is rolled back whole.
        reason = tx.rollback_only
        session.rollback()
        raise TransactionError(
            f"the transaction was rolled back: {reason}. Nothing of the block was "
            "committed (MongoDB has no savepoints); run it again"
        )
    try:
        session.commit()
    except TransactionError as exc:
        if exc.retryable:
            session.rollback()
        raise
    except FlushError as exc:
        if _transient(exc):
            session.rollback()
            raise TransactionError(
                f"the transaction was aborted by the server ({exc.cause}) and rolled "
                "back; run the block again (or use run_in_transaction)",
                retryable=True,
            ) from exc
        raise


def run_in_transaction(
    session: _Committing, tx: Transaction, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """``Session.run_in_transaction()``: call ``fn``, commit; retry what is transient.

    A retry starts with a rollback, so it is automatic only where that drops
    nothing but ``fn``'s own work: inside a ``transaction()`` block it is
    refused, and with work queued (or a transaction open) before the call, a
    transient failure rolls back and raises ``TransactionError``
    (``retryable = True``) instead of running ``fn`` again without that work.
    """
    tx.require("run_in_transaction()")
    if tx.blocks:
        raise TransactionError(
            "run_in_transaction() inside a transaction() block: its retries roll the "
            "session back, which would drop the block's work. Call the function in "
            "the block, or run_in_transaction() outside it"
        )
    earlier_work = tx.active or session.has_changes()
    tx.blocks = 1
    try:
        return _attempts(session, tx, earlier_work, fn, *args, **kwargs)
    finally:
        tx.blocks = 0


def _attempts(
    session: _Committing,
    tx: Transaction,
    earlier_work: bool,
    fn: Callable[..., T],
    *args: Any,
    **kwargs: Any,
) -> T:
    start = time.monotonic()
    deadline = start + tx.retry_s
    attempt = 0
    while True:
        attempt += 1
        try:
            result = fn(*args, **kwargs)
            session.commit()
            return result
        except (TransactionError, FlushError, PyMongoError) as exc:
            retryable = exc.retryable if isinstance(exc, TransactionError) else _transient(exc)
            session.rollback()
            if not retryable:
                raise
            if earlier_work:
                raise TransactionError(
                    f"the transaction was aborted by the server ({_cause(exc)}) and rolled "
                    "back, with the work queued before run_in_transaction(): it is not "
                    "run again without that work. Commit (or roll back) before calling "
                    "run_in_transaction() to get automatic retries",
                    retryable=True,
                ) from exc
            # pymongo's backoff: jittered, growing, at most half a second.
            backoff = random.random() * min(0.005 * 1.5**attempt, 0.5)
            if time.monotonic() + backoff >= deadline:
                raise TransactionError(
                    f"run_in_transaction gave up after {attempt} attempts in {tx.retry_s} s: {exc}",
                    retryable=True,
                ) from exc
            logger.info("transaction attempt %d aborted (%s); running it again", attempt, exc)
            time.sleep(backoff)
        except BaseException:
            session.rollback()
            raise


#: The server's error code for MaxTimeMSExpired.
_MAX_TIME_MS_EXPIRED = 50


def _max_time_expired(exc: PyMongoError) -> bool:
    """MaxTimeMSExpired: pymongo's with_transaction does not retry such a commit."""
    return getattr(exc, "code", None) == _MAX_TIME_MS_EXPIRED


def _cause(exc: BaseException) -> BaseException:
    return exc.cause or exc if isinstance(exc, FlushError) else exc


def _transient(exc: BaseException) -> bool:
    """Whether the server labelled the failure TransientTransactionError."""
    cause = exc.cause if isinstance(exc, FlushError) else exc
    has_label = getattr(cause, "has_error_label", None)
    return bool(has_label is not None and has_label("TransientTransactionError"))
