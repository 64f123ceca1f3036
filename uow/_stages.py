"""An update as the statements MongoDB accepts, and paths in stored documents.

MongoDB refuses an update whose paths overlap (``$inc lines.0.qty`` beside
``$push lines``); ``in_stages`` cuts the one diff's update (``_diff``) into
consecutive statements of the same command, and ``before_stages`` tells what
the first of them leave when a later one is refused. ``value_at`` and
``replaced_at`` read and replace (copy on write) a value at a dotted path of a
stored document or snapshot, list positions included. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .operators import MISSING, UpdateSpec

__all__: list[str] = []


def in_stages(update: UpdateSpec) -> list[UpdateSpec]:
    """``update`` as the statements MongoDB accepts, in the order to send them.

    One update may not write two paths where one lies under the other. The diff
    gives such pairs in two cases: a ``$push`` to a list whose elements also
    changed inside (``$inc lines.0.qty`` with ``$push lines``), and a
    ``$currentDate`` inside a value another operator writes (``lines.2.at`` in
    an element pushed, see _stamps). Each such push goes in a statement after
    everything else written under its list, and each such date in one after
    the writes above it; everything else goes in the first. Mostly, the one
    statement ``[update]``.
    """
    dates = update.get("$currentDate")
    if "$push" not in update and not (dates and any("." in path for path in dates)):
        return [update]
    writes = [
        (operator, path)
        for operator, written in update.items()
        if operator != "$currentDate"
        for path in written
    ]
    stage_of: dict[tuple[str, str], int] = {}

    def stage(operator: str, path: str) -> int:
        found = stage_of.get((operator, path))
        if found is None:
            found = 0
            if operator == "$push":
                inner = [(o, p) for o, p in writes if p.startswith(path + ".")]
                if inner:
                    found = 1 + max(stage(o, p) for o, p in inner)
            elif operator == "$currentDate":
                above = [(o, p) for o, p in writes if path == p or path.startswith(p + ".")]
                if above:
                    found = 1 + max(stage(o, p) for o, p in above)
            stage_of[(operator, path)] = found
        return found

    placed = [
        (stage(operator, path), operator, path, value)
        for operator, written in update.items()
        for path, value in written.items()
    ]
    if all(index == 0 for index, *_ in placed):
        return [update]
    stages: list[UpdateSpec] = [{} for _ in range(1 + max(index for index, *_ in placed))]
    for index, operator, path, value in placed:
        stages[index].setdefault(operator, {})[path] = value
    return stages


def before_stages(
    snapshot: dict[str, Any], stages: list[UpdateSpec], landed: int
) -> dict[str, Any]:
    """``snapshot``, what the statements ``stages`` leave, as the first ``landed``
    of them leave it: the items later ones append are not there.

    Copy on write (a dict of a snapshot may be an embedded document's kept dump).
    """
    for stage in stages[landed:]:
        for path, pushed in stage.get("$push", {}).items():
            snapshot = replaced_at(snapshot, path.split("."), _dropping(len(pushed["$each"])))
    return snapshot


def value_at(container: Any, parts: list[str]) -> Any:
    """The value at path ``parts`` of a stored form (dict keys and list positions),
    or ``MISSING``."""
    for part in parts:
        if type(container) is dict:
            container = container.get(part, MISSING)
        elif type(container) is list and is_index(part) and int(part) < len(container):
            container = container[int(part)]
        else:
            return MISSING
    return container


def replaced_at(container: Any, parts: list[str], change: Callable[[Any], Any]) -> Any:
    """``container`` with the value at path ``parts`` replaced by ``change(value)``
    (``MISSING`` for a last key not there), copied along the path: a dict of a
    snapshot may be an embedded document's kept dump, never changed in place.
    ``container`` itself where the path does not lead into it."""
    step, rest = parts[0], parts[1:]
    if type(container) is dict:
        if rest and step not in container:
            return container
        value = container.get(step, MISSING)
        new = replaced_at(value, rest, change) if rest else change(value)
        return {**container, step: new}
    if type(container) is list and is_index(step) and int(step) < len(container):
        index = int(step)
        items = list(container)
        items[index] = replaced_at(items[index], rest, change) if rest else change(items[index])
        return items
    return container


def put_at(container: Any, parts: list[str], value: Any) -> Any:
    """``container`` with ``value`` at path ``parts`` (see ``replaced_at``)."""
    return replaced_at(container, parts, lambda _: value)


def _dropping(count: int) -> Callable[[list[Any]], list[Any]]:
    """What takes the last ``count`` items off a list."""
    return lambda items: items[: len(items) - count]


def is_index(part: str) -> bool:
    """Whether a path part is a list position (ASCII digits, as MongoDB reads them)."""
    return part.isascii() and part.isdigit()
