"""The public surface: what `import runctl` exports, and what it costs."""

from __future__ import annotations

import json
import subprocess
import sys

import runctl

HEAVY = ("httpx", "anyio", "cattrs", "attrs", "boto3", "botocore", "google", "azure", "kubernetes", "modal")


def test_all_is_pinned():
    assert runctl.__all__ == sorted(
        [
            "API_VERSION", "AsyncClient", "AuthenticationError", "Availability", "BudgetExceededError",
            "CapacityError", "Capabilities", "Client", "ConfigurationError", "ConflictError",
            "CurrencyMismatchError", "Gpu", "InvalidTransitionError", "Launch", "LaunchSpec",
            "LifecycleError", "MalformedResponseError", "MissingCredentialsError", "Money",
            "NotFoundError", "Offer", "OfferList", "OfferQuery", "PluginError", "Price", "Provider",
            "ProviderBase", "ProviderConfig", "ProviderConnectionError", "ProviderError", "ProviderInfo",
            "ProviderTimeoutError", "QuotaExceededError", "RateLimitedError", "Resource",
            "ResourceEndedError", "ResourceState", "RunctlError", "Secret", "ServerError", "Settings",
            "TerminationUnverifiedError", "UnsupportedOperationError", "ValidationError",
            "WaitTimeoutError", "__version__", "clock", "estimate", "from_json", "load_settings",
            "normalize_gpu", "providers", "to_json",
        ]
    )


def test_every_exported_name_resolves():
    for name in runctl.__all__:
        assert getattr(runctl, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    try:
        runctl.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def _modules_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_runctl_loads_no_provider_no_sdk_and_no_heavy_dependency():
    loaded = _modules_after("import runctl")
    assert not [m for m in loaded if m.startswith("runctl.providers")]
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]


def test_listing_providers_from_metadata_imports_no_provider_module():
    loaded = _modules_after("import runctl; runctl.providers(check=False)")
    assert not [m for m in loaded if m.startswith("runctl.providers.")]


def test_runctl_providers_stays_callable_after_a_provider_module_is_imported():
    # Python binds runctl.providers to the runctl/providers package on import of any
    # provider module; the public runctl.providers() must survive that.
    import runctl.providers.local

    names = [info.name for info in runctl.providers(check=False)]
    assert "local" in names


def test_building_a_spec_does_not_load_the_network_stack():
    loaded = _modules_after("import runctl; runctl.LaunchSpec(command=['x'])")
    assert "httpx" not in loaded and "anyio" not in loaded
