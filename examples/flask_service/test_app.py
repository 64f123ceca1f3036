"""The Flask example, driven by Flask's test client: ``python -m pytest`` here.

Each test gets an app on a fresh embedded database (or, with
``SHOP_TEST_MONGODB_URI`` set, on that server).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from app import Account, create_app
from flask import Flask
from flask.testing import FlaskClient

import uow


@pytest.fixture
def app() -> Iterator[Flask]:
    uri = os.environ.get("SHOP_TEST_MONGODB_URI") or f"mongomock://flask-{uuid.uuid4().hex}"
    database = f"shop_{uuid.uuid4().hex[:8]}"
    yield create_app({"UOW_URI": uri, "UOW_DATABASE": database, "TESTING": True})
    with uow.unit_of_work() as s:  # the app configured the process's default
        s.database.client.drop_database(database)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _open(client: FlaskClient, email: str, balance: int) -> str:
    response = client.post("/accounts", json={"email": email, "balance": balance})
    assert response.status_code == 201, response.text
    json: dict[str, Any] = response.json or {}
    return str(json["id"])


def _balance(client: FlaskClient, account_id: str) -> int:
    json: dict[str, Any] = client.get(f"/accounts/{account_id}").json or {}
    return int(json["balance"])


def test_a_normal_request_commits(client: FlaskClient) -> None:
    ann = _open(client, "ann@x.io", 100)
    bob = _open(client, "bob@x.io", 0)
    response = client.post("/transfers", json={"source": ann, "target": bob, "amount": 30})
    assert response.status_code == 200
    assert (_balance(client, ann), _balance(client, bob)) == (70, 30)


def test_a_view_that_raises_writes_nothing_even_when_answered_409(client: FlaskClient) -> None:
    ann = _open(client, "ann@x.io", 10)
    bob = _open(client, "bob@x.io", 0)
    response = client.post("/transfers", json={"source": ann, "target": bob, "amount": 30})
    assert response.status_code == 409
    assert "has 10, not 30" in (response.json or {})["error"]
    assert _balance(client, bob) == 0  # the view had credited bob before it refused


def test_an_abort_rolls_back(client: FlaskClient) -> None:
    ann = _open(client, "ann@x.io", 10)
    missing = str(uuid.uuid4().hex[:24])
    response = client.post("/transfers", json={"source": ann, "target": missing, "amount": 1})
    assert response.status_code == 404


def test_a_5xx_answer_writes_nothing(app: Flask, client: FlaskClient) -> None:
    @app.post("/broken")
    def broken() -> tuple[str, int]:
        uow.current_session().add(Account(email="ghost@x.io"))
        return "unavailable", 503

    assert client.post("/broken").status_code == 503
    with uow.unit_of_work() as s:
        assert s.count(Account) == 0


def test_the_session_is_current_only_during_the_request(app: Flask, client: FlaskClient) -> None:
    seen: list[uow.Session] = []

    @app.get("/whoami")
    def whoami() -> str:
        seen.append(uow.current_session())
        return "ok"

    client.get("/whoami")
    client.get("/whoami")
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert all(s.closed for s in seen)
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
