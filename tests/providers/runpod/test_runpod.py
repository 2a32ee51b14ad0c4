"""RunPod: states, wire parsing, prices, credentials, and the documented lifecycle from cassettes."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from runctl.cost import Money
from runctl.errors import (
    AuthenticationError,
    MalformedResponseError,
    MissingCredentialsError,
    NotFoundError,
    UnsupportedOperationError,
    ValidationError,
)
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.provider import Provider
from runctl.providers.runpod import (
    RUNPOD_STATES,
    RunPodGpuType,
    RunPodPod,
    RunPodProvider,
    runpod_price,
    runpod_state,
)
from tests.support.cassettes import cassette_vcr
from tests.support.openapi import RecordingTransport, assert_requests_match

from .conftest import CASSETTES, FAKE_KEY, SPEC, config

S = ResourceState


def _spec_statuses() -> list[str]:
    spec = json.loads(SPEC.read_text())
    return list(spec["components"]["schemas"]["PodStatus"]["enum"])


# --- states -------------------------------------------------------------------------------------


def test_every_documented_pod_status_is_mapped() -> None:
    assert sorted(RUNPOD_STATES) == sorted(_spec_statuses())


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PROVISIONING", S.PROVISIONING),
        ("STARTING", S.PROVISIONING),
        ("RUNNING", S.RUNNING),
        ("EXITED", S.STOPPED),
        ("ERROR", S.FAILED),
        ("TERMINATED", S.TERMINATED),
        ("MIGRATING", S.UNKNOWN),
        (None, S.UNKNOWN),
    ],
)
def test_state_table(raw: str | None, state: ResourceState) -> None:
    assert runpod_state(raw) is state


# --- wire models --------------------------------------------------------------------------------


def test_pod_parsing_ignores_extra_keys_and_tolerates_missing_optional_ones() -> None:
    pod = RunPodPod.from_wire({"id": "abc", "status": "RUNNING", "brandNewField": {"x": 1}})
    assert pod.id == "abc"
    assert pod.gpu_count == 0
    assert pod.cost_per_hour is None


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "pod",
        {"status": "RUNNING"},
        {"id": 3},
        {"id": "abc", "cost": "lots"},
        {"id": "abc", "createdAt": "yesterday"},
        {"id": "abc", "gpu": "H100"},
        {"id": "abc", "cost": True},
    ],
)
def test_malformed_pods_raise_malformed_response_error(payload: object) -> None:
    with pytest.raises(MalformedResponseError):
        RunPodPod.from_wire(payload)


def test_a_pod_that_cannot_be_read_never_shows_its_env_values() -> None:
    pod = {"id": "abc", "env": {"HF_TOKEN": "hf_user_secret_value"}, "createdAt": "yesterday"}
    with pytest.raises(MalformedResponseError) as caught:
        RunPodPod.from_wire(pod)
    error = caught.value
    assert "hf_user_secret_value" not in str(error) + repr(error) + (error.body or "")
    assert "HF_TOKEN" in (error.body or "")
    read = RunPodPod.from_wire({"id": "abc", "env": {"HF_TOKEN": "hf_user_secret_value"}})
    assert read.env == {"HF_TOKEN": "hf_user_secret_value"}
    assert "hf_user_secret_value" not in repr(read)


def test_malformed_gpu_type() -> None:
    with pytest.raises(MalformedResponseError):
        RunPodGpuType.from_wire({"id": "x", "price": {"secure": [1]}})


def test_tags_come_back_from_the_pod_env() -> None:
    tags = {"runctl-launch-id": "abc", "runctl-managed-by": "runctl"}
    pod = RunPodPod.from_wire({"id": "p", "env": {"RUNCTL_TAGS": json.dumps(tags)}})
    assert pod.tags == tags
    assert pod.launch_id == "abc"
    assert RunPodPod.from_wire({"id": "p", "env": {"RUNCTL_TAGS": "{not json"}}).tags == {}
    assert RunPodPod.from_wire({"id": "p", "name": "runctl-xyz"}).launch_id == "xyz"


# --- prices -------------------------------------------------------------------------------------


def test_price_is_per_instance_hour_billed_per_second_with_storage() -> None:
    price = runpod_price(Decimal("2.99"), 8, observed_at=None)  # type: ignore[arg-type]
    assert price.per_hour == Money("23.92", "USD")
    assert price.per_gpu_hour == Money("2.99", "USD")
    assert price.gpu_count == 8
    assert price.billing_increment == timedelta(seconds=1)
    assert price.storage_per_gb_month == Money("0.10", "USD")
    assert price.spot is False
    assert price.source == "live"


# --- credentials --------------------------------------------------------------------------------


def test_check_says_where_the_key_came_from_without_revealing_it(tmp_path: Path) -> None:
    found = RunPodProvider.check(config({"RUNPOD_API_KEY": FAKE_KEY}, tmp_path))
    assert found.usable
    assert "RUNPOD_API_KEY" in (found.reason or "")
    assert FAKE_KEY not in repr(found)
    missing = RunPodProvider.check(config({}, tmp_path))
    assert not missing.usable
    assert "RUNPOD_API_KEY" in (missing.reason or "")


def test_check_reads_the_config_file(tmp_path: Path) -> None:
    from runctl.config import ProviderConfig

    cfg = ProviderConfig(name="runpod", home=tmp_path, settings={"api_key": FAKE_KEY}, environ={})
    found = RunPodProvider.check(cfg)
    assert found.usable
    assert "config file" in (found.reason or "")


@pytest.mark.anyio
async def test_calls_without_credentials_raise_missing_credentials(tmp_path: Path) -> None:
    provider = RunPodProvider(config({}, tmp_path))
    with pytest.raises(MissingCredentialsError):
        await provider.list()


def test_provider_satisfies_the_protocol(tmp_path: Path) -> None:
    provider = RunPodProvider(config({"RUNPOD_API_KEY": FAKE_KEY}, tmp_path))
    assert isinstance(provider, Provider)
    assert provider.capabilities.stop_start and provider.capabilities.logs
    assert not provider.capabilities.spot
    assert FAKE_KEY not in repr(provider)


def test_registered_under_its_entry_point() -> None:
    from runctl.registry import Registry

    assert Registry().load("runpod") is RunPodProvider


# --- the documented lifecycle, from cassettes ---------------------------------------------------

SPEC_LAUNCH = LaunchSpec(
    command=["python", "train.py"],
    image="runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
    instance_type="SECURE:NVIDIA GeForce RTX 4090",
    gpu_count=1,
    disk_gb=50,
    env={"MODEL_NAME": "llama-3"},
    tags={"team": "ml"},
    launch_id="cassette0000001",
)


@pytest.mark.anyio
async def test_lifecycle_from_cassette(
    provider: RunPodProvider, recorder: RecordingTransport
) -> None:
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml") as cassette:
        offers = await provider.offers(OfferQuery())
        assert offers, "the catalog example yields offers"
        cheapest = offers[0]
        assert cheapest.instance_type == "COMMUNITY:NVIDIA GeForce RTX 4090"
        assert cheapest.price.per_hour == Money("0.31", "USD")
        assert cheapest.available is True
        secure = [o for o in offers if o.instance_type.startswith("SECURE:") and o.gpu_count == 8]
        assert secure[0].price.per_hour == Money("3.52", "USD")
        assert secure[0].available is None  # availability was asked for 1 GPU only

        launched = await provider.launch(SPEC_LAUNCH)
        assert launched.id == "7h9k2m4n6p"
        assert launched.state is S.PROVISIONING
        assert launched.launch_id == "cassette0000001"
        assert launched.tags["team"] == "ml"
        assert launched.price is not None and launched.price.per_hour == Money("0.44", "USD")

        running = await provider.get(launched.id)
        assert running.state is S.RUNNING
        assert running.address == "195.26.233.3"
        assert running.region == "US-KS-2"

        listed = await provider.list(tags={"team": "ml"})
        assert [r.id for r in listed] == [launched.id]

        again = await provider.launch(SPEC_LAUNCH)  # same launch id: no second pod
        assert again.id == launched.id

        stopped = await provider.stop(launched.id)
        assert stopped.state is S.STOPPED
        assert stopped.raw_state == "EXITED"
        started = await provider.start(launched.id)
        assert started.state is S.RUNNING

        gone = await provider.terminate(launched.id)
        assert gone.state is S.TERMINATED
        with pytest.raises(NotFoundError):
            await provider.get(launched.id)
        assert cassette.all_played
    assert sum(1 for r in recorder.requests if r.method == "POST" and r.url.path == "/v2/pods") == 1
    assert assert_requests_match(SPEC, recorder.requests) == len(recorder.requests) > 10
    for request in recorder.requests:
        assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"


@pytest.mark.anyio
async def test_logs_from_cassette(provider: RunPodProvider, recorder: RecordingTransport) -> None:
    with cassette_vcr(CASSETTES).use_cassette("logs.yaml"):
        lines = [line async for line in provider.logs("7h9k2m4n6p")]
    assert lines == ["Model loaded.", "epoch 1 loss 0.42"]
    assert_requests_match(SPEC, recorder.requests)


@pytest.mark.anyio
async def test_documented_errors_map_to_the_tree(provider: RunPodProvider) -> None:
    with cassette_vcr(CASSETTES).use_cassette("errors.yaml"):
        with pytest.raises(AuthenticationError) as auth:
            await provider.list()
        with pytest.raises(NotFoundError) as missing:
            await provider.get("nosuchpod")
    assert auth.value.status == 401 and "missing bearer token" in str(auth.value)
    assert missing.value.status == 404
    for error in (auth.value, missing.value):
        assert FAKE_KEY not in str(error) + repr(error) + (error.body or "")


def test_cassettes_hold_no_credentials() -> None:
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text()
        assert FAKE_KEY not in text
        assert "authorization" not in text.lower()


# --- launch input -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_spot_is_refused_before_anything_is_created(provider: RunPodProvider) -> None:
    spec = LaunchSpec(command=["true"], image="x", instance_type="SECURE:A", spot=True)
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml", allow_playback_repeats=True):
        with pytest.raises(UnsupportedOperationError, match="interruptible"):
            await provider.launch(spec)


@pytest.mark.anyio
async def test_a_pod_needs_an_image(provider: RunPodProvider) -> None:
    spec = LaunchSpec(command=["true"], instance_type="SECURE:A")
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml", allow_playback_repeats=True):
        with pytest.raises(ValidationError, match="image"):
            await provider.launch(spec)


@pytest.mark.anyio
async def test_bad_resource_ids_are_refused(provider: RunPodProvider) -> None:
    with pytest.raises(ValidationError):
        await provider.get("../account")
