"""The methods generated for each model class, in the manner of attrs' ``_make.py``.

Each ``*_script`` function is pure: it takes the class and its ``ModelMeta`` and
returns ``(script, globals)``, the source of one method and the names it uses.
``class_script`` joins them into one script per class, and ``compile_methods``
compiles it once, under a file name of its own registered in ``linecache``, so
tracebacks show the generated lines and ``inspect.getsource`` reads them.

The globals a script names are called after the fields (``_default_visits``,
``_check_tags``); the fixed ones never start with a field prefix
(``_check_``, ``_type_``, ``_default_``, ``_factory_``, ``_convert_``, ``_user_``,
``_attribute_``, ``_nested_``, ``_from_dict_``, ``_dump_``, ``_class_``,
``_load_``, ``_set_``, ``_items_``, ``_snapshot_``), and ``class_script`` refuses
two meanings for one name.

The methods sit on every flush and load, so they are straight-line code with no
loop over field metadata: values of the exact expected type pass with one
``type(...) is`` test, and instances are built as the class's plain twin (see
``_model._plain_twin``) so that their slots are filled at bytecode speed.
"""

from __future__ import annotations

import datetime
import inspect
import itertools
import linecache
import operator
import types
from collections.abc import Callable
from typing import Any

import attrs

from ._diff import snapshot_of
from ._meta import FieldMeta, ModelMeta, _fast_type
from ._runtime import (
    _check_deep_partial,
    _embedded_from_mappings,
    _load_other_class,
    _mapping_argument,
    _member_setter,
    _missing_keys,
    _missing_keywords,
    _mutated_partial,
    _run_user_validator,
    _set_class,
    _to_bson_partial,
    _unexpected_keys,
    _unexpected_keywords,
    _unshared,
)
from ._stored import EQ_EXACT, IMMUTABLE, copy_stored
from ._types import (
    DEFAULT_LOAD_CONTEXT,
    INT64_MAX,
    INT64_MIN,
    DatetimeSpec,
    EmbeddedSpec,
    ListSpec,
    OptionalSpec,
    ScalarSpec,
    TypeSpec,
    to_millisecond,
)
from .exceptions import FieldNotLoaded
from .operators import MISSING, same

__all__: list[str] = []  # private module

Script = tuple[str, dict[str, Any]]

#: Above this many fields, __init__ takes **kwargs and looks each one up: CPython
#: binds named keyword arguments by comparing each with every parameter name, so
#: a call with 250 keys built at run time (from JSON, say) cost ~300 µs.
_MANY_PARAMETERS = 16

#: Numbers the generated file names: a class defined again (a reloaded module, a
#: test run twice) gets a file of its own, and tracebacks of the old one still read.
_scripts = itertools.count(1)


# -------------------------------------------------------------------- compiling


def class_script(cls: type, meta: ModelMeta, twin: type | None) -> Script:
    """The one script of ``cls``: every generated method, and their globals."""
    parts = [
        init_script(cls, meta, twin),
        from_dict_script(cls, meta, twin),
        to_bson_script(cls, meta),
        snapshot_script(meta),
        check_deep_script(meta),
        insert_form_script(meta),
        mutated_script(meta),
        plain_sets_script(meta),
        load_script(cls, meta, twin),
    ]
    globs: dict[str, Any] = {}
    for _, part in parts:
        for name, value in part.items():
            old = globs.setdefault(name, value)
            if old is not value and not (type(old) is type(value) and old == value):
                raise AssertionError(f"generated code for {cls.__qualname__}: two {name}")
    return "\n\n".join(script for script, _ in parts), globs


def compile_methods(cls: type, script: str, globs: dict[str, Any]) -> dict[str, Any]:
    """Compile ``script`` once, registered in ``linecache`` under a unique file name,
    and return its functions, each with the ``__module__`` and ``__qualname__`` of a
    method of ``cls``."""
    filename = f"<uow generated {cls.__module__}.{cls.__qualname__} #{next(_scripts)}>"
    # A fake file for linecache: tracebacks, pdb and inspect.getsource read it.
    # (mtime None: linecache.checkcache leaves it be.)
    linecache.cache[filename] = (len(script), None, script.splitlines(True), filename)
    namespace = {**globs, "__name__": cls.__module__}
    exec(compile(script, filename, "exec"), namespace)
    functions = {
        name: value
        for name, value in namespace.items()
        if name not in globs and isinstance(value, types.FunctionType)
    }
    for function in functions.values():
        function.__module__ = cls.__module__
        function.__qualname__ = f"{cls.__qualname__}.{function.__name__}"
    return functions


# -------------------------------------------------------------------- building


class _SlotWriter:
    """How generated code stores into the slots of the instance it builds.

    A model class overrides ``__setattr__`` (assignments are validated and
    tracked), so ``obj.x = v`` in generated code would run it. The code builds
    the instance as the class's plain twin instead (see ``_model._plain_twin``):
    stores then run at bytecode speed, ~40 ns a slot less than a call to the
    slot's own setter, which is what is left where there is no twin.
    """

    def __init__(self, cls: type, env: dict[str, Any], target: str, twin: type | None) -> None:
        self.cls = cls
        self.env = env
        self.target = target
        self.twin = twin

    def store(self, name: str, value: str) -> str:
        if self.twin is not None:
            return f"{self.target}.{name} = {value}"
        setter = f"_set_{name}"
        self.env[setter] = _member_setter(self.cls, name)
        return f"{setter}({self.target}, {value})"


def _exact_items(spec: TypeSpec) -> frozenset[type] | None:
    """For a list of scalars (``list[str]``), the item types that pass its check as
    they are: a list holding only those is valid, told in C by one ``issuperset``
    instead of the spec's ``check`` (~250 ns a list, on every construction and flush).
    None for any other spec: its ``check`` decides."""
    if type(spec) is not ListSpec or type(spec.inner) is not ScalarSpec:
        return None
    exact = spec.inner.exact
    if spec.inner.int_range:
        exact = exact - {int}  # an int must still be tested against the int64 range
    return exact or None


def _exact_list_test(f: FieldMeta, value: str, env: dict[str, Any]) -> str | None:
    """The expression that is true unless ``value`` is a list whose items all pass
    ``f``'s check as they are (see ``_exact_items``); None where there is none."""
    exact = _exact_items(f.spec)
    if exact is None:
        return None
    env["_list"] = list
    env[f"_items_{f.name}"] = exact
    return f"type({value}) is not _list or not _items_{f.name}.issuperset(map(type, {value}))"


def _constructor_body(
    cls: Any, meta: ModelMeta, twin: type | None, env: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """The parameters of a generated constructor and the lines that check and store
    them into ``self`` (each parameter a local of the same name).

    Values of the exact expected type pass with one ``type(...) is`` test; anything
    else goes to the field's full check, which accepts subclasses and raises
    ``ValidationError`` for the rest. ``env`` receives what the lines name.
    """
    env.update(
        {
            "_NOTHING": attrs.NOTHING,
            "_run_user": _run_user_validator,
            "_owner": cls.__name__,
            "_cls": cls,
            "_twin": twin,
            "_set_class": _set_class,
        }
    )
    slots = _SlotWriter(cls, env, "self", twin)
    params: list[str] = []
    body = [slots.store("_uow_absent", "None"), slots.store("_uow_extra", "None")]
    if cls._uow_document:
        body.append(slots.store("_uow_state", "None"))
    keeps_dump = meta.keeps_dump and all(f.fast_type is not None for f in meta.fields)
    if keeps_dump:
        # False: no dump kept yet, and every value is of its field's exact type, so
        # immutable (see to_bson_script); None, set when a value is not.
        body.append("_dumped = False")
    for f in meta.fields:
        arg = f.attribute.alias or f.name
        default = f.attribute.default
        env[f"_check_{f.name}"] = f.spec.check
        if default is attrs.NOTHING:
            params.append(arg)
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            assert default is not None
            params.append(f"{arg}=_NOTHING")
            env[f"_factory_{f.name}"] = default.factory
            call = f"_factory_{f.name}(self)" if default.takes_self else f"_factory_{f.name}()"
            body += [f"if {arg} is _NOTHING:", f"    {arg} = {call}"]
        else:
            env[f"_default_{f.name}"] = default
            params.append(f"{arg}=_default_{f.name}")
        if f.convert is to_millisecond:
            # Its common case, a datetime to the millisecond already, without a call.
            env[f"_convert_{f.name}"] = f.convert
            env["_datetime"] = datetime.datetime
            body += [
                f"if type({arg}) is not _datetime or {arg}.microsecond % 1000:",
                f"    {arg} = _convert_{f.name}({arg})",
            ]
        elif f.convert is not None:
            env[f"_convert_{f.name}"] = f.convert
            body.append(f"{arg} = _convert_{f.name}({arg})")
        fast, optional, ranged = _fast_type(f.spec)
        full = f"_check_{f.name}(_owner, {f.name!r}, {arg})"
        if fast is not None:
            env[f"_type_{f.name}"] = fast
            test = f"type({arg}) is not _type_{f.name}"
            if ranged:
                test = f"({test} or not {INT64_MIN} <= {arg} <= {INT64_MAX})"
            if optional:
                test = f"{arg} is not None and {test}"
            body += [f"if {test}:", f"    {full}"]
            if keeps_dump:
                body.append("    _dumped = None")
        elif (listed := _exact_list_test(f, arg, env)) is not None:
            body += [f"if {listed}:", f"    {full}"]
        else:
            body.append(full)
        body.append(slots.store(f.name, arg))
    if not cls._uow_document:
        body.append(slots.store("_uow_dumped", "_dumped" if keeps_dump else "None"))
    if twin is not None:
        # On failure the half-built instance is a ``cls`` again, as it was given.
        body = [
            "try:",
            *("    " + line for line in body),
            "except BaseException:",
            "    self.__class__ = _cls",
            "    raise",
            "self.__class__ = _cls",
        ]
    for f in meta.fields:
        for number, validator in enumerate(f.validators):
            env[f"_user_{f.name}_{number}"] = validator
            env[f"_attribute_{f.name}"] = f.attribute
            body.append(
                f"_run_user(_user_{f.name}_{number}, self, _attribute_{f.name}, self.{f.name})"
            )
    if hasattr(cls, "__attrs_post_init__"):
        body.append("self.__attrs_post_init__()")
    return params, body


def init_script(cls: Any, meta: ModelMeta, twin: type | None) -> Script:
    """``__init__``: keyword-only, each field's type check inlined.

    With a ``twin``, the instance is the twin while its slots are filled; an
    instance of another class (a subclass's own ``__init__`` calling this one) is
    built by ``_init_other_instance``, which stores through the slots' setters.
    """
    env: dict[str, Any] = {}
    params, body = _constructor_body(cls, meta, twin, env)
    script = _init_function("__init__", params, body, env)
    if twin is not None:
        slow_params, slow_body = _constructor_body(cls, meta, None, env)
        env["_twin"] = twin  # (the call above put None there)
        arguments = ", ".join(f"{p.partition('=')[0]}={p.partition('=')[0]}" for p in params)
        body = [
            "if type(self) is not _cls:",
            f"    return _init_other_instance(self, {arguments})",
            "_set_class(self, _twin)",
            *body,
        ]
        script = (
            _init_function("__init__", params, body, env)
            + "\n\n"
            + _init_function("_init_other_instance", slow_params, slow_body, env)
        )
    return script, env


def _init_function(name: str, params: list[str], body: list[str], env: dict[str, Any]) -> str:
    if len(params) > _MANY_PARAMETERS:
        signature, prologue = _keywords_taken_from_a_dict(params, env)
    else:
        signature, prologue = (", ".join(["self", "*", *params]) if params else "self"), []
    lines = prologue + ["    " + line for line in body]
    return f"def {name}({signature}):\n" + "\n".join(lines) + "\n"


def init_signature(meta: ModelMeta) -> inspect.Signature | None:
    """What ``inspect.signature`` shows for an ``__init__`` taking ``**kwargs`` (None
    for the others: their own signature says it)."""
    if len(meta.fields) <= _MANY_PARAMETERS:
        return None
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for f in meta.fields:
        default = f.attribute.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = attrs.NOTHING  # as the generated signature: a factory's marker
        elif default is attrs.NOTHING:
            default = inspect.Parameter.empty
        parameters.append(
            inspect.Parameter(
                f.attribute.alias or f.name, inspect.Parameter.KEYWORD_ONLY, default=default
            )
        )
    return inspect.Signature(parameters)


def from_dict_script(cls: Any, meta: ModelMeta, twin: type | None) -> Script:
    """``from_dict(cls, data)``: ``__init__``'s checks, each argument taken from
    ``data`` by name (a call with ``**data`` makes CPython match every key against
    every parameter name by comparing strings: ~1.2 µs for 15 keys that came from
    JSON), and a mapping given for an embedded document built with that class's
    ``from_dict``."""
    env: dict[str, Any] = {}
    params, body = _constructor_body(cls, meta, twin, env)
    env.update(
        {
            "_new": object.__new__,
            "_dict": dict,
            "_as_dict": _mapping_argument,
            "_unexpected_keys": _unexpected_keys,
            "_missing_keys": _missing_keys,
            "_ARGS": frozenset(p.partition("=")[0] for p in params),
        }
    )
    lines = [
        "def from_dict(cls, data):",
        "    if type(data) is not _dict:",
        "        data = _as_dict(_cls, data)",
        "    if not _ARGS.issuperset(data):",
        "        _unexpected_keys(_cls, data, _ARGS)",
        "    get = data.get",
    ]
    binding, checking = _arguments_from_a_dict(params, "get", "_missing_keys(_cls, ")
    lines += binding
    for f, param in zip(meta.fields, params, strict=True):
        name = param.partition("=")[0]
        build = _embedded_from_mappings(f.spec)
        if build is not None:
            env[f"_nested_{f.name}"] = build
            inner = f.spec.inner if isinstance(f.spec, OptionalSpec) else f.spec
            if isinstance(inner, EmbeddedSpec):
                # The usual value (a dict) without the builder's call.
                env[f"_from_dict_{f.name}"] = inner.cls.from_dict
                lines += [
                    f"    if type({name}) is _dict:",
                    f"        {name} = _from_dict_{f.name}({name})",
                    "    else:",
                    f"        {name} = _nested_{f.name}({name})",
                ]
            else:
                lines.append(f"    {name} = _nested_{f.name}({name})")
    lines += checking
    lines.append("    self = _new(_cls)" if twin is None else "    self = _new(_twin)")
    lines += ["    " + line for line in body]
    lines.append("    return self")
    fast = _from_dict_fast_path(cls, meta, twin, env)
    if fast:
        lines[1:1] = fast
    return "\n".join(lines) + "\n", env


def _from_dict_fast_path(
    cls: Any, meta: ModelMeta, twin: type | None, env: dict[str, Any]
) -> list[str]:
    """The lines of ``from_dict`` that take a dict holding every field (``id`` may be
    left to its factory), each value of its field's exact type, in a few C calls:
    one lookup of all keys, one comparison of all types. ``__init__`` would store
    those values unchecked too. A class that keeps its dump gets it built at once,
    from the values in hand. Empty where a field or the class needs more
    (conversion, validators, ``__attrs_post_init__``, no twin)."""
    if twin is None or hasattr(cls, "__attrs_post_init__"):
        return []
    fields = [f for f in meta.fields if not f.is_id]
    # (A factory taking the instance leaves the class without a twin.)
    if not fields or any(
        f.fast_type is None or f.convert is not None or f.validators for f in meta.fields
    ):
        return []
    names = [f.attribute.alias or f.name for f in fields]
    if len(names) > 1:
        env["_pick_arguments"] = operator.itemgetter(*names)
    else:
        env["_pick_arguments"] = lambda data, name=names[0]: (data[name],)
    env["_TYPES"] = tuple(f.fast_type for f in fields)
    ranged = [index for index, f in enumerate(fields) if f.fast_range]
    test = "tuple(map(type, values)) == _TYPES"
    if ranged:
        env["_ints"] = (
            operator.itemgetter(*ranged) if len(ranged) > 1 else lambda v, i=ranged[0]: (v[i],)
        )
        test += f" and {INT64_MIN} <= min(_ints(values)) and max(_ints(values)) <= {INT64_MAX}"
    count = len(fields)
    id_field = meta.id_field
    lines = []
    if id_field is not None:
        id_arg = id_field.attribute.alias or id_field.name
        lines += [
            f"    if type(data) is _dict and (len(data) == {count} or "
            f"(len(data) == {count + 1} and {id_arg!r} in data)):",
        ]
    else:
        lines.append(f"    if type(data) is _dict and len(data) == {count}:")
    lines += [
        "        try:",
        "            values = _pick_arguments(data)",
        "        except KeyError:",
        "            values = None",
        f"        if values is not None and {test}:",
    ]
    inner: list[str] = []
    if id_field is not None:
        default = id_field.attribute.default
        id_arg = id_field.attribute.alias or id_field.name
        name = id_field.name
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            get_default = f"_factory_{name}()"
        elif default is attrs.NOTHING:
            return []
        else:
            get_default = f"_default_{name}"
        inner += [
            f"_id = data.get({id_arg!r}, _NOTHING)",
            "if _id is _NOTHING:",
            f"    _id = {get_default}",
            f"elif type(_id) is not _type_{name}:",
            f"    _check_{name}(_owner, {name!r}, _id)",
        ]
    inner += ["self = _new(_twin)", "self._uow_absent = None", "self._uow_extra = None"]
    if cls._uow_document:
        inner.append("self._uow_state = None")
    unpacked = ", ".join(f"_v{index}" for index in range(count))
    inner.append(f"{unpacked}{',' if count == 1 else ''} = values")
    values_by_name = {f.name: f"_v{index}" for index, f in enumerate(fields)}
    if id_field is not None:
        values_by_name[id_field.name] = "_id"
    inner += [f"self.{f.name} = {values_by_name[f.name]}" for f in meta.fields]
    if meta.keeps_dump:
        if any(f.spec.needs_dump for f in meta.fields):
            inner.append("self._uow_dumped = False")  # as __init__: dumped when first needed
        else:
            dump = _stored_form_display(meta, lambda f: values_by_name[f.name])
            inner.append(f"self._uow_dumped = {{{dump}}}")
    inner += ["self.__class__ = _cls", "return self"]
    return lines + ["            " + line for line in inner]


def _keywords_taken_from_a_dict(params: list[str], env: dict[str, Any]) -> tuple[str, list[str]]:
    """``(self, **kwargs)`` and the lines that bind each parameter from the dict,
    with the TypeErrors Python itself would raise."""
    env["_unexpected_keywords"] = _unexpected_keywords
    env["_missing_keywords"] = _missing_keywords
    binding, checking = _arguments_from_a_dict(params, "_pop", "_missing_keywords(")
    lines = [
        "    _pop = _kwargs.pop",
        *binding,
        "    if _kwargs:",
        "        _unexpected_keywords(_kwargs)",
    ]
    lines += checking
    return "self, **_kwargs", lines


def _arguments_from_a_dict(
    params: list[str], lookup: str, missing: str
) -> tuple[list[str], list[str]]:
    """The lines binding each parameter to a local of its name with ``lookup(name,
    default)``, and those calling ``missing`` + ``names, values)`` when a required
    one was not given. That test is by identity: ``_NOTHING in (a, b)`` would call
    ``==`` on every value before it (an attrs ``__eq__``, in Python, for an
    embedded document)."""
    binding = []
    required = []
    for param in params:
        name, _, default = param.partition("=")
        binding.append(f"    {name} = {lookup}({name!r}, {default or '_NOTHING'})")
        if not default:
            required.append(name)
    if not required:
        return binding, []
    test = " or ".join(f"{name} is _NOTHING" for name in required)
    values = ", ".join(required)
    return binding, [f"    if {test}:", f"        {missing}{required!r}, ({values},))"]


def mutated_script(meta: ModelMeta) -> Script:
    """``_uow_mutated``: each field that can change in place compared with the
    snapshot, without a call where it can be told at C speed (the kept dump of an
    unchanged embedded document is the snapshot's own; a list of strings, ObjectIds
    or datetimes equal to the snapshot's is the same BSON)."""
    env: dict[str, Any] = {"_partial_mutated": _mutated_partial}
    lines = [
        "def _uow_mutated(self, snapshot):",
        "    if self._uow_absent:",
        "        return _partial_mutated(self, snapshot)",
        "    get = snapshot.get",
        *_in_place_tests(meta, env, "True"),
        "    return False",
    ]
    return "\n".join(lines) + "\n", env


def _in_place_tests(meta: ModelMeta, env: dict[str, Any], changed: str) -> list[str]:
    """Lines that return ``changed`` if a field that can change in place differs
    from the snapshot (whose ``get`` is the local ``get``)."""
    env.update({"_MISSING": MISSING, "_same": same, "_list": list, "_EXACT": EQ_EXACT})
    lines: list[str] = []
    for f in meta.mutable_fields:
        lines.append(f"    value = self.{f.name}")
        if f.spec.needs_dump:
            env[f"_dump_{f.name}"] = f.spec.dump
            lines.append(f"    value = _dump_{f.name}(value)")
        lines.append(f"    old = get({f.key!r}, _MISSING)")
        spec = f.spec.inner if isinstance(f.spec, OptionalSpec) else f.spec
        equal = "old is value"
        if isinstance(spec, ListSpec):
            equal += (
                " or (type(old) is _list and type(value) is _list and old == value"
                " and _EXACT.issuperset(map(type, old)))"
            )
        lines += [f"    if not ({equal}) and not _same(old, value):", f"        return {changed}"]
    return lines


#: Types whose ``==`` between two values of exactly that type is BSON's equality
#: (a float is not one: ``0.0 == -0.0``, and NaN equals nothing).
_EQ_IS_SAME = (int, str)


def plain_sets_script(meta: ModelMeta) -> Script:
    """``_uow_plain_sets(snapshot, assigned)``: the ``$set`` that persists a document
    whose only changes are assignments (``assigned``, a mask of ``FieldMeta.bit``)
    to fields of ``meta.set_keys``, as ``_diff.snapshot_and_update`` makes it, for
    less (one call, each field's key and dump written in); None when the document
    has another change (a field changed in place, one assigned whose change is not
    a plain ``$set``) or was partly loaded: the general diff decides then."""
    env: dict[str, Any] = {}
    plain = [f for f in meta.fields if f.key in meta.set_keys]
    mask = sum(f.bit for f in plain)
    lines = [
        "def _uow_plain_sets(self, snapshot, assigned):",
        f"    if self._uow_absent or assigned & ~{mask}:",
        "        return None",
        "    get = snapshot.get",
        *_in_place_tests(meta, env, "None"),
        "    sets = {}",
    ]
    for f in plain:
        lines += [f"    if assigned & {f.bit}:", f"        value = self.{f.name}"]
        if f.spec.needs_dump:
            env[f"_dump_{f.name}"] = f.spec.dump
            lines.append(f"        value = _dump_{f.name}(value)")
        lines.append(f"        old = get({f.key!r}, _MISSING)")
        if f.fast_type in _EQ_IS_SAME and not f.spec.needs_dump:
            # Both of the field's exact type: == is the same BSON (no call).
            exact = f"_exact_{f.name}"
            env[exact] = f.fast_type
            lines += [
                f"        if type(old) is {exact} and type(value) is {exact}:",
                "            if old != value:",
                f"                sets[{f.key!r}] = value",
                "        elif old is not value and not _same(old, value):",
                f"            sets[{f.key!r}] = value",
            ]
        else:
            lines += [
                "        if old is not value and not _same(old, value):",
                f"            sets[{f.key!r}] = value",
            ]
    lines.append("    return sets")
    return "\n".join(lines) + "\n", env


def check_deep_script(meta: ModelMeta) -> Script:
    """``_uow_check_deep``: the fields that can change in place, checked (at flush:
    a wrong value may have been put there in place).

    An embedded document of exactly its field's class, holding nothing that changes
    in place, passes with one ``type(...) is`` test.
    """
    env: dict[str, Any] = {"_partial_check_deep": _check_deep_partial}
    lines = [
        "def _uow_check_deep(self, owner, path):",
        "    if self._uow_absent:",
        "        return _partial_check_deep(self, owner, path)",
    ]
    for f in meta.mutable_fields:
        env[f"_check_{f.name}"] = f.spec.check
        full = f"_check_{f.name}(owner, path + {'.' + f.name!r} if path else {f.name!r}, value)"
        lines.append(f"    value = self.{f.name}")
        lines += _deep_check(f, "value", full, env)
    if not lines[3:]:  # nothing to check after the three lines of the head
        lines.append("    return None")
    return "\n".join(lines) + "\n", env


def _deep_check(f: FieldMeta, value: str, full: str, env: dict[str, Any]) -> list[str]:
    """Lines checking ``value``, a field that can change in place: the statement
    ``full`` (the spec's check) runs unless one test passes it (an exact type, or
    a list of exact items); ``env`` receives what they name."""
    if f.fast_type is not None:
        env[f"_type_{f.name}"] = f.fast_type
        test = f"type({value}) is not _type_{f.name}"
        if f.fast_optional:
            test = f"{value} is not None and {test}"
        return [f"    if {test}:", f"        {full}"]
    if (listed := _exact_list_test(f, value, env)) is not None:
        return [f"    if {listed}:", f"        {full}"]
    return [f"    {full}"]


def _dump_expression(f: FieldMeta, env: dict[str, Any]) -> str:
    """The expression of ``f``'s stored value in ``_uow_to_bson`` (and ``_uow_snapshot``);
    ``env`` receives what it names."""
    value = f"self.{f.name}"
    if f.spec.needs_dump:
        env[f"_dump_{f.name}"] = f.spec.dump
        value = f"_dump_{f.name}(self.{f.name})"
        inner = f.spec.inner if isinstance(f.spec, OptionalSpec) else f.spec
        if isinstance(inner, EmbeddedSpec):
            # The embedded document's own generated dump (or the one it kept),
            # when it is of exactly the field's class; the spec's dump handles
            # None and the rest.
            env[f"_class_{f.name}"] = inner.cls
            dump = "_v._uow_to_bson()"
            if inner.cls._uow_meta.keeps_dump:
                dump = f"(_v._uow_dumped or {dump})"  # False or None: none kept
            value = (
                f"({dump} if type(_v := self.{f.name}) is _class_{f.name} else _dump_{f.name}(_v))"
            )
    return value


def to_bson_script(cls: Any, meta: ModelMeta) -> Script:
    """``_uow_to_bson``: ``obj -> dict``, the stored form built in one expression."""
    env: dict[str, Any] = {
        "_partial_to_bson": _to_bson_partial,
        "_FieldNotLoaded": FieldNotLoaded,
    }

    def value_of(f: FieldMeta) -> str:
        return _dump_expression(f, env)

    body = _stored_form_display(meta, value_of)
    lines = ["def _uow_to_bson(self):"]
    partial = "_partial_to_bson(self)"
    if meta.keeps_dump:
        env["_unshared"] = _unshared
        partial = f"_unshared({partial})"
        lines += ["    kept = self._uow_dumped", "    if kept:", "        return kept"]
    lines += [
        "    try:",
        f"        doc = {{{body}}}",
        "    except _FieldNotLoaded:",
        f"        return {partial}",
        "    extra = self._uow_extra",
        "    if extra:",
        "        doc.update(extra)",
    ]
    if meta.keeps_dump:
        # Kept only when nothing in it can change in place (a value of another
        # shape loaded from storage can): then the instance, its snapshots and the
        # statements sent can all share it, as nobody changes it. (False: the
        # values were checked when set, and no unknown keys came with them.)
        env["_IMMUTABLE"] = IMMUTABLE
        env["_set_uow_dumped"] = _member_setter(cls, "_uow_dumped")
        lines += [
            "    if kept is False or _IMMUTABLE.issuperset(map(type, doc.values())):",
            "        _set_uow_dumped(self, doc)",
            "        return doc",
            "    return _unshared(doc)",
        ]
    else:
        lines.append("    return doc")
    return "\n".join(lines) + "\n", env


def _snapshot_value(env: dict[str, Any]) -> Callable[[FieldMeta], str]:
    """The expression of a field's value in a snapshot (its stored value, a field
    that changes in place copied); ``env`` receives what it names."""

    def value_of(f: FieldMeta) -> str:
        value = _dump_expression(f, env)  # the stored value, as _uow_to_bson has it
        if not f.spec.mutable:
            return value
        env[f"_snapshot_{f.name}"] = f.spec.snapshot
        if _exact_items(f.spec) is not None:
            # ListSpec.snapshot's common case: copy_stored of a list of immutables
            return (
                f"(_s.copy() if type(_s := {value}) is _list"
                f" and _IMMUTABLE.issuperset(map(type, _s)) else _snapshot_{f.name}(_s))"
            )
        return f"_snapshot_{f.name}({value})"

    return value_of


def snapshot_script(meta: ModelMeta) -> Script:
    """``_uow_snapshot``: ``_diff.snapshot_of(meta, self._uow_to_bson())`` in one dict
    display, each field that changes in place copied where it is read (a flush's
    snapshot of every document it inserts). A list of immutable items is copied
    inline; other values go through their spec's ``snapshot``."""
    env: dict[str, Any] = {
        "_FieldNotLoaded": FieldNotLoaded,
        "_partial_snapshot": snapshot_of,
        "_meta": meta,
        "_list": list,
        "_IMMUTABLE": IMMUTABLE,
    }

    lines = [
        "def _uow_snapshot(self):",
        *_snapshot_tail(_stored_form_display(meta, _snapshot_value(env))),
    ]
    return "\n".join(lines) + "\n", env


def _snapshot_tail(body: str) -> list[str]:
    """The lines that build and return a snapshot whose dict display is ``body``
    (``_partial_snapshot`` where a field was not loaded)."""
    return [
        "    try:",
        f"        doc = {{{body}}}",
        "    except _FieldNotLoaded:",
        "        return _partial_snapshot(_meta, self._uow_to_bson())",
        "    extra = self._uow_extra",
        "    if extra:",
        "        doc.update(extra)  # unknown stored keys, never changed here: shared",
        "    return doc",
    ]


def insert_form_script(meta: ModelMeta) -> Script:
    """``_uow_insert_form``: ``_uow_check_deep(name, "")`` then ``_uow_snapshot()``, in
    one call (a flush's, per inserted document). A list of exact immutable items
    that passed its one-test check is copied as it is, not tested again."""
    env: dict[str, Any] = {
        "_FieldNotLoaded": FieldNotLoaded,
        "_partial_snapshot": snapshot_of,
        "_meta": meta,
        "_name": meta.name,
        "_list": list,
        "_IMMUTABLE": IMMUTABLE,
    }
    lines = [
        "def _uow_insert_form(self):",
        "    if self._uow_absent:",
        "        self._uow_check_deep(_name, '')",
        "        return self._uow_snapshot()",
    ]
    copied: set[str] = set()  # the fields whose snapshot is the local _c_<name>
    for f in meta.mutable_fields:
        env[f"_check_{f.name}"] = f.spec.check
        value = f"_m_{f.name}"
        full = f"_check_{f.name}(_name, {f.name!r}, {value})"
        lines.append(f"    {value} = self.{f.name}")
        exact = _exact_items(f.spec)
        if (
            f.fast_type is None
            and exact is not None
            and IMMUTABLE.issuperset(exact)
            and not f.spec.needs_dump
        ):
            env[f"_snapshot_{f.name}"] = f.spec.snapshot
            lines += [
                f"    if {_exact_list_test(f, value, env)}:",
                f"        {full}",
                f"        _c_{f.name} = _snapshot_{f.name}({value})",
                "    else:",
                f"        _c_{f.name} = {value}.copy()",
            ]
            copied.add(f.name)
        else:
            lines += _deep_check(f, value, full, env)
    snapshot_value = _snapshot_value(env)

    def value_of(f: FieldMeta) -> str:
        return f"_c_{f.name}" if f.name in copied else snapshot_value(f)

    lines += _snapshot_tail(_stored_form_display(meta, value_of))
    return "\n".join(lines) + "\n", env


def _stored_form_display(meta: ModelMeta, value_of: Callable[[FieldMeta], str]) -> str:
    """The inside of a dict display of the stored form: ``_id`` first, then
    ``_cls`` (a subclass), then the other fields in declared order;
    ``value_of(field)`` is the expression of a field's stored value."""
    items: list[str] = []
    id_field = meta.id_field
    ordered = ([id_field] if id_field else []) + [f for f in meta.fields if not f.is_id]
    if meta.cls_name is not None:
        items.append(f"'_cls': {meta.cls_name!r}")
    for f in ordered:
        items.append(f"{f.key!r}: {value_of(f)}")
    if id_field is not None:
        items.insert(0, items.pop(1 if meta.cls_name is not None else 0))  # _id first
    return ", ".join(items)


def load_script(cls: Any, meta: ModelMeta, twin: type | None) -> Script:
    """``_uow_load(cls, raw, ctx, absent) -> instance``: a stored document whose
    ``_cls`` names a subclass goes to that subclass's ``_uow_load``; the rest is
    loaded here. Stored data is trusted, not re-validated. With a ``twin``, the
    instance is the twin while its slots are filled."""
    env: dict[str, Any] = {
        "_new": object.__new__,
        "_MISSING": MISSING,
        "_KNOWN": meta.known_keys,
        "_OWN": meta.cls_name,
        # absent may name fields of other classes of the hierarchy (a fields() query)
        "_OWN_FIELDS": frozenset(f.name for f in meta.fields if not f.is_id),
        "_IMMUTABLE": IMMUTABLE,
        "_copy": copy_stored,
        "_list": list,
        "_cls": cls,
        "_twin": twin,
        "_DEFAULT_CONTEXT": DEFAULT_LOAD_CONTEXT,
        "_other_class": _load_other_class,
    }
    slots = _SlotWriter(cls, env, "obj", twin)
    lines = [
        "def _uow_load(cls, raw, ctx=_DEFAULT_CONTEXT, absent=None):",
        "    kind = raw.get('_cls')",
        "    if kind is not None and kind != _OWN:",
        "        other = _other_class(cls, raw, ctx, absent, kind)",
        "        if other is not None:",
        "            return other",
        "    obj = _new(cls)" if twin is None else "    obj = _new(_twin)",
        "    get = raw.get",
    ]
    start = len(lines)  # where the lines for the plain fields go (see below)
    if cls._uow_document:
        lines.append("    " + slots.store("_uow_state", "None"))
    else:
        lines.append("    " + slots.store("_uow_dumped", "None"))
    # Fields stored as given, of immutable declared types: when the stored document
    # has them all and every value is immutable (one C-speed check), they are set
    # without a lookup and a check each (~40% of a flat document's load).
    plain = [
        f
        for f in meta.fields
        if not f.spec.needs_load and not f.spec.mutable and not isinstance(f.spec, DatetimeSpec)
    ]
    if len(plain) <= 1:
        plain = []  # (itemgetter of one key gives the value, not a tuple)
    per_field: list[str] = []
    for f in meta.fields:
        # The stored document becomes the session's snapshot: no list or dict of
        # it may be handed out (converting loads build new ones; others copy).
        if isinstance(f.spec, DatetimeSpec):
            # The common case inline: a naive (UTC) datetime, wanted naive.
            env[f"_load_{f.name}"] = f.spec.load
            env["_datetime"] = datetime.datetime
            value = (
                "(value if type(value) is _datetime and value.tzinfo is None and not ctx.tz_aware"
                f" else _load_{f.name}(value, ctx))"
            )
        elif f.spec.needs_load:
            env[f"_load_{f.name}"] = f.spec.load
            value = f"_load_{f.name}(value, ctx)"
        elif f.spec.mutable:
            value = (
                "(value.copy() if type(value) is _list and _IMMUTABLE.issuperset(map(type, value))"
                " else _copy(value))"
            )
        else:
            value = "(value if type(value) in _IMMUTABLE else _copy(value))"
        default = f.attribute.default
        if default is attrs.NOTHING:
            missing = [
                f"        absent = (absent or frozenset()) | {{{f.name!r}}}",
            ]
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            assert default is not None
            env[f"_factory_{f.name}"] = default.factory
            call = f"_factory_{f.name}(obj)" if default.takes_self else f"_factory_{f.name}()"
            missing = ["        " + slots.store(f.name, call)]
        else:
            env[f"_default_{f.name}"] = default
            missing = ["        " + slots.store(f.name, f"_default_{f.name}")]
        if default is not attrs.NOTHING:
            # A field a partial load left out stays empty: no default stands in for it.
            missing = [f"        if absent is None or {f.name!r} not in absent:"] + [
                "    " + line for line in missing
            ]
        field_lines = [
            f"    value = get({f.key!r}, _MISSING)",
            "    if value is _MISSING:",
            *(["        full = False"] if plain and f not in plain else []),
            *missing,
            "    else:",
            "        " + slots.store(f.name, value),
        ]
        if f in plain:
            per_field += ["    " + line for line in field_lines]
        else:
            lines += field_lines
    if plain:
        env["_pick_stored"] = operator.itemgetter(*(f.key for f in plain))
        names = ", ".join(f"_v{index}" for index in range(len(plain)))
        setters = [
            "        " + slots.store(f.name, f"_v{number}") for number, f in enumerate(plain)
        ]
        lines[start:start] = [
            "    plain = None",
            "    if absent is None:",
            "        try:",
            "            plain = _pick_stored(raw)",
            "        except KeyError:",
            "            pass",
            "    full = plain is not None and _IMMUTABLE.issuperset(map(type, plain))",
            "    if full:",
            f"        {names} = plain",
            *setters,
            "    else:",
            *per_field,
        ]
    known = "_KNOWN.issuperset(raw) and get('_cls', _OWN) == _OWN"
    if plain:
        # Every field found, and nothing else: no unknown key, no _cls.
        env["_NFIELDS"] = len(meta.fields)
        known = f"(full and len(raw) == _NFIELDS) or ({known})"
    lines += [
        "    if absent:",
        "        absent = (absent & _OWN_FIELDS) or None",
        "        if absent is not None:",
        "            " + ("_cls" if twin is not None else "cls") + "._uow_allow_empty_slots()",
        "    " + slots.store("_uow_absent", "absent"),
        f"    if {known}:",
        "        " + slots.store("_uow_extra", "None"),
        "    else:",
        "        extra = {k: v for k, v in raw.items() if k not in _KNOWN}",
        "        if get('_cls', _OWN) != _OWN:",
        "            extra['_cls'] = raw['_cls']",
        "        " + slots.store("_uow_extra", "extra"),
        *(["    obj.__class__ = _cls"] if twin is not None else []),
        "    return obj",
    ]
    return "\n".join(lines) + "\n", env
