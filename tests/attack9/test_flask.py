"""uow.contrib.flask.UnitOfWork with Flask's test client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

flask = pytest.importorskip("flask")

import uow  # noqa: E402
from uow.contrib.flask import UnitOfWork  # noqa: E402

from ._models import Note  # noqa: E402

SEEN: dict[str, Any] = {}


def make_app(
    uri: str, name: str, options: dict[str, Any] | None = None, *, late: bool = False
) -> Any:
    app = flask.Flask(__name__)
    app.config.update(UOW_URI=uri, UOW_DATABASE=name, UOW_OPTIONS=options or {})
    if late:
        ext = UnitOfWork()
        ext.init_app(app)
    else:
        UnitOfWork(app)

    def add() -> Note:
        s = uow.current_session()
        SEEN.setdefault("sessions", []).append(s)
        n = Note(text=flask.request.args.get("text", "x"))
        s.add(n)
        if flask.request.args.get("flush"):
            s.flush()
        return n

    @app.route("/ok")
    def ok() -> Any:
        add()
        return "ok"

    @app.route("/created", methods=["POST"])
    def created() -> Any:
        add()
        return "made", 201

    @app.route("/nf")
    def nf() -> Any:
        add()
        return "nf", 404

    @app.route("/abort404")
    def abort404() -> Any:
        add()
        flask.abort(404)

    @app.route("/err")
    def err() -> Any:
        add()
        return "bad", 500

    @app.route("/unavail")
    def unavail() -> Any:
        add()
        return flask.Response("later", status=503)

    @app.route("/boom")
    def boom() -> Any:
        add()
        raise RuntimeError("boom")

    @app.route("/handled")
    def handled() -> Any:
        add()
        raise KeyError("handled")

    @app.errorhandler(KeyError)
    def on_key_error(e: Exception) -> Any:
        return "fine", 200

    return app


@pytest.fixture(params=["mongomock", "secantus"])
def lane(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, Any]]:
    SEEN.clear()
    name = f"a9fl_{uuid.uuid4().hex[:8]}"
    if request.param == "mongomock":
        from uow._backend import make_client

        uri = request.getfixturevalue("embedded_uri")
        raw = make_client(uri)[name]
    else:
        uri = request.getfixturevalue("secantus_server").uri
        raw = request.getfixturevalue("secantus_client")[name]
    yield uri, name, raw
    uow.configure()
    raw.client.drop_database(name)


def notes(raw: Any) -> list[str]:
    return [d["text"] for d in raw[Note._uow_meta.collection].find()]


def transactional(raw: Any) -> bool:
    return not raw.client.__class__.__module__.startswith("mongomock")


@pytest.mark.parametrize("late", [False, True])
def test_flask_commits_on_200(lane: Any, late: bool) -> None:
    uri, name, raw = lane
    app = make_app(uri, name, late=late)
    r = app.test_client().get("/ok?text=hi")
    assert r.status_code == 200
    assert notes(raw) == ["hi"]
    assert SEEN["sessions"][0].closed
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_flask_commits_on_201_and_404_response(lane: Any) -> None:
    uri, name, raw = lane
    c = make_app(uri, name).test_client()
    assert c.post("/created?text=a").status_code == 201
    assert c.get("/nf?text=b").status_code == 404
    assert sorted(notes(raw)) == ["a", "b"]


@pytest.mark.parametrize("url", ["/err", "/unavail"])
@pytest.mark.parametrize("flush", ["", "1"])
def test_flask_rolls_back_on_5xx(lane: Any, url: str, flush: str) -> None:
    uri, name, raw = lane
    r = make_app(uri, name).test_client().get(f"{url}?text=no&flush={flush}")
    assert r.status_code >= 500
    expected = ["no"] if flush and not transactional(raw) else []
    assert notes(raw) == expected
    assert SEEN["sessions"][0].closed


@pytest.mark.parametrize("propagate", [True, False])
@pytest.mark.parametrize("flush", ["", "1"])
def test_flask_rolls_back_on_exception(lane: Any, propagate: bool, flush: str) -> None:
    uri, name, raw = lane
    app = make_app(uri, name)
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    c = app.test_client()
    if propagate:
        with pytest.raises(RuntimeError):
            c.get(f"/boom?text=no&flush={flush}")
    else:
        assert c.get(f"/boom?text=no&flush={flush}").status_code == 500
    expected = ["no"] if flush and not transactional(raw) else []
    assert notes(raw) == expected
    assert SEEN["sessions"][0].closed
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


def test_flask_abort_404_rolls_back(lane: Any) -> None:
    uri, name, raw = lane
    r = make_app(uri, name).test_client().get("/abort404?text=no")
    assert r.status_code == 404
    assert notes(raw) == []


def test_flask_exception_handled_by_errorhandler_rolls_back(lane: Any) -> None:
    uri, name, raw = lane
    r = make_app(uri, name).test_client().get("/handled?text=no")
    assert r.status_code == 200
    assert notes(raw) == []


def test_flask_one_session_per_request(lane: Any) -> None:
    uri, name, raw = lane
    c = make_app(uri, name).test_client()
    c.get("/ok?text=1")
    c.get("/ok?text=2")
    a, b = SEEN["sessions"]
    assert a is not b
    assert a.closed and b.closed
    assert sorted(notes(raw)) == ["1", "2"]


def test_flask_options_applied(lane: Any) -> None:
    uri, name, raw = lane
    app = make_app(uri, name, {"max_requests": 0})
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = app.test_client().get("/ok?text=x&flush=1")
    assert r.status_code == 500
    assert notes(raw) == []


def test_flask_no_session_outside_request(lane: Any) -> None:
    uri, name, _raw = lane
    app = make_app(uri, name)
    with app.app_context(), pytest.raises(uow.NoActiveSession):
        uow.current_session()
