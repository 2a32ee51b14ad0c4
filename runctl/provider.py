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
:class:`~runctl.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import attrs

from .errors import UnsupportedOperationError

if TYPE_CHECKING:
    from .config import ProviderConfig
    from .models import Capabilities, LaunchSpec, Offer, OfferQuery, Resource

__all__ = ["API_VERSION", "Availability", "Provider", "ProviderBase", "ProviderFactory"]

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
