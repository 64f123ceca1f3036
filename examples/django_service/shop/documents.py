"""The shop's two documents: a customer with store credit, and the orders they place."""

from __future__ import annotations

import uow
from uow import Document, Embedded, field


class Customer(Document):
    __collection__ = "customers"
    __indexes__ = [uow.Index("email", unique=True)]

    name: str
    email: str
    credit: int = field(default=0, on_update="$inc")  # in cents; concurrent orders add up
    orders_placed: int = field(default=0, on_update="$inc")


class Line(Embedded):
    sku: str
    quantity: int
    unit_price: int  # in cents


class Order(Document):
    __collection__ = "orders"
    # Built (with the collection) before the first insert, outside any transaction.
    __indexes__ = [uow.Index("customer")]

    customer: uow.Ref[Customer]
    lines: list[Line] = field(factory=list)
    total: int = 0
