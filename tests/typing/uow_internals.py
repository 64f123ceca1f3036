# pyright: strict, reportPrivateUsage=false
# pyright: reportUnnecessaryTypeIgnoreComment=true
"""The types uow's own code reads its per-instance slots with: none is ``Any``.

Checked by ``tests/typing/run`` beside ``user_code.py`` (mypy --strict and
pyright, against an installed uow). ``document.py`` declares the slots under
``if TYPE_CHECKING:``: ``_uow_absent`` and ``_uow_extra`` on ``_BaseModel``, which
the metaclass does not build, and ``_uow_state`` and ``_uow_dumped`` with
``attrs.field(init=False)``, a field specifier of the metaclass's
``dataclass_transform``, so that they are no ``__init__`` parameters
(``user_code.py`` checks that). Were a slot read as ``Any`` again, mypy --strict
on ``uow/`` would stop checking the code that reads it, and mypy's
``assert_type`` here fails (pyright shows nothing for an undeclared slot, so the
guard is mypy's; the ``set_state`` lines are both checkers').
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import assert_type

from uow import Document, Embedded
from uow._state import DETACHED, DocState
from uow.document import set_state


class Item(Document):
    name: str


class Tag(Embedded):
    label: str


def slots(item: Item, tag: Tag) -> None:
    assert_type(item._uow_state, DocState | None)
    assert_type(item._uow_absent, frozenset[str] | None)
    assert_type(item._uow_extra, dict[str, Any] | None)
    assert_type(tag._uow_absent, frozenset[str] | None)
    assert_type(tag._uow_extra, dict[str, Any] | None)
    assert_type(tag._uow_dumped, dict[str, Any] | Literal[False] | None)
    state = item._uow_state
    if state is not None:
        assert_type(state.snapshot, dict[str, Any] | None)
    set_state(item, DETACHED)
    set_state(item, None)
    set_state(item, "detached")  # type: ignore[arg-type]
    set_state(tag, None)  # type: ignore[arg-type]  # an Embedded has no session state
