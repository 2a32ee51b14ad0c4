"""The Kubernetes provider against an emulated API server (kmock), through the official client."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from runctl.errors import (
    AuthenticationError,
    CapacityError,
    ConfigurationError,
    NotFoundError,
    UnsupportedOperationError,
    ValidationError,
)
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.providers.kubernetes import (
    LABEL_JOB,
    LABEL_LAUNCH_ID,
    LABEL_MANAGED_BY,
    KubernetesProvider,
    job_name,
)

from .cluster import (
    TOKEN,
    FakeCluster,
    job_condition,
    running,
    terminated,
    unschedulable,
    waiting,
)
from .conftest import FakeClock, make_config

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

GFD_H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8",
            "node.kubernetes.io/instance-type": "p5.48xlarge",
            "topology.kubernetes.io/region": "us-east-1"}


def spec(**kw: object) -> LaunchSpec:
    base: dict[str, object] = dict(
        command=["python", "train.py", "--lr", "3e-4"], provider="kubernetes", launch_id="run1",
    )
    base.update(kw)
    return LaunchSpec(**base)  # type: ignore[arg-type]


def the_job(cluster: FakeCluster, launch_id: str = "run1") -> dict:
    return cluster.jobs()[job_name(launch_id)]


# --- launch -------------------------------------------------------------------------------------


async def test_a_launch_is_one_batch_job_with_the_command_env_gpus_ttl_and_labels(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", GFD_H100)
    res = await provider.launch(spec(
        gpu="H100", gpu_count=8, env={"WANDB_PROJECT": "x"}, ttl=timedelta(hours=2),
        tags={"team": "vision"}, name="big-run", workdir="/workspace",
        options={"cpu": "96", "memory": "1500Gi"}, disk_gb=500,
    ))
    assert res.id == "team/runctl-run1"  # the namespace from the kubeconfig context
    assert res.state is ResourceState.PENDING and res.launch_id == "run1"
    assert res.gpu is not None and res.gpu.name == "H100 SXM" and res.gpu_count == 8
    job = the_job(cluster)
    spec_ = job["spec"]
    assert spec_["backoffLimit"] == 0
    assert spec_["activeDeadlineSeconds"] == 7200
    assert spec_["ttlSecondsAfterFinished"] == 86400
    assert "completionMode" not in spec_  # one node: a plain Job
    pod = spec_["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["python", "train.py", "--lr", "3e-4"]  # not wrapped
    assert container["image"] == "python:3.12-slim"
    assert container["workingDir"] == "/workspace"
    assert {"name": "WANDB_PROJECT", "value": "x"} in container["env"]
    assert not any(e["name"] == "MASTER_ADDR" for e in container["env"])
    assert container["resources"]["limits"] == {
        "nvidia.com/gpu": "8", "cpu": "96", "memory": "1500Gi", "ephemeral-storage": "500Gi",
    }
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchExpressions": [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}
    ]}]
    labels = job["metadata"]["labels"]
    assert labels == {
        LABEL_MANAGED_BY: "runctl", LABEL_LAUNCH_ID: "run1", "runctl/name": "big-run",
        "runctl/ttl": "7200", "team": "vision",
    }
    assert spec_["template"]["metadata"]["labels"][LABEL_JOB] == "runctl-run1"
    tags = json.loads(job["metadata"]["annotations"]["runctl/tags"])
    assert tags["runctl-launch-id"] == "run1" and tags["team"] == "vision"
    assert cluster.services() == {}  # one node needs no Service


async def test_a_one_string_command_runs_under_sh(provider: KubernetesProvider, cluster) -> None:
    await provider.launch(spec(command="python train.py && echo done"))
    container = the_job(cluster)["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "python train.py && echo done"]
    assert "tolerations" not in the_job(cluster)["spec"]["template"]["spec"]  # no GPU asked


async def test_tags_kubernetes_cannot_hold_as_labels_stay_in_the_annotation(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    launch_id = "Run_With-Capitals_and_a_long_id_that_goes_on_and_on_and_on_for_64ch"[:64]
    res = await provider.launch(spec(launch_id=launch_id, tags={"note": "has spaces, commas"}))
    name = job_name(launch_id)
    assert len(name) <= 52 and name == res.id.split("/")[1]
    assert name != job_name(launch_id.lower())  # case is not lost in the name
    job = cluster.jobs()[name]
    assert "note" not in job["metadata"]["labels"]
    assert LABEL_LAUNCH_ID not in job["metadata"]["labels"]  # 64 characters: no label
    found = await provider.list(tags={"note": "has spaces, commas"})
    assert [r.id for r in found] == [res.id]
    assert found[0].tags["note"] == "has spaces, commas" and found[0].launch_id == launch_id


async def test_launching_again_with_the_launch_id_returns_the_same_job(
    provider: KubernetesProvider, cluster: FakeCluster, kubeconfig: Path, tmp_path: Path
) -> None:
    first = await provider.launch(spec())
    # Another process, another provider object: the name alone finds the Job.
    other = KubernetesProvider(make_config("kubernetes", kubeconfig, tmp_path, image="x"))
    try:
        again = await other.launch(spec())
    finally:
        await other.aclose()
    assert again.id == first.id
    assert len(cluster.posted("jobs")) == 1


async def test_a_create_that_meets_an_existing_job_409_returns_it(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    await provider.launch(spec())
    # The read before the create misses (another launcher is just creating it): the
    # create answers 409 and the existing Job is returned, not a second one.
    path = f"/apis/batch/v1/namespaces/team/jobs/{job_name('run1')}"
    after = len(cluster.requests())
    missed: set[int] = set()

    def first_read(request) -> bool:
        # kmock also asks this of past requests: only the next read of the Job misses.
        if request.id < after or request.method != "GET" or request.url.path != path:
            return False
        if not missed:
            missed.add(request.id)
        return request.id in missed

    def miss_once() -> None:
        cluster.km[first_read] << 404 << {"kind": "Status", "code": 404, "message": "not found"}

    cluster._loop.run(miss_once)
    again = await provider.launch(spec())
    assert again.id == "team/runctl-run1"
    posts = cluster.requests("POST", "/jobs")
    assert len(posts) == 2 and len(cluster.jobs()) == 1


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (dict(image=None), "image"),
        (dict(options={"cpu": "lots"}), "options.cpu"),
        (dict(options={"node_selector": "no-equals"}), "options.node_selector"),
        (dict(options={"namespace": "Bad_NS"}), "options.namespace"),
        (dict(nodes=2, options={"master_port": "70000"}), "options.master_port"),
        (dict(instance_type="not a label!"), "instance_type"),
    ],
)
async def test_bad_input_is_a_validation_error_naming_the_field(
    kubeconfig: Path, tmp_path: Path, cluster: FakeCluster, kw: dict, field: str
) -> None:
    p = KubernetesProvider(make_config("kubernetes", kubeconfig, tmp_path))  # no image setting
    try:
        with pytest.raises(ValidationError) as e:
            await p.launch(spec(**({"image": "python:3.12"} | kw)))
    finally:
        await p.aclose()
    assert e.value.field == field
    assert cluster.posted("jobs") == []


async def test_spot_and_ssh_are_refused_not_ignored(provider: KubernetesProvider) -> None:
    with pytest.raises(UnsupportedOperationError):
        await provider.launch(spec(spot=True))
    with pytest.raises(UnsupportedOperationError):
        await provider.launch(spec(ssh_public_key="ssh-ed25519 AAAA test"))


async def test_a_gpu_no_node_has_is_a_capacity_error(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("a100", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"})
    with pytest.raises(CapacityError, match="B200"):
        await provider.launch(spec(gpu="B200"))
    assert cluster.posted("jobs") == []


# --- GPU selection by every vendor's labels -----------------------------------------------------

VENDOR_NODES = {
    "gfd": ({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "nvidia.com/gpu.product",
            "NVIDIA-H100-80GB-HBM3"),
    "gke": ({"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
            "cloud.google.com/gke-accelerator", "nvidia-h100-80gb"),
    "coreweave": ({"gpu.nvidia.com/class": "H100_NVLINK_80GB"}, "gpu.nvidia.com/class",
                  "H100_NVLINK_80GB"),
    "karpenter": ({"karpenter.k8s.aws/instance-gpu-name": "h100",
                   "karpenter.k8s.aws/instance-gpu-memory": "81920"},
                  "karpenter.k8s.aws/instance-gpu-name", "h100"),
    "instance-type": ({"node.kubernetes.io/instance-type": "p5.48xlarge"},
                      "node.kubernetes.io/instance-type", "p5.48xlarge"),
}
#: Nodes that must never be chosen for "H100": a GH200 ("H100" is in its name), an
#: A100, a PCIe H100 for an SXM ask, and a CPU node.
DISTRACTORS = {
    "gh200": {"nvidia.com/gpu.product": "NVIDIA-GH200-480GB"},
    "a100": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
    "cpu": {"node.kubernetes.io/instance-type": "m5.large"},
}


@pytest.mark.parametrize("vendor", sorted(VENDOR_NODES))
async def test_gpus_are_chosen_by_each_vendors_label_exactly(
    provider: KubernetesProvider, cluster: FakeCluster, vendor: str
) -> None:
    labels, key, value = VENDOR_NODES[vendor]
    cluster.add_node("h100-node", labels)
    for name, other in DISTRACTORS.items():
        cluster.add_node(name, other, gpus=0 if name == "cpu" else 8)
    res = await provider.launch(spec(gpu="H100", gpu_count=8))
    pod = the_job(cluster)["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]
    assert res.gpu is not None and res.gpu.model == "H100"
    offers = await provider.offers(OfferQuery(gpu="H100"))
    assert [o.gpu.model for o in offers if o.gpu] == ["H100"]
    assert f"label {key}={value}" in (offers[0].note or "")


async def test_a_variant_ask_does_not_match_another_variant(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("pcie", {"nvidia.com/gpu.product": "NVIDIA-H100-PCIe"}, gpus=2)
    cluster.add_node("sxm", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    await provider.launch(spec(gpu="H100-SXM", gpu_count=2))
    terms = the_job(cluster)["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["NVIDIA-H100-80GB-HBM3"]


async def test_nodes_with_fewer_gpus_than_asked_are_not_chosen(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("small", {"cloud.google.com/gke-accelerator": "nvidia-l4"}, gpus=1)
    cluster.add_node("big", {"nvidia.com/gpu.product": "NVIDIA-L4"}, gpus=8)
    await provider.launch(spec(gpu="L4", gpu_count=4))
    terms = the_job(cluster)["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L4"]}]}]


# --- offers -------------------------------------------------------------------------------------


async def test_offers_are_the_clusters_gpu_nodes_with_free_counts(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", GFD_H100)
    cluster.add_node("gpu-2", GFD_H100)
    cluster.add_node("cpu-1", {"node.kubernetes.io/instance-type": "m5.large"}, gpus=0)
    await provider.launch(spec(gpu="H100", gpu_count=8))
    cluster.run_pods(job_name("run1"), phase="Running", node="gpu-1")
    offers = await provider.offers(OfferQuery())
    (offer,) = offers
    assert offer.provider == "kubernetes" and offer.instance_type == "p5.48xlarge"
    assert offer.gpu_count == 8 and offer.gpu is not None and offer.gpu.name == "H100 SXM"
    assert offer.price.per_hour.amount == 0 and offer.price.source == "static"
    assert offer.available is True  # gpu-2 is free
    assert "1 with 8 free, 8 of 16 GPUs free" in (offer.note or "")
    assert offer.vcpus == 128 and offer.region == "us-east-1"
    # Another pod holding gpu-2's GPUs (the Job's, replaced, say).
    cluster.run_pods(job_name("run1"), phase="Running", node="gpu-2", suffix="fghij")
    (busy,) = await provider.offers(OfferQuery())
    assert busy.available is False
    # The field selector sent (kmock ignores it; runctl drops ended pods itself).
    (listing,) = [r for r in cluster.requests("GET", "/api/v1/pods")][-1:]
    assert listing.params["fieldSelector"] == "status.phase!=Succeeded,status.phase!=Failed"


async def test_offers_are_priced_at_a_configured_gpu_hour_rate(
    kubeconfig: Path, tmp_path: Path, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", GFD_H100)
    p = KubernetesProvider(make_config("kubernetes", kubeconfig, tmp_path, gpu_hour_rate="2.5"))
    try:
        (offer,) = await p.offers(OfferQuery(count=4))
        assert offer.gpu_count == 4 and offer.price.per_hour.amount == 10
        assert await p.offers(OfferQuery(max_per_gpu_hour="2")) == []
    finally:
        await p.aclose()


# --- states -------------------------------------------------------------------------------------


async def test_states_follow_the_pods_and_the_jobs_conditions(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    res = await provider.launch(spec())
    name = job_name("run1")
    assert (await provider.get(res.id)).raw_state == "Pending"
    (pod,) = cluster.run_pods(name)
    cluster.set_pod_status(pod, unschedulable("0/3 nodes are available: 3 Insufficient nvidia.com/gpu."))
    got = await provider.get(res.id)
    assert got.state is ResourceState.PENDING and got.raw_state == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in (got.detail or "")
    cluster.set_pod_status(pod, waiting("ContainerCreating"))
    assert (await provider.get(res.id)).state is ResourceState.PROVISIONING
    cluster.set_pod_status(pod, running())
    got = await provider.get(res.id)
    assert got.state is ResourceState.RUNNING and got.address == "10.0.0.7"
    cluster.set_pod_status(pod, terminated(0))
    cluster.set_job_status(name, job_condition("Complete"))
    got = await provider.get(res.id)
    assert got.state is ResourceState.SUCCEEDED and got.exit_code == 0
    assert got.ended_at is not None
    # The selector runctl sent for the Job's pods (kmock ignores it; runctl filters too).
    assert cluster.requests("GET", "/pods")[-1].params["labelSelector"] == f"{LABEL_JOB}={name}"


@pytest.mark.parametrize("code", [1, 3, 137])
async def test_a_failed_command_is_failed_with_its_exit_code(
    provider: KubernetesProvider, cluster: FakeCluster, code: int
) -> None:
    res = await provider.launch(spec())
    (pod,) = cluster.run_pods(job_name("run1"), phase="Running")
    cluster.set_pod_status(pod, terminated(code))
    got = await provider.get(res.id)  # the pod failed; the Job controller has not caught up
    assert got.state is ResourceState.FAILED and got.exit_code == code
    cluster.set_job_status(job_name("run1"), job_condition("Failed", "BackoffLimitExceeded"))
    got = await provider.get(res.id)
    assert got.state is ResourceState.FAILED and got.exit_code == code
    assert got.raw_state == "BackoffLimitExceeded"


async def test_the_ttl_deadline_fails_the_job(provider: KubernetesProvider, cluster) -> None:
    res = await provider.launch(spec(ttl=timedelta(minutes=30)))
    assert the_job(cluster)["spec"]["activeDeadlineSeconds"] == 1800
    cluster.set_job_status(
        job_name("run1"),
        job_condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
    )
    got = await provider.get(res.id)
    assert got.state is ResourceState.FAILED and got.raw_state == "DeadlineExceeded"
    assert "TTL" in (got.detail or "")


async def test_an_evicted_or_preempted_pod_is_preempted(provider: KubernetesProvider, cluster) -> None:
    res = await provider.launch(spec())
    (pod,) = cluster.run_pods(job_name("run1"), phase="Running")
    status = terminated(137)
    status["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                 "reason": "PreemptionByScheduler"})
    cluster.set_pod_status(pod, status)
    cluster.set_job_status(job_name("run1"), job_condition("Failed", "PodFailurePolicy"))
    got = await provider.get(res.id)
    assert got.state is ResourceState.PREEMPTED and "PreemptionByScheduler" in (got.detail or "")
    cluster.set_pod_status(pod, {"phase": "Failed", "reason": "Evicted",
                                 "message": "The node was low on resource: memory."})
    assert (await provider.get(res.id)).state is ResourceState.PREEMPTED


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
async def test_an_image_that_cannot_be_pulled_fails_after_the_grace_period(
    provider: KubernetesProvider, cluster: FakeCluster, clock: FakeClock, reason: str
) -> None:
    res = await provider.launch(spec(image="ghcr.io/nobody/nothing:latest"))
    (pod,) = cluster.run_pods(job_name("run1"), phase="Pending")
    cluster.set_pod_status(pod, waiting(reason, 'failed to pull "ghcr.io/nobody/nothing"'))
    got = await provider.get(res.id)
    assert got.state is ResourceState.PROVISIONING and got.raw_state == reason
    clock.advance(119)
    assert (await provider.get(res.id)).state is ResourceState.PROVISIONING
    clock.advance(2)
    got = await provider.get(res.id)
    assert got.state is ResourceState.FAILED and got.raw_state == "ImagePullFailed"
    assert reason in (got.detail or "") and "nobody/nothing" in (got.detail or "")


async def test_an_unknown_job_is_not_found(provider: KubernetesProvider, cluster) -> None:
    with pytest.raises(NotFoundError):
        await provider.get("team/runctl-nothing")
    with pytest.raises(NotFoundError):
        await provider.get("not an id")


# --- list, terminate ----------------------------------------------------------------------------


async def test_list_sends_runctls_selector_and_keeps_only_its_jobs(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    a = await provider.launch(spec(launch_id="a1", tags={"exp": "one"}))
    b = await provider.launch(spec(launch_id="b1", tags={"exp": "two"}))
    # A Job runctl did not launch: kmock returns it whatever the selector says.
    cluster._put(__import__("tests.providers.kubernetes.cluster", fromlist=["JOBS"]).JOBS, "team",
                 "theirs", {"apiVersion": "batch/v1", "kind": "Job",
                            "metadata": {"name": "theirs", "namespace": "team"},
                            "spec": {"template": {"spec": {"containers": []}}}})
    assert sorted(r.id for r in await provider.list()) == sorted([a.id, b.id])
    assert [r.id for r in await provider.list(tags={"exp": "two"})] == [b.id]
    selectors = [r.params.get("labelSelector") for r in cluster.requests("GET", "/jobs")]
    assert selectors[-1] == "app.kubernetes.io/managed-by=runctl,exp=two"


async def test_terminate_deletes_the_job_in_the_foreground_and_is_idempotent(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    res = await provider.launch(spec())
    cluster.run_pods(job_name("run1"), phase="Running")
    done = await provider.terminate(res.id)
    assert done.state is ResourceState.TERMINATED and done.launch_id == "run1"
    (delete,) = cluster.requests("DELETE", "/jobs/")
    assert delete.params["propagationPolicy"] == "Foreground"
    assert cluster.jobs() == {}
    again = await provider.terminate(res.id)
    assert again.state is ResourceState.TERMINATED
    with pytest.raises(NotFoundError):
        await provider.get(res.id)


async def test_terminate_waits_while_finalizers_hold_the_job(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    res = await provider.launch(spec())
    job = the_job(cluster)
    job["metadata"]["finalizers"] = ["foregroundDeletion"]
    from .cluster import JOBS

    cluster._put(JOBS, "team", job_name("run1"), job)
    done = await provider.terminate(res.id)  # kmock keeps it (finalizer): never gone
    assert done.state is ResourceState.TERMINATING
    assert (await provider.get(res.id)).state is ResourceState.TERMINATING


# --- logs ---------------------------------------------------------------------------------------


async def test_logs_of_one_pod(provider: KubernetesProvider, cluster: FakeCluster) -> None:
    res = await provider.launch(spec())
    (pod,) = cluster.run_pods(job_name("run1"), phase="Running")
    cluster.set_pod_status(pod, terminated(0))
    cluster.set_log(pod, "epoch 0\nepoch 1\n")
    assert [line async for line in provider.logs(res.id)] == ["epoch 0", "epoch 1"]


async def test_followed_logs_reconnect_and_show_each_line_once(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    res = await provider.launch(spec())
    (pod,) = cluster.run_pods(job_name("run1"), phase="Running")
    cluster.set_pod_status(pod, running())
    # What the API server sends with timestamps=true; the stream ends while the pod
    # runs (a dropped connection), and the next one repeats the lines since then.
    cluster.set_log(pod, "2026-12-01T10:00:00.5Z epoch 0\n2026-12-01T10:00:01Z epoch 1\n")
    seen: list[str] = []
    async for line in provider.logs(res.id, follow=True):
        seen.append(line)
        if len(seen) == 2:
            cluster.set_pod_status(pod, terminated(0))
            cluster.set_log(pod, "2026-12-01T10:00:01Z epoch 1\n2026-12-01T10:00:02.25Z epoch 2\n")
    assert seen == ["epoch 0", "epoch 1", "epoch 2"]
    follows = [r for r in cluster.requests("GET", f"/pods/{pod}/log")]
    assert follows[0].params == {"container": "main", "follow": "true", "timestamps": "true"}
    assert "sinceSeconds" in follows[-1].params


# --- access -------------------------------------------------------------------------------------


async def test_the_context_and_namespace_come_from_settings_or_the_kubeconfig(
    kubeconfig: Path, tmp_path: Path, cluster: FakeCluster
) -> None:
    p = KubernetesProvider(make_config("kubernetes", kubeconfig, tmp_path, image="x",
                                       context="other"))
    try:
        res = await p.launch(spec())
        assert res.id == "elsewhere/runctl-run1"
        assert "runctl-run1" in cluster.jobs("elsewhere")
        res2 = await p.launch(spec(launch_id="two", options={"namespace": "ml"}))
        assert res2.id == "ml/runctl-two"
    finally:
        await p.aclose()
    assert KubernetesProvider.check(make_config("kubernetes", kubeconfig, tmp_path)).usable


def test_without_a_kubeconfig_or_cluster_the_provider_says_why(tmp_path: Path) -> None:
    from runctl.config import ProviderConfig

    config = ProviderConfig(name="kubernetes", home=tmp_path, environ={"HOME": str(tmp_path)})
    found = KubernetesProvider.check(config)
    assert not found.usable and "KUBECONFIG" in (found.reason or "")
    incluster = ProviderConfig(name="kubernetes", home=tmp_path, environ={
        "HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert KubernetesProvider.check(incluster).reason == "in-cluster service account"


async def test_no_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    from runctl.config import ProviderConfig

    p = KubernetesProvider(ProviderConfig(name="kubernetes", home=tmp_path,
                                          environ={"HOME": str(tmp_path)}))
    with pytest.raises(ConfigurationError, match="kubeconfig"):
        await p.list()


async def test_a_refused_token_is_an_authentication_error_that_never_shows_it(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    def refuse() -> None:
        cluster.km["get /apis/batch/v1/namespaces/team/jobs"] << 401 << {
            "kind": "Status", "code": 401, "message": "Unauthorized"}

    cluster._loop.run(refuse)
    with pytest.raises(AuthenticationError) as e:
        await provider.list()
    assert e.value.status == 401
    assert TOKEN not in str(e.value) and TOKEN not in repr(e.value)
    assert TOKEN not in repr(provider)
    # The token did go to the server, as a bearer token.
    assert cluster.requests("GET", "/jobs")[-1].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_runctls_kubeconfig_setting_wins_and_kubeconfig_lists_are_merged(
    kubeconfig: Path, tmp_path: Path, cluster: FakeCluster
) -> None:
    from runctl.config import ProviderConfig

    shared = ProviderConfig(name="coreweave", home=tmp_path, settings={"image": "x"}, environ={
        "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "other-cluster"),
        "RUNCTL_COREWEAVE_KUBECONFIG": str(kubeconfig)})
    listed = ProviderConfig(name="kubernetes", home=tmp_path, settings={"image": "x"}, environ={
        "HOME": str(tmp_path), "KUBECONFIG": f"{tmp_path / 'missing'}:{kubeconfig}"})
    for config in (shared, listed):
        assert KubernetesProvider.check(config).reason == f"kubeconfig {kubeconfig}"
        p = KubernetesProvider(config)
        try:
            assert (await p.launch(spec(launch_id=config.name))).id.startswith("team/")
        finally:
            await p.aclose()


async def test_an_offer_is_launched_on_exactly_its_kind_of_node(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", GFD_H100)
    # A node without an instance-type label: the offer names it by its GPU label.
    cluster.add_node("bare", {"cloud.google.com/gke-accelerator": "nvidia-l4"}, gpus=1)
    offers = {o.gpu.model: o for o in await provider.offers(OfferQuery()) if o.gpu}
    await provider.launch(spec(launch_id="h", offer=offers["H100"]))
    await provider.launch(spec(launch_id="l", offer=offers["L4"]))
    h = cluster.jobs()[job_name("h")]["spec"]["template"]["spec"]
    l4 = cluster.jobs()[job_name("l")]["spec"]["template"]["spec"]
    assert h["nodeSelector"] == {"node.kubernetes.io/instance-type": "p5.48xlarge"}
    assert h["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert l4["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    got = await provider.get(f"team/{job_name('l')}")
    assert got.gpu is not None and got.gpu.model == "L4" and got.gpu_count == 1


async def test_a_create_that_failed_on_the_server_side_but_was_applied_returns_the_job(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    # The API server stored the Job, then answered 500 (as with its 504 "request did
    # not complete within the allotted timeout"). kmock stores a created object before
    # any reaction answers: the launch must find the Job by its name, not fail or
    # create another.
    def stored_then_failed() -> None:
        cluster.km["post /apis/batch/v1/namespaces/team/jobs"] << 500 << {
            "kind": "Status", "code": 500, "message": "etcdserver: request timed out"}

    cluster._loop.run(stored_then_failed)
    res = await provider.launch(spec())
    assert res.id == "team/runctl-run1" and len(cluster.jobs()) == 1
    assert len(cluster.requests("POST", "/jobs")) == 1


async def test_a_server_error_on_a_create_that_did_not_happen_is_raised(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    from runctl.errors import ServerError

    from .cluster import JOBS

    def not_stored() -> None:
        async def refuse(request):  # type: ignore[no-untyped-def]
            # Undo kmock's store: this server really did not create it.
            cluster.km.objects[(JOBS, "team", request.data["metadata"]["name"])].delete()
            return {"kind": "Status", "code": 503, "message": "the server is shutting down"}

        cluster.km["post /apis/batch/v1/namespaces/team/jobs"] << 503 << refuse

    cluster._loop.run(not_stored)
    with pytest.raises(ServerError, match="shutting down") as e:
        await provider.launch(spec())
    assert e.value.status == 503
    assert cluster.jobs() == {}
