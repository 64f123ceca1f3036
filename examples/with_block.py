"""``with Session.connect(...) as s:`` blocks: commit on success, rollback on an exception.

    python examples/with_block.py

Runs on the embedded backend (``mongomock://``); set ``UOW_MONGODB_URI`` to run
it against a server. Also shows what a type checker knows: ``s.get(User, id)``
is a ``User | None``, a query yields ``User`` (``mypy --strict`` checks this file).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

import uow
from uow import Document, Session, field

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_type

HOST = os.environ.get("UOW_MONGODB_URI") or "mongomock://examples"
DATABASE = "uow_examples"


class Address(uow.Embedded):
    city: str
    zip: str | None = None


class User(Document):
    __collection__ = "users"
    __indexes__ = [uow.Index("email", unique=True)]

    name: str
    email: str
    visits: int = field(default=0, on_update="$inc")
    last_seen: datetime | None = field(default=None, on_update="$max")
    tags: list[str] = field(factory=list)
    address: Address | None = None


def main() -> None:
    with Session.connect(DATABASE, HOST) as s:
        s.clear_collection(User)
        # Seen once already: $max over a stored null sets the value on MongoDB
        # (null sorts first), but mongomock raises TypeError there.
        first_seen = datetime(2026, 1, 1, tzinfo=timezone.utc)
        ann = User(
            name="ann", email="ann@example.com", address=Address(city="Oslo"), last_seen=first_seen
        )
        s.add(ann)
        s.flush()  # one insert

        same = s.get(User, ann.id)
        assert_type(same, User | None)  # what mypy sees; at run time it does nothing
        assert same is ann  # the identity map: one object per stored document

        ann.visits += 1  # {"$inc": {"visits": 1}}
        ann.last_seen = datetime.now(timezone.utc).replace(microsecond=0)
        ann.tags.append("vip")  # found without help: {"$push": ...}
        assert ann.address is not None
        ann.address.city = "Bergen"  # {"$set": {"address.city": "Bergen"}}
        print("what changed:", s.what_changed()[("users", ann.id)])
    # Leaving the block committed the changes and closed the session.

    try:
        with Session.connect(DATABASE, HOST) as s:
            ann = s.query(User).filter(email="ann@example.com").one()
            ann.visits += 100
            raise RuntimeError("something went wrong before the end of the block")
    except RuntimeError as exc:
        print("rolled back:", exc)

    with Session.connect(DATABASE, HOST) as s:
        for user in s.query(User).filter(User.visits >= 1):
            assert_type(user, User)
            assert user.address is not None
            print(f"{user.name}: visits={user.visits} city={user.address.city} tags={user.tags}")
            assert (user.visits, user.address.city, user.tags) == (1, "Bergen", ["vip"])


if __name__ == "__main__":
    main()
