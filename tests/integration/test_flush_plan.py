"""The flush plan as executed: inserts, then updates, then deletes; collections in
the order first queued; one write command per (collection, kind), split only at
the server's maxWriteBatchSize; documents marked clean only after their writes
landed.

Tests taking ``db`` run on both lanes and see the commands through the DEBUG
lines every command leaves on the ``uow`` logger. Tests taking ``command_log``
run on SecantusDB only: they assert the round trips on the wire with a pymongo
CommandListener, which needs a wire-protocol server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from uow import DuplicateKeyError, FlushError, _backend
from uow._state import ObjectState
from uow.session import FlushResult, Session

from ._support import (
    Sessions,
    SxAccount,
    SxFlat,
    SxOrder,
    SxPerson,
    insert_raw,
    sessions_on,
    stored,
)

WRITES = ("insert", "update", "delete")


@pytest.fixture
def sessions(db: Any) -> Iterator[Sessions]:
    yield from sessions_on(db)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """Sessions opened in this test see a server whose maxWriteBatchSize is 4.

    Done by monkeypatching ``uow._backend.server_info`` (what a Session reads the
    server's hello through), so the session takes the limit the way it takes a
    real server's; 4 lets a test go past it with a handful of documents.
    """
    limit = 4
    real = _backend.server_info

    def lowered(database: Any) -> _backend.ServerInfo:
        return attrs.evolve(real(database), max_write_batch_size=limit)

    monkeypatch.setattr(_backend, "server_info", lowered)
    return limit


def _writes(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(command, collection) of every write command logged, in order."""
    found = []
    for record in caplog.records:
        command, _, rest = record.getMessage().partition(" ")
        if record.name == "uow" and command in WRITES:
            found.append((command, rest.split(" ", 1)[0].split(".", 1)[1]))
    return found


def _wire_writes(command_log: Any) -> list[tuple[str, str]]:
    return [(c.name, c.command[c.name]) for c in command_log if c.name in WRITES]


# ----------------------------------------------------------------------- order


def _queue_work_on_three_collections(s: Session, db: Any) -> dict[str, Any]:
    """Queue work in an order that is not the plan's: deletes first, inserts last."""
    order_ids = insert_raw(db, "orders", [{"item": "o1"}, {"item": "o2"}])
    person_ids = insert_raw(db, "people", [{"name": "p1"}, {"name": "p2"}])
    o1, o2 = s.get(SxOrder, order_ids[0]), s.get(SxOrder, order_ids[1])
    p1, p2 = s.get(SxPerson, person_ids[0]), s.get(SxPerson, person_ids[1])
    assert o1 is not None and o2 is not None and p1 is not None and p2 is not None
    s.delete(o1)  # orders: queued first
    p1.age = 1  # people: second
    s.add(SxFlat(name="f"))  # flats: third
    s.add(SxOrder(item="o3"))
    o2.qty = 5
    s.delete(p2)
    return {"o1": o1, "o2": o2, "p1": p1, "p2": p2}


EXPECTED_ORDER = [
    ("insert", "orders"),
    ("insert", "flats"),
    ("update", "orders"),
    ("update", "people"),
    ("delete", "orders"),
    ("delete", "people"),
]


def test_inserts_then_updates_then_deletes_by_collection(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="uow")
    s = sessions.open()
    docs = _queue_work_on_three_collections(s, sessions.db)
    caplog.clear()
    assert s.flush() == FlushResult(inserted=2, updated=2, deleted=2, round_trips=6)
    assert _writes(caplog) == EXPECTED_ORDER
    assert s.state(docs["o1"]) is ObjectState.DETACHED
    assert not s.is_dirty(docs["o2"])
    s.commit()
    assert sorted(d["item"] for d in stored(sessions.db, "orders")) == ["o2", "o3"]
    assert [d["name"] for d in stored(sessions.db, "people")] == ["p1"]


def test_two_collections_on_the_wire(secantus_listened_db: Any, command_log: Any) -> None:
    with Session(secantus_listened_db) as s:
        _queue_work_on_three_collections(s, secantus_listened_db)
        command_log.clear()
        s.flush()
        assert _wire_writes(command_log) == EXPECTED_ORDER


def test_documents_go_in_the_order_queued(secantus_listened_db: Any, command_log: Any) -> None:
    with Session(secantus_listened_db) as s:
        flats = [SxFlat(name=f"f{i}") for i in range(5)]
        for flat in reversed(flats):
            s.add(flat)
        s.flush()
        for flat in flats[1:4]:
            s.delete(flat)
        s.flush()
    (insert,) = command_log.of("insert")
    assert [d["_id"] for d in insert["documents"]] == [f.id for f in reversed(flats)]
    (delete,) = command_log.of("delete")
    assert [d["q"]["_id"] for d in delete["deletes"]] == [f.id for f in flats[1:4]]


# ----------------------------------------------------------- one command a kind


def test_1000_new_documents_are_one_insert(secantus_listened_db: Any, command_log: Any) -> None:
    people = [SxPerson(name=f"p{i}") for i in range(1000)]
    with Session(secantus_listened_db) as s:
        s.add_all(people)
        command_log.clear()
        assert s.flush() == FlushResult(inserted=1000, round_trips=1)
        assert command_log.names() == ["insert"]
    (insert,) = command_log.of("insert")
    assert [d["_id"] for d in insert["documents"]] == [p.id for p in people]
    assert secantus_listened_db.people.count_documents({}) == 1000


def test_1000_changed_documents_are_one_update_of_changed_paths(
    secantus_listened_db: Any, command_log: Any
) -> None:
    insert_raw(
        secantus_listened_db,
        "people",
        [
            {"name": f"p{i}", "age": i, "tags": ["t"], "address": {"city": "Oslo"}}
            for i in range(1000)
        ],
    )
    with Session(secantus_listened_db, cache_size=None) as s:
        people = s.all(SxPerson)
        expected: dict[Any, dict[str, Any]] = {}
        for i, person in enumerate(people):
            if i % 2:
                person.age += 1
                expected[person.id] = {"$set": {"age": person.age}}
            else:
                person.tags.append("x")
                expected[person.id] = {"$push": {"tags": {"$each": ["x"]}}}
        command_log.clear()
        assert s.flush() == FlushResult(updated=1000, round_trips=1)
        assert command_log.names() == ["update"]
        (update,) = command_log.of("update")
        sent = {stmt["q"]["_id"]: stmt["u"] for stmt in update["updates"]}
        assert len(update["updates"]) == 1000
        assert sent == expected

        command_log.clear()
        assert s.flush() == FlushResult()  # clean now: nothing is sent
        assert command_log.names() == []


def test_delete_then_add_is_one_replace_on_the_wire(
    secantus_listened_db: Any, command_log: Any
) -> None:
    (doc_id,) = insert_raw(secantus_listened_db, "flats", [{"name": "old", "n": 1}])
    with Session(secantus_listened_db) as s:
        old = s.get(SxFlat, doc_id)
        assert old is not None
        s.delete(old)
        s.add(SxFlat(id=doc_id, name="new"))
        command_log.clear()
        s.flush()
        assert command_log.names() == ["update"]
    (update,) = command_log.of("update")
    (statement,) = update["updates"]
    assert statement["q"] == {"_id": doc_id}
    assert statement["u"] == {"_id": doc_id, "name": "new", "n": 0}  # a replacement


# ----------------------------------------------------------- maxWriteBatchSize


def test_the_batch_limit_is_the_servers(secantus_db: Any) -> None:
    hello = secantus_db.client.admin.command("hello")
    with Session(secantus_db) as s:
        assert s._max_batch == hello["maxWriteBatchSize"]


def test_writes_split_only_at_max_write_batch_size(
    sessions: Sessions, small_batches: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="uow")
    s = sessions.open()
    flats = [SxFlat(name=f"f{i}") for i in range(10)]
    s.add_all(flats)
    s.add_all([SxOrder(item="o") for _ in range(small_batches)])  # exactly the limit
    assert s.flush() == FlushResult(inserted=14, round_trips=4)
    for flat in flats:
        flat.n = 1
    assert s.flush() == FlushResult(updated=10, round_trips=3)
    for flat in flats[:9]:
        s.delete(flat)
    assert s.flush() == FlushResult(deleted=9, round_trips=3)
    assert (
        _writes(caplog)
        == [("insert", "flats")] * 3
        + [("insert", "orders")]
        + [("update", "flats")] * 3
        + [("delete", "flats")] * 3
    )
    s.commit()
    assert [d["n"] for d in stored(sessions.db, "flats")] == [1]


def test_split_batches_on_the_wire(
    secantus_listened_db: Any, command_log: Any, small_batches: int
) -> None:
    flats = [SxFlat(name=f"f{i}") for i in range(10)]
    with Session(secantus_listened_db) as s:
        s.add_all(flats)
        command_log.clear()
        s.flush()
    sizes = [len(c["documents"]) for c in command_log.of("insert")]
    assert sizes == [4, 4, 2]
    sent = [d["_id"] for c in command_log.of("insert") for d in c["documents"]]
    assert sent == [f.id for f in flats]


# --------------------------------------------------------- marked after success


def test_a_failed_insert_leaves_what_did_not_land_queued(sessions: Sessions) -> None:
    # transactional=False: without a transaction the writes before the failure stay.
    s = sessions.open(transactional=False)
    a, b = SxAccount(email="a@x"), SxAccount(email="b@x")
    dup, c = SxAccount(email="a@x"), SxAccount(email="c@x")
    s.add_all([a, b, dup, c])
    with pytest.raises(DuplicateKeyError) as caught:
        s.flush()
    error = caught.value
    assert error.applied == [a, b]
    assert error.not_applied == [dup, c]
    assert error.document is dup
    assert "SxAccount" in str(error) and str(dup.id) in str(error) and "a@x" in str(error)
    assert [s.state(x) for x in (a, b, dup, c)] == [
        ObjectState.PERSISTENT,
        ObjectState.PERSISTENT,
        ObjectState.PENDING,
        ObjectState.PENDING,
    ]
    dup.email = "d@x"
    assert s.flush() == FlushResult(inserted=2, round_trips=1)
    assert sorted(d["email"] for d in stored(sessions.db, "accounts")) == [
        "a@x",
        "b@x",
        "c@x",
        "d@x",
    ]


def test_a_failed_update_leaves_the_rest_dirty(sessions: Sessions) -> None:
    s = sessions.open(transactional=False)
    accounts = [SxAccount(email=e) for e in ("a@x", "b@x", "c@x")]
    s.add_all(accounts)
    s.flush()
    first, second, third = accounts
    first.n = 1
    third.n = 3
    second.email = "c@x"  # taken by the third: refused by the unique index
    s.add(SxFlat(name="inserted before"))
    s.delete(first)
    s.add(SxAccount(email="z@x"))
    with pytest.raises(FlushError) as caught:
        s.flush()
    assert isinstance(caught.value, DuplicateKeyError)
    # The two inserts (earlier batches of the flush), then the update before it.
    assert len(caught.value.applied) == 3 and caught.value.applied[-1] is third
    # The refused update, and the delete of the batch after it, which was not sent.
    assert caught.value.not_applied == [second, first]
    # The inserts landed; of the updates, the one queued before the failing one.
    assert s.stats().pending_inserts == 0
    assert not s.is_dirty(third)
    assert s.is_dirty(second)
    assert s.state(first) is ObjectState.DELETED  # its delete was never sent
    second.email = "b2@x"
    assert s.flush() == FlushResult(updated=1, deleted=1, round_trips=2)
    by_email = {d["email"]: d["n"] for d in stored(sessions.db, "accounts")}
    assert by_email == {"b2@x": 0, "c@x": 3, "z@x": 0}


@pytest.mark.transactions
def test_a_failed_flush_in_a_transaction_unflushes_everything(sessions: Sessions) -> None:
    s = sessions.open()
    a, b = SxAccount(email="a@x"), SxAccount(email="b@x")
    s.add_all([a, b])
    s.flush()
    dup = SxAccount(email="a@x")
    s.add(dup)
    with pytest.raises(DuplicateKeyError) as caught:
        s.flush()
    assert caught.value.transaction_aborted
    assert "aborted the transaction" in str(caught.value)
    assert [s.state(x) for x in (a, b, dup)] == [ObjectState.PENDING] * 3
    dup.email = "c@x"
    assert s.flush() == FlushResult(inserted=3, round_trips=1)
    s.commit()
    assert sorted(d["email"] for d in stored(sessions.db, "accounts")) == ["a@x", "b@x", "c@x"]


@pytest.mark.transactions
def test_a_failed_flush_after_a_delete_and_re_add_in_a_transaction(sessions: Sessions) -> None:
    s = sessions.open()
    ann = SxPerson(name="ann")
    taken = SxAccount(email="a@x")
    s.add_all([ann, taken])
    s.commit()
    s.delete(ann)
    s.flush()
    s.add(ann)  # the same object, back
    ann.age = 3
    s.add(SxAccount(email="a@x"))
    with pytest.raises(DuplicateKeyError):
        s.flush()
    # The server aborted the delete and the insert: ann is stored, and changed.
    assert s.state(ann) is ObjectState.PERSISTENT
    assert s.is_dirty(ann)
    s.clear_queue()  # forget the refused account
    assert s.flush() == FlushResult(updated=1, round_trips=1)
    s.commit()
    assert [(d["name"], d["age"]) for d in stored(sessions.db, "people")] == [("ann", 3)]
