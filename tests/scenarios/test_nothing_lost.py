"""Nothing lost: SPEC v4's "one rule" (after a flush, the stored document equals
what the session holds), top-level fields.

Issue #17 families covered here: 3 (a key missing from the stored document, a
non-empty default), 6 (legacy values never block a flush), 7 (a version
conflict without a transaction: applied / not_applied / in_doubt, and
following the advice never double-applies), 9 (refs put in place in
containers). Plus the "Unit of work" and "Identity map" promises that decide
whether a write is lost or doubled.

Every test reads the stored document with raw pymongo after the flush. On the
secantus lane a plain ``Session(db)`` writes in a transaction, so tests
``commit()`` before reading raw.
"""

from __future__ import annotations

import datetime
import gc
from typing import Any

import bson
import pytest

import uow
from uow import Document, Embedded, Ref, field

from ._nl import ids, insert_raw, ref_id, reload, stored, stored_or_none

# --------------------------------------------------------------------- classes


class NlSub(Embedded):
    a: int = 1
    b: int = 2


class NlDoc(Document):
    """Every field has a non-empty default (family 3)."""

    __collection__ = "nl_docs"

    name: str
    count: int = field(default=5, on_update="$inc")
    plain: int = 5
    tags: list[str] = field(factory=lambda: ["a"])
    pushed: list[str] = field(factory=lambda: ["a"], on_update="$push")
    added: list[str] = field(factory=lambda: ["a"], on_update="$addToSet")
    labels: set[str] = field(factory=lambda: {"a"})
    opts: dict[str, int] = field(factory=lambda: {"k": 1})
    sub: NlSub = field(factory=NlSub)
    peak: int = field(default=5, on_update="$max")
    low: int = field(default=5, on_update="$min")
    aliased: int = field(default=5, on_update="$inc", db_name="al")


class NlVer(Document):
    __collection__ = "nl_vers"

    name: str
    n: int = field(default=0, on_update="$inc")
    version: int = field(default=0, version=True)


class NlAuthor(Document):
    __collection__ = "nl_authors"

    name: str


class NlPost(Document):
    __collection__ = "nl_posts"

    title: str
    authors: list[Ref[NlAuthor]] = field(factory=list)
    by_role: dict[str, Ref[NlAuthor]] = field(factory=dict)


class NlStamp(Document):
    __collection__ = "nl_stamps"

    name: str
    touched: datetime.datetime | None = field(default=None, on_update="$currentDate")


class NlInner(Embedded):
    x: int = 0


class NlPlain(Document):
    """No non-empty defaults: the ordinary change-tracking cases."""

    __collection__ = "nl_plain"

    name: str
    visits: int = field(default=0, on_update="$inc")
    whole: list[str] = field(factory=list, on_update="$set")
    tags: list[str] = field(factory=list)
    labels: set[str] = field(factory=set)
    scores: dict[str, int] = field(factory=dict)
    inner: NlInner | None = None
    inners: list[NlInner] = field(factory=list)


def _commit_and_close(s: uow.Session) -> None:
    s.commit()
    s.close()


# ====================================================== family 3: missing keys

# (attribute, change in memory, expected stored value under the attribute's key)
MISSING_KEY_CASES = [
    ("count", lambda d: setattr(d, "count", d.count + 1), 6),
    ("plain", lambda d: setattr(d, "plain", d.plain + 1), 6),
    ("tags", lambda d: d.tags.append("b"), ["a", "b"]),
    ("pushed", lambda d: d.pushed.append("b"), ["a", "b"]),
    ("added", lambda d: d.added.append("b"), ["a", "b"]),
    ("opts", lambda d: d.opts.__setitem__("j", 2), {"k": 1, "j": 2}),
    ("sub", lambda d: setattr(d.sub, "b", 3), {"a": 1, "b": 3}),
    ("peak", lambda d: setattr(d, "peak", 3), 3),
    ("low", lambda d: setattr(d, "low", 7), 7),
]


@pytest.mark.parametrize(
    ("attr", "change", "expected"), MISSING_KEY_CASES, ids=[c[0] for c in MISSING_KEY_CASES]
)
def test_missing_key_first_change_stores_the_whole_value(
    db: Any, attr: str, change: Any, expected: Any
) -> None:
    doc_id = insert_raw(db, "nl_docs", {"name": "n"})
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    change(d)
    _commit_and_close(s)
    raw = stored(db, "nl_docs", doc_id)
    assert raw.get(attr) == expected, (
        f"stored {attr}={raw.get(attr)!r}, memory {getattr(d, attr)!r}"
    )
    again = reload(db, NlDoc, doc_id)
    assert getattr(again, attr) == getattr(d, attr)


def test_missing_key_set_field_first_add_stores_default_and_addition(db: Any) -> None:
    doc_id = insert_raw(db, "nl_docs", {"name": "n"})
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    d.labels.add("b")
    _commit_and_close(s)
    raw = stored(db, "nl_docs", doc_id)
    assert sorted(raw.get("labels") or []) == ["a", "b"], (
        f"stored {raw.get('labels')!r}, memory {d.labels!r}"
    )


def test_missing_key_later_changes_are_minimal_again(db: Any) -> None:
    """After the first $set, a $inc / $push is relative again: another writer's work survives."""
    doc_id = insert_raw(db, "nl_docs", {"name": "n"})
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    d.count += 1
    d.tags.append("b")
    s.commit()
    assert stored(db, "nl_docs", doc_id)["count"] == 6
    db["nl_docs"].update_one({"_id": doc_id}, {"$inc": {"count": 10}, "$push": {"tags": "x"}})
    d.count += 1
    d.tags.append("c")
    _commit_and_close(s)
    raw = stored(db, "nl_docs", doc_id)
    assert raw["count"] == 17
    assert raw["tags"] == ["a", "b", "x", "c"]


def test_missing_key_untouched_default_is_not_written(db: Any) -> None:
    """SPEC: a missing key loads as the default, and that default is not a change."""
    doc_id = insert_raw(db, "nl_docs", {"name": "n"})
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    assert d.count == 5 and d.tags == ["a"] and d.sub == NlSub()
    assert not s.is_dirty(d)
    d.name = "m"
    assert s.dirty_fields(d) == ["name"]
    _commit_and_close(s)
    assert stored(db, "nl_docs", doc_id) == {"_id": doc_id, "name": "m"}


def test_missing_key_two_sessions_inc_from_default(db: Any) -> None:
    """Two sessions each `+= 1` on a missing key with default 5.

    Ambiguity: SPEC says the first change of a missing key is a `$set` of the
    whole value, so both sessions send `$set: 6` and one increment is lost
    (stored 6, not 7). The one rule (stored equals what each session holds)
    is met by each flush; this test only pins that the stored value is what
    the last session holds, and never the default or a delta from it.
    """
    doc_id = insert_raw(db, "nl_docs", {"name": "n"})
    s1, s2 = uow.Session(db), uow.Session(db)
    d1, d2 = s1.get(NlDoc, doc_id), s2.get(NlDoc, doc_id)
    d2.count += 1
    _commit_and_close(s2)
    d1.count += 1
    _commit_and_close(s1)
    assert stored(db, "nl_docs", doc_id)["count"] in (6, 7)


def test_missing_version_key_is_matched_by_absence_and_set(db: Any) -> None:
    doc_id = insert_raw(db, "nl_vers", {"name": "v"})
    s = uow.Session(db)
    v = s.get(NlVer, doc_id)
    v.name = "w"
    _commit_and_close(s)
    raw = stored(db, "nl_vers", doc_id)
    assert raw["name"] == "w"
    assert "version" in raw and raw["version"] == v.version


def test_missing_version_key_lost_race_is_stale(db: Any) -> None:
    doc_id = insert_raw(db, "nl_vers", {"name": "v"})
    s1, s2 = uow.Session(db), uow.Session(db)
    v1, v2 = s1.get(NlVer, doc_id), s2.get(NlVer, doc_id)
    v2.name = "from s2"
    _commit_and_close(s2)
    v1.name = "from s1"
    with pytest.raises(uow.StaleDocumentError):
        s1.flush()
    s1.rollback()
    s1.close()
    assert stored(db, "nl_vers", doc_id)["name"] == "from s2"


# ======================================================== family 6: legacy data

LEGACY = {
    "name": "n",
    "tags": [1, 2],
    "plain": "five",
    "opts": {"k": "v"},
    "sub": {"a": "x", "b": 2},
    "labels": "not-a-list",
}


def test_legacy_value_in_untouched_field_does_not_block_a_flush(db: Any) -> None:
    doc_id = insert_raw(db, "nl_docs", LEGACY)
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    assert d.tags == [1, 2]  # loads as it is
    d.name = "m"
    _commit_and_close(s)
    assert stored(db, "nl_docs", doc_id) == {**LEGACY, "_id": doc_id, "name": "m"}


def test_legacy_value_beside_a_changed_embedded_field(db: Any) -> None:
    doc_id = insert_raw(db, "nl_docs", LEGACY)
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    d.sub.b = 3
    _commit_and_close(s)
    raw = stored(db, "nl_docs", doc_id)
    assert raw["sub"] == {"a": "x", "b": 3}
    assert raw["tags"] == [1, 2]


def test_legacy_field_replaced_by_a_valid_value(db: Any) -> None:
    doc_id = insert_raw(db, "nl_docs", LEGACY)
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    d.tags = ["x"]
    _commit_and_close(s)
    raw = stored(db, "nl_docs", doc_id)
    assert raw["tags"] == ["x"]
    assert raw["plain"] == "five"


def test_legacy_values_and_forced_update_do_not_block(db: Any) -> None:
    """Ambiguity: `update(obj)` on a tracked document "forces an update even when
    nothing changed"; reading: it sends what change tracking would (nothing
    changed => nothing to validate), so the legacy values stay as stored."""
    doc_id = insert_raw(db, "nl_docs", LEGACY)
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    s.update(d)
    _commit_and_close(s)
    assert stored(db, "nl_docs", doc_id) == {**LEGACY, "_id": doc_id}


# ==================================== family 7: version conflict, no transaction


def _three_versioned(db: Any) -> list[Any]:
    return [insert_raw(db, "nl_vers", {"name": f"v{i}", "n": 0, "version": 0}) for i in range(3)]


@pytest.mark.parametrize("stale", [0, 1, 2])
def test_version_conflict_in_one_batch_reports_exactly_and_never_doubles(
    db: Any, stale: int
) -> None:
    doc_ids = _three_versioned(db)
    s = uow.Session(db, transactional=False)
    docs = [s.get(NlVer, i) for i in doc_ids]
    for d in docs:
        d.n += 1
    # another writer wins the race on one document
    db["nl_vers"].update_one({"_id": doc_ids[stale]}, {"$inc": {"n": 100, "version": 1}})

    with pytest.raises(uow.StaleDocumentError) as caught:
        s.flush()
    error = caught.value
    assert isinstance(error, uow.FlushError)
    applied, not_applied, in_doubt = ids(error.applied), ids(error.not_applied), ids(error.in_doubt)
    assert not (applied & not_applied) and not (applied & in_doubt) and not (not_applied & in_doubt)
    assert applied | not_applied | in_doubt == ids(docs)
    assert id(docs[stale]) not in applied
    # "exact": whatever it says was applied is stored, whatever it says was not is not
    for d in docs:
        raw_n = stored(db, "nl_vers", d.id)["n"]
        if id(d) in applied:
            assert raw_n == 1
        if id(d) in not_applied:
            assert raw_n == (100 if d is docs[stale] else 0)

    # the advice: refresh the stale document, apply its change again, flush
    s.refresh(docs[stale])
    docs[stale].n += 1
    s.flush()
    _commit_and_close(s)
    for i, d in enumerate(docs):
        raw = stored(db, "nl_vers", d.id)
        assert raw["n"] == (101 if i == stale else 1), (
            f"doc {i}: stored n={raw['n']}, memory n={d.n}"
        )
        assert raw["n"] == d.n
        assert raw["version"] == d.version


def test_version_conflict_on_a_delete_beside_updates(db: Any) -> None:
    doc_ids = _three_versioned(db)
    s = uow.Session(db, transactional=False)
    a, b, c = (s.get(NlVer, i) for i in doc_ids)
    a.n += 1
    s.delete(b)
    c.n += 1
    db["nl_vers"].update_one({"_id": b.id}, {"$inc": {"version": 1}})
    with pytest.raises(uow.StaleDocumentError) as caught:
        s.flush()
    assert id(b) not in ids(caught.value.applied)
    assert stored_or_none(db, "nl_vers", b.id) is not None
    s.refresh(b)
    s.delete(b)
    s.flush()
    _commit_and_close(s)
    assert stored_or_none(db, "nl_vers", b.id) is None
    assert stored(db, "nl_vers", a.id)["n"] == 1
    assert stored(db, "nl_vers", c.id)["n"] == 1


def test_version_conflict_then_flush_again_without_refresh_keeps_failing_not_doubling(
    db: Any,
) -> None:
    """Nothing queued is dropped silently: flushing again without fixing the
    cause raises again, and the other documents' increments stay single."""
    doc_ids = _three_versioned(db)
    s = uow.Session(db, transactional=False)
    docs = [s.get(NlVer, i) for i in doc_ids]
    for d in docs:
        d.n += 1
    db["nl_vers"].update_one({"_id": doc_ids[1]}, {"$inc": {"version": 1}})
    with pytest.raises(uow.StaleDocumentError):
        s.flush()
    with pytest.raises(uow.StaleDocumentError):
        s.flush()
    assert stored(db, "nl_vers", doc_ids[0])["n"] == 1
    assert stored(db, "nl_vers", doc_ids[2])["n"] == 1
    s.rollback()
    s.close()


# ========================================================= family 9: ref containers


def _flush_or_refused(s: uow.Session, undo: Any) -> bool:
    """Commit; if the value put in place is refused (ValidationError, nothing
    else), take it out and commit again, which must work. True if accepted."""
    try:
        s.commit()
        return True
    except uow.ValidationError:
        undo()
        s.commit()
        return False


def _post_and_author(db: Any) -> tuple[Any, Any]:
    author_id = insert_raw(db, "nl_authors", {"name": "ann"})
    post_id = insert_raw(db, "nl_posts", {"title": "t", "authors": [], "by_role": {}})
    return author_id, post_id


@pytest.mark.parametrize("put", ["document", "id"])
def test_ref_list_append_in_place(db: Any, put: str) -> None:
    author_id, post_id = _post_and_author(db)
    s = uow.Session(db)
    author = s.get(NlAuthor, author_id)
    post = s.get(NlPost, post_id)
    value = author if put == "document" else author_id
    post.authors.append(value)
    post.title = "changed"
    accepted = _flush_or_refused(s, lambda: post.authors.remove(value))
    raw = stored(db, "nl_posts", post_id)
    assert raw["title"] == "changed"
    assert raw["authors"] == [ref_id(x) for x in post.authors]
    if accepted:
        assert raw["authors"] == [author_id]
        again = reload(db, NlPost, post_id)
        assert [r.id for r in again.authors] == [author_id]
    s.close()


@pytest.mark.parametrize("put", ["document", "id"])
def test_ref_list_setitem_in_place(db: Any, put: str) -> None:
    author_id, _ = _post_and_author(db)
    other_id = insert_raw(db, "nl_authors", {"name": "bob"})
    post_id = insert_raw(db, "nl_posts", {"title": "t", "authors": [author_id], "by_role": {}})
    s = uow.Session(db)
    post = s.get(NlPost, post_id)
    other = s.get(NlAuthor, other_id)
    old = post.authors[0]
    post.authors[0] = other if put == "document" else other_id
    accepted = _flush_or_refused(s, lambda: post.authors.__setitem__(0, old))
    raw = stored(db, "nl_posts", post_id)
    assert raw["authors"] == [ref_id(x) for x in post.authors]
    assert raw["authors"] == ([other_id] if accepted else [author_id])
    s.close()


@pytest.mark.parametrize("put", ["document", "id"])
def test_ref_dict_setitem_in_place(db: Any, put: str) -> None:
    author_id, post_id = _post_and_author(db)
    s = uow.Session(db)
    author = s.get(NlAuthor, author_id)
    post = s.get(NlPost, post_id)
    post.by_role["editor"] = author if put == "document" else author_id
    accepted = _flush_or_refused(s, lambda: post.by_role.pop("editor"))
    raw = stored(db, "nl_posts", post_id)
    assert raw["by_role"] == {k: ref_id(v) for k, v in post.by_role.items()}
    if accepted:
        assert raw["by_role"] == {"editor": author_id}
        again = reload(db, NlPost, post_id)
        assert again.by_role["editor"].id == author_id
    s.close()


def test_ref_list_in_place_on_a_pending_insert(db: Any) -> None:
    author_id = insert_raw(db, "nl_authors", {"name": "ann"})
    s = uow.Session(db)
    author = s.get(NlAuthor, author_id)
    post = NlPost(title="new")
    s.add(post)
    post.authors.append(author)
    post.by_role["lead"] = author
    accepted = _flush_or_refused(s, lambda: (post.authors.clear(), post.by_role.clear()))
    raw = stored(db, "nl_posts", post.id)
    assert raw["authors"] == [ref_id(x) for x in post.authors]
    assert raw["by_role"] == {k: ref_id(v) for k, v in post.by_role.items()}
    if accepted:
        assert raw["authors"] == [author_id] and raw["by_role"] == {"lead": author_id}
    s.close()


@pytest.mark.parametrize("wrong", ["a string", "a document of another class", "an int"])
def test_ref_list_wrong_value_refused_at_flush_and_session_recovers(db: Any, wrong: str) -> None:
    author_id, post_id = _post_and_author(db)
    s = uow.Session(db)
    post = s.get(NlPost, post_id)
    value: Any = {"a string": "not-an-id", "an int": 12, "a document of another class": None}[wrong]
    if value is None:
        value = s.get(NlPost, insert_raw(db, "nl_posts", {"title": "other"}))
    post.authors.append(value)
    post.title = "changed"
    with pytest.raises(uow.ValidationError):
        s.flush()
    post.authors.remove(value)
    post.authors.append(author_id)
    s.commit()
    raw = stored(db, "nl_posts", post_id)
    assert raw["title"] == "changed"
    assert raw["authors"] == [author_id]
    s.close()


# ============================================== how a change is sent (top level)


def _plain(db: Any, **values: Any) -> Any:
    return insert_raw(
        db,
        "nl_plain",
        {
            "name": "p",
            "visits": 0,
            "whole": [],
            "tags": [],
            "labels": [],
            "scores": {},
            "inners": [],
            **values,
        },
    )


def test_two_sessions_append_to_the_same_list_both_kept(db: Any) -> None:
    doc_id = _plain(db, tags=["a"])
    s1, s2 = uow.Session(db), uow.Session(db)
    p1, p2 = s1.get(NlPlain, doc_id), s2.get(NlPlain, doc_id)
    p1.tags.append("b")
    p2.tags.append("c")
    _commit_and_close(s2)
    _commit_and_close(s1)
    assert stored(db, "nl_plain", doc_id)["tags"] == ["a", "c", "b"]


def test_two_sessions_inc_both_counted(db: Any) -> None:
    doc_id = _plain(db, visits=10)
    s1, s2 = uow.Session(db), uow.Session(db)
    p1, p2 = s1.get(NlPlain, doc_id), s2.get(NlPlain, doc_id)
    p1.visits += 1
    p2.visits += 2
    _commit_and_close(s2)
    _commit_and_close(s1)
    assert stored(db, "nl_plain", doc_id)["visits"] == 13


def test_dict_key_removed_is_unset_and_concurrent_key_kept(db: Any) -> None:
    doc_id = _plain(db, scores={"a": 1, "b": 2})
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    del p.scores["a"]
    p.scores["c"] = 3
    db["nl_plain"].update_one({"_id": doc_id}, {"$set": {"scores.z": 9}})
    _commit_and_close(s)
    assert stored(db, "nl_plain", doc_id)["scores"] == {"b": 2, "c": 3, "z": 9}


def test_set_removal_stored_equals_memory(db: Any) -> None:
    doc_id = _plain(db, labels=["x", "y", "z"])
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.labels.discard("y")
    p.labels.add("w")
    _commit_and_close(s)
    assert sorted(stored(db, "nl_plain", doc_id)["labels"]) == sorted(p.labels) == ["w", "x", "z"]


def test_on_update_set_sends_the_whole_field(db: Any) -> None:
    doc_id = _plain(db, whole=["a"])
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.whole.append("b")
    db["nl_plain"].update_one({"_id": doc_id}, {"$push": {"whole": "x"}})
    _commit_and_close(s)
    # "$set" (always the whole field): the session's value wins
    assert stored(db, "nl_plain", doc_id)["whole"] == ["a", "b"]


def test_current_date_is_reloaded_on_next_read(db: Any) -> None:
    doc_id = insert_raw(db, "nl_stamps", {"name": "s"})
    s = uow.Session(db)
    st = s.get(NlStamp, doc_id)
    st.name = "t"
    s.commit()
    raw = stored(db, "nl_stamps", doc_id)
    assert raw["name"] == "t" and raw.get("touched") is not None
    assert st.touched == raw["touched"], f"memory {st.touched!r} vs stored {raw['touched']!r}"
    s.close()


def test_wrong_value_put_in_place_refused_at_flush_then_everything_written(db: Any) -> None:
    doc_id = _plain(db, tags=["a"], visits=1)
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.visits += 1
    p.tags.append(7)  # type: ignore[arg-type]
    with pytest.raises(uow.ValidationError):
        s.flush()
    assert stored(db, "nl_plain", doc_id)["visits"] == 1
    p.tags[-1] = "seven"
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["visits"] == 2 and raw["tags"] == ["a", "seven"]


def test_dict_key_with_dot_in_place_refused_then_fixed(db: Any) -> None:
    doc_id = _plain(db, scores={"a": 1})
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.scores["b.c"] = 2
    p.name = "q"
    with pytest.raises(uow.ValidationError):
        s.flush()
    del p.scores["b.c"]
    p.scores["b"] = 2
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["scores"] == {"a": 1, "b": 2} and raw["name"] == "q"


def test_unknown_keys_kept_at_every_depth(db: Any) -> None:
    doc_id = _plain(
        db,
        extra="top",
        inner={"x": 1, "ghost": "in-embedded"},
        inners=[{"x": 1, "ghost": "e0"}, {"x": 2, "ghost": "e1"}],
    )
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.inner.x = 5
    p.inners[1].x = 7
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["extra"] == "top"
    assert raw["inner"] == {"x": 5, "ghost": "in-embedded"}
    assert raw["inners"] == [{"x": 1, "ghost": "e0"}, {"x": 7, "ghost": "e1"}]


def test_unknown_keys_kept_in_list_elements_when_list_is_set_whole(db: Any) -> None:
    doc_id = _plain(
        db, inners=[{"x": 1, "ghost": "e0"}, {"x": 2, "ghost": "e1"}, {"x": 3, "ghost": "e2"}]
    )
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    del p.inners[0]
    p.inners.reverse()
    _commit_and_close(s)
    assert stored(db, "nl_plain", doc_id)["inners"] == [
        {"x": 3, "ghost": "e2"},
        {"x": 2, "ghost": "e1"},
    ]


def test_forced_update_of_unchanged_tracked_document_changes_nothing(db: Any) -> None:
    doc_id = _plain(db, visits=10, tags=["a"])
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    s.update(p)
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["visits"] == 10 and raw["tags"] == ["a"]


def test_update_of_transient_counter_with_upsert_adds(db: Any) -> None:
    doc_id = bson.ObjectId()
    s = uow.Session(db)
    s.update(NlPlain(id=doc_id, name="c", visits=3), upsert=True)
    s.commit()
    assert stored(db, "nl_plain", doc_id)["visits"] == 3
    s.update(NlPlain(id=doc_id, name="c", visits=3), upsert=True)
    _commit_and_close(s)
    assert stored(db, "nl_plain", doc_id)["visits"] == 6


# ===================================================================== unit of work


def test_delete_then_add_same_id_is_one_replace(db: Any) -> None:
    doc_id = _plain(db, tags=["old"], visits=9, extra="gone?")
    s = uow.Session(db)
    old = s.get(NlPlain, doc_id)
    s.delete(old)
    new = NlPlain(id=doc_id, name="new", visits=1)
    s.add(new)
    result = s.flush()
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["name"] == "new" and raw["visits"] == 1 and raw["tags"] == []
    assert db["nl_plain"].count_documents({}) == 1
    assert result.deleted + result.inserted + result.updated >= 1


def test_delete_of_pending_insert_cancels_it(db: Any) -> None:
    s = uow.Session(db)
    p = NlPlain(name="x")
    s.add(p)
    s.delete(p)
    _commit_and_close(s)
    assert stored_or_none(db, "nl_plain", p.id) is None


def test_clear_queue_keeps_in_memory_changes_of_tracked_documents(db: Any) -> None:
    doc_id = _plain(db, visits=1, tags=["a"])
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.visits += 1
    p.tags.append("b")
    fresh = NlPlain(name="fresh")
    s.add(fresh)
    s.clear_queue()
    assert s.state(fresh) == uow.ObjectState.TRANSIENT
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["visits"] == 2 and raw["tags"] == ["a", "b"]
    assert stored_or_none(db, "nl_plain", fresh.id) is None


def test_rollback_without_transaction_goes_back_to_last_flushed(db: Any) -> None:
    doc_id = _plain(db, visits=5, tags=["a"])
    s = uow.Session(db, transactional=False)
    p = s.get(NlPlain, doc_id)
    p.visits += 1
    p.tags.append("b")
    s.flush()
    p.visits += 1
    p.tags.append("c")
    s.rollback()
    assert p.visits == 6 and p.tags == ["a", "b"]
    p.visits += 1
    p.tags.append("d")
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["visits"] == 7 and raw["tags"] == ["a", "b", "d"]


def test_refresh_discards_local_changes_and_never_autoflushes(db: Any) -> None:
    doc_id = _plain(db, visits=5)
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.visits += 1
    p.name = "local"
    db["nl_plain"].update_one({"_id": doc_id}, {"$set": {"visits": 50}})
    s.refresh(p)
    assert p.visits == 50 and p.name == "p"
    p.visits += 1
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["visits"] == 51 and raw["name"] == "p"


# ==================================================================== identity map


def test_query_result_never_overwrites_unflushed_changes(db: Any) -> None:
    doc_id = _plain(db, visits=5, tags=["a"])
    s = uow.Session(db, autoflush=False)
    p = s.get(NlPlain, doc_id)
    p.name = "mine"
    p.tags.append("b")
    p.visits += 1
    db["nl_plain"].update_one({"_id": doc_id}, {"$set": {"name": "theirs"}, "$inc": {"visits": 10}})
    again = s.query(NlPlain).first()
    assert again is p
    assert p.name == "mine" and p.tags == ["a", "b"] and p.visits == 6
    assert s.filter(NlPlain)[0] is p and s.get(NlPlain, doc_id) is p
    _commit_and_close(s)
    raw = stored(db, "nl_plain", doc_id)
    assert raw["name"] == "mine" and raw["tags"] == ["a", "b"] and raw["visits"] == 16


@pytest.mark.parametrize("cache_size", [0, 2])
def test_eviction_never_loses_an_in_place_change(db: Any, cache_size: int) -> None:
    doc_ids = [_plain(db, name=f"p{i}", tags=["a"]) for i in range(6)]
    s = uow.Session(db, cache_size=cache_size, autoflush=False)
    for doc_id in doc_ids:
        s.get(NlPlain, doc_id).tags.append("b")
    gc.collect()
    for doc_id in doc_ids:  # another load while evicting must not reset them either
        s.query(NlPlain).filter(NlPlain.id == doc_id).first()
    gc.collect()
    _commit_and_close(s)
    for doc_id in doc_ids:
        assert stored(db, "nl_plain", doc_id)["tags"] == ["a", "b"]


def test_pending_object_found_by_get_and_written_once(db: Any) -> None:
    s = uow.Session(db, autoflush=False)
    p = NlPlain(name="p", visits=2)
    s.add(p)
    assert s.get(NlPlain, p.id) is p
    p.visits += 1
    _commit_and_close(s)
    assert stored(db, "nl_plain", p.id)["visits"] == 3


def test_missing_key_with_db_name_first_inc_stores_the_whole_value(db: Any) -> None:
    doc_id = insert_raw(db, "nl_docs", {"name": "n"})
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    d.aliased += 1
    _commit_and_close(s)
    raw = stored(db, "nl_docs", doc_id)
    assert raw.get("al") == 6 and "aliased" not in raw


def test_max_below_stored_value_keeps_the_stored_value(db: Any) -> None:
    """Ambiguity: a `$max` field assigned a value below the stored one. SPEC:
    "$max (the new value; the server keeps the larger)" and "after a flush the
    in-memory value is the one this session computed" - but the one rule says
    the stored document equals what the session holds. They cannot both hold
    (memory 3, stored 10). This test pins only the stored value (10)."""
    doc_id = insert_raw(db, "nl_docs", {"name": "n", "peak": 10})
    s = uow.Session(db)
    d = s.get(NlDoc, doc_id)
    d.peak = 3
    _commit_and_close(s)
    assert stored(db, "nl_docs", doc_id)["peak"] == 10


def test_version_in_memory_equals_stored_after_each_flush(db: Any) -> None:
    doc_id = insert_raw(db, "nl_vers", {"name": "v", "n": 0, "version": 3})
    s = uow.Session(db)
    v = s.get(NlVer, doc_id)
    for i in range(3):
        v.n += 1
        s.commit()
        raw = stored(db, "nl_vers", doc_id)
        assert raw["version"] == v.version == 4 + i
        assert raw["n"] == v.n == i + 1
    s.update(v)  # forced update: bumps the version too, n unchanged
    s.commit()
    raw = stored(db, "nl_vers", doc_id)
    assert raw["version"] == v.version and raw["n"] == 3
    s.close()


def test_dereference_returns_the_tracked_object_and_its_change_is_written(db: Any) -> None:
    author_id, _ = _post_and_author(db)
    post_id = insert_raw(db, "nl_posts", {"title": "t", "authors": [author_id], "by_role": {}})
    s = uow.Session(db)
    post = s.get(NlPost, post_id)
    author = s.dereference(post.authors[0])
    assert author is s.get(NlAuthor, author_id)
    author.name = "renamed"
    _commit_and_close(s)
    assert stored(db, "nl_authors", author_id)["name"] == "renamed"


def test_autoflush_query_reads_an_in_place_change(db: Any) -> None:
    doc_id = _plain(db, tags=["a"])
    s = uow.Session(db)
    p = s.get(NlPlain, doc_id)
    p.tags.append("needle")
    found = s.query(NlPlain).filter(NlPlain.tags.contains("needle")).all()
    assert found == [p]
    _commit_and_close(s)
    assert stored(db, "nl_plain", doc_id)["tags"] == ["a", "needle"]
