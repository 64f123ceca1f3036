"""``uow.contrib.django``: the middleware's contract, settings, and the test mixin.

The example project (examples/django_service) is run by Django's own test runner
in tests/test_examples.py; here the middleware is driven directly, so every
branch of its contract is pinned: commit below 500, rollback on a 5xx or an
exception, one session per request and current only during it.
"""

from __future__ import annotations

import unittest
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import django
import pymongo
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.test import RequestFactory, SimpleTestCase
from django.test.utils import override_settings

import uow
from uow import Document, Session, service
from uow._backend import reset_embedded
from uow.contrib.django import UnitOfWorkMiddleware, configure_from_settings
from uow.contrib.django.testing import UnitOfWorkTestMixin

# Settings of this module's own: no project, no SQL database, this module as URLconf.
if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        DATABASES={},
        INSTALLED_APPS=[],
        MIDDLEWARE=["uow.contrib.django.UnitOfWorkMiddleware"],
        ROOT_URLCONF=__name__,
    )
    django.setup()

urlpatterns: list[Any] = []

LANES = [
    pytest.param("mongomock", id="mongomock"),
    pytest.param("secantus", id="secantus", marks=pytest.mark.secantus),
]


class DjNote(Document):
    __collection__ = "notes"

    text: str


@pytest.fixture(autouse=True)
def _keep_default() -> Iterator[None]:
    before = service._snapshot()
    yield
    service._restore(before)


@pytest.fixture(params=LANES)
def uow_setting(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """``settings.UOW`` pointing at a fresh database on one lane."""
    name = f"dj_{uuid.uuid4().hex[:12]}"
    if request.param == "mongomock":
        uri = f"mongomock://django-{uuid.uuid4().hex}"
        with override_settings(UOW={"URI": uri, "DATABASE": name}):
            yield settings.UOW
        reset_embedded(uri)
        return
    server = request.getfixturevalue("secantus_server")
    uri = f"{server.uri}?retryWrites=false"
    with override_settings(UOW={"URI": uri, "DATABASE": name}):
        yield settings.UOW
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    client.drop_database(name)
    client.close()


def stored(setting: dict[str, Any]) -> list[str]:
    with Session.connect(setting["DATABASE"], setting["URI"]) as s:
        return sorted(note.text for note in s.all(DjNote))


def view_writing(text: str, status: int = 200) -> Callable[[HttpRequest], HttpResponseBase]:
    """A view that adds a note through the current session and answers ``status``."""

    def view(request: HttpRequest) -> HttpResponseBase:
        uow.current_session().add(DjNote(text=text))
        return HttpResponse(status=status)

    return view


def call(view: Callable[[HttpRequest], HttpResponseBase]) -> HttpResponseBase:
    return UnitOfWorkMiddleware(view)(RequestFactory().post("/notes/"))


# ----------------------------------------------------------------- outcome


@pytest.mark.parametrize("status", [200, 201, 302, 400, 404, 499])
def test_a_response_below_500_commits(uow_setting: dict[str, Any], status: int) -> None:
    assert call(view_writing("kept", status)).status_code == status
    assert stored(uow_setting) == ["kept"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_response_rolls_back(uow_setting: dict[str, Any], status: int) -> None:
    assert call(view_writing("dropped", status)).status_code == status
    assert stored(uow_setting) == []


def test_an_exception_reaching_the_middleware_rolls_back_and_propagates(
    uow_setting: dict[str, Any],
) -> None:
    # What DEBUG_PROPAGATE_EXCEPTIONS=True, or a middleware below this one, does.
    def view(request: HttpRequest) -> HttpResponseBase:
        uow.current_session().add(DjNote(text="dropped"))
        raise KeyError("view failed")

    with pytest.raises(KeyError, match="view failed"):
        call(view)
    assert stored(uow_setting) == []
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_a_view_exception_turned_into_a_normal_page_still_rolls_back(
    uow_setting: dict[str, Any],
) -> None:
    """Django calls process_exception, then another middleware answers 200."""
    middleware = UnitOfWorkMiddleware(lambda r: HttpResponse())
    exception = ValueError("view failed")

    def handler(request: HttpRequest) -> HttpResponseBase:
        uow.current_session().add(DjNote(text="dropped"))
        assert middleware.process_exception(request, exception) is None
        return HttpResponse("a friendly page", status=200)

    middleware.get_response = handler
    assert middleware(RequestFactory().get("/")).status_code == 200
    assert stored(uow_setting) == []


def test_a_service_joining_the_request_commits_with_it(uow_setting: dict[str, Any]) -> None:
    @uow.unit_of_work()
    def service_call(text: str) -> Session:
        uow.current_session().add(DjNote(text=text))
        return uow.current_session()  # type: ignore[no-any-return]

    seen: list[Session] = []

    def view(request: HttpRequest) -> HttpResponseBase:
        seen.append(service_call("a"))
        seen.append(service_call("b"))
        seen.append(uow.current_session())
        return HttpResponse()

    call(view)
    assert seen[0] is seen[1] is seen[2]
    assert stored(uow_setting) == ["a", "b"]


def test_a_service_failure_caught_by_the_view_fails_the_request(
    uow_setting: dict[str, Any],
) -> None:
    """A view that swallows a service's exception cannot commit half of its work."""

    @uow.unit_of_work()
    def half_done() -> None:
        uow.current_session().add(DjNote(text="half"))
        raise LookupError("second step failed")

    def view(request: HttpRequest) -> HttpResponseBase:
        try:
            half_done()
        except LookupError:
            return HttpResponse("ok anyway")
        return HttpResponse()  # pragma: no cover

    with pytest.raises(uow.TransactionError):
        call(view)
    assert stored(uow_setting) == []


def test_one_session_per_request_current_only_during_the_view(
    uow_setting: dict[str, Any],
) -> None:
    seen: list[Session] = []

    def view(request: HttpRequest) -> HttpResponseBase:
        seen.append(uow.current_session())
        return HttpResponse()

    middleware = UnitOfWorkMiddleware(view)
    middleware(RequestFactory().get("/"))
    middleware(RequestFactory().get("/"))
    assert seen[0] is not seen[1]
    assert all(s.closed for s in seen)
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


# ---------------------------------------------------------------- settings


def test_options_from_settings_reach_the_session(uow_setting: dict[str, Any]) -> None:
    seen: list[Session] = []

    def view(request: HttpRequest) -> HttpResponseBase:
        seen.append(uow.current_session())
        return HttpResponse()

    with override_settings(UOW={**uow_setting, "OPTIONS": {"max_requests": 7}}):
        call(view)
    assert seen[0].max_requests == 7
    assert seen[0].database.name == uow_setting["DATABASE"]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (["mongodb://x"], "must be a dict"),
        ({"URL": "mongodb://x"}, "must be a dict with the keys"),
        ({"DATABASE": "x", "OPTIONS": {"cache": 1}}, r"OPTIONS.*unknown session option"),
    ],
)
def test_a_wrong_setting_is_improperly_configured(value: Any, match: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=match):
        configure_from_settings(value)
    # Through the settings: refused as soon as override_settings changes them.
    with pytest.raises(ImproperlyConfigured, match=match), override_settings(UOW=value):
        UnitOfWorkMiddleware(view_writing("x"))  # pragma: no cover


def test_no_setting_and_no_configure_is_improperly_configured() -> None:
    service._restore((service._Config(None, None, ()), False))
    with pytest.raises(ImproperlyConfigured, match="UOW ="):
        UnitOfWorkMiddleware(view_writing("x"))
    assert configure_from_settings() is False


def test_without_the_setting_uow_configure_is_used() -> None:
    uri = f"mongomock://django-{uuid.uuid4().hex}"
    uow.configure(uri, "configured")
    try:
        call(view_writing("via configure"))
        assert stored({"URI": uri, "DATABASE": "configured"}) == ["via configure"]
    finally:
        reset_embedded(uri)


def test_override_settings_reconfigures_the_default(uow_setting: dict[str, Any]) -> None:
    with uow.unit_of_work() as s:  # the receiver configured the default from UOW
        assert s.database.name == uow_setting["DATABASE"]


# ------------------------------------------------------- the test mixin


class _MixinCase(UnitOfWorkTestMixin, SimpleTestCase):
    __test__ = False  # run by the test below, not collected on its own
    seen: list[tuple[str, int]] = []

    def test_1_writes(self) -> None:
        call(view_writing("one"))
        with uow.unit_of_work() as s:
            self.seen.append((s.database.name, s.count(DjNote)))

    def test_2_starts_clean(self) -> None:
        with uow.unit_of_work() as s:
            self.seen.append((s.database.name, s.count(DjNote)))


def test_the_mixin_gives_each_test_a_clean_database() -> None:
    _MixinCase.seen = []
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(_MixinCase)
    result = unittest.TestResult()
    with override_settings(UOW={"DATABASE": "shop", "URI": "mongomock://not-for-tests"}):
        before = service._snapshot()
        suite.run(result)
        assert service._snapshot() == before  # the default is put back
        assert settings.UOW["URI"] == "mongomock://not-for-tests"
    assert result.wasSuccessful(), result.errors + result.failures
    assert _MixinCase.seen == [("shop", 1), ("shop", 0)]
