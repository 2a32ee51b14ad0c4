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
    if "instance_type" in accelerator:
        # Capabilities are the provider's, and GCP's say logs (GPU VMs read them from the
        # serial port); a TPU VM has no such API, so there logs raise: a documented gap.
        failed = {f.name: f.detail for f in report.failures}
        assert list(failed) == ["logs work without trailing newlines, or raise"], str(report)
        assert "TPU VMs have no serial-port API" in failed[next(iter(failed))]
    else:
        assert report.ok, str(report)
    creates = [r for r in fake.server.requests if r.method == "POST" and r.path.endswith(("/instances", "/nodes"))]
    # The kit launches a few resources; none was created twice (a retry found it).
    ids = [r.query.get("requestId", r.query.get("nodeId", [""]))[0] for r in creates]
    assert ids and len(ids) == len(set(ids))
