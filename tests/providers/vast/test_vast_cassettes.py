"""Vast's whole lifecycle replayed from a cassette; every request checked against Vast's spec.

The cassette is hand-written from the spec's documented exchanges (see its header).
``RUNCTL_RECORD=1`` with ``VAST_API_KEY`` set re-records it from a real account
through the live test (it rents the cheapest matching offer for a minute or two).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.models import TAG_LAUNCH_ID, LaunchSpec, OfferQuery, ResourceState
from runctl.providers.vast import VastProvider
from tests.support.cassettes import cassette_vcr, record_to, recording
from tests.support.openapi import SPECS, RecordingTransport, assert_requests_match

CASSETTES = Path(__file__).parent / "cassettes"
SPEC = SPECS / "vastai-openapi.yaml"
S = ResourceState



async def _lifecycle(provider: VastProvider, launch_id: str) -> None:
    offers = await provider.offers(OfferQuery(gpu="RTX 4090", spot=False, limit=1))
    assert offers, "no offer"
    offer = offers[0]
    assert offer.price.source == "live" and offer.price.observed_at is not None
    assert offer.price.storage_per_gb_month is not None
    spec = LaunchSpec(command=["python", "train.py"], image="pytorch/pytorch:latest",
                      env={"WANDB_MODE": "offline"}, offer=offer, launch_id=launch_id, name="train")
    launched = await provider.launch(spec)
    assert launched.launch_id == launch_id and launched.price == offer.price
    assert launched.state in (S.PENDING, S.PROVISIONING, S.RUNNING)
    seen = await provider.get(launched.id)
    assert seen.tags[TAG_LAUNCH_ID] == launch_id and seen.name == "train"
    assert [r.id for r in await provider.list(tags={TAG_LAUNCH_ID: launch_id})] == [launched.id]
    assert (await provider.stop(launched.id)).state in (S.STOPPING, S.STOPPED)
    assert (await provider.start(launched.id)).state in (S.PENDING, S.PROVISIONING, S.RUNNING)
    lines = [line async for line in provider.logs(launched.id)]
    assert isinstance(lines, list)
    assert (await provider.terminate(launched.id)).state in (S.TERMINATING, S.TERMINATED)


@pytest.mark.anyio
async def test_lifecycle_replays_and_every_request_matches_the_spec() -> None:
    config = ProviderConfig(name="vast", home=Path("/nonexistent"),
                            environ={"VAST_API_KEY": "cassette-key-not-real"})
    transport = RecordingTransport()
    provider = VastProvider(config, transport=transport)
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml") as cassette:
        await _lifecycle(provider, "cassette1")
        await provider.aclose()
        assert cassette.all_played
    api_requests = [r for r in transport.requests if r.url.host == "console.vast.ai"]
    # 14 for the lifecycle, one request_logs by get() looking for the command's end.
    assert assert_requests_match(SPEC, api_requests) == 15
    # The log download must not carry the Vast key to the storage host.
    assert all("authorization" not in r.headers for r in transport.requests
               if r.url.host != "console.vast.ai")


@pytest.mark.anyio
async def test_replayed_lifecycle_reports_the_documented_states() -> None:
    config = ProviderConfig(name="vast", home=Path("/nonexistent"),
                            environ={"VAST_API_KEY": "cassette-key-not-real"})
    provider = VastProvider(config)
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml"):
        offer = (await provider.offers(OfferQuery(spot=False)))[0]
        assert offer.instance_type == "12345678" and offer.gpu_count == 4
        assert offer.vcpus == 32 and offer.memory_gb == 64 and offer.region == "California, US"
        spec = LaunchSpec(command=["python", "train.py"], offer=offer, launch_id="cassette1",
                          name="train")
        launched = await provider.launch(spec)
        assert (launched.id, launched.state, launched.raw_state) == ("1234568", S.PROVISIONING, "loading")
        running = await provider.get("1234568")
        assert running.state is S.RUNNING and running.address == "192.0.2.45"
        await provider.list()
        assert (await provider.stop("1234568")).state is S.STOPPED
        assert (await provider.start("1234568")).state is S.PROVISIONING
        assert [line async for line in provider.logs("1234568")] == [
            "epoch 1 loss 0.5", "epoch 2 loss 0.25"]
        gone = await provider.terminate("1234568")
        assert gone.state is S.TERMINATED and gone.launch_id == "cassette1"
        await provider.aclose()


@pytest.mark.live
@pytest.mark.anyio
async def test_live_lifecycle(anyio_backend: str) -> None:
    """Against a real account (costs a few cents). Re-records the cassette with RUNCTL_RECORD=1."""
    if not os.environ.get("VAST_API_KEY"):
        pytest.skip("VAST_API_KEY is not set")
    if anyio_backend != "asyncio":
        pytest.skip("one live run is enough")
    config = ProviderConfig(name="vast", home=Path("/nonexistent"), environ=dict(os.environ))
    provider = VastProvider(config)
    launch_id = "cassette1" if recording() else "live" + os.urandom(4).hex()
    with record_to(CASSETTES, "lifecycle.yaml"):
        await _lifecycle(provider, launch_id)
    await provider.aclose()
