"""Reconcile the ledger with what the providers report, and clean up what outlived its TTL.

:func:`reconcile` adopts launches that were created but never confirmed, closes the
records of resources that are gone (or ended on their own, with their final cost),
and records runctl-managed resources the ledger did not know. :func:`cleanup` finds,
and unless ``dry_run`` terminates, every runctl-managed resource past its TTL,
orphaned or unknown to the ledger. Both report a provider that cannot be asked and go
on with the others, and both are idempotent: a second run finds nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from .cost import Money, cost
from .errors import (
    LedgerError,
    NotFoundError,
    RunctlError,
)
from .lifecycle import (  # the shared vocabulary of launching and ending
    _GONE,
    _MANAGED,
    DEFAULT_TTL,
    _describe,
    _describe_failure,
    _ended_for_good,
    _launch_id_of,
    _utcnow,
    terminate_verified,
)
from .models import (
    MAX_TTL,
    TAG_TTL,
    Resource,
    ResourceState,
)

if TYPE_CHECKING:
    from .ledger import LaunchRecord, Ledger
    from .provider import Provider

__all__ = ["CleanupItem", "CleanupReport", "ReconcileReport", "cleanup", "reconcile"]


@attrs.frozen(kw_only=True)
class ReconcileReport:
    """What :func:`reconcile` changed in the ledger and what it found.

    Attributes:
        adopted: launches that were created but never confirmed, now confirmed.
        closed: records whose resources are gone, were never created, or ended on
            their own and hold nothing (with their final cost), now closed.
        unknown: resources runctl launched that the ledger did not know, now recorded.
        orphans: live resources whose launch the ledger holds as closed, or as
            another resource (a duplicate); :func:`cleanup` terminates them.
        pending: launches still in flight (younger than the grace period), left alone.
        errors: providers that could not be asked, with why.
        rebuilt_from: the ledger was corrupt: where the damaged file was moved before
            the records were rebuilt from what the providers report.
    """

    adopted: tuple[LaunchRecord, ...] = ()
    closed: tuple[LaunchRecord, ...] = ()
    unknown: tuple[LaunchRecord, ...] = ()
    orphans: tuple[Resource, ...] = ()
    pending: tuple[LaunchRecord, ...] = ()
    errors: Mapping[str, str] = attrs.field(factory=dict)
    rebuilt_from: str | None = None

    @property
    def ok(self) -> bool:
        """True when every provider answered and nothing is orphaned."""
        return not self.errors and not self.orphans


async def reconcile(
    ledger: Ledger,
    providers: Mapping[str, Provider],
    *,
    pending_grace: timedelta = timedelta(minutes=10),
    now: datetime | None = None,
    default_ttl: timedelta | None = DEFAULT_TTL,
) -> ReconcileReport:
    """Bring the ledger in line with what each provider reports.

    For every provider, the resources carrying runctl's managed-by tag are
    listed, then: a pending launch whose launch id is found is adopted (confirmed);
    one with nothing found and older than ``pending_grace`` is closed as never
    created; an open record whose resource is gone, or ended on its own and holds
    nothing any more (terminal, with an ``ended_at``), is closed with its final
    cost; a resource the ledger does not know is recorded. Running it twice
    changes nothing the second time. A provider that cannot be asked changes
    nothing in its records and is reported in ``errors``.

    Args:
        ledger: the ledger.
        providers: the providers to ask, by name.
        pending_grace: how old a pending launch must be before "not found" means
            "never created" (another process may be launching it right now).
        now: the current time (tests).
        default_ttl: the TTL recorded for a resource recorded here that carries no
            ``runctl-ttl`` tag.

    Raises:
        LedgerError: the ledger cannot be written (a corrupt one is moved aside and
            rebuilt first: see ``rebuilt_from``).
    """
    now = now or _utcnow()
    aside = ledger.rebuild()
    adopted: list[LaunchRecord] = []
    closed: list[LaunchRecord] = []
    unknown: list[LaunchRecord] = []
    orphans: list[Resource] = []
    pending: list[LaunchRecord] = []
    errors: dict[str, str] = {}
    for name, provider in providers.items():
        try:
            listed = [
                r for r in await provider.list(tags=_MANAGED)
                if r.state is not ResourceState.TERMINATED
            ]
        except Exception as e:  # one provider's failure (or bug) must not stop the others
            errors[name] = _describe_failure(e)
            continue
        by_id = {r.id: r for r in listed}
        by_launch: dict[str, list[Resource]] = {}
        for r in listed:
            launch_id = _launch_id_of(r)
            if launch_id:
                by_launch.setdefault(launch_id, []).append(r)
        claimed: set[str] = set()
        for record in ledger.open_records(provider=name):
            if record.status == "pending":
                matches = by_launch.get(record.launch_id, [])
                if matches:
                    adopted.append(ledger.confirm(record.launch_id, matches[0]))
                    ledger.annotate(record.launch_id, "adopted by reconcile")
                    claimed.add(matches[0].id)
                elif now - record.intent_at >= pending_grace:
                    closed.append(
                        ledger.close(record.launch_id, note="reconcile: never created")
                    )
                else:
                    pending.append(record)
                continue
            assert record.resource_id is not None
            claimed.add(record.resource_id)
            seen = by_id.get(record.resource_id)
            if seen is not None:
                ledger.confirm(record.launch_id, seen)
                if _ended_for_good(seen):
                    closed.append(_close_ended(ledger, record.launch_id, seen))
                continue
            # Not listed: ask for it directly before believing it gone (lists can lag).
            try:
                current = await provider.get(record.resource_id)
            except NotFoundError:
                closed.append(ledger.close(record.launch_id, state=ResourceState.TERMINATED,
                                           note="reconcile: gone"))
                continue
            except RunctlError as e:
                errors[f"{name}:{record.resource_id}"] = str(e)
                continue
            if current.state is ResourceState.TERMINATED:
                closed.append(ledger.close(record.launch_id, state=current.state,
                                           ended_at=current.ended_at, note="reconcile: gone"))
            else:
                ledger.confirm(record.launch_id, current)
                if _ended_for_good(current):
                    closed.append(_close_ended(ledger, record.launch_id, current))
        for r in listed:
            if r.id in claimed:
                continue
            launch_id = _launch_id_of(r)
            known = ledger.find_resource(name, r.id) or (
                ledger.get(launch_id) if launch_id else None
            )
            if known is None:
                record = ledger.adopt(
                    r, note="adopted by reconcile: not in the ledger", default_ttl=default_ttl
                )
                if _ended_for_good(r):
                    record = _close_ended(ledger, record.launch_id, r)
                unknown.append(record)
            elif known.is_closed and known.resource_id == r.id and _ended_for_good(r):
                continue  # ended, holds nothing, and its record is closed: nothing to do
            else:
                orphans.append(r)
    return ReconcileReport(
        adopted=tuple(adopted),
        closed=tuple(closed),
        unknown=tuple(unknown),
        orphans=tuple(orphans),
        pending=tuple(pending),
        errors=errors,
        rebuilt_from=None if aside is None else str(aside),
    )


def _close_ended(ledger: Ledger, launch_id: str, resource: Resource) -> LaunchRecord:
    """Close the record of a resource that ended on its own, with its final cost."""
    final = cost(resource, now=resource.ended_at)
    return ledger.close(
        launch_id,
        state=resource.state,
        ended_at=resource.ended_at,
        final_cost=final,
        note=f"reconcile: ended on its own ({resource.state.value})",
    )


@attrs.frozen(kw_only=True)
class CleanupItem:
    """A resource :func:`cleanup` found, and why.

    Attributes:
        resource: the resource as listed by its provider.
        reasons: any of ``"expired"`` (past its TTL), ``"orphaned"`` (its launch is
            closed in the ledger, or recorded as another resource) and ``"unknown"``
            (not in the ledger).
        cost_so_far: what it has cost so far, when its price is known.
        expired_at: when its TTL ran out.
        terminated: it was terminated and the provider confirmed it.
        error: why terminating it failed.
    """

    resource: Resource
    reasons: tuple[str, ...]
    cost_so_far: Money | None = None
    expired_at: datetime | None = None
    terminated: bool = False
    error: str | None = None


@attrs.frozen(kw_only=True)
class CleanupReport:
    """What :func:`cleanup` found and did.

    Attributes:
        items: the resources found, with why and (unless ``dry_run``) what happened.
        dry_run: nothing was terminated.
        errors: providers that could not be asked, with why.
    """

    items: tuple[CleanupItem, ...] = ()
    dry_run: bool = True
    errors: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """True when every provider answered and every found resource was terminated."""
        return not self.errors and (self.dry_run or all(i.terminated for i in self.items))

    def total_cost(self, currency: str = "USD") -> Money:
        """The summed cost so far of the found resources priced in ``currency``."""
        total = Money.zero(currency)
        for item in self.items:
            if item.cost_so_far is not None and item.cost_so_far.currency == currency:
                total = total + item.cost_so_far
        return total


def _ttl_of(resource: Resource, record: LaunchRecord | None) -> timedelta | None:
    raw = resource.tags.get(TAG_TTL)
    if raw is not None:
        try:
            seconds = Decimal(raw)
        except ArithmeticError:
            seconds = Decimal(-1)
        # A TTL beyond MAX_TTL never comes (and would overflow a datetime): none.
        if seconds.is_finite() and 0 < seconds <= Decimal(int(MAX_TTL.total_seconds())):
            return timedelta(seconds=float(seconds))
    return record.ttl if record is not None else None


def _expiry(born: datetime | None, ttl: timedelta | None) -> datetime | None:
    if born is None or ttl is None:
        return None
    try:
        return born + ttl
    except OverflowError:  # past year 9999: never
        return None


async def cleanup(
    ledger: Ledger,
    providers: Mapping[str, Provider],
    *,
    dry_run: bool = True,
    now: datetime | None = None,
    terminate_timeout: float = 300.0,
    poll_interval: float = 2.0,
) -> CleanupReport:
    """Find every runctl-managed resource past its TTL, orphaned or unknown; terminate them.

    When the ledger cannot be read (corrupt, deleted, locked), cleanup works from what
    the providers report under runctl's tags alone: it ends what is past the TTL in
    its ``runctl-ttl`` tag, leaves the rest (whether it is orphaned or unknown cannot
    be told), and reports the ledger's failure in ``errors["ledger"]``.

    Args:
        ledger: the ledger.
        providers: the providers to look at, by name.
        dry_run: only report (the default); ``False`` terminates each found resource
            and waits until its provider confirms.
        now: the current time (tests).
        terminate_timeout: seconds to wait for each termination to be confirmed.
        poll_interval: seconds between termination checks.
    """
    now = now or _utcnow()
    items: list[CleanupItem] = []
    errors: dict[str, str] = {}
    readable = True

    def look(find: Callable[..., LaunchRecord | None], *args: str) -> LaunchRecord | None:
        nonlocal readable
        if not readable:
            return None
        try:
            return find(*args)
        except LedgerError as e:
            readable = False
            errors["ledger"] = f"{e}; only TTLs from tags were enforced"
            return None

    for name, provider in providers.items():
        try:
            listed = await provider.list(tags=_MANAGED)
        except Exception as e:  # one provider's failure (or bug) must not stop the others
            errors[name] = _describe_failure(e)
            continue
        for resource in listed:
            if resource.state in _GONE or _ended_for_good(resource):
                # Nothing left to terminate; reconcile() closes its record if still open.
                continue
            launch_id = _launch_id_of(resource)
            record = look(ledger.find_resource, name, resource.id)
            by_launch = look(ledger.get, launch_id) if launch_id else None
            reasons: list[str] = []
            if not readable:
                pass  # orphaned or unknown cannot be told without the ledger
            elif record is None and by_launch is None:
                reasons.append("unknown")
            elif (record is not None and record.is_closed) or (
                record is None
                and by_launch is not None
                and (by_launch.is_closed or by_launch.resource_id not in (None, resource.id))
            ):
                reasons.append("orphaned")
            ttl = _ttl_of(resource, record or by_launch)
            born = resource.created_at or (record.created_at if record else None)
            expired_at = _expiry(born, ttl)
            if expired_at is not None and expired_at <= now:
                reasons.insert(0, "expired")
            if not reasons:
                continue
            so_far = cost(resource, now=now)
            if so_far is None and record is not None:
                so_far = record.cost_so_far(now)
            item = CleanupItem(
                resource=resource,
                reasons=tuple(reasons),
                cost_so_far=so_far,
                expired_at=expired_at,
            )
            if not dry_run:
                item = await _terminate_item(provider, item, ledger, terminate_timeout,
                                             poll_interval)
            items.append(item)
    return CleanupReport(items=tuple(items), dry_run=dry_run, errors=errors)


async def _terminate_item(
    provider: Provider, item: CleanupItem, ledger: Ledger, timeout: float, poll_interval: float
) -> CleanupItem:
    try:
        await terminate_verified(
            provider, item.resource.id, ledger, timeout=timeout, poll_interval=poll_interval,
            note=f"cleanup ({', '.join(item.reasons)})",
        )
    except RunctlError as e:
        return attrs.evolve(item, error=_describe(e))
    return attrs.evolve(item, terminated=True)
