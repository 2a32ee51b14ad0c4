"""The AWS provider passes runctl's conformance kit against moto."""

from __future__ import annotations

import pytest

from runctl.models import LaunchSpec
from runctl.testing import check_provider


@pytest.mark.anyio
async def test_aws_conforms(provider, moto):
    spec = LaunchSpec(command=["true"], provider="aws", instance_type="g6.xlarge",
                      launch_id="conform01")
    report = await check_provider(provider, spec=spec, settle_timeout=5, poll=0.05)
    assert report.ok, str(report)
    # The kit launches a few resources of its own; no launch id was ever created twice.
    tokens = [request["ClientToken"] for request in moto.run_requests]
    assert len(tokens) == len(moto.run_calls)
    assert len(tokens) == len(set(tokens))
