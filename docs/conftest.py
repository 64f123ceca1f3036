"""Let ``pytest docs/`` import uow from this checkout when it is not installed.

The pages' examples run as doctests (setup.cfg: ``--doctest-glob="docs/*.md"``);
``tests/`` gets the checkout on ``sys.path`` from its package layout, the pages
get it here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("uow") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
