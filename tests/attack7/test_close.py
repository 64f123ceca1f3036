"""close(): later calls raise SessionClosedError; the warning on close."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

import uow
from uow import Session

from ._models import Item

CALLS = [
    ("add", lambda s, it: s.add(Item(name="x"))),
    ("add_all", lambda s, it: s.add_all([Item(name="x")])),
    ("save", lambda s, it: s.save(Item(name="x"))),
    ("delete", lambda s, it: s.delete(it)),
    ("update", lambda s, it: s.update(it)),
    ("flush", lambda s, it: s.flush()),
    ("commit", lambda s, it: s.commit()),
    ("rollback", lambda s, it: s.rollback()),
    ("get", lambda s, it: s.get(Item, it.id)),
    ("query", lambda s, it: s.query(Item).all()),
    ("filter", lambda s, it: s.filter(Item, name="a")),
    ("all", lambda s, it: s.all(Item)),
    ("count", lambda s, it: s.count(Item)),
    ("refresh", lambda s, it: s.refresh(it)),
    ("expunge", lambda s, it: s.expunge(it)),
    ("expunge_all", lambda s, it: s.expunge_all()),
    ("clear_queue", lambda s, it: s.clear_queue()),
    ("clear_cache", lambda s, it: s.clear_cache()),
    ("clone", lambda s, it: s.clone(it)),
    ("is_dirty", lambda s, it: s.is_dirty(it)),
    ("dirty_fields", lambda s, it: s.dirty_fields(it)),
    ("original_value", lambda s, it: s.original_value(it, "name")),
    ("has_changes", lambda s, it: s.has_changes()),
    ("what_changed", lambda s, it: s.what_changed()),
    ("remove_query", lambda s, it: s.remove_query(Item).filter(name="a").execute()),
    ("transaction", lambda s, it: s.transaction().__enter__()),
    ("run_in_transaction", lambda s, it: s.run_in_transaction(lambda: None)),
    ("clear_collection", lambda s, it: s.clear_collection(Item)),
    ("ensure_indexes", lambda s, it: s.ensure_indexes(Item)),
    ("get_indexes", lambda s, it: s.get_indexes(Item)),
    ("with", lambda s, it: s.__enter__()),
]


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_calls_after_close_raise(db: Any, name: str, call: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    s.commit()
    s.close()
    assert s.closed
    with pytest.raises(uow.SessionClosedError):
        call(s, it)


def test_close_twice_and_end_alias(db: Any) -> None:
    s = Session(db)
    s.close()
    s.close()
    s.end()
    s2 = Session(db)
    s2.end()
    assert s2.closed
    with pytest.raises(uow.SessionClosedError):
        s2.flush()


def test_iteration_begun_before_close(db: Any) -> None:
    db.a7_items.insert_many([{"name": str(i), "qty": 0, "tags": []} for i in range(5)])
    s = Session(db)
    it = iter(s.query(Item))
    first = next(it)
    assert first is not None
    s.close()
    with pytest.raises(uow.SessionClosedError):
        next(it)


def test_closed_session_error_is_uowerror(db: Any) -> None:
    s = Session(db)
    s.close()
    with pytest.raises(uow.UowError):
        s.flush()


def _warnings(caplog: Any) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("uow") and r.levelno == logging.WARNING
    ]


def test_close_with_unflushed_changes_warns_with_count(db: Any, caplog: Any) -> None:
    s = Session(db, transactional=False)
    a, b = Item(name="a"), Item(name="b")
    s.add_all([a, b])
    s.commit()
    a.name = "x"  # dirty
    s.add(Item(name="c"))  # pending insert
    s.delete(b)  # pending delete
    caplog.set_level(logging.WARNING, logger="uow")
    s.close()
    msgs = _warnings(caplog)
    assert len(msgs) == 1, msgs
    assert re.search(r"\b3\b", msgs[0]), msgs[0]
    assert db.a7_items.find_one({"_id": a.id})["name"] == "a"
    assert db.a7_items.count_documents({}) == 2


def test_close_clean_session_does_not_warn(db: Any, caplog: Any) -> None:
    s = Session(db)
    s.add(Item(name="a"))
    s.commit()
    s.all(Item)
    caplog.set_level(logging.WARNING, logger="uow")
    s.close()
    assert _warnings(caplog) == []


@pytest.mark.transactions
def test_close_with_uncommitted_transaction_warns(db: Any, caplog: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    s.flush()
    caplog.set_level(logging.WARNING, logger="uow")
    s.close()
    msgs = _warnings(caplog)
    assert len(msgs) == 1 and re.search(r"\b1\b", msgs[0]), msgs
    assert db.a7_items.find_one({"_id": it.id}) is None


@pytest.mark.transactions
def test_close_with_flushed_and_unflushed_counts_both(db: Any, caplog: Any) -> None:
    s = Session(db)
    s.add(Item(name="a"))
    s.add(Item(name="b"))
    s.flush()
    s.add(Item(name="c"))
    caplog.set_level(logging.WARNING, logger="uow")
    s.close()
    msgs = _warnings(caplog)
    assert len(msgs) == 1 and re.search(r"\b3\b", msgs[0]), msgs


def test_with_block_error_path_does_not_warn(db: Any, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="uow")
    with pytest.raises(LookupError):
        with Session(db) as s:
            s.add(Item(name="a"))
            raise LookupError
    assert _warnings(caplog) == []


def test_with_block_success_does_not_warn(db: Any, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="uow")
    with Session(db) as s:
        s.add(Item(name="a"))
    assert _warnings(caplog) == []


def test_close_after_rollback_does_not_warn(db: Any, caplog: Any) -> None:
    s = Session(db)
    s.add(Item(name="a"))
    s.rollback()
    caplog.set_level(logging.WARNING, logger="uow")
    s.close()
    assert _warnings(caplog) == []


def test_commit_error_in_with_block_rolls_back_and_closes(db: Any) -> None:
    """A commit failing on leaving the block: the error propagates, the session ends closed."""
    from ._models import Uniq

    s0 = Session(db)
    s0.add(Uniq(email="dup@x"))
    s0.commit()
    s0.close()
    with pytest.raises(uow.DuplicateKeyError):
        with Session(db) as s:
            s.add(Uniq(email="dup@x"))
    assert s.closed
    assert db.a7_uniq.count_documents({}) == 1


def test_state_of_documents_after_close(db: Any) -> None:
    s = Session(db)
    it = Item(name="a")
    s.add(it)
    s.commit()
    s.close()
    s2 = Session(db)
    assert s2.state(it) is uow.ObjectState.DETACHED
