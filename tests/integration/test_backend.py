"""uow._backend and uow._embedded: clients, the shared embedded store, bulk writes on
mongomock, server capabilities."""

from __future__ import annotations

import datetime
import decimal
import subprocess
import sys
from typing import Any

import attrs
import pymongo
import pytest
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne

import uow
from tests._blackbox import assert_stored_is_memory
from uow import _backend, _embedded
from uow._backend import (
    EMBEDDED_SCHEME,
    ServerInfo,
    is_mongomock,
    make_client,
    reset_embedded,
    server_info,
)

MIB = 1024 * 1024


# ------------------------------------------------------------------ make_client


def test_embedded_store_is_shared_per_exact_uri(embedded_uri: str) -> None:
    first = make_client(embedded_uri)
    second = make_client(embedded_uri)
    other_uri = embedded_uri + "-other"
    other = make_client(other_uri)
    try:
        first.shop.users.insert_one({"_id": 1, "name": "ann"})
        second.shop.users.insert_one({"_id": 2, "name": "bob"})

        assert sorted(d["_id"] for d in first.shop.users.find()) == [1, 2]
        assert sorted(d["_id"] for d in second.shop.users.find()) == [1, 2]
        assert second.list_database_names() == ["shop"]
        assert other.shop.users.count_documents({}) == 0
        assert other.list_database_names() == []
    finally:
        reset_embedded(other_uri)


def test_embedded_client_is_mongomock_and_takes_client_kwargs(embedded_uri: str) -> None:
    import mongomock

    client = make_client(embedded_uri, replica_set="ignored", tz_aware=True)
    assert isinstance(client, mongomock.MongoClient)
    assert client.codec_options.tz_aware is True


def test_reset_embedded_forgets_the_store(embedded_uri: str) -> None:
    before = make_client(embedded_uri)
    before.shop.users.insert_one({"_id": 1})

    reset_embedded(embedded_uri)

    after = make_client(embedded_uri)
    assert after.shop.users.count_documents({}) == 0
    # A client made before keeps the store it had; only new clients start empty.
    assert before.shop.users.count_documents({}) == 1
    # ...and the new store is shared again from now on.
    after.shop.users.insert_one({"_id": 2})
    assert make_client(embedded_uri).shop.users.find_one() == {"_id": 2}


def test_reset_embedded_defaults_to_the_bare_scheme() -> None:
    assert EMBEDDED_SCHEME == "mongomock://"
    try:
        make_client("mongomock://").shop.users.insert_one({"_id": 1})
        assert make_client("mongomock://").shop.users.count_documents({}) == 1
        reset_embedded()
        assert make_client("mongomock://").shop.users.count_documents({}) == 0
    finally:
        reset_embedded()


def test_reset_embedded_of_an_unknown_uri_does_nothing() -> None:
    reset_embedded("mongomock://never-used")


def _seeds(client: pymongo.MongoClient[Any]) -> set[tuple[str, int | None]]:
    return set(client.topology_description.server_descriptions())


def test_make_client_default_host_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UOW_MONGODB_URI", "mongodb://uow-bogus.invalid:27999")
    # pymongo connects lazily: constructing a client for a host that does not
    # exist is fine, and nothing here waits for a server.
    client = make_client(None)
    try:
        assert isinstance(client, pymongo.MongoClient)
        assert _seeds(client) == {("uow-bogus.invalid", 27999)}
    finally:
        client.close()


def test_make_client_default_host_without_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UOW_MONGODB_URI", raising=False)
    client = make_client(None, connect=False)
    try:
        assert _seeds(client) == {("localhost", 27017)}
    finally:
        client.close()


def test_make_client_empty_environment_variable_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UOW_MONGODB_URI", "")
    client = make_client(None, connect=False)
    try:
        assert _seeds(client) == {("localhost", 27017)}
    finally:
        client.close()


def test_make_client_environment_can_select_the_embedded_backend(
    monkeypatch: pytest.MonkeyPatch, embedded_uri: str
) -> None:
    monkeypatch.setenv("UOW_MONGODB_URI", embedded_uri)
    make_client(None).shop.users.insert_one({"_id": 1})
    assert make_client(embedded_uri).shop.users.count_documents({}) == 1


def test_make_client_passes_replica_set_and_client_kwargs_to_pymongo() -> None:
    client = make_client(
        "mongodb://uow-bogus.invalid:27999", replica_set="rs9", connect=False, tz_aware=True
    )
    try:
        assert client.options.replica_set_name == "rs9"
        assert client.codec_options.tz_aware is True
    finally:
        client.close()
    plain = make_client("mongodb://uow-bogus.invalid:27999", connect=False)
    try:
        assert plain.options.replica_set_name is None
    finally:
        plain.close()


def test_make_client_refuses_two_replica_set_names() -> None:
    with pytest.raises(TypeError, match="replicaSet"):
        make_client("mongodb://uow-bogus.invalid", replica_set="a", replicaSet="b", connect=False)


def test_missing_mongomock_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import mongomock` raise ImportError.
    monkeypatch.setitem(sys.modules, "mongomock", None)
    with pytest.raises(ImportError, match=r"pip install 'uow\[mongomock\]'"):
        make_client("mongomock://no-mongomock")


def test_importing_the_backend_imports_no_optional_dependency() -> None:
    code = (
        "import sys, uow._backend\n"
        "loaded = sorted(m for m in ('mongomock', 'secantus', 'mockupdb') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------- bulk writes on mongomock


def _pymongo_passes_sort() -> bool:
    return tuple(int(part) for part in pymongo.version.split(".")[:2]) >= (4, 11)


def test_mongomocks_own_bulk_write_fails_on_this_pymongo() -> None:
    """Why uow drives mongomock's bulk builder itself: mongomock issue #912."""
    import mongomock

    collection: Any = mongomock.MongoClient().shop.users
    collection.insert_one({"_id": 1, "n": 0})
    if not _pymongo_passes_sort():  # pragma: no cover - pymongo < 4.11
        return
    with pytest.raises(TypeError, match="sort"):
        collection.bulk_write([UpdateOne({"_id": 1}, {"$inc": {"n": 1}})])
    with pytest.raises(TypeError, match="sort"):
        collection.bulk_write([ReplaceOne({"_id": 1}, {"n": 5})])
    assert collection.find_one({"_id": 1}) == {"_id": 1, "n": 0}


def test_embedded_bulk_write_runs_every_operation(mongomock_db: Any) -> None:
    collection = mongomock_db.users
    collection.insert_many([{"_id": 1, "n": 0}, {"_id": 2, "n": 0}, {"_id": 3, "n": 0}])

    result = _embedded.bulk_write(
        collection,
        [
            UpdateOne({"_id": 1}, {"$inc": {"n": 1}}),
            ReplaceOne({"_id": 2}, {"name": "replaced"}),
            DeleteOne({"_id": 3}),
            InsertOne({"_id": 4, "n": 9}),
            UpdateOne({"_id": 5}, {"$set": {"n": 5}}, upsert=True),
            UpdateOne({"_id": 99}, {"$set": {"n": 5}}),
        ],
    )

    assert isinstance(result, pymongo.results.BulkWriteResult)
    assert (result.matched_count, result.modified_count) == (2, 2)
    assert (result.deleted_count, result.inserted_count, result.upserted_count) == (1, 1, 1)
    # mongomock numbers upserts among themselves (MongoDB: 4), as its bulk_write does.
    assert result.upserted_ids == {0: 5}
    assert list(collection.find().sort("_id")) == [
        {"_id": 1, "n": 1},
        {"_id": 2, "name": "replaced"},
        {"_id": 4, "n": 9},
        {"_id": 5, "n": 5},
    ]


def test_embedded_bulk_write_fails_as_bulk_write_does(mongomock_db: Any) -> None:
    collection = mongomock_db.users
    collection.create_index("email", unique=True)
    collection.insert_many([{"_id": 1, "email": "a"}, {"_id": 2, "email": "b"}])

    with pytest.raises(pymongo.errors.BulkWriteError) as caught:
        _embedded.bulk_write(
            collection,
            [
                UpdateOne({"_id": 1}, {"$set": {"n": 1}}),
                UpdateOne({"_id": 2}, {"$set": {"email": "a"}}),
                UpdateOne({"_id": 2}, {"$set": {"n": 3}}),
            ],
        )

    (error,) = caught.value.details["writeErrors"]
    assert (error["index"], error["code"]) == (1, 11000)
    assert caught.value.details["nMatched"] == 1
    # Ordered: the first write landed, the third was not tried.
    assert list(collection.find().sort("_id")) == [
        {"_id": 1, "email": "a", "n": 1},
        {"_id": 2, "email": "b"},
    ]


def test_any_mongomock_failure_is_a_write_error_at_its_index(mongomock_db: Any) -> None:
    # mongomock's $max compares with Python's max: a stored null raises TypeError
    # (MongoDB would set the value). The earlier write landed and says so.
    collection = mongomock_db.users
    collection.insert_many([{"_id": 1, "v": 1}, {"_id": 2, "v": None}])

    with pytest.raises(pymongo.errors.BulkWriteError) as caught:
        _embedded.bulk_write(
            collection,
            [UpdateOne({"_id": 1}, {"$max": {"v": 5}}), UpdateOne({"_id": 2}, {"$max": {"v": 5}})],
        )

    (error,) = caught.value.details["writeErrors"]
    assert error["index"] == 1
    assert error["code"] is None
    assert error["errmsg"].startswith("mongomock raised TypeError: ")
    assert [d["v"] for d in collection.find().sort("_id")] == [5, None]


@pytest.mark.parametrize(
    "operation",
    [
        UpdateOne({}, {"$set": {"hit": True}}, sort={"n": -1}),
        ReplaceOne({}, {"hit": True}, sort={"n": -1}),
    ],
    ids=["UpdateOne", "ReplaceOne"],
)
def test_a_real_sort_is_refused_not_ignored(mongomock_db: Any, operation: Any) -> None:
    collection = mongomock_db.users
    collection.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])

    with pytest.raises(NotImplementedError, match="sort"):
        _embedded.bulk_write(collection, [InsertOne({"_id": 3, "n": 3}), operation])

    # The whole batch is built before it runs: nothing was written.
    assert list(collection.find().sort("_id")) == [{"_id": 1, "n": 1}, {"_id": 2, "n": 2}]


class BeUser(uow.Document):
    __collection__ = "be_users"

    name: str
    visits: int = uow.field(default=0, on_update="$inc")
    tags: list[str] = uow.field(factory=list)
    last_seen: datetime.datetime | None = uow.field(default=None, on_update="$max")


@pytest.mark.parametrize("own_client", [False, True], ids=["make_client", "users_mongomock"])
def test_a_flush_of_updates_and_a_replace_works_on_mongomock(
    mongomock_db: Any, own_client: bool
) -> None:
    import mongomock

    database = mongomock.MongoClient().shop if own_client else mongomock_db
    seen = datetime.datetime(2026, 1, 1)
    with uow.Session(database) as s:
        ann, bob, cy = (BeUser(name=n, last_seen=seen) for n in ("ann", "bob", "cy"))
        s.add_all([ann, bob, cy])
        s.flush()
        ann.visits += 2
        ann.tags.append("vip")
        bob.name = "robert"
        bob.last_seen = seen + datetime.timedelta(days=1)
        s.delete(cy)
        s.add(BeUser(id=cy.id, name="cyrus"))  # deleted and re-added: one ReplaceOne
        result = s.flush()
        assert (result.updated, result.round_trips) == (3, 1)
        s.commit()

    stored = {d["_id"]: d for d in database.be_users.find()}
    assert stored[ann.id] == {
        "_id": ann.id,
        "name": "ann",
        "visits": 2,
        "tags": ["vip"],
        "last_seen": seen,
    }
    assert stored[bob.id]["name"] == "robert"
    assert stored[bob.id]["last_seen"] == seen + datetime.timedelta(days=1)
    assert stored[cy.id] == {
        "_id": cy.id,
        "name": "cyrus",
        "visits": 0,
        "tags": [],
        "last_seen": None,
    }


def test_max_over_a_stored_null_is_a_set_on_every_backend(db: Any) -> None:
    """MongoDB sorts null first (a $min would keep the null), and mongomock's $max
    raises TypeError over it: a $max or $min field stored as null is $set."""
    with uow.Session(db) as s:
        ann = BeUser(name="ann")
        s.add(ann)
        s.commit()
        when = datetime.datetime(2026, 1, 2)
        ann.last_seen = when
        s.commit()
        assert db.be_users.find_one({"_id": ann.id})["last_seen"] == when
        assert_stored_is_memory(db, ann)


class BeAccount(uow.Document):
    __collection__ = "be_accounts"

    balance: decimal.Decimal = uow.field(default=decimal.Decimal(0), on_update="$inc")


def test_what_mongomock_cannot_do_is_a_flush_error_naming_it(
    db: Any, request: pytest.FixtureRequest
) -> None:
    """mongomock cannot add two Decimal128 values (MongoDB can): uow does not
    change either answer, and on mongomock the flush fails, saying so."""
    lane = request.node.callspec.params["db"]
    with uow.Session(db) as s:
        account = BeAccount(balance=decimal.Decimal("1.10"))
        s.add(account)
        s.commit()
        account.balance += decimal.Decimal("0.25")
        if lane == "mongomock":
            with pytest.raises(uow.FlushError, match="mongomock raised TypeError") as caught:
                s.flush()
            assert caught.value.not_applied == [account]
            stored = db.be_accounts.find_one({"_id": account.id})["balance"]
            assert stored.to_decimal() == decimal.Decimal("1.10")
            s.rollback()
        else:
            s.commit()
            stored = db.be_accounts.find_one({"_id": account.id})["balance"]
            assert stored.to_decimal() == decimal.Decimal("1.35")
            assert_stored_is_memory(db, account)


def test_is_mongomock_never_imports_mongomock(monkeypatch: pytest.MonkeyPatch) -> None:
    import mongomock

    mock_client: Any = mongomock.MongoClient()
    real_client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        "mongodb://uow-bogus.invalid", connect=False
    )
    monkeypatch.setitem(sys.modules, "mongomock", None)
    try:
        assert is_mongomock(mock_client.shop)
        assert is_mongomock(mock_client.shop.users)
        assert is_mongomock(mock_client)
        assert not is_mongomock(real_client.shop)
        assert not is_mongomock(real_client.shop.users)
        assert not is_mongomock(object())
    finally:
        real_client.close()


# ----------------------------------------------------------- server capabilities


def test_server_info_of_mongomock(mongomock_db: Any) -> None:
    assert server_info(mongomock_db) == ServerInfo(
        supports_transactions=False,
        max_write_batch_size=100_000,
        max_bson_object_size=16 * MIB,
        max_message_size=48_000_000,
        is_embedded=True,
    )


def test_server_info_of_secantus(secantus_db: Any) -> None:
    assert server_info(secantus_db) == ServerInfo(
        supports_transactions=True,
        max_write_batch_size=100_000,
        max_bson_object_size=16 * MIB,
        max_message_size=48_000_000,
        is_embedded=False,
    )


def test_server_info_is_frozen_and_evolves() -> None:
    info = _backend.EMBEDDED_SERVER_INFO
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.max_write_batch_size = 3  # type: ignore[misc]
    smaller = attrs.evolve(info, max_write_batch_size=3)
    assert smaller.max_write_batch_size == 3
    assert info.max_write_batch_size == 100_000


def test_server_info_sends_hello_once_per_client(secantus_server: Any, command_log: Any) -> None:
    # Fresh clients: the session-scoped ones may have been asked already.
    # Equal options on purpose: pymongo clients with the same URI compare equal,
    # and each must still get its own answer, read from its own server.
    first: pymongo.MongoClient[Any] = pymongo.MongoClient(
        secantus_server.uri, retryWrites=False, event_listeners=[command_log]
    )
    second: pymongo.MongoClient[Any] = pymongo.MongoClient(
        secantus_server.uri, retryWrites=False, event_listeners=[command_log]
    )
    try:
        assert first == second
        info = server_info(first.shop)
        assert server_info(first.shop) is info
        assert server_info(first.other_db) is info
        assert len(command_log.of("hello")) == 1

        assert server_info(second.shop) == info
        assert server_info(second.shop) == info
        assert len(command_log.of("hello")) == 2
        # The handshake-like commands stay out of the round-trip view.
        assert "hello" not in command_log.names()
    finally:
        first.close()
        second.close()


def test_server_info_reads_the_hello_reply(mock_server: Any, mock_client: Any) -> None:
    # Registered last, so it answers the explicit hello before the fixture's.
    mock_server.autoresponds(
        "hello",
        {
            "isWritablePrimary": True,
            "maxWireVersion": 21,
            "setName": "rs0",
            "hosts": [mock_server.address_string],
            "logicalSessionTimeoutMinutes": 30,
            "maxWriteBatchSize": 1000,
            "maxBsonObjectSize": 1 * MIB,
            "maxMessageSizeBytes": 2 * MIB,
        },
    )
    assert server_info(mock_client.shop) == ServerInfo(
        supports_transactions=True,
        max_write_batch_size=1000,
        max_bson_object_size=1 * MIB,
        max_message_size=2 * MIB,
        is_embedded=False,
    )


@pytest.mark.parametrize(
    ("reply", "transactions"),
    [
        ({"setName": "rs0", "logicalSessionTimeoutMinutes": 30, "maxWireVersion": 21}, True),
        ({"msg": "isdbgrid", "logicalSessionTimeoutMinutes": 30, "maxWireVersion": 21}, True),
        ({"logicalSessionTimeoutMinutes": 30, "maxWireVersion": 21}, False),  # standalone
        ({"setName": "rs0", "maxWireVersion": 21}, False),  # no logical sessions
        ({"msg": "isdbgrid", "logicalSessionTimeoutMinutes": 30, "maxWireVersion": 7}, False),
        ({"setName": "rs0", "logicalSessionTimeoutMinutes": 30, "maxWireVersion": 7}, True),
        ({"setName": "rs0", "logicalSessionTimeoutMinutes": None, "maxWireVersion": 21}, False),
    ],
    ids=[
        "replica-set",
        "mongos",
        "standalone",
        "no-sessions",
        "mongos-4.0",
        "replica-set-4.0",
        "sessions-null",
    ],
)
def test_which_servers_support_transactions(reply: dict[str, Any], transactions: bool) -> None:
    info = _backend._info_from_hello(reply)
    assert info.supports_transactions is transactions
    # Limits the reply leaves out are MongoDB's defaults.
    assert info.max_write_batch_size == 100_000
    assert info.max_bson_object_size == 16 * MIB
    assert info.max_message_size == 48_000_000
    assert info.is_embedded is False


# ---------------------------------------------------------------- the test lanes


def test_db_lanes_run_bulk_writes(db: Any, request: pytest.FixtureRequest) -> None:
    lane = request.node.callspec.params["db"]
    assert is_mongomock(db) is (lane == "mongomock")
    if lane == "secantus":
        assert request.node.get_closest_marker("secantus") is not None
    db.users.insert_one({"_id": 1, "n": 0})
    requests = [UpdateOne({"_id": 1}, {"$inc": {"n": 2}}), InsertOne({"_id": 2})]
    if lane == "mongomock":
        _embedded.bulk_write(db.users, requests)  # mongomock's bulk_write: issue #912
    else:
        db.users.bulk_write(requests)
    assert list(db.users.find().sort("_id")) == [{"_id": 1, "n": 2}, {"_id": 2}]
    assert server_info(db).is_embedded is (lane == "mongomock")


@pytest.mark.transactions
def test_transactions_lanes_leave_mongomock_out(db: Any, request: pytest.FixtureRequest) -> None:
    assert request.node.callspec.params["db"] != "mongomock"
    assert server_info(db).supports_transactions


def test_command_log_records_round_trips(secantus_listened_db: Any, command_log: Any) -> None:
    secantus_listened_db.users.insert_many([{"_id": 1}, {"_id": 2}])
    secantus_listened_db.users.bulk_write([UpdateOne({"_id": 1}, {"$set": {"n": 1}})])
    secantus_listened_db.client.admin.command("ping")

    assert command_log.names() == ["insert", "update"]
    assert len(command_log) == 2
    assert command_log[0].database == secantus_listened_db.name
    assert command_log.of("insert")[0]["documents"] == [{"_id": 1}, {"_id": 2}]
    assert command_log.of("update")[0]["updates"][0]["u"] == {"$set": {"n": 1}}
    assert len(command_log.of("ping")) == 1

    command_log.clear()
    assert command_log.names() == []
    assert command_log.of("ping") == []
