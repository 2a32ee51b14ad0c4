"""The RunPod provider passes runctl's conformance kit against the fake RunPod."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from runctl.cost import Money
from runctl.models import LaunchSpec, Offer
from runctl.providers.runpod import RunPodProvider
from runctl.testing import FakeClock, check_provider
from tests.support.conformance import HttpFaults, documented_enum

from .conftest import SPEC, FakeRunPod


class RunPodDriver(HttpFaults):
    """Moves pods of the fake RunPod: their status, their container's output."""

    documented_states = documented_enum(SPEC, "PodStatus")

    def __init__(self, fake: FakeRunPod) -> None:
        self.fake = fake
        self.server = fake.server

    async def set_raw_state(self, resource_id: str, raw: str) -> None:
        self.fake.pods[resource_id]["status"] = raw

    async def finish(self, resource_id: str, exit_code: int) -> None:
        # What runctl's wrapper prints when the command ends (the container stays up).
        launch_id = re.search(r"\[runctl:([A-Za-z0-9_-]+)\]", self.fake.pods[resource_id]["args"])
        assert launch_id is not None
        self.fake.logs.setdefault(resource_id, []).append(f"[runctl:{launch_id[1]}] exit {exit_code}")

    async def write_log(self, resource_id: str, lines: list[str]) -> None:
        self.fake.logs.setdefault(resource_id, []).extend(lines)

    async def hourly_price(self, offer: Offer) -> Money | None:
        # The catalog lists $2.99 per GPU-hour on Secure Cloud for the one GPU it has.
        return Money(Decimal("2.99") * offer.gpu_count) if offer.gpu_count else None


@pytest.mark.anyio
async def test_runpod_conforms(fake: FakeRunPod, fake_provider: RunPodProvider, fake_clock: FakeClock) -> None:
    fake.status_on_create = "RUNNING"  # the fake's pods start at once
    spec = LaunchSpec(
        command=["python", "train.py"], provider="runpod", image="pytorch/pytorch:latest",
        gpu="H100", gpu_count=1, launch_id="conform01",
    )
    report = await check_provider(fake_provider, spec=spec, driver=RunPodDriver(fake))
    assert report.ok, str(report)
    creates = [r for r in fake.server.requests if r.method == "POST" and r.path == "/v2/pods"]
    names = [r.json()["name"] for r in creates]
    assert len(names) == len(set(names)), f"a launch id made two pods: {names}"
    assert fake.pods == {}, "the kit left pods behind"
    assert fake.check_requests_against_spec() > 0
