"""The GCP provider on the real SDKs (REST) against the fake Compute Engine / Cloud TPU server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from runctl.errors import NotFoundError, UnsupportedOperationError, ValidationError
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.providers import gcp
from runctl.providers.gcp import (
    GCE_STATES,
    QUEUED_STATES,
    TPU_STATES,
    GcpProvider,
    gce_state,
    gcp_label_key,
    gcp_label_value,
    request_id,
    startup_script,
    tpu_state,
)
from runctl.rendezvous import RENDEZVOUS_VARIABLES

from .fake_gcp import COMPUTE, FakeGcp

S = ResourceState


# --- pure parts ---------------------------------------------------------------------------------

def test_every_documented_compute_status_is_mapped_and_terminated_means_stopped() -> None:
    from google.cloud import compute_v1

    documented = {s.name for s in compute_v1.Instance.Status} - {"UNDEFINED_STATUS"}
    assert documented == set(GCE_STATES)
    assert gce_state("TERMINATED") is S.STOPPED  # GCE's stopped VM, disk kept
    assert gce_state("STAGING") is S.PROVISIONING
    assert gce_state("SOMETHING_NEW") is S.UNKNOWN


def test_every_tpu_node_and_queued_resource_state_is_mapped() -> None:
    from google.cloud import tpu_v2

    assert {s.name for s in tpu_v2.Node.State} == set(TPU_STATES)
    assert {s.name for s in tpu_v2.QueuedResourceState.State} == set(QUEUED_STATES)
    assert tpu_state("PREEMPTED") is S.PREEMPTED
    assert tpu_state("READY") is S.RUNNING
    assert QUEUED_STATES["WAITING_FOR_RESOURCES"] is S.PENDING


def test_label_rules_lowercase_63_characters_and_a_leading_letter() -> None:
    assert gcp_label_key("runctl-launch-id") == "runctl-launch-id"
    assert gcp_label_key("Team.Name/x") == "team_name_x"
    assert gcp_label_key("9lives") == "t_9lives"
    assert len(gcp_label_key("k" * 63)) == 63
    assert gcp_label_value("Alice@Example.COM") == "alice_example_com"
    assert len(gcp_label_value("v" * 255)) == 63


def test_request_id_is_a_uuid_the_same_for_a_launch_and_zone_and_different_elsewhere() -> None:
    first = request_id("abc", "us-central1-a")
    assert uuid.UUID(first).version == 5
    assert first == request_id("abc", "us-central1-a")
    assert first != request_id("abc", "us-central1-b")
    assert first != request_id("abd", "us-central1-a")


def test_the_rendezvous_environment_is_set_on_each_tpu_host_from_its_metadata(tmp_path: Path) -> None:
    # A fake `curl` answering as the metadata server of worker 2 of a 4-host slice.
    curl = tmp_path / "curl"
    curl.write_text(
        "#!/bin/sh\n"
        'for a; do last=$a; done\n'
        'case "$last" in\n'
        "  */agent-worker-number) echo 2;;\n"
        "  */worker-network-endpoints) printf 'u:w:10.0.0.1,u:w:10.0.0.2,u:w:10.0.0.3,u:w:10.0.0.4';;\n"
        "  *) exit 0;;\n"
        "esac\n"
    )
    curl.chmod(0o755)
    names = ",".join(repr(v) for v in RENDEZVOUS_VARIABLES)
    probe = [sys.executable, "-c",
             f"import json,os; print(json.dumps({{k: os.environ.get(k) for k in ({names},)}}))"]
    script = startup_script(LaunchSpec(command=probe, launch_id="slice1"), tpu_hosts=4)
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    env = json.loads(done.stdout.splitlines()[1])
    assert env == {
        "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "4", "NODE_RANK": "2",
        "RUNCTL_NUM_NODES": "4", "RUNCTL_NODE_RANK": "2",
        "RUNCTL_NODE_ADDRS": "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4",
    }
    assert done.stdout.splitlines()[2] == "[runctl:slice1] exit 0"


def test_importing_the_module_loads_no_google_sdk() -> None:
    code = "import sys, runctl, runctl.providers.gcp; print(any(m.startswith('google') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- offers -------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_offers_sum_accelerators_and_host_and_say_so(provider: GcpProvider) -> None:
    found = await provider.offers(OfferQuery(gpu="H100", count=1, spot=False, regions=("us-central1",)))
    assert found and {o.instance_type for o in found} == {"a3-highgpu-1g"}
    offer = found[0]
    # Accelerators 4.20076 + host 1.18251 (a3-highgpu-1g in us-central1), per hour.
    assert offer.per_hour.amount == Decimal("4.20076") + Decimal("1.18251")
    assert "summed" in (offer.note or "")
    assert offer.vcpus == 26 and offer.memory_gb == 234.0
    assert offer.price.billing_increment == timedelta(seconds=1)
    assert offer.price.minimum_duration == timedelta(minutes=1)
    assert all(o.gpu is not None and o.gpu.model == "H100" for o in found)


@pytest.mark.anyio
async def test_offers_without_a_host_price_say_the_vm_is_billed_on_top(provider: GcpProvider) -> None:
    t4 = await provider.offers(OfferQuery(gpu="T4", count=1, regions=("us-central1",), spot=False))
    assert {o.instance_type for o in t4} == {"n1-standard-8+nvidia-tesla-t4:1"}
    assert t4[0].per_hour.amount == Decimal("0.35")
    assert "billed on top" in (t4[0].note or "")


@pytest.mark.anyio
async def test_tpu_slices_are_offered_per_chip_with_spot_prices(provider: GcpProvider) -> None:
    found = await provider.offers(OfferQuery(gpu="TPU v5e", regions=("us-central1",)))
    slice16 = [o for o in found if o.instance_type == "v5litepod-16" and o.zone == "us-central1-a"]
    assert {o.spot for o in slice16} == {False, True}
    on_demand = next(o for o in slice16 if not o.spot)
    assert on_demand.gpu_count == 16
    assert on_demand.per_gpu_hour is not None
    assert on_demand.per_gpu_hour.amount == Decimal("19.2") / 16
    assert "4 hosts" in (on_demand.note or "")


@pytest.mark.anyio
async def test_gpu_models_match_exactly_never_by_substring(provider: GcpProvider) -> None:
    a100 = await provider.offers(OfferQuery(gpu="A100"))
    assert a100 and all(o.gpu is not None and o.gpu.model == "A100" for o in a100)
    h200 = await provider.offers(OfferQuery(gpu="H200"))
    assert h200 and {o.instance_type for o in h200} == {"a3-ultragpu-8g"}
    with pytest.raises(ValidationError, match="gpu"):
        await provider.launch(LaunchSpec(command=["true"], gpu="H10"))


# --- lifecycle ----------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_a_gpu_vm_is_inserted_as_google_documents(fake: FakeGcp, provider: GcpProvider) -> None:
    spec = LaunchSpec(
        command=["python", "train.py"], gpu="H100", gpu_count=1, spot=True, ttl=3600,
        env={"WANDB_API_KEY": "not-a-real-key"}, tags={"Team": "Vision"}, name="trainer",
        launch_id="life01", ssh_public_key="ssh-ed25519 AAAA test",
    )
    resource = await provider.launch(spec)
    assert resource.id == "us-central1-a/trainer-life01"
    assert resource.state is S.RUNNING and resource.launch_id == "life01"
    assert resource.instance_type == "a3-highgpu-1g" and resource.gpu_count == 1
    assert resource.price is not None and resource.price.spot
    assert resource.tags["Team"] == "Vision"  # exact, from metadata
    (insert,) = fake.inserts()
    assert insert.query["requestId"] == [request_id("life01", "us-central1-a")]
    body = fake.body_of(insert)
    assert body["machineType"] == "zones/us-central1-a/machineTypes/a3-highgpu-1g"
    assert body["scheduling"] == {
        "onHostMaintenance": "TERMINATE", "automaticRestart": False, "provisioningModel": "SPOT",
        "instanceTerminationAction": "DELETE", "maxRunDuration": {"seconds": "3600"},
    }
    assert body["labels"] == {
        "runctl-managed-by": "runctl", "runctl-launch-id": "life01", "runctl-name": "trainer",
        "runctl-ttl": "3600", "team": "vision",
    }
    meta = {i["key"]: i["value"] for i in body["metadata"]["items"]}
    assert "export WANDB_API_KEY=not-a-real-key" in meta["startup-script"]
    assert "[runctl:life01]" in meta["startup-script"]
    assert meta["ssh-keys"] == "runctl:ssh-ed25519 AAAA test"
    assert body["disks"][0]["initializeParams"]["sourceImage"] == gcp.DEFAULT_IMAGE
    assert "guestAccelerators" not in body  # the a3 machine type carries its GPU
    assert "not-a-real-key" not in repr(resource)


@pytest.mark.anyio
async def test_n1_machines_get_their_gpus_attached(fake: FakeGcp, provider: GcpProvider) -> None:
    await provider.launch(LaunchSpec(command=["true"], gpu="T4", gpu_count=2, launch_id="n1a"))
    body = fake.body_of(fake.inserts()[0])
    assert body["machineType"].endswith("/n1-standard-16")
    assert body["guestAccelerators"] == [
        {"acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 2}
    ]


@pytest.mark.anyio
async def test_a_retried_launch_finds_the_vm_in_any_zone(fake: FakeGcp, provider: GcpProvider) -> None:
    spec = LaunchSpec(command=["true"], gpu="L4", launch_id="again1", region="us-central1-c")
    first = await provider.launch(spec)
    again = await provider.launch(attrs_evolve(spec, region=None))
    assert again.id == first.id == "us-central1-c/runctl-again1"
    assert len(fake.inserts()) == 1


def attrs_evolve(spec: LaunchSpec, **changes: object) -> LaunchSpec:
    import attrs

    return attrs.evolve(spec, **changes)


@pytest.mark.anyio
async def test_list_is_by_labels_across_zones_every_page(fake: FakeGcp, provider: GcpProvider) -> None:
    fake.page_size = 1
    for i, zone in enumerate(["us-central1-a", "us-central1-b", "us-central1-c"]):
        await provider.launch(LaunchSpec(command=["true"], gpu="L4", region=zone,
                                         launch_id=f"list{i}", tags={"team": "a" if i else "b"}))
    every = await provider.list()
    assert sorted(r.id for r in every) == [
        "us-central1-a/runctl-list0", "us-central1-b/runctl-list1", "us-central1-c/runctl-list2",
    ]
    team_a = await provider.list(tags={"team": "a"})
    assert sorted(r.launch_id or "" for r in team_a) == ["list1", "list2"]
    agg = [r for r in fake.server.requests if r.path == COMPUTE + "/aggregated/instances"]
    assert 'labels.team = "a"' in agg[-1].query["filter"][0]


@pytest.mark.anyio
async def test_stop_start_terminate(fake: FakeGcp, provider: GcpProvider) -> None:
    r = await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="power1"))
    stopped = await provider.stop(r.id)
    assert stopped.state is S.STOPPED and stopped.raw_state == "TERMINATED"
    assert (await provider.stop(r.id)).state is S.STOPPED  # a retried stop returns it
    started = await provider.start(r.id)
    assert started.state is S.RUNNING
    gone = await provider.terminate(r.id)
    assert gone.state is S.TERMINATING
    after = await provider.get(r.id)  # the delete finished meanwhile
    assert after.state is S.TERMINATED
    assert (await provider.terminate(r.id)).state is S.TERMINATED


@pytest.mark.anyio
async def test_a_preempted_spot_vm_is_reported_preempted(fake: FakeGcp, provider: GcpProvider) -> None:
    r = await provider.launch(LaunchSpec(command=["true"], gpu="L4", spot=True, launch_id="spot1"))
    zone, name = r.id.split("/")
    fake.preempt(zone, name)
    got = await provider.get(r.id)
    assert got.state is S.PREEMPTED and got.is_terminal


@pytest.mark.anyio
async def test_unknown_and_malformed_ids_are_not_found(provider: GcpProvider) -> None:
    with pytest.raises(NotFoundError):
        await provider.get("us-central1-a/runctl-nothing")
    with pytest.raises(NotFoundError):
        await provider.get("not-an-id")


@pytest.mark.anyio
async def test_bad_input_names_the_field(provider: GcpProvider) -> None:
    with pytest.raises(ValidationError, match="image"):
        await provider.launch(LaunchSpec(command=["true"], gpu="L4", image="pytorch/pytorch:latest"))
    with pytest.raises(ValidationError, match="ttl"):
        await provider.launch(LaunchSpec(command=["true"], gpu="L4", ttl=5))
    with pytest.raises(ValidationError, match="gpu"):
        await provider.launch(LaunchSpec(command=["true"]))
    with pytest.raises(UnsupportedOperationError):
        await provider.launch(LaunchSpec(command=["true"], gpu="L4", nodes=2))


# --- TPU VMs ------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_a_single_host_tpu_vm(fake: FakeGcp, provider: GcpProvider) -> None:
    r = await provider.launch(LaunchSpec(command=["python", "train.py"], instance_type="v6e-8",
                                         spot=True, launch_id="tpu8"))
    assert r.id == "tpu/us-central1-a/runctl-tpu8" or r.id.startswith("tpu/")
    assert r.state is S.RUNNING and r.gpu is not None and r.gpu.model == "TPU v6e"
    zone = r.id.split("/")[1]
    node = fake.nodes[zone, "runctl-tpu8"]
    assert node["runtimeVersion"] == "v2-alpha-tpuv6e"
    assert node["schedulingConfig"] == {"spot": True}
    assert node["metadata"]["enable-guest-attributes"] == "TRUE"
    assert r.id in [x.id for x in await provider.list()]
    fake.write_guest_attribute(zone, "runctl-tpu8", "exit-tpu8", ["0"])
    done = await provider.get(r.id)
    assert done.state is S.SUCCEEDED and done.exit_code == 0
    with pytest.raises(UnsupportedOperationError, match="serial"):
        provider.logs(r.id)
    assert (await provider.stop(r.id)).state is S.STOPPED
    await provider.terminate(r.id)
    with pytest.raises(NotFoundError):
        await provider.get(r.id)


@pytest.mark.anyio
async def test_a_multi_host_slice_is_queued_and_has_an_address_per_host(
    fake: FakeGcp, provider: GcpProvider
) -> None:
    r = await provider.launch(LaunchSpec(command=["true"], instance_type="v5litepod-16",
                                         nodes=4, launch_id="pod16"))
    assert r.state is S.PENDING and r.raw_state == "QUEUED:ACCEPTED"
    zone = r.id.split("/")[1]
    fake.provision_queued(zone, "runctl-pod16")
    ready = await provider.get(r.id)
    assert ready.state is S.RUNNING and ready.nodes == 4 and len(ready.addresses) == 4
    assert ready.address == ready.addresses[0]
    fake.write_guest_attribute(zone, "runctl-pod16", "exit-pod16", ["0", "0", "3"])
    assert (await provider.get(r.id)).state is S.RUNNING  # one host has not ended yet
    provider._exits.forget(r.id)
    fake.write_guest_attribute(zone, "runctl-pod16", "exit-pod16", ["0", "0", "3", "0"])
    ended = await provider.get(r.id)
    assert ended.state is S.FAILED and ended.exit_code == 3
    await provider.terminate(r.id)
    with pytest.raises(NotFoundError):
        await provider.get(r.id)
    assert (zone, "runctl-pod16") not in fake.nodes  # forced: the node went with the request
    deletes = [q for q in fake.server.requests if q.method == "DELETE"]
    assert deletes[-1].query.get("force") == ["true"]
    with pytest.raises(ValidationError, match="nodes"):
        await provider.launch(LaunchSpec(command=["true"], instance_type="v5litepod-16", nodes=2))


@pytest.mark.anyio
async def test_a_pending_queued_resource_is_listed_and_a_retried_launch_returns_it(
    fake: FakeGcp, provider: GcpProvider
) -> None:
    spec = LaunchSpec(command=["true"], instance_type="v6e-8", launch_id="q1",
                      options={"queued": "true"})
    first = await provider.launch(spec)
    assert first.state is S.PENDING
    assert [r.id for r in await provider.list(tags={"runctl-launch-id": "q1"})] == [first.id]
    assert (await provider.launch(spec)).id == first.id
    assert len(fake.queued) == 1


@pytest.mark.anyio
async def test_a_project_without_the_tpu_api_still_lists_its_vms(
    fake: FakeGcp, provider: GcpProvider
) -> None:
    from tests.support.fake_http import Fault

    from .fake_gcp import TPU

    fake.server.fail("GET", TPU + "/{zone}/nodes", Fault.http(403, {"error": {
        "code": 403, "status": "PERMISSION_DENIED",
        "message": "Cloud TPU API has not been used in project 1 before or it is disabled."}}))
    r = await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="notpu"))
    assert r.launch_id == "notpu"


@pytest.mark.anyio
async def test_an_offer_from_the_raw_snapshot_launches_the_machine_carrying_it(
    fake: FakeGcp, provider: GcpProvider
) -> None:
    from runctl import catalog
    from runctl.config import load_settings

    raw = next(o for o in catalog.load_snapshot(load_settings(), warn=False).offers.select(
        OfferQuery(providers=("gcp",), gpu="H100", count=8, spot=False, regions=("us-central1",))
    ) if o.instance_type == "H100:8")
    r = await provider.launch(LaunchSpec(command=["true"], offer=raw, launch_id="raw8"))
    assert r.instance_type == "a3-highgpu-8g" and r.gpu_count == 8


@pytest.mark.anyio
async def test_after_start_only_the_new_run_counts(fake: FakeGcp, tmp_path: Path) -> None:
    from .conftest import make_provider

    with FakeGcp(run_workloads=True) as running:
        provider = make_provider(tmp_path, running.url)
        r = await provider.launch(LaunchSpec(command=["sh", "-c", "exit 4"], gpu="L4", launch_id="again"))
        assert (await provider.get(r.id)).exit_code == 4
        await provider.stop(r.id)
        started = await provider.start(r.id)  # the fake runs the script again: exit 4 again
        assert started.state is S.FAILED and started.exit_code == 4
        lines = [line async for line in provider.logs(r.id)]
        assert lines == []  # the command printed nothing; boot lines and markers are hidden
        await provider.aclose()


def test_check_says_where_the_credentials_are_without_importing_the_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runctl.config import ProviderConfig

    monkeypatch.setattr(gcp, "_on_google_cloud", lambda: False)  # wherever the tests run

    def config(**environ: str) -> ProviderConfig:
        return ProviderConfig(name="gcp", home=tmp_path, environ={"HOME": str(tmp_path), **environ})

    nothing = GcpProvider.check(config())
    assert not nothing.usable and "application-default login" in (nothing.reason or "")
    key = tmp_path / "sa.json"
    key.write_text("{}")
    found = GcpProvider.check(config(GOOGLE_APPLICATION_CREDENTIALS=str(key), GOOGLE_CLOUD_PROJECT="p"))
    assert found.usable and "GOOGLE_APPLICATION_CREDENTIALS" in (found.reason or "")
    missing = GcpProvider.check(config(GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "nope.json")))
    assert not missing.usable and "not a file" in (missing.reason or "")
    monkeypatch.setattr(gcp, "_on_google_cloud", lambda: True)
    on_gce = GcpProvider.check(config())
    assert on_gce.usable and "metadata server" in (on_gce.reason or "")


def test_instance_names_fit_gcp_rules_and_keep_launch_ids_apart() -> None:
    import re

    from runctl.providers.gcp import _resource_name

    upper = _resource_name(LaunchSpec(command=["true"], launch_id="Ab_1"))
    lower = _resource_name(LaunchSpec(command=["true"], launch_id="ab-1"))
    assert lower == "runctl-ab-1"
    assert upper != lower and upper.startswith("runctl-ab-1-")
    long = _resource_name(LaunchSpec(command=["true"], name="n" * 63, launch_id="x" * 64))
    for name in (upper, lower, long):
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name), name


@pytest.mark.anyio
async def test_serial_output_is_read_page_by_page_lines_split_across_pages_kept_whole(
    tmp_path: Path,
) -> None:
    from .conftest import make_provider

    with FakeGcp(run_workloads=True) as running:
        running.serial_page = 37  # pages end mid-line
        provider = make_provider(tmp_path, running.url)
        script = "for i in 1 2 3 4 5 6; do echo \"step $i of a long training run\"; done; exit 2"
        r = await provider.launch(LaunchSpec(command=script, gpu="L4", launch_id="pages"))
        assert [line async for line in provider.logs(r.id)] == [
            f"step {i} of a long training run" for i in range(1, 7)
        ]
        assert (await provider.get(r.id)).exit_code == 2
        serial = [q for q in running.server.requests if q.path.endswith("/serialPort")]
        assert len(serial) > 10 and {q.query["start"][0] for q in serial} >= {"0", "37", "74"}
        await provider.aclose()
