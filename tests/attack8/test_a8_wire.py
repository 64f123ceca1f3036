"""What a flush sends, seen on the wire (SecantusDB with a command listener)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

import uow
from uow import Document, Session, field

from ._h8 import stored


class A8WLine(uow.Embedded):
    sku: str
    qty: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class A8WDoc(Document):
    __collection__ = "a8_wire"
    tenant_id: str = ""
    name: str = ""
    counts: dict[str, int] = field(factory=dict)
    lines: list[A8WLine] = field(factory=list)
    by: dict[str, A8WLine] = field(factory=dict)
    tags: list[str] = field(factory=list)
    __shard_key__ = ("tenant_id",)


def _updates(log: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for cmd in log.of("update"):
        out.extend(cmd["updates"])
    return out


def _paths(update: dict[str, Any]) -> list[str]:
    u = update["u"]
    if isinstance(u, list):
        return []
    return [p for op, body in u.items() if op.startswith("$") for p in body]


def _new(db: Any, **values: Any) -> tuple[Session, A8WDoc]:
    s = Session(db)
    d = A8WDoc(**values)
    s.add(d)
    s.commit()
    return s, d


def test_shard_key_in_update_and_delete_filters(
    secantus_listened_db: Any, command_log: Any
) -> None:
    db = secantus_listened_db
    s, d = _new(db, tenant_id="t1", name="x")
    command_log.clear()
    d.name = "y"
    s.commit()
    (upd,) = _updates(command_log)
    assert upd["q"]["_id"] == d.id
    assert upd["q"]["tenant_id"] == "t1"
    command_log.clear()
    s.delete(d)
    s.commit()
    (dele,) = [x for c in command_log.of("delete") for x in c["deletes"]]
    assert dele["q"]["tenant_id"] == "t1"


def test_shard_key_changed_uses_loaded_value(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    s, d = _new(db, tenant_id="t1", name="x")
    command_log.clear()
    d.tenant_id = "t2"
    s.commit()
    (upd,) = _updates(command_log)
    assert upd["q"]["tenant_id"] == "t1"
    assert stored(db, d)["tenant_id"] == "t2"
    command_log.clear()
    d.name = "z"
    s.commit()
    (upd,) = _updates(command_log)
    assert upd["q"]["tenant_id"] == "t2"


def test_shard_key_missing_in_stored_doc(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    oid = ObjectId()
    db.a8_wire.insert_one({"_id": oid, "name": "legacy"})
    s = Session(db)
    d = s.get(A8WDoc, oid)
    d.name = "new"
    s.commit()
    assert stored(db, d)["name"] == "new"


def test_positional_inc_and_push_paths(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    s, d = _new(db, lines=[A8WLine(sku="a", qty=1)], by={"k": A8WLine(sku="k")})
    command_log.clear()
    d.lines[0].qty += 2
    d.lines[0].tags.append("t")
    d.by["k"].qty += 3
    d.tags.append("x")
    s.commit()
    (upd,) = _updates(command_log)
    u = upd["u"]
    assert u["$inc"]["lines.0.qty"] == 2
    assert u["$inc"]["by.k.qty"] == 3
    assert u["$push"]["lines.0.tags"] == {"$each": ["t"]}
    assert u["$push"]["tags"] == {"$each": ["x"]}


def test_nothing_changed_sends_nothing(secantus_listened_db: Any, command_log: Any) -> None:
    db = secantus_listened_db
    s, d = _new(db, lines=[A8WLine(sku="a")], counts={"a": 1})
    s.close()
    s = Session(db)
    d = s.get(A8WDoc, d.id)
    _ = d.lines[0].qty, d.counts
    command_log.clear()
    s.flush()
    assert command_log.of("update") == []


def test_no_empty_path_segment_in_update(secantus_listened_db: Any, command_log: Any) -> None:
    # MongoDB refuses an update path with an empty field name ("counts."):
    # an empty dict key must be refused (ValidationError) or sent another way.
    db = secantus_listened_db
    s, d = _new(db)
    command_log.clear()
    d.counts[""] = 1
    try:
        s.commit()
    except uow.ValidationError:
        return
    for upd in _updates(command_log):
        for p in _paths(upd):
            assert "" not in p.split("."), f"update path {p!r} has an empty field name"
