"""The libraries compared, each doing the five workloads the way its docs show.

Every adapter works on the collection ``users`` of :data:`~uowbench.backends.DB_NAME`
holding small documents (name, email, age, tags, score, created):

* W1 ``insert(rows)``: build one object per row, store them all;
* W2 ``change_all()``: load every document, ``age += 1`` on each, persist;
* W3 ``persist_unchanged()``: load every document, change nothing, persist;
* W4 ``delete_all()``: load every document, delete each, persist;
* W5 ``lookups(ids, rounds)``: look each id up, ``rounds`` times over; returns hits.

Model classes are declared once per process (the peers keep global registries).
An adapter whose library cannot run on a backend says why in ``unavailable``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import Sequence
from typing import Any

from pymongo import DeleteOne, UpdateOne

from .backends import DB_NAME, Backend

COLLECTION = "users"
#: the workloads, as the reports name them
WORKLOADS = {
    "W1": "insert N new",
    "W2": "load N, change one field each, persist",
    "W3": "load N, change nothing, persist",
    "W4": "delete N loaded",
    "W5": "1,000 ids looked up 10 times each",
}
CREATED = dt.datetime(2024, 5, 1, 12, 30, 15, 250000)  # millisecond precision, as BSON keeps


def row(i: int) -> dict[str, Any]:
    """The field values of the i-th small document (the application's input)."""
    return {
        "name": f"user{i}",
        "email": f"user{i}@example.com",
        "age": 30,
        "tags": ["alpha", "beta"],
        "score": 1.5,
        "created": CREATED,
    }


class Lib:
    """One library; see the module docstring for the workload methods."""

    name = "lib"
    #: pip distribution, for the n/a reason when it is missing
    distribution = ""
    #: how the library does each workload, for the report
    how: dict[str, str] = {}

    def unavailable(self, backend: Backend) -> str | None:
        if self.distribution and importlib.util.find_spec(self.distribution) is None:
            return f"{self.distribution} is not installed (pip install 'uow[bench]')"
        return None

    def too_slow(self, workload: str, backend: Backend, n: int) -> str | None:
        """Why one workload is left out on this backend at this N (run.py --slow-peers runs it)."""
        return None

    def open(self, backend: Backend) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def change_all(self) -> None:
        raise NotImplementedError

    def persist_unchanged(self) -> None:
        raise NotImplementedError

    def delete_all(self) -> None:
        raise NotImplementedError

    def lookups(self, ids: Sequence[Any], rounds: int) -> int:
        raise NotImplementedError


# ------------------------------------------------------------------------------- raw


class Raw(Lib):
    """pymongo as well as it can: one command per batch, nothing per document."""

    name = "raw"
    how = {
        "W1": "insert_many of dicts",
        "W2": "find; one bulk_write of UpdateOne $set",
        "W3": "find (nothing to write)",
        "W4": "find; delete_many {_id: {$in}}",
        "W5": "find_one per lookup",
    }

    def __init__(self, delete: str = "in") -> None:
        self.delete = delete
        if delete == "bulk":
            self.how = {**self.how, "W4": "find; one bulk_write of DeleteOne"}

    def open(self, backend: Backend) -> None:
        self.client = backend.client()
        self.coll = self.client[DB_NAME][COLLECTION]

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        self.coll.insert_many([dict(r) for r in rows])

    def change_all(self) -> None:
        docs = list(self.coll.find())
        requests = []
        for doc in docs:
            doc["age"] += 1
            requests.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"age": doc["age"]}}))
        self.coll.bulk_write(requests)

    def persist_unchanged(self) -> None:
        list(self.coll.find())

    def delete_all(self) -> None:
        docs = list(self.coll.find())
        if self.delete == "bulk":
            self.coll.bulk_write([DeleteOne({"_id": doc["_id"]}) for doc in docs])
        else:
            self.coll.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})

    def lookups(self, ids: Sequence[Any], rounds: int) -> int:
        find_one = self.coll.find_one
        return sum(find_one({"_id": i}) is not None for _ in range(rounds) for i in ids)


# ------------------------------------------------------------------------------- uow

_UOW: dict[str, Any] = {}


def uow_user_class() -> Any:
    """The uow model of the small document (declared once)."""
    if "User" not in _UOW:
        import uow

        class User(uow.Document):
            __collection__ = COLLECTION
            name: str
            email: str
            age: int
            tags: list[str] = uow.field(factory=list)
            score: float = 0.0
            created: dt.datetime = uow.field(factory=dt.datetime.now)

        _UOW["User"] = User
    return _UOW["User"]


class Uow(Lib):
    """uow: one ``with Session(db)`` block per workload (commit on exit)."""

    name = "uow"
    how = {
        "W1": "add_all + commit",
        "W2": "query().all(), assign, commit",
        "W3": "query().all(), commit",
        "W4": "query().all(), delete each, commit",
        "W5": "Session.get (identity map)",
    }

    def open(self, backend: Backend) -> None:
        import uow

        self.Session = uow.Session
        self.User = uow_user_class()
        self.client = backend.client()
        self.db = self.client[DB_NAME]

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        User = self.User
        with self.Session(self.db) as s:
            s.add_all([User(**r) for r in rows])

    def change_all(self) -> None:
        with self.Session(self.db) as s:
            for user in s.query(self.User).all():
                user.age += 1

    def persist_unchanged(self) -> None:
        with self.Session(self.db) as s:
            s.query(self.User).all()

    def delete_all(self) -> None:
        with self.Session(self.db) as s:
            for user in s.query(self.User).all():
                s.delete(user)

    def lookups(self, ids: Sequence[Any], rounds: int) -> int:
        User = self.User
        with self.Session(self.db) as s:
            get = s.get
            return sum(get(User, i) is not None for _ in range(rounds) for i in ids)


# ------------------------------------------------------------------------ MongoEngine

_ME: dict[str, Any] = {}


class MongoEngine(Lib):
    """MongoEngine: ``connect``, then ``save()`` / ``delete()`` per object."""

    name = "mongoengine"
    distribution = "mongoengine"
    alias = "uow_bench"
    how = {
        "W1": "Document(...).save() each",
        "W2": "list(objects), assign, save() each",
        "W3": "list(objects), save() each",
        "W4": "list(objects), delete() each",
        "W5": "objects.get(id=...)",
    }

    def open(self, backend: Backend) -> None:
        import mongoengine
        from mongoengine import fields

        mongoengine.disconnect(alias=self.alias)
        client = backend.client()
        # mongoengine makes the client itself; hand it ours (the backend's, with
        # the command listener) through its documented mongo_client_class hook.
        mongoengine.connect(
            db=DB_NAME, alias=self.alias, mongo_client_class=lambda *a, **kw: client
        )
        if "User" not in _ME:

            class MUser(mongoengine.Document):
                meta = {"collection": COLLECTION, "db_alias": self.alias}
                name = fields.StringField()
                email = fields.StringField()
                age = fields.IntField()
                tags = fields.ListField(fields.StringField())
                score = fields.FloatField()
                created = fields.DateTimeField()

            _ME["User"] = MUser
        self.User = _ME["User"]
        self.User._collection = None  # forget a collection of an earlier connection

    def close(self) -> None:
        import mongoengine

        mongoengine.disconnect(alias=self.alias)

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        User = self.User
        for r in rows:
            User(**r).save()

    def change_all(self) -> None:
        for user in list(self.User.objects):
            user.age += 1
            user.save()

    def persist_unchanged(self) -> None:
        for user in list(self.User.objects):
            user.save()

    def delete_all(self) -> None:
        for user in list(self.User.objects):
            user.delete()

    def lookups(self, ids: Sequence[Any], rounds: int) -> int:
        get = self.User.objects.get
        return sum(get(id=i) is not None for _ in range(rounds) for i in ids)


# ------------------------------------------------------------------------------ Ming

_MING: dict[str, Any] = {}


class Ming(Lib):
    """Ming's ODM: mapped objects join the ODMSession; ``session.flush()`` writes."""

    name = "ming"
    distribution = "ming"
    how = {
        "W1": "construct (joins the session), flush",
        "W2": "query.find().all(), assign, flush",
        "W3": "query.find().all(), flush",
        "W4": "query.find().all(), delete() each, flush",
        "W5": "query.get(_id=...) (identity map)",
    }

    def open(self, backend: Backend) -> None:
        from ming import create_engine, schema
        from ming.datastore import DataStore
        from ming.odm import FieldProperty, MappedClass, Mapper, ODMSession

        client = backend.client()
        # Ming's create_engine takes the connection class to use; ours returns the
        # backend's client (a mongomock one, or one with the command listener).
        engine = create_engine(use_class=lambda *a, **kw: client, auto_ensure_indexes=False)
        datastore = DataStore(engine, DB_NAME)
        if "User" not in _MING:
            odm_session = ODMSession(bind=datastore)

            class MgUser(MappedClass):
                class __mongometa__:
                    session = odm_session
                    name = COLLECTION

                _id = FieldProperty(schema.ObjectId)
                name = FieldProperty(str)
                email = FieldProperty(str)
                age = FieldProperty(int)
                tags = FieldProperty([str])
                score = FieldProperty(float)
                created = FieldProperty(dt.datetime)

            _MING["session"] = odm_session
            _MING["User"] = MgUser
            Mapper.compile_all()
        self.session = _MING["session"]
        self.session.impl.bind = datastore
        self.session.clear()
        self.User = _MING["User"]

    def close(self) -> None:
        self.session.clear()

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        User = self.User
        for r in rows:
            User(**r)
        self.session.flush()
        self.session.clear()

    def change_all(self) -> None:
        for user in self.User.query.find().all():
            user.age += 1
        self.session.flush()
        self.session.clear()

    def persist_unchanged(self) -> None:
        self.User.query.find().all()
        self.session.flush()
        self.session.clear()

    def delete_all(self) -> None:
        for user in self.User.query.find().all():
            user.delete()
        self.session.flush()
        self.session.clear()

    def lookups(self, ids: Sequence[Any], rounds: int) -> int:
        self.session.clear()
        get = self.User.query.get
        found = sum(get(_id=i) is not None for _ in range(rounds) for i in ids)
        self.session.clear()
        return found


# -------------------------------------------------------------------------- ODMantic

_ODMANTIC: dict[str, Any] = {}


class Odmantic(Lib):
    """ODMantic's SyncEngine on a pymongo client: save_all / find / delete."""

    name = "odmantic"
    distribution = "odmantic"
    how = {
        "W1": "engine.save_all",
        "W2": "list(engine.find), assign, save_all",
        "W3": "list(engine.find), save_all",
        "W4": "list(engine.find), engine.delete each",
        "W5": "engine.find_one(User, User.id == ...)",
    }

    def unavailable(self, backend: Backend) -> str | None:
        if backend.embedded:
            return (
                "needs client sessions: SyncEngine.save_all/find open one "
                "(client.start_session), which mongomock does not implement"
            )
        return super().unavailable(backend)

    def open(self, backend: Backend) -> None:
        import odmantic

        if "User" not in _ODMANTIC:

            class OUser(odmantic.Model):
                model_config = {"collection": COLLECTION}
                name: str
                email: str
                age: int
                tags: list[str]
                score: float
                created: dt.datetime

            _ODMANTIC["User"] = OUser
        self.User = _ODMANTIC["User"]
        self.engine = odmantic.SyncEngine(client=backend.client(), database=DB_NAME)

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        User = self.User
        self.engine.save_all([User(**r) for r in rows])

    def change_all(self) -> None:
        users = list(self.engine.find(self.User))
        for user in users:
            user.age += 1
        self.engine.save_all(users)

    def persist_unchanged(self) -> None:
        self.engine.save_all(list(self.engine.find(self.User)))

    def delete_all(self) -> None:
        for user in list(self.engine.find(self.User)):
            self.engine.delete(user)

    def lookups(self, ids: Sequence[Any], rounds: int) -> int:
        User = self.User
        find_one = self.engine.find_one
        return sum(find_one(User, User.id == i) is not None for _ in range(rounds) for i in ids)


# ---------------------------------------------------------------------------- Bunnet

_BUNNET: dict[str, Any] = {}


class Bunnet(Lib):
    """Bunnet (sync Beanie): init_bunnet, insert_many, save() / delete() per object."""

    name = "bunnet"
    distribution = "bunnet"
    how = {
        "W1": "Document.insert_many",
        "W2": "find_all().to_list(), assign, save() each",
        "W3": "find_all().to_list(), save() each",
        "W4": "find_all().to_list(), delete() each",
        "W5": "Document.get(id).run()",
    }

    def unavailable(self, backend: Backend) -> str | None:
        if backend.embedded:
            return (
                "init_bunnet sends database.command('buildInfo'), which mongomock's "
                "Database does not implement"
            )
        return super().unavailable(backend)

    def too_slow(self, workload: str, backend: Backend, n: int) -> str | None:
        # Bunnet's save() is an upserting findAndModify; SecantusDB 0.7.0b3 answers
        # findAndModify by scanning the collection (measured per call: 5.7 ms at 500
        # documents, 18.7 ms at 2,000, 50 ms at 8,000, where update_one takes 0.5 ms),
        # so W2/W3 at N = 10,000 take over 10 minutes a run: the backend's cost, not
        # Bunnet's, and no information a real server would confirm.
        if backend.name == "secantus" and workload in ("W2", "W3") and n > 2_000:
            return (
                "save() is findAndModify, which SecantusDB 0.7.0b3 runs as a collection "
                "scan (50 ms a call at 8,000 documents): over 10 min a run; --slow-peers "
                "runs it"
            )
        return None

    def open(self, backend: Backend) -> None:
        import bunnet

        if "User" not in _BUNNET:

            class BUser(bunnet.Document):
                name: str
                email: str
                age: int
                tags: list[str]
                score: float
                created: dt.datetime

                class Settings:
                    name = COLLECTION

            _BUNNET["User"] = BUser
        self.User = _BUNNET["User"]
        self.client = backend.client()
        bunnet.init_bunnet(database=self.client[DB_NAME], document_models=[self.User])

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        User = self.User
        User.insert_many([User(**r) for r in rows])

    def change_all(self) -> None:
        for user in self.User.find_all().to_list():
            user.age += 1
            user.save()

    def persist_unchanged(self) -> None:
        for user in self.User.find_all().to_list():
            user.save()

    def delete_all(self) -> None:
        for user in self.User.find_all().to_list():
            user.delete()

    def lookups(self, ids: Sequence[Any], rounds: int) -> int:
        get = self.User.get
        return sum(get(i).run() is not None for _ in range(rounds) for i in ids)


ALL_LIBS = ("raw", "uow", "mongoengine", "ming", "odmantic", "bunnet")
PEERS = ("mongoengine", "ming", "odmantic", "bunnet")


def make_lib(name: str, *, raw_delete: str = "in") -> Lib:
    if name == "raw":
        return Raw(delete=raw_delete)
    classes: dict[str, type[Lib]] = {
        "uow": Uow,
        "mongoengine": MongoEngine,
        "ming": Ming,
        "odmantic": Odmantic,
        "bunnet": Bunnet,
    }
    if name not in classes:
        raise ValueError(f"unknown library {name!r}: choose among {', '.join(ALL_LIBS)}")
    return classes[name]()
