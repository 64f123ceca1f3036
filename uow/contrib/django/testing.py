"""A clean uow database for each Django test: ``UnitOfWorkTestMixin``.

```python
from django.test import SimpleTestCase
from uow.contrib.django.testing import UnitOfWorkTestMixin

class OrderTests(UnitOfWorkTestMixin, SimpleTestCase):
    def test_place_order(self):
        response = self.client.post("/orders/", ...)
        with uow.unit_of_work() as s:           # the same clean database
            assert s.count(Order) == 1
```

Each test gets an embedded (``mongomock://``) store of its own, forgotten after
it; set ``uow_test_uri`` to run the same tests on a real server instead, where
each test gets a database of its own that is dropped after it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.test.utils import override_settings

from ... import _backend, service

__all__ = ["UnitOfWorkTestMixin"]

if TYPE_CHECKING:
    from django.test import SimpleTestCase

    _Base = SimpleTestCase
else:
    _Base = object


class UnitOfWorkTestMixin(_Base):
    """Mix into a Django test case: each test runs on a clean uow database.

    For the test's duration ``settings.UOW`` (and so the middleware and
    ``uow.unit_of_work()``) points at a fresh database; the previous setting and
    default are put back after it. Nothing about Django's own databases changes,
    so ``SimpleTestCase`` is enough when the project keeps its data in uow.

    Attributes:
        uow_test_uri: ``None`` (the default): a fresh embedded store per test.
            A ``mongodb://`` URI: a database of its own per test on that server,
            dropped after the test (use ``?retryWrites=false`` where retryable
            writes slow the server down, as with SecantusDB).
        uow_test_database: the database's name on the embedded backend; the
            prefix of the per-test name on a server. Default: the ``DATABASE``
            of ``settings.UOW``, else ``"test"``.
    """

    uow_test_uri: ClassVar[str | None] = None
    uow_test_database: ClassVar[str | None] = None

    def setUp(self) -> None:
        super().setUp()
        base: dict[str, Any] = dict(getattr(settings, "UOW", None) or {})
        name = self.uow_test_database or base.get("DATABASE") or "test"
        if self.uow_test_uri is None:
            uri = f"mongomock://django-test-{uuid.uuid4().hex}"
            self.addCleanup(_backend.reset_embedded, uri)
        else:
            uri = self.uow_test_uri
            name = f"{name}_{uuid.uuid4().hex[:12]}"
            self.addCleanup(_drop_database, uri, name)
        before = service._snapshot()
        self.addCleanup(service._restore, before)
        override = override_settings(UOW={**base, "URI": uri, "DATABASE": name})
        override.enable()
        self.addCleanup(override.disable)
        # Also set directly: the middleware's setting_changed receiver only
        # listens once the middleware module is imported.
        service.configure(uri, name, **(base.get("OPTIONS") or {}))


def _drop_database(uri: str, name: str) -> None:
    client = _backend.make_client(uri)
    try:
        client.drop_database(name)
    finally:
        client.close()
