"""The client across processes: ids resolve through the ledger, and costs use the launch price."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

import runctl
from runctl import LaunchSpec, ResourceState, clock
from tests.reliability.fake_runpod import GPU_ID, FakeRunPod

pytestmark = pytest.mark.anyio


@pytest.fixture
def runpod_server(monkeypatch):
    server = FakeRunPod(fault_rate=0.0)
    server.start()
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_test_key_0123456789")
    monkeypatch.setenv("RUNCTL_RUNPOD_BASE_URL", server.url)
    yield server
    server.stop()


def spec() -> LaunchSpec:
    return LaunchSpec(
        command=["python", "train.py"], provider="runpod", image="pytorch/pytorch:latest",
        instance_type=f"SECURE:{GPU_ID}", gpu_count=1, disk_gb=20,
    )


async def test_another_process_finds_a_resource_by_id_alone_and_prices_it_at_launch(runpod_server):
    async with runctl.AsyncClient() as first:
        launched = await first.launch(spec())
    assert launched.provider == "runpod"
    launch_price = launched.price
    assert launch_price is not None
    assert launch_price.per_hour.amount == Decimal("2.69")

    # Later the provider's price changes; the resource was launched at the old one.
    with runpod_server._state:
        for pod in runpod_server.pods.values():
            pod["cost"] = 9.99

    async with runctl.AsyncClient() as second:  # a new client: nothing in memory
        found = await second.get(launched.id)  # no provider= given
        assert found.provider == "runpod"
        assert found.state is ResourceState.RUNNING
        assert found.price == launch_price
        so_far = await second.cost(found)
        after = clock.now()
        # Priced at the launch price for the time run so far, which ends somewhere between
        # the observation and now (a billing increment may tick over in between).
        started = found.started_at or found.observed_at
        low = launch_price.compute_cost(max(found.observed_at - started, timedelta(0)))
        high = launch_price.compute_cost(max(after - started, timedelta(0)))
        assert so_far is not None and low <= so_far <= high
        ended = await second.terminate(launched.id)
        assert ended.is_terminal or ended.state is ResourceState.TERMINATING
        record = second.ledger.find_resource("runpod", launched.id)
        assert record is not None
        assert record.is_closed


async def test_an_id_unknown_everywhere_goes_to_the_default_provider():
    async with runctl.AsyncClient() as rc:
        with pytest.raises(runctl.NotFoundError, match="not a local resource id"):
            await rc.get("pod-that-nobody-launched")
