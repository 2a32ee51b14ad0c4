"""The AWS provider against moto over HTTP: offers, launch, state, exit code, errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from runctl import catalog
from runctl.config import ProviderConfig, Settings
from runctl.errors import NotFoundError, UnsupportedOperationError, ValidationError
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.providers.aws import (
    AWS_STATES,
    DLAMI_OWNER,
    STATE_CODES,
    AwsProvider,
    aws_state,
    client_token,
    user_data,
)

from .conftest import FAKE_KEY_ID, FAKE_SECRET, REGION

S = ResourceState


def spec(**kw):
    kw.setdefault("command", ["python", "train.py"])
    kw.setdefault("provider", "aws")
    kw.setdefault("instance_type", "g6.xlarge")
    return LaunchSpec(**kw)


def test_importing_the_provider_does_not_import_boto3():
    code = (
        "import sys, runctl, runctl.providers.aws; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_state_code_is_mapped():
    assert set(STATE_CODES.values()) == set(AWS_STATES)
    expected = {0: S.PROVISIONING, 16: S.RUNNING, 32: S.TERMINATING, 48: S.TERMINATED,
                64: S.STOPPING, 80: S.STOPPED}
    for code, state in expected.items():
        assert aws_state(None, code) is state
        assert aws_state(None, code | 0x100) is state  # the high byte is EC2's own
        assert aws_state(STATE_CODES[code]) is state
    assert aws_state("terminated", 48, "Server.SpotInstanceTermination") is S.PREEMPTED
    assert aws_state("shutting-down", 32, "Server.SpotInstanceTermination") is S.PREEMPTED
    assert aws_state("terminated", 48, "Server.InternalError") is S.FAILED
    assert aws_state("terminated", 48, "Client.UserInitiatedShutdown") is S.TERMINATED
    assert aws_state("rebooting-ish") is S.UNKNOWN


@pytest.mark.anyio
async def test_offers_carry_ec2_gpu_facts_snapshot_on_demand_and_live_spot_prices(provider):
    offers = await provider.offers(OfferQuery(gpu="H100", count=8))
    on_demand = [o for o in offers if not o.spot]
    spot = [o for o in offers if o.spot]
    assert {o.instance_type for o in on_demand} == {"p5.48xlarge"}
    p5 = on_demand[0]
    assert (p5.gpu.model, p5.gpu.variant, p5.gpu_count) == ("H100", "SXM", 8)
    assert (p5.vcpus, p5.memory_gb, p5.region, p5.zone) == (192, 2048.0, REGION, None)
    snapshot = catalog.load_snapshot(Settings(home=provider.config.home), warn=False)
    published = {o.price.per_hour.amount for o in snapshot.offers
                 if o.provider == "aws" and o.instance_type == "p5.48xlarge"
                 and o.region == REGION and not o.spot}
    assert p5.price.per_hour.amount in published
    assert p5.price.source == "snapshot"
    # Spot: one offer per zone, priced live (moto's constant), billed per second, 60 s minimum.
    assert {o.zone for o in spot} >= {"us-east-1a", "us-east-1b"}
    for o in spot:
        assert o.price.source == "live" and o.price.per_hour.amount == Decimal("0.00001")
        assert o.price.billing_increment.total_seconds() == 1
        assert o.price.minimum_duration.total_seconds() == 60


@pytest.mark.anyio
async def test_gpu_models_match_exactly_never_by_prefix(provider):
    a10 = await provider.offers(OfferQuery(gpu="A10", spot=False))
    assert all(o.gpu.model == "A10" for o in a10)
    assert not any(o.instance_type.startswith("g5.") for o in a10)  # g5 is A10G
    a10g = await provider.offers(OfferQuery(gpu="A10G", spot=False))
    assert a10g and {o.instance_type.split(".")[0] for o in a10g} == {"g5"}
    l4 = await provider.offers(OfferQuery(gpu="L4", spot=False))
    assert l4 and all(o.gpu.model == "L4" for o in l4)  # not L40S (g6e)
    assert not any(o.instance_type.startswith("g6e") for o in l4)


@pytest.mark.anyio
async def test_launch_sends_token_tags_image_shutdown_behaviour_and_user_data(provider, moto):
    older = moto.publish_image(
        "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20251001",
        created=datetime(2025, 10, 1, tzinfo=timezone.utc),
    )
    newest = moto.publish_image(
        "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261120",
        created=datetime(2026, 11, 20, tzinfo=timezone.utc),
    )
    moto.publish_image(  # same name, someone else's account: never picked
        "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261201", owner="111122223333",
        created=datetime(2026, 12, 1, tzinfo=timezone.utc),
    )
    s = spec(gpu="L4", gpu_count=1, instance_type=None, name="bert", ttl=5400, disk_gb=120,
             env={"EPOCHS": "3"}, tags={"team": "nlp"})
    resource = await provider.launch(s)
    assert resource.state in (S.PROVISIONING, S.RUNNING)
    assert resource.launch_id == s.launch_id and resource.name == "bert"
    assert resource.price is not None and resource.price.source == "snapshot"
    (call,) = moto.run_calls
    assert call["client_token"] == client_token(s.launch_id, None)
    assert call["image_id"] == newest != older
    assert call["instance_initiated_shutdown_behavior"] == "terminate"
    assert call["metadata_options"]["HttpTokens"] == "required"
    (mapping,) = call["block_device_mappings"]
    assert mapping["Ebs"]["DeleteOnTermination"] in (True, "true")
    assert int(mapping["Ebs"]["VolumeSize"]) == 120
    inst = moto.instance(resource.id)
    assert inst.instance_type == "g6.xlarge"  # the cheapest L4 machine
    assert inst.instance_initiated_shutdown_behavior == "terminate"
    script = moto.user_data(resource.id)
    assert script == user_data(s)
    assert "shutdown -P +90" in script and "export EPOCHS=3" in script
    assert script.rstrip().endswith("poweroff")
    for key, value in {"runctl-managed-by": "runctl", "runctl-launch-id": s.launch_id,
                       "runctl-ttl": "5400", "team": "nlp", "Name": "bert"}.items():
        assert resource.tags[key] == value
    (volume,) = [v for v in moto.backend().volumes.values() if v.attachment
                 and v.attachment.instance.id == resource.id]
    volume_tags = {t["key"]: t["value"] for t in moto.backend().describe_tags(
        filters={"resource-id": [volume.id]})}
    assert volume_tags["runctl-launch-id"] == s.launch_id


@pytest.mark.anyio
async def test_a_retried_launch_returns_the_same_instance(provider, moto):
    s = spec()
    first = await provider.launch(s)
    again = await provider.launch(s)
    assert again.id == first.id
    # moto does not honour ClientToken; the request carries it and the tag look-up
    # (made before any create) is what stops the second instance here.
    assert len(moto.run_calls) == 1
    assert moto.run_requests[0]["ClientToken"] == client_token(s.launch_id, None)
    assert len([r for r in await provider.list(tags={"runctl-launch-id": s.launch_id})]) == 1


@pytest.mark.anyio
async def test_list_shows_only_runctl_instances_and_filters_by_tags(provider, moto):
    a = await provider.launch(spec(tags={"team": "a"}))
    b = await provider.launch(spec(tags={"team": "b"}))
    image = next(iter(moto.backend().amis))
    # An instance someone else started in the account, without runctl's tags.
    await provider._call(REGION, "run_instances", ImageId=image, InstanceType="t3.micro",
                         MinCount=1, MaxCount=1)
    assert len(moto.backend().all_instances()) == 3
    assert {r.id for r in await provider.list()} == {a.id, b.id}
    assert [r.id for r in await provider.list(tags={"team": "b"})] == [b.id]


@pytest.mark.anyio
async def test_stop_start_and_terminate_report_each_state(provider, moto):
    r = await provider.launch(spec())
    assert (await provider.get(r.id)).state is S.RUNNING
    stopped = await provider.stop(r.id)
    assert stopped.state in (S.STOPPING, S.STOPPED)
    assert (await provider.get(r.id)).state is S.STOPPED
    assert (await provider.start(r.id)).state in (S.PROVISIONING, S.RUNNING)
    again = await provider.get(r.id)
    assert again.state is S.RUNNING
    # Created when its root volume was first attached; started at EC2's LaunchTime.
    assert again.created_at is not None and again.started_at is not None
    assert again.created_at <= again.started_at and again.created_at.utcoffset().total_seconds() == 0
    ended = await provider.terminate(r.id)
    assert ended.state in (S.TERMINATING, S.TERMINATED)
    got = await provider.get(r.id)
    assert got.state is S.TERMINATED and "User initiated" in got.detail
    # When it ended is EC2's "User initiated (<time>)", so its cost stops there.
    reason = moto.instance(r.id)._reason
    assert got.ended_at is not None and got.ended_at.strftime("%Y-%m-%d %H:%M:%S") in reason
    assert (await provider.terminate(r.id)).state is S.TERMINATED  # idempotent


@pytest.mark.anyio
async def test_spot_launch_and_interruption_is_preempted(provider, moto):
    r = await provider.launch(spec(spot=True))
    (sent,) = moto.run_requests
    assert sent["InstanceMarketOptions.MarketType"] == "spot"
    assert sent["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "one-time"
    assert sent["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "terminate"
    assert moto.instance(r.id).lifecycle == "spot"
    assert r.price is not None and r.price.spot and r.price.source == "live"
    with pytest.raises(UnsupportedOperationError):
        await provider.stop(r.id)
    moto.interrupt_spot(r.id)
    got = await provider.get(r.id)
    assert got.state is S.PREEMPTED and got.is_terminal
    assert "Spot instance termination" in got.detail


@pytest.mark.anyio
async def test_the_exit_code_comes_from_the_serial_console(provider, moto, clock):
    s = spec()
    r = await provider.launch(s)
    moto.consoles[r.id] = "boot\n"
    assert (await provider.get(r.id)).state is S.RUNNING
    moto.consoles[r.id] = (
        f"[  5.1] cloud-init: start\n[runctl:{s.launch_id}] start\nepoch 1\r\nepoch 2\r\n"
        f"[runctl:{s.launch_id}] exit 3\r\n[ 9.0] reboot: Power down\n"
    )
    # Read at most every exit_check_interval seconds per instance.
    assert (await provider.get(r.id)).exit_code is None
    clock.now += 15
    done = await provider.get(r.id)
    assert (done.state, done.exit_code, done.raw_state) == (S.FAILED, 3, "running")
    assert [line async for line in provider.logs(r.id)] == ["epoch 1", "epoch 2"]


@pytest.mark.anyio
async def test_a_machine_that_powered_off_waits_for_its_console_then_reports(provider, moto, clock):
    s = spec()
    r = await provider.launch(s)
    moto.power_off(r.id)
    waiting = await provider.get(r.id)
    assert waiting.state is S.TERMINATING and "console" in waiting.detail
    moto.consoles[r.id] = f"[runctl:{s.launch_id}] start\nok\n[runctl:{s.launch_id}] exit 0\n"
    clock.now += 15
    done = await provider.get(r.id)
    assert (done.state, done.exit_code, done.raw_state) == (S.SUCCEEDED, 0, "terminated")

    lost = await provider.launch(spec())
    moto.power_off(lost.id)
    assert (await provider.get(lost.id)).state is S.TERMINATING
    clock.now += 601  # console_grace: the code never showed
    gone = await provider.get(lost.id)
    assert gone.state is S.TERMINATED and gone.exit_code is None
    assert "never showed" in gone.detail
    # Terminal stays terminal: a marker arriving later does not turn it into SUCCEEDED.
    moto.consoles[lost.id] = f"[runctl:{lost.launch_id}] exit 0\n"
    clock.now += 60
    assert (await provider.get(lost.id)).state is S.TERMINATED


@pytest.mark.anyio
async def test_bad_input_names_the_field(provider, moto):
    with pytest.raises(ValidationError) as e:
        await provider.launch(spec(image="ami-0123456789abcdef0"))
    assert e.value.field == "image"
    with pytest.raises(ValidationError) as e:
        await provider.launch(spec(image="pytorch/pytorch:latest"))
    assert e.value.field == "image" and "AMI id" in str(e.value)
    with pytest.raises(ValidationError) as e:
        await provider.launch(spec(instance_type="p9.enormous"))
    assert e.value.field == "instance_type"
    with pytest.raises(ValidationError) as e:
        await provider.launch(spec(instance_type="g6.xlarge", gpu_count=4))
    assert e.value.field == "gpu_count"
    with pytest.raises(ValidationError) as e:
        await provider.launch(spec(instance_type=None, gpu="H100", gpu_count=3))
    assert e.value.field == "gpu"
    with pytest.raises(ValidationError) as e:
        await provider.launch(spec(instance_type=None))
    assert e.value.field == "instance_type"
    with pytest.raises(ValidationError) as e:
        await provider.launch(spec(command=["echo", "x" * 17000]))
    assert e.value.field == "command"
    assert moto.run_calls == []  # every one refused before anything was created
    assert not moto.backend().all_instances()


@pytest.mark.anyio
async def test_unknown_ids(provider):
    for rid in ("i-0123456789abcdef0", "runctl-conformance-no-such-id", "eu-west-1/nope"):
        with pytest.raises(NotFoundError):
            await provider.get(rid)
    gone = await provider.terminate("i-0123456789abcdef0")
    assert gone.state is S.TERMINATED


def test_check_says_where_credentials_and_region_come_from(tmp_path: Path):
    def check(environ, settings=None):
        base = {"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true"}
        config = ProviderConfig(name="aws", home=tmp_path, environ={**base, **environ},
                                settings=settings or {})
        return AwsProvider.check(config)

    env = check({"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                 "AWS_REGION": "eu-west-1"})
    assert env.usable and "env AWS_ACCESS_KEY_ID" in env.reason and "eu-west-1" in env.reason
    assert FAKE_SECRET not in env.reason and FAKE_KEY_ID not in env.reason
    aws_dir = tmp_path / ".aws"
    aws_dir.mkdir()
    (aws_dir / "config").write_text(
        "[profile work]\nsso_session = corp\nsso_account_id = 1\nregion = us-west-2\n"
        "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
    )
    sso = check({"AWS_PROFILE": "work"})
    assert sso.usable and "profile 'work'" in sso.reason and "SSO" in sso.reason
    assert "us-west-2" in sso.reason  # the profile's region
    (aws_dir / "credentials").write_text("[default]\naws_access_key_id = X\naws_secret_access_key = Y\n")
    default = check({}, settings={"region": "ap-south-1"})
    assert default.usable and "credentials" in default.reason and "ap-south-1" in default.reason
    (aws_dir / "credentials").unlink()
    nothing = check({})
    assert not nothing.usable and "no AWS credentials" in nothing.reason
    no_region = check({"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"})
    assert not no_region.usable and "region" in no_region.reason


@pytest.mark.anyio
async def test_secrets_never_show(provider, moto):
    moto.refuse["*"] = ("AuthFailure", "AWS was not able to validate the provided access credentials")
    from runctl.errors import AuthenticationError

    with pytest.raises(AuthenticationError) as e:
        await provider.launch(spec())
    for text in (str(e.value), repr(e.value), repr(provider), repr(provider.config)):
        assert FAKE_SECRET not in text and FAKE_KEY_ID not in text
    assert DLAMI_OWNER  # the default image owner is public knowledge, not a secret


def test_the_documented_iam_policy_lists_every_action_the_provider_calls():
    import inspect
    import json
    import re

    import runctl.providers.aws as module

    source = inspect.getsource(module)
    called = set(re.findall(r'_(?:call|pages)\(\s*region,\s*"([a-z_]+)"', source))
    called |= set(re.findall(r'self\._change\(resource_id, "([a-z_]+)"', source))
    assert {"run_instances", "describe_instances", "get_console_output"} <= called
    actions = {"ec2:" + "".join(w.capitalize() for w in op.split("_")) for op in called}
    actions.add("ec2:CreateTags")  # TagSpecifications on RunInstances need it
    doc = (Path(__file__).parents[3] / "docs" / "providers" / "aws.md").read_text()
    policy = json.loads(doc.split("```json", 1)[1].split("```", 1)[0])
    granted = set()
    for statement in policy["Statement"]:
        found = statement["Action"]
        granted |= {found} if isinstance(found, str) else set(found)
    assert actions <= granted, actions - granted


def test_console_output_is_read_as_ec2_sends_it():
    import base64

    from runctl.providers.aws import _command_lines, _console_text, _new_lines

    text = "[runctl:L1] start\nline 1\n[runctl:L1] exit 0\n"
    assert _console_text(base64.b64encode(text.encode()).decode()) == text
    assert _console_text(text) == text  # moto sends the text itself
    assert _command_lines(text.split("\n"), "L1") == (["line 1"], 0)
    # Another launch's markers are hidden and say nothing about this one's end.
    assert _command_lines(["[runctl:L2] start", "x", "[runctl:L2] exit 1"], "L1") == (["x"], None)
    # The console is a moving tail: only what follows what was shown is new.
    assert _new_lines(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"]
    assert _new_lines([], ["a"]) == ["a"]
    assert _new_lines(["a", "b"], ["a", "b"]) == []


def test_the_user_data_runs_the_command_and_keeps_the_ttl_across_boots(tmp_path):
    import os
    import time

    from .conftest import run_user_data

    s = LaunchSpec(command=["sh", "-c", 'echo "lr=$LR in $(pwd)"; exit 4'], env={"LR": "1e-3"},
                   workdir="/tmp", ttl=150, launch_id="boot1")
    cloud = tmp_path / "cloud"
    (cloud / "scripts" / "per-boot").mkdir(parents=True)
    console, calls = run_user_data(user_data(s), tmp_path / "first", cloud_dir=cloud)
    assert "[runctl:boot1] start\nlr=1e-3 in /tmp\n[runctl:boot1] exit 4\n" in console
    assert calls == ["shutdown -P +3", "poweroff"]  # 150 s rounds up to 3 minutes
    # A later boot (after stop and start) re-arms what is left of the deadline.
    rearm = cloud / "scripts" / "per-boot" / "runctl-ttl.sh"
    assert os.access(rearm, os.X_OK)
    _, calls = run_user_data(f"sh {rearm}", tmp_path / "second")
    assert calls == ["shutdown -P +3"]
    text = rearm.read_text()
    deadline = int(text.split("left=$(( ")[1].split(" ")[0])
    assert abs(deadline - (time.time() + 150)) < 60
    rearm.write_text(text.replace(str(deadline), str(deadline - 1000)))  # past it
    _, calls = run_user_data(f"sh {rearm}", tmp_path / "third")
    assert calls == ["poweroff"]
    # (A key is only read here, never installed: that would touch this machine's users.)
    keyed = user_data(LaunchSpec(command=["true"], ssh_public_key="ssh-ed25519 AAAAC3Nza me@x"))
    assert "/home/ubuntu" in keyed and "'ssh-ed25519 AAAAC3Nza me@x'" in keyed


@pytest.mark.anyio
async def test_launching_an_offer_uses_its_type_price_and_zone_name(provider, moto):
    from runctl.config import load_settings

    spot = [o for o in await provider.offers(OfferQuery(gpu="L4", count=1, spot=True))
            if o.instance_type == "g6.xlarge" and o.zone == "us-east-1c"]
    r = await provider.launch(spec(instance_type=None, offer=spot[0], spot=True))
    assert moto.run_calls[-1]["placement"] == "us-east-1c"
    assert r.price is not None and r.price.spot
    # The snapshot's offers name zones by id (use1-az2), which differ per account: not used.
    snap = catalog.load_snapshot(load_settings(), warn=False)
    od = next(o for o in snap.offers if o.provider == "aws" and o.instance_type == "g6.xlarge"
              and o.region == REGION and not o.spot)
    assert od.zone and not od.zone.startswith(REGION)
    await provider.launch(spec(instance_type=None, offer=od))
    assert moto.run_calls[-1]["placement"] is None


@pytest.mark.anyio
async def test_multi_node_launches_are_refused(provider, moto):
    import attrs

    @attrs.frozen(kw_only=True)
    class WithNodes(LaunchSpec):  # LaunchSpec.nodes is being added to the core
        nodes: int = 1

    with pytest.raises(UnsupportedOperationError):
        await provider.launch(WithNodes(command=["true"], instance_type="g6.xlarge", nodes=2))
    assert moto.run_calls == []


@pytest.mark.anyio
async def test_following_logs_reads_the_console_as_it_grows(make_provider, moto):
    s = spec()
    full = (f"[runctl:{s.launch_id}] start\nstep 1\nstep 2 (half) done\nstep 3\n"
            f"[runctl:{s.launch_id}] exit 0\n")
    # What the console shows at each read: a line still being written, then the rest.
    shown = [full[:full.index("step 2") + len("step 2 (half")], full]
    polls: list[float] = []
    ids: list[str] = []

    async def the_machine_prints_meanwhile(seconds: float) -> None:
        polls.append(seconds)
        moto.consoles[ids[0]] = shown[min(len(polls), len(shown) - 1)]

    provider = make_provider(sleep=the_machine_prints_meanwhile, log_poll=5.0)
    r = await provider.launch(s)
    ids.append(r.id)
    moto.consoles[r.id] = shown[0]
    got = [line async for line in provider.logs(r.id, follow=True)]
    assert got == ["step 1", "step 2 (half) done", "step 3"]
    assert polls == [5.0]
    assert (await provider.get(r.id)).exit_code == 0  # seen by the logs, remembered


@pytest.mark.anyio
async def test_instances_in_another_region_have_region_prefixed_ids(provider, moto):
    moto.publish_image("Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20260101",
                       region="us-west-2")
    r = await provider.launch(spec(region="us-west-2"))
    assert r.id.startswith("us-west-2/i-") and r.region == "us-west-2"
    assert (await provider.get(r.id)).state is S.RUNNING
    assert (await provider.terminate(r.id)).state in (S.TERMINATING, S.TERMINATED)
