"""Importing or using uow changes no other library (issue #18).

uow used to patch mongomock for the whole process the first time it made an
embedded client or a session met a mongomock database: ``BulkOperationBuilder``'s
``add_update``/``add_replace`` (pymongo >= 4.11's ``sort``), the ``$max``/``$min``
updaters, ``Collection._iter_documents``, ``Cursor.__next__``/``next`` and
``CollectionStore.__setitem__`` (speed). A user's own mongomock test then gave
another answer depending on whether a uow test had run before it.

These tests take an inventory of every attribute of every mongomock and pymongo
module, and of every class defined there (plus the items of module-level dicts,
where mongomock keeps its updaters), and check that each is still the very same
object after uow is imported and used: sessions on ``mongomock://`` databases
and on a user's own mongomock database, flushing inserts, updates, a replace and
deletes, the service layer, the demo. The first test does it in a fresh
interpreter, so the inventory is taken before uow is imported at all.
"""

from __future__ import annotations

import datetime
import importlib
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import mongomock
import pytest

import uow
import uow.testing
from uow import Document, Session, field
from uow._backend import make_client

REPO = Path(__file__).resolve().parents[2]

# The names of what uow used to replace: the inventory must cover them (it
# covers much more), and a test below checks that it does.
FORMERLY_PATCHED = [
    ("mongomock.collection", "BulkOperationBuilder", "add_update"),
    ("mongomock.collection", "BulkOperationBuilder", "add_replace"),
    ("mongomock.collection", "_updaters", "$max"),
    ("mongomock.collection", "_updaters", "$min"),
    ("mongomock.collection", "Collection", "_iter_documents"),
    ("mongomock.collection", "Collection", "bulk_write"),
    ("mongomock.collection", "Collection", "find_one"),
    ("mongomock.collection", "Cursor", "__next__"),
    ("mongomock.collection", "Cursor", "next"),
    ("mongomock.store", "CollectionStore", "__setitem__"),
    ("mongomock.collection", None, "filter_applies"),
    ("mongomock.filtering", None, "bson_compare"),
]

# Shared with the fresh interpreter below: the inventory and the $max probe.
INVENTORY_SOURCE = '''
import sys
import types


# Plain data (a counter such as ObjectId._inc, a cached flag) is state, not
# behaviour; everything else (functions, classes, descriptors, dicts) is kept.
_STATE = (int, float, str, bytes, type(None))


def inventory(prefixes=("mongomock", "pymongo", "bson")):
    """{(module, owner, name): object} for every module whose name starts so."""
    found = {}
    for module_name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType):
            continue
        if not module_name.split(".")[0] in prefixes:
            continue
        for name, value in list(vars(module).items()):
            if not isinstance(value, _STATE):
                found[(module_name, None, name)] = value
            if isinstance(value, type) and value.__module__ == module_name:
                for attr, member in list(vars(value).items()):
                    if not isinstance(member, _STATE):
                        found[(module_name, name, attr)] = member
            elif type(value) is dict and name.startswith("_"):
                for key, member in list(value.items()):
                    found[(module_name, name, repr(key))] = member
    return found


def changed(before, after):
    """Keys whose object is not the same one (or is gone)."""
    return sorted(
        str(key) for key, value in before.items() if key not in after or after[key] is not value
    )


def max_over_null(client):
    """What mongomock's $max over a stored null does: the outcome as text."""
    from pymongo import UpdateOne

    collection = client.unrelated_db.things
    collection.delete_many({})
    collection.insert_one({"_id": 1, "v": None})
    try:
        collection.update_one({"_id": 1}, {"$max": {"v": 5}})
        update_one = repr(collection.find_one({"_id": 1}))
    except Exception as exc:
        update_one = type(exc).__name__
    try:
        collection.bulk_write([UpdateOne({"_id": 1}, {"$max": {"v": 7}})])
        bulk = repr(collection.find_one({"_id": 1}))
    except Exception as exc:
        bulk = type(exc).__name__
    return update_one, bulk
'''

_namespace: dict[str, Any] = {}
exec(INVENTORY_SOURCE, _namespace)  # our own source, shared with the child process
inventory = _namespace["inventory"]
changed = _namespace["changed"]
max_over_null = _namespace["max_over_null"]


class NseUser(Document):
    __collection__ = "nse_users"

    name: str
    visits: int = field(default=0, on_update="$inc")
    last_seen: datetime.datetime | None = field(default=None, on_update="$max")


def _use_uow(database: Any) -> None:
    """Inserts, updates ($set, $inc, $max), a replace and deletes, flushed."""
    seen = datetime.datetime(2026, 1, 1)
    with Session(database) as s:
        users = [NseUser(name=f"u{i}", last_seen=seen) for i in range(4)]
        s.add_all(users)
        s.flush()
        users[0].name = "renamed"
        users[1].visits += 2
        users[2].last_seen = seen + datetime.timedelta(days=1)
        s.flush()
        s.delete(users[3])
        s.add(NseUser(id=users[3].id, name="replaced"))  # one ReplaceOne
        s.delete(users[0])
        s.flush()
        s.commit()
    stored = {doc["name"]: doc for doc in database.nse_users.find()}
    assert sorted(stored) == ["replaced", "u1", "u2"]
    assert stored["u1"]["visits"] == 2
    assert stored["u2"]["last_seen"] == seen + datetime.timedelta(days=1)
    assert stored["replaced"]["last_seen"] is None


def test_a_fresh_process_sees_no_change_from_importing_and_using_uow() -> None:
    script = INVENTORY_SOURCE + textwrap.dedent(
        """
        import mongomock, mongomock.collection, mongomock.store, mongomock.filtering
        import pymongo, pymongo.operations

        before = inventory()
        probe_before = max_over_null(mongomock.MongoClient())

        import uow, uow.testing, uow.service, uow.demo
        after_import = inventory()

        from tests.integration.test_no_side_effects import NseUser, _use_uow
        from uow._backend import make_client

        _use_uow(make_client("mongomock://nse-fresh").shop)
        _use_uow(mongomock.MongoClient().shop)  # a user's own mongomock database
        uow.configure("mongomock://nse-service", "shop")

        @uow.unit_of_work()
        def service():
            uow.current_session().add(NseUser(name="from a service"))

        service()
        import contextlib, io
        with contextlib.redirect_stdout(io.StringIO()):
            uow.demo.main([])
        with uow.testing.fast_mongomock():
            pass
        after_use = inventory()
        probe_after = max_over_null(mongomock.MongoClient())

        problems = {
            "import": changed(before, after_import),
            "use": changed(before, after_use),
            "probe": [] if probe_after == probe_before else [probe_before, probe_after],
        }
        assert not any(problems.values()), problems
        print("checked", len(before), probe_before)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("checked ")


def test_the_inventory_covers_what_uow_used_to_patch() -> None:
    for module in ("mongomock.collection", "mongomock.filtering", "mongomock.store"):
        importlib.import_module(module)
    found = inventory()
    for module, owner, name in FORMERLY_PATCHED:
        key = (module, owner, repr(name) if owner == "_updaters" else name)
        assert key in found, key


def test_sessions_and_flushes_change_nothing_in_this_process(
    embedded_uri: str, uow_database: Any
) -> None:
    before = inventory()
    probe_before = max_over_null(mongomock.MongoClient())

    _use_uow(make_client(embedded_uri).shop)
    _use_uow(mongomock.MongoClient().shop)
    _use_uow(uow_database)

    assert changed(before, inventory()) == []
    assert max_over_null(mongomock.MongoClient()) == probe_before


def test_mongomock_answers_as_it_does_without_uow() -> None:
    # mongomock's own answers, which uow used to change: $max over null raises,
    # and its bulk_write with an UpdateOne fails on pymongo >= 4.11.
    import pymongo

    update_one, bulk = max_over_null(mongomock.MongoClient())
    assert update_one == "TypeError"
    if tuple(int(p) for p in pymongo.version.split(".")[:2]) >= (4, 11):
        assert bulk == "TypeError"


def test_fast_mongomock_puts_back_the_very_same_objects() -> None:
    before = inventory()
    with uow.testing.fast_mongomock() as active:
        assert active
        during = changed(before, inventory())
        with uow.testing.fast_mongomock():  # nested: one installation
            assert changed(before, inventory()) == during
        assert changed(before, inventory()) == during
    assert changed(before, inventory()) == []
    assert sorted(during) == sorted(
        str(key)
        for key in [
            ("mongomock.collection", "Collection", "_iter_documents"),
            ("mongomock.collection", "Cursor", "__next__"),
            ("mongomock.collection", "Cursor", "next"),
            ("mongomock.store", "CollectionStore", "__setitem__"),
        ]
    )


def test_fast_mongomock_restores_after_an_error() -> None:
    before = inventory()
    with pytest.raises(RuntimeError), uow.testing.fast_mongomock():
        raise RuntimeError("boom")
    assert changed(before, inventory()) == []


def test_the_fixture_opts_in_for_one_test(uow_fast_mongomock: bool) -> None:
    import mongomock.collection

    assert uow_fast_mongomock
    assert getattr(mongomock.collection.Collection._iter_documents, "__wrapped__", None)


def test_no_fixture_no_fixes() -> None:
    import mongomock.collection

    assert not hasattr(mongomock.collection.Collection._iter_documents, "__wrapped__")
    assert isinstance(mongomock.collection.Cursor.__next__, types.FunctionType)
