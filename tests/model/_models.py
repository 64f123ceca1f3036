"""The document classes of the model-based tests, and their plain-Python twin.

Every field is described once in :data:`SCHEMA` by the kind of change it
takes (a plain ``$set`` field, a declared operator, a list, a dict of lists…);
the model in ``test_stateful.py`` computes what must be stored from that
description and SPEC.md ("The one rule every write obeys"), never from ``uow``.

Values in the model are kept in *stored form*: embedded documents as dicts,
``Ref``s as ids, sets as Python sets (compared to stored arrays as sets).

Not modelled: ``$currentDate`` (the value is decided by the server clock, so no
field of these classes uses it); ``$min`` (the mirror of ``$max``, which is).
"""

from __future__ import annotations

import copy
from typing import Any

import bson

from uow import Document, Embedded, Ref, field


class MdOther(Document):
    """The target of ``MdDoc.refs``."""

    __collection__ = "md_others"

    name: str = ""


class MdLine(Embedded):
    """An embedded document held in a list (``lines``) and a dict (``by_sku``)."""

    sku: str
    qty: int = 0
    tags: list[str] = field(factory=list)
    hits: int = field(default=0, on_update="$inc")
    peak: int = field(default=0, on_update="$max")
    log: list[str] = field(factory=list, on_update="$push")
    kinds: list[str] = field(factory=list, on_update="$addToSet")


class MdInner(Embedded):
    n: int = 0
    words: list[str] = field(factory=list)


class MdOuter(Embedded):
    inner: MdInner = field(factory=MdInner)
    label: str = ""


def _default_extra_emb() -> MdInner:
    return MdInner(n=1, words=["w"])


def _default_extra_list() -> list[str]:
    return ["a"]


class MdDoc(Document):
    __collection__ = "md_docs"

    name: str
    n: int = 0
    visits: int = field(default=0, on_update="$inc")
    best: int = field(default=0, on_update="$max")
    log: list[str] = field(factory=list, on_update="$push")
    kinds: list[str] = field(factory=list, on_update="$addToSet")
    tags: list[str] = field(factory=list)
    labels: set[str] = field(factory=set)
    lines: list[MdLine] = field(factory=list)
    by_key: dict[str, list[str]] = field(factory=dict)
    by_sku: dict[str, MdLine] = field(factory=dict)
    outer: MdOuter = field(factory=MdOuter)
    refs: list[Ref[MdOther]] = field(factory=list)
    # "Added to the class later", with non-empty defaults: raw documents
    # inserted by the test often lack these keys (and any of the above but name).
    extra_n: int = field(default=5, on_update="$inc")
    extra_list: list[str] = field(factory=_default_extra_list)
    extra_emb: MdInner = field(factory=_default_extra_emb)


# --------------------------------------------------------------------- schema

LINE: dict[str, Any] = {
    "sku": "plain",
    "qty": "plain",
    "tags": "list",
    "hits": "inc",
    "peak": "max",
    "log": "push",
    "kinds": "addToSet",
}
INNER: dict[str, Any] = {"n": "plain", "words": "list"}
OUTER: dict[str, Any] = {"inner": ("emb", INNER), "label": "plain"}

SCHEMA: dict[str, Any] = {
    "name": "plain",
    "n": "plain",
    "visits": "inc",
    "best": "max",
    "log": "push",
    "kinds": "addToSet",
    "tags": "list",
    "labels": "set",
    "lines": ("list_emb", LINE),
    "by_key": "dict_list",
    "by_sku": ("dict_emb", LINE),
    "outer": ("emb", OUTER),
    "refs": "list",
    "extra_n": "inc",
    "extra_list": "list",
    "extra_emb": ("emb", INNER),
}
FIELDS = list(SCHEMA)


def line_form(sku: str, **values: Any) -> dict[str, Any]:
    form = {"sku": sku, "qty": 0, "tags": [], "hits": 0, "peak": 0, "log": [], "kinds": []}
    form.update(values)
    return form


DEFAULTS: dict[str, Any] = {
    "n": 0,
    "visits": 0,
    "best": 0,
    "log": [],
    "kinds": [],
    "tags": [],
    "labels": set(),
    "lines": [],
    "by_key": {},
    "by_sku": {},
    "outer": {"inner": {"n": 0, "words": []}, "label": ""},
    "refs": [],
    "extra_n": 5,
    "extra_list": ["a"],
    "extra_emb": {"n": 1, "words": ["w"]},
}


def default(name: str) -> Any:
    return copy.deepcopy(DEFAULTS[name])


# ------------------------------------------------------- objects <-> stored form


def form_of(kind: Any, value: Any) -> Any:
    """The stored form of a value a document holds (independent of uow's dump)."""
    if value is None:
        return None
    if isinstance(kind, tuple):
        tag, sub = kind
        if tag == "emb":
            return {k: form_of(sub[k], getattr(value, k)) for k in sub}
        if tag == "list_emb":
            return [form_of(("emb", sub), v) for v in value]
        if tag == "dict_emb":
            return {k: form_of(("emb", sub), v) for k, v in value.items()}
    if kind == "set":
        return set(value)
    if kind == "dict_list":
        return {k: list(v) for k, v in value.items()}
    if kind in ("list", "push", "addToSet"):
        return [_ref_id(v) for v in value]
    return value


def _ref_id(value: Any) -> Any:
    if isinstance(value, (Document, Ref)):
        return value.id
    return value


def line_obj(form: dict[str, Any]) -> MdLine:
    return MdLine(**copy.deepcopy(form))


def inner_obj(form: dict[str, Any]) -> MdInner:
    return MdInner(**copy.deepcopy(form))


def outer_obj(form: dict[str, Any]) -> MdOuter:
    return MdOuter(inner=inner_obj(form["inner"]), label=form["label"])


def value_obj(name: str, form: Any) -> Any:
    """A value to assign to ``MdDoc.<name>``, built from its stored form."""
    kind = SCHEMA[name]
    form = copy.deepcopy(form)
    if name == "lines":
        return [line_obj(v) for v in form]
    if name == "by_sku":
        return {k: line_obj(v) for k, v in form.items()}
    if name == "outer":
        return outer_obj(form)
    if name == "extra_emb":
        return inner_obj(form)
    if kind == "set":
        return set(form)
    return form


def stored_comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document with its set-valued arrays made sets (their order is free)."""
    out = dict(doc)
    if isinstance(out.get("labels"), list):
        out["labels"] = set(out["labels"])
    return out


def new_id() -> bson.ObjectId:
    return bson.ObjectId()
