"""What EC2 does when it fails: throttling, no capacity (with zone fallback), a lost answer.

moto never throttles, never runs out of capacity and never loses an answer: those are
injected in-process, into moto's RunInstances (see conftest), and the provider sees
them over HTTP as it would see EC2's.
"""

from __future__ import annotations

import pytest

from runctl.errors import AuthenticationError, CapacityError, QuotaExceededError, RateLimitedError
from runctl.models import LaunchSpec
from runctl.providers.aws import client_token

NO_CAPACITY = (
    "InsufficientInstanceCapacity",
    "We currently do not have sufficient g6.xlarge capacity in the Availability Zone you requested.",
)


def spec(**kw):
    return LaunchSpec(command=["python", "train.py"], provider="aws", instance_type="g6.xlarge",
                      **kw)


def placements(moto):
    return [call["placement"] for call in moto.run_calls]


@pytest.mark.anyio
async def test_throttling_is_retried_with_backoff(provider, moto, sleeps):
    moto.throttle = 2
    resource = await provider.launch(spec())
    assert len(moto.backend().all_instances()) == 1
    assert resource.id == moto.backend().all_instances()[0].id
    assert sleeps.calls == [1.0, 2.0]
    assert len(moto.run_calls) == 3


@pytest.mark.anyio
async def test_throttling_that_does_not_stop_is_rate_limited(make_provider, moto, sleeps):
    provider = make_provider(attempts=3)
    moto.throttle = 10
    with pytest.raises(RateLimitedError) as e:
        await provider.launch(spec())
    assert "RequestLimitExceeded" in str(e.value) and e.value.retry_after
    assert sleeps.calls == [1.0, 2.0]
    assert not moto.backend().all_instances()


@pytest.mark.anyio
async def test_no_capacity_tries_the_next_zones_when_none_was_asked(provider, moto):
    moto.refuse[None] = NO_CAPACITY
    moto.refuse["us-east-1a"] = NO_CAPACITY
    resource = await provider.launch(spec())
    assert placements(moto) == [None, "us-east-1a", "us-east-1b"]
    assert resource.id and moto.instance(resource.id).placement.zone == "us-east-1b"
    tokens = [r["ClientToken"] for r in moto.run_requests]
    assert len(set(tokens)) == 3  # a token per zone: EC2 refuses one reused with other params
    assert tokens[-1] == client_token(resource.launch_id, "us-east-1b")


@pytest.mark.anyio
async def test_no_capacity_anywhere_says_what_was_tried_and_leaves_nothing(provider, moto):
    moto.refuse["*"] = NO_CAPACITY
    with pytest.raises(CapacityError) as e:
        await provider.launch(spec())
    message = str(e.value)
    for zone in ("zone chosen by EC2", "us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"):
        assert zone in message
    assert not moto.backend().all_instances()


@pytest.mark.anyio
async def test_an_asked_zone_is_the_only_one_tried(provider, moto):
    moto.refuse["*"] = NO_CAPACITY
    with pytest.raises(CapacityError):
        await provider.launch(spec(options={"zone": "us-east-1c"}))
    assert placements(moto) == ["us-east-1c"]


@pytest.mark.anyio
async def test_a_lost_answer_to_run_instances_does_not_start_a_second_instance(provider, moto):
    moto.lose_answers = 1
    s = spec()
    resource = await provider.launch(s)
    (instance,) = moto.backend().all_instances()
    assert resource.id == instance.id and resource.launch_id == s.launch_id
    assert len(moto.run_calls) == 1  # found by its tag, not created again
    assert (await provider.launch(s)).id == instance.id


LIMITS = [
    ("VcpuLimitExceeded", QuotaExceededError),
    ("InstanceLimitExceeded", QuotaExceededError),
    ("MaxSpotInstanceCountExceeded", QuotaExceededError),
    ("UnauthorizedOperation", AuthenticationError),
    ("AuthFailure", AuthenticationError),
]


@pytest.mark.anyio
async def test_account_limits_and_refusals_map_to_runctl_errors(provider, moto):
    for code, error in LIMITS:
        moto.run_calls.clear()
        moto.refuse["*"] = (code, f"{code}: refused")
        with pytest.raises(error) as e:
            await provider.launch(spec())
        assert e.value.provider == "aws" and code in str(e.value)
        assert len(moto.run_calls) == 1, code  # not retried, no zone fallback
    assert not moto.backend().all_instances()


INPUT_ERRORS = [
    ("InvalidParameterValue", "Value (xyz) for parameter instanceType is invalid.", "instance_type"),
    ("InvalidParameterValue", "Volume of size 4GB is smaller than snapshot 'snap-1', expect size >= 8GB", "disk_gb"),
    ("InvalidParameterValue", "Tag key names cannot start with 'aws:'", "tags"),
    ("InvalidAMIID.Unavailable", "The image is being deregistered", "image"),
    ("InvalidSubnetID.NotFound", "The subnet ID 'subnet-1' does not exist", "subnet"),
    ("InvalidKeyPair.NotFound", "The key pair 'k' does not exist", "options.key_name"),
]


@pytest.mark.anyio
async def test_input_errors_name_the_field(provider, moto):
    from runctl.errors import ValidationError

    for code, message, field in INPUT_ERRORS:
        moto.refuse["*"] = (code, message)
        with pytest.raises(ValidationError) as e:
            await provider.launch(spec())
        assert e.value.field == field and code in str(e.value), (code, message)
    assert not moto.backend().all_instances()


@pytest.mark.anyio
async def test_no_credentials_is_a_configuration_error(make_provider, moto, monkeypatch):
    from runctl.errors import MissingCredentialsError

    from .conftest import aws_environ

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    environ = {k: v for k, v in aws_environ(moto).items() if not k.startswith("AWS_ACCESS")
               and not k.startswith("AWS_SECRET")}
    provider = make_provider(environ)
    with pytest.raises(MissingCredentialsError) as e:
        await provider.list()
    assert "aws configure" in str(e.value)
