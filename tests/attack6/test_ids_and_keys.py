"""Identity keys of ObjectId documents are bytes, and the
default id comes from uow._ids.new_object_id."""

from __future__ import annotations

import datetime
import os
import threading

import pytest
from bson import ObjectId

import uow
from tests._blackbox import assert_stored_is_memory
from uow import Document, Session

from ._models import RvFlat


class RvOidMixed(Document):
    __collection__ = "rv_mixed"
    name: str


class RvBytesMixed(Document):
    __collection__ = "rv_mixed_b"
    id: bytes
    name: str


class RvUnicode(Document):
    __collection__ = "r\u00e9sum\u00e9_\u65e5\u672c_\U0001f600"
    name: str
    tags: list[str] = uow.field(factory=list)


def test_default_ids_unique_across_threads():
    per_thread, threads = 20_000, 8
    results: list[list[ObjectId]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(slot: list[ObjectId]) -> None:
        start.wait()
        slot.extend(RvFlat(name="x").id for _ in range(per_thread))

    workers = [threading.Thread(target=work, args=(results[i],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ids = [i for r in results for i in r]
    assert all(type(i) is ObjectId for i in ids)
    assert len(set(ids)) == len(ids) == per_thread * threads
    now = datetime.datetime.now(datetime.timezone.utc)
    assert all(abs((i.generation_time - now).total_seconds()) < 60 for i in ids[:: 997])
    # the 5 process bytes are the same for every id of this process
    assert len({i.binary[4:9] for i in ids}) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_default_ids_differ_after_fork():
    before = RvFlat(name="x").id
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            data = b"".join(RvFlat(name="x").id.binary for _ in range(1000))
            os.write(write, data)
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while True:
        chunk = os.read(read, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    child = {ObjectId(b"".join(chunks)[i : i + 12]) for i in range(0, 12_000, 12)}
    parent = {RvFlat(name="x").id for _ in range(1000)}
    assert len(child) == 1000
    assert not child & parent
    assert {c.binary[4:9] for c in child} != {before.binary[4:9]}


def test_bytes_id_equal_to_an_objectid_binary_is_its_own_document(db):
    oid = ObjectId()
    with Session(db) as s:
        a = RvOidMixed(id=oid, name="oid")
        b = RvBytesMixed(id=oid.binary, name="bytes")
        s.add_all([a, b])
        s.flush()
        assert s.get(RvOidMixed, oid) is a
        assert s.get(RvBytesMixed, oid.binary) is b
        a.name = "oid2"
        b.name = "bytes2"
        changed = s.what_changed()
        assert changed[("rv_mixed", oid)] == {"name": ("oid", "oid2")}
        assert changed[("rv_mixed_b", oid.binary)] == {"name": ("bytes", "bytes2")}
    assert db["rv_mixed"].find_one({"_id": oid})["name"] == "oid2"
    assert db["rv_mixed_b"].find_one({"_id": oid.binary})["name"] == "bytes2"
    assert_stored_is_memory(db, a, b)
    with Session(db) as s:
        assert s.get(RvBytesMixed, oid.binary).name == "bytes2"
        assert s.get(RvOidMixed, oid).name == "oid2"
        s.remove_query(RvOidMixed).filter(name="oid2").execute()
        assert s.get(RvBytesMixed, oid.binary) is not None


def test_non_ascii_collection_keys(db):
    name = RvUnicode._uow_meta.collection
    with Session(db) as s:
        docs = [RvUnicode(name=f"n{i}") for i in range(3)]
        s.add_all(docs)
        s.flush()
        docs[0].name = "changed"
        docs[1].tags.append("t")
        assert set(s.what_changed()) == {(name, docs[0].id), (name, docs[1].id)}
        assert [d.id for d in s.query(RvUnicode).sort("name").all()] == [
            docs[0].id, docs[1].id, docs[2].id
        ]
        assert s.get(RvUnicode, docs[2].id) is docs[2]
    stored = {d["_id"]: d for d in db[name].find()}
    assert stored[docs[0].id]["name"] == "changed"
    assert stored[docs[1].id]["tags"] == ["t"]
