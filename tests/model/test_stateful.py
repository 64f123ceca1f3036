"""Issue #17, "Nothing lost, ever": a model-based test of the unit of work.

A hypothesis ``RuleBasedStateMachine`` drives random sequences of user calls
against a real ``uow.Session`` (loads full and partial, in the session holding
the object or a fresh one; assignments; in-place mutation at depth; declared
operators, also inside embedded documents in lists and dicts; raw documents
lacking keys; deletes, flushes, commits, rollbacks, expunge and add, clear_cache;
and another client appending and incrementing in between). Next to it, a
plain-Python model keeps, per document id, the stored dict SPEC.md requires
(``_model.merge``). After every flush and commit, what raw pymongo reads must
equal the model; after every commit, so must what a fresh session loads; after
every step, every object must hold what the model says the session holds.

Lanes: ``mongomock`` (no transactions: rollback only drops unflushed work) and
``secantus`` (every flush after a commit opens a transaction; rollback goes back
to the last commit). Raw pymongo reads outside the session's transaction see
the committed documents; reads with the session's driver session see its
flushed ones: both are checked.

Another client writes only while the session has no transaction open (a raw
write to a document the transaction wrote would be a write conflict, which is
the server's business, not the model's).

Readings of SPEC.md the model makes where it is terse (each a choice to revisit
if SPEC says otherwise):

* A key missing from the stored document: its first change is a ``$set`` of the
  whole value, for every kind of field, even one whose default is empty (so an
  append from another client in between is overwritten, as SPEC's words say).
* ``$addToSet`` of an item the list already holds is a change the operator cannot
  express: ``$set`` of the field (what the code does today).
* ``$max`` lowered by the session: the server keeps the larger value while the
  session holds what it computed (SPEC: "the in-memory value is the one this
  session computed").
* ``get()`` of a document the session does not hold reads the database without
  an autoflush; queries autoflush first.
* A query meeting a partial document the session holds (clean, after the
  autoflush) fills in the fields it loads; one meeting a full document changes
  nothing in it (another client's writes are not merged into held objects).
* Transactional rollback: objects detached at that moment are dropped from the
  model (their snapshot may come from the aborted transaction; SPEC is silent).
* Not modelled: ``$currentDate`` and ``$min`` (see ``_models.py``), versioned
  documents, subclasses, ``update()``/``update_query`` and failures of writes.

Profiles (``tests/model/conftest.py``): ``ci`` unless ``--hypothesis-profile``
names another (``long``: 12,000 steps per lane). Every user call is recorded
with ``note()``, so a failure prints the shrunk program as plain uow calls.
"""

from __future__ import annotations

import copy
from typing import Any

import bson
import mongomock
import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests._hash_order import pair_whose_set_order_moves
from uow import Session

from ._model import MISSING, UNLOADED, changed, merge
from ._models import (
    DEFAULTS,
    FIELDS,
    SCHEMA,
    MdDoc,
    MdOther,
    default,
    form_of,
    line_form,
    line_obj,
    stored_comparable,
    value_obj,
)

# ----------------------------------------------------------------- strategies

WORDS = st.sampled_from(["a", "b", "c"])
KEYS = st.sampled_from(["a", "b"])
SMALL = st.integers(0, 5)
DELTA = st.integers(1, 3)
WORD_LIST = st.lists(WORDS, max_size=2)
#: Labels (a set field) include two strings that meet in a set's table in this
#: process: a set of them iterates in the order it was built in, the case where
#: a set rebuilt from its stored form once looked changed (long profile, seed 92).
LABELS = st.sampled_from(["a", "b", *pair_whose_set_order_moves()])

LINE = st.builds(
    line_form,
    WORDS,
    qty=SMALL,
    tags=WORD_LIST,
    hits=SMALL,
    peak=SMALL,
    log=WORD_LIST,
    kinds=WORD_LIST,
)
INNER = st.fixed_dictionaries({"n": SMALL, "words": WORD_LIST})


def field_form(name: str, others: list[bson.ObjectId]) -> st.SearchStrategy[Any]:
    """A value of ``MdDoc.<name>`` in stored form."""
    if name == "name":
        return WORDS
    if name in ("n", "visits", "best", "extra_n"):
        return SMALL
    if name in ("log", "kinds", "tags", "extra_list"):
        return WORD_LIST
    if name == "labels":
        return st.sets(LABELS, max_size=2)
    if name == "lines":
        return st.lists(LINE, max_size=2)
    if name == "by_key":
        return st.dictionaries(KEYS, WORD_LIST, max_size=2)
    if name == "by_sku":
        return st.dictionaries(KEYS, LINE, max_size=2)
    if name == "outer":
        return st.fixed_dictionaries({"inner": INNER, "label": WORDS})
    if name == "refs":
        return st.lists(st.sampled_from(others), max_size=2)
    if name == "extra_emb":
        return INNER
    raise AssertionError(name)


def held_from_stored(
    doc: dict[str, Any], names: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a session holds after loading ``doc`` (fields ``names``), and its snapshot."""
    held: dict[str, Any] = {}
    snap: dict[str, Any] = {}
    for name in FIELDS if names is None else names:
        if name in doc:
            held[name] = copy.deepcopy(doc[name])
            snap[name] = copy.deepcopy(doc[name])
        else:
            held[name] = default(name)
            snap[name] = MISSING
    return held, snap


def held_from_snap(snap: dict[str, Any]) -> dict[str, Any]:
    held = {}
    for name, value in snap.items():
        held[name] = default(name) if value is MISSING else copy.deepcopy(value)
    return held


class Entry:
    """One document object the user holds, and what the model says about it."""

    def __init__(
        self, label: str, obj: MdDoc, held: dict[str, Any], snap: Any, csnap: Any, status: str
    ) -> None:
        self.label = label
        self.obj = obj
        self.id = obj.id
        #: loaded (or assigned) field -> value the object must hold (stored form)
        self.held = held
        #: field -> what the session believes is stored (MISSING / UNLOADED); None: an insert
        self.snap = snap
        #: the snapshot as of the last commit (transactional lane); None: not committed
        self.csnap = csnap
        #: pending, persistent, deleted, detached
        self.status = status

    def dirty(self) -> bool:
        if self.status in ("pending", "deleted"):
            return True
        return any(changed(self.snap[f], self.held[f], DEFAULTS.get(f)) for f in self.held)


# ----------------------------------------------------------------- the machine


class NothingLost(RuleBasedStateMachine):
    # A dict, not the database itself: hypothesis looks for rules among class
    # attributes, and a mongomock Database answers every attribute with a collection.
    lane: dict[str, Any] = {}

    def __init__(self) -> None:
        super().__init__()
        self.db = db = self.lane["db"]
        self.transactional: bool = self.lane["transactional"]
        db.md_docs.delete_many({})
        db.md_others.delete_many({})
        self.others = [bson.ObjectId(), bson.ObjectId()]
        db.md_others.insert_many(
            [{"_id": oid, "name": f"other{i}"} for i, oid in enumerate(self.others)]
        )
        self.other_names = {oid: f"other_id{i}" for i, oid in enumerate(self.others)}
        self.committed: dict[Any, dict[str, Any]] = {}
        self.flushed: dict[Any, dict[str, Any]] = {} if self.transactional else self.committed
        self.entries: list[Entry] = []
        self.doc_names: dict[Any, str] = {}
        self.counter = 0
        self.session_no = 0
        self.s = self._open()

    # -- helpers -------------------------------------------------------------

    def _open(self) -> Session:
        self.session_no += 1
        note(f"s = Session(db)  # session #{self.session_no}")
        return Session(self.db)

    def teardown(self) -> None:
        if not self.s.closed:
            self.s.close()

    def _label(self) -> str:
        self.counter += 1
        return f"o{self.counter}"

    def _doc_name(self, id_: Any) -> str:
        if id_ not in self.doc_names:
            self.doc_names[id_] = f"id{len(self.doc_names)}"
        return self.doc_names[id_]

    def _in_transaction(self) -> bool:
        return bool(self.s._transaction.active)

    def tracked(self) -> list[Entry]:
        return [e for e in self.entries if e.status != "detached"]

    def tracked_by_id(self, id_: Any) -> Entry | None:
        for e in self.entries:
            if e.status != "detached" and e.id == id_:
                return e
        return None

    def live(self) -> list[Entry]:
        """Objects the user may still change: every one but those pending delete."""
        return [e for e in self.entries if e.status != "deleted"]

    def _new_loaded(self, obj: MdDoc, names: Any) -> Entry:
        doc = self.flushed[obj.id]
        held, snap = held_from_stored(doc, names)
        csnap = None
        if obj.id in self.committed:
            csnap = held_from_stored(self.committed[obj.id], names)[1]
        entry = Entry(self._label(), obj, held, snap, csnap, "persistent")
        self.entries.append(entry)
        return entry

    def _fill(self, entry: Entry, names: Any) -> None:
        """A query loaded fields the object lacked (it is clean: the autoflush ran)."""
        doc = self.flushed[entry.id]
        for name in FIELDS if names is None else names:
            if name in entry.held:
                continue
            held, snap = held_from_stored(doc, [name])
            entry.held.update(held)
            entry.snap.update(snap)
            if entry.csnap is not None and entry.id in self.committed:
                entry.csnap.update(held_from_stored(self.committed[entry.id], [name])[1])

    # -- the model's flush, commit and rollback ---------------------------------

    def model_flush(self) -> None:
        store = self.flushed
        for e in list(self.tracked()):
            if e.status == "pending":
                store[e.id] = {"_id": e.id, **copy.deepcopy(e.held)}
                e.snap = copy.deepcopy(e.held)
                e.status = "persistent"
            elif e.status == "persistent":
                doc = store[e.id]
                for name, value in e.held.items():
                    snap = e.snap[name]
                    if not changed(snap, value, DEFAULTS.get(name)):
                        continue
                    doc[name] = merge(SCHEMA[name], doc.get(name, MISSING), snap, value)
                    e.snap[name] = copy.deepcopy(value)
            elif e.status == "deleted":
                store.pop(e.id, None)
                self.entries.remove(e)

    def model_commit(self) -> None:
        if self.transactional:
            self.committed.clear()
            self.committed.update(copy.deepcopy(self.flushed))
        for e in self.entries:
            if e.status != "detached" or not self.transactional:
                e.csnap = copy.deepcopy(e.snap)

    def model_rollback(self, aborted: bool = False) -> None:
        if not self.transactional:
            for e in list(self.tracked()):
                if e.status == "pending":
                    self.entries.remove(e)
                    continue
                e.status = "persistent"
                for name in list(e.snap):
                    if e.snap[name] is UNLOADED:
                        del e.snap[name]
                e.held = held_from_snap(e.snap)
            return
        self.flushed.clear()
        self.flushed.update(copy.deepcopy(self.committed))
        for e in list(self.entries):
            if e.status == "detached" or e.csnap is None or e.id not in self.committed:
                # Detached objects may hold snapshots of the aborted transaction
                # (SPEC is silent on them); objects first stored in it are transient.
                self.entries.remove(e)
                continue
            e.status = "persistent"
            e.snap = {k: v for k, v in copy.deepcopy(e.csnap).items() if v is not UNLOADED}
            if aborted:
                # SPEC: after the abort every tracked document reads what the
                # database holds; uow reads each field again on its next access,
                # so another client's committed writes are seen too.
                e.held, e.snap = held_from_stored(self.committed[e.id], list(e.snap))
                e.csnap = copy.deepcopy(e.snap)
                continue
            e.held = held_from_snap(e.snap)

    # -- checks ------------------------------------------------------------------

    def _read(self, session: Any = None) -> dict[Any, dict[str, Any]]:
        found = self.db.md_docs.find({}, session=session) if session else self.db.md_docs.find()
        return {doc["_id"]: stored_comparable(doc) for doc in found}

    def _expected(self, store: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        return {id_: stored_comparable(doc) for id_, doc in store.items()}

    def _compare(self, what: str, got: dict[Any, Any], want: dict[Any, Any]) -> None:
        if got == want:
            return
        lines = [f"{what}: stored documents differ from the model"]
        for id_ in sorted(set(got) | set(want), key=str):
            g, w = got.get(id_), want.get(id_)
            if g == w:
                continue
            name = self._doc_name(id_)
            if g is None or w is None:
                lines.append(f"  {name}: stored {g!r}\n      model  {w!r}")
                continue
            for key in sorted(set(g) | set(w)):
                if g.get(key, MISSING) != w.get(key, MISSING):
                    lines.append(
                        f"  {name}.{key}: stored {g.get(key, MISSING)!r}, "
                        f"model expects {w.get(key, MISSING)!r}"
                    )
        raise AssertionError("\n".join(lines))

    def check_store(self) -> None:
        self._compare("raw find()", self._read(), self._expected(self.committed))
        if self.transactional and self._in_transaction():
            self._compare(
                "raw find() in the session's transaction",
                self._read(self.s.driver_session),
                self._expected(self.flushed),
            )

    def check_reload(self) -> None:
        with Session(self.db, transactional=False) as fresh:
            loaded = {obj.id: obj for obj in fresh.query(MdDoc).all()}
            assert set(loaded) == set(self.committed)
            for id_, obj in loaded.items():
                want, _ = held_from_stored(self.committed[id_])
                for name in FIELDS:
                    got = form_of(SCHEMA[name], getattr(obj, name))
                    assert got == want[name], (
                        f"a fresh session loads {self._doc_name(id_)}.{name} = {got!r}, "
                        f"the model stored {want[name]!r}"
                    )

    @invariant()
    def objects_hold_what_the_model_says(self) -> None:
        for e in self.entries:
            for name, value in e.held.items():
                got = form_of(SCHEMA[name], getattr(e.obj, name))
                assert got == value, (
                    f"{e.label}.{name} ({e.status}) holds {got!r}, the model says {value!r}"
                )
            if e.status == "persistent":
                # What uow reports changed is what the model says differs from
                # the stored document (a set rebuilt in another order is no change).
                dirty = self.s.dirty_fields(e.obj)
                assert bool(dirty) == e.dirty(), (
                    f"{e.label}: uow reports changed fields {dirty}, the model "
                    f"{'some' if e.dirty() else 'none'} (held {e.held!r}, snap {e.snap!r})"
                )

    # -- rules: raw data and new documents ----------------------------------------

    @initialize(data=st.data())
    def stored_before(self, data: st.DataObject) -> None:
        """Every program starts with a document stored by an older version of the
        class (another client), and this session holding it."""
        self.insert_raw(data)
        self.query_all()

    @precondition(lambda self: len(self.committed) < 5)
    @rule(data=st.data())
    def insert_raw(self, data: st.DataObject) -> None:
        """Another client (or an older version of the class) stores a document."""
        optional = FIELDS[1:]
        missing = data.draw(st.sets(st.sampled_from(optional)), label="missing keys")
        if data.draw(st.booleans(), label="written before the extra_* fields existed"):
            missing |= {"extra_n", "extra_list", "extra_emb"}
        doc: dict[str, Any] = {"_id": bson.ObjectId()}
        for name in FIELDS:
            if name not in missing:
                doc[name] = data.draw(field_form(name, self.others), label=name)
        if data.draw(st.booleans(), label="unknown key"):
            doc["legacy"] = {"kept": [1, 2]}
        raw = dict(doc)
        if "labels" in raw:
            raw["labels"] = sorted(raw["labels"])
        if self.transactional and self._in_transaction():
            # The session's transaction would not see it (and the model would).
            # Decided after the draws: hypothesis needs the same draws whatever
            # the session's state.
            return
        self.db.md_docs.insert_one(copy.deepcopy(raw))
        self.committed[doc["_id"]] = doc
        if self.transactional:
            self.flushed[doc["_id"]] = copy.deepcopy(doc)
        note(f"db.md_docs.insert_one({raw!r})  # {self._doc_name(doc['_id'])}")

    @rule(data=st.data())
    def add_new(self, data: st.DataObject) -> None:
        given = data.draw(st.sets(st.sampled_from(FIELDS[1:]), max_size=4), label="fields given")
        held = {name: default(name) for name in FIELDS[1:]}
        held["name"] = data.draw(WORDS, label="name")
        for name in sorted(given):
            held[name] = data.draw(field_form(name, self.others), label=name)
        obj = MdDoc(name=held["name"], **{n: value_obj(n, held[n]) for n in sorted(given)})
        self.s.add(obj)
        entry = Entry(self._label(), obj, held, None, None, "pending")
        self.entries.append(entry)
        shown = ", ".join(f"{n}={held[n]!r}" for n in ["name", *sorted(given)])
        note(f"{entry.label} = MdDoc({shown}); s.add({entry.label})  # {self._doc_name(obj.id)}")

    # -- rules: loads ----------------------------------------------------------------

    def _order(self, id_: Any) -> int:
        """Ids in the order the program made them. (Not by value: the session's
        ids and the test's come from two generators, so their order by value
        can differ from one run of the same program to the next, and hypothesis
        needs the same draws.)"""
        return int(self._doc_name(id_)[2:])

    def _ids(self) -> list[Any]:
        ids = set(self.flushed) | {e.id for e in self.tracked()}
        return sorted(ids, key=self._order)

    @precondition(lambda self: self._ids())
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        id_ = data.draw(st.sampled_from(self._ids()), label="id")
        obj = self.s.get(MdDoc, id_)
        entry = self.tracked_by_id(id_)
        if entry is not None:
            note(f"s.get(MdDoc, {self._doc_name(id_)})  # is {entry.label}")
            if entry.status == "deleted":
                assert obj is None, "get() of a document pending delete"
            else:
                assert obj is entry.obj, "get() broke the identity map"
            return
        if id_ not in self.flushed:
            note(f"s.get(MdDoc, {self._doc_name(id_)})  # None")
            assert obj is None
            return
        assert obj is not None, "get() found nothing where a document is stored"
        entry = self._new_loaded(obj, None)
        note(f"{entry.label} = s.get(MdDoc, {self._doc_name(id_)})")

    def _run_query(self, names: Any) -> None:
        query = self.s.query(MdDoc)
        if names is not None:
            query = query.fields(*names)
        results = query.all()
        self.model_flush()  # the autoflush
        by_id = {obj.id: obj for obj in results}
        assert set(by_id) == set(self.flushed), "a query found other documents than stored"
        shown = []
        for id_, obj in by_id.items():
            entry = self.tracked_by_id(id_)
            if entry is not None:
                assert obj is entry.obj, "a query broke the identity map"
                self._fill(entry, names)
            else:
                entry = self._new_loaded(obj, names)
            shown.append(f"{entry.label}={self._doc_name(id_)}")
        call = "s.query(MdDoc)"
        if names is not None:
            call += ".fields(" + ", ".join(repr(n) for n in names) + ")"
        note(f"{call}.all()  # {', '.join(sorted(shown))}")
        self.check_store()

    @rule()
    def query_all(self) -> None:
        self._run_query(None)

    @rule(names=st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True))
    def query_fields(self, names: list[str]) -> None:
        self._run_query(names)

    # -- rules: changes --------------------------------------------------------------

    def _mutate(self, data: st.DataObject, group: str) -> None:
        entry = data.draw(st.sampled_from(self.live()), label="object")
        choices = [
            m
            for m in MUTATIONS
            if _group(m[0]) == group and all(f in entry.held for f in m[1]) and m[2](entry.held)
        ]
        if not choices:
            return
        _name, _needs, _ok, apply = data.draw(st.sampled_from(choices), label="mutation")
        shown = apply(self, entry.obj, entry.held, data.draw)
        note(f"{entry.label}.{shown}" + ("  # detached" if entry.status == "detached" else ""))

    # Three rules, not one: hypothesis picks among rules evenly, and changes are
    # what the other rules have to get right.
    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def mutate_top_level(self, data: st.DataObject) -> None:
        self._mutate(data, "top")

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def mutate_at_depth(self, data: st.DataObject) -> None:
        self._mutate(data, "depth")

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def mutate_later_fields_and_refs(self, data: st.DataObject) -> None:
        self._mutate(data, "later")

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def assign(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self.live()), label="object")
        name = data.draw(st.sampled_from(FIELDS), label="field")
        form = data.draw(field_form(name, self.others), label="value")
        setattr(entry.obj, name, value_obj(name, form))
        if name not in entry.held and entry.snap is not None:
            entry.snap[name] = UNLOADED
        entry.held[name] = copy.deepcopy(form)
        note(f"{entry.label}.{name} = {form!r}")

    @precondition(lambda self: any(e.status in ("pending", "persistent") for e in self.entries))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        entry = data.draw(
            st.sampled_from([e for e in self.entries if e.status in ("pending", "persistent")]),
            label="object",
        )
        self.s.delete(entry.obj)
        note(f"s.delete({entry.label})")
        if entry.status == "pending":
            self.entries.remove(entry)  # the insert is cancelled: transient
        else:
            entry.status = "deleted"

    # -- rules: the unit of work ---------------------------------------------------

    @rule()
    def flush(self) -> None:
        note("s.flush()")
        self.s.flush()
        self.model_flush()
        self.check_store()

    @rule()
    def commit(self) -> None:
        note("s.commit()")
        self.s.commit()
        self.model_flush()
        self.model_commit()
        self.check_store()
        self.check_reload()

    @rule()
    def rollback(self) -> None:
        note("s.rollback()")
        aborted = self.transactional and self._in_transaction()
        self.s.rollback()
        self.model_rollback(aborted)

    @precondition(lambda self: any(e.status == "persistent" for e in self.entries))
    @rule(data=st.data())
    def expunge(self, data: st.DataObject) -> None:
        entry = data.draw(
            st.sampled_from([e for e in self.entries if e.status == "persistent"]), label="object"
        )
        self.s.expunge(entry.obj)
        entry.status = "detached"
        note(f"s.expunge({entry.label})")

    def _addable(self) -> list[Entry]:
        return [
            e
            for e in self.entries
            if e.status == "detached" and e.id in self.flushed and self.tracked_by_id(e.id) is None
        ]

    @precondition(lambda self: self._addable())
    @rule(data=st.data())
    def add_detached(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self._addable()), label="object")
        self.s.add(entry.obj)
        entry.status = "persistent"
        # Tracked again with the snapshot it had when last stored, which is now
        # also what a rollback without a transaction goes back to (a transaction
        # aborted later is read again from the database anyway).
        if entry.snap is not None:
            entry.csnap = copy.deepcopy(entry.snap)
        note(f"s.add({entry.label})  # detached: tracked again")

    @rule()
    def clear_cache(self) -> None:
        self.s.clear_cache()
        note("s.clear_cache()")
        for e in self.entries:
            if e.status == "persistent" and not e.dirty():
                e.status = "detached"
            if e.status in ("persistent", "detached"):
                # SPEC: clean documents are forgotten, changed ones stay.
                state = self.s.state(e.obj).value
                dirty = self.s.dirty_fields(e.obj) if state == "persistent" else "-"
                assert state == e.status, (
                    f"{e.label}: after clear_cache() uow says {state}, the model "
                    f"{e.status} (uow dirty fields: {dirty}; model held {e.held!r}, "
                    f"snap {e.snap!r})"
                )

    @rule()
    def reopen(self) -> None:
        """Commit, close, and go on in a fresh session (the objects become detached)."""
        note("s.commit(); s.close()")
        self.s.commit()
        self.model_flush()
        self.model_commit()
        self.s.close()
        for e in self.entries:
            e.status = "detached"
        self.check_store()
        self.s = self._open()

    # -- rules: another client, between this session's load and flush -----------------

    @precondition(lambda self: self.committed)
    @rule(data=st.data())
    def concurrent(self, data: st.DataObject) -> None:
        id_ = data.draw(st.sampled_from(sorted(self.committed, key=self._order)), label="id")
        # Changed on a copy: whether the write is made is known only after every
        # draw (hypothesis needs the same draws whatever the session's state).
        doc = copy.deepcopy(self.committed[id_])
        paths = ["tags", "log", "visits", "extra_n", "name", "n"]
        # At depth, where the stored document has the element (SPEC: operators
        # and appends are sent on positional and dotted paths, so these add up).
        lines = doc.get("lines")
        if isinstance(lines, list) and lines:
            paths += ["lines.0.hits", "lines.0.log", "lines.0.tags"]
        if "a" in doc.get("by_sku", {}):
            paths += ["by_sku.a.hits", "by_sku.a.log"]
        if "a" in doc.get("by_key", {}):
            paths += ["by_key.a"]
        path = data.draw(st.sampled_from(paths), label="path")
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if last in ("hits", "visits", "extra_n"):
            value: Any = data.draw(DELTA, label="delta")
            update: dict[str, Any] = {"$inc": {path: value}}
            target[last] = target.get(last, 0) + value
        elif last in ("name", "n"):
            value = data.draw(WORDS if last == "name" else SMALL, label="value")
            update = {"$set": {path: value}}
            target[last] = value
        else:
            value = data.draw(WORDS, label="item")
            update = {"$push": {path: value}}
            target[last] = [*target.get(last, []), value]
        if self.transactional and self._in_transaction():
            return  # it would wait for the open transaction's lock
        self.committed[id_] = doc
        self.db.md_docs.update_one({"_id": id_}, update)
        if self.transactional:
            self.flushed[id_] = copy.deepcopy(doc)
        note(
            f"db.md_docs.update_one({{'_id': {self._doc_name(id_)}}}, {update!r})  # another client"
        )


# ------------------------------------------------------------- in-place mutations


def _index(draw: Any, seq: Any) -> int:
    return int(draw(st.integers(0, len(seq) - 1), label="index"))


def _m(fields: tuple[str, ...], ok: Any = None) -> Any:
    def wrap(fn: Any) -> Any:
        MUTATIONS.append((fn.__name__, fields, ok or (lambda held: True), fn))
        return fn

    return wrap


MUTATIONS: list[Any] = []


def _group(name: str) -> str:
    if name.startswith(("lines", "by_", "outer")):
        return "depth"
    if name.startswith(("extra", "refs")):
        return "later"
    return "top"


@_m(("n",))
def n_inc(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    k = draw(DELTA)
    obj.n += k
    h["n"] += k
    return f"n += {k}"


@_m(("visits",))
def visits_inc(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    k = draw(DELTA)
    obj.visits += k
    h["visits"] += k
    return f"visits += {k}  # $inc"


@_m(("extra_n",))
def extra_n_inc(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    k = draw(DELTA)
    obj.extra_n += k
    h["extra_n"] += k
    return f"extra_n += {k}  # $inc, default 5"


@_m(("best",))
def best_set(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    k = draw(SMALL)
    obj.best = k
    h["best"] = k
    return f"best = {k}  # $max"


@_m(("tags",))
def tags_append(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(WORDS)
    obj.tags.append(x)
    h["tags"].append(x)
    return f"tags.append({x!r})"


@_m(("tags",), lambda h: h["tags"])
def tags_pop(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    obj.tags.pop(0)
    h["tags"].pop(0)
    return "tags.pop(0)"


@_m(("log",))
def log_append(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(WORDS)
    obj.log.append(x)
    h["log"].append(x)
    return f"log.append({x!r})  # $push"


@_m(("log",), lambda h: h["log"])
def log_pop(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    obj.log.pop()
    h["log"].pop()
    return "log.pop()  # $push field: $set"


@_m(("kinds",))
def kinds_append(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(WORDS)
    obj.kinds.append(x)
    h["kinds"].append(x)
    return f"kinds.append({x!r})  # $addToSet"


@_m(("labels",))
def labels_add(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(LABELS)
    obj.labels.add(x)
    h["labels"].add(x)
    return f"labels.add({x!r})"


@_m(("labels",), lambda h: h["labels"])
def labels_discard(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(st.sampled_from(sorted(h["labels"])))
    obj.labels.discard(x)
    h["labels"].discard(x)
    return f"labels.discard({x!r})"


@_m(("lines",))
def lines_append(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    form = draw(LINE)
    obj.lines.append(line_obj(form))
    h["lines"].append(copy.deepcopy(form))
    return f"lines.append(MdLine(**{form!r}))"


@_m(("lines",), lambda h: h["lines"])
def lines_pop(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    i = _index(draw, h["lines"])
    obj.lines.pop(i)
    h["lines"].pop(i)
    return f"lines.pop({i})"


@_m(("lines",), lambda h: h["lines"])
def lines_qty(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    i, k = _index(draw, h["lines"]), draw(DELTA)
    obj.lines[i].qty += k
    h["lines"][i]["qty"] += k
    return f"lines[{i}].qty += {k}"


@_m(("lines",), lambda h: h["lines"])
def lines_tags(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    i, x = _index(draw, h["lines"]), draw(WORDS)
    obj.lines[i].tags.append(x)
    h["lines"][i]["tags"].append(x)
    return f"lines[{i}].tags.append({x!r})"


@_m(("lines",), lambda h: h["lines"])
def lines_hits(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    i, k = _index(draw, h["lines"]), draw(DELTA)
    obj.lines[i].hits += k
    h["lines"][i]["hits"] += k
    return f"lines[{i}].hits += {k}  # $inc"


@_m(("lines",), lambda h: h["lines"])
def lines_peak(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    i, k = _index(draw, h["lines"]), draw(SMALL)
    obj.lines[i].peak = k
    h["lines"][i]["peak"] = k
    return f"lines[{i}].peak = {k}  # $max"


@_m(("lines",), lambda h: h["lines"])
def lines_log(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    i, x = _index(draw, h["lines"]), draw(WORDS)
    obj.lines[i].log.append(x)
    h["lines"][i]["log"].append(x)
    return f"lines[{i}].log.append({x!r})  # $push"


@_m(("lines",), lambda h: h["lines"])
def lines_kinds(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    i, x = _index(draw, h["lines"]), draw(WORDS)
    obj.lines[i].kinds.append(x)
    h["lines"][i]["kinds"].append(x)
    return f"lines[{i}].kinds.append({x!r})  # $addToSet"


@_m(("by_key",), lambda h: h["by_key"])
def by_key_append(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key, x = draw(st.sampled_from(sorted(h["by_key"]))), draw(WORDS)
    obj.by_key[key].append(x)
    h["by_key"][key].append(x)
    return f"by_key[{key!r}].append({x!r})"


@_m(("by_key",))
def by_key_new(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key, x = draw(KEYS), draw(WORDS)
    obj.by_key[key] = [x]
    h["by_key"][key] = [x]
    return f"by_key[{key!r}] = [{x!r}]"


@_m(("by_key",), lambda h: h["by_key"])
def by_key_del(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key = draw(st.sampled_from(sorted(h["by_key"])))
    del obj.by_key[key]
    del h["by_key"][key]
    return f"del by_key[{key!r}]"


@_m(("by_sku",), lambda h: h["by_sku"])
def by_sku_hits(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key, k = draw(st.sampled_from(sorted(h["by_sku"]))), draw(DELTA)
    obj.by_sku[key].hits += k
    h["by_sku"][key]["hits"] += k
    return f"by_sku[{key!r}].hits += {k}  # $inc"


@_m(("by_sku",), lambda h: h["by_sku"])
def by_sku_log(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key, x = draw(st.sampled_from(sorted(h["by_sku"]))), draw(WORDS)
    obj.by_sku[key].log.append(x)
    h["by_sku"][key]["log"].append(x)
    return f"by_sku[{key!r}].log.append({x!r})  # $push"


@_m(("by_sku",), lambda h: h["by_sku"])
def by_sku_peak(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key, k = draw(st.sampled_from(sorted(h["by_sku"]))), draw(SMALL)
    obj.by_sku[key].peak = k
    h["by_sku"][key]["peak"] = k
    return f"by_sku[{key!r}].peak = {k}  # $max"


@_m(("by_sku",), lambda h: h["by_sku"])
def by_sku_kinds(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key, x = draw(st.sampled_from(sorted(h["by_sku"]))), draw(WORDS)
    obj.by_sku[key].kinds.append(x)
    h["by_sku"][key]["kinds"].append(x)
    return f"by_sku[{key!r}].kinds.append({x!r})  # $addToSet"


@_m(("by_sku",))
def by_sku_new(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    key, form = draw(KEYS), draw(LINE)
    obj.by_sku[key] = line_obj(form)
    h["by_sku"][key] = copy.deepcopy(form)
    return f"by_sku[{key!r}] = MdLine(**{form!r})"


@_m(("outer",))
def outer_inner_n(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    k = draw(DELTA)
    obj.outer.inner.n += k
    h["outer"]["inner"]["n"] += k
    return f"outer.inner.n += {k}"


@_m(("outer",))
def outer_inner_words(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(WORDS)
    obj.outer.inner.words.append(x)
    h["outer"]["inner"]["words"].append(x)
    return f"outer.inner.words.append({x!r})"


@_m(("outer",))
def outer_label(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(WORDS)
    obj.outer.label = x
    h["outer"]["label"] = x
    return f"outer.label = {x!r}"


@_m(("refs",))
def refs_append_doc(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    oid = draw(st.sampled_from(m.others))
    other = m.s.get(MdOther, oid)
    assert other is not None
    obj.refs.append(other)  # type: ignore[arg-type]
    h["refs"].append(oid)
    return f"refs.append(s.get(MdOther, {m.other_names[oid]}))"


@_m(("refs",))
def refs_append_id(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    oid = draw(st.sampled_from(m.others))
    obj.refs.append(oid)  # type: ignore[arg-type]
    h["refs"].append(oid)
    return f"refs.append({m.other_names[oid]})"


@_m(("extra_list",))
def extra_list_append(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(WORDS)
    obj.extra_list.append(x)
    h["extra_list"].append(x)
    return f"extra_list.append({x!r})  # default ['a']"


@_m(("extra_emb",))
def extra_emb_n(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    k = draw(DELTA)
    obj.extra_emb.n += k
    h["extra_emb"]["n"] += k
    return f"extra_emb.n += {k}  # default MdInner(n=1, words=['w'])"


@_m(("extra_emb",))
def extra_emb_words(m: NothingLost, obj: MdDoc, h: dict[str, Any], draw: Any) -> str:
    x = draw(WORDS)
    obj.extra_emb.words.append(x)
    h["extra_emb"]["words"].append(x)
    return f"extra_emb.words.append({x!r})"


# ----------------------------------------------------------------- the lanes


def _settings(request: pytest.FixtureRequest) -> settings:
    if request.config.getoption("hypothesis_profile", None):
        return settings()  # the profile asked for on the command line
    return settings.get_profile("ci")


def _run(db: Any, request: pytest.FixtureRequest) -> None:
    transactional = not isinstance(db, mongomock.Database)
    machine = type(
        "NothingLostOn" + ("Transactions" if transactional else "Mongomock"),
        (NothingLost,),
        {"lane": {"db": db, "transactional": transactional}},
    )
    run_state_machine_as_test(machine, settings=_settings(request))


def test_nothing_lost(db: Any, request: pytest.FixtureRequest) -> None:
    """Issue #17: random programs never lose or misplace a change, on each lane."""
    _run(db, request)
