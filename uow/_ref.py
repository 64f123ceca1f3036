"""``Ref``: a reference to a stored document, its class and id.

Layer 1: imports nothing from uow, so ``_types`` (which turns a stored id into a
``Ref`` and back) and ``document`` can both import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    import uuid

    import bson

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

    if not TYPE_CHECKING:  # a type checker would read every attribute as Any

        def __getattr__(self, name: str) -> Any:
            # Reached for an attribute a Ref does not have: reading a field of the
            # document it points at (``post.author.name``) is the usual mistake.
            if name.startswith("__"):
                raise AttributeError(name)
            cls = object.__getattribute__(self, "cls")
            fields = getattr(cls, "_uow_setters", {})
            what = f"{cls.__name__}.{name}" if name in fields else repr(name)
            raise AttributeError(
                f"{self!r} has no attribute {name!r}: a Ref holds the class and id of "
                f"a document, not its fields; load the document with "
                f"session.dereference(ref) and read {what} from it"
            )

    if TYPE_CHECKING:
        # Seen by type checkers only: on a Document class, ``author: Ref[Author]``
        # reads as a descriptor, so (PEP 681) ``__init__`` and assignment take the
        # ``__set__`` value type, which is what the field accepts at run time: a
        # Ref, the document itself, or its id (the usual id types: a class may
        # declare any id type, and ``Ref(Author, id)`` spells any of them).
        # At run time attrs' slots do the work and Ref has no descriptor methods.
        @overload
        def __get__(self, instance: None, owner: Any) -> Ref[D]: ...
        @overload
        def __get__(self, instance: object, owner: Any) -> Ref[D]: ...
        def __get__(self, instance: object, owner: Any) -> Ref[D]: ...
        def __set__(self, instance: object, value: RefInput[D]) -> None: ...


if TYPE_CHECKING:
    from typing import TypeAlias

    #: What a ``Ref[X]`` field accepts: a Ref, an ``X``, or the id of one.
    RefInput: TypeAlias = "Ref[D] | D | bson.ObjectId | str | int | uuid.UUID | bytes"
