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

# Type checkers see every public name imported here (exported through __all__); at run time
# each is imported from its module on first access (PEP 562), below.
if TYPE_CHECKING:
    from typing import Any

    from . import clock
    from ._convert import (
        from_json,
        to_json,
    )
    from ._signals import (
        SignalInterrupt,
        interrupt_on_signals,
    )
    from .client import (
        AsyncClient,
        Client,
        Launch,
        ResourceList,
    )
    from .config import (
        ProviderConfig,
        Secret,
        Settings,
        load_settings,
    )
    from .cost import (
        Money,
        Price,
        estimate,
    )
    from .errors import (
        AuthenticationError,
        BudgetExceededError,
        CapacityError,
        ConfigurationError,
        ConflictError,
        CurrencyMismatchError,
        InvalidTransitionError,
        LedgerError,
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
    from .provider import (
        API_VERSION,
        Availability,
        Provider,
        ProviderBase,
    )
    from .registry import (
        ProviderInfo,
        list_providers,
    )
    from .rendezvous import (
        RENDEZVOUS_VARIABLES,
        rendezvous_env,
    )

#: The public surface, written out so type checkers and readers see it (a test pins it).
__all__ = [
    "API_VERSION",
    "AsyncClient",
    "AuthenticationError",
    "Availability",
    "BudgetExceededError",
    "Capabilities",
    "CapacityError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "CurrencyMismatchError",
    "Gpu",
    "InvalidTransitionError",
    "Launch",
    "LaunchSpec",
    "LedgerError",
    "LifecycleError",
    "MalformedResponseError",
    "MissingCredentialsError",
    "Money",
    "NotFoundError",
    "Offer",
    "OfferList",
    "OfferQuery",
    "PluginError",
    "Price",
    "Provider",
    "ProviderBase",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderInfo",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RENDEZVOUS_VARIABLES",
    "RateLimitedError",
    "Resource",
    "ResourceEndedError",
    "ResourceList",
    "ResourceState",
    "RunctlError",
    "Secret",
    "ServerError",
    "Settings",
    "SignalInterrupt",
    "TerminationUnverifiedError",
    "UnsupportedOperationError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
    "clock",
    "estimate",
    "from_json",
    "interrupt_on_signals",
    "list_providers",
    "load_settings",
    "normalize_gpu",
    "rendezvous_env",
    "to_json",
]

#: The module of each public name but ``__version__``; imported on first access.
_LAZY: dict[str, str] = {
    "from_json": "_convert",
    "to_json": "_convert",
    "AsyncClient": "client",
    "Client": "client",
    "Launch": "client",
    "ResourceList": "client",
    "ProviderConfig": "config",
    "Secret": "config",
    "Settings": "config",
    "load_settings": "config",
    "Money": "cost",
    "Price": "cost",
    "estimate": "cost",
    "AuthenticationError": "errors",
    "BudgetExceededError": "errors",
    "CapacityError": "errors",
    "ConfigurationError": "errors",
    "ConflictError": "errors",
    "CurrencyMismatchError": "errors",
    "InvalidTransitionError": "errors",
    "LedgerError": "errors",
    "LifecycleError": "errors",
    "MalformedResponseError": "errors",
    "MissingCredentialsError": "errors",
    "NotFoundError": "errors",
    "PluginError": "errors",
    "ProviderConnectionError": "errors",
    "ProviderError": "errors",
    "ProviderTimeoutError": "errors",
    "QuotaExceededError": "errors",
    "RateLimitedError": "errors",
    "ResourceEndedError": "errors",
    "RunctlError": "errors",
    "ServerError": "errors",
    "TerminationUnverifiedError": "errors",
    "UnsupportedOperationError": "errors",
    "ValidationError": "errors",
    "WaitTimeoutError": "errors",
    "normalize_gpu": "gpus",
    "Capabilities": "models",
    "Gpu": "models",
    "LaunchSpec": "models",
    "Offer": "models",
    "OfferQuery": "models",
    "Resource": "models",
    "ResourceState": "models",
    "OfferList": "offers",
    "API_VERSION": "provider",
    "Availability": "provider",
    "Provider": "provider",
    "ProviderBase": "provider",
    "ProviderInfo": "registry",
    "list_providers": "registry",
    "RENDEZVOUS_VARIABLES": "rendezvous",
    "rendezvous_env": "rendezvous",
    "SignalInterrupt": "_signals",
    "interrupt_on_signals": "_signals",
    # The time seam (a module): what runctl sleeps, reads the time and sets deadlines with.
    "clock": "clock",
}


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
