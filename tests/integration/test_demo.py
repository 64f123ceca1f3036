"""The README's first command: `python -m uow.demo` tells its story on the embedded backend."""

from __future__ import annotations

import re
import subprocess
import sys

from uow import demo


def test_demo_story_shows_commands_changes_and_round_trips(capsys) -> None:
    assert demo.main(["--uri", "mongomock://test-demo"]) == 0
    out = capsys.readouterr().out
    # every command sent is printed, inserts first, one per collection
    assert out.count("-> insert uow_demo.customer") == 1
    assert out.count("-> insert uow_demo.order") == 1
    # what_changed() shows in-place changes, nested paths included
    assert "address.city: 'Oslo' -> 'Bergen'" in out
    assert "tags: [] -> ['vip']" in out
    # the commit sends one update per collection with only the changed paths
    # each naming the document it targets (#19)
    assert re.search(
        r"-> update uow_demo\.customer \[\{'q': \{'_id': ObjectId\('[0-9a-f]{24}'\)\}, "
        r"'u': \{'\$inc': \{'visits': 1\}",
        out,
    )
    assert re.search(
        r"-> update uow_demo\.order \[\{'q': \{'_id': ObjectId\('[0-9a-f]{24}'\)\}, "
        r"'u': \{'\$push': \{'items': \{'\$each': \['biscuits'\]\}\}\}\}\]",
        out,
    )
    assert "s.get(Customer, ann.id) is ann: True" in out
    assert "5 write round trips" in out


def test_demo_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uow.demo", "--uri", "mongomock://test-demo-module"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "VIP customers: ['Ann']" in result.stdout
