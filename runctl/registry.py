"""Discovery of providers through the ``runctl.providers`` entry-point group.

Built-in providers are registered in runctl's own ``pyproject.toml`` exactly as
a third-party plugin registers its own, so there is one path for both.

- Listing reads installed distributions' metadata only; no provider module is
  imported until the provider is used (or its availability is checked).
- Two plugins claiming the same name is a :class:`~runctl.errors.PluginError`
  naming both; neither silently wins. A plugin claiming a built-in provider's
  name (``local``, ``runpod`` ...) never disables the built-in: the built-in is
  used and the plugin is reported as broken.
- An entry-point name that is not a lowercase slug can never be used, so it is
  reported as broken, not listed as usable.
- A provider written for another :data:`~runctl.provider.API_VERSION`, or that
  declares none, is refused with a message that says which it needs.
- A plugin that fails to import or does not satisfy the protocol is reported in
  :func:`list_providers` (and ``runctl doctor``) and never breaks the others.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import attrs

from .errors import PluginError

if TYPE_CHECKING:
    from .config import ProviderConfig, Settings
    from .provider import Provider, ProviderFactory

__all__ = ["ENTRY_POINT_GROUP", "ProviderInfo", "Registry", "default_registry", "list_providers"]

ENTRY_POINT_GROUP = "runctl.providers"

#: The distribution whose entry points are the built-in providers.
_BUILT_IN_DISTRIBUTION = "runctl"
#: What a provider name looks like (the same rule as ``LaunchSpec.provider``).
_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

_ASYNC_METHODS = ("offers", "launch", "get", "list", "terminate", "stop", "start", "aclose")


@attrs.frozen(kw_only=True)
class ProviderInfo:
    """One registered provider, as :func:`runctl.list_providers` reports it.

    Attributes:
        name: the provider's name (its entry-point name).
        target: ``module:attribute`` the entry point loads.
        distribution: the installed distribution that registers it, with its version.
        loaded: whether its module was imported (availability checks import it).
        usable: credentials and settings found (``None``: not checked).
        reason: why it is not usable, or where its credentials came from.
        error: why the plugin is broken (import failure, protocol mismatch, name clash).
    """

    name: str
    target: str
    distribution: str | None = None
    loaded: bool = False
    usable: bool | None = None
    reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The plugin loads and is usable (or was not checked)."""
        return self.error is None and self.usable is not False


def _is_built_in(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.metadata["Name"] == _BUILT_IN_DISTRIBUTION


def _dist_label(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown distribution>"
    return f"{dist.metadata['Name']} {dist.version}"


class Registry:
    """The providers installed in this environment.

    Args:
        eps: entry points to use instead of the installed ones (tests).
    """

    def __init__(self, eps: Iterable[EntryPoint] | None = None) -> None:
        found = list(entry_points(group=ENTRY_POINT_GROUP) if eps is None else eps)
        by_name: dict[str, list[EntryPoint]] = {}
        for ep in found:
            claims = by_name.setdefault(ep.name, [])
            # The same distribution seen twice on sys.path is one claim, not a clash.
            if all((_dist_label(c), c.value) != (_dist_label(ep), ep.value) for c in claims):
                claims.append(ep)
        # A plugin may not take a built-in's name: the built-in stays, the plugin is
        # kept aside to be reported (torchx's load_group lets the last one win silently).
        self._shadowing: list[EntryPoint] = []
        for name, claims in by_name.items():
            built_in = [ep for ep in claims if _is_built_in(ep)]
            if built_in and len(claims) > 1:
                self._shadowing.extend(ep for ep in claims if not _is_built_in(ep))
                by_name[name] = built_in
        self._eps = by_name
        self._loaded: dict[str, ProviderFactory] = {}
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Registered provider names, sorted (metadata only)."""
        return sorted(self._eps)

    def __contains__(self, name: object) -> bool:
        return name in self._eps

    def _clash(self, name: str) -> str | None:
        """Why ``name`` cannot be used whatever its module holds, or ``None``."""
        if not _SLUG.match(name):
            (ep,) = self._eps[name][:1]
            return (
                f"provider name {name!r} (from {_dist_label(ep)}) is not a lowercase slug "
                "(a letter, then letters, digits, '-' or '_'), so it can never be used; "
                "the plugin must rename its entry point"
            )
        claims = self._eps[name]
        if len(claims) < 2:
            return None
        who = " and ".join(f"{_dist_label(ep)} ({ep.value})" for ep in claims)
        return f"provider name {name!r} is claimed by {who}; uninstall one of them"

    def load(self, name: str) -> ProviderFactory:
        """Import provider ``name`` and check it against the protocol.

        Raises:
            PluginError: unknown name, name clash, import failure or protocol mismatch.
        """
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if name in self._failures:
                raise PluginError(self._failures[name])
            if name not in self._eps:
                known = ", ".join(self.names()) or "none"
                raise PluginError(f"no provider named {name!r} (installed: {known})")
            clash = self._clash(name)
            if clash:
                self._failures[name] = clash
                raise PluginError(clash)
            (ep,) = self._eps[name]
            try:
                factory = ep.load()
            except Exception as e:
                message = (
                    f"provider {name!r} ({ep.value} from {_dist_label(ep)}) failed to import: "
                    f"{type(e).__name__}: {e}"
                )
                self._failures[name] = message
                raise PluginError(message) from e
            problem = _protocol_problem(name, factory)
            if problem:
                message = f"provider {name!r} ({ep.value} from {_dist_label(ep)}) {problem}"
                self._failures[name] = message
                raise PluginError(message)
            self._loaded[name] = factory
            return factory  # type: ignore[no-any-return]

    def create(self, name: str, config: ProviderConfig) -> Provider:
        """Build provider ``name`` with its config.

        Raises:
            PluginError: as :meth:`load`, or the constructor failed for a non-runctl reason.
        """
        factory = self.load(name)
        from .errors import RunctlError

        try:
            return factory(config)
        except RunctlError:
            raise
        except Exception as e:
            raise PluginError(f"provider {name!r} failed to start: {type(e).__name__}: {e}") from e

    def info(self, settings: Settings | None = None, *, check: bool = True) -> list[ProviderInfo]:
        """Describe every registered provider, broken ones included.

        Args:
            settings: settings to check availability against (default: loaded from the environment).
            check: import each provider and ask whether it is usable here; ``False`` reads
                metadata only.
        """
        if check and settings is None:
            from .config import load_settings

            settings = load_settings()
        result = []
        for name in self.names():
            claims = self._eps[name]
            base = ProviderInfo(
                name=name,
                target=claims[0].value,
                distribution=", ".join(_dist_label(ep) for ep in claims),
                loaded=name in self._loaded,
            )
            clash = self._clash(name)
            if clash:
                result.append(attrs.evolve(base, error=clash))
                continue
            if not check:
                result.append(base)
                continue
            assert settings is not None
            try:
                factory = self.load(name)
            except PluginError as e:
                result.append(attrs.evolve(base, error=str(e)))
                continue
            result.append(attrs.evolve(base, loaded=True, **_availability(factory, settings, name)))
        for ep in self._shadowing:
            result.append(
                ProviderInfo(
                    name=ep.name,
                    target=ep.value,
                    distribution=_dist_label(ep),
                    error=(
                        f"{_dist_label(ep)} ({ep.value}) claims the built-in provider name "
                        f"{ep.name!r}; the built-in is used and this plugin is ignored: "
                        "it must register under another name"
                    ),
                )
            )
        return result


def _availability(factory: Any, settings: Settings, name: str) -> dict[str, Any]:
    check = getattr(factory, "check", None)
    if check is None:
        return {"usable": True, "reason": "the provider offers no availability check"}
    try:
        availability = check(settings.provider_config(name))
    except Exception as e:
        return {"error": f"availability check failed: {type(e).__name__}: {e}"}
    return {"usable": bool(availability.usable), "reason": availability.reason}


def _protocol_problem(name: str, factory: Any) -> str | None:
    if not callable(factory):
        return "is not callable (an entry point must load a class or factory)"
    missing = [m for m in (*_ASYNC_METHODS, "logs") if not hasattr(factory, m)]
    if missing:
        return f"does not satisfy the Provider protocol: missing {', '.join(missing)}"
    not_async = [m for m in _ASYNC_METHODS if not inspect.iscoroutinefunction(getattr(factory, m))]
    if not_async:
        return f"does not satisfy the Provider protocol: {', '.join(not_async)} must be async"
    declared = getattr(factory, "name", None)
    if declared is not None and declared != name:
        return f"declares name {declared!r} but is registered as {name!r}"
    from .provider import API_VERSION, MIN_API_VERSION

    version = getattr(factory, "api_version", None)
    if version is None:
        return (
            f"declares no api_version; set api_version = {API_VERSION} once it follows "
            f"provider API {API_VERSION} (see docs/plugins.md), or inherit ProviderBase"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"declares api_version {version!r}; provider API versions start at 1"
    if version > API_VERSION:
        return (
            f"needs provider API version {version}; this runctl has {API_VERSION}: upgrade runctl"
        )
    if version < MIN_API_VERSION:
        return (
            f"was written for provider API version {version}; this runctl needs "
            f"{MIN_API_VERSION} to {API_VERSION} (see 'Changes in API {API_VERSION}' in "
            "docs/plugins.md): upgrade the plugin"
        )
    return None


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry of installed providers (built on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def list_providers(*, check: bool = True) -> Sequence[ProviderInfo]:
    """Every registered provider, whether it is usable here, and why not.

    Args:
        check: import each provider to check its credentials (no network);
            ``False`` lists from metadata only.
    """
    return default_registry().info(check=check)
