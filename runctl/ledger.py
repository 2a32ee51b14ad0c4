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
:func:`runctl.reconcile.reconcile` can finish: a ``pending`` record is matched
to the provider's resources by launch id (adopted) or closed when nothing
carries that id; an ``open`` one is closed once its resource is gone.

The database lives in the runctl home (``ledger.sqlite3``), in WAL mode with a
busy timeout, so several processes (a training script, a notebook, the CLI) can
read and write it at once. Each operation opens its own short connection, so a
:class:`Ledger` object can be shared between threads and event loops.

The ledger never stores a launch's environment, command or SSH key (they may
hold secrets): only its name, tags, TTL (and where it came from) and price.

The ledger is not a single point of failure. Reading never waits behind a
writer (WAL readers, and a ledger already created takes no write lock to be
read); a row that cannot be read is reported (a warning) and skipped; a
read-only home or a full disk is an error for writes only; a corrupt file is
moved aside by :meth:`Ledger.rebuild`, which :func:`runctl.reconcile.reconcile`
calls before rebuilding the records from what the providers report. Every
failure is a :class:`~runctl.errors.LedgerError` saying which of these it is.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import clock
from .cost import Money, Price
from .errors import LedgerError, ValidationError
from .models import MAX_TTL, TAG_LAUNCH_ID, TAG_TTL, ResourceState

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .models import LaunchSpec, Resource

__all__ = ["SCHEMA_VERSION", "LaunchRecord", "Ledger", "RecordStatus", "Spend", "TtlSource"]

logger = logging.getLogger("runctl.ledger")

#: Version of the database layout, kept in SQLite's ``user_version``.
#: 2: ``ttl_source`` says where each record's TTL came from.
SCHEMA_VERSION = 2

RecordStatus = Literal["pending", "open", "closed"]
#: Where a record's TTL came from: the launch's own, runctl's default, the resource's
#: ``runctl-ttl`` tag (adopted resources), or none (records written before schema 2).
TtlSource = Literal["spec", "default", "tag", "none"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS launches (
    launch_id    TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'open', 'closed')),
    resource_id  TEXT,
    name         TEXT,
    tags         TEXT NOT NULL DEFAULT '{}',
    ttl_seconds  INTEGER,
    ttl_source   TEXT,
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
#: Each step from version N - 1 to N, run in the transaction that creates the schema.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE launches ADD COLUMN ttl_source TEXT",
        "UPDATE launches SET ttl_source = "
        "CASE WHEN ttl_seconds IS NULL THEN 'none' ELSE 'spec' END",
    ),
}
#: SQLite's primary result codes that say what went wrong, as LedgerError reasons.
_SQLITE_REASONS = {
    5: "locked",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "full",  # SQLITE_IOERR: a write the disk refused
    11: "corrupt",  # SQLITE_CORRUPT
    13: "full",  # SQLITE_FULL
    14: "unavailable",  # SQLITE_CANTOPEN
    26: "corrupt",  # SQLITE_NOTADB
}
_HINTS = {
    "locked": "another process held the ledger longer than the timeout; try again",
    "read-only": "the runctl home is read-only; listing works, launching needs it writable",
    "full": "the disk is full (or refused the write); free space and try again",
    "corrupt": "the file is damaged; `runctl reconcile` moves it aside and rebuilds it "
    "from what the providers report",
    "missing": "the file was deleted or replaced while in use; `runctl reconcile` rebuilds it",
    "unavailable": "cannot open the file",
}


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
        ttl_source: where the TTL came from (:data:`TtlSource`).
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
    ttl_source: TtlSource = "none"
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
        try:
            return (self.created_at or self.confirmed_at or self.intent_at) + self.ttl
        except OverflowError:  # beyond year 9999: never
            return None


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

    def _error(self, e: BaseException, *, write: bool, doing: str) -> LedgerError:
        reason = _reason(e)
        if reason == "unavailable" and write and not _writable(self.path.parent):
            reason = "read-only"
        if reason == "missing":
            self._ready = False  # the next use creates the schema again
        return LedgerError(self.path, reason, f"cannot {doing}: {e} ({_HINTS[reason]})")

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._create(write=write)
        if not write and not self.path.exists():
            # Nothing recorded (and maybe a read-only home): an empty ledger answers.
            conn = sqlite3.connect(":memory:", isolation_level=None)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        else:
            conn = self._open(write=write)
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
        except (sqlite3.Error, OSError) as e:
            raise self._error(e, write=write, doing="write" if write else "read") from e
        finally:
            conn.close()

    def _open(self, *, write: bool) -> sqlite3.Connection:
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            if not write:
                conn.execute("PRAGMA schema_version")  # the file is opened here
            return conn
        except sqlite3.Error as e:
            if conn is not None:
                conn.close()
            # Opening WAL for reading makes its -shm file: on a read-only home or a
            # full disk that fails, and the file is read as it is instead.
            if write or _reason(e) not in ("unavailable", "read-only", "full"):
                raise self._error(e, write=write, doing="open") from e
        return self._open_read_only()

    def _open_read_only(self) -> sqlite3.Connection:
        # A read-only home (or a full disk): WAL needs its -shm file, which cannot be
        # made there; nobody can write this file meanwhile, so it is read as immutable.
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        try:
            return sqlite3.connect(uri, uri=True, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise self._error(e, write=False, doing="open") from e

    def _create(self, *, write: bool = True) -> None:
        """Create or migrate the schema; a ledger already current is only read."""
        if not self.path.exists():
            if not write:
                # Made on first use where it can be; where it cannot (a read-only home),
                # reading finds nothing rather than failing.
                try:
                    self._create(write=True)
                except LedgerError as e:
                    if e.reason != "read-only":
                        raise
                return
            self._make_file()
            version = 0  # just made: empty
        else:
            version = self._version()
        if version == SCHEMA_VERSION:
            self._ready = True
            return
        if version > SCHEMA_VERSION:
            raise LedgerError(
                self.path, "unavailable",
                f"written by a newer runctl (schema {version}, this runctl reads up to "
                f"{SCHEMA_VERSION}); upgrade runctl",
            )
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise self._error(e, write=True, doing="open") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            self._use_wal(conn)
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            fresh = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'launches'"
            ).fetchone() is None
            # Not executescript: it would commit the transaction taken above.
            if fresh:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            else:
                for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._error(e, write=True, doing="create its tables") from e
        finally:
            conn.close()
        self._ready = True

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, waiting out other processes doing the same.

        Changing the journal mode takes an exclusive lock, and SQLite answers "locked"
        at once, without its busy handler, while another process holds the file (eight
        processes opening a new ledger together): retried until ``timeout``.
        """
        import time

        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e) or "busy" in str(e)
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _make_file(self) -> None:
        from .config import private_dir

        try:
            private_dir(self.path.parent)
            # Created private (0600); SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as e:
            reason = _reason(e)
            raise LedgerError(
                self.path, reason, f"cannot create the file: {e} ({_HINTS[reason]})"
            ) from e

    def _version(self) -> int:
        conn = self._open(write=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if 0 < version <= SCHEMA_VERSION and conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'launches'"
            ).fetchone() is None:
                return 0
            return version
        except sqlite3.Error as e:
            raise self._error(e, write=False, doing="read") from e
        finally:
            conn.close()

    def rebuild(self) -> Path | None:
        """Move a corrupt ledger file aside and start an empty one.

        :func:`runctl.reconcile.reconcile` calls this when the ledger is corrupt, then
        records what the providers report.

        Returns:
            Where the damaged file was moved (``None``: it was readable, so kept).
        """
        try:
            self._version()
            with self._connect(write=False) as conn:
                # Damage inside a page passes a plain read of the header: check them all.
                verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
                conn.execute("SELECT count(*) FROM launches").fetchone()
            if verdict == "ok":
                return None
        except LedgerError as e:
            if e.reason not in ("corrupt", "missing"):
                raise
        stamp = _utcnow().strftime("%Y%m%dT%H%M%S%f")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                extra = self.path.with_name(self.path.name + suffix)
                if extra.exists():
                    os.replace(extra, aside.with_name(aside.name + suffix))
        except OSError as e:
            raise LedgerError(self.path, "read-only", f"cannot move it aside: {e}") from e
        logger.warning("ledger %s was corrupt: moved to %s; rebuilding it", self.path, aside)
        self._ready = False
        self._create()
        return aside

    # --- writing ----------------------------------------------------------------------------

    def record_intent(
        self,
        spec: LaunchSpec,
        *,
        provider: str,
        price: Price | None = None,
        ttl_source: TtlSource | None = None,
        guard: Callable[[Callable[[str], Spend]], None] | None = None,
    ) -> LaunchRecord:
        """Write that ``spec`` is about to be launched on ``provider``.

        Idempotent: an existing record for the launch id is returned unchanged, so a
        retried launch finds its earlier attempt; a record closed because its launch
        created nothing is made pending again.

        Args:
            spec: the launch.
            provider: where it is launched.
            price: the price it is expected to cost.
            ttl_source: where ``spec.ttl`` came from (default ``"spec"``, or
                ``"none"`` without a TTL).
            guard: called before a new intent is written, in the same ``BEGIN
                IMMEDIATE`` transaction, with a function giving the ledger's
                :class:`Spend` in a currency; what it raises aborts the intent. So a
                budget check and the intent it allows are one step, across processes.

        Raises:
            ValidationError: the launch id is already recorded for another provider.
            LedgerError: the ledger cannot be written.
        """
        now = _iso(_utcnow())
        source = ttl_source or ("none" if spec.ttl is None else "spec")
        ttl_seconds = None if spec.ttl is None else spec.ttl.total_seconds()
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
                if guard is not None:
                    guard(lambda currency: self._spend(conn, currency, None))
                # An earlier attempt created nothing: this one starts afresh.
                conn.execute(
                    "UPDATE launches SET status = 'pending', price = ?, currency = ?, "
                    "ttl_seconds = ?, ttl_source = ?, "
                    "intent_at = ?, ended_at = NULL, final_cost = NULL, state = NULL, "
                    "note = NULL, updated_at = ? WHERE launch_id = ?",
                    (
                        _dump_price(price),
                        None if price is None else price.currency,
                        ttl_seconds,
                        source,
                        now,
                        now,
                        spec.launch_id,
                    ),
                )
                return self._get(conn, spec.launch_id)
            if guard is not None:
                guard(lambda currency: self._spend(conn, currency, None))
            conn.execute(
                "INSERT INTO launches (launch_id, provider, status, name, tags, ttl_seconds, "
                "ttl_source, price, currency, intent_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.launch_id,
                    provider,
                    spec.name,
                    _dump_tags(spec.runctl_tags),
                    ttl_seconds,
                    source,
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

    def adopt(
        self, resource: Resource, *, note: str, default_ttl: timedelta | None = None
    ) -> LaunchRecord:
        """Record a resource runctl launched but this ledger never heard of.

        The launch id comes from the resource's tags (a fresh one when it has none).
        The TTL is the resource's ``runctl-ttl`` tag, else ``default_ttl``, so that
        :func:`~runctl.reconcile.cleanup` ends an adopted resource too once it is past it.
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
            ttl = _tag_ttl(resource.tags.get(TAG_TTL))
            source: TtlSource = "tag"
            if ttl is None:
                ttl, source = default_ttl, "none" if default_ttl is None else "default"
            conn.execute(
                "INSERT INTO launches (launch_id, provider, status, resource_id, name, tags, "
                "ttl_seconds, ttl_source, price, currency, state, intent_at, confirmed_at, "
                "created_at, started_at, note, updated_at) "
                "VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    launch_id,
                    resource.provider,
                    resource.id,
                    resource.name,
                    _dump_tags(resource.tags),
                    None if ttl is None else ttl.total_seconds(),
                    source,
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
        """The record for ``launch_id``, or ``None`` (also for a row that cannot be read)."""
        with self._connect(write=False) as conn:
            found = _records(conn, "SELECT * FROM launches WHERE launch_id = ?", (launch_id,))
            return found[0] if found else None

    def find_resource(self, provider: str, resource_id: str) -> LaunchRecord | None:
        """The record of the launch that created ``resource_id`` on ``provider``, or ``None``."""
        with self._connect(write=False) as conn:
            found = _records(
                conn,
                "SELECT * FROM launches WHERE provider = ? AND resource_id = ?",
                (provider, resource_id),
            )
            return found[0] if found else None

    def locate(self, resource_id: str) -> list[LaunchRecord]:
        """Every record of a resource with this id, on any provider (usually one)."""
        with self._connect(write=False) as conn:
            return _records(conn, "SELECT * FROM launches WHERE resource_id = ?", (resource_id,))

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
            return _records(conn, sql, args)

    def open_records(self, provider: str | None = None) -> list[LaunchRecord]:
        """Records not yet closed (``pending`` and ``open``)."""
        return self.records(provider=provider, status=("pending", "open"))

    def spend(self, currency: str = "USD", *, now: datetime | None = None) -> Spend:
        """What launches cost in ``currency``: per hour now, and in total so far."""
        with self._connect(write=False) as conn:
            return self._spend(conn, currency, now)

    def _spend(self, conn: sqlite3.Connection, currency: str, now: datetime | None) -> Spend:
        now = now or _utcnow()
        hourly = Money.zero(currency)
        total = Money.zero(currency)
        open_count = 0
        uncounted = 0
        for record in _records(conn, "SELECT * FROM launches ORDER BY intent_at, launch_id", ()):
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
        try:
            return _record(row)
        except (ValueError, TypeError, KeyError, ArithmeticError) as e:
            raise LedgerError(
                self.path, "bad-row", f"the record of launch {launch_id!r} cannot be read: {e}"
            ) from e


def _dump_tags(tags: dict[str, str]) -> str:
    import json

    return json.dumps(tags, sort_keys=True)


def _dump_price(price: Price | None) -> str | None:
    if price is None:
        return None
    from ._convert import to_json

    return to_json(price)


def _tag_ttl(raw: str | None) -> timedelta | None:
    """A ``runctl-ttl`` tag's TTL: whole seconds, at most MAX_TTL; else none."""
    if not raw or not raw.isdigit() or len(raw) > 12:
        return None
    seconds = int(raw)
    return timedelta(seconds=seconds) if 0 < seconds <= MAX_TTL.total_seconds() else None


def _records(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[LaunchRecord]:
    """The rows as records; a row that cannot be read is reported (a warning) and skipped."""
    found = []
    for row in conn.execute(sql, args).fetchall():
        try:
            found.append(_record(row))
        except (ValueError, TypeError, KeyError, ArithmeticError) as e:
            # One damaged row must not hide the others (nor stop ls, terminate or cleanup).
            logger.warning("ledger: skipping the unreadable record of launch %r: %s",
                           row["launch_id"], e)
    return found


def _record(row: sqlite3.Row) -> LaunchRecord:
    import json

    from ._convert import from_json

    price = None if row["price"] is None else from_json(row["price"], Price)
    final = row["final_cost"]
    currency = row["currency"] or (price.currency if price else "USD")
    return LaunchRecord(
        launch_id=row["launch_id"],
        provider=row["provider"],
        resource_id=row["resource_id"],
        name=row["name"],
        tags=json.loads(row["tags"] or "{}"),
        ttl=_row_ttl(row["ttl_seconds"]),
        ttl_source=_ttl_source(row["ttl_source"]),
        price=price,
        state=None if row["state"] is None else ResourceState(row["state"]),
        status=_status(row["status"]),
        intent_at=_parse_time(row["intent_at"]) or _utcnow(),
        confirmed_at=_parse_time(row["confirmed_at"]),
        created_at=_parse_time(row["created_at"]),
        started_at=_parse_time(row["started_at"]),
        ended_at=_parse_time(row["ended_at"]),
        final_cost=None if final is None else Money(Decimal(final), currency),
        note=row["note"],
    )


def _writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK)


def _reason(error: BaseException) -> str:
    """What a failure of SQLite or the file system means, as a LedgerError reason."""
    if isinstance(error, OSError):
        if error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            return "read-only"
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            return "full"
        return "unavailable"
    text = str(error).lower()
    if "no such table" in text:
        return "missing"
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int) and (code & 0xFF) in _SQLITE_REASONS:
        return _SQLITE_REASONS[code & 0xFF]
    for needle, reason in (
        ("locked", "locked"), ("busy", "locked"), ("readonly", "read-only"),
        ("read-only", "read-only"), ("disk is full", "full"), ("disk i/o", "full"),
        ("not a database", "corrupt"), ("malformed", "corrupt"),
    ):
        if needle in text:
            return reason
    return "unavailable"


def _status(value: object) -> RecordStatus:
    if value == "pending":
        return "pending"
    if value == "open":
        return "open"
    if value == "closed":
        return "closed"
    raise ValueError(f"status {value!r} is not pending, open or closed")


def _ttl_source(value: object) -> TtlSource:
    if value in ("spec", "default", "tag"):
        return value
    return "none"


def _row_ttl(value: object) -> timedelta | None:
    # A TTL beyond MAX_TTL (written by an older runctl) is no TTL: it would never come.
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if not 0 < value <= MAX_TTL.total_seconds():
        return None
    return timedelta(seconds=value)
