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
            "LedgerError", "LifecycleError", "MalformedResponseError", "MissingCredentialsError", "Money",
            "NotFoundError", "Offer", "OfferList", "OfferQuery", "PluginError", "Price", "Provider",
            "ProviderBase", "ProviderConfig", "ProviderConnectionError", "ProviderError", "ProviderInfo",
            "ProviderTimeoutError", "QuotaExceededError", "RENDEZVOUS_VARIABLES", "RateLimitedError", "Resource",
            "ResourceEndedError", "ResourceList", "ResourceState", "RunctlError", "Secret", "ServerError", "Settings",
            "SignalInterrupt", "interrupt_on_signals",
            "TerminationUnverifiedError", "UnsupportedOperationError", "ValidationError",
            "WaitTimeoutError", "__version__", "clock", "estimate", "from_json", "load_settings",
            "list_providers", "normalize_gpu", "rendezvous_env", "to_json",
        ]
    )


def test_all_is_a_literal_and_every_name_is_lazily_importable():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(runctl.__file__).read_text())
    literal = next(
        node.value for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
    )
    # A literal list: type checkers read it; a computed one hides every name from mypy.
    assert isinstance(literal, ast.List)
    assert set(runctl._LAZY) == set(runctl.__all__) - {"__version__"}


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
    loaded = _modules_after("import runctl; runctl.list_providers(check=False)")
    assert not [m for m in loaded if m.startswith("runctl.providers.")]


def test_listing_providers_is_the_same_whatever_was_imported_before():
    # runctl.providers is the package of built-in providers, a plain module; the
    # listing has its own name, so import order cannot change what either means.
    import runctl.providers.local

    assert isinstance(runctl.providers, type(runctl))
    names = [info.name for info in runctl.list_providers(check=False)]
    assert "local" in names


def test_building_a_spec_does_not_load_the_network_stack():
    loaded = _modules_after("import runctl; runctl.LaunchSpec(command=['x'])")
    assert "httpx" not in loaded and "anyio" not in loaded


PLUGIN = """
from __future__ import annotations

from collections.abc import Mapping, Sequence

from runctl import (
    AsyncClient, Capabilities, LaunchSpec, Offer, OfferQuery, Provider, ProviderBase,
    ProviderConfig, Resource, ResourceState,
)


class MyCloudProvider(ProviderBase):
    name = "mycloud"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        return []

    async def launch(self, spec: LaunchSpec) -> Resource:
        return Resource(id="r1", provider=self.name, state=ResourceState.PENDING)

    async def get(self, resource_id: str) -> Resource:
        return Resource(id=resource_id, provider=self.name, state=ResourceState.RUNNING)

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        return []

    async def terminate(self, resource_id: str) -> Resource:
        return Resource(id=resource_id, provider=self.name, state=ResourceState.TERMINATED)


def build(config: ProviderConfig) -> AsyncClient:
    provider: Provider = MyCloudProvider(config)  # no cast: a ProviderBase subclass is a Provider
    return AsyncClient(providers={"mycloud": provider, "other": MyCloudProvider(config)})
"""


def test_a_plugin_using_only_top_level_imports_passes_mypy_strict(tmp_path):
    mypy = __import__("shutil").which("mypy", path=str(__import__("pathlib").Path(sys.executable).parent))
    if mypy is None:
        import pytest

        pytest.skip("mypy is not installed (it comes with the lint extra)")
    plugin = tmp_path / "mycloud_plugin.py"
    plugin.write_text(PLUGIN)
    out = subprocess.run(
        [mypy, "--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(plugin)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
