"""Document classes shared by the attack5 scenarios."""

from __future__ import annotations

import datetime

import uow
from uow import field


class A5Line(uow.Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    peak: int = field(default=0, on_update="$max")
    low: int = field(default=100, on_update="$min")
    tags: list[str] = field(factory=list, on_update="$push")
    labels: list[str] = field(factory=list, on_update="$addToSet")
    notes: list[str] = field(factory=list)
    price: float = 0.0


class A5StampLine(uow.Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    touched: datetime.datetime | None = field(default=None, on_update="$currentDate")


class A5Addr(uow.Embedded):
    city: str = "Oslo"
    zip: str | None = None
    visits: int = field(default=0, on_update="$inc")


class A5Order(uow.Document):
    __collection__ = "a5_order"
    customer: str
    lines: list[A5Line] = field(factory=list)
    by_sku: dict[str, A5Line] = field(factory=dict)
    total: int = field(default=0, on_update="$inc")
    status: str = "new"
    addr: A5Addr = field(factory=A5Addr)
    history: list[str] = field(factory=list)


class A5VOrder(uow.Document):
    __collection__ = "a5_vorder"
    customer: str
    lines: list[A5Line] = field(factory=list)
    total: int = field(default=0, on_update="$inc")
    version: int = field(default=0, version=True)


class A5Stamped(uow.Document):
    __collection__ = "a5_stamped"
    name: str
    lines: list[A5StampLine] = field(factory=list)
    by_key: dict[str, A5StampLine] = field(factory=dict)


class A5Counter(uow.Document):
    __collection__ = "a5_counter"
    hits: int = field(default=0, on_update="$inc")
    best: int = field(default=0, on_update="$max")


class A5Audit(uow.Document):
    __collection__ = "a5_audit"
    order_id: str
    entries: list[str] = field(factory=list)
