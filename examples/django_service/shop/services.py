"""The shop's services: plain functions, each a unit of work.

Called from a view they join the request's session (``UnitOfWorkMiddleware``
made it current); called anywhere else (a management command, a worker, a
test) each opens, commits and closes a session of its own. They reach the
session with ``uow.current_session()`` and never commit themselves.
"""

from __future__ import annotations

import logging

from bson import ObjectId

import uow
from uow import Session

from .documents import Customer, Line, Order

logger = logging.getLogger(__name__)


class ShopError(Exception):
    """A request the shop refuses; ``status`` is the HTTP status to answer with."""

    status = 400


class UnknownCustomer(ShopError):
    status = 404


class EmailTaken(ShopError):
    status = 409


class InsufficientCredit(ShopError):
    status = 409


class WarehouseUnavailable(Exception):
    """The warehouse did not take the order: try again later."""


@uow.unit_of_work()
def open_account(name: str, email: str, credit: int = 0) -> Customer:
    """A new customer.

    Raises:
        EmailTaken: another customer has that email (the unique index makes sure
            of it when two requests race past this check).
    """
    s: Session = uow.current_session()
    if s.count(Customer, email=email):
        raise EmailTaken(f"{email} already has an account")
    customer = Customer(name=name, email=email, credit=credit)
    s.add(customer)
    return customer


@uow.unit_of_work()
def place_order(customer_id: ObjectId, items: list[tuple[str, int, int]]) -> Order:
    """Charge the customer's credit and record the order; ``items``: (sku, quantity, price).

    Raises:
        ShopError: no items, or a quantity below 1.
        UnknownCustomer: no customer has that id.
        InsufficientCredit: the order costs more than the customer's credit.
        WarehouseUnavailable: the warehouse refused it (nothing is written).
    """
    if not items or any(quantity < 1 for _, quantity, _ in items):
        raise ShopError("an order needs items, each with a quantity of at least 1")
    s: Session = uow.current_session()
    customer = s.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    lines = [Line(sku=sku, quantity=quantity, unit_price=price) for sku, quantity, price in items]
    total = sum(line.quantity * line.unit_price for line in lines)
    if total > customer.credit:
        raise InsufficientCredit(f"the order costs {total}, the credit is {customer.credit}")
    customer.credit -= total  # sent as {"$inc": {"credit": -total}}
    customer.orders_placed += 1
    order = Order(customer=uow.Ref(Customer, customer.id), lines=lines, total=total)
    s.add(order)
    notify_warehouse(order)
    return order


def notify_warehouse(order: Order) -> None:
    """Hand the order to the warehouse (here, a log line; a real shop would queue it).

    Raises:
        WarehouseUnavailable: the warehouse did not take it.
    """
    logger.info("order %s: %d line(s) to ship", order.id, len(order.lines))


@uow.unit_of_work()
def customer_summary(customer_id: ObjectId) -> dict[str, object]:
    """The customer and their orders, newest first (two queries, whatever the count)."""
    s: Session = uow.current_session()
    customer = s.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer {customer_id}")
    orders = s.query(Order).filter(customer=customer.id).sort("-id").all()
    return {
        "id": str(customer.id),
        "name": customer.name,
        "credit": customer.credit,
        "orders_placed": customer.orders_placed,
        "orders": [{"id": str(o.id), "total": o.total} for o in orders],
    }
