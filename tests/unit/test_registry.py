"""Model classes by module and qualified name: Ref["User"] finds the User meant (#18)."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Callable, Iterator

import bson
import pytest

import uow
from uow._meta import REGISTRY

Define = Callable[[str, str], types.ModuleType]


@pytest.fixture
def define() -> Iterator[Define]:
    """Run source as a module of the given name (dropped from sys.modules after)."""
    made: list[str] = []

    def run(name: str, source: str) -> types.ModuleType:
        module = types.ModuleType(name)
        sys.modules[name] = module
        made.append(name)
        exec(textwrap.dedent(source), module.__dict__)
        return module

    yield run
    for name in made:
        del sys.modules[name]


USER = """
    from uow import Document

    class User(Document):
        name: str = ""
"""


def test_classes_are_registered_by_module_and_qualified_name(define: Define) -> None:
    shop = define("shop_rg.models", USER)
    assert REGISTRY.by_full_name["shop_rg.models.User"] is shop.User
    assert REGISTRY.by_name["User"]["shop_rg.models.User"] is shop.User


def test_a_name_resolves_when_one_class_has_it(define: Define) -> None:
    shop = define("shop_rg1.models", USER.replace("User", "Customer1"))
    orders = define(
        "orders_rg1.models",
        """
        from uow import Document, Ref

        class Order(Document):
            customer: Ref["Customer1"] | None = None
        """,
    )
    order = orders.Order(customer=bson.ObjectId())
    assert order.customer.cls is shop.Customer1


def test_the_referring_module_s_own_class_wins(define: Define) -> None:
    define("shop_rg2.models", USER)
    admin = define(
        "admin_rg2.models",
        USER
        + """
    from uow import Ref

    class Grant(Document):
        user: Ref["User"] | None = None
    """,
    )
    grant = admin.Grant(user=bson.ObjectId())
    assert grant.user.cls is admin.User


def test_an_ambiguous_name_raises_naming_the_candidates(define: Define) -> None:
    define("shop_rg3.models", USER)
    define("admin_rg3.models", USER)
    audit = define(
        "audit_rg3.models",
        """
        from uow import Document, Ref

        class Entry(Document):
            user: Ref["User"] | None = None
        """,
    )
    with pytest.raises(uow.DefinitionError) as info:
        audit.Entry(user=bson.ObjectId())
    message = str(info.value)
    assert '"shop_rg3.models.User"' in message and '"admin_rg3.models.User"' in message
    assert 'write Ref["' in message


def test_a_full_name_resolves_exactly(define: Define) -> None:
    shop = define("shop_rg4.models", USER)
    define("admin_rg4.models", USER)
    audit = define(
        "audit_rg4.models",
        """
        from uow import Document, Ref

        class Entry(Document):
            user: Ref["shop_rg4.models.User"] | None = None
        """,
    )
    entry = audit.Entry(user=bson.ObjectId())
    assert entry.user.cls is shop.User


def test_an_unknown_name_raises(define: Define) -> None:
    audit = define(
        "audit_rg5.models",
        """
        from uow import Document, Ref

        class Entry(Document):
            user: Ref["Nobody5"] | None = None
        """,
    )
    with pytest.raises(uow.DefinitionError, match="no Document class named 'Nobody5'"):
        audit.Entry(user=bson.ObjectId())


def test_two_same_named_classes_do_not_break_each_other(define: Define) -> None:
    shop = define("shop_rg6.models", USER)
    admin = define("admin_rg6.models", USER)
    assert shop.User(name="a").to_bson()["name"] == "a"
    assert admin.User(name="b").to_bson()["name"] == "b"
    assert shop.User._uow_meta.collection == admin.User._uow_meta.collection == "user"


def test_cls_of_a_subclass_is_looked_up_within_its_own_hierarchy(define: Define) -> None:
    shop = define(
        "shop_rg7.models",
        """
        from uow import Document

        class Account(Document):
            name: str = ""

        class Admin(Account):
            level: int = 0
        """,
    )
    staff = define(
        "staff_rg7.models",
        """
        from uow import Document

        class Person(Document):
            name: str = ""

        class Admin(Person):
            badge: str = ""
        """,
    )
    stored = shop.Admin(name="a", level=3).to_bson()
    assert stored["_cls"] == "Admin"  # the subclass's name, as SPEC says
    loaded = shop.Account.from_bson(stored)
    assert type(loaded) is shop.Admin and loaded.level == 3
    other = staff.Person.from_bson({**staff.Admin(badge="b").to_bson()})
    assert type(other) is staff.Admin and other.badge == "b"


def test_a_local_class_is_found_from_the_enclosing_scope() -> None:
    class Target(uow.Document):
        pass

    class Pointer(uow.Document):
        target: uow.Ref["Target"] | None = None  # noqa: UP037 (a name, on purpose)

    assert Pointer(target=bson.ObjectId()).target.cls is Target
