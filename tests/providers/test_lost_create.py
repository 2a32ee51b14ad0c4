"""Issue 9: a create carried out after the client's read timeout, then a lookup 500, then an
empty (lagging) list, then rate limiting, must never be closed as "nothing created".

Driven through the real providers (RunPod, Lambda) and ``launch_safely``, over a scripted
transport; the settle wait's clock is the lifecycle's seam, moved on by its sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runctl import lifecycle
from runctl.config import ProviderConfig
from runctl.errors import RunctlError
from runctl.http import RetryPolicy
from runctl.ledger import Ledger
from runctl.models import LaunchSpec
from runctl.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _virtual_time(fake_clock: FakeClock) -> FakeClock:
    """The settle period passes on the fake clock, at once."""
    return fake_clock


class Cloud:
    """The provider's side: the create is carried out although its answer never arrives."""

    def __init__(self, create: str, listing: str, created: Callable[[Any], Any],
                 empty: Any) -> None:
        self.create, self.listing = create, listing
        self.created, self.empty = created, empty
        self.made: list[Any] = []
        self.lists = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import json

        if request.method == "POST" and request.url.path == self.create:
            self.made.append(self.created(json.loads(request.content)))
            raise httpx.ReadTimeout("the answer never came", request=request)
        if request.method == "GET" and request.url.path == self.listing:
            self.lists += 1
            if self.lists == 1:
                return httpx.Response(200, json=self.empty)  # the provider's look before
            if self.lists == 2:
                return httpx.Response(500, json={"error": "internal"})
            if self.lists == 3:
                return httpx.Response(200, json=self.empty)  # the list lags behind
            return httpx.Response(429, json={"error": "slow down"})
        return httpx.Response(200, json={"data": []})


def make(cls: type, name: str, env: dict[str, str], cloud: Cloud, tmp_path: Path) -> Any:
    return cls(ProviderConfig(name=name, home=tmp_path, environ=env),
               transport=httpx.MockTransport(cloud), retry=RetryPolicy(attempts=3, base=0.0))


async def _launch_and_check(provider: Any, cloud: Cloud, spec: LaunchSpec) -> None:
    ledger = Ledger()
    with pytest.raises(RunctlError):
        await lifecycle.launch_safely(provider, spec, ledger, settle=3.0, poll_interval=1.0)
    await provider.aclose()
    assert len(cloud.made) == 1  # it exists at the provider, and bills
    record = ledger.get(spec.launch_id)
    assert record is not None
    assert record.status == "pending", record  # open, as unknown: reconcile resolves it
    assert "reconcile" in (record.note or "")


async def test_runpod_keeps_the_record_open(tmp_path: Path) -> None:
    from runctl.providers.runpod import RunPodProvider

    cloud = Cloud("/v2/pods", "/v2/pods",
                  lambda body: {"id": "pod1", "env": body["env"]}, {"pods": []})
    provider = make(RunPodProvider, "runpod", {"RUNPOD_API_KEY": "k-runpod-1234567"}, cloud,
                    tmp_path)
    spec = LaunchSpec(command=["true"], image="ubuntu", instance_type="SECURE:NVIDIA L4",
                      launch_id="lost0001")
    await _launch_and_check(provider, cloud, spec)


async def test_lambda_keeps_the_record_open(tmp_path: Path) -> None:
    from runctl.providers.lambda_cloud import LambdaCloudProvider

    cloud = Cloud("/api/v1/instance-operations/launch", "/api/v1/instances",
                  lambda body: {"id": "i1", "tags": body["tags"]}, {"data": []})
    provider = make(LambdaCloudProvider, "lambda", {"LAMBDA_API_KEY": "k-lambda-1234567"},
                    cloud, tmp_path)
    spec = LaunchSpec(command=["true"], instance_type="gpu_1x_a10", region="us-east-1",
                      launch_id="lost0002", options={"ssh_key_name": "mine"})
    await _launch_and_check(provider, cloud, spec)
