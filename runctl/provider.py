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

:class:`ProviderBase` is an optional helper: it supplies the capability-gated
methods (``stop``, ``start``, ``logs``) that raise
:class:`~runctl.errors.UnsupportedOperationError`. :class:`RestProviderBase`
adds what every provider of a REST API with an API key needs: finding the key
(and saying where, in ``check``), one lazily built :class:`runctl.http.HttpApi`
and the test seams (transport, timeout, retry policy, sleep).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import attrs

from .errors import MissingCredentialsError, UnsupportedOperationError

if TYPE_CHECKING:
    import httpx

    from .config import ProviderConfig, Secret
    from .errors import ProviderError
    from .http import HttpApi, RetryPolicy
    from .models import Capabilities, LaunchSpec, Offer, OfferQuery, Resource

__all__ = [
    "API_VERSION",
    "Availability",
    "Provider",
    "ProviderBase",
    "ProviderFactory",
    "RestProviderBase",
]

#: Version of this protocol. A provider declares the version it was written for in
#: ``api_version``; the registry refuses a provider written for a newer one.
API_VERSION = 1


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
    """What runctl needs from a provider. All I/O methods are coroutines.

    Methods a provider cannot support raise
    :class:`~runctl.errors.UnsupportedOperationError`; they never silently do nothing.
    """

    #: The entry-point name, a lowercase slug such as ``"runpod"``.
    name: str
    #: The :data:`API_VERSION` this provider was written for.
    api_version: int

    @property
    def capabilities(self) -> Capabilities:
        """What this provider supports."""
        ...

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Machines the provider would rent now, priced. May pre-filter by ``query``."""
        ...

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Create the resource and start ``spec.command`` on it.

        Must be idempotent on ``spec.launch_id``: if a resource with that launch id
        exists, return it instead of creating another.
        """
        ...

    async def get(self, resource_id: str) -> Resource:
        """The resource as the provider sees it now. Raises ``NotFoundError`` if unknown."""
        ...

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Resources runctl launched here, optionally only those carrying all ``tags``."""
        ...

    async def terminate(self, resource_id: str) -> Resource:
        """Ask the provider to remove the resource; returns it as observed after asking."""
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


class ProviderBase:
    """Optional base class: defaults for the capability-gated parts of :class:`Provider`.

    Subclasses set ``name`` and ``capabilities`` and implement the core methods.
    """

    name: ClassVar[str]
    api_version: ClassVar[int] = API_VERSION

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether the provider is usable here. The default: always."""
        return Availability(usable=True)

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
    its key in some other form (a TOML file per team ...) overrides :meth:`_secret`
    and names the place in ``api_key_elsewhere``. Errors the default mapping of
    :class:`~runctl.http.HttpApi` gets wrong are refined by overriding
    :meth:`_classify`.

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
    #: Other places an overridden :meth:`_secret` looks, as shown to the user.
    api_key_elsewhere: ClassVar[tuple[str, ...]] = ()
    #: Told to a user who has no key: where to make one, or the command that stores it.
    api_key_hint: ClassVar[str] = ""
    #: The request header that carries the key.
    auth_header: ClassVar[str] = "Authorization"
    #: The prefix of the key in that header; ``None`` sends the bare key.
    auth_scheme: ClassVar[str | None] = "Bearer"

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
    def _secret(cls, config: ProviderConfig) -> Secret | None:
        """The API key, from the places the class declares; ``None`` if there is none."""
        return config.secret("api_key", env=cls.api_key_env, files=cls._key_files(config))

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

    def _classify(self, response: httpx.Response, message: str) -> ProviderError | None:
        """Refine the mapping of an error response; ``None`` keeps HttpApi's default."""
        return None

    async def _sleep(self, seconds: float) -> None:
        """Wait (through the ``sleep`` seam in tests)."""
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
        else:
            from . import clock

            await clock.sleep(seconds)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
