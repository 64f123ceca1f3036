"""``uow.configure`` and ``uow.unit_of_work``: the service-layer API (SPEC "Service layers").

Each test runs with the process default configured to a database of its own, on
the embedded backend and on SecantusDB, and the default is put back afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymongo
import pytest
from pymongo.errors import InvalidOperation

import uow
from uow import Document, Session, field, service
from uow._backend import reset_embedded

# The lanes of this module: where the process default points during a test.
LANES = [
    pytest.param("mongomock", id="mongomock"),
    pytest.param("secantus", id="secantus", marks=pytest.mark.secantus),
]


class SvItem(Document):
    __collection__ = "items"

    name: str
    qty: int = field(default=0, on_update="$inc")


class Lane:
    """Where the default points: its URI, its database, and a way to look inside."""

    def __init__(self, name: str, uri: str, database: str) -> None:
        self.name = name
        self.uri = uri
        self.database = database

    def stored(self) -> list[str]:
        """Names of the items the database holds, read by a session of its own."""
        with Session.connect(self.database, self.uri) as s:
            return sorted(item.name for item in s.all(SvItem))


@pytest.fixture(autouse=True)
def _keep_default() -> Iterator[None]:
    """Whatever a test configures, the process default is put back after it."""
    before = service._snapshot()
    yield
    service._restore(before)


@pytest.fixture(params=LANES)
def lane(request: pytest.FixtureRequest) -> Iterator[Lane]:
    """The default configured to a fresh database on one lane."""
    name = f"svc_{uuid.uuid4().hex[:12]}"
    if request.param == "mongomock":
        uri = f"mongomock://service-{uuid.uuid4().hex}"
        uow.configure(uri, name)
        yield Lane("mongomock", uri, name)
        reset_embedded(uri)
        return
    server = request.getfixturevalue("secantus_server")
    uri = f"{server.uri}?retryWrites=false"
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    # Made beforehand, as a deployment would: two transactions that both create
    # a collection by inserting into it conflict (WriteConflict), on MongoDB too.
    client[name].create_collection("items")
    uow.configure(uri, name)
    yield Lane("secantus", uri, name)
    client.drop_database(name)
    client.close()


# ------------------------------------------------------------ the own session


def test_with_block_commits_on_success(lane: Lane) -> None:
    with uow.unit_of_work() as s:
        assert isinstance(s, Session)
        s.add(SvItem(name="a"))
        assert lane.stored() == []  # queued, not written yet
    assert lane.stored() == ["a"]
    assert s.closed


def test_decorator_commits_and_returns_what_the_function_returned(lane: Lane) -> None:
    @uow.unit_of_work()
    def create(name: str) -> SvItem:
        item = SvItem(name=name)
        uow.current_session().add(item)
        return item

    item = create("b")
    assert isinstance(item, SvItem) and item.name == "b"
    assert lane.stored() == ["b"]
    assert create.__name__ == "create"  # functools.wraps


def test_decorator_without_parentheses(lane: Lane) -> None:
    @uow.unit_of_work
    def create(name: str) -> str:
        uow.current_session().add(SvItem(name=name))
        return name

    assert create("c") == "c"
    assert lane.stored() == ["c"]
    assert create.__name__ == "create"
    with pytest.raises(TypeError, match="keywords"):
        uow.unit_of_work("not a function")  # type: ignore[call-overload]


def test_exception_rolls_back_and_propagates(lane: Lane) -> None:
    with pytest.raises(KeyError, match="boom"), uow.unit_of_work() as s:
        s.add(SvItem(name="never"))
        raise KeyError("boom")
    assert lane.stored() == []
    assert s.closed


def test_decorated_function_that_raises_writes_nothing(lane: Lane) -> None:
    @uow.unit_of_work()
    def fail() -> None:
        uow.current_session().add(SvItem(name="never"))
        raise RuntimeError("after the add")

    with pytest.raises(RuntimeError, match="after the add"):
        fail()
    assert lane.stored() == []


def test_session_is_current_inside_only(lane: Lane) -> None:
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    with uow.unit_of_work() as s:
        assert uow.current_session() is s
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()


# ------------------------------------------------------------- joining one


def test_nested_unit_of_work_joins_and_neither_commits_nor_rolls_back(lane: Lane) -> None:
    with uow.unit_of_work() as outer:
        outer.add(SvItem(name="outer"))
        with uow.unit_of_work() as inner:
            assert inner is outer
            inner.add(SvItem(name="inner"))
        # The joined block's end committed nothing and closed nothing.
        assert not outer.closed
        assert outer.has_changes()
        assert uow.current_session() is outer
        assert lane.stored() == []
    assert lane.stored() == ["inner", "outer"]


def test_unit_of_work_joins_a_session_with_block(lane: Lane) -> None:
    @uow.unit_of_work(max_requests=0)  # options are not used when joining
    def add(name: str) -> Session:
        s: Session = uow.current_session()
        s.add(SvItem(name=name))
        return s

    with Session.connect(lane.database, lane.uri) as s:
        assert add("joined") is s
        assert s.max_requests is None
        assert s.has_changes()
    assert lane.stored() == ["joined"]


def test_exception_leaving_a_joined_block_leaves_the_work_queued(lane: Lane) -> None:
    with uow.unit_of_work() as outer:
        outer.add(SvItem(name="outer"))
        with pytest.raises(ValueError, match="inner failed"), uow.unit_of_work() as inner:
            inner.add(SvItem(name="inner"))
            raise ValueError("inner failed")
        # Not rolled back by the joined block: the outer block decides.
        assert not outer.closed
        assert outer.has_changes()
        outer.rollback()
    assert lane.stored() == []


def test_exception_leaving_a_joined_block_makes_commit_refuse_until_rollback(
    lane: Lane,
) -> None:
    """SPEC: half of a unit of work is never committed (MongoDB has no savepoints)."""
    with uow.unit_of_work() as outer:
        outer.add(SvItem(name="before"))
        with pytest.raises(ValueError, match="inner failed"), uow.unit_of_work():
            outer.add(SvItem(name="half"))
            raise ValueError("inner failed")
        with pytest.raises(uow.TransactionError, match="inner failed"):
            outer.commit()
        with pytest.raises(uow.TransactionError):
            outer.commit()  # still refused: only rollback() clears the mark
        outer.rollback()
        outer.add(SvItem(name="after"))
        outer.commit()
    assert lane.stored() == ["after"]


def test_a_caught_failure_of_a_joined_block_fails_the_outer_block(lane: Lane) -> None:
    @uow.unit_of_work()
    def failing_step() -> None:
        uow.current_session().add(SvItem(name="half"))
        raise LookupError("step failed")

    with pytest.raises(uow.TransactionError), uow.unit_of_work() as s:
        s.add(SvItem(name="first"))
        with contextlib.suppress(LookupError):
            failing_step()  # swallowed: the outer block's commit must still refuse
    assert lane.stored() == []


def test_a_closed_current_session_is_not_joined(lane: Lane) -> None:
    with Session.connect(lane.database, lane.uri) as closed_one:
        closed_one.close()
        with uow.unit_of_work() as s:
            assert s is not closed_one
            s.add(SvItem(name="fresh"))
    assert lane.stored() == ["fresh"]


@pytest.mark.transactions
@pytest.mark.parametrize("lane", [LANES[1]], indirect=True)
def test_with_transactions_a_failed_block_undoes_its_flushes(lane: Lane) -> None:
    with pytest.raises(RuntimeError), uow.unit_of_work() as s:
        assert s.transactional
        s.add(SvItem(name="flushed"))
        s.flush()
        raise RuntimeError("after a flush")
    assert lane.stored() == []


def test_without_transactions_a_flush_before_the_failure_stays() -> None:
    # SPEC: without transactions, what an earlier flush wrote stays.
    uri = f"mongomock://service-{uuid.uuid4().hex}"
    uow.configure(uri, "db")
    try:
        with pytest.raises(RuntimeError), uow.unit_of_work() as s:
            assert not s.transactional
            s.add(SvItem(name="flushed"))
            s.flush()
            s.add(SvItem(name="queued"))
            raise RuntimeError("after a flush")
        assert Lane("mongomock", uri, "db").stored() == ["flushed"]
    finally:
        reset_embedded(uri)


# ------------------------------------------------------------ configuration


def test_options_come_from_configure_and_are_overridden_per_call(lane: Lane) -> None:
    uow.configure(lane.uri, lane.database, max_requests=50, autoflush=False)
    with uow.unit_of_work() as s:
        assert (s.max_requests, s.autoflush) == (50, False)
    with uow.unit_of_work(max_requests=3) as s:
        assert (s.max_requests, s.autoflush) == (3, False)


def test_unknown_options_are_refused_at_once() -> None:
    with pytest.raises(TypeError, match=r"unknown session option.*cache_sise"):
        uow.configure("mongomock://x", "db", cache_sise=10)
    with pytest.raises(TypeError, match=r"unknown session option.*bogus"):
        uow.unit_of_work(bogus=1)


def test_no_database_is_a_clear_error() -> None:
    uri = f"mongomock://service-{uuid.uuid4().hex}"
    uow.configure(uri)
    with pytest.raises(uow.UowError, match=r"uow\.configure\(database="), uow.unit_of_work():
        pass  # pragma: no cover - entering fails


@pytest.mark.secantus
def test_the_database_may_be_named_in_the_uri(secantus_server: Any) -> None:
    name = f"svc_{uuid.uuid4().hex[:12]}"
    uow.configure(f"{secantus_server.uri}{name}?retryWrites=false")
    with uow.unit_of_work() as s:
        assert s.database.name == name
        s.add(SvItem(name="x"))
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(secantus_server.uri)
    assert client[name]["items"].count_documents({}) == 1
    client.drop_database(name)
    client.close()


def test_sessions_share_the_default_client_and_do_not_close_it(lane: Lane) -> None:
    with uow.unit_of_work() as first:
        client = first.database.client
    with uow.unit_of_work() as second:
        assert second.database.client is client
    uow.configure(lane.uri, lane.database)  # the same values: nothing changes
    with uow.unit_of_work() as third:
        assert third.database.client is client


@pytest.mark.secantus
def test_configuring_again_closes_the_previous_client(secantus_server: Any) -> None:
    uri = f"{secantus_server.uri}?retryWrites=false"
    uow.configure(uri, "svc_reconfigure")
    with uow.unit_of_work() as s:
        old_client = s.database.client
    uow.configure(uri, "svc_reconfigure_2")
    with pytest.raises(InvalidOperation):
        old_client["svc_reconfigure"]["items"].find_one()
    with uow.unit_of_work() as s:
        assert s.database.client is not old_client
        assert s.database.name == "svc_reconfigure_2"


# ---------------------------------------------------- threads and asyncio


def test_threads_get_separate_sessions(lane: Lane) -> None:
    barrier = threading.Barrier(2, timeout=10)
    seen: dict[str, Session] = {}

    @uow.unit_of_work()
    def work(name: str) -> None:
        s: Session = uow.current_session()
        s.add(SvItem(name=name))
        barrier.wait()  # both units of work are open at once
        assert uow.current_session() is s
        seen[name] = s

    threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert set(seen) == {"t1", "t2"}
    assert seen["t1"] is not seen["t2"]
    assert lane.stored() == ["t1", "t2"]
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()  # nothing leaked into this thread


def test_a_session_current_in_one_thread_is_not_joined_by_another(lane: Lane) -> None:
    with uow.unit_of_work() as mine, ThreadPoolExecutor(1) as pool:

        @uow.unit_of_work()
        def elsewhere() -> Session:
            return uow.current_session()  # type: ignore[no-any-return]

        theirs = pool.submit(elsewhere).result(timeout=10)
        assert theirs is not mine
        assert uow.current_session() is mine


def test_one_decorated_function_runs_in_many_threads_at_once(lane: Lane) -> None:
    @uow.unit_of_work()
    def create(name: str) -> int:
        s: Session = uow.current_session()
        s.add(SvItem(name=name))
        return id(s)

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(create, [f"p{i}" for i in range(8)]))
    assert lane.stored() == sorted(f"p{i}" for i in range(8))
    assert len(ids) == 8


def test_asyncio_tasks_get_separate_sessions(lane: Lane) -> None:
    seen: dict[str, Session] = {}

    arrived: list[str] = []
    both_open = asyncio.Event()

    @uow.unit_of_work()
    async def work(name: str) -> str:
        s: Session = uow.current_session()
        s.add(SvItem(name=name))
        arrived.append(name)
        if len(arrived) == 2:
            both_open.set()
        await both_open.wait()  # the other task runs here, with its own session
        assert uow.current_session() is s
        seen[name] = s
        return name

    async def main() -> list[str]:
        results = await asyncio.gather(work("a1"), work("a2"))
        with pytest.raises(uow.NoActiveSession):
            uow.current_session()
        return list(results)

    assert asyncio.run(asyncio.wait_for(main(), 10)) == ["a1", "a2"]
    assert seen["a1"] is not seen["a2"]
    assert all(s.closed for s in seen.values())
    assert lane.stored() == ["a1", "a2"]


def test_async_decorated_function_rolls_back_on_exception(lane: Lane) -> None:
    @uow.unit_of_work()
    async def fail() -> None:
        uow.current_session().add(SvItem(name="never"))
        await asyncio.sleep(0)
        raise RuntimeError("async failure")

    with pytest.raises(RuntimeError, match="async failure"):
        asyncio.run(fail())
    assert lane.stored() == []


# --------------------------------------------------------------- logging


def test_units_of_work_and_every_command_are_logged_at_debug(
    lane: Lane, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="uow"), uow.unit_of_work() as s:
        s.add(SvItem(name="logged"))
    messages = [r.getMessage() for r in caplog.records if r.name == "uow"]
    assert any("unit_of_work: opened" in m for m in messages), messages
    assert any(m.startswith(f"insert {lane.database}.items") for m in messages), messages
    assert any("unit_of_work: commit and close" in m for m in messages), messages
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "uow")


def test_echo_from_configure_logs_commands_at_info(
    lane: Lane, caplog: pytest.LogCaptureFixture
) -> None:
    uow.configure(lane.uri, lane.database, echo=True)
    with caplog.at_level(logging.INFO, logger="uow"), uow.unit_of_work() as s:
        s.add(SvItem(name="echoed"))
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith(f"insert {lane.database}.items") for m in infos), infos


# ----------------------------------------------------------- import hygiene


def test_import_uow_imports_neither_django_nor_the_contrib_package() -> None:
    code = (
        "import sys, uow, uow.service, uow.contrib; "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "assert not bad, bad; "
        "assert 'uow.contrib.django' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
