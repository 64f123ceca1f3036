"""Hypothesis profiles of the model-based tests (issue #17, "Nothing lost, ever").

* ``ci`` (used unless ``--hypothesis-profile`` is given): small and reproducible,
  so ``tests/model`` finishes within about 40 s on both lanes together.
  ``derandomize=True`` with ``database=None``: every run tries the same
  examples, and a failure found once is found again without a local database.
* ``long``: 400 examples of 30 steps per lane (12,000 steps each), for a hunt:
  ``pytest tests/model --hypothesis-profile=long``.

The profiles are only registered here, never loaded: loading one would change
the settings of every other hypothesis test in the run. ``test_stateful.py``
picks ``ci`` itself when no profile was asked for on the command line.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "print_blob": True,
    "report_multiple_bugs": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}

settings.register_profile(
    "ci",
    max_examples=30,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    **_COMMON,  # type: ignore[arg-type]
)
settings.register_profile(
    "long",
    max_examples=400,
    stateful_step_count=30,
    **_COMMON,  # type: ignore[arg-type]
)
