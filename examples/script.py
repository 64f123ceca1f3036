"""A plain script: open a session, add, flush, change, commit, close.

    python examples/script.py

Runs on the embedded backend (``mongomock://``, no server needed); set
``UOW_MONGODB_URI=mongodb://localhost:27017`` to run it against a server.
"""

from __future__ import annotations

import os

from uow import Document, Session, field

HOST = os.environ.get("UOW_MONGODB_URI") or "mongomock://examples"
DATABASE = "uow_examples"


class Task(Document):
    __collection__ = "tasks"

    title: str
    done: bool = False
    attempts: int = field(default=0, on_update="$inc")
    tags: list[str] = field(factory=list)


def main() -> None:
    s = Session.connect(DATABASE, HOST)
    try:
        s.clear_collection(Task)  # start from an empty collection on every run

        write, test, ship = Task(title="write"), Task(title="test"), Task(title="ship")
        s.add_all([write, test, ship])
        print("flush:", s.flush())  # one insert command for the three documents

        write.done = True  # {"$set": {"done": true}}
        write.attempts += 1  # {"$inc": {"attempts": 1}}
        test.tags.append("ci")  # in place: {"$push": {"tags": {"$each": ["ci"]}}}
        print("dirty:", [t.title for t in (write, test, ship) if s.is_dirty(t)])
        s.commit()  # flush (one update command for both documents), then commit

        still_open = s.query(Task).filter(done=False).sort("title").all()
        print("still open:", [t.title for t in still_open])
    finally:
        s.close()

    # A new session reads what the first one committed.
    again = Session.connect(DATABASE, HOST)
    try:
        done = again.query(Task).filter(done=True).one()
        assert (done.title, done.attempts) == ("write", 1), done
        assert again.query(Task).filter(title="test").one().tags == ["ci"]
        print("committed:", done.title, "attempts =", done.attempts)
    finally:
        again.close()


if __name__ == "__main__":
    main()
