"""Document and Embedded: the bases of model classes.

A class statement deriving from :class:`Document` or :class:`Embedded` becomes a
slotted attrs class (``attrs.fields(User)`` works), built by the metaclass in
``_model``: its annotations are parsed once into ``TypeSpec`` objects
(``_types``), what uow knows of it is kept in a ``ModelMeta`` (``_meta``), and its
``__init__``, ``from_dict``, dump and loader are generated for it (``_codegen``),
as attrs generates ``__init__``.

Class attributes are query fields (``User.visits > 10``): each class gets its own
metaclass carrying one descriptor per field, so instances keep attrs' C-speed slot
access while ``User.visits`` answers with a ``query.QueryField``.

The names other modules import from here stay here: ``Ref`` (``_ref``),
``Index`` (``_model``), ``FieldMeta``, ``ModelMeta`` and ``collection_name``
(``_meta``) are re-exported.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

import bson

from ._ids import new_object_id

# ``X as X``: re-exported (for mypy's strict mode) to the modules importing them here.
from ._meta import FieldMeta as FieldMeta  # noqa: PLC0414
from ._meta import ModelMeta as ModelMeta  # noqa: PLC0414
from ._meta import collection_name
from ._model import Index, _ModelMeta
from ._ref import Ref
from ._runtime import (
    _check_deep_partial,
    _member_setter,
    _run_user_validator,
)
from ._runtime import (
    _mutated_partial as _mutated_partial,  # noqa: PLC0414
)
from ._stored import copy_stored
from ._types import DEFAULT_LOAD_CONTEXT, INT64_MAX, INT64_MIN, LoadContext
from .exceptions import FieldNotLoaded
from .fields import field

if TYPE_CHECKING:
    import attrs

    from ._state import DocState

__all__ = ["Document", "Embedded", "Index", "Ref", "collection_name"]


def _assign(obj: _BaseModel, name: str, value: Any) -> FieldMeta | None:
    """Set attribute ``name``: a field's value is converted, checked, validated.

    Returns the field (None for another attribute). A value of the field's exact
    type passes with one ``type(...) is`` test, as in the generated ``__init__``.
    """
    field: FieldMeta | None = obj._uow_setters.get(name)
    if field is None:
        object.__setattr__(obj, name, value)
        return None
    if field.convert is not None:
        value = field.convert(value)
    if type(value) is not field.fast_type:
        if not (value is None and field.fast_optional):
            field.spec.check(type(obj).__name__, name, value)
    elif field.fast_range and not INT64_MIN <= cast(int, value) <= INT64_MAX:
        field.spec.check(type(obj).__name__, name, value)
    for validator in field.validators:
        _run_user_validator(validator, obj, field.attribute, value)
    object.__setattr__(obj, name, value)
    absent = obj._uow_absent
    if absent and name in absent:
        object.__setattr__(obj, "_uow_absent", absent - {name} or None)
    return field


def _refuse_not_loaded(obj: _BaseModel, name: str) -> Any:
    """``__getattr__`` of a class whose instances may have empty slots: reached
    only when a slot is empty, a field left out of a partial load."""
    if name in getattr(type(obj), "_uow_setters", {}):
        raise FieldNotLoaded(
            f"{type(obj).__name__}.{name} was not loaded: the query selected other "
            "fields with .fields(...), or the stored document has no such key and the "
            "field has no default. Load it with refresh(), or assign it."
        )
    found = inspect.getattr_static(type(obj), name, None)
    if found is not None and hasattr(type(found), "__get__"):
        # A property (or another descriptor) raised AttributeError, say the
        # FieldNotLoaded of a field it reads: CPython dropped that error to call
        # __getattr__. Run it again so its own error reaches the caller.
        return found.__get__(obj, type(obj))
    raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")


def _read_expired_or_refuse(obj: _DocumentBase, name: str) -> Any:
    """``__getattr__`` of a Document class whose instances may have empty slots. A
    field the server set at the last flush ($currentDate) is empty until read: the
    session loads it now; any other empty field was not loaded."""
    state: DocState | None
    try:
        state = object.__getattribute__(obj, "_uow_state")
    except AttributeError:
        state = None
    if state is not None and state.expired and state.owner is not None:
        field = obj._uow_meta.by_name.get(name)
        if field is not None and field.key in state.expired:
            state.owner.on_expired_read(obj, state)
            return object.__getattribute__(obj, name)
    return _refuse_not_loaded(obj, name)


#: The ``__getattr__`` hooks uow installs (see ``_BaseModel._uow_allow_empty_slots``).
_HOOKS: set[Callable[[Any, str], Any]] = {_refuse_not_loaded, _read_expired_or_refuse}


def _fields_first(own: Callable[[Any, str], Any], ours: Callable[[Any, str], Any]) -> Any:
    """A ``__getattr__`` that answers an empty field slot as uow does (``ours``) and
    hands every other name to the class's own ``__getattr__`` (``own``)."""

    @functools.wraps(own)
    def hook(obj: Any, name: str) -> Any:
        if name in getattr(type(obj), "_uow_setters", {}):
            return ours(obj, name)
        return own(obj, name)

    _HOOKS.add(hook)
    return hook


class _BaseModel:
    """What Document and Embedded share: validated assignment, BSON in and out."""

    __slots__ = ("_uow_absent", "_uow_extra")
    if TYPE_CHECKING:  # the slots' types; the metaclass does not build this class,
        # so its annotations are no fields (no __init__ parameters)
        #: the fields a partial load left out (None: none)
        _uow_absent: frozenset[str] | None
        #: the stored keys the class does not declare, written back as they were
        _uow_extra: dict[str, Any] | None
    _uow_base_class = True
    # What the layers below (which cannot import this module) test a class by.
    _uow_document: ClassVar[bool] = False
    _uow_embedded: ClassVar[bool] = False
    _uow_meta: ClassVar[ModelMeta]
    _uow_setters: ClassVar[dict[str, FieldMeta]]
    if TYPE_CHECKING:
        # A model class is an attrs class: attrs.fields(User) type-checks too
        # (attrs' AttrsInstance protocol asks for this attribute).
        __attrs_attrs__: ClassVar[Any]

    if not TYPE_CHECKING:  # hidden from type checkers: an assignment to a name
        # the class does not declare is then reported, as a read is
        def __setattr__(self, name: str, value: Any) -> None:
            _assign(self, name, value)

    def __getstate__(self) -> dict[str, Any]:
        # For copy and pickle: the loaded fields, the unknown stored keys, and which
        # fields a partial load left out; never a session's tracking state.
        absent = self._uow_absent or ()
        state = {
            f.name: object.__getattribute__(self, f.name)
            for f in self._uow_meta.fields
            if f.name not in absent
        }
        state["_uow_extra"] = self._uow_extra
        state["_uow_absent"] = self._uow_absent
        return state

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        if state.get("_uow_absent"):
            type(self)._uow_allow_empty_slots()
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @classmethod
    def _uow_allow_empty_slots(cls) -> None:
        """Make reads of this class's empty field slots answer (``FieldNotLoaded``, or a
        load of an expired field) from now on: called before an instance of ``cls``
        first has an empty slot (a partial load, a key stored absent, an expiry).

        The hook is installed on the class then, not declared in its body: a class
        defining ``__getattr__`` makes CPython read every attribute of every instance
        on its slow path (about 4.6 times the instructions of a slot read), a cost
        classes whose instances never have an empty slot do not pay. A class with
        its own ``__getattr__`` (the user's) keeps it for every name that is not a
        field: a field not loaded raises ``FieldNotLoaded`` all the same.
        """
        ours = _read_expired_or_refuse if cls._uow_document else _refuse_not_loaded
        own = getattr(cls, "__getattr__", None)
        if own is None:
            type.__setattr__(cls, "__getattr__", ours)
        elif own not in _HOOKS:
            type.__setattr__(cls, "__getattr__", _fields_first(own, ours))

    def __repr__(self) -> str:
        absent = self._uow_absent or ()
        parts = []
        for f in self._uow_meta.fields:
            if not f.attribute.repr:
                continue
            shown = "<not loaded>" if f.name in absent else repr(getattr(self, f.name))
            parts.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @classmethod
    def from_dict(cls: type[M], data: Mapping[str, Any]) -> M:
        """An instance built from a mapping of field names to values, as
        ``cls(**data)`` builds it: the same checks, defaults, validators and errors.

        A mapping given for an embedded document (alone, in a list, or as a value
        of a ``dict[str, ...]`` field) is built with that class's ``from_dict``, so
        a nested payload (parsed JSON, say) becomes a document in one call. Keys
        are the field names (``id``, not ``_id``); values are taken as they are,
        not parsed (a date must already be a ``datetime``).

        Faster than ``cls(**data)`` for keys built at run time: Python matches
        each keyword against every parameter name by comparing strings.

        Raises:
            TypeError: ``data`` is not a mapping, has a key that is not a field,
                or lacks a field that has no default.
            ValidationError: a value does not fit its field.
        """
        raise NotImplementedError  # generated per class (see _codegen.from_dict_script)

    # Replaced per class by generated code (see _codegen).
    def _uow_to_bson(self) -> dict[str, Any]:
        raise NotImplementedError

    def _uow_snapshot(self) -> dict[str, Any]:
        """``_diff.snapshot_of(meta, self._uow_to_bson())``: the stored form, sharing no
        list or dict with ``self``.

        Replaced per class by generated code (see _codegen.snapshot_script).
        """
        raise NotImplementedError

    @classmethod
    def _uow_load(
        cls: type[M],
        raw: Mapping[str, Any],
        ctx: LoadContext = DEFAULT_LOAD_CONTEXT,
        absent: frozenset[str] | None = None,
    ) -> M:
        """An instance from a stored document, of the subclass its ``_cls`` names.

        Replaced per class by generated code (see _codegen.load_script).
        """
        raise NotImplementedError

    def _uow_check_deep(self, owner: str, path: str) -> None:
        """Check the fields that can change in place (assignments were checked already).

        Replaced per class by generated code (see _codegen.check_deep_script).
        """
        _check_deep_partial(self, owner, path)

    def _uow_insert_form(self) -> dict[str, Any]:
        """``_uow_check_deep(name, "")`` then ``_uow_snapshot()``: what an insert sends.

        Replaced per class by generated code (see _codegen.insert_form_script).
        """
        self._uow_check_deep(type(self)._uow_meta.name, "")
        return self._uow_snapshot()

    def _uow_plain_sets(self, snapshot: Mapping[str, Any], assigned: int) -> dict[str, Any] | None:
        """The ``$set`` of a document changed only by assignments of plain fields, or
        None (see _codegen.plain_sets_script).

        Replaced per class by generated code.
        """
        return None

    def _uow_mutated(self, snapshot: Mapping[str, Any]) -> bool:
        """Whether a field that can change in place differs from ``snapshot``.

        Replaced per class by generated code (see _codegen.mutated_script).
        """
        return _mutated_partial(self, snapshot)


M = TypeVar("M", bound=_BaseModel)


class Embedded(_BaseModel, metaclass=_ModelMeta):
    """Base of nested documents: stored inside a Document, compared by value.

    Subclasses are attrs classes built from their annotations, like Document's,
    with no ``id`` and no collection. Keys of the stored form that the class does
    not declare are kept and written back untouched.
    """

    # An instance of a class with nothing that changes in place keeps its last dump
    # (None: none kept), until an assignment: dumping for each flush and each
    # "did it change?" is then free, and an unchanged value is the very dict of
    # the snapshot. Nothing may change a kept dump in place.
    __slots__ = ("_uow_dumped",)
    if TYPE_CHECKING:  # the slot's type (False: dump when first needed); see _DocumentBase
        _uow_dumped: dict[str, Any] | Literal[False] | None = attrs.field(init=False)
    _uow_base_class = True
    _uow_embedded = True

    if not TYPE_CHECKING:  # hidden from type checkers: an assignment to a name
        # the class does not declare is then reported, as a read is
        def __setattr__(self, name: str, value: Any) -> None:
            _assign(self, name, value)
            object.__setattr__(self, "_uow_dumped", None)

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_uow_dumped", None)
        _BaseModel.__setstate__(self, state)

    def to_bson(self) -> dict[str, Any]:
        """The stored form of this value (what pymongo is given)."""
        doc = self._uow_to_bson()
        return copy_stored(doc) if self._uow_meta.shares_dumps else doc

    @classmethod
    def from_bson(
        cls: type[M], raw: Mapping[str, Any], *, tz_aware: bool = False, timezone: Any = None
    ) -> M:
        """An instance from its stored form; unknown keys are kept."""
        ctx = (
            DEFAULT_LOAD_CONTEXT
            if not tz_aware and timezone is None
            else LoadContext(tz_aware, timezone)
        )
        return cls._uow_load(raw, ctx)


#: How a copy of a stored document (``copy``, ``deepcopy``, ``pickle``) carries
#: what is stored and gets it back, so that ``add()`` of the copy in a session
#: writes its changes over the stored document, as ``add()`` of the detached
#: original would (SPEC: a ``DETACHED`` document is "not tracked ..., though it
#: was stored"). ``stored_of(doc)`` gives what to carry (None: nothing, a new
#: document's copy is new too); ``restore(copy, carried)`` gives the copy a
#: detached state. The tracking state belongs to ``_state``, above this module,
#: which puts its two functions here when it is imported.
STORED_COPIES: dict[str, Callable[..., Any]] = {
    "stored_of": lambda doc: None,
    "restore": lambda doc, carried: None,
}


class _DocumentBase(_BaseModel, metaclass=_ModelMeta):
    __slots__ = ("__weakref__", "_uow_state")
    if TYPE_CHECKING:
        # The slot's type, for type checkers only. On a class the metaclass builds, an
        # annotation is a dataclass_transform field, an __init__ parameter, unless
        # one of its field specifiers says init=False: attrs.field does (PEP 681).
        #: the session's record of this document (None: tracked by no session)
        _uow_state: DocState | None = attrs.field(init=False)
    _uow_base_class = True
    _uow_document = True

    def __getstate__(self) -> dict[str, Any]:
        # A copy of a stored document carries what is stored (see STORED_COPIES),
        # asked first: it may read fields the server set, which the state then has.
        stored = STORED_COPIES["stored_of"](self)
        state = _BaseModel.__getstate__(self)
        if stored is not None:
            state["_uow_stored"] = stored
        return state

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        fields = dict(state)
        stored = fields.pop("_uow_stored", None)
        object.__setattr__(self, "_uow_state", None)  # a copy is tracked by no session
        _BaseModel.__setstate__(self, fields)
        if stored is not None:
            STORED_COPIES["restore"](self, stored)

    if not TYPE_CHECKING:  # hidden from type checkers: an assignment to a name
        # the class does not declare is then reported, as a read is
        def __setattr__(self, name: str, value: Any) -> None:
            field = self._uow_setters.get(name)
            if (
                field is not None
                and type(value) is field.quick_type
                and not (field.fast_range and not INT64_MIN <= value <= INT64_MAX)
                and not self._uow_absent
            ):
                # _assign's common case inline: a call less per assignment.
                object.__setattr__(self, name, value)
            else:
                field = _assign(self, name, value)
            if field is not None:
                state = self._uow_state
                # The state's fields, read here: a call less per assignment.
                if state is not None:
                    if state.modified:
                        if state.assigned is not None:  # (None: compared whole anyway)
                            state.assigned |= field.bit
                    elif state.owner is not None:
                        state.owner.on_modified(self, state, field.bit)

    def __del__(self) -> None:
        # A document the user dropped may hold a change found by no one yet (an
        # in-place mutation after the identity map let go of it): the session gets
        # one look at it before it goes, and keeps it if it changed.
        try:
            state = self._uow_state
            if state is not None and state.owner is not None:
                state.dropped(self)
        except Exception:  # never raise from a finalizer
            pass


#: Sets a document's ``_uow_state`` slot: ``object.__setattr__`` does the same for
#: twice the cost, paid per document on every load and close.
set_state: Callable[[_DocumentBase, DocState | None], None] = _member_setter(
    _DocumentBase, "_uow_state"
)


class Document(_DocumentBase):
    """Base of stored documents: one per MongoDB document, compared by identity.

    Subclasses are attrs classes built from their annotations (keyword-only
    arguments). Every document has an ``id`` stored as ``_id``: a client-side
    ``bson.ObjectId`` unless the class declares another type. Class attributes are
    query fields: ``User.visits > 10``.

    Class options: ``__collection__`` (default: the class name in snake_case),
    ``__indexes__`` (a list of :class:`Index`), ``__shard_key__`` (field names),
    ``__abstract__`` (no collection; subclasses each start their own).

    Raises:
        DefinitionError: when the class is declared wrongly.
        ValidationError: when a value does not fit its field.
    """

    __abstract__ = True
    id: bson.ObjectId = field(factory=new_object_id)

    def to_bson(self) -> dict[str, Any]:
        """The stored form of this document (what pymongo is given), ``_id`` first."""
        doc = self._uow_to_bson()
        return copy_stored(doc) if self._uow_meta.shares_dumps else doc

    @classmethod
    def from_bson(
        cls: type[M], raw: Mapping[str, Any], *, tz_aware: bool = False, timezone: Any = None
    ) -> M:
        """A detached instance from a stored document; unknown keys are kept.

        ``raw`` with a ``_cls`` naming a subclass gives an instance of it.
        """
        ctx = (
            DEFAULT_LOAD_CONTEXT
            if not tz_aware and timezone is None
            else LoadContext(tz_aware, timezone)
        )
        return cls._uow_load(raw, ctx)


# Document itself is built by the metaclass; make its own metadata an abstract root.
Document._uow_meta.abstract = True
Document._uow_meta.collection = None
