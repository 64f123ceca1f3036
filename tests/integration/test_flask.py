"""``uow.contrib.flask``: the extension's contract, driven through Flask's test client.

The example app (examples/flask_service) runs its own tests in
tests/test_examples.py; here every branch is pinned: commit below 500, rollback
on a 5xx or on any exception the view raised (handled by an error handler or
not), one session per request, current only during it, configuration errors.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, abort

import uow
from uow import Document, service
from uow._backend import reset_embedded
from uow.contrib.flask import UnitOfWork, configure_from_config


class FlNote(Document):
    __collection__ = "fl_notes"
    __indexes__ = [uow.Index("text", unique=True)]

    text: str


class Refused(Exception):
    pass


@pytest.fixture(autouse=True)
def _keep_default() -> Iterator[None]:
    before = service._snapshot()
    yield
    service._restore(before)


@pytest.fixture
def config() -> Iterator[dict[str, Any]]:
    uri = f"mongomock://flask-{uuid.uuid4().hex}"
    yield {"UOW_URI": uri, "UOW_DATABASE": "fl", "UOW_OPTIONS": {"max_requests": 20}}
    reset_embedded(uri)


def _app(config: dict[str, Any], *, later: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    if later:
        unit = UnitOfWork()
        unit.init_app(app)
    else:
        UnitOfWork(app)

    def add(text: str) -> None:
        uow.current_session().add(FlNote(text=text))

    @app.post("/ok/<text>")
    def ok(text: str) -> tuple[str, int]:
        add(text)
        return "created", 201

    @app.post("/client-error/<text>")
    def client_error(text: str) -> tuple[str, int]:
        add(text)
        return "refused, but what was done stays", 400

    @app.post("/server-error/<text>")
    def server_error(text: str) -> tuple[str, int]:
        add(text)
        return "unavailable", 503

    @app.post("/raises/<text>")
    def raises(text: str) -> str:
        add(text)
        raise RuntimeError("boom")

    @app.post("/handled/<text>")
    def handled(text: str) -> str:
        add(text)
        raise Refused(text)

    @app.post("/abort/<text>")
    def aborted(text: str) -> str:
        add(text)
        abort(404)

    @app.errorhandler(Refused)
    def refused(exc: Refused) -> tuple[str, int]:
        return "refused", 409

    return app


def _stored() -> list[str]:
    with uow.unit_of_work() as s:
        return sorted(n.text for n in s.all(FlNote))


@pytest.mark.parametrize("later", [False, True], ids=["UnitOfWork(app)", "init_app"])
def test_a_response_below_500_commits(config: dict[str, Any], later: bool) -> None:
    client = _app(config, later=later).test_client()
    assert client.post("/ok/a").status_code == 201
    assert client.post("/client-error/b").status_code == 400
    assert _stored() == ["a", "b"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/server-error/x", 503), ("/raises/x", 500), ("/handled/x", 409), ("/abort/x", 404)],
)
def test_a_5xx_or_an_exception_rolls_back(config: dict[str, Any], path: str, status: int) -> None:
    client = _app(config).test_client()
    assert client.post(path).status_code == status
    assert _stored() == []


def test_a_failing_commit_answers_500_not_the_views_2xx(config: dict[str, Any]) -> None:
    client = _app(config).test_client()
    assert client.post("/ok/same").status_code == 201
    assert client.post("/ok/same").status_code == 500  # duplicate key at the commit
    assert _stored() == ["same"]


def test_one_session_per_request_current_only_during_it(config: dict[str, Any]) -> None:
    app = _app(config)
    seen: list[uow.Session] = []

    @app.get("/who")
    def who() -> str:
        seen.append(uow.current_session())
        return "me"

    client = app.test_client()
    client.get("/who")
    client.get("/who")
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert all(s.closed for s in seen)
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_the_session_options_come_from_the_config(config: dict[str, Any]) -> None:
    app = _app(config)

    @app.get("/limit")
    def limit() -> str:
        return str(uow.current_session().max_requests)

    assert app.test_client().get("/limit").text == "20"


def test_without_configuration_init_app_says_what_to_set() -> None:
    service._restore((service._Config(None, None, ()), False))
    with pytest.raises(RuntimeError, match=r"UOW_URI.*UOW_DATABASE.*uow\.configure"):
        UnitOfWork(Flask(__name__))


def test_an_earlier_uow_configure_is_enough(config: dict[str, Any]) -> None:
    uow.configure(config["UOW_URI"], "fl")
    client = _app({}).test_client()
    assert client.post("/ok/a").status_code == 201
    assert _stored() == ["a"]


def test_bad_options_are_refused_with_the_key() -> None:
    with pytest.raises(RuntimeError, match=r"UOW_OPTIONS.*unknown session option.*nope"):
        configure_from_config({"UOW_OPTIONS": {"nope": 1}})
    with pytest.raises(RuntimeError, match=r"UOW_OPTIONS'\] must be a dict"):
        configure_from_config({"UOW_OPTIONS": ["max_requests"]})
    assert configure_from_config({"OTHER": 1}) is False


def test_import_uow_never_imports_flask() -> None:
    code = (
        "import sys, uow, uow.service, uow.contrib; "
        "bad = sorted(m for m in sys.modules if m == 'flask' or m.startswith('flask.')); "
        "assert not bad, bad; "
        "assert 'uow.contrib.flask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
