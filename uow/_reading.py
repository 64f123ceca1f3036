"""Queries bound to a session: ``s.query(User).filter(...).sort(...)``.

Each builder method returns a new query (the original is unchanged), so a
query can be kept and refined. Results stream from the session's channel
through its tracker (the identity map). A query holds its session's ``Reader``:
the channel, the tracker, and the session's autoflush and transaction start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from ._channel import Channel
from ._tracker import Tracker
from .exceptions import MultipleFound, NotFound, ValidationError
from .query import Expr, QueryField, class_filter, compile_filter, compile_sort

if TYPE_CHECKING:
    from .document import Document, ModelMeta
    from .transaction import Transaction

__all__ = ["Query", "RemoveQuery"]

D = TypeVar("D", bound="Document")
#: a query type (``filter()`` returns a query of the type it was called on)
F = TypeVar("F", bound="_Filtered[Any]")

#: What ``filter()`` takes positionally: query expressions. ``bool`` is there for
#: type checkers only: they read ``User.age`` with the field's type (the class is
#: an attrs-style dataclass to them), so ``User.age > 3`` looks like a bool.
ExprArg: TypeAlias = Expr | bool


_new = object.__new__


def _no_autoflush(meta: ModelMeta) -> None:
    pass


class Reader:
    """What a session's queries read with: made once per session.

    ``autoflush_for(meta)``: flush if pending work could change a query's result
    on ``meta``'s collection (the session's, until it closes: see ``closed``).
    """

    __slots__ = ("autoflush_for", "channel", "tracker", "transaction")

    def __init__(
        self,
        channel: Channel,
        tracker: Tracker,
        transaction: Transaction,
        autoflush_for: Callable[[ModelMeta], None],
    ) -> None:
        self.channel = channel
        self.tracker = tracker
        self.transaction = transaction
        self.autoflush_for = autoflush_for

    def closed(self) -> None:
        """The session closed: its queries refuse to run (the tracker is closed), and
        the reader lets go of it (a bound method of the session would keep the
        session and the reader in a reference cycle)."""
        self.autoflush_for = _no_autoflush

    def begin(self, meta: ModelMeta) -> None:
        """Before reading: the session is open and flushed."""
        self.tracker.check_open()
        self.autoflush_for(meta)


class _Filtered(Generic[D]):
    # Slots: a query is copied by each builder call (one per lookup in a loop).
    __slots__ = ("_cls", "_exclude", "_meta", "_parts", "_reader")

    def __init__(self, reader: Reader, cls: type[D], exclude_subclasses: bool = False) -> None:
        self._reader = reader
        self._cls = cls
        self._meta: ModelMeta = cls._uow_meta
        self._exclude = exclude_subclasses
        #: the filter's parts, ANDed (a tuple: copies share it)
        self._parts: tuple[dict[str, Any], ...] = ()

    def _copy(self, part: dict[str, Any] | None = None) -> Any:
        """A new query like this one (with ``part`` added to its filter)."""
        clone = _new(type(self))
        clone._reader = self._reader
        clone._cls = self._cls
        clone._meta = self._meta
        clone._exclude = self._exclude
        clone._parts = (*self._parts, part) if part else self._parts
        return clone

    def filter(self: F, *exprs: ExprArg, **lookups: Any) -> F:
        """Narrow the query: expressions (``User.age > 3``) and lookups (``age__gt=3``)."""
        compiled = compile_filter(self._meta, *exprs, **lookups)  # type: ignore[arg-type]
        return self._copy(compiled)  # type: ignore[no-any-return]

    def raw(self) -> dict[str, Any]:
        """The filter dict sent to MongoDB (for debugging)."""
        parts = self._parts
        by_class = class_filter(self._meta, self._exclude)
        if by_class:
            parts = (*parts, by_class)
        if not parts:
            return {}
        if len(parts) == 1:
            return dict(parts[0])
        merged: dict[str, Any] = {}
        for part in parts:
            if any(key in merged or key.startswith("$") for key in part):
                return {"$and": list(parts)}
            merged.update(part)
        return merged


class Query(_Filtered[D]):
    """A query on one document class; iterate it, or call ``all``/``first``/``one``/``count``."""

    __slots__ = ("_fields", "_limit", "_skip", "_sort")

    def __init__(self, reader: Reader, cls: type[D], exclude_subclasses: bool = False) -> None:
        super().__init__(reader, cls, exclude_subclasses)
        self._sort: list[tuple[str, int]] = []
        self._skip = 0
        self._limit = 0
        self._fields: list[str] | None = None

    def _copy(self, part: dict[str, Any] | None = None) -> Any:
        clone = _Filtered._copy(self, part)
        clone._sort = self._sort
        clone._skip = self._skip
        clone._limit = self._limit
        clone._fields = self._fields
        return clone

    def sort(self, *keys: Any) -> Query[D]:
        """Order by ``User.name.asc()``, ``User.age.desc()``, ``"name"`` or ``"-age"``."""
        clone: Query[D] = self._copy()
        clone._sort = self._sort + compile_sort(self._meta, keys)
        return clone

    def skip(self, n: int) -> Query[D]:
        """Skip the first ``n`` results."""
        clone: Query[D] = self._copy()
        clone._skip = _count_arg("skip", n)
        return clone

    def limit(self, n: int) -> Query[D]:
        """Return at most ``n`` results (0: no limit)."""
        clone: Query[D] = self._copy()
        clone._limit = _count_arg("limit", n)
        return clone

    def fields(self, *names: str | QueryField) -> Query[D]:
        """Load only these fields; reading another raises ``FieldNotLoaded``.

        ``id``, the version field and the shard key fields always load: the
        writes of a partial document are conditional on them. Saving a partial
        document never clears the fields it did not load.
        """
        chosen: list[str] = []
        for name in names:
            attribute = name.attribute_path if isinstance(name, QueryField) else name
            top = attribute.split(".", 1)[0]
            if top not in self._meta.by_name:
                raise ValidationError(
                    f"fields(): {self._meta.name} has no field {attribute!r}",
                    document_class=self._meta.name,
                    field=attribute,
                )
            chosen.append(top)
        clone: Query[D] = self._copy()
        clone._fields = chosen
        return clone

    def _projection(self) -> tuple[dict[str, int] | None, frozenset[str] | None]:
        if self._fields is None:
            return None, None
        meta = self._meta
        # What a partial document's update or delete puts in its filter must be
        # the stored value, not a default.
        keep = {*self._fields, "id", *meta.shard_key}
        if meta.version_field is not None:
            keep.add(meta.version_field.name)
        projection = {meta.by_name[name].key: 1 for name in keep}
        projection["_cls"] = 1
        # Every field of the hierarchy: a subclass's own fields are not loaded either.
        names = {
            name
            for sub in meta.subclasses.values()
            if issubclass(sub, self._cls)
            for name in sub._uow_meta.by_name
        }
        absent = frozenset(name for name in names | meta.by_name.keys() if name not in keep)
        return projection, absent or None

    def _begin(self) -> tuple[dict[str, int] | None, frozenset[str] | None]:
        """Before reading: the session is open and flushed; the projection and absent fields."""
        self._reader.begin(self._meta)
        return self._projection()

    def _rows(self) -> tuple[Iterator[Mapping[str, Any]], frozenset[str] | None]:
        """The stored documents (streamed from the cursor) and the fields left out."""
        projection, absent = self._begin()
        rows = self._reader.channel.find(
            self._meta,
            self.raw(),
            sort=self._sort or None,
            skip=self._skip,
            limit=self._limit,
            projection=projection,
        )
        return rows, absent

    def _iterate(self) -> Iterator[D]:
        tracker = self._reader.tracker
        rows, absent = self._rows()
        load = tracker.load
        for raw in rows:
            if tracker.closed:
                # Its documents would belong to a closed session, and could be
                # added nowhere: the iteration ends with the session.
                tracker.check_open()
            yield load(self._cls, raw, absent)

    def __iter__(self) -> Iterator[D]:
        """Stream the results from the cursor (not built all at once)."""
        return self._iterate()

    def all(self) -> list[D]:
        """Every result, as a list."""
        rows, absent = self._rows()
        return self._reader.tracker.load_all(self._cls, rows, absent)

    def first(self) -> D | None:
        """The first result, or None when nothing matches."""
        reader = self._reader
        meta = self._meta
        parts = self._parts
        if (
            len(parts) == 1
            and meta.cls_name is None
            and not self._exclude
            and self._fields is None
            and not self._sort
            and not self._skip
        ):
            # The most frequent query (one filter on a root class, every field): no
            # projection, no class condition, nothing to merge.
            reader.begin(meta)
            raw = reader.channel.find_one(meta, dict(parts[0]))
            return None if raw is None else reader.tracker.load(self._cls, raw)
        projection, absent = self._begin()
        raw = reader.channel.find_one(
            self._meta, self.raw(), sort=self._sort or None, skip=self._skip, projection=projection
        )
        return None if raw is None else reader.tracker.load(self._cls, raw, absent)

    def one(self) -> D:
        """The only result.

        Raises:
            NotFound: nothing matches.
            MultipleFound: more than one document matches.
        """
        found = self.limit(2 if not self._limit else min(self._limit, 2)).all()
        if not found:
            raise NotFound(f"no {self._meta.name} matches {self.raw()!r}")
        if len(found) > 1:
            raise MultipleFound(f"more than one {self._meta.name} matches {self.raw()!r}")
        return found[0]

    def count(self) -> int:
        """How many stored documents match (after autoflush), within ``skip`` and
        ``limit`` when given: as many as ``all()`` would return."""
        self._reader.begin(self._meta)
        return self._reader.channel.count(self._meta, self.raw(), self._skip, self._limit)

    def __repr__(self) -> str:
        return f"<Query {self._meta.name} {self.raw()!r}>"


class RemoveQuery(_Filtered[D]):
    """A delete by filter: ``s.remove_query(User).filter(...).execute()``."""

    __slots__ = ()

    def filter(self, *exprs: ExprArg, **lookups: Any) -> RemoveQuery[D]:
        """Narrow what is deleted."""
        result: RemoveQuery[D] = super().filter(*exprs, **lookups)
        return result

    def execute(self) -> int:
        """Delete the matching documents now (after autoflush); returns how many.

        Tracked documents that matched leave the identity map as ``DETACHED``.
        """
        reader = self._reader
        reader.begin(self._meta)
        # Inside the session's transaction, so that rollback() undoes it too.
        reader.transaction.begin_if_needed()
        channel = reader.channel
        filter_ = self.raw()
        ids = [raw["_id"] for raw in channel.find(self._meta, filter_, projection={"_id": 1})]
        if not ids:
            return 0
        target = {"$and": [filter_, {"_id": {"$in": ids}}]} if filter_ else {"_id": {"$in": ids}}
        deleted = channel.delete_many(self._meta, target)
        collection_name = self._meta.collection
        assert collection_name is not None  # delete_many() refused an abstract class
        in_transaction = reader.transaction.active
        for stored_id in ids:
            reader.tracker.forget_deleted_id(collection_name, stored_id, in_transaction)
        return deleted


def _count_arg(name: str, n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValidationError(f"{name}() takes an int >= 0, got {n!r}")
    return n
