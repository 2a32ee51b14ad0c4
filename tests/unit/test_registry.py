"""Plugin discovery with real installed distributions (.dist-info on sys.path)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

import runctl
from runctl.errors import PluginError
from runctl.registry import Registry

GOOD_PLUGIN = '''
from runctl.models import Capabilities, Resource, ResourceState
from runctl.provider import Availability, ProviderBase

class AcmeProvider(ProviderBase):
    name = "{name}"

    @classmethod
    def check(cls, config):
        key = config.secret("api_key", env=("ACME_API_KEY",))
        if key is None:
            return Availability(usable=False, reason="set ACME_API_KEY")
        return Availability(usable=True, reason=f"credentials from {{key.source}}")

    @property
    def capabilities(self):
        return Capabilities()

    async def offers(self, query):
        return []

    async def launch(self, spec):
        return Resource(id="a-1", provider=self.name, state=ResourceState.PENDING)

    async def get(self, resource_id):
        return Resource(id=resource_id, provider=self.name, state=ResourceState.RUNNING)

    async def list(self, *, tags=None):
        return []

    async def terminate(self, resource_id):
        return Resource(id=resource_id, provider=self.name, state=ResourceState.TERMINATED)
'''

SYNC_PLUGIN = '''
class SyncProvider:
    name = "syncy"
    def offers(self, query): return []
    def launch(self, spec): ...
    def get(self, resource_id): ...
    def list(self, *, tags=None): ...
    def terminate(self, resource_id): ...
    def stop(self, resource_id): ...
    def start(self, resource_id): ...
    def logs(self, resource_id, *, follow=False): ...
    def aclose(self): ...
'''


def install(site: Path, dist: str, module: str, source: str, entry_points: dict[str, str]) -> None:
    """Write a real (minimal) installed distribution into ``site``."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{n} = {target}" for n, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[runctl.providers]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    importlib.invalidate_caches()
    for name in [m for m in sys.modules if m.startswith("plug_")]:
        del sys.modules[name]


def fresh() -> Registry:
    importlib.invalidate_caches()
    return Registry()


def test_the_built_in_local_provider_is_registered_like_any_plugin():
    reg = fresh()
    assert "local" in reg.names()
    info = {i.name: i for i in reg.info(check=False)}["local"]
    assert info.target == "runctl.providers.local:LocalProvider"
    assert info.distribution and info.distribution.startswith("runctl ")


def test_a_plugin_is_listed_from_metadata_without_importing_it(site):
    install(site, "acme-runctl", "plug_acme", GOOD_PLUGIN.format(name="acme"),
            {"acme": "plug_acme:AcmeProvider"})
    reg = fresh()
    infos = {i.name: i for i in reg.info(check=False)}
    assert infos["acme"].distribution == "acme-runctl 1.0"
    assert infos["acme"].loaded is False
    assert "plug_acme" not in sys.modules


def test_a_plugin_reports_whether_it_is_usable(site, monkeypatch):
    install(site, "acme-runctl", "plug_acme", GOOD_PLUGIN.format(name="acme"),
            {"acme": "plug_acme:AcmeProvider"})
    infos = {i.name: i for i in fresh().info(runctl.load_settings())}
    assert infos["acme"].usable is False and infos["acme"].reason == "set ACME_API_KEY"
    monkeypatch.setenv("ACME_API_KEY", "k-123456789")
    infos = {i.name: i for i in fresh().info(runctl.load_settings())}
    assert infos["acme"].usable is True
    assert infos["acme"].reason == "credentials from env ACME_API_KEY"
    assert "k-123456789" not in repr(infos)


def test_two_distributions_claiming_one_name_is_an_error_naming_both(site):
    install(site, "acme-runctl", "plug_acme", GOOD_PLUGIN.format(name="acme"),
            {"acme": "plug_acme:AcmeProvider"})
    install(site, "evil-runctl", "plug_evil", GOOD_PLUGIN.format(name="acme"),
            {"acme": "plug_evil:AcmeProvider"})
    reg = fresh()
    with pytest.raises(PluginError) as info:
        reg.load("acme")
    assert "acme-runctl 1.0" in str(info.value) and "evil-runctl 1.0" in str(info.value)
    listed = {i.name: i for i in reg.info(check=False)}
    assert listed["acme"].error and "evil-runctl" in listed["acme"].error
    # and the others still work
    assert reg.load("local").name == "local"


def test_a_plugin_that_fails_to_import_is_reported_and_breaks_nothing(site):
    install(site, "broken-runctl", "plug_broken", "raise ImportError('needs libfoo')",
            {"broken": "plug_broken:Nope"})
    reg = fresh()
    infos = {i.name: i for i in reg.info(runctl.load_settings())}
    assert "needs libfoo" in (infos["broken"].error or "")
    assert infos["broken"].ok is False
    assert infos["local"].ok and infos["local"].usable
    with pytest.raises(PluginError, match="failed to import"):
        reg.load("broken")


def test_a_plugin_that_does_not_satisfy_the_protocol_is_reported(site):
    install(site, "syncy-runctl", "plug_syncy", SYNC_PLUGIN, {"syncy": "plug_syncy:SyncProvider"})
    infos = {i.name: i for i in fresh().info(runctl.load_settings())}
    assert "must be async" in (infos["syncy"].error or "")


def test_a_plugin_whose_name_disagrees_with_its_entry_point_is_refused(site):
    install(site, "acme-runctl", "plug_acme", GOOD_PLUGIN.format(name="other"),
            {"acme": "plug_acme:AcmeProvider"})
    with pytest.raises(PluginError, match="declares name 'other'"):
        fresh().load("acme")


def test_a_plugin_provider_is_used_through_the_client(site):
    install(site, "acme-runctl", "plug_acme", GOOD_PLUGIN.format(name="acme"),
            {"acme": "plug_acme:AcmeProvider"})
    with runctl.Client(registry=fresh()) as rc:
        res = rc.get("a-9", provider="acme")
    assert res.provider == "acme" and res.state is runctl.ResourceState.RUNNING


def test_unknown_provider_lists_the_installed_ones():
    with pytest.raises(PluginError, match="installed: .*local"):
        fresh().load("nosuch")


def test_a_plugin_claiming_a_built_in_name_never_disables_the_built_in(site):
    install(site, "evil-runctl", "plug_evil", GOOD_PLUGIN.format(name="local"),
            {"local": "plug_evil:AcmeProvider"})
    reg = fresh()
    # The built-in is still the one used ...
    assert reg.load("local").__module__ == "runctl.providers.local"
    listed = reg.info(runctl.load_settings())
    built_in = [i for i in listed if i.name == "local" and i.target.startswith("runctl.")]
    assert built_in and built_in[0].ok
    # ... and the plugin that tried to take its name is reported, not silently dropped.
    (shadow,) = [i for i in listed if i.name == "local" and i.target.startswith("plug_evil")]
    assert shadow.ok is False
    assert "evil-runctl 1.0" in (shadow.error or "") and "built-in" in (shadow.error or "")


@pytest.mark.parametrize("bad_name", ["MyCloud", "my cloud", "9cloud"])
def test_an_entry_point_name_that_is_not_a_slug_is_reported_as_broken(site, bad_name):
    install(site, "odd-runctl", "plug_odd", GOOD_PLUGIN.format(name=bad_name),
            {bad_name: "plug_odd:AcmeProvider"})
    reg = fresh()
    info = {i.name: i for i in reg.info(runctl.load_settings())}[bad_name]
    assert info.ok is False and "slug" in (info.error or "")
    assert info.usable is None
    with pytest.raises(PluginError, match="slug"):
        reg.load(bad_name)


NO_VERSION_PLUGIN = GOOD_PLUGIN.replace(
    "from runctl.provider import Availability, ProviderBase",
    "from runctl.provider import Availability, ProviderBase\nVERSION = {version}",
).replace('    name = "{name}"', '    name = "{name}"\n    api_version = VERSION')


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("None", "declares no api_version"),
        ("0", "start at 1"),
        ("'2'", "start at 1"),
        ("1", "written for provider API version 1"),
        ("99", "needs provider API version 99"),
    ],
)
def test_a_plugin_for_another_api_version_is_refused_saying_which(site, version, message):
    source = NO_VERSION_PLUGIN.replace("{version}", version)
    install(site, "old-runctl", "plug_old", source.format(name="old"),
            {"old": "plug_old:AcmeProvider"})
    with pytest.raises(PluginError, match=message):
        fresh().load("old")


def test_a_plugin_for_this_api_version_loads(site):
    source = NO_VERSION_PLUGIN.replace("{version}", str(runctl.API_VERSION))
    install(site, "new-runctl", "plug_new", source.format(name="new"),
            {"new": "plug_new:AcmeProvider"})
    assert fresh().load("new").api_version == runctl.API_VERSION
