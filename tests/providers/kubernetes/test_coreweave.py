"""The CoreWeave preset: CKS labels and instance IDs, InfiniBand, CoreWeave's published prices."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from runctl.errors import ValidationError
from runctl.models import LaunchSpec, OfferQuery
from runctl.providers.coreweave import PRICES_OBSERVED, CoreWeaveProvider
from runctl.providers.kubernetes import job_name

from .cluster import FakeCluster
from .conftest import make_config

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

#: A CKS HGX H100 node on an InfiniBand fabric, labelled as CKS labels them.
CKS_H100_IB = {
    "gpu.nvidia.com/class": "H100_NVLINK_80GB",
    "gpu.nvidia.com/model": "H100_NVLINK_80GB",
    "node.kubernetes.io/instance-type": "gd-8xh100ib-i128",
    "ib.coreweave.cloud/fabric": "us-east-04a-ib-1",
    "ib.coreweave.cloud/leafgroup": "3",
    "ib.coreweave.cloud/speed": "400G",
    "topology.kubernetes.io/region": "US-EAST-04",
}
CKS_L40S = {"gpu.nvidia.com/class": "L40S", "node.kubernetes.io/instance-type": "gd-8xl40s-i128"}


def spec(**kw: object) -> LaunchSpec:
    base: dict[str, object] = dict(
        command=["torchrun", "train.py"], provider="coreweave", launch_id="cw1", gpu="H100",
        gpu_count=8,
    )
    base.update(kw)
    return LaunchSpec(**base)  # type: ignore[arg-type]


def container(cluster: FakeCluster, launch_id: str = "cw1") -> dict:
    return cluster.jobs()[job_name(launch_id)]["spec"]["template"]["spec"]["containers"][0]


async def test_a_multi_node_launch_on_infiniband_nodes_asks_for_rdma_and_sets_nccl(
    coreweave: CoreWeaveProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("g1", CKS_H100_IB)
    cluster.add_node("g2", CKS_H100_IB)
    cluster.add_node("l40s", CKS_L40S)
    await coreweave.launch(spec(nodes=2, env={"NCCL_DEBUG": "INFO"}))
    c = container(cluster)
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "8", "rdma/ib": "1"}
    assert c["resources"]["requests"] == {"rdma/ib": "1"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["NCCL_IB_HCA"] == "ibp" and env["NCCL_SOCKET_IFNAME"] == "eth0"
    assert env["NCCL_DEBUG"] == "INFO" and env["WORLD_SIZE"] == "2"
    assert c["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}
    pod = cluster.jobs()[job_name("cw1")]["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    # CoreWeave's own label is read first.
    assert terms == [{"matchExpressions": [
        {"key": "gpu.nvidia.com/class", "operator": "In", "values": ["H100_NVLINK_80GB"]}]}]


async def test_the_users_nccl_settings_win(coreweave: CoreWeaveProvider, cluster) -> None:
    cluster.add_node("g1", CKS_H100_IB)
    await coreweave.launch(spec(nodes=2, env={"NCCL_SOCKET_IFNAME": "net1"}))
    env = [e for e in container(cluster)["env"] if e["name"] == "NCCL_SOCKET_IFNAME"]
    assert env == [{"name": "NCCL_SOCKET_IFNAME", "value": "net1"}]


@pytest.mark.parametrize(
    ("nodes", "option", "labels", "rdma"),
    [
        (1, None, CKS_H100_IB, False),  # one node: NVLink inside the node, no IB needed
        (1, "true", CKS_H100_IB, True),  # asked for
        (2, "false", CKS_H100_IB, False),  # refused
        (2, None, {k: v for k, v in CKS_H100_IB.items() if not k.startswith("ib.")}, False),
    ],
)
async def test_infiniband_is_asked_for_only_where_it_helps_or_is_wanted(
    coreweave: CoreWeaveProvider, cluster: FakeCluster, nodes: int, option: str | None,
    labels: dict, rdma: bool,
) -> None:
    cluster.add_node("g1", labels)
    options = {"infiniband": option} if option else {}
    await coreweave.launch(spec(nodes=nodes, options=options))
    c = container(cluster)
    assert ("rdma/ib" in c["resources"]["limits"]) is rdma
    assert any(e["name"] == "NCCL_IB_HCA" for e in c["env"]) is rdma


async def test_a_bad_infiniband_choice_is_a_validation_error(
    coreweave: CoreWeaveProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("g1", CKS_H100_IB)
    with pytest.raises(ValidationError) as e:
        await coreweave.launch(spec(options={"infiniband": "maybe"}))
    assert e.value.field == "options.infiniband"


async def test_offers_carry_coreweaves_published_prices_with_their_date(
    coreweave: CoreWeaveProvider, cluster: FakeCluster
) -> None:
    cluster.add_node("g1", CKS_H100_IB)
    # A node known by its CKS instance ID alone.
    cluster.add_node("gh", {"node.kubernetes.io/instance-type": "gd-1xgh200"}, gpus=1)
    offers = {o.instance_type: o for o in await coreweave.offers(OfferQuery())}
    h100 = offers["gd-8xh100ib-i128"]
    assert h100.gpu is not None and h100.gpu.name == "H100 SXM" and h100.gpu_count == 8
    assert h100.price.per_hour.amount == Decimal("49.24")
    assert h100.price.source == "snapshot" and h100.price.observed_at == PRICES_OBSERVED
    assert h100.price.billing_increment == timedelta(minutes=1)
    assert h100.region == "US-EAST-04"
    gh200 = offers["gd-1xgh200"]
    assert gh200.gpu is not None and gh200.gpu.model == "GH200"
    assert gh200.price.per_hour.amount == Decimal("6.50")
    (one,) = await coreweave.offers(OfferQuery(gpu="H100", count=1))
    assert one.price.per_hour.amount == Decimal("6.155")


async def test_a_configured_rate_replaces_the_published_one(
    kubeconfig: Path, tmp_path: Path, cluster: FakeCluster
) -> None:
    cluster.add_node("g1", CKS_H100_IB)
    p = CoreWeaveProvider(make_config("coreweave", kubeconfig, tmp_path, gpu_hour_rate="2.10"))
    try:
        (offer,) = await p.offers(OfferQuery())
    finally:
        await p.aclose()
    assert offer.price.per_hour.amount == Decimal("16.80") and offer.price.source == "static"


async def test_a_launch_is_priced_for_all_its_nodes(coreweave: CoreWeaveProvider, cluster) -> None:
    cluster.add_node("g1", CKS_H100_IB)
    res = await coreweave.launch(spec(nodes=2, image="nvcr.io/nvidia/pytorch:24.05-py3"))
    assert res.provider == "coreweave" and res.gpu_count == 16
    assert res.price is not None and res.price.per_hour.amount == Decimal("98.48")
