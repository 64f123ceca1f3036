"""Tasks of MongoDB's ODM benchmark (source/benchmarking/odm-benchmarking.md in
mongodb/specifications), for uow and raw pymongo, scored in MB/s.

The spec's score of a task is its dataset size in MB (10^6 bytes) divided by the
median wall-clock time of the "do task" phase. Dataset sizes, as the spec defines
them: creation and find tasks, the size of the source JSON file times the
operations (10,000); update tasks, the 13 bytes of the string "updated_value"
times the operations. What this module does where the spec is loose is written
down in docs/benchmarks.md ("ODM benchmark: what was implemented").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bson import ObjectId, json_util
from pymongo import UpdateOne

from .backends import DB_NAME, Backend

UPDATED_VALUE = "updated_value"

TASKS = (
    "flat small create",
    "flat small update",
    "flat small find by filter",
    "flat large create",
    "flat large update",
    "nested large create",
    "nested large update nested field",
)


class OdmData:
    """The three documents of the data set and their sizes in bytes."""

    def __init__(self, directory: Path, *, large_binary: bool = False) -> None:
        self.directory = directory
        self.notes: list[str] = []
        self.small, self.small_size = self._load("small_doc.json", large_binary=False)
        self.large, self.large_size = self._load("large_doc.json", large_binary=large_binary)
        self.nested, self.nested_size = self._load("large_doc_nested.json", large_binary=False)

    def _load(self, name: str, *, large_binary: bool) -> tuple[dict[str, Any], int]:
        path = self.directory / name
        text = path.read_text(encoding="utf-8")
        size = len(text.encode("utf-8"))
        if large_binary:
            return json_util.loads(text), size
        doc = json.loads(text)
        # The spec's data is strict JSON with no extended types; a member holding
        # extended JSON ({"$binary": ...}) is not part of it and is left out. The
        # size is then the file's, less that member as the file spells it.
        extended = [
            key
            for key, value in doc.items()
            if isinstance(value, dict) and value and all(k.startswith("$") for k in value)
        ]
        if extended:
            full = json.dumps(doc, indent=2)
            for key in extended:
                del doc[key]
            size -= len(full.encode("utf-8")) - len(json.dumps(doc, indent=2).encode("utf-8"))
            self.notes.append(
                f"{name}: left out {', '.join(extended)} (extended JSON, not in the spec's "
                f"strict-JSON data set; --odm-large-binary keeps it); scored as {size:,} bytes "
                "per document"
            )
        return doc, size


# ------------------------------------------------------------------ uow models


def _embedded(uow: Any, name: str, sample: dict[str, Any]) -> Any:
    return type(name, (uow.Embedded,), {"__annotations__": {k: type(v) for k, v in sample.items()}})


class UowModels:
    """uow classes declared from the data set's documents (once per data set)."""

    def __init__(self, data: OdmData) -> None:
        import uow

        self.Small = type(
            "OdmSmallDoc",
            (uow.Document,),
            {
                "__collection__": "odm_small",
                "__annotations__": {k: type(v) for k, v in data.small.items()},
            },
        )
        self.Large = type(
            "OdmLargeDoc",
            (uow.Document,),
            {
                "__collection__": "odm_large",
                "__annotations__": {k: type(v) for k, v in data.large.items()},
            },
        )
        self.embedded: dict[str, Any] = {}
        annotations: dict[str, Any] = {}
        for key, value in data.nested.items():
            sample = value[0] if isinstance(value, list) else value
            cls = _embedded(uow, f"Odm_{key}", sample)
            self.embedded[key] = cls
            annotations[key] = list[cls] if isinstance(value, list) else cls
        self.Nested = type(
            "OdmLargeNestedDoc",
            (uow.Document,),
            {"__collection__": "odm_nested", "__annotations__": annotations},
        )


# ------------------------------------------------------------------------ tasks


class Task:
    """One task for one library: setup once, then before/do/after per iteration."""

    def __init__(self, name: str, size: int, collection: str) -> None:
        self.name = name
        self.size = size
        self.collection = collection

    def setup(self) -> None: ...
    def before(self) -> None: ...
    def do(self) -> None: ...
    def after(self) -> None: ...
    def check(self) -> str | None:
        """None when the iteration did its work, else what is wrong."""
        return None

    def teardown(self) -> None: ...


def make_tasks(
    lib: str, backend: Backend, client: Any, data: OdmData, models: UowModels | None, n: int
) -> list[Task]:
    """The seven tasks for ``lib`` ("raw" or "uow"), each of ``n`` operations."""
    admin = backend.admin()
    db = client[DB_NAME]
    tasks: list[Task] = []
    for name in TASKS:
        if "small" in name:
            doc, file_size, collection = data.small, data.small_size, "odm_small"
        elif "nested" in name:
            doc, file_size, collection = data.nested, data.nested_size, "odm_nested"
        else:
            doc, file_size, collection = data.large, data.large_size, "odm_large"
        if name.endswith("create"):
            size = file_size * n
            if lib == "raw":
                tasks.append(_RawCreate(name, size, collection, admin, db, doc=doc, n=n))
            else:
                assert models is not None
                build = _uow_builder(models, name, doc)
                tasks.append(_UowCreate(name, size, collection, admin, db, build=build, n=n))
        elif "update" in name:
            size = len(UPDATED_VALUE.encode()) * n
            path = "embedded_str_doc_1.field1" if "nested" in name else "field1"
            original = _get_path(doc, path)
            update = {"doc": doc, "n": n, "path": path, "original": original}
            if lib == "raw":
                tasks.append(_RawUpdate(name, size, collection, admin, db, **update))
            else:
                assert models is not None
                model = _uow_model(models, name)
                tasks.append(_UowUpdate(name, size, collection, admin, db, **update, model=model))
        else:
            size = file_size * n
            if lib == "raw":
                tasks.append(_RawFind(name, size, collection, admin, db, doc=doc, n=n))
            else:
                assert models is not None
                tasks.append(
                    _UowFind(name, size, collection, admin, db, doc=doc, n=n, model=models.Small)
                )
    return tasks


def _uow_model(models: UowModels, name: str) -> Any:
    if "small" in name:
        return models.Small
    return models.Nested if "nested" in name else models.Large


def _uow_builder(models: UowModels, name: str, doc: dict[str, Any]) -> Callable[[], Any]:
    # from_dict: how uow's docs build a document from parsed JSON (nested mappings
    # included), as the spec's "create from the data set's document" asks.
    from_dict = _uow_model(models, name).from_dict
    return lambda: from_dict(doc)


def _get_path(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value[part]
    return value


def _seed(admin: Any, collection: str, doc: dict[str, Any], n: int) -> list[Any]:
    coll = admin[collection]
    coll.drop()
    ids = [ObjectId() for _ in range(n)]
    for start in range(0, n, 1000):
        coll.insert_many([{"_id": i, **doc} for i in ids[start : start + 1000]])
    return ids


class _Base(Task):
    """A task on ``collection``; ``fields`` are what the subclass works with."""

    doc: dict[str, Any]
    n: int
    path: str
    original: Any
    model: Any
    build: Callable[[], Any]

    def __init__(
        self, name: str, size: int, collection: str, admin: Any, db: Any, **fields: Any
    ) -> None:
        super().__init__(name, size, collection)
        self.admin = admin
        self.db = db
        for key, value in fields.items():
            setattr(self, key, value)

    def teardown(self) -> None:
        self.admin[self.collection].drop()


class _RawCreate(_Base):
    def before(self) -> None:
        self.admin[self.collection].drop()

    def do(self) -> None:
        doc = self.doc
        self.db[self.collection].insert_many([dict(doc) for _ in range(self.n)])

    def check(self) -> str | None:
        count = self.admin[self.collection].count_documents({})
        return None if count == self.n else f"{count} documents stored, expected {self.n}"


class _UowCreate(_RawCreate):
    def do(self) -> None:
        import uow

        build = self.build
        with uow.Session(self.db) as s:
            s.add_all([build() for _ in range(self.n)])


class _RawUpdate(_Base):
    def setup(self) -> None:
        _seed(self.admin, self.collection, self.doc, self.n)

    def before(self) -> None:
        # Every iteration starts from the stored original value, with the models
        # loaded in memory (the spec's setup state); neither step is timed.
        self.admin[self.collection].update_many({}, {"$set": {self.path: self.original}})
        self.docs = list(self.db[self.collection].find())

    def do(self) -> None:
        path = self.path
        outer, _, inner = path.partition(".")
        requests = []
        for doc in self.docs:
            if inner:
                doc[outer][inner] = UPDATED_VALUE
            else:
                doc[outer] = UPDATED_VALUE
            requests.append(UpdateOne({"_id": doc["_id"]}, {"$set": {path: UPDATED_VALUE}}))
        self.db[self.collection].bulk_write(requests)

    def after(self) -> None:
        self.docs = []

    def check(self) -> str | None:
        count = self.admin[self.collection].count_documents({self.path: UPDATED_VALUE})
        return None if count == self.n else f"{count} documents updated, expected {self.n}"


class _UowUpdate(_RawUpdate):
    def before(self) -> None:
        import uow

        self.admin[self.collection].update_many({}, {"$set": {self.path: self.original}})
        self.session = uow.Session(self.db)
        self.objs = self.session.query(self.model).all()

    def do(self) -> None:
        outer, _, inner = self.path.partition(".")
        if inner:
            for obj in self.objs:
                setattr(getattr(obj, outer), inner, UPDATED_VALUE)
        else:
            for obj in self.objs:
                setattr(obj, outer, UPDATED_VALUE)
        self.session.commit()

    def after(self) -> None:
        self.session.close()
        self.objs = []


class _RawFind(_Base):
    def setup(self) -> None:
        self.ids = _seed(self.admin, self.collection, self.doc, self.n)

    def do(self) -> None:
        find_one = self.db[self.collection].find_one
        self.found = sum(find_one({"_id": i}) is not None for i in self.ids)

    def check(self) -> str | None:
        return None if self.found == self.n else f"{self.found} found, expected {self.n}"


class _UowFind(_RawFind):
    def before(self) -> None:
        import uow

        self.session = uow.Session(self.db)  # empty identity map: every filter is a query

    def do(self) -> None:
        query = self.session.query(self.model)
        field = self.model.id
        self.found = sum(query.filter(field == i).first() is not None for i in self.ids)

    def after(self) -> None:
        self.session.close()
