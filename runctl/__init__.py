"""runctl: launch, watch and tear down ML training compute on any provider, and know its cost.

::

    import runctl

    spec = runctl.LaunchSpec(command=["python", "train.py"], provider="local")
    with runctl.Client() as rc:
        with rc.launch(spec) as res:
            done = rc.wait(res, until="finished")
        print(done.state, rc.cost(done))

Everything public is importable from here. ``import runctl`` itself loads
nothing but this file: each name is imported from its module on first use, so
scripts that only need ``runctl.LaunchSpec`` never pay for httpx or anyio.
"""

from __future__ import annotations

from ._version import __version__

# Not from typing: importing typing alone costs ~8 ms here, and mypy treats any
# constant named TYPE_CHECKING as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from . import clock
    from ._convert import from_json, to_json
    from .client import AsyncClient, Client, Launch
    from .config import ProviderConfig, Secret, Settings, load_settings
    from .cost import Money, Price, estimate
    from .errors import (
        AuthenticationError,
        BudgetExceededError,
        CapacityError,
        ConfigurationError,
        ConflictError,
        CurrencyMismatchError,
        InvalidTransitionError,
        LifecycleError,
        MalformedResponseError,
        MissingCredentialsError,
        NotFoundError,
        PluginError,
        ProviderConnectionError,
        ProviderError,
        ProviderTimeoutError,
        QuotaExceededError,
        RateLimitedError,
        ResourceEndedError,
        RunctlError,
        ServerError,
        TerminationUnverifiedError,
        UnsupportedOperationError,
        ValidationError,
        WaitTimeoutError,
    )
    from .gpus import normalize_gpu
    from .models import (
        Capabilities,
        Gpu,
        LaunchSpec,
        Offer,
        OfferQuery,
        Resource,
        ResourceState,
    )
    from .offers import OfferList
    from .provider import API_VERSION, Availability, Provider, ProviderBase
    from .registry import ProviderInfo, providers

_ERRORS = (
    "AuthenticationError",
    "BudgetExceededError",
    "CapacityError",
    "ConfigurationError",
    "ConflictError",
    "CurrencyMismatchError",
    "InvalidTransitionError",
    "LifecycleError",
    "MalformedResponseError",
    "MissingCredentialsError",
    "NotFoundError",
    "PluginError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitedError",
    "ResourceEndedError",
    "RunctlError",
    "ServerError",
    "TerminationUnverifiedError",
    "UnsupportedOperationError",
    "ValidationError",
    "WaitTimeoutError",
)

#: Where each public name lives; imported on first access (PEP 562).
_LAZY: dict[str, str] = {
    "AsyncClient": "client",
    "Client": "client",
    "Launch": "client",
    "Capabilities": "models",
    "Gpu": "models",
    "LaunchSpec": "models",
    "Offer": "models",
    "OfferQuery": "models",
    "Resource": "models",
    "ResourceState": "models",
    "Money": "cost",
    "Price": "cost",
    "estimate": "cost",
    "OfferList": "offers",
    "normalize_gpu": "gpus",
    "API_VERSION": "provider",
    "Availability": "provider",
    "Provider": "provider",
    "ProviderBase": "provider",
    "ProviderInfo": "registry",
    # The callable package runctl/providers/ (see its docstring): one object whatever
    # the import order, since Python binds runctl.providers to the package anyway.
    "providers": "providers",
    "ProviderConfig": "config",
    "Secret": "config",
    "Settings": "config",
    "load_settings": "config",
    # The time seam (a module): what runctl sleeps, reads the time and sets deadlines with.
    "clock": "clock",
    "from_json": "_convert",
    "to_json": "_convert",
    **dict.fromkeys(_ERRORS, "errors"),
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runctl' has no attribute {name!r}")
    from importlib import import_module

    imported = import_module(f".{module}", __name__)
    value = imported if module == name else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
