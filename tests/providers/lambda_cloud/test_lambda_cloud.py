"""Lambda Cloud: states, wire parsing, prices, credentials, and the documented lifecycle from cassettes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from runctl.cost import Money
from runctl.errors import (
    AuthenticationError,
    CapacityError,
    MalformedResponseError,
    MissingCredentialsError,
    NotFoundError,
    QuotaExceededError,
    UnsupportedOperationError,
    ValidationError,
)
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.provider import Provider
from runctl.providers.lambda_cloud import (
    LAMBDA_STATES,
    LambdaCloudProvider,
    LambdaInstance,
    LambdaInstanceType,
    lambda_price,
    lambda_state,
    user_data_script,
)
from tests.support.cassettes import cassette_vcr
from tests.support.openapi import RecordingTransport, assert_requests_match

from .conftest import CASSETTES, FAKE_KEY, PUBLIC_KEY, SPEC, config

S = ResourceState


def test_every_documented_instance_status_is_mapped() -> None:
    spec = json.loads(SPEC.read_text())
    assert sorted(LAMBDA_STATES) == sorted(spec["components"]["schemas"]["InstanceStatus"]["enum"])


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("booting", S.PROVISIONING),
        ("active", S.RUNNING),
        ("unhealthy", S.RUNNING),  # failed health checks: up, billed, may recover
        ("terminating", S.TERMINATING),
        ("terminated", S.TERMINATED),
        ("preempted", S.PREEMPTED),
        ("hibernating", S.UNKNOWN),
        (None, S.UNKNOWN),
    ],
)
def test_state_table(raw: str | None, state: ResourceState) -> None:
    assert lambda_state(raw) is state


def test_instance_parsing_is_lenient() -> None:
    instance = LambdaInstance.from_wire({"id": "i1", "status": "active", "new_field": 1})
    assert instance.id == "i1" and instance.instance_type is None and instance.tags == {}


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {"status": "active"},
        {"id": "i1", "tags": "a=b"},
        {"id": "i1", "tags": [["a", "b"]]},
        {"id": "i1", "instance_type": {"name": "x"}},
        {"id": "i1", "region": "us-east-1"},
    ],
)
def test_malformed_instances(payload: object) -> None:
    with pytest.raises(MalformedResponseError):
        LambdaInstance.from_wire(payload)


def test_an_instance_that_cannot_be_read_never_shows_its_jupyter_token() -> None:
    token = "jupyter-token-made-up-for-tests"
    payload = {
        "id": "i1",
        "jupyter_token": token,
        "jupyter_url": f"https://jupyter-x.lambdaspaces.com/?token={token}",
        "region": "us-east-1",
    }
    with pytest.raises(MalformedResponseError) as caught:
        LambdaInstance.from_wire(payload)
    error = caught.value
    assert token not in str(error) + repr(error) + (error.body or "")


def test_price_from_cents_per_instance_hour_billed_per_minute() -> None:
    price = lambda_price(2392, 8, observed_at=None)
    assert price.per_hour == Money("23.92", "USD")
    assert price.per_gpu_hour == Money("2.99", "USD")
    assert price.billing_increment == timedelta(minutes=1)
    assert price.storage_per_gb_month is None  # local storage is included
    assert not price.spot


def test_instance_type_parsing() -> None:
    kind = LambdaInstanceType.from_wire(
        {
            "name": "cpu_4x",
            "description": "CPU",
            "gpu_description": "",
            "price_cents_per_hour": 8,
            "specs": {"vcpus": 4, "memory_gib": 16, "storage_gib": 100, "gpus": 0},
        },
    )
    assert kind.gpu is None and kind.gpus == 0
    with pytest.raises(MalformedResponseError):
        LambdaInstanceType.from_wire({"name": "x", "price_cents_per_hour": "9.5"})


def test_check_says_where_the_key_came_from(tmp_path: Path) -> None:
    found = LambdaCloudProvider.check(config({"LAMBDA_API_KEY": FAKE_KEY}, tmp_path))
    assert found.usable and "LAMBDA_API_KEY" in (found.reason or "")
    assert FAKE_KEY not in repr(found)
    assert not LambdaCloudProvider.check(config({}, tmp_path)).usable


@pytest.mark.anyio
async def test_without_credentials(tmp_path: Path) -> None:
    with pytest.raises(MissingCredentialsError):
        await LambdaCloudProvider(config({}, tmp_path)).list()


def test_protocol_and_capabilities(tmp_path: Path) -> None:
    provider = LambdaCloudProvider(config({"LAMBDA_API_KEY": FAKE_KEY}, tmp_path))
    assert isinstance(provider, Provider)
    caps = provider.capabilities
    assert not caps.stop_start and not caps.logs and not caps.spot
    assert caps.idempotent_launch and caps.tags and caps.ssh


def test_registered_under_its_entry_point() -> None:
    from runctl.registry import Registry

    assert Registry().load("lambda") is LambdaCloudProvider


@pytest.mark.anyio
async def test_stop_start_and_logs_are_unsupported(tmp_path: Path) -> None:
    provider = LambdaCloudProvider(config({"LAMBDA_API_KEY": FAKE_KEY}, tmp_path))
    with pytest.raises(UnsupportedOperationError, match="cannot be stopped"):
        await provider.stop("i1")
    with pytest.raises(UnsupportedOperationError):
        await provider.start("i1")
    with pytest.raises(UnsupportedOperationError, match="/var/log/runctl.log"):
        provider.logs("i1")


def test_user_data_runs_the_command_once_with_env() -> None:
    spec = LaunchSpec(
        command=["python", "train.py", "--lr", "1e-3"], env={"A": "it's"}, launch_id="u1"
    )
    script = user_data_script(spec)
    assert script.startswith("#!/bin/bash\n")
    assert "export A='it'\"'\"'s'" in script
    assert "python train.py --lr 1e-3" in script
    boxed = user_data_script(
        LaunchSpec(command=["nvidia-smi"], image="nvcr.io/nvidia/pytorch:24.01-py3")
    )
    assert "docker run --rm --gpus all" in boxed and "nvcr.io/nvidia/pytorch:24.01-py3" in boxed


SPEC_LAUNCH = LaunchSpec(
    command=["python", "train.py"],
    instance_type="gpu_1x_gh200",
    ssh_public_key=PUBLIC_KEY,
    tags={"team": "ml"},
    launch_id="cassette0000001",
)


@pytest.mark.anyio
async def test_lifecycle_from_cassette(
    provider: LambdaCloudProvider, recorder: RecordingTransport
) -> None:
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml") as cassette:
        offers = await provider.offers(OfferQuery(gpu="GH200"))
        assert len(offers) == 1
        offer = offers[0]
        assert offer.instance_type == "gpu_1x_gh200" and offer.region == "us-west-1"
        assert offer.price.per_hour == Money("1.49", "USD") and offer.available
        assert offer.vcpus == 64

        launched = await provider.launch(SPEC_LAUNCH)
        assert launched.id == "0920582c7ff041399e34823a0be62549"
        assert launched.state is S.PROVISIONING
        assert launched.launch_id == "cassette0000001"
        assert launched.price is not None and launched.price.per_hour == Money("1.49", "USD")

        listed = await provider.list(tags={"team": "ml"})
        assert [r.state for r in listed] == [S.RUNNING]
        again = await provider.launch(SPEC_LAUNCH)
        assert again.id == launched.id  # same launch id: no second instance

        running = await provider.get(launched.id)
        assert running.address == "198.51.100.2" and running.region == "us-west-1"
        gone = await provider.terminate(launched.id)
        assert gone.state is S.TERMINATING
        with pytest.raises(NotFoundError):
            await provider.get(launched.id)
        assert cassette.all_played
    launches = [r for r in recorder.requests if r.url.path.endswith("/instance-operations/launch")]
    assert len(launches) == 1
    body = json.loads(launches[0].content)
    assert {"key": "runctl-launch-id", "value": "cassette0000001"} in body["tags"]
    assert body["user_data"].startswith("#!/bin/bash")
    assert assert_requests_match(SPEC, recorder.requests) == len(recorder.requests) > 8


@pytest.mark.anyio
async def test_documented_errors(provider: LambdaCloudProvider) -> None:
    spec = LaunchSpec(
        command=["true"],
        instance_type="gpu_1x_gh200",
        region="us-west-1",
        options={"ssh_key_name": "mine"},
        launch_id="errors1",
    )
    with cassette_vcr(CASSETTES).use_cassette("errors.yaml"):
        with pytest.raises(AuthenticationError) as auth:
            await provider.list()
        with pytest.raises(CapacityError) as capacity:
            await provider.launch(spec)
        with pytest.raises(QuotaExceededError) as quota:
            await provider.launch(spec)
    assert "Check your API key" in str(auth.value)
    assert capacity.value.status == 400
    assert "insufficient-capacity" in str(capacity.value)
    for error in (auth.value, capacity.value, quota.value):
        assert FAKE_KEY not in str(error) + repr(error) + (error.body or "")


def test_cassettes_hold_no_credentials() -> None:
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text()
        assert FAKE_KEY not in text and "authorization" not in text.lower()


@pytest.mark.anyio
async def test_launch_input_is_checked(provider: LambdaCloudProvider) -> None:
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml", allow_playback_repeats=True):
        with pytest.raises(ValidationError, match="SSH key"):
            await provider.launch(LaunchSpec(command=["x"], instance_type="t", region="us-west-1"))
        with pytest.raises(ValidationError, match="tag"):
            await provider.launch(
                LaunchSpec(
                    command=["x"],
                    instance_type="t",
                    region="us-west-1",
                    options={"ssh_key_name": "k"},
                    tags={"Team": "ml"},
                )
            )
        with pytest.raises(UnsupportedOperationError):
            await provider.launch(LaunchSpec(command=["x"], spot=True))
