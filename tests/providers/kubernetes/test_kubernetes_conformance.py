"""The Kubernetes and CoreWeave providers pass runctl's conformance kit against kmock."""

from __future__ import annotations

import pytest

from runctl.models import LaunchSpec
from runctl.providers.coreweave import CoreWeaveProvider
from runctl.providers.kubernetes import KubernetesProvider
from runctl.testing import check_provider

from .cluster import FakeCluster

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]


async def test_kubernetes_conforms(provider: KubernetesProvider, cluster: FakeCluster) -> None:
    cluster.add_node("gpu-1", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"})
    spec = LaunchSpec(command=["python", "-c", "print(1)"], provider="kubernetes",
                      launch_id="conform01")
    report = await check_provider(provider, spec=spec, settle_timeout=5, poll=0.01)
    assert report.ok, str(report)
    # The kit launches a few resources; each launch id was created once (a retry found it).
    names = [job["metadata"]["name"] for job in cluster.posted("jobs")]
    assert names and len(names) == len(set(names))
    assert cluster.jobs() == {}  # and gone


async def test_coreweave_conforms(coreweave: CoreWeaveProvider, cluster: FakeCluster) -> None:
    cluster.add_node("g1", {"gpu.nvidia.com/class": "H100_NVLINK_80GB",
                            "ib.coreweave.cloud/fabric": "f1"})
    spec = LaunchSpec(command=["nvidia-smi"], provider="coreweave", gpu="H100", gpu_count=8,
                      nodes=2, launch_id="conform02")
    report = await check_provider(coreweave, spec=spec, settle_timeout=5, poll=0.01)
    assert report.ok, str(report)
    names = [job["metadata"]["name"] for job in cluster.posted("jobs")]
    assert names and len(names) == len(set(names))
    assert cluster.jobs() == {} and cluster.services() == {}
