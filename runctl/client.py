"""The clients: :class:`AsyncClient` (the real one) and :class:`Client` (sync facade).

``AsyncClient`` runs on anyio, so it works under asyncio and trio. ``Client``
holds one anyio blocking portal (an event loop in a helper thread) for its whole
life and runs every call of an ``AsyncClient`` inside it; because that loop is
its own, ``Client`` also works where an event loop already runs in the calling
thread, as in Jupyter.

Every method that takes a resource takes the :class:`~runctl.models.Resource`
or its id. An id is resolved to its provider through: the resource itself, an
explicit ``provider=``, the resources this client launched, the ledger of past
launches, and last the default provider.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Union

import anyio
import anyio.from_thread
import attrs

from . import clock
from .config import Settings, load_settings
from .cost import Money, Price
from .cost import cost as _cost
from .errors import (
    InvalidTransitionError,
    LedgerError,
    ProviderTimeoutError,
    ResourceEndedError,
    RunctlError,
    UnsupportedOperationError,
    ValidationError,
    WaitTimeoutError,
)
from .models import (
    TERMINAL_STATES,
    LaunchSpec,
    OfferQuery,
    Resource,
    ResourceState,
    RunResult,
)
from .registry import Registry, default_registry

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .catalog import Snapshot
    from .ledger import Ledger
    from .offers import OfferList
    from .provider import Provider
    from .reconcile import CleanupReport, ReconcileReport

__all__ = ["AsyncClient", "Client", "Launch", "ResourceRef"]

logger = logging.getLogger("runctl")

T = TypeVar("T")

ResourceRef = Union[Resource, str, "Launch"]
"""A resource, its id, or the handle ``Client.launch`` returns."""

Progress = Callable[[Resource], Awaitable[None] | None]

_UNTIL_ALIASES: Mapping[str, frozenset[ResourceState]] = {
    "finished": TERMINAL_STATES,
    "ended": TERMINAL_STATES,
}
_STARTED = frozenset({ResourceState.SUCCEEDED, ResourceState.FAILED})
_INTERRUPT_CLEANUP_SECONDS = 120.0


def _targets(
    until: ResourceState | str | Iterable[ResourceState | str],
) -> frozenset[ResourceState]:
    allowed = ", ".join([*_UNTIL_ALIASES, *(s.value for s in ResourceState)])
    items = [until] if isinstance(until, (str, ResourceState)) else list(until)
    states: set[ResourceState] = set()
    for item in items:
        if isinstance(item, ResourceState):
            states.add(item)
        elif isinstance(item, str) and item.lower() in _UNTIL_ALIASES:
            states |= _UNTIL_ALIASES[item.lower()]
        else:
            try:
                states.add(ResourceState(str(item).lower()))
            except ValueError:
                raise ValidationError(
                    "until", f"{item!r} is not a state", allowed=allowed
                ) from None
    if not states:
        raise ValidationError("until", "no state given", allowed=allowed)
    return frozenset(states)


def _check_gpu(wanted: str, provider: str) -> None:
    """Refuse a GPU name runctl cannot recognise, before anything is launched."""
    from .gpus import known_gpus, normalize_gpu

    if normalize_gpu(wanted, provider=provider).known:
        return
    models = sorted({gpu.model for gpu in known_gpus()})
    raise ValidationError(
        "gpu", f"{wanted!r} is not a GPU model runctl knows", allowed=", ".join(models)
    )


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if inspect.isawaitable(value):
        await value


class AsyncClient:
    """Launch, watch, and tear down compute on any registered provider.

    Use it as an async context manager (it closes the providers' connections)::

        async with runctl.AsyncClient() as rc:
            async with rc.launch(spec) as res:   # terminated when the block exits
                await rc.wait(res, until="finished")

    Args:
        settings: settings to use (default: read from the environment and config file).
        registry: provider registry (default: the installed providers).
        providers: ready-made provider objects by name, used instead of building them
            from the registry (for tests and embedding).
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        registry: Registry | None = None,
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self._registry = registry or default_registry()
        self._providers: dict[str, Provider] = dict(providers or {})
        self._owned: set[str] = set()
        self._located: dict[str, str] = {}
        self._launch_prices: dict[str, Price | None] = {}
        self._ledger: Ledger | None = None
        self._ledger_warned = False

    def __repr__(self) -> str:
        return f"<AsyncClient home={str(self.settings.home)!r} providers={sorted(self._providers)}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every provider this client built."""
        with anyio.CancelScope(shield=True):
            for name in sorted(self._owned):
                try:
                    await self._providers[name].aclose()
                except Exception:  # closing must not hide the caller's error
                    logger.warning("closing provider %s failed", name, exc_info=True)
            for name in self._owned:
                self._providers.pop(name, None)
            self._owned.clear()

    # --- providers ------------------------------------------------------------------------------

    def provider(self, name: str | None = None) -> Provider:
        """The provider object ``name`` (default: the configured default), built on first use.

        Raises:
            ValidationError: no provider of that name is installed (the message says
                when the offline snapshot prices it all the same).
            PluginError: the provider is broken.
        """
        name = name or self.settings.default_provider
        if name not in self._providers and name not in self._registry:
            raise self._no_such_provider("provider", name)
        if name not in self._providers:
            self._providers[name] = self._registry.create(name, self.settings.provider_config(name))
            self._owned.add(name)
        return self._providers[name]

    def _installed(self) -> list[str]:
        return sorted(set(self._registry.names()) | set(self._providers))

    def _snapshot_providers(self) -> set[str]:
        from . import catalog

        try:
            return set(catalog.load_snapshot(self.settings, warn=False).provenance)
        except RunctlError:  # an unreadable snapshot must not hide the real error
            return set()

    def _no_such_provider(self, field: str, name: str) -> ValidationError:
        installed = ", ".join(self._installed()) or "none"
        if name in self._snapshot_providers():
            problem = (
                f"{name!r} is priced in the offline snapshot but not launchable: "
                f"no provider named {name!r} is installed"
            )
        else:
            problem = f"no provider named {name!r} is installed"
        return ValidationError(field, problem, allowed=installed)

    def _usable_provider_names(self, wanted: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        names = (
            list(wanted) if wanted else sorted(set(self._registry.names()) | set(self._providers))
        )
        usable, skipped = [], {}
        infos = None
        for name in names:
            if name in self._providers:
                usable.append(name)
                continue
            if infos is None:  # checked once per call, and only if a provider needs building
                infos = {i.name: i for i in self._registry.info(self.settings, check=True)}
            info = infos.get(name)
            if info is None:
                skipped[name] = "not installed"
            elif info.error:
                skipped[name] = info.error
            elif info.usable is False:
                skipped[name] = info.reason or "not usable here"
            else:
                usable.append(name)
        return usable, skipped

    async def verify(self, provider: str | None = None, *, timeout: float | None = None) -> str:
        """Prove a provider's credentials work with one cheap authenticated call.

        Args:
            provider: the provider (default: the configured default).
            timeout: seconds to wait (default: ``settings.offer_timeout``).

        Returns:
            What was checked, e.g. ``"GET /v2/account/ssh-keys answered"``.

        Raises:
            UnsupportedOperationError: the provider offers no such check (its
                optional ``verify`` hook); its credentials cannot be checked this way.
            AuthenticationError: the credentials were refused.
            ProviderTimeoutError: no answer within ``timeout``.
        """
        impl = self.provider(provider)
        hook = getattr(impl, "verify", None)
        if not callable(hook):
            raise UnsupportedOperationError(impl.name, "verify", "no cheap authenticated call")
        limit = timeout if timeout is not None else self.settings.offer_timeout
        try:
            with anyio.fail_after(limit):
                return str(await hook())
        except TimeoutError:
            raise ProviderTimeoutError(
                f"no answer within {limit:g} s", provider=impl.name
            ) from None

    # --- offers ---------------------------------------------------------------------------------

    async def offers(
        self,
        query: OfferQuery | None = None,
        *,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        live: bool = True,
        **filters: Any,
    ) -> OfferList:
        """Offers across providers, filtered and sorted, cheapest first.

        Live offers come from every usable provider concurrently, each within
        ``timeout`` seconds (default: ``settings.offer_timeout``); the offline price
        snapshot fills in for the providers that could not be asked. One failing
        provider never hides the others: failures are on ``result.errors``.

        Args:
            query: an :class:`OfferQuery`; or pass its fields as keyword arguments.
            providers: only these providers.
            timeout: seconds per provider.
            live: ask providers' APIs; ``False`` uses the snapshot only.

        Returns:
            An :class:`~runctl.offers.OfferList` (a sequence of offers with ``errors``).
        """
        from . import catalog
        from . import offers as offer_search

        if query is None:
            query = OfferQuery(**filters)
        elif filters:
            raise ValidationError(
                "filters",
                "pass either an OfferQuery or keyword filters, not both",
                allowed="query=OfferQuery(...) or gpu=..., count=...",
            )
        wanted = tuple(providers or query.providers)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise ValidationError(
                "timeout", f"{timeout!r} is invalid", allowed="seconds > 0, or None"
            )
        if wanted:
            # A misspelt name would silently give an empty table.
            known = set(self._installed())
            unknown = [n for n in wanted if n not in known]
            priced = self._snapshot_providers() if unknown else set()
            for name in unknown:
                if name not in priced:
                    raise ValidationError(
                        "providers",
                        f"no provider named {name!r} is installed or priced in the snapshot",
                        allowed=", ".join(sorted(known | priced)),
                    )
        limit = timeout if timeout is not None else self.settings.offer_timeout
        live_results: dict[str, Sequence[Any]] = {}
        failures: dict[str, BaseException] = {}
        if live:
            names, skipped = self._usable_provider_names(wanted)
            for name, reason in skipped.items():
                failures[name] = RunctlError(f"{name}: not asked: {reason}")

            async def ask(name: str) -> None:
                try:
                    with clock.fail_after(limit):
                        live_results[name] = list(await self.provider(name).offers(query))
                except TimeoutError:
                    failures[name] = ProviderTimeoutError(
                        f"no offers within {limit:g} s", provider=name
                    )
                except RunctlError as e:
                    failures[name] = e
                except Exception as e:  # a broken plugin must not hide the others
                    logger.warning("provider %s failed in offers()", name, exc_info=True)
                    failures[name] = e

            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(ask, name)
        snapshot = await anyio.to_thread.run_sync(catalog.load_snapshot, self.settings)
        search = attrs.evolve(query, providers=wanted) if wanted else query
        # The snapshot's own OfferList: combine() searches its prebuilt index and builds
        # only the offers it returns.
        return offer_search.combine(live_results, failures, snapshot.offers, search)

    async def refresh_catalog(
        self, *, providers: Sequence[str] | None = None, timeout: float | None = None
    ) -> Snapshot:
        """Rebuild the user-local price snapshot from live prices where credentials exist.

        Providers that cannot be asked (no credentials, no live prices, failure) keep
        their rows from the current snapshot; the snapshot's provenance says which.
        """
        from . import catalog

        names, _ = self._usable_provider_names(tuple(providers or ()))
        # Providers whose offers are not market prices (only "static" ones) are left
        # out by catalog.refresh itself.
        live = [self.provider(n) for n in names if self.provider(n).capabilities.live_offers]
        return await catalog.refresh(live, self.settings, timeout=timeout)

    # --- lifecycle ------------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> _AsyncLaunch:
        """Launch ``spec``.

        ``await rc.launch(spec)`` launches and returns the resource, which runs on
        (detached) until terminated. ``async with rc.launch(spec) as res:``
        terminates it when the block exits, on error and cancellation too.

        A launch interrupted at any point (cancellation, timeout, Ctrl-C) leaves no
        resource behind: one created meanwhile is terminated.
        """
        return _AsyncLaunch(self, spec)

    async def _launch(self, spec: LaunchSpec) -> Resource:
        name = spec.provider or (spec.offer.provider if spec.offer else None)
        name = name or self.settings.default_provider
        provider = self.provider(name)
        if spec.gpu is not None and spec.offer is None:
            _check_gpu(spec.gpu, name)
        from .budget import Budget
        from .lifecycle import launch_safely
        from .provider import refuse_unsupported_nodes

        refuse_unsupported_nodes(provider, spec)  # before anything is recorded or sent

        # Budget check, ledger intent/confirm, idempotency by launch id, the default TTL
        # (recorded as such), and a shielded cleanup of whatever was created if the
        # launch is cancelled or interrupted.
        resource = await launch_safely(
            provider, spec, self.ledger, budget=Budget.from_settings(self.settings),
            default_ttl=self._default_ttl(),
        )
        if resource.price is None and spec.offer is not None:
            resource = resource.evolve(price=spec.expected_price)
        self._remember(resource)
        self._launch_prices[resource.id] = resource.price
        return resource

    def _default_ttl(self) -> timedelta | None:
        hours = self.settings.default_ttl_hours
        return None if hours is None else timedelta(hours=hours)

    def _remember(self, resource: Resource) -> None:
        self._located[resource.id] = resource.provider

    def _locate(self, ref: ResourceRef, provider: str | None) -> tuple[str, str]:
        if isinstance(ref, Launch):
            ref = ref.resource
        if isinstance(ref, Resource):
            return ref.id, ref.provider
        if not isinstance(ref, str) or not ref:
            raise ValidationError(
                "resource", f"{ref!r} is not a resource", allowed="a Resource or its id"
            )
        if provider:
            return ref, provider
        if ref in self._located:
            return ref, self._located[ref]
        # Launched by another process: the ledger knows where.
        try:
            known = sorted({record.provider for record in self.ledger.locate(ref)})
        except LedgerError as e:
            logger.warning("%s; looking for %s on %s", e, ref, self.settings.default_provider)
            known = []
        if len(known) > 1:
            raise ValidationError(
                "provider",
                f"{ref!r} is a resource id on several providers",
                allowed=", ".join(known),
            )
        return ref, known[0] if known else self.settings.default_provider

    def _launch_price(self, resource: Resource) -> Price | None:
        if resource.id not in self._launch_prices:
            try:
                record = self.ledger.find_resource(resource.provider, resource.id)
            except LedgerError as e:  # listing goes on from what the provider says
                if not self._ledger_warned:
                    self._ledger_warned = True
                    logger.warning("%s; showing what the providers report", e)
                return None
            self._launch_prices[resource.id] = None if record is None else record.price
        return self._launch_prices[resource.id]

    def _with_launch_price(self, resource: Resource) -> Resource:
        """The resource priced at what it was launched at (never today's catalog price)."""
        price = self._launch_price(resource)
        if price is not None and price != resource.price:
            return resource.evolve(price=price)
        return resource

    async def get(self, resource: ResourceRef, *, provider: str | None = None) -> Resource:
        """The resource as its provider reports it now.

        Raises:
            NotFoundError: the provider does not know it.
        """
        rid, name = self._locate(resource, provider)
        found = await self.provider(name).get(rid)
        self._remember(found)
        return self._with_launch_price(found)

    async def list(
        self, *, providers: Sequence[str] | None = None, tags: Mapping[str, str] | None = None
    ) -> ResourceList:
        """Resources runctl launched, across ``providers`` (default: every usable one).

        Providers are asked concurrently. One that fails (or, when named in
        ``providers``, is not usable here) does not hide the others: its error is in
        the result's ``errors`` and what the others listed is returned.
        """
        wanted = tuple(providers or ())
        names, skipped = self._usable_provider_names(wanted)
        errors: dict[str, RunctlError] = {}
        if wanted:
            for name, reason in skipped.items():
                errors[name] = RunctlError(f"{name}: not asked: {reason}")
        built = self._build_providers(names, errors)
        listed: dict[str, Sequence[Resource]] = {}

        async def ask(name: str, provider: Provider) -> None:
            try:
                listed[name] = await provider.list(tags=tags)
            except Exception as e:  # a plugin's bug must not hide the other providers
                errors[name] = _isolated(name, e)

        async with anyio.create_task_group() as tg:
            for name, provider in built.items():
                tg.start_soon(ask, name, provider)
        found = ResourceList(errors=errors)
        for name in names:
            for resource in listed.get(name, ()):
                self._remember(resource)
                found.append(self._with_launch_price(resource))
        for name, error in errors.items():
            logger.warning("runctl: listing %s failed: %s", name, error)
        return found

    def _build_providers(
        self, names: Sequence[str], errors: dict[str, RunctlError]
    ) -> dict[str, Provider]:
        """The provider objects of ``names``; one that cannot be built goes to ``errors``."""
        built: dict[str, Provider] = {}
        for name in names:
            try:
                built[name] = self.provider(name)
            except Exception as e:
                errors[name] = _isolated(name, e)
        return built

    async def _transition(
        self, resource: ResourceRef, provider: str | None, wanted: ResourceState, op: str
    ) -> Resource:
        current = await self.get(resource, provider=provider)
        if current.state is wanted:
            return current
        impl = self.provider(current.provider)
        # The provider's documented actions win over what runctl's state implies
        # (RunPod starts a pod in ERROR, which runctl reports FAILED).
        hook = getattr(impl, "allowed_actions", None)
        allowed = hook(current) if callable(hook) else None
        if allowed is not None:
            if op not in allowed:
                raise InvalidTransitionError(current.id, current.state, wanted)
        elif not current.state.can_become(wanted):
            raise InvalidTransitionError(current.id, current.state, wanted)
        if op in ("stop", "start") and not impl.capabilities.stop_start:
            raise UnsupportedOperationError(current.provider, op, "see its capabilities")
        result: Resource = await getattr(impl, op)(current.id)
        self._remember(result)
        return self._with_launch_price(result)

    async def stop(self, resource: ResourceRef, *, provider: str | None = None) -> Resource:
        """Stop (pause) a running resource, keeping its disk.

        Raises:
            UnsupportedOperationError: the provider cannot stop resources.
            InvalidTransitionError: the resource cannot be stopped from its state.
        """
        return await self._transition(resource, provider, ResourceState.STOPPED, "stop")

    async def start(self, resource: ResourceRef, *, provider: str | None = None) -> Resource:
        """Start a stopped resource again."""
        return await self._transition(resource, provider, ResourceState.RUNNING, "start")

    async def terminate(
        self, resource: ResourceRef, *, provider: str | None = None, timeout: float = 300.0
    ) -> Resource:
        """Terminate a resource and wait until its provider confirms it; a no-op for one that ended.

        The ledger's record of the launch is closed (with its final cost) only then.

        Args:
            timeout: seconds to wait for the provider to report it gone or terminating.

        Returns:
            The resource as last observed (terminating, terminated or ended).

        Raises:
            TerminationUnverifiedError: the provider never confirmed within ``timeout``;
                the ledger keeps the launch open (``runctl cleanup`` retries it).
        """
        from .lifecycle import terminate_verified

        rid, name = self._locate(resource, provider)
        impl = self.provider(name)
        result = await terminate_verified(impl, rid, self.ledger, timeout=timeout)
        self._remember(result)
        return self._with_launch_price(result)

    async def logs(
        self,
        resource: ResourceRef,
        *,
        follow: bool = False,
        provider: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[str]:
        """The workload's output, line by line.

        Args:
            follow: keep reading as lines are written, until the resource ends.
            timeout: stop (quietly) after this many seconds.
        """
        _check_timeout("timeout", timeout)
        rid, name = self._locate(resource, provider)
        impl = self.provider(name)
        if not impl.capabilities.logs:
            raise UnsupportedOperationError(name, "logs", "see its capabilities")
        lines = impl.logs(rid, follow=follow)
        if timeout is None:
            async for line in lines:
                yield line
            return
        deadline = anyio.current_time() + timeout
        try:
            while True:
                got = False
                # The cancel scope is entered and left between two yields, never across one.
                with anyio.move_on_after(deadline - anyio.current_time()):
                    line = await lines.__anext__()
                    got = True
                if not got:
                    return
                yield line
        except StopAsyncIteration:
            return
        finally:
            aclose = getattr(lines, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def run(
        self,
        spec: LaunchSpec,
        *,
        timeout: float | None = None,
        start_timeout: float | None = 1800.0,
        on_log: Callable[[str], Awaitable[None] | None] | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """Launch ``spec``, stream its logs, wait for the command to end, tear it down.

        What ``runctl run`` does, for notebooks and tools: the resource is
        terminated when the command ends, when ``timeout`` runs out, and on any
        error or cancellation (Ctrl-C included).

        Args:
            spec: what to run.
            timeout: end the run this many seconds after the resource starts running,
                logs included (``None``: when the command ends). Required on a provider
                that cannot tell when the command ends (no ``exit_code`` capability),
                or the machine would bill until someone noticed.
            start_timeout: give up if it is not running after this many seconds.
            on_log: called (sync or async) with each line of output; ``None`` reads none.
                Followed as it is written where the provider can, else read once at the end.
            progress: called (sync or async) with the resource at each state change.

        Returns:
            The outcome, exit code and cost, and the resource as seen after teardown.

        Raises:
            ValidationError: no ``timeout`` on a provider that cannot report the end.
            WaitTimeoutError: not running within ``start_timeout`` (it was terminated).
        """
        _check_timeout("timeout", timeout)
        _check_timeout("start_timeout", start_timeout)
        name = spec.provider or (spec.offer.provider if spec.offer else None)
        name = name or self.settings.default_provider
        caps = self.provider(name).capabilities
        if not caps.exit_code and timeout is None:
            # Checked before launching: without it the run would bill until someone noticed.
            raise ValidationError(
                "timeout",
                f"{name} cannot tell when the command ends, so the run would never finish; "
                "give a timeout in seconds to tear the machine down then",
                allowed="seconds > 0; or launch() and terminate() yourself",
            )
        if spec.ttl is None and timeout is not None:
            # The run ends by its timeout anyway; a TTL just past it is recorded in the
            # ledger and on the resource, so `runctl cleanup` can act if this process dies.
            spec = attrs.evolve(
                spec, ttl=timedelta(seconds=(start_timeout or 0) + timeout + _RUN_TTL_SLACK)
            )
        launch = self.launch(spec)
        timed_out = False
        logs_error: str | None = None

        async def relay(res: Resource, *, follow: bool, limit: float | None) -> str | None:
            try:
                async for line in self.logs(res, follow=follow, timeout=limit):
                    await _maybe_await(on_log(line))  # type: ignore[misc]
            except RunctlError as e:
                # The outcome and the cost matter more than the output: never lose them.
                return str(e)
            return None

        async with launch as res:
            await self.wait(res, until="running", timeout=start_timeout, progress=progress)
            deadline = None if timeout is None else anyio.current_time() + timeout
            if caps.follow_logs and on_log is not None:
                logs_error = await relay(res, follow=True, limit=timeout)
            left = None if deadline is None else max(0.0, deadline - anyio.current_time())
            try:
                done = await self.wait(res, until="finished", timeout=left, progress=progress)
            except WaitTimeoutError as e:
                done, timed_out = e.resource, True
            if caps.logs and not caps.follow_logs and on_log is not None:
                # Logs that cannot be followed are read once, before the machine goes.
                logs_error = await relay(res, follow=False, limit=None)
        final = launch.resource or done  # as observed after teardown
        return RunResult(
            resource=final,
            outcome=done.state,
            exit_code=done.exit_code,
            timed_out=timed_out,
            cost=await self.cost(final),
            logs_error=logs_error,
        )

    async def wait(
        self,
        resource: ResourceRef,
        until: ResourceState | str | Iterable[ResourceState | str] = "finished",
        *,
        timeout: float | None = None,
        poll: float | None = None,
        progress: Progress | None = None,
        provider: str | None = None,
    ) -> Resource:
        """Poll until the resource reaches one of the ``until`` states.

        Args:
            until: a state, a state's name, ``"finished"`` (any terminal state), or several.
                Waiting for ``"running"`` also returns once the workload has already
                succeeded or failed, since it has run.
            timeout: give up after this many seconds (``None``: never).
            poll: seconds between polls; by default 0.2 s growing to 10 s.
            progress: called (sync or async) with the resource each time its state changes.

        Raises:
            WaitTimeoutError: ``timeout`` passed; the last observation is on ``.resource``.
            ResourceEndedError: the resource ended in a state that cannot reach ``until``.
        """
        targets = _targets(until)
        label = until if isinstance(until, str) else "/".join(sorted(s.value for s in targets))
        if isinstance(until, ResourceState):
            label = until.value
        if ResourceState.RUNNING in targets:
            targets = targets | _STARTED
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValidationError(
                "timeout", f"{timeout!r} is invalid", allowed="seconds >= 0, or None"
            )
        deadline = math.inf if timeout is None else clock.monotonic() + timeout
        interval = poll if poll is not None else 0.2
        last_state: ResourceState | None = None
        while True:
            current = await self.get(resource, provider=provider)
            resource = current
            if current.state is not last_state:
                last_state = current.state
                if progress is not None:
                    await _maybe_await(progress(current))
            if current.state in targets:
                return current
            if not any(current.state.can_become(t) for t in targets):
                raise ResourceEndedError(current, str(label))
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(current, str(label), float(timeout or 0))
            await clock.sleep(min(interval, remaining))
            if poll is None:
                interval = min(interval * 1.5, 10.0)

    async def cost(self, resource: ResourceRef, *, provider: str | None = None) -> Money | None:
        """Cost so far (running) or final cost (ended), at the price it was launched at.

        A :class:`~runctl.models.Resource` passed in is priced as observed; an id is
        looked up first. ``None`` when the launch price is unknown.
        """
        if isinstance(resource, Launch):
            resource = resource.resource
        if not isinstance(resource, Resource):
            resource = await self.get(resource, provider=provider)
        if resource.is_terminal:
            # An ended launch's cost is final: the ledger closed it with that figure.
            try:
                record = self.ledger.find_resource(resource.provider, resource.id)
            except LedgerError as e:
                logger.warning("%s", e)
                record = None
            if record is not None and record.final_cost is not None:
                return record.final_cost
        return _cost(self._with_launch_price(resource))

    # --- ledger, reconcile, cleanup -------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        """The local record of launches (``ledger.sqlite3`` in the runctl home)."""
        if self._ledger is None:
            from .ledger import Ledger

            self._ledger = Ledger(self.settings.home / "ledger.sqlite3")
        return self._ledger

    def _providers_by_name(
        self, providers: Sequence[str] | None
    ) -> tuple[dict[str, Provider], dict[str, str]]:
        """The usable providers among ``providers`` (default all), and why others are left out."""
        wanted = tuple(providers or ())
        names, skipped = self._usable_provider_names(wanted)
        errors: dict[str, RunctlError] = {}
        built = self._build_providers(names, errors)
        reasons = {name: str(e) for name, e in errors.items()}
        if wanted:
            reasons.update({name: f"not asked: {why}" for name, why in skipped.items()})
        return built, reasons

    async def reconcile(self, *, providers: Sequence[str] | None = None) -> ReconcileReport:
        """Bring the ledger in line with what the providers report.

        Adopts launches that were created but never confirmed, closes those whose
        resources are gone, records runctl-managed resources the ledger did not know.
        See :func:`runctl.reconcile.reconcile`.

        Args:
            providers: only these providers (default: every usable one).
        """
        from .reconcile import reconcile

        built, errors = self._providers_by_name(providers)
        report = await reconcile(self.ledger, built, default_ttl=self._default_ttl())
        return attrs.evolve(report, errors={**errors, **report.errors}) if errors else report

    async def cleanup(
        self, *, dry_run: bool = True, providers: Sequence[str] | None = None
    ) -> CleanupReport:
        """Find runctl-managed resources past their TTL, orphaned or unknown to the ledger.

        Args:
            dry_run: only report them, with their cost so far (the default); ``False``
                terminates each and waits until its provider confirms.
            providers: only these providers (default: every usable one).
        """
        from .reconcile import cleanup

        built, errors = self._providers_by_name(providers)
        report = await cleanup(self.ledger, built, dry_run=dry_run)
        return attrs.evolve(report, errors={**errors, **report.errors}) if errors else report


class ResourceList(list[Resource]):
    """What :meth:`AsyncClient.list` returns: the resources found, and what failed.

    A plain ``list`` of :class:`~runctl.Resource`, plus ``errors``: the providers
    that could not be asked, each with its error, so a broken or unreachable
    provider is reported without hiding what the others listed.
    """

    def __init__(
        self, resources: Iterable[Resource] = (), *, errors: Mapping[str, RunctlError] | None = None
    ) -> None:
        super().__init__(resources)
        self.errors: dict[str, RunctlError] = dict(errors or {})

    def __repr__(self) -> str:
        failed = f", errors={sorted(self.errors)}" if self.errors else ""
        return f"ResourceList({list.__repr__(self)}{failed})"


#: Seconds the TTL of a run with a timeout outlasts it, so only a dead process lets it fire.
_RUN_TTL_SLACK = 600


def _check_timeout(field: str, value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValidationError(field, f"{value!r} is invalid", allowed="seconds >= 0, or None")


def _isolated(name: str, error: Exception) -> RunctlError:
    """``error`` from provider ``name`` as a runctl error (a plugin's own bug included)."""
    if isinstance(error, RunctlError):
        return error
    wrapped = RunctlError(f"{name}: the provider failed: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped


class _AsyncLaunch(AbstractAsyncContextManager[Resource]):
    """What ``AsyncClient.launch`` returns: awaitable, or an async context manager."""

    def __init__(self, client: AsyncClient, spec: LaunchSpec) -> None:
        self._client = client
        self._spec = spec
        self._resource: Resource | None = None

    @property
    def resource(self) -> Resource | None:
        """The resource as launched, then as observed after the block terminated it."""
        return self._resource

    def __await__(self) -> Generator[Any, None, Resource]:
        return self._client._launch(self._spec).__await__()

    async def __aenter__(self) -> Resource:
        self._resource = await self._client._launch(self._spec)
        return self._resource

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._resource is not None
        with anyio.CancelScope(shield=True):
            try:
                self._resource = await self._client.terminate(self._resource)
            except Exception:
                if exc is None:
                    raise
                logger.error(
                    "terminating %s after an error failed; run `runctl cleanup`",
                    self._resource.id,
                    exc_info=True,
                )


# --- the sync client ----------------------------------------------------------------------------


class Launch(AbstractContextManager[Resource]):
    """What ``Client.launch`` returns: the launched resource, and a context manager.

    Attribute access is forwarded to the resource as launched (``launch.id``,
    ``launch.state``); use ``Client.get`` for a fresh observation. Used in a
    ``with`` block, the resource is terminated when the block exits, on error
    and Ctrl-C too.
    """

    def __init__(self, client: Client, resource: Resource) -> None:
        self._client = client
        self.resource = resource

    @property
    def id(self) -> str:
        """The provider's id of the resource."""
        return self.resource.id

    @property
    def provider(self) -> str:
        """The provider's name."""
        return self.resource.provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resource, name)

    def __repr__(self) -> str:
        return f"<Launch {self.resource.provider}:{self.resource.id} {self.resource.state.value}>"

    def __enter__(self) -> Resource:
        return self.resource

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # Kept: after teardown the provider may no longer know the resource at all.
            self.resource = self._client.terminate(self.resource)
        except Exception:
            if exc is None:
                raise
            logger.error(
                "terminating %s after an error failed; run `runctl cleanup`",
                self.resource.id,
                exc_info=True,
            )


class Client:
    """The synchronous client: every method of :class:`AsyncClient`, blocking.

    It runs an event loop in a helper thread for its whole life (an anyio blocking
    portal), so it works in plain scripts and inside Jupyter, where the main thread
    already runs a loop. Close it (or use ``with``) to stop that thread.

    Ctrl-C during a call cancels the call inside the loop and waits for its
    cleanup (a launch interrupted this way terminates what it created) before
    ``KeyboardInterrupt`` propagates.

    Args:
        backend: ``"asyncio"`` or ``"trio"`` for the helper loop.
        **kwargs: passed to :class:`AsyncClient`.
    """

    def __init__(self, *, backend: str = "asyncio", **kwargs: Any) -> None:
        if backend not in ("asyncio", "trio"):
            raise ValidationError("backend", f"{backend!r} is unknown", allowed="asyncio, trio")
        self._portal, self._thread = _start_portal(backend)
        self._closed = False
        try:
            self._async: AsyncClient = self._portal.call(lambda: _build(kwargs))
        except BaseException:
            self._stop_portal()
            raise

    def __repr__(self) -> str:
        return f"<Client home={str(self._async.settings.home)!r}>"

    @property
    def settings(self) -> Settings:
        """The settings in use."""
        return self._async.settings

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close providers and stop the helper thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._portal.call(self._async.aclose)
        finally:
            self._stop_portal()

    def _stop_portal(self) -> None:
        self._closed = True
        try:
            self._portal.call(self._portal.stop, True)
        except RuntimeError:  # already stopped
            pass
        self._thread.join(timeout=30)

    def _call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise RuntimeError("this runctl.Client is closed")
        finished = threading.Event()

        async def run() -> T:
            try:
                return await func(*args, **kwargs)
            finally:
                finished.set()

        future = self._portal.start_task_soon(run)
        try:
            return future.result()
        except KeyboardInterrupt:
            # Cancel the task in the loop, then wait for its shielded cleanup (a
            # cancelled launch terminates what it created) before giving up.
            future.cancel()
            finished.wait(timeout=_INTERRUPT_CLEANUP_SECONDS)
            raise

    def provider(self, name: str | None = None) -> Provider:
        """The provider object (async; for advanced use)."""
        return self._async.provider(name)

    def verify(self, provider: str | None = None, *, timeout: float | None = None) -> str:
        """See :meth:`AsyncClient.verify`."""
        return self._call(self._async.verify, provider, timeout=timeout)

    def offers(
        self,
        query: OfferQuery | None = None,
        *,
        providers: Sequence[str] | None = None,
        timeout: float | None = None,
        live: bool = True,
        **filters: Any,
    ) -> OfferList:
        """See :meth:`AsyncClient.offers`."""
        return self._call(
            self._async.offers, query, providers=providers, timeout=timeout, live=live, **filters
        )

    def refresh_catalog(
        self, *, providers: Sequence[str] | None = None, timeout: float | None = None
    ) -> Snapshot:
        """See :meth:`AsyncClient.refresh_catalog`."""
        return self._call(self._async.refresh_catalog, providers=providers, timeout=timeout)

    def launch(self, spec: LaunchSpec) -> Launch:
        """Launch ``spec`` and return a :class:`Launch` handle.

        ``res = rc.launch(spec)`` leaves it running (detached); ``with rc.launch(spec)
        as res:`` terminates it when the block exits.

        A Ctrl-C at any instant of the launch either returns the resource or
        terminates it before ``KeyboardInterrupt`` propagates: one that lands as the
        launch completes (when the loop's result would be dropped) is caught here.
        """
        launched: list[Resource] = []

        async def launch() -> Resource:
            resource = await self._async._launch(spec)
            launched.append(resource)  # kept even if the call's result is dropped
            return resource

        try:
            return Launch(self, self._call(launch))
        except BaseException:
            if launched and not self._closed:
                self._terminate_dropped(launched[0])
            raise

    def _terminate_dropped(self, resource: Resource) -> None:
        """Terminate a launched resource the caller will never get (interrupted)."""
        try:
            self._portal.call(self._async.terminate, resource)
        except BaseException:
            logger.critical(
                "interrupted launch: terminating %s failed; it may still run: "
                "runctl terminate %s --provider %s", resource.id, resource.id,
                resource.provider, exc_info=True,
            )

    def get(self, resource: ResourceRef, *, provider: str | None = None) -> Resource:
        """See :meth:`AsyncClient.get`."""
        return self._call(self._async.get, resource, provider=provider)

    def list(
        self, *, providers: Sequence[str] | None = None, tags: Mapping[str, str] | None = None
    ) -> ResourceList:
        """See :meth:`AsyncClient.list`."""
        return self._call(self._async.list, providers=providers, tags=tags)

    def stop(self, resource: ResourceRef, *, provider: str | None = None) -> Resource:
        """See :meth:`AsyncClient.stop`."""
        return self._call(self._async.stop, resource, provider=provider)

    def start(self, resource: ResourceRef, *, provider: str | None = None) -> Resource:
        """See :meth:`AsyncClient.start`."""
        return self._call(self._async.start, resource, provider=provider)

    def terminate(
        self, resource: ResourceRef, *, provider: str | None = None, timeout: float = 300.0
    ) -> Resource:
        """See :meth:`AsyncClient.terminate`."""
        return self._call(self._async.terminate, resource, provider=provider, timeout=timeout)

    def wait(
        self,
        resource: ResourceRef,
        until: ResourceState | str | Iterable[ResourceState | str] = "finished",
        *,
        timeout: float | None = None,
        poll: float | None = None,
        progress: Callable[[Resource], None] | None = None,
        provider: str | None = None,
    ) -> Resource:
        """See :meth:`AsyncClient.wait`. ``progress`` is called in the helper thread."""
        return self._call(
            self._async.wait,
            resource,
            until,
            timeout=timeout,
            poll=poll,
            progress=progress,
            provider=provider,
        )

    def cost(self, resource: ResourceRef, *, provider: str | None = None) -> Money | None:
        """See :meth:`AsyncClient.cost`."""
        return self._call(self._async.cost, resource, provider=provider)

    @property
    def ledger(self) -> Ledger:
        """See :attr:`AsyncClient.ledger`."""
        return self._async.ledger

    def reconcile(self, *, providers: Sequence[str] | None = None) -> ReconcileReport:
        """See :meth:`AsyncClient.reconcile`."""
        return self._call(self._async.reconcile, providers=providers)

    def cleanup(
        self, *, dry_run: bool = True, providers: Sequence[str] | None = None
    ) -> CleanupReport:
        """See :meth:`AsyncClient.cleanup`."""
        return self._call(self._async.cleanup, dry_run=dry_run, providers=providers)

    def run(
        self,
        spec: LaunchSpec,
        *,
        timeout: float | None = None,
        start_timeout: float | None = 1800.0,
        on_log: Callable[[str], Awaitable[None] | None] | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """See :meth:`AsyncClient.run`. ``on_log`` and ``progress`` are called from
        runctl's event-loop thread. Ctrl-C tears the resource down, then raises."""
        return self._call(
            self._async.run,
            spec,
            timeout=timeout,
            start_timeout=start_timeout,
            on_log=on_log,
            progress=progress,
        )

    def logs(
        self,
        resource: ResourceRef,
        *,
        follow: bool = False,
        provider: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[str]:
        """See :meth:`AsyncClient.logs`; lines arrive as they are read.

        Args:
            timeout: stop following after this many seconds (the sync counterpart of
                wrapping the async iteration in ``anyio.move_on_after``).
        """
        deadline = None if timeout is None else clock.monotonic() + timeout
        lines: ObjectStream[str] = self._call(_open_line_stream)
        send, receive = lines

        async def pump() -> None:
            async with send:
                async for line in self._async.logs(resource, follow=follow, provider=provider):
                    await send.send(line)

        async def batch() -> list[str]:
            # One thread hop per batch of ready lines, not per line.
            left = math.inf if deadline is None else deadline - clock.monotonic()
            got: list[str] = []
            with clock.move_on_after(left):  # cancelling a stream receive loses nothing
                try:
                    got.append(await receive.receive())
                except anyio.EndOfStream:
                    return []
            if not got:
                return []
            while len(got) < 1000:
                try:
                    got.append(receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            return got

        pumping = self._portal.start_task_soon(pump)
        try:
            while True:
                got = self._call(batch)
                if not got:
                    break
                yield from got
            if pumping.done():
                pumping.result()  # re-raise what the provider raised, if anything
        finally:
            if not pumping.done():
                pumping.cancel()
            if not self._closed:
                self._portal.call(receive.aclose)


ObjectStream = tuple["MemoryObjectSendStream[T]", "MemoryObjectReceiveStream[T]"]


async def _open_line_stream() -> ObjectStream[str]:
    return anyio.create_memory_object_stream[str](1000)


async def _build(kwargs: Mapping[str, Any]) -> AsyncClient:
    return AsyncClient(**kwargs)


def _start_portal(backend: str) -> tuple[anyio.from_thread.BlockingPortal, threading.Thread]:
    """Run an event loop with a blocking portal in a daemon thread.

    A daemon thread (not anyio's ``start_blocking_portal``, whose worker thread the
    interpreter joins at exit) so that a Client nobody closed never hangs the
    interpreter's exit, as happens with notebooks and quick scripts.
    """
    ready: Future[anyio.from_thread.BlockingPortal] = Future()

    async def serve() -> None:
        async with anyio.from_thread.BlockingPortal() as portal:
            ready.set_result(portal)
            await portal.sleep_until_stopped()

    def run() -> None:
        try:
            anyio.run(serve, backend=backend)
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e)

    thread = threading.Thread(target=run, name="runctl-client", daemon=True)
    thread.start()
    return ready.result(), thread
