"""Nothing lost across a document's life: issue #17 family 8 (iteration after
`close()`, changes made while detached, `update()` of a document loaded with
`no_tracking=True`) and the WARNING when `close()` drops unflushed changes.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

import uow
from uow import Document, field

from ._nl import insert_raw, reload, stored


class NllCounter(Document):
    __collection__ = "nll_counters"

    name: str
    n: int = field(default=0, on_update="$inc")
    log: list[str] = field(factory=list, on_update="$push")
    tags: list[str] = field(factory=list)
    top: int = field(default=0, on_update="$max")
    scores: dict[str, int] = field(factory=dict)


def _counter(db: Any, **values: Any) -> Any:
    return insert_raw(
        db,
        "nll_counters",
        {"name": "c", "n": 5, "log": ["a"], "tags": ["t"], "top": 5, "scores": {"k": 1}, **values},
    )


# =============================================== iteration begun before close()


def test_iteration_begun_before_close_raises_at_the_next_item(db: Any) -> None:
    for i in range(5):
        _counter(db, name=f"c{i}")
    s = uow.Session(db)
    it = iter(s.query(NllCounter))
    first = next(it)
    assert isinstance(first, NllCounter)
    s.close()
    with pytest.raises(uow.SessionClosedError):
        next(it)


def test_iteration_not_begun_before_close_raises_too(db: Any) -> None:
    _counter(db)
    s = uow.Session(db)
    q = s.query(NllCounter)
    s.close()
    with pytest.raises(uow.SessionClosedError):
        list(q)


def test_calls_after_close_raise_and_second_close_is_quiet(db: Any) -> None:
    doc_id = _counter(db)
    s = uow.Session(db)
    c = s.get(NllCounter, doc_id)
    s.close()
    s.close()  # a second close does nothing
    for call in (
        lambda: s.get(NllCounter, doc_id),
        s.flush,
        s.commit,
        lambda: s.add(c),
        lambda: s.query(NllCounter).first(),
    ):
        with pytest.raises(uow.SessionClosedError):
            call()


# ======================================================= changes made while detached


def test_expunged_document_changes_are_written_by_a_later_add(db: Any) -> None:
    doc_id = _counter(db)
    s = uow.Session(db)
    c = s.get(NllCounter, doc_id)
    s.expunge(c)
    assert s.state(c) == uow.ObjectState.DETACHED
    c.n += 1
    c.log.append("b")
    c.name = "renamed"
    db["nll_counters"].update_one({"_id": doc_id}, {"$inc": {"n": 10}, "$push": {"log": "other"}})
    s.add(c)
    state, dirty = s.state(c), s.is_dirty(c)
    s.commit()
    s.close()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["n"] == 16  # delta from the snapshot, another writer's +10 kept
    assert raw["log"] == ["a", "other", "b"]
    assert raw["name"] == "renamed"
    assert state == uow.ObjectState.PERSISTENT and dirty


def test_document_of_a_closed_session_changes_written_by_add_in_a_new_session(db: Any) -> None:
    doc_id = _counter(db)
    s1 = uow.Session(db)
    c = s1.get(NllCounter, doc_id)
    s1.close()
    c.n += 1
    c.tags.append("u")
    c.scores["j"] = 2
    s2 = uow.Session(db)
    s2.add(c)
    s2.commit()
    s2.close()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["n"] == 6 and raw["tags"] == ["t", "u"] and raw["scores"] == {"k": 1, "j": 2}
    again = reload(db, NllCounter, doc_id)
    assert (again.n, again.tags, again.scores) == (c.n, c.tags, c.scores)


def test_document_of_a_closed_session_written_by_save_in_a_new_session(db: Any) -> None:
    doc_id = _counter(db)
    s1 = uow.Session(db)
    c = s1.get(NllCounter, doc_id)
    c.n += 1
    s1.commit()
    s1.close()
    c.n += 1  # made after the close: must be found later
    c.top = 9
    s2 = uow.Session(db)
    s2.save(c)
    s2.commit()
    s2.close()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["n"] == 7 and raw["top"] == 9


def test_changes_dropped_by_close_then_more_changes_then_add(db: Any) -> None:
    """Ambiguity: a change made before close() is dropped by the close (with a
    WARNING). Is it still "found" when the detached object is added to a new
    session? SPEC: add() of a detached document tracks it "with the snapshot it
    had when it was last stored", so the snapshot is the stored state and every
    difference from it - the dropped change included - is written. Reading
    chosen: both changes are written."""
    doc_id = _counter(db)
    s1 = uow.Session(db)
    c = s1.get(NllCounter, doc_id)
    c.n += 1
    s1.close()
    c.n += 1
    s2 = uow.Session(db)
    s2.add(c)
    s2.commit()
    s2.close()
    assert stored(db, "nll_counters", doc_id)["n"] == c.n == 7


def test_document_dropped_by_clear_cache_changes_written_by_add(db: Any) -> None:
    doc_id = _counter(db)
    s = uow.Session(db)
    c = s.get(NllCounter, doc_id)
    s.clear_cache()
    assert s.state(c) == uow.ObjectState.DETACHED
    c.log.append("b")
    c.n += 2
    s.add(c)
    s.commit()
    s.close()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["log"] == ["a", "b"] and raw["n"] == 7


def test_clear_cache_keeps_documents_with_unflushed_changes(db: Any) -> None:
    doc_id = _counter(db)
    s = uow.Session(db)
    c = s.get(NllCounter, doc_id)
    c.tags.append("u")  # in-place only
    s.clear_cache()
    assert s.state(c) == uow.ObjectState.PERSISTENT
    del c
    gc.collect()
    s.commit()
    s.close()
    assert stored(db, "nll_counters", doc_id)["tags"] == ["t", "u"]


def test_detached_then_get_in_new_session_does_not_mix_objects(db: Any) -> None:
    """add() of a detached document: the session must not hold a second object
    for the same id; the added one is the identity afterwards."""
    doc_id = _counter(db)
    s1 = uow.Session(db)
    c = s1.get(NllCounter, doc_id)
    s1.close()
    c.n += 1
    s2 = uow.Session(db)
    s2.add(c)
    assert s2.get(NllCounter, doc_id) is c
    assert s2.query(NllCounter).first() is c
    s2.commit()
    s2.close()
    assert stored(db, "nll_counters", doc_id)["n"] == 6


# ====================================================== update() after no_tracking


def test_update_of_a_no_tracking_document_sends_values_not_deltas(db: Any) -> None:
    doc_id = _counter(db)
    s = uow.Session(db, no_tracking=True)
    c = s.get(NllCounter, doc_id)
    assert c.n == 5
    s.update(c)
    s.commit()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["n"] == 5, f"stored n={raw['n']}, memory {c.n}"
    assert raw["log"] == ["a"], f"stored log={raw['log']}, memory {c.log}"
    assert raw["tags"] == ["t"] and raw["top"] == 5
    s.close()


def test_update_of_a_changed_no_tracking_document_stores_its_values(db: Any) -> None:
    doc_id = _counter(db)
    s = uow.Session(db, no_tracking=True)
    c = s.get(NllCounter, doc_id)
    c.n = 7
    c.log.append("b")
    c.top = 2
    s.update(c)
    s.commit()
    s.close()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["n"] == 7 and raw["log"] == ["a", "b"]
    # Ambiguity: `$max` sends "the new value; the server keeps the larger";
    # SPEC says update() of a no_tracking document "sends its values with
    # $set", so the reading chosen is that top=2 is stored as 2.
    assert raw["top"] == 2


def test_no_tracking_query_then_update_twice_is_not_doubled(db: Any) -> None:
    doc_id = _counter(db)
    s = uow.Session(db, no_tracking=True)
    c = s.query(NllCounter).first()
    s.update(c)
    s.flush()
    s.update(c)
    s.commit()
    s.close()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["n"] == 5 and raw["log"] == ["a"]


def test_no_tracking_update_keeps_unknown_keys(db: Any) -> None:
    doc_id = _counter(db, extra={"keep": True})
    s = uow.Session(db, no_tracking=True)
    c = s.get(NllCounter, doc_id)
    c.name = "x"
    s.update(c)
    s.commit()
    s.close()
    raw = stored(db, "nll_counters", doc_id)
    assert raw["name"] == "x" and raw["extra"] == {"keep": True}


# =========================================================== WARNING on close


def _uow_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("uow") and r.levelno == logging.WARNING]


def test_close_with_unflushed_changes_warns_how_many_were_dropped(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Ambiguity: "how many changes" - counted per document (a dirty document,
    an insert, a delete) or per changed field? Each document here has exactly
    one changed field, so both readings give 3."""
    a_id, b_id, d_id = _counter(db, name="a"), _counter(db, name="b"), _counter(db, name="d")
    s = uow.Session(db)
    a, b, d = s.get(NllCounter, a_id), s.get(NllCounter, b_id), s.get(NllCounter, d_id)
    a.n += 1
    b.tags.append("x")  # in place
    s.delete(d)
    s.add(NllCounter(name="new"))
    with caplog.at_level(logging.WARNING, logger="uow"):
        s.close()
    warnings = _uow_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "4" in warnings[0].getMessage()
    # and nothing was written
    assert stored(db, "nll_counters", a_id)["n"] == 5
    assert stored(db, "nll_counters", b_id)["tags"] == ["t"]
    assert db["nll_counters"].count_documents({}) == 3


def test_close_with_a_single_in_place_change_warns(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    doc_id = _counter(db)
    s = uow.Session(db)
    s.get(NllCounter, doc_id).log.append("b")
    with caplog.at_level(logging.WARNING, logger="uow"):
        s.close()
    warnings = _uow_warnings(caplog)
    assert len(warnings) == 1 and "1" in warnings[0].getMessage()


def test_close_with_nothing_unflushed_does_not_warn(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    doc_id = _counter(db)
    s = uow.Session(db)
    c = s.get(NllCounter, doc_id)
    c.n += 1
    s.commit()
    _ = s.get(NllCounter, doc_id).n
    with caplog.at_level(logging.WARNING, logger="uow"):
        s.close()
    assert _uow_warnings(caplog) == []


def test_with_block_error_path_does_not_warn(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    doc_id = _counter(db)
    with caplog.at_level(logging.WARNING, logger="uow"):
        with pytest.raises(RuntimeError):
            with uow.Session(db) as s:
                s.get(NllCounter, doc_id).n += 1
                raise RuntimeError("boom")
    assert _uow_warnings(caplog) == []
    assert stored(db, "nll_counters", doc_id)["n"] == 5


def test_with_block_error_after_a_flush_keeps_memory_equal_to_store(db: Any) -> None:
    """SPEC: an exception inside the block rolls back; with transactions
    nothing is written, without them what an earlier flush wrote stays. Either
    way the document read afterwards (memory of a detached object aside)
    equals the store: a fresh session sees exactly one of the two outcomes."""
    doc_id = _counter(db)
    with pytest.raises(RuntimeError):
        with uow.Session(db) as s:
            c = s.get(NllCounter, doc_id)
            c.n += 1
            c.log.append("flushed")
            s.flush()
            c.n += 1
            c.log.append("unflushed")
            transactional = stored(db, "nll_counters", doc_id)["n"] == 5
            raise RuntimeError("boom")
    raw = stored(db, "nll_counters", doc_id)
    if transactional:
        assert raw["n"] == 5 and raw["log"] == ["a"]
    else:
        assert raw["n"] == 6 and raw["log"] == ["a", "flushed"]
    # the object, added to a new session, writes exactly its later changes
    s2 = uow.Session(db)
    s2.add(c)
    c.n += 1
    s2.commit()
    s2.close()
    assert stored(db, "nll_counters", doc_id)["n"] == raw["n"] + 1
