"""The RunPod provider passes runctl's conformance kit against the fake RunPod."""

from __future__ import annotations

import pytest

from runctl.models import LaunchSpec
from runctl.providers.runpod import RunPodProvider
from runctl.testing import check_provider

from .conftest import FakeRunPod


@pytest.mark.anyio
async def test_runpod_conforms(fake: FakeRunPod, fake_provider: RunPodProvider) -> None:
    spec = LaunchSpec(
        command=["python", "train.py"], provider="runpod", image="pytorch/pytorch:latest",
        gpu="H100", gpu_count=1, launch_id="conform01",
    )
    report = await check_provider(fake_provider, spec=spec, settle_timeout=5, poll=0.05)
    assert report.ok, str(report)
    assert sum(1 for r in fake.server.requests if r.method == "POST" and r.path == "/v2/pods") == 1
    assert fake.check_requests_against_spec() > 0
