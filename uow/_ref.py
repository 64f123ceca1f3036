"""``Ref``: a reference to a stored document, its class and id.

Layer 1: imports nothing from uow, so ``_types`` (which turns a stored id into a
``Ref`` and back) and ``document`` can both import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .document import Document

__all__ = ["Ref"]

D = TypeVar("D", bound="Document")


class Ref(Generic[D]):
    """A reference to a stored document: its class and id.

    ``uow.Ref[User]`` as an annotation stores the user's id; the attribute reads as
    a ``Ref`` with ``.cls`` and ``.id``; ``session.dereference(ref)`` loads it.
    ``Ref["User"]`` names a class not defined yet; ``Ref["shop.models.User"]``
    names one of several classes called ``User``.
    """

    __slots__ = ("cls", "id")

    def __init__(self, cls: type[D], id: Any) -> None:
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "id", id)

    cls: type[D]
    id: Any

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Ref is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ref):
            return bool(self.cls._uow_meta.root is other.cls._uow_meta.root and self.id == other.id)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.cls._uow_meta.root, self.id))

    def __repr__(self) -> str:
        return f"Ref({self.cls.__name__}, {self.id!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.cls, self.id))
