"""flush(): inserts, then updates, then deletes; collections in first-queued order;
one write command per (collection, kind)."""

from __future__ import annotations

from typing import Any

from uow import Session

from ._models import Item, Other, Uniq

WRITES = ("insert", "update", "delete")


def writes(command_log: Any) -> list[tuple[str, str]]:
    return [(c.name, c.command[c.name]) for c in command_log if c.name in WRITES]


def seed(db: Any) -> tuple[Item, Item, Other, Other]:
    s = Session(db, transactional=False, auto_ensure=False)
    i1, i2, o1, o2 = Item(name="i1"), Item(name="i2"), Other(name="o1"), Other(name="o2")
    s.add_all([i1, i2, o1, o2])
    s.commit()
    s.close()
    return i1, i2, o1, o2


def test_kinds_in_order_and_one_command_each(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    i1, i2, _o1, _o2 = seed(db)
    s = Session(db, transactional=False, auto_ensure=False)
    a, b = s.get(Item, i1.id), s.get(Item, i2.id)
    # queue in the "wrong" order: delete, update, insert
    s.delete(a)
    b.name = "changed"
    n1, n2 = Item(name="n1"), Item(name="n2")
    s.add(n1)
    s.add(n2)
    command_log.clear()
    r = s.flush()
    assert writes(command_log) == [
        ("insert", "a7_items"),
        ("update", "a7_items"),
        ("delete", "a7_items"),
    ]
    ins = command_log.of("insert")[0]
    assert [d["_id"] for d in ins["documents"]] == [n1.id, n2.id]
    assert (r.inserted, r.updated, r.deleted, r.round_trips) == (2, 1, 1, 3)


def test_collections_in_first_queued_order(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    i1, _i2, o1, _o2 = seed(db)
    s = Session(db, transactional=False, auto_ensure=False)
    oo = s.get(Other, o1.id)
    ii = s.get(Item, i1.id)
    # Other first queued (update), then Item (insert), then Other insert, Item update
    oo.name = "o1x"
    s.add(Item(name="x"))
    s.add(Other(name="y"))
    ii.name = "i1x"
    command_log.clear()
    s.flush()
    got = writes(command_log)
    assert [k for k, _ in got] == ["insert", "insert", "update", "update"]
    # within each kind, collections in the order the session first queued work for them
    assert got in (
        [
            ("insert", "a7_other"),
            ("insert", "a7_items"),
            ("update", "a7_other"),
            ("update", "a7_items"),
        ],
        [
            ("insert", "a7_items"),
            ("insert", "a7_other"),
            ("update", "a7_other"),
            ("update", "a7_items"),
        ],
    )


def test_collections_order_simple(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    s = Session(db, transactional=False, auto_ensure=False)
    s.add(Other(name="1"))
    s.add(Item(name="2"))
    s.add(Other(name="3"))
    command_log.clear()
    s.flush()
    assert writes(command_log) == [("insert", "a7_other"), ("insert", "a7_items")]
    assert len(command_log.of("insert")[0]["documents"]) == 2


def test_deletes_in_queued_order(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    i1, i2, _o1, _o2 = seed(db)
    s = Session(db, transactional=False, auto_ensure=False)
    x2, x1 = s.get(Item, i2.id), s.get(Item, i1.id)
    s.delete(x2)
    s.delete(x1)
    command_log.clear()
    s.flush()
    dels = command_log.of("delete")
    assert len(dels) == 1
    ids = [d["q"]["_id"] for d in dels[0]["deletes"]] if len(dels[0]["deletes"]) > 1 else None
    if ids is not None:
        assert ids == [i2.id, i1.id]
    else:
        q = dels[0]["deletes"][0]["q"]
        assert q == {"_id": {"$in": [i2.id, i1.id]}}


def test_flush_with_nothing_sends_nothing(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    seed(db)
    s = Session(db, transactional=False, auto_ensure=False)
    s.all(Item)
    command_log.clear()
    r = s.flush()
    assert (r.inserted, r.updated, r.deleted, r.round_trips) == (0, 0, 0, 0)
    assert writes(command_log) == []


def test_round_trips_stats_exclude_index_builds(
    secantus_listened_db: Any, command_log: Any
) -> None:
    db = secantus_listened_db
    s = Session(db, transactional=False)  # auto_ensure builds Uniq's index
    s.add(Uniq(email="a@x"))
    s.add(Item(name="b"))
    r = s.flush()
    assert r.round_trips == 2
    st = s.stats()
    assert st.round_trips == 2
    assert st.flushes == 1
