"""Documents shared by the attack9 tests."""

from __future__ import annotations

import uow
from uow import Document, field


class Acct(Document):
    __collection__ = "a9_accts"
    name: str
    balance: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


class Note(Document):
    __collection__ = "a9_notes"
    text: str


__all__ = ["Acct", "Note", "uow"]
