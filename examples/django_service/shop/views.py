"""The shop's views: parse the request, call a service, answer.

``UnitOfWorkMiddleware`` gives each request a session and commits it when the
view answers below 500; the views themselves never commit.
"""

from __future__ import annotations

import json
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

import uow

from . import services


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise services.ShopError(f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise services.ShopError("the body must be a JSON object")
    return data


def _customer_id(text: str) -> ObjectId:
    try:
        return ObjectId(text)
    except (InvalidId, TypeError) as exc:
        raise services.UnknownCustomer(f"no customer {text}") from exc


def _refused(exc: services.ShopError) -> JsonResponse:
    # The service raised out of its unit of work, which marked the request's
    # session: answering normally means undoing whatever it did first.
    uow.current_session().rollback()
    return JsonResponse({"error": str(exc)}, status=exc.status)


@require_POST
def open_account(request: HttpRequest) -> JsonResponse:
    try:
        data = _body(request)
        customer = services.open_account(
            str(data["name"]), str(data["email"]), int(data.get("credit", 0))
        )
    except (KeyError, ValueError) as exc:
        return _refused(services.ShopError(f"name and email are required: {exc}"))
    except services.ShopError as exc:
        return _refused(exc)
    return JsonResponse({"id": str(customer.id)}, status=201)


@require_POST
def place_order(request: HttpRequest, customer_id: str) -> JsonResponse:
    try:
        items = [
            (str(item["sku"]), int(item["quantity"]), int(item["unit_price"]))
            for item in _body(request).get("items", [])
        ]
        order = services.place_order(_customer_id(customer_id), items)
    except (KeyError, TypeError, ValueError) as exc:
        return _refused(services.ShopError(f"each item needs sku, quantity, unit_price: {exc}"))
    except services.ShopError as exc:
        return _refused(exc)
    except services.WarehouseUnavailable as exc:
        # A 5xx answer: the middleware rolls the request's work back.
        return JsonResponse({"error": f"try again later: {exc}"}, status=503)
    return JsonResponse({"id": str(order.id), "total": order.total}, status=201)


@require_GET
def customer(request: HttpRequest, customer_id: str) -> JsonResponse:
    try:
        return JsonResponse(services.customer_summary(_customer_id(customer_id)))
    except services.ShopError as exc:
        return _refused(exc)
