"""attack9: transactions, session options, stats and integrations (black-box, SPEC.md only)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions", "failpoint"]


@pytest.fixture
def failpoint(secantus_client: pymongo.MongoClient[Any]) -> Iterator[Callable[..., None]]:
    """Set SecantusDB's ``failCommand`` fail point; it is switched off after the test."""

    def set_failpoint(
        commands: list[str],
        *,
        code: int,
        labels: list[str] | None = None,
        times: int | None = 1,
    ) -> None:
        mode: Any = "alwaysOn" if times is None else {"times": times}
        data: dict[str, Any] = {"failCommands": commands, "errorCode": code}
        if labels:
            data["errorLabels"] = labels
        secantus_client.admin.command(
            {"configureFailPoint": "failCommand", "mode": mode, "data": data}
        )

    yield set_failpoint
    with contextlib.suppress(Exception):
        secantus_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
