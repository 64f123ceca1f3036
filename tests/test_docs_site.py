"""The documentation site: its pages' examples run, it builds strictly, and a
newcomer following "Getting started" from a fresh clone gets a working script.

setup.cfg's ``--doctest-glob="docs/*.md"`` runs the pages only under
``pytest docs/``; the test command (``python -m pytest``, ``testpaths = tests``)
runs them here instead, so CI runs them too.
"""

from __future__ import annotations

import doctest
import io
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

import uow
from uow import service
from uow._backend import reset_embedded

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
GETTING_STARTED = DOCS / "index.md"


def _nav_files(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    return []


def _mkdocs_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return config


def _fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


# ------------------------------------------------------------ the pages


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page: Path) -> None:
    text = page.read_text()
    test = doctest.DocTestParser().get_doctest(
        text, {"__name__": "__main__"}, page.name, str(page), 0
    )
    # A page's examples expect the embedded stores they name to start empty, as
    # in a fresh process: forget them before and after (``pytest docs/`` may run
    # the same page in this process too), and put back the default it configures.
    stores = set(re.findall(r"mongomock://[\w.-]+", text))
    before = service._snapshot()
    for uri in stores:
        reset_embedded(uri)
    out = io.StringIO()
    try:
        result = doctest.DocTestRunner(verbose=False).run(test, out=out.write)
    finally:
        service._restore(before)
        for uri in stores:
            reset_embedded(uri)
    assert result.failed == 0, out.getvalue()


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = _nav_files(_mkdocs_config()["nav"])
    assert sorted(nav) == sorted(p.name for p in PAGES)
    assert nav[0] == "index.md"  # the site opens on Getting started


def test_the_reference_documents_every_public_name() -> None:
    reference = (DOCS / "reference.md").read_text()
    missing = [name for name in uow.__all__ if f"::: uow.{name}\n" not in reference]
    assert missing == []


def test_getting_started_links_to_the_guides() -> None:
    text = GETTING_STARTED.read_text()
    for page in ("documents.md", "queries.md", "session.md"):
        assert f"({page})" in text


# -------------------------------------------------------------- the site


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def test_the_site_builds_strictly(built_site: Path) -> None:
    for page in PAGES:
        html = built_site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert html.is_file(), html
    reference = (built_site / "reference" / "index.html").read_text()
    for name in (
        "uow.Session.flush",
        "uow.unit_of_work",
        "uow.contrib.django.UnitOfWorkMiddleware",
    ):
        assert f'id="{name}"' in reference, name


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_examples_are_shown_as_code(built_site: Path, page: Path) -> None:
    """A ``>>>`` outside a code fence renders as nested block quotes, not as code."""
    html_path = built_site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
    article = html_path.read_text().split("<article", 1)[1].split("</article>", 1)[0]
    outside_code = re.sub(r"<pre.*?</pre>|<code.*?</code>", "", article, flags=re.DOTALL)
    assert "&gt;&gt;&gt;" not in outside_code and "<blockquote>\n<blockquote>" not in article, (
        f"{page.name}: wrap each run of >>> examples in a ```pycon fence, with a blank "
        "line before the closing fence (as queries.md does): doctest still runs them"
    )


# -------------------------------------------------- from a fresh clone


def _fresh_clone(target: Path) -> None:
    """The files a clone of this checkout has (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_getting_started_works_from_a_fresh_clone(tmp_path: Path) -> None:
    """The page's shell block, then its Python examples, in a new virtualenv.

    Nothing is installed beyond what the page says: the virtualenv has no
    packages of this environment, and the page's own commands install uow.
    """
    clone = tmp_path / "uow"
    clone.mkdir()
    _fresh_clone(clone)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"UOW_MONGODB_URI", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(env_dir),  # what `. venv/bin/activate` does
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )

    text = GETTING_STARTED.read_text()
    shell_blocks = _fenced_blocks(text, "bash")
    assert shell_blocks, "Getting started should say how to install and run uow"
    # One shell, as a reader's terminal: what a block activates stays active.
    # After the page's commands: its Python examples, and which uow they used.
    script = "\n".join(
        [
            *shell_blocks,
            "python -m doctest docs/index.md",
            # From elsewhere: in the clone, Python would find ./uow installed or not.
            "(cd / && python -c 'import uow; print(uow.__file__)')",
        ]
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = f"$ {script}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output
    # The uow the examples ran is the clone's, installed by the page's command.
    where = result.stdout.strip().splitlines()[-1]
    assert where == str(clone / "uow" / "__init__.py"), output
