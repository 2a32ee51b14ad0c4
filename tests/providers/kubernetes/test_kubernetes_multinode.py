"""Multi-node launches on Kubernetes: an Indexed Job, a headless Service, the rendezvous env."""

from __future__ import annotations

from pathlib import Path

import pytest

from runctl.errors import AuthenticationError
from runctl.models import LaunchSpec, ResourceState
from runctl.providers.kubernetes import LABEL_JOB, KubernetesProvider, job_name
from runctl.rendezvous import rendezvous_env

from .cluster import FakeCluster, job_condition, running, terminated
from .conftest import make_config

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

NAME = job_name("mn1")
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def two_nodes(**kw: object) -> LaunchSpec:
    base: dict[str, object] = dict(
        command=["torchrun", "--nnodes=2", "train.py"], provider="kubernetes", launch_id="mn1",
        nodes=2, gpu="H100", gpu_count=8, env={"EPOCHS": "3"},
    )
    base.update(kw)
    return LaunchSpec(**base)  # type: ignore[arg-type]


def resolved_env(container: dict, pod: dict) -> dict[str, str]:
    """A container's environment as the kubelet resolves it for ``pod``."""
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            key = path.removeprefix("metadata.annotations['").removesuffix("']")
            env[item["name"]] = pod["metadata"]["annotations"][key]
    return env


async def test_two_nodes_are_an_indexed_job_with_a_headless_service_and_the_rendezvous_env(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", H100)
    cluster.add_node("gpu-2", H100)
    res = await provider.launch(two_nodes())
    assert res.nodes == 2 and res.gpu_count == 16
    addresses = (f"{NAME}-0.{NAME}", f"{NAME}-1.{NAME}")
    assert res.addresses == addresses and res.address == addresses[0]
    job = cluster.jobs()[NAME]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert job["spec"]["backoffLimit"] == 0  # any node failing fails the run
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["subdomain"] == NAME
    service = cluster.services()[NAME]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {LABEL_JOB: NAME}
    assert service["spec"]["ports"][0]["port"] == 29500
    # Each pod, once the Job controller made it, sees exactly runctl's rendezvous env.
    pods = cluster.run_pods(NAME, phase="Running")
    (container,) = pod_spec["containers"]
    for rank, pod_name in enumerate(pods):
        env = resolved_env(container, cluster.pods()[pod_name])
        assert {k: env[k] for k in rendezvous_env(addresses, rank)} == rendezvous_env(
            addresses, rank
        )
        assert env["EPOCHS"] == "3"
        assert cluster.pods()[pod_name]["spec"]["hostname"] == f"{NAME}-{rank}"


async def test_the_rendezvous_port_can_be_chosen(provider: KubernetesProvider, cluster) -> None:
    cluster.add_node("gpu-1", H100)
    await provider.launch(two_nodes(options={"master_port": "23456"}))
    env = cluster.jobs()[NAME]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MASTER_PORT", "value": "23456"} in env
    assert cluster.services()[NAME]["spec"]["ports"][0]["port"] == 23456


async def test_a_multi_node_job_runs_when_every_node_runs_and_fails_with_a_nodes_exit_code(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", H100)
    res = await provider.launch(two_nodes())
    rank0, rank1 = cluster.run_pods(NAME, phase="Pending")
    cluster.set_pod_status(rank0, running())
    got = await provider.get(res.id)
    assert got.state is ResourceState.PROVISIONING and got.detail == "1 of 2 nodes running"
    cluster.set_pod_status(rank1, running())
    assert (await provider.get(res.id)).state is ResourceState.RUNNING
    cluster.set_pod_status(rank1, terminated(2))
    cluster.set_job_status(NAME, job_condition("Failed", "BackoffLimitExceeded"))
    got = await provider.get(res.id)
    assert got.state is ResourceState.FAILED and got.exit_code == 2
    assert "node 1" in (got.detail or "")


async def test_logs_of_all_nodes_are_prefixed_with_the_rank_or_one_nodes_alone(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", H100)
    res = await provider.launch(two_nodes())
    for rank, pod in enumerate(cluster.run_pods(NAME, phase="Running")):
        cluster.set_pod_status(pod, terminated(0))
        cluster.set_log(pod, f"rank {rank} step 1\nrank {rank} step 2\n", stamp=True)
    lines = [line async for line in provider.logs(res.id)]
    assert lines == [
        "[node 0] rank 0 step 1", "[node 0] rank 0 step 2",
        "[node 1] rank 1 step 1", "[node 1] rank 1 step 2",
    ]
    assert [line async for line in provider.logs(res.id, node=1)] == [
        "rank 1 step 1", "rank 1 step 2",
    ]
    followed = sorted([line async for line in provider.logs(res.id, follow=True)])
    assert followed == sorted(lines)
    with pytest.raises(ValueError, match="node"):
        [line async for line in provider.logs(res.id, node=2)]


async def test_terminate_removes_the_job_and_its_service(provider: KubernetesProvider, cluster) -> None:
    cluster.add_node("gpu-1", H100)
    res = await provider.launch(two_nodes())
    done = await provider.terminate(res.id)
    assert done.state is ResourceState.TERMINATED
    assert cluster.jobs() == {} and cluster.services() == {}
    assert len(cluster.requests("DELETE", f"/services/{NAME}")) == 1


async def test_a_service_that_cannot_be_created_takes_the_job_back(
    kubeconfig: Path, tmp_path: Path, cluster: FakeCluster
) -> None:
    cluster.add_node("gpu-1", H100)

    def forbid() -> None:
        cluster.km["post /api/v1/namespaces/team/services"] << 403 << {
            "kind": "Status", "code": 403,
            "message": 'services is forbidden: User "ci" cannot create resource "services"'}

    cluster._loop.run(forbid)
    p = KubernetesProvider(make_config("kubernetes", kubeconfig, tmp_path, image="x"))
    try:
        with pytest.raises(AuthenticationError, match="forbidden"):
            await p.launch(two_nodes())
    finally:
        await p.aclose()
    assert cluster.jobs() == {}  # nothing left running without its Service


async def test_a_launch_cancelled_while_its_service_is_created_leaves_nothing_behind(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    import asyncio
    import threading

    import anyio
    import anyio.to_thread

    from runctl import AsyncClient

    cluster.add_node("gpu-1", H100)
    release = cluster._loop.run(asyncio.Event)
    arrived = threading.Event()

    def hold_services() -> None:
        async def held(request):  # type: ignore[no-untyped-def]
            arrived.set()
            await release.wait()
            return None  # then kmock answers as usual

        cluster.km["post /api/v1/namespaces/team/services"] << held

    cluster._loop.run(hold_services)
    async with AsyncClient(providers={"kubernetes": provider}) as rc:
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def launch() -> None:
                with scope:
                    await rc.launch(two_nodes())

            tg.start_soon(launch)
            assert await anyio.to_thread.run_sync(arrived.wait, 20)
            scope.cancel()  # the launch waits in the Service's create, in a worker thread
            await anyio.sleep(0.05)
            cluster._loop.loop.call_soon_threadsafe(release.set)
        assert scope.cancelled_caught
        record = rc.ledger.get("mn1")
        assert record is not None and "cancelled" in (record.note or "")
    assert cluster.jobs() == {} and cluster.services() == {}


async def test_the_service_is_owned_by_the_job_when_the_server_gives_its_uid(
    provider: KubernetesProvider, cluster: FakeCluster
) -> None:
    # kmock fills in no uid; a real API server does: answer the create with one.
    def with_uid() -> None:
        cluster.km["post /apis/batch/v1/namespaces/team/jobs"] << 201 << (
            lambda request: {**request.data,
                             "metadata": {**request.data["metadata"], "uid": "0f1e-uid"}}
        )

    cluster.add_node("gpu-1", H100)
    cluster._loop.run(with_uid)
    await provider.launch(two_nodes())
    owners = cluster.services()[NAME]["metadata"]["ownerReferences"]
    assert owners == [{"apiVersion": "batch/v1", "kind": "Job", "name": NAME, "uid": "0f1e-uid"}]
