"""Helpers every tests/attack7 module uses: the stored form of an object, and
objects committed by a session of their own."""

from __future__ import annotations

from typing import Any

from uow import Session


def raw(db: Any, obj: Any) -> Any:
    """The stored document of ``obj``, read with raw pymongo (None when gone)."""
    return db[type(obj)._uow_meta.collection].find_one({"_id": obj.id})


def committed(db: Any, *objs: Any) -> None:
    """Store ``objs`` through a session of their own, committed and closed."""
    s = Session(db)
    s.add_all(objs)
    s.commit()
    s.close()
