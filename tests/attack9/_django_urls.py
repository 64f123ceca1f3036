"""URLconf and views for the attack9 Django middleware tests."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.urls import path

import uow

from ._models import Note

#: What the views saw, for the tests to inspect.
SEEN: dict[str, Any] = {}


def _add(request: HttpRequest) -> Note:
    s = uow.current_session()
    SEEN["session"] = s
    n = Note(text=request.GET.get("text", "x"))
    s.add(n)
    SEEN["note"] = n
    if request.GET.get("flush"):
        s.flush()
    return n


def ok(request: HttpRequest) -> HttpResponse:
    _add(request)
    return HttpResponse("ok")


def not_found(request: HttpRequest) -> HttpResponse:
    _add(request)
    return HttpResponseNotFound("nf")


def server_error(request: HttpRequest) -> HttpResponse:
    _add(request)
    return HttpResponse("bad", status=500)


def unavailable(request: HttpRequest) -> HttpResponse:
    _add(request)
    return HttpResponse("later", status=503)


def boom(request: HttpRequest) -> HttpResponse:
    _add(request)
    raise RuntimeError("boom")


def two_sessions(request: HttpRequest) -> HttpResponse:
    SEEN.setdefault("sessions", []).append(uow.current_session())
    return HttpResponse("ok")


def unit_of_work_joined(request: HttpRequest) -> HttpResponse:
    _add(request)
    try:
        with uow.unit_of_work() as s:
            SEEN["joined"] = s
            s.add(Note(text="inner"))
            raise ValueError
    except ValueError:
        pass
    return HttpResponse("swallowed")


urlpatterns = [
    path("ok", ok),
    path("nf", not_found),
    path("err", server_error),
    path("unavail", unavailable),
    path("boom", boom),
    path("who", two_sessions),
    path("joined", unit_of_work_joined),
]


class ExceptionToPage:
    """A middleware that turns any view exception into a normal 200 page."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse:
        return HttpResponse("handled", status=200)
