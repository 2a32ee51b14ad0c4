"""CoreWeave: the Kubernetes provider with the defaults of CoreWeave Kubernetes Service (CKS).

Prerequisites
    A CKS cluster and its kubeconfig (CoreWeave Cloud console → API Access, or the
    kubeconfig of your cluster), and ``pip install 'runctl[kubernetes]'``. Everything
    of :mod:`runctl.providers.kubernetes` applies: Jobs, multi-node Indexed Jobs with a
    headless Service, states, logs, terminate. Settings live in
    ``[providers.coreweave]`` (``RUNCTL_COREWEAVE_<NAME>``): ``kubeconfig``,
    ``context``, ``namespace``, ``image``, ``gpu_hour_rate`` (overrides the published
    rates below, e.g. with a reserved-capacity contract's), ``ttl_after_finished``,
    ``image_pull_grace``.

Capabilities
    Those of the Kubernetes provider; ``live_offers`` reads the cluster's nodes.

What is CoreWeave's here
    - **Node labels.** A node's GPU is read first from ``gpu.nvidia.com/class``
      (``H100_NVLINK_80GB``, ``A100_NVLINK_80GB``, ``GH200_480GB`` ...), then
      ``nvidia.com/gpu.product``, then the CKS instance ID in
      ``node.kubernetes.io/instance-type`` (:data:`INSTANCE_TYPES`), then the other
      vendors' labels.
    - **InfiniBand.** CKS labels nodes on an InfiniBand fabric with
      ``ib.coreweave.cloud/*`` (``fabric``, ``leafgroup``, ``speed`` ...). A
      multi-node launch whose candidate nodes carry such labels asks for the RDMA
      device (``rdma/ib: 1`` in requests and limits: CoreWeave's flag that schedules
      the pod on an InfiniBand server) with the ``IPC_LOCK`` capability, and sets
      ``NCCL_IB_HCA=ibp`` and ``NCCL_SOCKET_IFNAME=eth0`` (a value in ``spec.env``
      wins), as CoreWeave's GPUDirect RDMA guide says. ``options["infiniband"]``:
      ``"auto"`` (the default: multi-node launches on InfiniBand nodes), ``"true"``
      (also single-node), ``"false"`` (never).
    - **Prices.** Offers and launches are priced at CoreWeave's published on-demand
      rates (:data:`PUBLISHED_PRICES`, per instance-hour, divided per GPU), billed per
      minute with no minimum. These figures are kept here, in the provider module,
      not in runctl's offline snapshot: the snapshot is rebuilt from a catalog that
      has no CoreWeave file. ``gpu_hour_rate`` replaces them.

Limits
    Multi-node pods are not pinned to one InfiniBand fabric or leaf group; use
    ``options["node_selector"]`` (e.g. ``ib.coreweave.cloud/fabric=<name>``) for that.
    GB200 NVL72 racks (``gb200-4x``) are not priced: runctl's GPU table has no GB200.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

from ..errors import ValidationError
from ..kit import BillingRule, gpu_matches
from ..models import Gpu, LaunchSpec
from .kubernetes import GPU_LABELS, INSTANCE_TYPE_LABEL, KubeNode, KubernetesProvider

__all__ = [
    "IB_LABEL_PREFIX",
    "INSTANCE_TYPES",
    "PRICES_OBSERVED",
    "PRICES_SOURCE",
    "PUBLISHED_PRICES",
    "CoreWeaveProvider",
]

NAME = "coreweave"
#: CoreWeave's label first, then the product label, then the CKS instance ID.
COREWEAVE_GPU_LABELS: tuple[str, ...] = (
    "gpu.nvidia.com/class",
    "nvidia.com/gpu.product",
    INSTANCE_TYPE_LABEL,
    *(label for label in GPU_LABELS
      if label not in ("gpu.nvidia.com/class", "nvidia.com/gpu.product", INSTANCE_TYPE_LABEL)),
)
#: Labels CKS puts on nodes connected to an InfiniBand fabric.
IB_LABEL_PREFIX = "ib.coreweave.cloud/"
#: The extended resource that schedules a pod on an InfiniBand server (a flag, not a count).
RDMA_RESOURCE = "rdma/ib"
IB_ENV: Mapping[str, str] = {"NCCL_IB_HCA": "ibp", "NCCL_SOCKET_IFNAME": "eth0"}

#: CKS instance IDs and the GPUs they carry (the ``gpu.nvidia.com/class`` spelling).
INSTANCE_TYPES: Mapping[str, tuple[str, int]] = {
    "gd-8xh100ib-i128": ("H100_NVLINK_80GB", 8),
    "gd-8xh200ib-i128": ("H200", 8),
    "gd-8xa100-i128": ("A100_NVLINK_80GB", 8),
    "gd-8xl40s-i128": ("L40S", 8),
    "gd-1xgh200": ("GH200_480GB", 1),
}

PRICES_SOURCE = "https://www.coreweave.com/pricing (on-demand, North America)"
#: When the published figures below were read.
PRICES_OBSERVED = datetime(2026, 9, 20, tzinfo=timezone.utc)
#: CoreWeave's published on-demand prices: ``(GPU, GPUs per instance, USD per instance-hour)``.
#: The GPU is matched with :func:`runctl.gpus.gpu_matches`. Spot prices are published
#: too but runctl does not launch spot here.
PUBLISHED_PRICES: tuple[tuple[str, int, Decimal], ...] = (
    ("B200", 8, Decimal("68.80")),  # NVIDIA HGX B200
    ("H200", 8, Decimal("50.44")),  # NVIDIA HGX H200
    ("H100 SXM", 8, Decimal("49.24")),  # NVIDIA HGX H100
    ("A100-80GB SXM", 8, Decimal("21.60")),  # NVIDIA A100 (HGX, 80 GB)
    ("L40S", 8, Decimal("18.00")),
    ("L40", 8, Decimal("10.00")),
    ("RTX PRO 6000", 8, Decimal("20.00")),  # RTX PRO 6000 Blackwell Server Edition
    ("GH200", 1, Decimal("6.50")),
)


#: How CoreWeave bills: per minute, with no minimum.
BILLING_RULE = BillingRule(
    increment=timedelta(minutes=1),
    source="https://docs.coreweave.com (Billing and charges: per minute, no minimum)",
)


class CoreWeaveProvider(KubernetesProvider):
    """CoreWeave Kubernetes Service: the Kubernetes provider with CKS's labels, IB and prices."""

    name: ClassVar[str] = NAME
    gpu_labels: ClassVar[tuple[str, ...]] = COREWEAVE_GPU_LABELS
    instance_types: ClassVar[Mapping[str, tuple[str, int]]] = INSTANCE_TYPES
    #: Billing is per minute, with no minimum (docs.coreweave.com, "Billing and charges").
    billing_rule: ClassVar[BillingRule | None] = BILLING_RULE
    billing_increment: ClassVar[timedelta] = BILLING_RULE.increment
    #: The InfiniBand choice needs the nodes a launch may land on.
    reads_nodes: ClassVar[bool] = True

    def _rate(self, gpu: Gpu | None) -> tuple[Decimal, str, datetime | None]:
        """The configured ``gpu_hour_rate``, else CoreWeave's published on-demand rate."""
        if self.config.setting("gpu_hour_rate") is not None or gpu is None:
            return super()._rate(gpu)

        for wanted, per_instance, price in PUBLISHED_PRICES:
            if gpu_matches(wanted, gpu):
                return price / per_instance, "snapshot", PRICES_OBSERVED
        return super()._rate(gpu)

    def _pod_extras(
        self, spec: LaunchSpec, nodes: Sequence[KubeNode]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, Any] | None]:
        """The RDMA device, NCCL settings and IPC_LOCK for launches on InfiniBand nodes."""
        choice = spec.options.get("infiniband", "auto").lower()
        if choice not in ("auto", "true", "false"):
            raise ValidationError(
                "options.infiniband", f"{choice!r} is not a choice", allowed="auto, true, false"
            )
        on_ib = any(any(k.startswith(IB_LABEL_PREFIX) for k in n.labels) for n in nodes)
        wanted = choice == "true" or (choice == "auto" and spec.nodes > 1 and on_ib)
        if not wanted:
            return {}, {}, None
        return (
            {RDMA_RESOURCE: "1"},
            dict(IB_ENV),
            {"capabilities": {"add": ["IPC_LOCK"]}},
        )
