"""Typing. SPEC: "py.typed; under mypy --strict and pyright, a user's code
written as this page shows type-checks". The other side: a user's mistakes
(an undeclared attribute, a wrong item type in a set field) are reported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_CODE = textwrap.dedent(
    """
    from __future__ import annotations

    import uow
    from uow import Document, Session, field


    class User(Document):
        name: str
        tags: set[str] = field(factory=set)


    def good(s: Session) -> str:
        for v in s.query(User).fields("name"):
            try:
                return v.name
            except uow.FieldNotLoaded as exc:
                return str(exc)
        u = s.get(User, None)
        assert u is not None
        u.tags.add("x")
        return u.name.upper()


    def bad(s: Session) -> None:
        u = s.get(User, None)
        assert u is not None
        print(u.nosuch)  # error expected
        for v in s.query(User).fields("name"):
            print(v.missing_attr)  # error expected
        u.tags.add(1)  # error expected
    """
)


def test_mypy_reports_undeclared_attributes(tmp_path: Path) -> None:
    src = tmp_path / "user_code.py"
    src.write_text(USER_CODE)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ": error:" in ln]
    where = {int(ln.split(":")[1]) for ln in lines}
    expected = {
        n for n, ln in enumerate(USER_CODE.splitlines(), 1) if ln.endswith("# error expected")
    }
    assert len(expected) == 3
    assert where == expected, proc.stdout + proc.stderr
    assert any('"User" has no attribute "nosuch"' in ln for ln in lines), proc.stdout
    assert any('"User" has no attribute "missing_attr"' in ln for ln in lines), proc.stdout
