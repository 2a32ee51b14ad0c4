"""Vast under faults, against a fake Vast on loopback: rate limits, 5xx, timeouts, lost answers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import anyio
import attrs
import httpx
import pytest

from runctl.config import ProviderConfig
from runctl.errors import (
    CapacityError,
    MalformedResponseError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    RateLimitedError,
    ServerError,
    UnsupportedOperationError,
)
from runctl.http import RetryPolicy
from runctl.models import TAG_LAUNCH_ID, LaunchSpec, OfferQuery, ResourceState
from runctl.providers.vast import VastProvider
from tests.support.fake_http import Fault
from tests.support.fake_sleep import Sleeps

from .fake_vast import FakeVast

KEY = "vast-fault-key-0123456789abcdef"


@pytest.fixture
def vast() -> Iterator[FakeVast]:
    with FakeVast() as fake:
        yield fake



def make(
    fake: FakeVast, sleeps: Sleeps | None = None, *, read_timeout: float = 5.0,
    exit_check_interval: float = 30.0,
) -> VastProvider:
    config = ProviderConfig(
        name="vast", home=Path("/nonexistent"),
        environ={"VAST_API_KEY": KEY, "RUNCTL_VAST_BASE_URL": fake.url},
    )
    return VastProvider(
        config,
        retry=RetryPolicy(attempts=5, base=0.5, cap=8.0, rng=random.Random(1)),
        sleep=sleeps or Sleeps(),
        timeout=httpx.Timeout(read_timeout, connect=2.0),
        exit_check_interval=exit_check_interval,
    )


SPEC = LaunchSpec(command=["python", "train.py", "--epochs", "3"], image="pytorch/pytorch:latest",
                  gpu="RTX 4090", gpu_count=4, env={"WANDB_MODE": "offline"}, launch_id="lid1",
                  name="train")


@pytest.mark.anyio
async def test_the_whole_lifecycle_sends_only_requests_the_spec_documents(vast: FakeVast) -> None:
    provider = make(vast)
    offers = await provider.offers(OfferQuery(gpu="RTX 4090", count=4))
    assert {o.spot for o in offers} == {False, True}
    resource = await provider.launch(
        LaunchSpec(command=SPEC.command, image=SPEC.image, env=SPEC.env, launch_id="life1",
                   offer=offers[-1], ssh_public_key="ssh-ed25519 AAAAC3Nz test@runctl")
    )
    assert resource.state is ResourceState.RUNNING and resource.launch_id == "life1"
    assert [r.id for r in await provider.list(tags={TAG_LAUNCH_ID: "life1"})] == [resource.id]
    assert (await provider.stop(resource.id)).state is ResourceState.STOPPED
    assert (await provider.start(resource.id)).state is ResourceState.RUNNING
    assert [line async for line in provider.logs(resource.id)] == [
        "epoch 1 loss 0.5", "epoch 2 loss 0.25"]
    assert (await provider.terminate(resource.id)).state is ResourceState.TERMINATED
    await provider.aclose()
    assert vast.assert_requests_match_spec() >= 9


@pytest.mark.anyio
async def test_the_api_key_goes_only_to_vast_never_to_the_log_host(vast: FakeVast) -> None:
    provider = make(vast)
    inst = vast.add_instance(label="runctl:runctl-launch-id=x")
    _ = [line async for line in provider.logs(str(inst["id"]))]
    for request in vast.server.requests:
        expected = f"Bearer {KEY}" if request.path.startswith("/api/") else None
        assert request.headers.get("authorization") == expected


@pytest.mark.anyio
async def test_a_429_burst_without_retry_after_is_backed_off_exponentially(vast: FakeVast) -> None:
    inst = vast.add_instance()
    vast.server.fail("GET", "/api/v0/instances/{id}", *[Fault.http(429, {"detail": "too frequent"})] * 3)
    sleeps = Sleeps()
    resource = await make(vast, sleeps).get(str(inst["id"]))
    assert resource.state is ResourceState.RUNNING
    # Full jitter: each wait is within base * 2**(n-1), the bound doubling each time.
    assert len(sleeps.calls) == 3
    for n, waited in enumerate(sleeps.calls, start=1):
        assert 0 <= waited <= 0.5 * 2 ** (n - 1)


@pytest.mark.anyio
async def test_a_429_that_never_ends_is_a_rate_limited_error(vast: FakeVast) -> None:
    inst = vast.add_instance()
    vast.server.fail("GET", "/api/v0/instances/{id}", *[Fault.http(429, {"detail": "too frequent"})] * 9)
    with pytest.raises(RateLimitedError) as caught:
        await make(vast).get(str(inst["id"]))
    assert caught.value.retry_after is None and caught.value.status == 429
    assert "too frequent" in str(caught.value) and KEY not in str(caught.value)


@pytest.mark.anyio
async def test_a_429_on_create_is_retried_once_and_creates_one_instance(vast: FakeVast) -> None:
    vast.server.fail("PUT", "/api/v0/asks/{id}", Fault.http(429, {"detail": "too frequent"}))
    resource = await make(vast).launch(SPEC)
    assert vast.creates == 1 and len(vast.instances) == 1
    assert resource.id == str(next(iter(vast.instances)))


@pytest.mark.anyio
async def test_server_errors_on_reads_are_retried(vast: FakeVast) -> None:
    inst = vast.add_instance()
    vast.server.fail("GET", "/api/v0/instances/{id}", Fault.http(502), Fault.http(503))
    assert (await make(vast).get(str(inst["id"]))).state is ResourceState.RUNNING


@pytest.mark.anyio
async def test_a_500_on_create_looks_before_failing_and_says_retrying_is_safe(vast: FakeVast) -> None:
    vast.server.fail("PUT", "/api/v0/asks/{id}", Fault.http(500, {"error": "server_error", "msg": "oops"}))
    with pytest.raises(ServerError, match="launching again with the same launch id is safe"):
        await make(vast).launch(SPEC)
    assert vast.creates == 0
    # The retried launch creates exactly one machine.
    await make(vast).launch(SPEC)
    assert vast.creates == 1


@pytest.mark.anyio
async def test_a_lost_create_response_returns_the_machine_it_made(vast: FakeVast) -> None:
    vast.server.fail("PUT", "/api/v0/asks/{id}", Fault.lose_response())
    provider = make(vast)
    resource = await provider.launch(SPEC)
    assert vast.creates == 1
    assert resource.launch_id == "lid1" and resource.id == str(next(iter(vast.instances)))
    again = await provider.launch(SPEC)
    assert again.id == resource.id and vast.creates == 1


@pytest.mark.anyio
async def test_a_dropped_create_with_nothing_made_is_a_clear_error(vast: FakeVast) -> None:
    vast.server.fail("PUT", "/api/v0/asks/{id}", Fault.reset())
    with pytest.raises(ProviderConnectionError, match="no instance with launch id lid1"):
        await make(vast).launch(SPEC)
    assert vast.creates == 0 and not vast.instances


@pytest.mark.anyio
async def test_a_create_that_times_out_but_happens_is_found_not_repeated(vast: FakeVast) -> None:
    vast.server.fail("PUT", "/api/v0/asks/{id}", Fault.sleep(0.6))
    # The server creates the instance 0.6 s in; the client gave up at 0.3 s and looks again.
    resource = await make(vast, Sleeps(cap=0.5), read_timeout=0.3).launch(SPEC)
    await anyio.sleep(0.5)  # let the slow handler finish before counting
    assert vast.creates == 1 and resource.launch_id == "lid1"


@pytest.mark.anyio
async def test_a_launch_whose_ssh_key_is_refused_leaves_no_instance_running(vast: FakeVast) -> None:
    vast.server.fail("POST", "/api/v0/instances/{id}/ssh", Fault.http(
        400, {"success": False, "error": "invalid_args", "msg": "invalid ssh key"}))
    spec = attrs.evolve(SPEC, ssh_public_key="not a key")
    with pytest.raises(ProviderError, match="invalid ssh key"):
        await make(vast).launch(spec)
    assert vast.creates == 1 and vast.instances == {}


@pytest.mark.anyio
async def test_a_truncated_answer_to_a_read_is_retried(vast: FakeVast) -> None:
    inst = vast.add_instance()
    vast.server.fail("GET", "/api/v0/instances/{id}", Fault.truncate())
    assert (await make(vast).get(str(inst["id"]))).id == str(inst["id"])


@pytest.mark.anyio
async def test_a_body_that_is_not_json_is_malformed(vast: FakeVast) -> None:
    vast.raw_show = b'{"instances": {"id"'  # cut short, but delivered whole
    with pytest.raises(MalformedResponseError):
        await make(vast).get("1")


@pytest.mark.anyio
async def test_a_wrongly_typed_field_is_malformed_not_a_type_error(vast: FakeVast) -> None:
    vast.add_instance(num_gpus="four")
    with pytest.raises(MalformedResponseError, match="num_gpus"):
        await make(vast).list()


@pytest.mark.anyio
async def test_a_malformed_instance_error_does_not_carry_its_env_or_jupyter_token(
    vast: FakeVast,
) -> None:
    vast.add_instance(num_gpus="four", extra_env=[["HF_TOKEN", "hf_s3cret"]],
                      jupyter_token="jt-s3cret", onstart="export KEY=on-s3cret")
    with pytest.raises(MalformedResponseError, match="num_gpus") as caught:
        await make(vast).list()
    shown = f"{caught.value} {caught.value!r} {caught.value.body}"
    assert "four" in shown and "s3cret" not in shown


@pytest.mark.anyio
async def test_an_unknown_status_is_unknown_with_the_raw_state_kept(vast: FakeVast) -> None:
    inst = vast.add_instance(actual_status="hibernating")
    resource = await make(vast).get(str(inst["id"]))
    assert resource.state is ResourceState.UNKNOWN and resource.raw_state == "hibernating"


@pytest.mark.anyio
async def test_a_destroyed_instance_is_not_found(vast: FakeVast) -> None:
    with pytest.raises(NotFoundError):
        await make(vast).get("999")


@pytest.mark.anyio
async def test_list_walks_every_page_and_only_returns_runctls_instances(vast: FakeVast) -> None:
    for i in range(30):
        vast.add_instance(label=f"runctl:runctl-launch-id=l{i}&runctl-managed-by=runctl"
                                f"&team={'a' if i % 2 else 'b'}")
    vast.add_instance(label="someone else's")
    # A launch-id label without runctl's managed-by tag is not runctl's (issue 9).
    vast.add_instance(label="runctl:runctl-launch-id=l99&team=a")
    provider = make(vast)
    assert len(await provider.list()) == 30
    assert len(await provider.list(tags={"team": "b"})) == 15
    assert len([r for r in vast.server.requests if r.path == "/api/v1/instances"]) == 4


@pytest.mark.anyio
async def test_an_offer_taken_meanwhile_is_a_capacity_error(vast: FakeVast) -> None:
    vast.taken.add(12345678)
    with pytest.raises(CapacityError, match="not available"):
        await make(vast).launch(SPEC)
    assert not vast.instances


@pytest.mark.anyio
async def test_an_offer_id_that_is_gone_from_search_is_a_capacity_error(vast: FakeVast) -> None:
    with pytest.raises(CapacityError):
        await make(vast).launch(LaunchSpec(command=["true"], instance_type="42", launch_id="gone"))


@pytest.mark.anyio
async def test_a_bad_key_is_an_authentication_error_without_the_key(vast: FakeVast) -> None:
    vast.server.fail("POST", "/api/v0/bundles",
                     Fault.http(404, {"error": "auth_error", "msg": "Invalid user key"}))
    from runctl.errors import AuthenticationError

    with pytest.raises(AuthenticationError) as caught:
        await make(vast).offers(OfferQuery(spot=False))
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


@pytest.mark.anyio
async def test_following_logs_is_unsupported(vast: FakeVast) -> None:
    with pytest.raises(UnsupportedOperationError):
        _ = [line async for line in make(vast).logs("1", follow=True)]
