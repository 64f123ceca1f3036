"""``uow.testing``: the pytest plugin that installing uow registers (``uow_session`` ...).

The fixtures are used here directly (pytest loaded the plugin through its entry
point, as it will in a user's project), and a user's test file is run in a fresh
pytest process to show what a user gets: isolation between tests, the default
put back, and the plugin's name for ``-p no:uow``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import uow
from uow import Document, Session, service


class TpNote(Document):
    __collection__ = "notes"

    text: str


@uow.unit_of_work()
def write_note(text: str) -> TpNote:
    note = TpNote(text=text)
    uow.current_session().add(note)
    return note


def test_the_entry_point_names_this_module() -> None:
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "uow"]
    assert entry.value == "uow.testing"


def test_uow_session_is_current_and_services_join_it(uow_session: Session) -> None:
    assert uow.current_session() is uow_session
    note = write_note("joined")
    assert uow_session.get(TpNote, note.id) is note
    assert uow_session.count(TpNote) == 1  # autoflush: the test reads what the code did
    assert not uow_session.closed


def test_uow_database_is_empty_and_the_default(uow_database: Any) -> None:
    assert uow_database["notes"].count_documents({}) == 0
    with pytest.raises(uow.NoActiveSession):
        uow.current_session()
    write_note("committed")  # opens its own session on the default, and commits
    assert [d["text"] for d in uow_database["notes"].find()] == ["committed"]
    assert service._snapshot()[0].database == uow_database.name


USER_TESTS = """
import pytest
import uow
from uow import Document

class Note(Document):
    text: str

@uow.unit_of_work()
def write_note(text):
    uow.current_session().add(Note(text=text))

def test_1_writes(uow_session):
    write_note("a")
    uow_session.commit()
    assert uow_session.count(Note) == 1

def test_2_starts_clean(uow_session):
    assert uow_session.count(Note) == 0

def test_3_the_default_is_put_back():
    # test_1 configured the default to its own store; it was put back after it.
    with pytest.raises(uow.UowError, match="no database"):
        with uow.unit_of_work():
            pass
"""


def _run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user_code.py").write_text(textwrap.dedent(USER_TESTS))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_users_tests_get_a_clean_database_each(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, "test_user_code.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_plugin_can_be_turned_off_by_name(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, "-p", "no:uow", "test_user_code.py")
    assert result.returncode != 0
    assert "fixture 'uow_session' not found" in result.stdout
