"""Lambda Cloud against a fake server on loopback: rate limits, 5xx, timeouts, lost answers, bad bodies."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import pytest

from runctl.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    RateLimitedError,
    ServerError,
)
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.providers.lambda_cloud import LambdaCloudProvider
from tests.support.fake_http import Fault, Reply

from .conftest import FAKE_KEY, PUBLIC_KEY, FakeLambda

S = ResourceState
LAUNCH = "/api/v1/instance-operations/launch"


def spec(launch_id: str = "faulty0001") -> LaunchSpec:
    return LaunchSpec(
        command=["python", "train.py"],
        gpu="H100",
        gpu_count=8,
        ssh_public_key=PUBLIC_KEY,
        launch_id=launch_id,
    )


def launches(fake: FakeLambda) -> int:
    return sum(1 for r in fake.server.requests if r.path == LAUNCH)


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.anyio
async def test_full_cycle_against_the_fake(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    offers = await fake_provider.offers(OfferQuery(count=8))
    assert [(o.instance_type, o.region) for o in offers] == [("gpu_8x_h100_sxm5", "us-east-1")]
    launched = await fake_provider.launch(spec())
    assert launched.state is S.PROVISIONING and launched.gpu_count == 8
    assert [k["name"] for k in fake.keys] == [fake.instances[launched.id]["ssh_key_names"][0]]
    again = await fake_provider.launch(spec("another1"))  # the key is found, not added twice
    assert len(fake.keys) == 1 and again.id != launched.id
    assert (await fake_provider.terminate(launched.id)).state is S.TERMINATING
    assert fake.check_requests_against_spec() > 5


@pytest.mark.anyio
async def test_429_burst(fake: FakeLambda, fake_provider: LambdaCloudProvider) -> None:
    fake.server.fail(
        "GET", "/api/v1/instances", *[Fault.http(429, headers={"Retry-After": "0"})] * 3
    )
    assert await fake_provider.list() == []
    fake.server.fail(
        "GET", "/api/v1/instances", *[Fault.http(429, headers={"Retry-After": "0"})] * 9
    )
    with pytest.raises(RateLimitedError) as caught:
        await fake_provider.list()
    assert FAKE_KEY not in str(caught.value) + repr(caught.value)


@pytest.mark.anyio
async def test_a_lost_launch_answer_never_makes_a_second_instance(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    fake.server.fail("POST", LAUNCH, Fault.lose_response())
    launched = await fake_provider.launch(spec())
    assert list(fake.instances) == [launched.id]
    assert launches(fake) == 1
    assert (await fake_provider.launch(spec())).id == launched.id
    assert launches(fake) == 1


@pytest.mark.anyio
async def test_a_5xx_launch(fake: FakeLambda, fake_provider: LambdaCloudProvider) -> None:
    fake.server.fail(
        "POST",
        LAUNCH,
        Fault.http(502, {"error": {"code": "global/internal-error", "message": "bad gateway"}}),
    )
    with pytest.raises(ServerError):
        await fake_provider.launch(spec())
    assert fake.instances == {} and launches(fake) == 1


@pytest.mark.anyio
async def test_a_failed_read_after_a_launch_still_returns_the_instance(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    # The instance exists and bills: the caller must get its id, not an error.
    fake.server.fail(
        "GET",
        "/api/v1/instances/{id}",
        *[Fault.http(502, {"error": {"code": "global/internal-error", "message": "bad"}})] * 4,
    )
    launched = await fake_provider.launch(spec())
    assert list(fake.instances) == [launched.id] and launches(fake) == 1
    assert launched.state is S.PENDING and launched.launch_id == "faulty0001"


@pytest.mark.anyio
async def test_a_timeout_mid_launch_is_clear_and_a_retry_makes_no_duplicate(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    fake.server.fail("POST", LAUNCH, Fault.sleep(1.5))
    with pytest.raises(ProviderConnectionError) as caught:
        await fake_provider.launch(spec())
    assert caught.value.maybe_applied
    assert "safe" in str(caught.value)
    # The server finishes the create in its own thread; wait for it there.
    await anyio.to_thread.run_sync(until, lambda: bool(fake.instances))
    again = await fake_provider.launch(spec())
    assert list(fake.instances) == [again.id] and launches(fake) == 1


@pytest.mark.anyio
async def test_truncated_and_malformed_bodies(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    fake.override(
        "GET", "/api/v1/instances/{id}", lambda r: Reply(200, b'{"data": {"id": "x", "st', {})
    )
    with pytest.raises(MalformedResponseError):
        await fake_provider.get("x")
    fake.override("GET", "/api/v1/instances", lambda r: Reply.json({"data": {"id": "x"}}))
    with pytest.raises(MalformedResponseError):
        await fake_provider.list()
    fake.override("GET", "/api/v1/instances", lambda r: Reply.json({"instances": []}))
    with pytest.raises(MalformedResponseError):
        await fake_provider.list()


@pytest.mark.anyio
async def test_an_odd_terminate_answer_never_shows_jupyter_tokens(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    token = "jupyter-token-made-up-for-tests"
    other = {"id": "someoneelse", "status": "terminating", "jupyter_token": token}
    fake.override(
        "POST",
        "/api/v1/instance-operations/terminate",
        lambda r: Reply.json({"data": {"terminated_instances": [other]}}),
    )
    with pytest.raises(MalformedResponseError) as caught:
        await fake_provider.terminate("i1")
    error = caught.value
    assert token not in str(error) + repr(error) + (error.body or "")


@pytest.mark.anyio
async def test_unknown_state_is_kept_raw(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    launched = await fake_provider.launch(spec())
    fake.instances[launched.id]["status"] = "migrating"
    seen = await fake_provider.get(launched.id)
    assert seen.state is S.UNKNOWN and seen.raw_state == "migrating"
