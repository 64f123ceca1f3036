"""``UnitOfWork``: one uow session per Flask request, current during the view.

The same per-request behaviour as ``uow.contrib.django.UnitOfWorkMiddleware``;
Flask's hooks split it in three: ``before_request`` opens the session and makes
it current, ``after_request`` commits or rolls back while the response can still
become an error, ``teardown_request`` closes it whatever happened.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, g, request

from ... import _context, service
from ...session import Session

__all__ = ["UnitOfWork", "configure_from_config"]

logger = logging.getLogger("uow")

_KEYS = ("UOW_URI", "UOW_DATABASE", "UOW_OPTIONS")
_G_KEY = "_uow_request"


def configure_from_config(config: Mapping[str, Any]) -> bool:
    """``uow.configure()`` from a Flask config; False when it has no ``UOW_*`` key.

    ``UOW_URI`` defaults to ``$UOW_MONGODB_URI`` (else ``mongodb://localhost:27017``),
    ``UOW_DATABASE`` to the one named in the URI, ``UOW_OPTIONS`` (a dict of
    ``Session``'s keyword options) to none. ``init_app`` calls this; call it
    yourself where uow is used outside requests (a CLI command, a worker).

    Raises:
        RuntimeError: ``UOW_OPTIONS`` is not a dict, or names an option
            ``Session`` does not take.
    """
    if not any(key in config for key in _KEYS):
        return False
    options = config.get("UOW_OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise RuntimeError(
            f"app.config['UOW_OPTIONS'] must be a dict of Session options "
            f"(e.g. {{'max_requests': 50}}), got {options!r}"
        )
    try:
        service.configure(config.get("UOW_URI"), config.get("UOW_DATABASE"), **options)
    except TypeError as exc:
        raise RuntimeError(f"app.config['UOW_OPTIONS']: {exc}") from exc
    return True

#: Responses from this status on are server errors: the unit of work rolls back.
_SERVER_ERROR = 500


class _Request:
    """The unit of work of one request; ``failed`` once the view raised."""

    __slots__ = ("failed", "session", "token")

    def __init__(self, session: Session, token: Any) -> None:
        self.session = session
        self.token = token
        self.failed = False


class UnitOfWork:
    """One session per request, ``uow.current_session()`` during the view.

    Committed when the view returns a response below 500; rolled back when the
    view raises (an ``abort(404)`` too, and even when an error handler turns the
    exception into a response) or the response is a 5xx; closed at the end of
    the request in every case.

    Configured by ``app.config``: ``UOW_URI``, ``UOW_DATABASE``, ``UOW_OPTIONS``
    (see ``configure_from_config``), or by a ``uow.configure()`` call made before
    ``init_app``.

    Raises:
        RuntimeError: neither the config nor ``uow.configure()`` says where
            sessions go (in ``init_app``).
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Open a session for each request of ``app``.

        Raises:
            RuntimeError: as for the class.
        """
        if not configure_from_config(app.config) and not service._is_configured():
            raise RuntimeError(
                "uow.contrib.flask.UnitOfWork needs to know where sessions go: set "
                "app.config['UOW_URI'] and app.config['UOW_DATABASE'] (and optionally "
                "UOW_OPTIONS) before init_app, or call uow.configure(...) first"
            )
        app.extensions["uow"] = self
        app.before_request(_open)
        app.after_request(_finish)
        app.teardown_request(_close)
        # Flask hands an exception a view raised to its error handlers, which may
        # turn it into a 4xx response: the view's work must still be rolled back,
        # so the failure is noted where the view is called.
        app.dispatch_request = _noting_failure(app.dispatch_request)  # type: ignore[method-assign]


def _open() -> None:
    session = service._open_session()
    g.setdefault(_G_KEY, _Request(session, _context.push(session)))


def _noting_failure(dispatch: Callable[[], Any]) -> Callable[[], Any]:
    @functools.wraps(dispatch)
    def dispatch_request() -> Any:
        try:
            return dispatch()
        except BaseException:
            unit: _Request | None = g.get(_G_KEY)
            if unit is not None:
                unit.failed = True
            raise

    return dispatch_request


def _finish(response: Response) -> Response:
    unit: _Request | None = g.get(_G_KEY)
    if unit is None or unit.session.closed:
        return response
    if unit.failed or response.status_code >= _SERVER_ERROR:
        outcome = "the view raised" if unit.failed else str(response.status_code)
        logger.debug("request %s: %s, rollback", request.path, outcome)
        unit.session.rollback()
    else:
        logger.debug("request %s: %s, commit", request.path, response.status_code)
        # A commit that fails raises here: Flask answers 500, not the view's 2xx.
        unit.session.commit()
    return response


def _close(exc: BaseException | None) -> None:
    unit: _Request | None = g.pop(_G_KEY, None)
    if unit is None:
        return
    try:
        if exc is not None and not unit.session.closed:
            unit.session.rollback()
    finally:
        _context.pop(unit.token)
        unit.session.close()
