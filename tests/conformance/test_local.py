"""The built-in local provider passes the conformance kit plugin authors use."""

from __future__ import annotations

import sys

import pytest

import runctl
from runctl.providers.local import LocalProvider
from runctl.testing import check_provider

pytestmark = pytest.mark.anyio


async def test_local_provider_conforms():
    provider = LocalProvider(runctl.load_settings().provider_config("local"))
    spec = runctl.LaunchSpec(command=[sys.executable, "-c", "import time; time.sleep(30)"], provider="local")
    report = await check_provider(provider, spec=spec, poll=0.05)
    assert report.ok, str(report)
    assert len(report.results) == 8


async def test_the_kit_catches_a_provider_that_launches_twice():
    class Duplicating(LocalProvider):
        async def launch(self, spec):
            import attrs

            # Ignores the launch id: every call makes a new resource.
            return await super().launch(attrs.evolve(spec, launch_id=runctl.LaunchSpec(command=["x"]).launch_id))

    provider = Duplicating(runctl.load_settings().provider_config("local"))
    spec = runctl.LaunchSpec(command=[sys.executable, "-c", "import time; time.sleep(30)"])
    report = await check_provider(provider, spec=spec, poll=0.05)
    assert not report.ok
    assert [f.name for f in report.failures] == ["launch is idempotent on launch_id"]
    assert "created a second resource" in report.failures[0].detail
    # and the kit cleaned up both resources it launched
    assert all(r.is_terminal for r in await provider.list())
