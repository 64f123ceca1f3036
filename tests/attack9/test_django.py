"""uow.contrib.django.UnitOfWorkMiddleware with Django's test client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="tests.attack9._django_urls",
        MIDDLEWARE=["uow.contrib.django.UnitOfWorkMiddleware"],
        INSTALLED_APPS=[],
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.test import Client, override_settings  # noqa: E402

import uow  # noqa: E402

from . import _django_urls as views  # noqa: E402
from ._models import Note  # noqa: E402


@pytest.fixture(params=["mongomock", "secantus"])
def site(request: pytest.FixtureRequest) -> Iterator[Any]:
    """(raw database, UOW setting) on one lane."""
    views.SEEN.clear()
    name = f"a9dj_{uuid.uuid4().hex[:8]}"
    if request.param == "mongomock":
        from uow._backend import make_client

        uri = request.getfixturevalue("embedded_uri")
        raw = make_client(uri)[name]
    else:
        uri = request.getfixturevalue("secantus_server").uri
        raw = request.getfixturevalue("secantus_client")[name]
    with override_settings(UOW={"URI": uri, "DATABASE": name, "OPTIONS": {}}):
        yield raw
    uow.configure()
    raw.client.drop_database(name)


def notes(raw: Any) -> list[str]:
    return [d["text"] for d in raw[Note._uow_meta.collection].find()]


def test_django_commits_on_200(site: Any) -> None:
    r = Client().get("/ok", {"text": "hi"})
    assert r.status_code == 200
    n = views.SEEN["note"]
    assert list(site[Note._uow_meta.collection].find()) == [{"_id": n.id, "text": "hi"}]
    assert views.SEEN["session"].closed
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_django_commits_on_404_response(site: Any) -> None:
    r = Client().get("/nf", {"text": "nf"})
    assert r.status_code == 404
    assert notes(site) == ["nf"]


@pytest.mark.parametrize("url", ["/err", "/unavail"])
@pytest.mark.parametrize("flush", ["", "1"])
def test_django_rolls_back_on_5xx(site: Any, url: str, flush: str) -> None:
    r = Client().get(url, {"text": "no", "flush": flush})
    assert r.status_code >= 500
    if flush and site.client.__class__.__module__.startswith("mongomock"):
        # without transactions what a flush wrote stays
        assert notes(site) == ["no"]
    else:
        assert notes(site) == []
    assert views.SEEN["session"].closed


@pytest.mark.parametrize("flush", ["", "1"])
def test_django_rolls_back_on_exception(site: Any, flush: str) -> None:
    c = Client(raise_request_exception=False)
    r = c.get("/boom", {"text": "no", "flush": flush})
    assert r.status_code == 500
    if flush and site.client.__class__.__module__.startswith("mongomock"):
        assert notes(site) == ["no"]
    else:
        assert notes(site) == []
    assert views.SEEN["session"].closed


def test_django_exception_propagates_to_test_client(site: Any) -> None:
    with pytest.raises(RuntimeError):
        Client().get("/boom", {"text": "no"})
    assert notes(site) == []
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_django_one_session_per_request(site: Any) -> None:
    c = Client()
    c.get("/who")
    c.get("/who")
    a, b = views.SEEN["sessions"]
    assert a is not b
    assert a.closed and b.closed


def test_django_joined_unit_of_work_exception_not_committed(site: Any) -> None:
    """A view swallows the exception of a joined unit_of_work: half a unit of work
    is never committed (SPEC: the commit raises TransactionError)."""
    c = Client(raise_request_exception=False)
    r = c.get("/joined", {"text": "outer"})
    assert views.SEEN["joined"] is views.SEEN["session"]
    assert notes(site) == []
    assert r.status_code in {500, 200}


def test_django_options_applied(site: Any) -> None:
    with override_settings(UOW={**settings.UOW, "OPTIONS": {"max_requests": 0}}):
        c = Client(raise_request_exception=False)
        c.get("/ok", {"text": "x", "flush": "1"})
    assert notes(site) == []


def test_django_bad_option_improperly_configured(site: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with (
        pytest.raises(ImproperlyConfigured),
        override_settings(UOW={**settings.UOW, "OPTIONS": {"nope": 1}}),
    ):
        Client().get("/ok")


def test_django_exception_turned_into_page_above_still_rolls_back(site: Any) -> None:
    with override_settings(
        MIDDLEWARE=[
            "tests.attack9._django_urls.ExceptionToPage",
            "uow.contrib.django.UnitOfWorkMiddleware",
        ]
    ):
        r = Client().get("/boom", {"text": "no", "flush": "1"})
    assert r.status_code == 200
    if site.client.__class__.__module__.startswith("mongomock"):
        assert notes(site) == ["no"]  # flushed without a transaction stays
    else:
        assert notes(site) == []
    assert views.SEEN["session"].closed
