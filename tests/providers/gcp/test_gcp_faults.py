"""Faults as Google reports them: stockouts, quota, late operation failures, lost answers, 403, 429."""

from __future__ import annotations

import pytest

from runctl.errors import (
    AuthenticationError,
    CapacityError,
    QuotaExceededError,
    RateLimitedError,
)
from runctl.models import LaunchSpec
from runctl.providers.gcp import GcpProvider, request_id
from tests.support.fake_http import Fault

from .fake_gcp import COMPUTE, TPU, FakeGcp

INSERT = COMPUTE + "/zones/{zone}/instances"


@pytest.mark.anyio
async def test_a_stockout_moves_the_launch_to_the_next_zone(fake: FakeGcp, provider: GcpProvider) -> None:
    fake.stockout = {"us-central1-a"}
    r = await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="stock1"))
    assert r.id == "us-central1-b/runctl-stock1"
    zones = [q.path.split("/")[6] for q in fake.inserts()]
    assert zones == ["us-central1-a", "us-central1-b"]
    # Each zone's insert has its own requestId (a retry in the same zone reuses it).
    ids = [q.query["requestId"][0] for q in fake.inserts()]
    assert ids == [request_id("stock1", "us-central1-a"), request_id("stock1", "us-central1-b")]


@pytest.mark.anyio
async def test_a_stockout_in_the_zone_asked_for_is_a_capacity_error(fake: FakeGcp, provider: GcpProvider) -> None:
    fake.stockout = {"us-central1-a"}
    with pytest.raises(CapacityError, match="ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough"):
        await provider.launch(LaunchSpec(command=["true"], gpu="L4", region="us-central1-a"))
    assert len(fake.inserts()) == 1 and fake.instances == {}


@pytest.mark.anyio
async def test_quota_exceeded_is_a_quota_error(fake: FakeGcp, provider: GcpProvider) -> None:
    fake.no_quota = {"us-central1-a"}
    with pytest.raises(QuotaExceededError, match="Quota"):
        await provider.launch(LaunchSpec(command=["true"], gpu="H100", region="us-central1-a"))


@pytest.mark.anyio
async def test_an_operation_failing_after_acceptance_raises_its_message(
    fake: FakeGcp, provider: GcpProvider
) -> None:
    fake.late_failure = ("RESOURCE_OPERATION_RATE_EXCEEDED_X", "The boot disk image is broken")
    with pytest.raises(Exception, match="The boot disk image is broken") as caught:
        await provider.launch(LaunchSpec(command=["true"], gpu="L4", region="us-central1-a",
                                         env={"HF_TOKEN": "hf_not_a_real_token"}))
    assert "insert" in str(caught.value)
    assert "hf_not_a_real_token" not in str(caught.value) + repr(caught.value)


@pytest.mark.anyio
async def test_a_lost_insert_answer_creates_one_vm(fake: FakeGcp, provider: GcpProvider) -> None:
    fake.server.fail("POST", INSERT, Fault.lose_response())
    r = await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="lost1"))
    assert r.launch_id == "lost1"
    assert len(fake.instances) == 1
    ids = [q.query["requestId"][0] for q in fake.inserts()]
    assert len(ids) == 2 and len(set(ids)) == 1  # the retry carried the same requestId


@pytest.mark.anyio
async def test_403_is_an_authentication_error(fake: FakeGcp, provider: GcpProvider) -> None:
    fake.server.fail("GET", COMPUTE + "/aggregated/instances", Fault.http(403, {"error": {
        "code": 403, "message": "Required 'compute.instances.list' permission",
        "errors": [{"reason": "forbidden", "message": "Required permission"}]}}))
    with pytest.raises(AuthenticationError, match="permission"):
        await provider.list()


@pytest.mark.anyio
async def test_429_is_rate_limiting(fake: FakeGcp, provider: GcpProvider) -> None:
    fake.server.fail("GET", COMPUTE + "/aggregated/instances", Fault.http(429, {"error": {
        "code": 429, "message": "Rate Limit Exceeded",
        "errors": [{"reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}]}}))
    with pytest.raises(RateLimitedError):
        await provider.list()


@pytest.mark.anyio
async def test_a_tpu_stockout_is_a_capacity_error_with_the_operation_message(
    fake: FakeGcp, provider: GcpProvider
) -> None:
    fake.stockout = {"us-central1-a"}
    with pytest.raises(CapacityError, match="no more capacity"):
        await provider.launch(LaunchSpec(command=["true"], instance_type="v5litepod-8",
                                         region="us-central1-a"))
    assert fake.nodes == {}
    assert any(q.path == TPU + "/us-central1-a/nodes" for q in fake.server.requests)
