"""Launch guards, safe launch and verified termination, reconcile and cleanup.

The promises this module keeps, whatever the provider or the network does:

- **Nothing is lost.** Every launch is written to the :class:`~runctl.ledger.Ledger`
  before the provider is called, confirmed with the provider's id, and closed
  only once the provider reports the resource gone (or terminating).
- **Nothing leaks.** A launch that is cancelled (Ctrl-C, task cancellation,
  timeout) at any point either created nothing, or the resource it created is
  terminated before the cancellation goes on; that cleanup runs shielded from
  the cancellation itself, and the ledger says which happened.
- **Nothing is launched twice.** A launch id already in the ledger returns the
  resource it created; a launch that failed looks for its launch id at the
  provider before giving up, so an answer lost on the way back is recovered.
- **Guards.** A budget (spend per hour of everything running, and total spend)
  is checked and the launch's intent recorded in one ``BEGIN IMMEDIATE``
  transaction, so the limit holds across processes; every launch gets a TTL
  (:data:`DEFAULT_TTL`, or the configured default, when it sets none), recorded on
  its ledger row, which :func:`cleanup` enforces where the provider cannot.
- **The ledger is not a single point of failure.** A launch whose confirmation
  cannot be written terminates what it created (or says loudly what runs,
  where, and how to stop it); terminating works when the ledger cannot be
  written; :func:`cleanup` works from the providers' tags when it cannot be read;
  :func:`reconcile` rebuilds a corrupt one.

:func:`reconcile` brings the ledger in line with what the providers report;
:func:`cleanup` finds (and, unless ``dry_run``, terminates) every runctl-managed
resource that is past its TTL, orphaned or unknown to the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from . import clock
from .cost import Money, Price, cost
from .errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigurationError,
    CurrencyMismatchError,
    LedgerError,
    NotFoundError,
    RunctlError,
    TerminationUnverifiedError,
    UnsupportedOperationError,
    ValidationError,
)
from .models import (
    MAX_TTL,
    TAG_LAUNCH_ID,
    TAG_MANAGED_BY,
    TAG_TTL,
    TERMINAL_STATES,
    Resource,
    ResourceState,
)

if TYPE_CHECKING:
    from .ledger import LaunchRecord, Ledger, Spend, TtlSource
    from .models import LaunchSpec
    from .provider import Provider

__all__ = [
    "DEFAULT_TTL",
    "Budget",
    "CleanupItem",
    "CleanupReport",
    "ReconcileReport",
    "apply_default_ttl",
    "check_budget",
    "cleanup",
    "find_launch",
    "launch_safely",
    "reconcile",
    "terminate_verified",
]

logger = logging.getLogger("runctl.lifecycle")

#: States that confirm a terminate: gone, on its way out, or ended (a provider whose
#: finished workloads hold nothing, like ``local``, reports them so).
_ENDED = TERMINAL_STATES | {ResourceState.TERMINATING}
#: States in which a listed resource needs no cleanup.
_GONE = frozenset({ResourceState.TERMINATING, ResourceState.TERMINATED})
#: Errors raised before anything is sent to the provider, or a refusal of the credentials
#: (nothing is carried out for a request whose key is refused): a launch failing so
#: created nothing.
_NOTHING_SENT = (
    ConfigurationError, ValidationError, UnsupportedOperationError, AuthenticationError
)
_MANAGED = {TAG_MANAGED_BY: "runctl"}
#: The TTL of a launch that sets none, unless ``default_ttl_hours`` says otherwise.
DEFAULT_TTL = timedelta(hours=24)


def _utcnow() -> datetime:
    return clock.now()


def _show(amount: Money) -> str:
    try:
        return str(amount.rounded())
    except ArithmeticError:  # too large to round to cents in the default decimal context
        return f"{amount.amount:E} {amount.currency}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _ended_for_good(resource: Resource) -> bool:
    """The resource ended and holds nothing: terminal, and the provider says when it ended.

    A workload whose command ended on a machine that still exists (and bills, as
    RunPod's and Vast's do until terminated) is SUCCEEDED or FAILED without an
    ``ended_at``; one whose provider released everything (``local``) has it.
    """
    return resource.is_terminal and resource.ended_at is not None


# --- guards -------------------------------------------------------------------------------------


def _describe_failure(error: Exception) -> str:
    """A provider's failure as shown in reports; a non-runctl exception is named as a bug."""
    if isinstance(error, RunctlError):
        return str(error)
    return f"the provider failed: {type(error).__name__}: {error}"


def apply_default_ttl(spec: LaunchSpec, default_ttl_hours: float | None) -> LaunchSpec:
    """``spec`` with the default TTL applied when it sets none.

    Args:
        spec: the launch.
        default_ttl_hours: ``Settings.default_ttl_hours``; ``None`` leaves the spec as is.
    """
    if spec.ttl is not None or default_ttl_hours is None:
        return spec
    return attrs.evolve(spec, ttl=timedelta(hours=default_ttl_hours))


def _optional_money(value: object, currency: str, field: str) -> Money | None:
    if value is None:
        return None
    money = value if isinstance(value, Money) else Money(value, currency)
    if money.amount < 0:
        raise ValidationError(
            field, f"{money.amount} is negative", allowed="an amount >= 0, or None"
        )
    return money


@attrs.frozen(kw_only=True)
class Budget:
    """Spending limits checked before every launch, across all providers.

    Attributes:
        max_hourly_spend: the most that everything running may cost per hour,
            the new launch included.
        max_total_spend: the most the ledger's launches may cost in total: what
            ended launches cost, what running ones cost so far, and what the new
            launch costs if it runs for its whole TTL.
    """

    max_hourly_spend: Money | None = None
    max_total_spend: Money | None = None

    @classmethod
    def from_settings(cls, settings: Any, currency: str = "USD") -> Budget:
        """The budget configured in :class:`~runctl.config.Settings`.

        Reads ``max_hourly_spend`` and ``max_total_spend`` (amounts in ``currency``;
        ``None``: no limit).
        """
        return cls(
            max_hourly_spend=_optional_money(
                getattr(settings, "max_hourly_spend", None), currency, "max_hourly_spend"
            ),
            max_total_spend=_optional_money(
                getattr(settings, "max_total_spend", None), currency, "max_total_spend"
            ),
        )

    @property
    def unlimited(self) -> bool:
        """True when no limit is set."""
        return self.max_hourly_spend is None and self.max_total_spend is None


def check_budget(
    budget: Budget,
    ledger: Ledger,
    *,
    price: Price | None,
    ttl: timedelta | None,
    now: datetime | None = None,
) -> None:
    """Raise if launching at ``price`` for up to ``ttl`` would break ``budget``.

    A launch whose price is not known beforehand (no offer) adds nothing to the
    sums, but is still refused when what runs already reaches a limit.

    Raises:
        BudgetExceededError: naming the spend so far, the launch's share and the limit.
        CurrencyMismatchError: the launch is priced in another currency than the budget.
    """
    _check_budget(budget, lambda currency: ledger.spend(currency, now=now), price, ttl)


def _check_budget(
    budget: Budget,
    spend_in: Callable[[str], Spend],
    price: Price | None,
    ttl: timedelta | None,
) -> None:
    for limit, kind in ((budget.max_hourly_spend, "hourly"), (budget.max_total_spend, "total")):
        if limit is None:
            continue
        if price is not None and price.currency != limit.currency:
            raise CurrencyMismatchError(price.currency, limit.currency)
        spend = spend_in(limit.currency)
        if kind == "hourly":
            current = spend.hourly
            extra = price.per_hour if price is not None else Money.zero(limit.currency)
            unit, setting = "/h", "max_hourly_spend"
            what = "running"
        else:
            current = spend.total
            if price is None:
                extra = Money.zero(limit.currency)
            elif ttl is not None:
                extra = price.compute_cost(ttl)
            else:
                extra = price.minimum_charge
            unit, setting = "", "max_total_spend"
            what = "spent so far"
        after = current + extra
        if after > limit or (price is None and current >= limit):
            share = "" if price is None else f" + this launch {_show(extra)}{unit}"
            raise BudgetExceededError(
                f"launch refused: {kind} spend would be {_show(after)}{unit} "
                f"({what} {_show(current)}{unit}{share}); {setting} is {_show(limit)}{unit}"
            )


# --- finding a launch at the provider -----------------------------------------------------------


def _launch_id_of(resource: Resource) -> str | None:
    return resource.launch_id or resource.tags.get(TAG_LAUNCH_ID)


async def find_launch(provider: Provider, launch_id: str) -> list[Resource]:
    """The provider's resources carrying ``launch_id`` that are not terminated, oldest first.

    More than one means a launch was duplicated.

    Raises:
        ProviderError: the provider could not be asked.
    """
    listed = await provider.list(tags={TAG_LAUNCH_ID: launch_id})
    found = [
        r
        for r in listed
        if _launch_id_of(r) == launch_id and r.state is not ResourceState.TERMINATED
    ]
    far_past = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(found, key=lambda r: (r.created_at or far_past, r.id))


async def _find_settled(
    provider: Provider, launch_id: str, settle: float, poll_interval: float
) -> list[Resource]:
    """Look for ``launch_id`` until something appears, or an empty answer can be trusted.

    A create cancelled in flight (or whose answer was lost) may still be carried
    out a moment later, and a provider's list may lag behind its creates. So an
    empty answer means "nothing was created" only when the lookup that gave it
    was asked once ``settle`` seconds had passed; an empty answer before that, or
    errors after it, prove nothing.

    Raises:
        RunctlError: no lookup asked after ``settle`` seconds was answered (the last
            error); the caller must keep the launch open as unknown.
    """
    deadline = clock.monotonic() + settle
    while True:
        asked_at = clock.monotonic()
        try:
            found = await find_launch(provider, launch_id)
        except RunctlError:
            if asked_at >= deadline:
                raise
        else:
            if found:
                return found
            if asked_at >= deadline:
                return []
        remaining = deadline - clock.monotonic()
        await clock.sleep(min(poll_interval, remaining) if remaining > 0 else 0)


# --- launch -------------------------------------------------------------------------------------


async def launch_safely(
    provider: Provider,
    spec: LaunchSpec,
    ledger: Ledger,
    *,
    budget: Budget | None = None,
    price: Price | None = None,
    settle: float = 3.0,
    cleanup_timeout: float = 120.0,
    poll_interval: float = 1.0,
    default_ttl: timedelta | None = DEFAULT_TTL,
) -> Resource:
    """Launch ``spec`` on ``provider`` with the ledger, the guards and cancellation safety.

    Steps: budget check, intent written, ``provider.launch``, confirmation written.
    If ``spec.launch_id`` is already in the ledger as launched, the resource it
    created is returned instead (idempotent). If the launch fails, the provider is
    asked whether a resource with the launch id exists (the answer to a successful
    create can be lost): if so it is returned, else the record is closed as
    "nothing created". If the launch is cancelled, whatever it created is
    terminated (shielded from the cancellation) before the cancellation goes on.
    If the ledger cannot record the confirmation, what was created is terminated.

    Args:
        provider: where to launch.
        spec: what to launch; a spec without a TTL gets ``default_ttl``.
        ledger: where the launch is recorded.
        budget: limits to check first (``None``: none).
        price: the expected price, for the budget and the ledger; default the
            price of ``spec.offer``.
        settle: seconds a cancelled launch, or one that failed without a clear answer,
            keeps looking for a resource the provider creates late.
        cleanup_timeout: seconds the cleanup after a cancellation may take at most.
        poll_interval: seconds between polls while cleaning up.
        default_ttl: the TTL of a spec that sets none (``None``: no TTL), recorded in
            the ledger as the default.

    Returns:
        The resource, as the provider reported it.

    Raises:
        BudgetExceededError: the launch would break the budget.
        LedgerError: the ledger cannot be written; if that happened after the create,
            the resource was terminated (or the error says how to stop it).
        ValidationError: the launch id was used for a launch that has ended, or on
            another provider. (A launch id whose launch created nothing can be retried.)
        ProviderError: the launch failed and created nothing (or it could not be told).
    """
    if price is None:
        price = spec.expected_price
    ttl_source: TtlSource | None = None
    if spec.ttl is None and default_ttl is not None:
        spec = attrs.evolve(spec, ttl=min(default_ttl, MAX_TTL))
        ttl_source = "default"
    known = ledger.get(spec.launch_id)
    if known is not None and known.provider != provider.name:
        ledger.record_intent(spec, provider=provider.name, price=price)  # raises
    if known is not None and known.status == "closed" and known.resource_id is not None:
        raise ValidationError(
            "launch_id",
            f"{spec.launch_id!r} was already launched as {known.resource_id}, "
            f"which has ended ({known.note or 'closed'})",
            allowed="a new launch id",
        )
    if known is not None and known.status == "open" and known.resource_id is not None:
        current = await provider.get(known.resource_id)
        ledger.confirm(spec.launch_id, current)
        return current
    if known is None or known.status == "closed":
        # New, or an earlier attempt that certainly created nothing. The budget is
        # checked inside the transaction that writes the intent: no other process can
        # slip a launch in between, so a cap holds across processes.
        def guard(spend_in: Callable[[str], Spend]) -> None:
            if budget is not None and not budget.unlimited:
                _check_budget(budget, spend_in, price, spec.ttl)

        ledger.record_intent(
            spec, provider=provider.name, price=price, ttl_source=ttl_source, guard=guard
        )
    # else pending: an earlier attempt died before its answer; the provider is asked
    # again with the same launch id and finds what that attempt created.

    resource: Resource | None = None
    try:
        try:
            resource = await provider.launch(spec)
        except Exception as error:
            resource = await _recover_failed_launch(
                provider, spec, ledger, error, settle, poll_interval
            )
        try:
            ledger.confirm(spec.launch_id, resource)
        except LedgerError as error:
            raise await _unrecorded(provider, resource, error, poll_interval) from error
        return resource
    except Exception:
        raise
    except BaseException as interrupt:
        # Cancelled, timed out or interrupted: undo, shielded from the cancellation.
        with clock.move_on_after(cleanup_timeout, shield=True) as scope:
            await _undo_launch(
                provider, spec.launch_id, ledger, resource, settle, poll_interval, interrupt
            )
        if scope.cancelled_caught:
            _annotate(ledger, spec.launch_id, "cancelled; cleanup timed out, run `runctl cleanup`")
        raise


async def _unrecorded(
    provider: Provider, resource: Resource, error: LedgerError, poll_interval: float
) -> LedgerError:
    """The confirmation of ``resource`` cannot be written: terminate it, or say how to.

    Without its record nothing would enforce its TTL or find it to clean it up, so a
    resource the ledger cannot hold is not left running.
    """
    where = f"{resource.id} on {provider.name}"
    with anyio.CancelScope(shield=True):
        try:
            await terminate_verified(
                provider, resource.id, None, timeout=120.0, poll_interval=poll_interval
            )
        except RunctlError as e:
            logger.critical(
                "%s IS RUNNING AND NOT RECORDED (the ledger failed: %s; terminating it "
                "failed: %s). Stop it: runctl terminate %s --provider %s",
                where, error, e, resource.id, provider.name,
            )
            return LedgerError(
                error.path, error.reason,
                f"the launch could not be recorded ({error}); {where} is STILL RUNNING: "
                f"stop it with `runctl terminate {resource.id} --provider {provider.name}`",
            )
    logger.error("launched %s but the ledger could not record it; terminated it", where)
    return LedgerError(
        error.path, error.reason,
        f"the launch could not be recorded ({error}); {where} was terminated",
    )


def _maybe_applied(error: Exception) -> bool:
    from .provider import is_lost_answer

    return is_lost_answer(error)


async def _recover_failed_launch(
    provider: Provider,
    spec: LaunchSpec,
    ledger: Ledger,
    error: Exception,
    settle: float,
    poll_interval: float,
) -> Resource:
    """After ``provider.launch`` raised: return what it created anyway, or re-raise."""
    nothing = f"launch failed ({type(error).__name__}); nothing created"
    if isinstance(error, _NOTHING_SENT):
        ledger.close(spec.launch_id, note=nothing)
        raise error
    try:
        # An ambiguous failure (no answer, a gateway error) may hide a create the
        # provider carries out a moment later: keep looking for ``settle`` seconds.
        wait = settle if _maybe_applied(error) else 0.0
        found = await _find_settled(provider, spec.launch_id, wait, poll_interval)
    except RunctlError as lookup_error:
        _annotate(
            ledger,
            spec.launch_id,
            f"launch failed ({type(error).__name__}), and looking for it failed "
            f"({type(lookup_error).__name__}); run `runctl reconcile`",
        )
        raise error from None
    if not found:
        ledger.close(spec.launch_id, note=nothing)
        raise error
    logger.info(
        "%s: launch %s failed (%s) but created %s; using it",
        provider.name, spec.launch_id, type(error).__name__, found[0].id,
    )
    for extra in found[1:]:
        # Only reachable if the provider broke its idempotency promise.
        logger.warning("%s: launch %s duplicated as %s; terminating it",
                       provider.name, spec.launch_id, extra.id)
        try:
            await terminate_verified(provider, extra.id, None, timeout=60.0)
        except RunctlError as e:
            logger.warning("%s: %s", provider.name, e)
    return found[0]


async def _undo_launch(
    provider: Provider,
    launch_id: str,
    ledger: Ledger,
    resource: Resource | None,
    settle: float,
    poll_interval: float,
    interrupt: BaseException,
) -> None:
    why = "interrupted" if isinstance(interrupt, KeyboardInterrupt) else "cancelled"
    if resource is not None:
        found = [resource]
    else:
        try:
            found = await _find_settled(provider, launch_id, settle, poll_interval)
        except RunctlError as e:
            _annotate(ledger, launch_id, f"{why}; could not tell whether a resource was "
                      f"created ({type(e).__name__}); run `runctl reconcile`")
            return
    if not found:
        _best_effort(ledger.close, launch_id, note=f"{why}; nothing created")
        return
    # Terminating comes first: a ledger that cannot be written must not keep it alive.
    _best_effort(ledger.confirm, launch_id, found[0])
    for item in found:
        try:
            await terminate_verified(
                provider, item.id, ledger, poll_interval=poll_interval,
                note=f"{why}; terminated {item.id}",
            )
        except RunctlError as e:
            _annotate(ledger, launch_id, f"{why}; terminating {item.id} not verified: {e}")


def _annotate(ledger: Ledger, launch_id: str, note: str) -> None:
    logger.warning("launch %s: %s", launch_id, note)
    _best_effort(ledger.annotate, launch_id, note)


def _best_effort(write: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """A ledger write that must not stop what it records (a terminate, a cleanup)."""
    try:
        write(*args, **kwargs)
    except LedgerError as e:
        logger.warning("%s", e)


# --- terminate ----------------------------------------------------------------------------------


async def terminate_verified(
    provider: Provider,
    resource_id: str,
    ledger: Ledger | None,
    *,
    timeout: float = 300.0,
    poll_interval: float = 2.0,
    note: str | None = None,
) -> Resource:
    """Terminate and return only once the provider reports the resource gone or terminating.

    A resource whose terminate answer is an ended state (succeeded, failed,
    preempted) counts as gone too: the provider says nothing of it runs.

    Transient provider errors are retried until ``timeout``. The ledger's record of
    the resource is closed (with the final cost) only once termination is seen.

    Args:
        provider: the resource's provider.
        resource_id: the provider's id.
        ledger: the ledger to close the record in (``None``: none).
        timeout: seconds to wait for the provider to confirm.
        poll_interval: seconds between attempts.
        note: why the record is closed, for the ledger (default ``"terminated"``).

    Returns:
        The resource as last observed (state TERMINATING or TERMINATED).

    Raises:
        TerminationUnverifiedError: the provider never confirmed within ``timeout``;
            the ledger keeps the record open.
    """
    deadline = clock.monotonic() + timeout
    last_error: RunctlError | None = None
    last_seen: Resource | None = None
    while True:
        # Terminate is idempotent: asking again is how a stale or lagging answer is refreshed.
        with clock.move_on_after(max(deadline - clock.monotonic(), 0.0)):
            try:
                last_seen = await _ask_terminate(provider, resource_id)
            except RunctlError as e:
                last_error = e
            else:
                if last_seen.state in _ENDED:
                    _close_terminated(ledger, provider.name, last_seen, note)
                    return last_seen
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            break
        await clock.sleep(min(poll_interval, remaining))
    state = last_seen.state.value if last_seen is not None else "unconfirmed"
    message = (
        f"{provider.name}: {resource_id}: terminate requested but the provider still "
        f"reports it {state} after {timeout:g}s"
    )
    if last_error is not None:
        message += f" (last error: {last_error})"
    raise TerminationUnverifiedError(message) from last_error


async def _ask_terminate(provider: Provider, resource_id: str) -> Resource:
    try:
        return await provider.terminate(resource_id)
    except NotFoundError:
        return Resource(
            id=resource_id,
            provider=provider.name,
            state=ResourceState.TERMINATED,
            detail="not found at the provider",
        )


def _close_terminated(
    ledger: Ledger | None, provider: str, resource: Resource, note: str | None
) -> None:
    if ledger is None:
        return
    try:
        record = ledger.find_resource(provider, resource.id)
    except LedgerError as e:  # terminated all the same; reconcile closes the record later
        logger.warning("%s", e)
        return
    if record is None or record.is_closed:
        return
    _best_effort(
        ledger.close,
        record.launch_id,
        state=resource.state,
        ended_at=resource.ended_at or _utcnow(),
        note=note or "terminated",
    )


# --- reconcile ----------------------------------------------------------------------------------


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


# --- cleanup ------------------------------------------------------------------------------------


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

