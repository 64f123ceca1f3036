"""Generated methods read like code: source in linecache, names after fields (#18)."""

from __future__ import annotations

import inspect
import linecache
import sys
import textwrap
import threading
import traceback
import types
from collections.abc import Iterator
from typing import Any

import pytest

import uow
from uow import Document, Embedded, field
from uow._codegen import class_script


class Visit(Embedded):
    page: str
    seconds: int = 0


class Member(Document):
    name: str
    visits: int = 0
    tags: list[str] = field(factory=list)
    last: Visit | None = None


GENERATED = (
    "__init__",
    "from_dict",
    "_uow_to_bson",
    "_uow_snapshot",
    "_uow_check_deep",
    "_uow_mutated",
    "_uow_load",
)


def _function(cls: type, name: str) -> Any:
    value = cls.__dict__[name]
    return value.__func__ if isinstance(value, classmethod) else value


def test_getsource_of_init_shows_the_fields() -> None:
    source = inspect.getsource(Member.__init__)
    assert source.startswith("def __init__(self, *, id=_NOTHING, name, visits=_default_visits")
    for name in ("name", "visits", "tags", "last"):
        assert f"self.{name} = {name}" in source
    assert "_check_name(_owner, 'name', name)" in source


@pytest.mark.parametrize("name", GENERATED)
def test_every_generated_method_has_source_module_and_qualname(name: str) -> None:
    function = _function(Member, name)
    assert function.__module__ == __name__
    assert function.__qualname__ == f"Member.{name}"
    assert inspect.getsource(function).startswith(f"def {name}(")
    assert function.__code__.co_filename.startswith("<uow generated ")


def test_one_script_per_class_in_linecache() -> None:
    files = {_function(Member, name).__code__.co_filename for name in GENERATED}
    assert len(files) == 1
    (filename,) = files
    assert f"{__name__}.Member" in filename
    lines = linecache.getlines(filename)
    assert sum(line.startswith("def _uow_load(") for line in lines) == 1  # no body twice


def test_globals_are_named_after_fields() -> None:
    script, globs = class_script(Member, Member._uow_meta, None)
    for name in ("_default_visits", "_factory_tags", "_check_name", "_type_name", "_dump_last"):
        assert name in globs, name
        assert name in script
    assert not any(name[-1].isdigit() and name.startswith("_default") for name in globs)


def test_a_failing_check_in_init_shows_the_generated_line() -> None:
    def positive(instance: Any, attribute: Any, value: int) -> None:
        if value < 0:
            raise ValueError("must be positive")

    class Counter(Document):
        hits: int = field(default=0, validator=positive)

    with pytest.raises(uow.ValidationError):
        try:
            Counter(hits=-1)
        except uow.ValidationError:
            text = traceback.format_exc()
            raise
    assert ", in __init__\n" in text
    assert "_run_user(_user_hits_0, self, _attribute_hits, self.hits)" in text


def test_a_failing_dump_shows_the_generated_line() -> None:
    class Inner(Embedded):
        n: int = 0

    class Holder(Document):
        inner: Inner | None = None

    holder = Holder()
    # Past the checks, as a bug would: a value no dump can copy.
    object.__setattr__(holder, "inner", threading.Lock())
    with pytest.raises(TypeError) as info:
        holder.to_bson()
    text = "".join(traceback.format_exception(info.value))
    assert "in _uow_to_bson" in text
    assert "else _dump_inner(_v))}" in text  # the generated line, with its source


def test_redefining_a_class_gets_a_new_file() -> None:
    def define() -> type:
        class Again(Document):
            n: int = 0

        return Again

    first, second = define(), define()
    assert first.__init__.__code__.co_filename != second.__init__.__code__.co_filename
    assert inspect.getsource(first.__init__) == inspect.getsource(second.__init__)


@pytest.fixture
def two_modules() -> Iterator[tuple[types.ModuleType, types.ModuleType]]:
    made = []
    for name in ("shop_cg.models", "admin_cg.models"):
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(
            textwrap.dedent(
                """
                from uow import Document

                class User(Document):
                    name: str = ""
                """
            ),
            module.__dict__,
        )
        made.append(module)
    yield made[0], made[1]
    for module in made:
        del sys.modules[module.__name__]


def test_same_named_classes_in_two_modules_get_distinct_files(
    two_modules: tuple[types.ModuleType, types.ModuleType],
) -> None:
    shop, admin = two_modules
    shop_file = shop.User.__init__.__code__.co_filename
    admin_file = admin.User.__init__.__code__.co_filename
    assert shop_file != admin_file
    assert "shop_cg.models.User" in shop_file and "admin_cg.models.User" in admin_file
    assert shop.User.__init__.__module__ == "shop_cg.models"
    assert inspect.getsource(admin.User.__init__).startswith("def __init__(")
