"""New documents' ObjectIds (uow._ids): the specification's bytes, unique across
threads and processes, and the default of every document's ``id``."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest
from bson import ObjectId

from uow import Document
from uow._ids import new_object_id


class IdsDoc(Document):
    __collection__ = "ids_doc"
    name: str = ""


def test_the_bytes_are_seconds_then_the_process_then_a_counter() -> None:
    before = int(dt.datetime.now(dt.timezone.utc).timestamp())
    first, second = new_object_id(), new_object_id()
    after = int(dt.datetime.now(dt.timezone.utc).timestamp())
    assert type(first) is ObjectId and len(first.binary) == 12
    assert before <= int(first.generation_time.timestamp()) <= after
    assert first.binary[4:9] == second.binary[4:9]  # this process's random bytes
    step = int.from_bytes(second.binary[9:], "big") - int.from_bytes(first.binary[9:], "big")
    assert step % (1 << 24) == 1  # the counter, wrapping at three bytes


def test_ids_made_by_many_threads_at_once_are_unique() -> None:
    made: list[list[ObjectId]] = [[] for _ in range(8)]

    def make(into: list[ObjectId]) -> None:
        for _ in range(5_000):
            into.append(new_object_id())

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [oid for into in made for oid in into]
    assert len(set(every)) == len(every) == 40_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() exists only on POSIX")
def test_a_forked_child_makes_ids_of_its_own() -> None:
    parent = new_object_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id back, and leave without pytest's cleanup
        try:
            os.write(write, new_object_id().binary)
        finally:
            os._exit(0)
    os.close(write)
    child = ObjectId(os.read(read, 12))
    os.close(read)
    os.waitpid(pid, 0)
    assert child.binary[4:9] != parent.binary[4:9]  # another process, other bytes
    assert child != parent


def test_a_document_without_an_id_gets_a_new_one() -> None:
    ids = {IdsDoc().id for _ in range(1_000)}
    assert len(ids) == 1_000 and all(type(oid) is ObjectId for oid in ids)
    given = ObjectId()
    assert IdsDoc(id=given).id is given


def test_the_generator_is_not_bsons(monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents do not call bson.ObjectId() (the third of its cost is the point)."""
    calls = []
    original_init = ObjectId.__init__

    def counting(self: ObjectId, oid: object = None) -> None:
        calls.append(oid)
        original_init(self, oid)  # type: ignore[arg-type]

    monkeypatch.setattr(ObjectId, "__init__", counting)
    IdsDoc()
    assert len(calls) == 1 and isinstance(calls[0], bytes)  # made from its 12 bytes
