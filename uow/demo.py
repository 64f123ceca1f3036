"""A short story of uow on the embedded backend: ``python -m uow.demo``.

Defines two documents, adds, flushes, loads, changes in place, shows
``what_changed()``, commits, and prints every command sent (``echo=True``) with
the round trips counted. ``--uri mongodb://...`` runs it against a real server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone

from .document import Document, Embedded, Index
from .fields import field
from .session import Session


class Address(Embedded):
    city: str
    zip: str | None = None


class Customer(Document):
    __indexes__ = [Index("email", unique=True)]
    name: str
    email: str
    visits: int = field(default=0, on_update="$inc")
    last_seen: datetime | None = field(default=None, on_update="$max")
    tags: list[str] = field(factory=list)
    address: Address | None = None


class Order(Document):
    customer_email: str
    items: list[str] = field(factory=list)
    total: float = 0.0


#: The total above which the story calls an order big.
BIG_ORDER = 4


def _say(text: str) -> None:
    print(f"\n== {text}")


def main(argv: list[str] | None = None) -> int:
    """Run the story; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m uow.demo", description=__doc__)
    parser.add_argument(
        "--uri",
        default="mongomock://demo",
        help="MongoDB URI (default: the embedded in-process backend, mongomock://demo)",
    )
    parser.add_argument("--database", default="uow_demo")
    args = parser.parse_args(argv)

    # echo=True logs every command at INFO on the "uow" logger; show it on stdout.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("   -> %(message)s"))
    logging.getLogger("uow").addHandler(handler)
    try:
        with Session.connect(args.database, args.uri, echo=False) as s:
            s.echo = True
            logging.getLogger("uow").setLevel(logging.INFO)
            s.clear_collection(Customer, Order)
            start = s.stats().round_trips

            _say("add three customers and two orders, then flush: one insert per collection")
            # Seen before: $max over a stored null is fine on MongoDB (null sorts
            # first), but the embedded backend (mongomock) raises TypeError there.
            ann = Customer(
                name="Ann",
                email="ann@example.com",
                address=Address(city="Oslo"),
                last_seen=datetime(2026, 11, 1, 18, 0, tzinfo=timezone.utc),
            )
            s.add_all(
                [
                    ann,
                    Customer(name="Bob", email="bob@example.com"),
                    Customer(name="Cy", email="cy@example.com", tags=["new"]),
                ]
            )
            s.add_all(
                [
                    Order(customer_email="ann@example.com", items=["tea"], total=4.5),
                    Order(customer_email="bob@example.com", items=["cake"], total=3.0),
                ]
            )
            result = s.flush()
            print(f"   flush: {result}")

            _say("load Ann back: the identity map answers, no query is sent")
            same = s.get(Customer, ann.id)
            print(f"   s.get(Customer, ann.id) is ann: {same is ann}")

            _say("load the big orders, then change documents in place; uow finds it all")
            big_orders = s.query(Order).filter(Order.total > BIG_ORDER).all()
            ann.visits += 1
            ann.tags.append("vip")
            ann.last_seen = datetime(2026, 11, 21, 9, 30, tzinfo=timezone.utc)
            assert ann.address is not None
            ann.address.city = "Bergen"
            for order in big_orders:
                order.items.append("biscuits")
            for key, paths in s.what_changed().items():
                print(f"   {key[0]} {key[1]}:")
                for path, (old, new) in paths.items():
                    print(f"      {path}: {old!r} -> {new!r}")

            _say("commit: one update command per collection, carrying only the changed paths")
            s.commit()

            _say("a query reads what was written")
            vips = s.query(Customer).filter(tags__contains="vip").all()
            print(f"   VIP customers: {[c.name for c in vips]}")
            print(f"   Ann's city is now {s.get(Customer, ann.id).address.city!r}")  # type: ignore[union-attr]

            _say("delete by object; the flush sends one delete command")
            bob = s.query(Customer).filter(email="bob@example.com").one()
            s.delete(bob)
            s.commit()

            stats = s.stats()
            print(
                f"\n{stats.round_trips - start} write round trips, {stats.requests} commands in "
                f"all ({stats.queries} queries), {stats.identity_map_size} documents tracked."
            )
    finally:
        logging.getLogger("uow").removeHandler(handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
