"""Every example in examples/ runs, as a user would run it, on both backends.

Each runs in a fresh process: the scripts with ``python examples/NAME.py``, the
Django project with ``python manage.py test`` (Django's runner and test client),
the Flask app with ``python -m pytest`` in its directory (Flask's test client),
once on the embedded backend and once on SecantusDB.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DJANGO_PROJECT = EXAMPLES / "django_service"
FLASK_APP = EXAMPLES / "flask_service"

SCRIPTS = {
    "script.py": ["flush: FlushResult(inserted=3", "committed: write attempts = 1"],
    "with_block.py": ["rolled back:", "ann: visits=1 city=Bergen tags=['vip']"],
    "service_layer.py": ["pay_all failed", "balances: {'ann': 70, 'bob': 30, 'cid': 0}"],
}
# The names the scripts write to; dropped after a run on a server.
SCRIPT_DATABASE = "uow_examples"

LANES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("secantus", id="secantus", marks=pytest.mark.secantus),
]


@pytest.fixture(params=LANES)
def server_uri(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded backend, else the URI of the run's SecantusDB server."""
    if request.param == "embedded":
        yield None
        return
    server = request.getfixturevalue("secantus_server")
    uri = f"{server.uri}?retryWrites=false"
    yield uri
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    client.drop_database(SCRIPT_DATABASE)
    client.close()


def _env(**extra: str | None) -> dict[str, str]:
    """This process's environment without the variables that choose a backend."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"UOW_MONGODB_URI", "SHOP_TEST_MONGODB_URI", "DJANGO_SETTINGS_MODULE"}
    }
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_every_example_script_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_script_runs(script: str, server_uri: str | None) -> None:
    result = _run([str(EXAMPLES / script)], ROOT, _env(UOW_MONGODB_URI=server_uri))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for expected in SCRIPTS[script]:
        assert expected in result.stdout, output


def test_django_example_tests_pass(server_uri: str | None) -> None:
    result = _run(
        ["manage.py", "test", "--verbosity", "2"],
        DJANGO_PROJECT,
        _env(SHOP_TEST_MONGODB_URI=server_uri),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ran = re.search(r"^Ran (\d+) tests?", result.stderr, re.MULTILINE)
    assert ran is not None and int(ran.group(1)) >= 10, output
    for name in (
        "test_a_normal_request_commits",
        "test_a_request_that_raises_leaves_nothing_written",
        "test_a_5xx_answer_writes_nothing",
        "test_two_requests_in_parallel_threads_have_separate_sessions",
        "test_the_tests_run_on_the_backend_asked_for",
    ):
        assert re.search(rf"^{name} .* \.\.\. ok$", result.stderr, re.MULTILINE), output


def test_flask_example_tests_pass(server_uri: str | None) -> None:
    result = _run(
        ["-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "addopts=", "test_app.py"],
        FLASK_APP,
        _env(SHOP_TEST_MONGODB_URI=server_uri),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for name in (
        "test_a_normal_request_commits",
        "test_a_view_that_raises_writes_nothing_even_when_answered_409",
        "test_a_5xx_answer_writes_nothing",
        "test_the_session_is_current_only_during_the_request",
    ):
        assert re.search(rf"test_app.py::{name} PASSED", result.stdout), output


def test_every_example_project_has_a_readme() -> None:
    for project in (DJANGO_PROJECT, FLASK_APP):
        assert (project / "README.md").is_file(), project
