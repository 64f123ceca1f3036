"""``UnitOfWorkMiddleware``: one uow session per request, current during the view."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

from ... import _context, service
from ...session import Session

__all__ = ["UnitOfWorkMiddleware", "configure_from_settings"]

logger = logging.getLogger("uow")

_SETTING = "UOW"
_KEYS = frozenset({"URI", "DATABASE", "OPTIONS"})


def configure_from_settings(value: Any = None) -> bool:
    """``uow.configure()`` from the ``UOW`` setting; False when there is none.

    ``UOW = {"URI": "mongodb://...", "DATABASE": "shop", "OPTIONS": {...}}``:
    ``URI`` defaults to ``$UOW_MONGODB_URI`` (else ``mongodb://localhost:27017``),
    ``DATABASE`` to the one named in the URI, ``OPTIONS`` (``Session``'s keyword
    options) to none. The middleware calls this when Django loads it; call it
    yourself where uow is used without requests (a management command, a worker).

    Raises:
        ImproperlyConfigured: ``UOW`` is not a dict of those keys, or names an
            option ``Session`` does not take.
    """
    config = getattr(settings, _SETTING, None) if value is None else value
    if config is None:
        return False
    if not isinstance(config, Mapping) or not set(config) <= _KEYS:
        raise ImproperlyConfigured(
            f"settings.UOW must be a dict with the keys {', '.join(sorted(_KEYS))} "
            f"(all optional), got {config!r}"
        )
    options = config.get("OPTIONS") or {}
    try:
        service.configure(config.get("URI"), config.get("DATABASE"), **options)
    except TypeError as exc:
        raise ImproperlyConfigured(f"settings.UOW['OPTIONS']: {exc}") from exc
    return True


@receiver(setting_changed)
def _setting_changed(*, setting: str, value: Any, **kwargs: Any) -> None:
    # override_settings(UOW=...) in tests reaches the default as it does Django's.
    if setting == _SETTING and value is not None:
        configure_from_settings(value)


#: Responses from this status on are server errors: the unit of work rolls back.
_SERVER_ERROR = 500

class _Request:
    """The unit of work of one request; ``failed`` once the view raised."""

    __slots__ = ("failed", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.failed = False


_request: ContextVar[_Request | None] = ContextVar("uow_django_request", default=None)


class UnitOfWorkMiddleware:
    """One session per request, ``uow.current_session()`` during the view.

    The session is committed when the view returns a response below 500, and
    rolled back when the view raises or the response is a 5xx; then it is
    closed, before the response goes back up through the middleware above this
    one. Put it last in ``MIDDLEWARE`` (closest to the view): its
    ``process_exception`` is then the first to see a view's exception, so a
    middleware above that turns the exception into a normal page cannot get the
    view's half-done work committed.

    Configured by the ``UOW`` setting (see ``configure_from_settings``), or by a
    ``uow.configure()`` call made before Django loads the middleware.

    Raises:
        ImproperlyConfigured: neither ``UOW`` nor ``uow.configure()`` says
            where sessions go (when Django loads the middleware).
    """

    sync_capable = True
    async_capable = False  # uow is synchronous: Django runs this in a thread under ASGI

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        if not configure_from_settings() and not service._is_configured():
            raise ImproperlyConfigured(
                "UnitOfWorkMiddleware needs to know where sessions go: set "
                "UOW = {'URI': 'mongodb://...', 'DATABASE': 'shop'} in settings, "
                "or call uow.configure(...) before Django loads its middleware"
            )

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        session = service._open_session()
        unit = _Request(session)
        session_token = _context.push(session)
        request_token = _request.set(unit)
        try:
            try:
                response = self.get_response(request)
            except BaseException:
                # Only with DEBUG_PROPAGATE_EXCEPTIONS: otherwise Django turns a
                # view's exception into a 500 response before it reaches here.
                logger.debug("request %s raised: rollback", request.path)
                session.rollback()
                raise
            if unit.failed or response.status_code >= _SERVER_ERROR:
                logger.debug("request %s: %s, rollback", request.path, _outcome(unit, response))
                session.rollback()
            else:
                logger.debug("request %s: %s, commit", request.path, response.status_code)
                session.commit()
            return response
        finally:
            _request.reset(request_token)
            _context.pop(session_token)
            session.close()

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """The view raised: its work is rolled back, whatever response follows."""
        unit = _request.get()
        if unit is not None:
            unit.failed = True


def _outcome(unit: _Request, response: HttpResponseBase) -> str:
    if unit.failed:
        return f"the view raised ({response.status_code})"
    return str(response.status_code)
