"""The GCP provider passes runctl's conformance kit, on the real SDKs against the fake."""

from __future__ import annotations

import pytest

from runctl.models import LaunchSpec
from runctl.providers.gcp import GcpProvider
from runctl.testing import check_provider

from .fake_gcp import FakeGcp


@pytest.mark.anyio
@pytest.mark.parametrize("accelerator", [{"gpu": "L4"}, {"instance_type": "v5litepod-8"}])
async def test_gcp_conforms(fake: FakeGcp, provider: GcpProvider, accelerator: dict[str, str]) -> None:
    spec = LaunchSpec(command=["python", "train.py"], provider="gcp", launch_id="conform01",
                      **accelerator)
    report = await check_provider(provider, spec=spec, settle_timeout=10, poll=0.05)
    assert report.ok, str(report)
    creates = [r for r in fake.server.requests if r.method == "POST" and r.path.endswith(("/instances", "/nodes"))]
    assert len(creates) == 1
