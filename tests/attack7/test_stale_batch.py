"""A version conflict in the middle of a batch: applied / not_applied / in_doubt are exact,
and following the error's advice never applies a change twice."""

from __future__ import annotations

from typing import Any

import pytest

import uow
from uow import ObjectState, Session

from ._h import raw
from ._models import VerInc

S = ObjectState


def setup3(db: Any) -> tuple[list[VerInc], Session, list[VerInc]]:
    s0 = Session(db)
    docs = [VerInc(name=f"d{i}", hits=10) for i in range(3)]
    s0.add_all(docs)
    s0.commit()
    s0.close()
    s2 = Session(db, transactional=False)
    mine = [s2.get(VerInc, d.id) for d in docs]
    s1 = Session(db, transactional=False)
    other = s1.get(VerInc, docs[1].id)
    other.name = "theirs"
    s1.commit()
    s1.close()
    return docs, s2, mine


def test_stale_in_middle_of_update_batch(db: Any) -> None:
    _docs, s, mine = setup3(db)
    for m in mine:
        m.hits += 1
        m.name = m.name + "-mine"
    with pytest.raises(uow.StaleDocumentError) as ei:
        s.flush()
    e = ei.value
    applied, not_applied, doubt = list(e.applied), list(e.not_applied), list(e.in_doubt)
    assert set(map(id, applied + not_applied + doubt)) == set(map(id, mine))
    assert mine[1] not in applied
    for m in applied:
        assert raw(db, m) == m.to_bson()
        assert not s.is_dirty(m)
    for m in not_applied:
        assert raw(db, m)["hits"] == 10
        assert s.is_dirty(m)
    # follow the advice: refresh the stale one and redo its change, flush again
    s.refresh(mine[1])
    mine[1].hits += 1
    s.flush()
    for m in mine:
        assert raw(db, m)["hits"] == 11, (m, raw(db, m))
    for m in mine:
        assert raw(db, m) == m.to_bson()


def test_stale_in_middle_of_delete_batch(db: Any) -> None:
    _docs, s, mine = setup3(db)
    for m in mine:
        s.delete(m)
    with pytest.raises(uow.StaleDocumentError) as ei:
        s.flush()
    e = ei.value
    applied, not_applied, doubt = list(e.applied), list(e.not_applied), list(e.in_doubt)
    assert set(map(id, applied + not_applied + doubt)) == set(map(id, mine))
    assert mine[1] not in applied
    for m in applied:
        assert raw(db, m) is None
        assert s.state(m) is S.DETACHED
    for m in not_applied:
        assert raw(db, m) is not None
        assert s.state(m) is S.DELETED
    assert raw(db, mine[1]) is not None
    # the stale one: refresh and delete again
    if s.state(mine[1]) is S.DELETED:
        s.expunge(mine[1])
    s.refresh(mine[1]) if s.state(mine[1]) is S.PERSISTENT else None
    fresh = s.get(VerInc, mine[1].id)
    assert fresh is not None and fresh.name == "theirs"
    s.delete(fresh)
    s.flush()
    assert db.a7_ver_inc.count_documents({}) == 0
