"""A Flask app with one uow session per request (``uow.contrib.flask``).

Run it: ``flask --app app run`` in this directory (embedded backend by default;
``SHOP_MONGODB_URI=mongodb://localhost:27017 flask --app app run`` for a server).
The views call plain service functions that reach the request's session with
``uow.current_session()``; none of them commits: the extension commits when the
view returns a response below 500 and rolls back otherwise.
"""

from __future__ import annotations

import os
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue

import uow
from uow import Document, field
from uow.contrib.flask import UnitOfWork


class Account(Document):
    __collection__ = "accounts"
    __indexes__ = [uow.Index("email", unique=True)]

    email: str
    balance: int = field(default=0, on_update="$inc")


class InsufficientFunds(Exception):
    """A transfer the balance does not cover (answered with 409)."""


# -- services: plain functions, each a unit of work of the request's session ------


def open_account(email: str, balance: int) -> Account:
    account = Account(email=email, balance=balance)
    uow.current_session().add(account)
    return account


def transfer(source_id: ObjectId, target_id: ObjectId, amount: int) -> None:
    s = uow.current_session()
    source = s.get(Account, source_id)
    target = s.get(Account, target_id)
    if source is None or target is None:
        abort(404)
    target.balance += amount  # changed first: a refusal below must undo it
    if source.balance < amount:
        raise InsufficientFunds(f"{source.email} has {source.balance}, not {amount}")
    source.balance -= amount


# -- the app -----------------------------------------------------------------------


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        UOW_URI=os.environ.get("SHOP_MONGODB_URI", "mongomock://flask-shop"),
        UOW_DATABASE="shop",
        UOW_OPTIONS={"max_requests": 50},  # a view that loops over queries fails loudly
    )
    app.config.update(config or {})
    UnitOfWork(app)

    @app.errorhandler(InsufficientFunds)
    def refused(exc: InsufficientFunds) -> ResponseReturnValue:
        # The error becomes a 409 answer; the view raised, so its work is rolled back.
        return jsonify(error=str(exc)), 409

    @app.post("/accounts")
    def create() -> ResponseReturnValue:
        data = request.get_json()
        account = open_account(data["email"], int(data.get("balance", 0)))
        return jsonify(id=str(account.id)), 201

    @app.get("/accounts/<account_id>")
    def show(account_id: str) -> ResponseReturnValue:
        account = uow.current_session().get(Account, _object_id(account_id))
        if account is None:
            abort(404)
        return jsonify(email=account.email, balance=account.balance)

    @app.post("/transfers")
    def create_transfer() -> ResponseReturnValue:
        data = request.get_json()
        transfer(_object_id(data["source"]), _object_id(data["target"]), int(data["amount"]))
        return jsonify(ok=True)

    return app


def _object_id(text: str) -> ObjectId:
    try:
        return ObjectId(text)
    except InvalidId:
        abort(404)
