"""Discovery of providers through the ``runctl.providers`` entry-point group.

Built-in providers are registered in runctl's own ``pyproject.toml`` exactly as
a third-party plugin registers its own, so there is one path for both.

- Listing reads installed distributions' metadata only; no provider module is
  imported until the provider is used (or its availability is checked).
- Two distributions claiming the same name is a :class:`~runctl.errors.PluginError`
  naming both; neither silently wins.
- A plugin that fails to import or does not satisfy the protocol is reported in
  :func:`providers` (and ``runctl doctor``) and never breaks the others.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import attrs

from .errors import PluginError

if TYPE_CHECKING:
    from .config import ProviderConfig, Settings
    from .provider import Provider, ProviderFactory

__all__ = ["ENTRY_POINT_GROUP", "ProviderInfo", "Registry", "default_registry", "providers"]

ENTRY_POINT_GROUP = "runctl.providers"

_ASYNC_METHODS = ("offers", "launch", "get", "list", "terminate", "stop", "start", "aclose")


@attrs.frozen(kw_only=True)
class ProviderInfo:
    """One registered provider, as ``runctl.providers()`` reports it.

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
    from .provider import API_VERSION

    version = getattr(factory, "api_version", API_VERSION)
    if not isinstance(version, int) or version > API_VERSION:
        return f"needs provider API version {version!r}; this runctl has {API_VERSION}"
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


def providers(*, check: bool = True) -> Sequence[ProviderInfo]:
    """Every registered provider, whether it is usable here, and why not.

    Args:
        check: import each provider to check its credentials (no network);
            ``False`` lists from metadata only.
    """
    return default_registry().info(check=check)
