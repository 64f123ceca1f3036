"""Copies made inside a transaction (docs/session.md, "The unit of work"):

"A copy made between a flush and the end of its transaction cannot know yet what
is stored: it carries both the flushed and the last committed snapshot, and the
transaction's end decides. Committed, the flush is stored (adding the copy
writes nothing of it); aborted (`rollback()`, `close()` without commit, a failed
flush the server aborted), the copy is compared with the last committed
document, so its changes are written when it is added, and a copy of a document
first inserted in that transaction is transient (its add inserts it). A pickle
loaded after the transaction ended, in the same process, learns how it ended
[...] A copy added to a session while the transaction is still open is compared
with the flush (it is decided then)."

Every test checks the stored document (raw pymongo) against the copy's memory.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import Counter, Line, VCounter, stored

pytestmark = pytest.mark.transactions

DUPS: list[Any] = [
    pytest.param(copy.deepcopy, id="deepcopy"),
    pytest.param(lambda o: pickle.loads(pickle.dumps(o)), id="pickle"),
]
ABORTS = ["rollback", "close", "failed_flush", "transaction_block"]


class Boom(Exception):
    pass


def _seed(db: Any) -> Counter:
    with Session(db) as s:
        c = Counter(
            code="a", n=1, hi=1, log=["a"], tags=["t"], lines=[Line(sku="l", qty=1)], prefs={"p": 1}
        )
        s.add(c)
        s.add(Counter(code="taken"))
    return c


def _run(db: Any, s: Session, how: str, body: Callable[[], Any]) -> Any:
    """Run body() (changes, flushes, makes copies) and end its transaction by ``how``."""
    if how == "transaction_block":
        out: Any = None
        with pytest.raises(Boom):
            with s.transaction():
                out = body()
                raise Boom
        return out
    out = body()
    if how == "rollback":
        s.rollback()
    elif how == "close":
        s.close()
    elif how == "commit":
        s.commit()
    elif how == "failed_flush":
        s.add(Counter(code="taken"))
        with pytest.raises(uow.DuplicateKeyError) as e:
            s.flush()
        assert e.value.transaction_aborted
    else:  # pragma: no cover
        raise AssertionError(how)
    return out


def _change(doc: Counter) -> None:
    doc.n += 4
    doc.hi = 9
    doc.log.append("b")
    doc.tags.append("u")
    doc.prefs["q"] = 2
    doc.lines[0].qty += 2
    doc.lines[0].notes.append("x")


def _assert_copy_stored(db: Any, c: Any, what: str) -> None:
    got = stored(db, c)
    assert got == c.to_bson(), f"{what}: stored {got}\n memory {c.to_bson()}"


@pytest.mark.parametrize("how", ABORTS)
@pytest.mark.parametrize("dup", DUPS)
def test_copy_between_flush_and_abort_is_written_when_added(
    db: Any, dup: Callable[[Any], Any], how: str
) -> None:
    seed = _seed(db)
    s = Session(db)

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        _change(doc)
        s.flush()
        return dup(doc)

    c = _run(db, s, how, body)
    assert stored(db, seed)["n"] == 1, "the aborted transaction left writes behind"
    assert c.n == 5 and c.log == ["a", "b"]
    c.n += 10  # a change of the copy's own, after the end
    with Session(db) as s2:
        s2.add(c)
        assert s2.is_dirty(c), (
            f"{how}: the copy is compared with the flush, not the committed document"
        )
        assert "n" in s2.dirty_fields(c), s2.dirty_fields(c)
    _assert_copy_stored(db, c, how)
    assert stored(db, c)["n"] == 15


@pytest.mark.parametrize("dup", DUPS)
def test_copy_between_flush_and_commit_writes_nothing(db: Any, dup: Callable[[Any], Any]) -> None:
    seed = _seed(db)
    s = Session(db)

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        _change(doc)
        s.flush()
        return dup(doc)

    c = _run(db, s, "commit", body)
    s.close()
    with Session(db) as s2:
        s2.add(c)
        assert not s2.is_dirty(c), s2.dirty_fields(c)
        assert s2.flush().round_trips == 0
        c.n += 1
    _assert_copy_stored(db, c, "commit")
    assert stored(db, c)["n"] == 6


@pytest.mark.parametrize("how", ["commit", *ABORTS])
@pytest.mark.parametrize("dup", DUPS)
def test_copy_of_document_inserted_in_the_transaction(
    db: Any, dup: Callable[[Any], Any], how: str
) -> None:
    _seed(db)
    s = Session(db)
    new = Counter(code="new", n=3, tags=["x"])

    def body() -> Any:
        s.add(new)
        s.flush()
        new.tags.append("y")
        new.n += 1
        s.flush()
        return dup(new)

    c = _run(db, s, how, body)
    s2 = Session(db)
    s2.add(c)
    if how == "commit":
        assert s2.state(c) is ObjectState.PERSISTENT, s2.state(c)
        assert s2.flush().round_trips == 0
    else:
        assert db.a15_counter.find_one({"code": "new"}) is None
        assert s2.state(c) is ObjectState.PENDING, f"{how}: {s2.state(c)}"
    try:
        s2.commit()
    except uow.FlushError as e:
        pytest.fail(f"{how}: adding the copy failed: {e}")
    _assert_copy_stored(db, c, how)
    s2.close()


@pytest.mark.parametrize("how", ["commit", *ABORTS])
@pytest.mark.parametrize("dup", DUPS)
def test_copy_of_document_deleted_in_the_transaction(
    db: Any, dup: Callable[[Any], Any], how: str
) -> None:
    """Aborted: the delete never happened, the copy is compared with the
    committed document (an update, not an insert that collides). Committed:
    the document is stored nowhere, adding the copy inserts it."""
    seed = _seed(db)
    s = Session(db)

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        doc.n += 1
        s.flush()
        s.delete(doc)
        s.flush()
        return dup(doc)

    c = _run(db, s, how, body)
    if how == "commit":
        assert stored(db, seed) is None
    else:
        assert stored(db, seed)["n"] == 1
    c.tags.append("back")
    s2 = Session(db)
    s2.add(c)
    if how == "commit":
        # as the original itself, and as the same copy without a transaction:
        # the document is stored nowhere, so the copy's add is an insert
        assert s2.state(c) is ObjectState.PENDING, (
            f"copy of a document whose delete committed: state {s2.state(c)}, expected PENDING"
        )
    try:
        s2.commit()
    except uow.FlushError as e:
        pytest.fail(f"{how}: adding the copy of the deleted document failed: {e}")
    _assert_copy_stored(db, c, how)
    s2.close()


@pytest.mark.parametrize("when", ["before_end", "after_end"])
@pytest.mark.parametrize("how", ["commit", "rollback", "close", "failed_flush"])
@pytest.mark.parametrize("dup", DUPS)
def test_copy_of_copy(db: Any, dup: Callable[[Any], Any], how: str, when: str) -> None:
    """A copy of such a copy carries the same two snapshots, so the same end
    decides for it, whether it was made before or after the end."""
    seed = _seed(db)
    s = Session(db)
    holder: dict[str, Any] = {}

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        _change(doc)
        s.flush()
        c1 = dup(doc)
        if when == "before_end":
            holder["c2"] = dup(c1)
        return c1

    c1 = _run(db, s, how, body)
    c2 = holder["c2"] if when == "before_end" else dup(c1)
    with Session(db) as s2:
        s2.add(c2)
        dirty = s2.is_dirty(c2)
    _assert_copy_stored(
        db, c2, f"copy of a copy, {how}/{when} (add wrote nothing: is_dirty {dirty})"
    )
    assert stored(db, c2)["n"] == 5
    assert dirty == (how != "commit"), f"{how}/{when}: is_dirty {dirty}"


@pytest.mark.parametrize("how", ["commit", "rollback", "close"])
def test_pickle_loaded_after_the_end_learns_it(db: Any, how: str) -> None:
    seed = _seed(db)
    s = Session(db)

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        _change(doc)
        s.flush()
        return pickle.dumps(doc)

    blob = _run(db, s, how, body)
    c = pickle.loads(blob)
    with Session(db) as s2:
        s2.add(c)
        assert s2.is_dirty(c) == (how != "commit"), how
    _assert_copy_stored(db, c, how)


@pytest.mark.parametrize("how", ["commit", "rollback"])
@pytest.mark.parametrize("dup", DUPS)
def test_versioned_copy(db: Any, dup: Callable[[Any], Any], how: str) -> None:
    """Aborted: the copy is compared with the committed document, so its
    update is conditional on the committed version (no StaleDocumentError)."""
    with Session(db) as s0:
        v = VCounter(code="v", n=1)
        s0.add(v)
    s = Session(db)

    def body() -> Any:
        doc = s.get(VCounter, v.id)
        doc.name = "flushed"
        doc.n += 1
        s.flush()
        assert doc.version == 1
        return dup(doc)

    c = _run(db, s, how, body)
    s.close()
    c.name = "copy"
    s2 = Session(db)
    s2.add(c)
    try:
        s2.commit()
    except uow.StaleDocumentError as e:
        pytest.fail(f"{how}: the copy's update matched the wrong version: {e}")
    _assert_copy_stored(db, c, how)
    got = stored(db, c)
    assert got["n"] == 2 and got["name"] == "copy"
    assert got["version"] == (2 if how == "commit" else 1), got
    s2.close()


@pytest.mark.parametrize("dup", DUPS)
def test_copy_added_while_transaction_open_then_commit(db: Any, dup: Callable[[Any], Any]) -> None:
    seed = _seed(db)
    s = Session(db)
    doc = s.get(Counter, seed.id)
    _change(doc)
    s.flush()
    c = dup(doc)
    s2 = Session(db)
    s2.add(c)  # decided now: compared with the flush
    assert not s2.is_dirty(c)
    c.n += 1
    c.tags.append("v")
    s.commit()
    s2.commit()
    _assert_copy_stored(db, c, "open then commit")
    got = stored(db, c)
    assert got["n"] == 6 and got["tags"] == ["t", "u", "v"], got
    s.close()
    s2.close()


@pytest.mark.parametrize("dup", DUPS)
def test_copy_between_two_flushes_then_failed_flush(db: Any, dup: Callable[[Any], Any]) -> None:
    """Two flushes in one transaction; copies after the first and after the
    second; a third flush fails and the server aborts: both copies compare
    with the committed document."""
    seed = _seed(db)
    s = Session(db)
    doc = s.get(Counter, seed.id)
    doc.n += 1
    doc.log.append("1")
    s.flush()
    c1 = dup(doc)
    doc.n += 2
    doc.log.append("2")
    s.flush()
    c2 = dup(doc)
    doc.n += 100
    s.add(Counter(code="taken"))
    with pytest.raises(uow.DuplicateKeyError):
        s.flush()
    after = dup(doc)  # made after the abort: dirty against the committed document
    s.rollback()
    s.close()
    for name, c, n in (("c1", c1, 2), ("c2", c2, 4), ("after", after, 104)):
        with Session(db) as s2:
            s2.add(c)
        _assert_copy_stored(db, c, name)
        assert stored(db, c)["n"] == n, (name, stored(db, c))
        # put the committed document back for the next copy
        db.a15_counter.replace_one({"_id": seed.id}, seed.to_bson())


@pytest.mark.parametrize("dup", DUPS)
def test_copy_in_original_session_after_rollback(db: Any, dup: Callable[[Any], Any]) -> None:
    """The original session itself, after rollback and after it let go of the
    original (expunge), takes the copy back: it is compared with the
    committed document."""
    seed = _seed(db)
    s = Session(db)
    doc = s.get(Counter, seed.id)
    _change(doc)
    s.flush()
    c = dup(doc)
    s.rollback()
    s.expunge(doc)
    s.add(c)
    assert s.is_dirty(c)
    s.commit()
    _assert_copy_stored(db, c, "same session")
    s.close()


def test_shallow_copy_scalars_after_rollback(db: Any) -> None:
    seed = _seed(db)
    s = Session(db)
    doc = s.get(Counter, seed.id)
    doc.n += 4
    doc.hi = 7
    s.flush()
    c = copy.copy(doc)
    s.rollback()
    assert doc.n == 1 and c.n == 5
    s.close()
    with Session(db) as s2:
        s2.add(c)
    got = stored(db, c)
    assert got["n"] == 5 and got["hi"] == 7, got


@pytest.mark.parametrize("how", ["rollback", "close", "failed_flush"])
def test_shallow_copy_with_containers_after_abort(db: Any, how: str) -> None:
    """copy.copy shares the containers with the original; whatever the
    rollback does to the original, adding the copy stores what the copy holds."""
    seed = _seed(db)
    s = Session(db)

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        _change(doc)
        s.flush()
        return copy.copy(doc)

    c = _run(db, s, how, body)
    with Session(db) as s2:
        s2.add(c)
    _assert_copy_stored(db, c, f"shallow copy, {how}")


@pytest.mark.parametrize("how", ["commit", "rollback"])
@pytest.mark.parametrize("dup", DUPS)
def test_copy_keeps_unknown_keys_across_abort(db: Any, dup: Callable[[Any], Any], how: str) -> None:
    seed = _seed(db)
    db.a15_counter.update_one(
        {"_id": seed.id}, {"$set": {"legacy": {"k": [1, 2]}, "lines.0.old": "x", "prefs.keep": 7}}
    )
    s = Session(db)

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        _change(doc)
        s.flush()
        return dup(doc)

    c = _run(db, s, how, body)
    with Session(db) as s2:
        s2.add(c)
    got = stored(db, c)
    assert got["legacy"] == {"k": [1, 2]} and got["lines"][0]["old"] == "x", got
    _assert_copy_stored(db, c, how)


@pytest.mark.parametrize("dup", DUPS)
def test_copy_of_copy_across_two_transactions(db: Any, dup: Callable[[Any], Any]) -> None:
    """T1 commits (the copy c1, made between its flush and commit, then is
    'stored'); c1 is added to s2, changed and flushed in T2; c2 is copied
    between that flush and T2's rollback: c2 compares with T1's document."""
    seed = _seed(db)
    s1 = Session(db)
    doc = s1.get(Counter, seed.id)
    doc.n += 1
    s1.flush()
    c1 = dup(doc)
    s1.commit()
    s1.close()
    s2 = Session(db)
    s2.add(c1)
    c1.n += 10
    c1.tags.append("t2")
    s2.flush()
    c2 = dup(c1)
    s2.rollback()
    s2.close()
    assert stored(db, seed)["n"] == 2
    with Session(db) as s3:
        s3.add(c2)
    _assert_copy_stored(db, c2, "copy of a copy across transactions")
    assert stored(db, c2)["n"] == 12


@pytest.mark.parametrize("dup", DUPS)
def test_copy_of_document_first_loaded_inside_aborted_transaction(
    db: Any, dup: Callable[[Any], Any]
) -> None:
    seed = _seed(db)
    s = Session(db)
    s.add(Counter(code="starter"))
    s.flush()  # the transaction is open before the document is loaded
    doc = s.query(Counter).filter(code="a").one()
    assert doc.id == seed.id
    _change(doc)
    s.flush()
    c = dup(doc)
    s.rollback()
    with Session(db) as s2:
        s2.add(c)
    _assert_copy_stored(db, c, "first loaded in the aborted transaction")
    assert db.a15_counter.find_one({"code": "starter"}) is None


@pytest.mark.parametrize("how", ["commit", "rollback"])
@pytest.mark.parametrize("dup", DUPS)
def test_copy_of_partial_document_in_transaction(
    db: Any, dup: Callable[[Any], Any], how: str
) -> None:
    seed = _seed(db)
    s = Session(db)

    def body() -> Any:
        part = s.query(Counter).fields("n", "tags").filter(code="a").one()
        part.n += 3
        part.tags.append("p")
        part.hi = 40  # not loaded: $set
        s.flush()
        return dup(part)

    c = _run(db, s, how, body)
    with pytest.raises(uow.FieldNotLoaded):
        _ = c.log
    with Session(db) as s2:
        s2.add(c)
    got = stored(db, seed)
    assert (got["n"], got["tags"], got["hi"]) == (4, ["t", "p"], 40), f"{how}: {got}"
    assert got["log"] == ["a"] and got["lines"] == [{"sku": "l", "qty": 1, "notes": []}], got


@pytest.mark.parametrize("let_go", ["expunge", "clear_cache"])
@pytest.mark.parametrize("how", ["commit", "rollback", "close"])
@pytest.mark.parametrize("dup", DUPS)
def test_copy_of_document_let_go_of_after_its_flush(
    db: Any, dup: Callable[[Any], Any], how: str, let_go: str
) -> None:
    """docs/session.md: a document "let go of after its write in a transaction
    that then aborted is compared with its committed form"; a copy of it made
    while that transaction is open is a copy made between a flush and the end
    of its transaction, so the end decides for it too."""
    seed = _seed(db)
    s = Session(db)

    def body() -> Any:
        doc = s.get(Counter, seed.id)
        _change(doc)
        s.flush()
        if let_go == "expunge":
            s.expunge(doc)
        else:
            s.clear_cache()
        assert s.state(doc) is ObjectState.DETACHED
        return dup(doc)

    c = _run(db, s, how, body)
    with Session(db) as s2:
        s2.add(c)
        dirty = s2.is_dirty(c)
    _assert_copy_stored(db, c, f"copy after {let_go}, then {how} (is_dirty at add: {dirty})")
