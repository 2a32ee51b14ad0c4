"""The ledger: a local SQLite record of every launch, for cleanup and cost accounting.

Every launch goes through three steps, each a committed transaction:

1. **intent** (status ``pending``): written *before* the provider is called, with
   the launch id, the provider and the price the launch is expected to cost;
2. **confirm** (status ``open``): the provider answered with the resource's id
   (and the price it was launched at);
3. **close** (status ``closed``): the provider reported the resource gone (or
   terminating), or the launch certainly created nothing; with the end time
   and the final cost.

A process that dies between any two steps leaves a record that
:func:`runctl.lifecycle.reconcile` can finish: a ``pending`` record is matched
to the provider's resources by launch id (adopted) or closed when nothing
carries that id; an ``open`` one is closed once its resource is gone.

The database lives in the runctl home (``ledger.sqlite3``), in WAL mode with a
busy timeout, so several processes (a training script, a notebook, the CLI) can
read and write it at once. Each operation opens its own short connection, so a
:class:`Ledger` object can be shared between threads and event loops.

The ledger never stores a launch's environment, command or SSH key (they may
hold secrets): only its name, tags, TTL and price.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import clock
from .cost import Money, Price
from .errors import ConfigurationError, ValidationError
from .models import TAG_LAUNCH_ID, TAG_TTL, ResourceState

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .models import LaunchSpec, Resource

__all__ = ["SCHEMA_VERSION", "LaunchRecord", "Ledger", "RecordStatus", "Spend"]

#: Version of the database layout, kept in SQLite's ``user_version``.
SCHEMA_VERSION = 1

RecordStatus = Literal["pending", "open", "closed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS launches (
    launch_id    TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'open', 'closed')),
    resource_id  TEXT,
    name         TEXT,
    tags         TEXT NOT NULL DEFAULT '{}',
    ttl_seconds  INTEGER,
    price        TEXT,
    state        TEXT,
    intent_at    TEXT NOT NULL,
    confirmed_at TEXT,
    created_at   TEXT,
    started_at   TEXT,
    ended_at     TEXT,
    final_cost   TEXT,
    currency     TEXT,
    note         TEXT,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS launches_resource
    ON launches (provider, resource_id) WHERE resource_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS launches_status ON launches (status);
"""


def _utcnow() -> datetime:
    return clock.now()


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@attrs.frozen(kw_only=True)
class LaunchRecord:
    """One launch as the ledger knows it.

    Attributes:
        launch_id: the launch's idempotency key.
        provider: provider name.
        status: ``"pending"`` (intent written, provider not confirmed), ``"open"``
            (the resource exists or may exist) or ``"closed"`` (it is gone, or was
            never created: then ``resource_id`` is ``None``).
        resource_id: the provider's id, once known.
        name: the launch's name.
        tags: the tags put on the resource.
        ttl: time to live from creation, when set.
        price: the price it was launched at (the expected one while pending).
        state: the last state observed.
        intent_at: when the intent was written.
        confirmed_at: when the provider's id was recorded.
        created_at: when the provider created it (as the provider said).
        started_at: when it started running (billing start).
        ended_at: when it ended.
        final_cost: what it cost, once closed (``None`` if the price is unknown).
        note: why the record is in its status (e.g. ``"cancelled; nothing created"``).
    """

    launch_id: str
    provider: str
    status: RecordStatus
    resource_id: str | None = None
    name: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict)
    ttl: timedelta | None = None
    price: Price | None = None
    state: ResourceState | None = None
    intent_at: datetime
    confirmed_at: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    final_cost: Money | None = None
    note: str | None = None

    @property
    def is_closed(self) -> bool:
        """True once the record is final."""
        return self.status == "closed"

    def cost_so_far(self, now: datetime | None = None) -> Money | None:
        """Final cost when closed; else the cost from start (or creation) to ``now``.

        ``None`` when the price is unknown.
        """
        if self.status == "closed":
            return self.final_cost
        if self.price is None:
            return None
        if self.resource_id is None:
            return Money.zero(self.price.currency)
        start = self.started_at or self.created_at or self.confirmed_at or self.intent_at
        end = now or _utcnow()
        return self.price.compute_cost(max(end - start, timedelta(0)))

    def expires_at(self) -> datetime | None:
        """When the TTL runs out (``None``: no TTL)."""
        if self.ttl is None:
            return None
        return (self.created_at or self.confirmed_at or self.intent_at) + self.ttl


@attrs.frozen(kw_only=True)
class Spend:
    """What the ledger's launches cost, in one currency.

    Attributes:
        hourly: the sum of ``per_hour`` over launches not yet closed.
        total: final costs of closed launches plus the cost so far of the others.
        open_launches: launches not yet closed.
        uncounted: launches priced in another currency (not in the sums).
    """

    hourly: Money
    total: Money
    open_launches: int
    uncounted: int = 0


class Ledger:
    """The local record of launches. Safe to use from several processes at once.

    Args:
        path: the database file; default ``ledger.sqlite3`` in the runctl home.
        timeout: seconds to wait for another process's write to finish.

    Raises:
        ConfigurationError: the database cannot be opened, or was written by a
            newer runctl.
    """

    def __init__(self, path: Path | str | None = None, *, timeout: float = 30.0) -> None:
        if path is None:
            from .config import runctl_home

            path = runctl_home() / "ledger.sqlite3"
        self.path = Path(path)
        self._timeout = timeout
        self._ready = False

    def __repr__(self) -> str:
        return f"<Ledger {str(self.path)!r}>"

    # --- connection -------------------------------------------------------------------------

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._create()
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise ConfigurationError(f"ledger {self.path}: cannot open: {e}") from e
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            # IMMEDIATE takes the write lock up front, so read-then-write cannot race.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise ConfigurationError(f"ledger {self.path}: {e}") from e
        finally:
            conn.close()

    def _create(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise ConfigurationError(f"ledger {self.path}: cannot open: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise ConfigurationError(
                    f"ledger {self.path}: written by a newer runctl (schema {version}, "
                    f"this runctl reads up to {SCHEMA_VERSION}); upgrade runctl"
                )
            # Not executescript: it would commit the transaction taken above.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise ConfigurationError(f"ledger {self.path}: cannot create: {e}") from e
        finally:
            conn.close()
        self._ready = True

    # --- writing ----------------------------------------------------------------------------

    def record_intent(
        self, spec: LaunchSpec, *, provider: str, price: Price | None = None
    ) -> LaunchRecord:
        """Write that ``spec`` is about to be launched on ``provider``.

        Idempotent: an existing record for the launch id is returned unchanged, so a
        retried launch finds its earlier attempt; a record closed because its launch
        created nothing is made pending again.

        Raises:
            ValidationError: the launch id is already recorded for another provider.
        """
        now = _iso(_utcnow())
        with self._connect(write=True) as conn:
            row = conn.execute(
                "SELECT * FROM launches WHERE launch_id = ?", (spec.launch_id,)
            ).fetchone()
            if row is not None:
                record = _record(row)
                if record.provider != provider:
                    raise ValidationError(
                        "launch_id",
                        f"{spec.launch_id!r} was already used for a launch on {record.provider!r}",
                        allowed="a launch id not used before, or the same provider",
                    )
                if not (record.is_closed and record.resource_id is None):
                    return record
                # An earlier attempt created nothing: this one starts afresh.
                conn.execute(
                    "UPDATE launches SET status = 'pending', price = ?, currency = ?, "
                    "intent_at = ?, ended_at = NULL, final_cost = NULL, state = NULL, "
                    "note = NULL, updated_at = ? WHERE launch_id = ?",
                    (
                        _dump_price(price),
                        None if price is None else price.currency,
                        now,
                        now,
                        spec.launch_id,
                    ),
                )
                return self._get(conn, spec.launch_id)
            conn.execute(
                "INSERT INTO launches (launch_id, provider, status, name, tags, ttl_seconds, "
                "price, currency, intent_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.launch_id,
                    provider,
                    spec.name,
                    _dump_tags(spec.runctl_tags),
                    None if spec.ttl is None else int(spec.ttl.total_seconds()),
                    _dump_price(price),
                    None if price is None else price.currency,
                    now,
                    now,
                ),
            )
            return self._get(conn, spec.launch_id)

    def confirm(self, launch_id: str, resource: Resource) -> LaunchRecord:
        """Record the provider's id (and launch price) for a pending launch.

        Also records later observations of an open launch. A closed record is not
        reopened.

        Raises:
            ValidationError: no record for ``launch_id``.
        """
        with self._connect(write=True) as conn:
            record = self._get(conn, launch_id)
            if record.status == "closed":
                return record
            price = resource.price or record.price
            conn.execute(
                "UPDATE launches SET status = 'open', resource_id = ?, price = ?, currency = ?, "
                "state = ?, confirmed_at = COALESCE(confirmed_at, ?), created_at = ?, "
                "started_at = ?, updated_at = ? WHERE launch_id = ?",
                (
                    resource.id,
                    _dump_price(price),
                    None if price is None else price.currency,
                    resource.state.value,
                    _iso(_utcnow()),
                    _iso(resource.created_at or record.created_at),
                    _iso(resource.started_at or record.started_at),
                    _iso(_utcnow()),
                    launch_id,
                ),
            )
            return self._get(conn, launch_id)

    def adopt(self, resource: Resource, *, note: str) -> LaunchRecord:
        """Record a resource runctl launched but this ledger never heard of.

        The launch id comes from the resource's tags (a fresh one when it has none).
        An existing record for the same resource is returned unchanged.
        """
        launch_id = resource.launch_id or resource.tags.get(TAG_LAUNCH_ID)
        now = _iso(_utcnow())
        with self._connect(write=True) as conn:
            row = conn.execute(
                "SELECT * FROM launches WHERE provider = ? AND resource_id = ?",
                (resource.provider, resource.id),
            ).fetchone()
            if row is not None:
                return _record(row)
            if not launch_id or conn.execute(
                "SELECT 1 FROM launches WHERE launch_id = ?", (launch_id,)
            ).fetchone():
                launch_id = f"adopted-{resource.provider}-{resource.id}"[:64]
            ttl = resource.tags.get(TAG_TTL)
            conn.execute(
                "INSERT INTO launches (launch_id, provider, status, resource_id, name, tags, "
                "ttl_seconds, price, currency, state, intent_at, confirmed_at, created_at, "
                "started_at, note, updated_at) "
                "VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    launch_id,
                    resource.provider,
                    resource.id,
                    resource.name,
                    _dump_tags(resource.tags),
                    int(ttl) if ttl and ttl.isdigit() else None,
                    _dump_price(resource.price),
                    None if resource.price is None else resource.price.currency,
                    resource.state.value,
                    _iso(resource.created_at) or now,
                    now,
                    _iso(resource.created_at),
                    _iso(resource.started_at),
                    note,
                    now,
                ),
            )
            return self._get(conn, launch_id)

    def close(
        self,
        launch_id: str,
        *,
        state: ResourceState | None = None,
        ended_at: datetime | None = None,
        final_cost: Money | None = None,
        note: str | None = None,
    ) -> LaunchRecord:
        """Close a record: its resource is gone (or terminating), or was never created.

        ``final_cost`` defaults to the launch price applied from start to ``ended_at``
        (zero when no resource was created). Closing a closed record changes nothing.

        Raises:
            ValidationError: no record for ``launch_id``.
        """
        with self._connect(write=True) as conn:
            record = self._get(conn, launch_id)
            if record.status == "closed":
                return record
            ended = ended_at or _utcnow()
            if final_cost is None:
                final_cost = record.cost_so_far(ended)
            conn.execute(
                "UPDATE launches SET status = 'closed', state = COALESCE(?, state), ended_at = ?, "
                "final_cost = ?, note = COALESCE(?, note), updated_at = ? WHERE launch_id = ?",
                (
                    None if state is None else state.value,
                    _iso(ended),
                    None if final_cost is None else str(final_cost.amount),
                    note,
                    _iso(_utcnow()),
                    launch_id,
                ),
            )
            return self._get(conn, launch_id)

    def annotate(self, launch_id: str, note: str) -> LaunchRecord:
        """Set the note saying why the record is in its status (e.g. a failed cleanup).

        Raises:
            ValidationError: no record for ``launch_id``.
        """
        with self._connect(write=True) as conn:
            self._get(conn, launch_id)
            conn.execute(
                "UPDATE launches SET note = ?, updated_at = ? WHERE launch_id = ?",
                (note, _iso(_utcnow()), launch_id),
            )
            return self._get(conn, launch_id)

    # --- reading ----------------------------------------------------------------------------

    def get(self, launch_id: str) -> LaunchRecord | None:
        """The record for ``launch_id``, or ``None``."""
        with self._connect(write=False) as conn:
            row = conn.execute(
                "SELECT * FROM launches WHERE launch_id = ?", (launch_id,)
            ).fetchone()
            return None if row is None else _record(row)

    def find_resource(self, provider: str, resource_id: str) -> LaunchRecord | None:
        """The record of the launch that created ``resource_id`` on ``provider``, or ``None``."""
        with self._connect(write=False) as conn:
            row = conn.execute(
                "SELECT * FROM launches WHERE provider = ? AND resource_id = ?",
                (provider, resource_id),
            ).fetchone()
            return None if row is None else _record(row)

    def locate(self, resource_id: str) -> list[LaunchRecord]:
        """Every record of a resource with this id, on any provider (usually one)."""
        with self._connect(write=False) as conn:
            rows = conn.execute(
                "SELECT * FROM launches WHERE resource_id = ?", (resource_id,)
            ).fetchall()
            return [_record(row) for row in rows]

    def records(
        self,
        *,
        provider: str | None = None,
        status: RecordStatus | Sequence[RecordStatus] | None = None,
    ) -> list[LaunchRecord]:
        """Records, oldest intent first, optionally only one provider's or some statuses."""
        where: list[str] = []
        args: list[Any] = []
        if provider is not None:
            where.append("provider = ?")
            args.append(provider)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        sql = "SELECT * FROM launches"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY intent_at, launch_id"
        with self._connect(write=False) as conn:
            return [_record(row) for row in conn.execute(sql, args).fetchall()]

    def open_records(self, provider: str | None = None) -> list[LaunchRecord]:
        """Records not yet closed (``pending`` and ``open``)."""
        return self.records(provider=provider, status=("pending", "open"))

    def spend(self, currency: str = "USD", *, now: datetime | None = None) -> Spend:
        """What launches cost in ``currency``: per hour now, and in total so far."""
        now = now or _utcnow()
        hourly = Money.zero(currency)
        total = Money.zero(currency)
        open_count = 0
        uncounted = 0
        for record in self.records():
            if record.status != "closed":
                open_count += 1
            if record.price is None:
                continue
            if record.price.currency != currency:
                uncounted += 1
                continue
            if record.status != "closed":
                hourly = hourly + record.price.per_hour
            so_far = record.cost_so_far(now)
            if so_far is not None:
                total = total + so_far
        return Spend(hourly=hourly, total=total, open_launches=open_count, uncounted=uncounted)

    def _get(self, conn: sqlite3.Connection, launch_id: str) -> LaunchRecord:
        row = conn.execute("SELECT * FROM launches WHERE launch_id = ?", (launch_id,)).fetchone()
        if row is None:
            raise ValidationError("launch_id", f"{launch_id!r} is not in the ledger")
        return _record(row)


def _dump_tags(tags: dict[str, str]) -> str:
    import json

    return json.dumps(tags, sort_keys=True)


def _dump_price(price: Price | None) -> str | None:
    if price is None:
        return None
    from ._convert import to_json

    return to_json(price)


def _record(row: sqlite3.Row) -> LaunchRecord:
    import json

    from ._convert import from_json

    price = None if row["price"] is None else from_json(row["price"], Price)
    final = row["final_cost"]
    currency = row["currency"] or (price.currency if price else "USD")
    return LaunchRecord(
        launch_id=row["launch_id"],
        provider=row["provider"],
        status=row["status"],
        resource_id=row["resource_id"],
        name=row["name"],
        tags=json.loads(row["tags"] or "{}"),
        ttl=None if row["ttl_seconds"] is None else timedelta(seconds=row["ttl_seconds"]),
        price=price,
        state=None if row["state"] is None else ResourceState(row["state"]),
        intent_at=_parse_time(row["intent_at"]) or _utcnow(),
        confirmed_at=_parse_time(row["confirmed_at"]),
        created_at=_parse_time(row["created_at"]),
        started_at=_parse_time(row["started_at"]),
        ended_at=_parse_time(row["ended_at"]),
        final_cost=None if final is None else Money(Decimal(final), currency),
        note=row["note"],
    )
