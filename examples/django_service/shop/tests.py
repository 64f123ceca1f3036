"""The shop's tests, through Django's test client: ``python manage.py test``.

Each test runs on a clean database: a fresh embedded store, or, when
``SHOP_TEST_MONGODB_URI`` names a server, a database of its own there.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from unittest import mock

from django.test import Client, SimpleTestCase

import uow
from uow import Session
from uow.contrib.django.testing import UnitOfWorkTestMixin

from . import services
from .documents import Customer, Order


class ShopTestCase(UnitOfWorkTestMixin, SimpleTestCase):
    uow_test_uri = os.environ.get("SHOP_TEST_MONGODB_URI") or None

    def open_account(self, name: str = "ann", credit: int = 1000) -> str:
        response = self.client.post(
            "/customers/",
            {"name": name, "email": f"{name}@example.com", "credit": credit},
            content_type="application/json",
        )
        self.assertEqual(response.status_code, 201, response.content)
        return str(response.json()["id"])

    def order(self, customer_id: str, quantity: int = 2, client: Client | None = None) -> Any:
        return (client or self.client).post(
            f"/customers/{customer_id}/orders/",
            {"items": [{"sku": "tea", "quantity": quantity, "unit_price": 150}]},
            content_type="application/json",
        )

    def stored(self) -> tuple[list[tuple[str, int, int]], int]:
        """(name, credit, orders_placed) of each customer, and the number of orders."""
        with uow.unit_of_work() as s:
            customers = [
                (c.name, c.credit, c.orders_placed) for c in s.query(Customer).sort("name")
            ]
            return customers, s.count(Order)


class RequestTests(ShopTestCase):
    def test_a_normal_request_commits(self) -> None:
        ann = self.open_account()
        response = self.order(ann)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["total"], 300)
        self.assertEqual(self.stored(), ([("ann", 700, 1)], 1))
        summary = self.client.get(f"/customers/{ann}/").json()
        self.assertEqual(summary["credit"], 700)
        self.assertEqual([o["total"] for o in summary["orders"]], [300])

    def test_a_request_that_raises_leaves_nothing_written(self) -> None:
        ann = self.open_account()
        failure = RuntimeError("the warehouse client crashed")
        with (
            mock.patch.object(services, "notify_warehouse", side_effect=failure),
            self.assertRaises(RuntimeError),  # the test client re-raises the view's error
        ):
            self.order(ann)
        self.assertEqual(self.stored(), ([("ann", 1000, 0)], 0))

    def test_a_request_that_raises_answers_500_and_writes_nothing(self) -> None:
        ann = self.open_account()
        client = Client(raise_request_exception=False)
        with mock.patch.object(services, "notify_warehouse", side_effect=RuntimeError("boom")):
            response = self.order(ann, client=client)
        self.assertEqual(response.status_code, 500)
        self.assertEqual(self.stored(), ([("ann", 1000, 0)], 0))

    def test_a_5xx_answer_writes_nothing(self) -> None:
        ann = self.open_account()
        down = services.WarehouseUnavailable("closed for inventory")
        with mock.patch.object(services, "notify_warehouse", side_effect=down):
            response = self.order(ann)
        self.assertEqual(response.status_code, 503)
        self.assertEqual(self.stored(), ([("ann", 1000, 0)], 0))

    def test_a_refused_order_is_a_4xx_and_the_next_request_works(self) -> None:
        ann = self.open_account(credit=100)
        response = self.order(ann)  # costs 300
        self.assertEqual(response.status_code, 409, response.content)
        self.assertIn("credit", response.json()["error"])
        self.assertEqual(self.order(ann, quantity=0).status_code, 400)
        self.assertEqual(self.order("not-an-id").status_code, 404)
        self.assertEqual(self.open_account("bob"), self.stored_id("bob"))
        self.assertEqual(self.stored(), ([("ann", 100, 0), ("bob", 1000, 0)], 0))

    def test_the_same_email_twice_is_refused(self) -> None:
        self.open_account("ann")
        response = self.client.post(
            "/customers/",
            {"name": "ann", "email": "ann@example.com"},
            content_type="application/json",
        )
        self.assertEqual(response.status_code, 409)
        self.assertEqual(self.stored()[0], [("ann", 1000, 0)])

    def test_two_requests_in_parallel_threads_have_separate_sessions(self) -> None:
        ann, bob = self.open_account("ann"), self.open_account("bob")
        both_in_views = threading.Barrier(2, timeout=10)
        sessions: dict[str, Session] = {}
        responses: dict[str, Any] = {}
        real_notify = services.notify_warehouse

        def notify(order: Order) -> None:
            sessions[str(order.customer.id)] = uow.current_session()
            both_in_views.wait()  # both requests are inside their views at once
            real_notify(order)

        def request(customer_id: str) -> None:
            responses[customer_id] = self.order(customer_id)

        with mock.patch.object(services, "notify_warehouse", side_effect=notify):
            threads = [threading.Thread(target=request, args=(c,)) for c in (ann, bob)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        self.assertEqual({c: r.status_code for c, r in responses.items()}, {ann: 201, bob: 201})
        self.assertIsNot(sessions[ann], sessions[bob])
        self.assertTrue(sessions[ann].closed and sessions[bob].closed)
        self.assertEqual(self.stored(), ([("ann", 700, 1), ("bob", 700, 1)], 2))

    def stored_id(self, name: str) -> str:
        with uow.unit_of_work() as s:
            return str(s.query(Customer).filter(name=name).one().id)


class BackendTests(ShopTestCase):
    def test_the_tests_run_on_the_backend_asked_for(self) -> None:
        with uow.unit_of_work() as s:
            embedded = type(s.database).__module__.startswith("mongomock")
            self.assertEqual(embedded, self.uow_test_uri is None)
            self.assertEqual(s.count(Customer), 0)  # a clean database


class ServiceTests(ShopTestCase):
    """The services outside any request: each call is a unit of work of its own."""

    def test_services_commit_on_their_own(self) -> None:
        ann = services.open_account("ann", "ann@example.com", 500)
        services.place_order(ann.id, [("tea", 1, 200)])
        self.assertEqual(self.stored(), ([("ann", 300, 1)], 1))

    def test_a_failing_service_writes_nothing(self) -> None:
        ann = services.open_account("ann", "ann@example.com", 100)
        with self.assertRaises(services.InsufficientCredit):
            services.place_order(ann.id, [("tea", 1, 200)])
        self.assertEqual(self.stored(), ([("ann", 100, 0)], 0))
