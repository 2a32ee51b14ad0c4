"""The contract between runctl's core and every provider, built-in or third-party.

A provider is any class whose instances satisfy :class:`Provider` (structural
typing: nothing to inherit) and that is registered under the
``runctl.providers`` entry-point group::

    [project.entry-points."runctl.providers"]
    mycloud = "mycloud_runctl:MyCloudProvider"

runctl calls ``MyCloudProvider(config)`` with a :class:`~runctl.config.ProviderConfig`
the first time the provider is used, and ``MyCloudProvider.check(config)`` (if the
class has it) to tell the user whether it is usable on this machine.
Everything is async; the sync :class:`runctl.Client` is built on top.

Optional hooks, looked up with ``getattr`` (a provider without them still conforms):

- ``async def verify(self) -> str``: one cheap authenticated call proving the
  credentials work (``runctl doctor --online``, :meth:`runctl.AsyncClient.verify`);
  returns what was checked, raises ``AuthenticationError`` for a refused key.
  Without it the credentials are reported "not checked".
- ``setting_keys`` (a class attribute, a tuple of names): the keys the provider
  reads from its ``[providers.<name>]`` table; ``runctl doctor`` reports any other
  key there as a probable typo.
- ``def allowed_actions(self, resource) -> frozenset[str] | None``: the actions
  (``"stop"``, ``"start"``) the provider documents for the resource in its current
  raw state, where they differ from what runctl's state implies (RunPod starts a
  pod in ``ERROR``); ``None`` leaves the decision to runctl's transition table.

:class:`ProviderBase` is an optional helper (plugin authors import it from
:mod:`runctl.kit`). It supplies the capability-gated methods (``stop``, ``start``,
``logs``) that raise :class:`~runctl.errors.UnsupportedOperationError`, and the
lifecycle every provider shares, written once as template methods: ``launch``
looks for the launch id before calling the provider's :meth:`~ProviderBase.create`
and recovers a create whose answer was lost; ``terminate`` calls
:meth:`~ProviderBase.remove` and reports an id the provider does not know as
TERMINATED; ``list`` calls :meth:`~ProviderBase.list_all` and filters by tags.
:class:`RestProviderBase` adds what every provider of a REST API with an API key
needs: finding the key (and saying where, in ``check``), one lazily built
:class:`runctl.http.HttpApi` and the test seams (transport, timeout, retry policy,
sleep).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import attrs

from .errors import (
    MissingCredentialsError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ServerError,
    UnsupportedOperationError,
)
from .models import TAG_LAUNCH_ID, TAG_MANAGED_BY, ResourceState

if TYPE_CHECKING:
    import httpx

    from ._wire import Fields
    from .config import ProviderConfig, Secret
    from .cost import BillingRule
    from .gpus import GpuSpellings
    from .http import HttpApi, RetryPolicy
    from .models import Capabilities, LaunchSpec, Offer, OfferQuery, Resource

__all__ = [
    "API_VERSION",
    "MIN_API_VERSION",
    "Availability",
    "Provider",
    "ProviderBase",
    "ProviderFactory",
    "RestProviderBase",
    "is_lost_answer",
]

#: Version of this protocol. A provider declares the version it was written for in
#: ``api_version``; the registry refuses a provider that declares none, or one outside
#: ``MIN_API_VERSION`` to ``API_VERSION``. Version 2 (runctl 0.2) defines multi-node
#: launches, argv versus shell commands, ``terminate`` of an unknown id and who recovers
#: a lost answer (docs/plugins.md, "Changes in API 2").
API_VERSION = 2
#: The oldest protocol version this runctl still drives.
MIN_API_VERSION = 2


@attrs.frozen(kw_only=True)
class Availability:
    """Whether a provider can be used on this machine, and why not.

    Attributes:
        usable: credentials and settings are present (not a promise that they work).
        reason: why not, or where the credentials were found; never the secret itself.
    """

    usable: bool
    reason: str | None = None


@runtime_checkable
class Provider(Protocol):
    """What runctl needs from a provider (protocol version 2). All I/O methods are coroutines.

    The contract, beyond the signatures (docs/plugins.md has the long form):

    - **Capabilities are promises.** Every operation ``capabilities`` advertises
      works; every one it denies raises
      :class:`~runctl.errors.UnsupportedOperationError` and never silently does nothing.
    - **Errors are runctl's.** Every method raises only :class:`~runctl.errors.RunctlError`
      subclasses (a library's own exception is wrapped with ``raise ... from``), and no
      message, repr or log line holds a secret.
    - **Commands.** ``spec.command`` as a list is an argv, run exactly as given and never
      through a shell; a command given as one string (``LaunchSpec.shell``) is a shell
      command line, run by ``/bin/sh -c``.
    - **Who recovers what.** The core makes launches safe: it records the intent, and
      when a launch fails without a clear answer, is cancelled or times out, it looks
      for the launch id (``list(tags={TAG_LAUNCH_ID: ...})``) and adopts or terminates
      what it finds. A provider never re-sends a non-idempotent create on its own
      (the HTTP layer refuses to); it may retry idempotent reads, and passes its API's
      own idempotency token (a client token, a request id) where there is one.
    - **Multi-node.** ``spec.nodes > 1`` is launched only by a provider with the
      ``multi_node`` capability (the client refuses it for the others, and such a provider
      called directly raises ``UnsupportedOperationError``), as one resource that reports
      every node in ``addresses``, with the rendezvous environment of
      :mod:`runctl.rendezvous` set on every node.
    - **Time.** ``ended_at`` is when the resource stopped billing: its removal, or the
      command's end where nothing bills after it. A finished command whose machine still
      bills (SUCCEEDED but not yet terminated) has no ``ended_at``, so the cost so far
      keeps counting, as the provider's invoice does.
    """

    # Read-only members: a class attribute (``name = "runpod"``) or an instance
    # attribute satisfies them, so ProviderBase subclasses are Providers without a cast.
    @property
    def name(self) -> str:
        """The entry-point name, a lowercase slug such as ``"runpod"``."""
        ...

    @property
    def api_version(self) -> int:
        """The :data:`API_VERSION` this provider was written for."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this provider supports."""
        ...

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Machines the provider would rent now, priced.

        ``Offer.price.per_hour`` is the whole machine's price (all its GPUs), in
        ``Decimal``. The core filters and sorts every provider's offers again, so
        ``query`` is a hint: a provider may pre-filter to save a round trip, using only
        the core's matchers (GPU models match exactly, never by substring).
        """
        ...

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Create the resource and start ``spec.command`` on it.

        Must be idempotent on ``spec.launch_id``: if a resource with that launch id
        exists, return it instead of creating another. The resource carries
        ``spec.runctl_tags`` (managed-by, launch id, name, TTL and the user's tags), so
        ``list(tags=...)`` finds it and a lost ledger can be rebuilt. A GPU model asked
        for (``spec.gpu`` or ``spec.offer``) is launched exactly, or the launch fails with
        :class:`~runctl.errors.CapacityError` naming the model: never a different one.
        """
        ...

    async def get(self, resource_id: str) -> Resource:
        """The resource as the provider sees it now.

        Each documented raw state maps to a :class:`~runctl.ResourceState` in an explicit
        table (``raw_state`` keeps the provider's word); the workload's exit code is in
        ``exit_code`` where the provider can tell it (capability ``exit_code``): 0 is
        SUCCEEDED, anything else FAILED.

        Raises:
            NotFoundError: the provider does not know the id (never a TERMINATED stand-in).
        """
        ...

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Resources runctl launched here (those with runctl's managed-by tag).

        Only those carrying every one of ``tags``, when given. Ended resources the
        provider still reports are included, in their terminal state; callers filter
        with ``Resource.is_terminal``. Resources runctl did not launch never are.
        """
        ...

    async def terminate(self, resource_id: str) -> Resource:
        """Ask the provider to remove the resource; returns it as observed after asking.

        Idempotent: terminating what is already gone, or an id the provider no longer
        knows, returns it TERMINATED and raises nothing. The core then verifies the
        end by polling ``get`` (:func:`runctl.lifecycle.terminate_verified`).
        """
        ...

    async def stop(self, resource_id: str) -> Resource:
        """Stop (pause) the resource, keeping its disk. Capability ``stop_start``."""
        ...

    async def start(self, resource_id: str) -> Resource:
        """Start a stopped resource again. Capability ``stop_start``."""
        ...

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """The workload's output, line by line (no trailing newline). Capability ``logs``."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources held by the provider object."""
        ...


class ProviderFactory(Protocol):
    """What an entry point must load: something that builds a provider from its config."""

    def __call__(self, config: ProviderConfig) -> Provider: ...


#: States in which a resource no longer holds its launch id: a retried launch creates anew.
_GONE = frozenset({ResourceState.TERMINATED, ResourceState.TERMINATING})


def refuse_unsupported_nodes(provider: object, spec: LaunchSpec) -> None:
    """Raise unless ``provider`` (a :class:`Provider`) can launch ``spec.nodes`` nodes.

    Raises:
        UnsupportedOperationError: ``nodes > 1`` on a provider without ``multi_node``.
    """
    if spec.nodes > 1 and not getattr(provider, "capabilities").multi_node:  # noqa: B009
        raise UnsupportedOperationError(
            getattr(provider, "name", type(provider).__name__),
            "multi-node launches",
            f"nodes={spec.nodes} was asked; use a provider with the multi_node capability",
        )


def is_lost_answer(error: BaseException) -> bool:
    """Whether a request that failed so may have been carried out anyway.

    True for no answer after the request was sent (``maybe_applied``) and for a
    500, 502 or 504 (a gateway may have passed it on); false for an answer that
    says it was refused (4xx) and for a connection that was never made.
    """
    if isinstance(error, ProviderConnectionError):
        return error.maybe_applied
    return isinstance(error, ServerError) and error.status in (None, 500, 502, 504)


class ProviderBase:
    """Optional base class: the lifecycle every provider shares, and the gated defaults.

    A subclass sets ``name``, ``capabilities`` and its facts, and implements the
    wire calls: :meth:`create`, :meth:`remove`, :meth:`list_all` and ``get``
    (and ``offers``). The public methods around them are written once here:

    - ``launch(spec)`` returns the resource already carrying ``spec.launch_id``
      (:meth:`find_by_launch_id`), else calls :meth:`create`; when the create
      fails without a clear answer (no answer, a 500/502/504), it looks for the
      launch id again (``recover_tries`` times, ``recover_wait`` seconds apart)
      before raising, so a lost answer never causes a second resource.
    - ``terminate(id)`` calls :meth:`remove`; an id the provider does not know
      (``NotFoundError``) is reported TERMINATED: terminate is idempotent.
    - ``list(tags=)`` keeps, of :meth:`list_all`, what carries runctl's managed-by
      tag and every tag asked for.

    A provider whose API does these differently overrides the public method itself.
    """

    name: ClassVar[str]
    api_version: ClassVar[int] = API_VERSION
    #: How the provider bills time (increment, minimum); used for its live prices
    #: and the price snapshot. ``None``: not declared.
    billing_rule: ClassVar[BillingRule | None] = None
    #: The provider's own names for GPUs, where they differ from runctl's table.
    gpu_spellings: ClassVar[GpuSpellings | None] = None
    #: What one resource is called here, in messages ("pod", "instance", "machine").
    resource_noun: ClassVar[str] = "resource"
    #: Looks for a lost create's resource this many times ...
    recover_tries: ClassVar[int] = 1
    #: ... this many seconds apart.
    recover_wait: ClassVar[float] = 2.0

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether the provider is usable here. The default: always."""
        return Availability(usable=True)

    # --- the lifecycle (template methods) -------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Create the resource for ``spec``, or return the one its launch id already has.

        Raises:
            ProviderError: the create failed; when it may have been carried out and no
                resource with the launch id could be found, the error says that
                launching again with the same launch id is safe
                (``ProviderConnectionError.maybe_applied`` is set).
        """
        refuse_unsupported_nodes(self, spec)
        self.check_launch(spec)
        existing = await self.find_by_launch_id(spec.launch_id)
        if existing is not None:
            return existing
        try:
            return await self.create(spec)
        except ProviderError as error:
            if not is_lost_answer(error):
                raise
            found = await self.recover_launch(spec.launch_id)
            if found is not None:
                return found
            raise self._unrecovered(spec.launch_id, error) from error

    def _unrecovered(self, launch_id: str, error: ProviderError) -> ProviderError:
        if isinstance(error, ProviderConnectionError):
            what = "got no answer"
        else:
            what = f"failed with HTTP {error.status}" if error.status else "failed"
        message = (
            f"{error.message}; the create for launch {launch_id} {what} and may have been "
            f"carried out, but no {self.resource_noun} with launch id {launch_id} was found; "
            "launching again with the same launch id is safe (it looks for that launch id "
            "first, so it never creates a second one)"
        )
        again = type(error)(
            message,
            provider=error.provider,
            status=error.status,
            request_id=error.request_id,
            body=error.body,
        )
        if isinstance(again, ProviderConnectionError):
            again.maybe_applied = True
        return again

    async def recover_launch(self, launch_id: str) -> Resource | None:
        """After a create whose answer was lost: the resource it made, if it can be found.

        Looks ``recover_tries`` times; a look that fails is not an answer.
        """
        for attempt in range(max(self.recover_tries, 1)):
            if attempt:
                await self.sleep(self.recover_wait)
            try:
                found = await self.find_by_launch_id(launch_id)
            except ProviderError:
                continue
            if found is not None:
                return found
        return None

    async def find_by_launch_id(self, launch_id: str) -> Resource | None:
        """The live resource carrying ``launch_id``, or ``None`` (ended ones do not count)."""
        for resource in await self.list(tags={TAG_LAUNCH_ID: launch_id}):
            if resource.state not in _GONE:
                return resource
        return None

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Resources runctl launched here, optionally only those carrying all ``tags``."""
        wanted = dict(tags or {})
        return [
            r
            for r in await self.list_all()
            if r.tags.get(TAG_MANAGED_BY) == "runctl"
            and all(r.tags.get(k) == v for k, v in wanted.items())
        ]

    async def terminate(self, resource_id: str) -> Resource:
        """Remove the resource; an id the provider does not know is reported TERMINATED."""
        try:
            return await self.remove(resource_id)
        except NotFoundError:
            return self.unknown_terminated(resource_id)

    def unknown_terminated(self, resource_id: str) -> Resource:
        """What ``terminate`` reports for an id the provider does not know."""
        from .models import Resource

        return Resource(
            id=resource_id,
            provider=self.name,
            state=ResourceState.TERMINATED,
            raw_state=None,
            detail=f"{self.resource_noun} not known to {self.name} (removed, or never created)",
        )

    # --- hooks ----------------------------------------------------------------------------------

    def check_launch(self, spec: LaunchSpec) -> None:
        """Refuse, before any request, a spec this provider can never run (default: accept).

        Raises:
            ValidationError, UnsupportedOperationError: naming what is wrong.
        """

    async def create(self, spec: LaunchSpec) -> Resource:
        """The wire call that creates the resource for ``spec`` (called by ``launch``)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither launch nor create")

    async def remove(self, resource_id: str) -> Resource:
        """The wire call that removes the resource (called by ``terminate``).

        Raises:
            NotFoundError: the provider does not know ``resource_id``.
        """
        raise NotImplementedError(f"{type(self).__name__} implements neither terminate nor remove")

    async def list_all(self) -> Sequence[Resource]:
        """Every resource runctl may have launched here (``list`` filters them)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither list nor list_all")

    async def sleep(self, seconds: float) -> None:
        """Wait between looks (the ``sleep`` seam of :class:`RestProviderBase` in tests)."""
        import anyio

        await anyio.sleep(seconds)

    # --- capability-gated defaults --------------------------------------------------------------

    async def stop(self, resource_id: str) -> Resource:
        raise UnsupportedOperationError(self.name, "stop", "see the provider's capabilities")

    async def start(self, resource_id: str) -> Resource:
        raise UnsupportedOperationError(self.name, "start", "see the provider's capabilities")

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        raise UnsupportedOperationError(self.name, "logs", "see the provider's capabilities")

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class RestProviderBase(ProviderBase):
    """Optional base class for a provider of a REST API authenticated by an API key.

    A subclass declares where its key and API are, and gets :meth:`check`, the key
    lookup, one lazily built :class:`runctl.http.HttpApi` (``self._api()``), the
    test seams and :meth:`aclose`::

        class MyCloudProvider(RestProviderBase):
            name = "mycloud"
            default_base_url = "https://api.mycloud.example/v1"
            api_key_env = ("MYCLOUD_API_KEY",)
            api_key_hint = "Create a key at https://mycloud.example/keys"

    The key is looked for in ``api_key_env``, then ``api_key`` in the provider's
    table of the config file, then ``api_key_files``. A provider whose tool keeps
    its key in some other form (a TOML file per team ...) overrides
    :meth:`find_api_key` and names the place in ``api_key_elsewhere``. Errors the
    default mapping of :class:`~runctl.http.HttpApi` gets wrong are refined by
    overriding :meth:`classify_error`. Wire objects are read with :meth:`fields`,
    which hides the values of ``secret_fields`` from every error it raises.
    (The alpha's ``_secret`` and ``_classify`` overrides still work.)

    Args:
        config: runctl's configuration for this provider.
        transport: an httpx transport (tests); default: the network.
        retry: the HTTP retry policy; default: :class:`runctl.http.RetryPolicy`.
        timeout: HTTP timeouts; default: connect 10 s, everything else 30 s.
        sleep: the async sleep used between retries and other waits; default
            :func:`runctl.clock.sleep`.
    """

    #: The API root; the ``base_url`` setting (``RUNCTL_<NAME>_BASE_URL``) overrides it.
    default_base_url: ClassVar[str]
    #: Environment variables that may hold the API key, first match wins.
    api_key_env: ClassVar[tuple[str, ...]] = ()
    #: Files whose first non-empty line is the key, looked in after the config file.
    #: A leading ``~`` is ``$HOME``; a leading ``$XDG_CONFIG_HOME`` is that variable,
    #: or ``~/.config`` when it is unset (both read from the provider's environment).
    api_key_files: ClassVar[tuple[str, ...]] = ()
    #: Other places an overridden :meth:`find_api_key` looks, as shown to the user.
    api_key_elsewhere: ClassVar[tuple[str, ...]] = ()
    #: Told to a user who has no key: where to make one, or the command that stores it.
    api_key_hint: ClassVar[str] = ""
    #: The request header that carries the key.
    auth_header: ClassVar[str] = "Authorization"
    #: The prefix of the key in that header; ``None`` sends the bare key.
    auth_scheme: ClassVar[str | None] = "Bearer"
    #: Fields of the provider's wire objects whose values are the user's secrets (env
    #: values, tokens, scripts): :meth:`fields` never shows them in an error.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: A cheap authenticated GET (relative to the API root) that :meth:`verify` makes;
    #: ``None``: the provider offers no such check.
    verify_path: ClassVar[str | None] = None
    #: Keys read from the provider's config table (``runctl doctor`` flags others).
    setting_keys: ClassVar[tuple[str, ...]] = ("api_key", "base_url")

    def __init__(
        self,
        config: ProviderConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._transport = transport
        self._retry = retry
        self._timeout = timeout
        self._sleep_fn = sleep
        self._http: HttpApi | None = None

    # --- credentials ----------------------------------------------------------------------------

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether an API key is present, and where it was found (never the key)."""
        secret = cls._secret(config)
        if secret is None:
            looked_in = ", ".join(cls._looked_in(config))
            return Availability(usable=False, reason=f"no API key (looked in: {looked_in})")
        return Availability(usable=True, reason=f"API key from {secret.source}")

    @classmethod
    def find_api_key(cls, config: ProviderConfig) -> Secret | None:
        """The API key, from the places the class declares; ``None`` if there is none.

        Override to look somewhere else too (call ``super().find_api_key(config)``
        first), and name the place in ``api_key_elsewhere``.
        """
        return config.secret("api_key", env=cls.api_key_env, files=cls._key_files(config))

    @classmethod
    def _secret(cls, config: ProviderConfig) -> Secret | None:
        # The alpha's hook name: overriding it still works; new code overrides find_api_key.
        return cls.find_api_key(config)

    @classmethod
    def _looked_in(cls, config: ProviderConfig) -> tuple[str, ...]:
        return (
            *(f"env {var}" for var in cls.api_key_env),
            f"config file [providers.{config.name}] api_key",
            *(f"file {path}" for path in cls._key_files(config)),
            *cls.api_key_elsewhere,
        )

    @classmethod
    def _key_files(cls, config: ProviderConfig) -> tuple[Path, ...]:
        environ = config.environ
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
        xdg = environ.get("XDG_CONFIG_HOME")
        roots = {"~": home, "$XDG_CONFIG_HOME": Path(xdg) if xdg else home / ".config"}
        paths = []
        for declared in cls.api_key_files:
            root, _, rest = declared.partition("/")
            paths.append(roots[root] / rest if root in roots else Path(declared))
        return tuple(paths)

    # --- HTTP -----------------------------------------------------------------------------------

    def _api(self) -> HttpApi:
        """The provider's HTTP client, built on first use.

        Raises:
            MissingCredentialsError: no API key anywhere runctl looks.
            ConfigurationError: the ``base_url`` setting is not usable.
        """
        if self._http is None:
            from .http import HttpApi

            secret = self._secret(self.config)
            if secret is None:
                raise MissingCredentialsError(
                    self.name, self._looked_in(self.config), self.api_key_hint
                )
            base_url = self.config.setting("base_url", default=self.default_base_url)
            self._http = HttpApi(
                provider=self.name,
                base_url=base_url or self.default_base_url,
                secret=secret,
                auth_header=self.auth_header,
                auth_scheme=self.auth_scheme,
                classify=self._classify,
                transport=self._transport,
                timeout=self._timeout,
                retry=self._retry,
                sleep=self._sleep_fn,
            )
        return self._http

    def classify_error(self, response: httpx.Response, message: str) -> ProviderError | None:
        """Refine the mapping of an error response; ``None`` keeps HttpApi's default.

        Args:
            response: the error response (its body is read).
            message: the message HttpApi made of it, secrets already scrubbed.

        Returns:
            The error to raise (give it ``**self._api().error_kwargs(response)``), or
            ``None`` for the default mapping by status.
        """
        return None

    def _classify(self, response: httpx.Response, message: str) -> ProviderError | None:
        # The alpha's hook name: overriding it still works; new code overrides classify_error.
        return self.classify_error(response, message)

    def fields(self, data: object, what: str) -> Fields:
        """Read one wire object leniently, with ``secret_fields`` hidden from its errors."""
        from ._wire import Fields

        return Fields(data, what, provider=self.name, secret=self.secret_fields)

    async def verify(self) -> str:
        """Prove the API key works with one cheap authenticated GET of ``verify_path``.

        Returns:
            What was checked, e.g. ``"GET /v2/account/ssh-keys answered"``.

        Raises:
            UnsupportedOperationError: the provider declares no ``verify_path``.
            MissingCredentialsError: no API key anywhere runctl looks.
            AuthenticationError: the key was refused.
            ProviderError: the call failed otherwise.
        """
        if self.verify_path is None:
            raise UnsupportedOperationError(self.name, "verify", "no cheap authenticated call")
        await self._api().get(self.verify_path)
        return f"GET {self.verify_path} answered"

    async def sleep(self, seconds: float) -> None:
        """Wait (through the ``sleep`` seam in tests)."""
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
        else:
            from . import clock

            await clock.sleep(seconds)

    _sleep = sleep

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
