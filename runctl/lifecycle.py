"""Safe launch and verified termination: the lifecycle every provider shares.

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
  (:mod:`runctl.budget`) is checked and the launch's intent recorded in one ``BEGIN IMMEDIATE``
  transaction, so the limit holds across processes; every launch gets a TTL
  (:data:`DEFAULT_TTL`, or the configured default, when it sets none), recorded on
  its ledger row, which :func:`runctl.reconcile.cleanup` enforces where the provider
  cannot.
- **The ledger is not a single point of failure.** A launch whose confirmation
  cannot be written terminates what it created (or says loudly what runs,
  where, and how to stop it); terminating works when the ledger cannot be
  written; :func:`runctl.reconcile.cleanup` works from the providers' tags when it
  cannot be read; :func:`runctl.reconcile.reconcile` rebuilds a corrupt one.

Reconcile and cleanup live in :mod:`runctl.reconcile`, the budget in :mod:`runctl.budget`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from . import clock
from .budget import Budget, _check_budget
from .cost import Price
from .errors import (
    AuthenticationError,
    ConfigurationError,
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
    TERMINAL_STATES,
    Resource,
    ResourceState,
)

if TYPE_CHECKING:
    from .ledger import Ledger, Spend, TtlSource
    from .models import LaunchSpec
    from .provider import Provider

__all__ = [
    "DEFAULT_TTL",
    "apply_default_ttl",
    "find_launch",
    "launch_safely",
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








# --- cleanup ------------------------------------------------------------------------------------













