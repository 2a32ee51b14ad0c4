"""One failing provider never hides the others: list, ls, reconcile, cleanup and doctor go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runctl
from runctl import Resource, ResourceState, RunctlError
from runctl.errors import ProviderConnectionError
from runctl.models import TAG_LAUNCH_ID, TAG_MANAGED_BY, Capabilities

pytestmark = pytest.mark.anyio


class Listed:
    """A provider (a plugin, as far as the client knows) whose list() is scripted."""

    api_version = 2

    def __init__(self, name: str, *, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.resource = Resource(
            id=f"{name}-1", provider=name, state=ResourceState.RUNNING,
            tags={TAG_MANAGED_BY: "runctl", TAG_LAUNCH_ID: f"l-{name}"},
        )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def list(self, *, tags=None):
        if self.error is not None:
            raise self.error
        return [self.resource]

    async def get(self, resource_id):
        return self.resource

    async def aclose(self) -> None:
        pass


def _three():
    return {
        "good": Listed("good"),
        "buggy": Listed("buggy", error=RuntimeError("plugin bug")),
        "down": Listed("down", error=ProviderConnectionError("no route", provider="down")),
    }


async def test_list_returns_what_the_working_providers_listed_and_says_what_failed():
    async with runctl.AsyncClient(providers=_three()) as rc:
        found = await rc.list(providers=["good", "buggy", "down"])
    assert [r.id for r in found] == ["good-1"]
    assert set(found.errors) == {"buggy", "down"}
    # A plugin's own exception arrives as a runctl error that names it, cause kept.
    assert isinstance(found.errors["buggy"], RunctlError)
    assert "RuntimeError: plugin bug" in str(found.errors["buggy"])
    assert isinstance(found.errors["buggy"].__cause__, RuntimeError)
    assert isinstance(found.errors["down"], ProviderConnectionError)
    assert "errors=['buggy', 'down']" in repr(found)


async def test_a_named_provider_that_is_not_installed_is_reported_not_ignored():
    async with runctl.AsyncClient(providers={"good": Listed("good")}) as rc:
        found = await rc.list(providers=["good", "nosuch"])
    assert [r.id for r in found] == ["good-1"]
    assert "not installed" in str(found.errors["nosuch"])


async def test_reconcile_and_cleanup_report_a_failing_provider_and_go_on():
    async with runctl.AsyncClient(providers=_three()) as rc:
        report = await rc.reconcile(providers=["good", "buggy", "down"])
        cleanup = await rc.cleanup(providers=["good", "buggy", "down"])
    assert set(report.errors) == {"buggy", "down"}
    assert "RuntimeError: plugin bug" in report.errors["buggy"]
    # The good provider's resource was still looked at: unknown to the ledger, adopted.
    assert [r.resource_id for r in report.unknown] == ["good-1"]
    assert set(cleanup.errors) == {"buggy", "down"}
    assert not cleanup.ok


BROKEN_CONSTRUCTOR = '''
from runctl.provider import ProviderBase

class BrokenProvider(ProviderBase):
    name = "brokenctor"
    capabilities = None

    def __init__(self, config):
        raise RuntimeError("cannot start: libfoo missing")

    async def offers(self, query): return []
    async def launch(self, spec): ...
    async def get(self, resource_id): ...
    async def list(self, *, tags=None): return []
    async def terminate(self, resource_id): ...
'''


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    """A real installed plugin whose constructor raises, on a path a subprocess can use."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "plug_brokenctor.py").write_text(textwrap.dedent(BROKEN_CONSTRUCTOR))
    info = site / "brokenctor_runctl-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenctor-runctl\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[runctl.providers]\nbrokenctor = plug_brokenctor:BrokenProvider\n"
    )
    return site


def _runctl(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "runctl", *args], capture_output=True, text=True, env=env,
        timeout=120,
    )


def test_ls_with_a_provider_whose_constructor_raises_lists_the_rest_and_exits_1(broken_site):
    launched = _runctl(broken_site, "launch", "--provider", "local", "--", "sleep", "30")
    assert launched.returncode == 0, launched.stderr
    rid = launched.stdout.strip()
    try:
        out = _runctl(broken_site, "ls", "--json")
        assert [r["id"] for r in json.loads(out.stdout)] == [rid]
        assert out.returncode == 1
        assert "brokenctor" in out.stderr and "libfoo missing" in out.stderr
        for command in (("reconcile",), ("cleanup", "--dry-run")):
            out = _runctl(broken_site, *command)
            assert "brokenctor" in out.stdout + out.stderr, command
            assert "Traceback" not in out.stderr, out.stderr
    finally:
        _runctl(broken_site, "terminate", rid)
