"""Kubernetes: training runs as ``batch/v1`` Jobs on any cluster, one node or many.

Prerequisites
    A cluster you can reach with kubectl, and the ``kubernetes`` extra
    (``pip install 'runctl[kubernetes]'``: the official ``kubernetes`` client). The
    client is imported the first time the provider is used, never by ``import
    runctl``, and every call of it runs in a worker thread through one bounded
    limiter, so asyncio and trio both work. GPUs need the NVIDIA device plugin
    (``nvidia.com/gpu`` in the nodes' allocatable resources).

Cluster access, as kubectl finds it
    1. ``RUNCTL_KUBERNETES_KUBECONFIG`` or ``kubeconfig`` in ``[providers.kubernetes]``,
       else ``KUBECONFIG`` (several files joined by ``:`` are merged), else
       ``~/.kube/config``;
    2. no kubeconfig file but ``KUBERNETES_SERVICE_HOST`` set: the pod's in-cluster
       service account.

    ``context`` picks a kubeconfig context (default: the current one); ``namespace``
    the namespace (default: the context's, in-cluster the pod's own, else
    ``default``). ``options["namespace"]`` of a launch overrides it for that launch.
    Tokens and certificates stay inside the client: no message, repr or log line of
    runctl shows them.

Settings (``[providers.kubernetes]`` or ``RUNCTL_KUBERNETES_<NAME>``)
    ``kubeconfig``, ``context``, ``namespace`` (above); ``image``: the image used when
    a launch names none; ``gpu_hour_rate``: USD per GPU-hour to price launches and
    offers with (default 0: a cluster's cost is not known to runctl);
    ``ttl_after_finished``: seconds an ended Job is kept before Kubernetes deletes it
    (default 86400); ``image_pull_grace``: seconds an image pull may fail before the
    launch is FAILED (default 120).

Capabilities
    ================  =====  ==========================================================
    capability        yes?   how
    ================  =====  ==========================================================
    live_offers       yes    the cluster's nodes: allocatable GPUs by product, how many free
    stop_start        no     a Job cannot be paused
    spot              no     spot node pools are selected with ``options["node_selector"]``
    logs              yes    the pods' logs; several nodes' lines are prefixed ``[node N]``
    follow_logs       yes    ``follow=True`` streams until the pods end
    multi_node        yes    an Indexed Job with a headless Service (below)
    ssh               no     use ``kubectl exec``
    ttl               yes    ``activeDeadlineSeconds`` of the Job
    idempotent_launch yes    the Job's name is derived from the launch id; a 409 returns it
    tags              yes    labels where Kubernetes allows them, all tags in an annotation
    exit_code         yes    the container's exit code, from the pods' status
    ================  =====  ==========================================================

What a launch creates
    A ``batch/v1`` Job named ``runctl-<launch id>`` (lowercased, or shortened with a
    hash when the id is not a DNS label) in the namespace: ``restartPolicy: Never``
    and ``backoffLimit: 0`` (a failed training is never silently run and billed
    again), ``activeDeadlineSeconds`` from ``spec.ttl``, ``ttlSecondsAfterFinished``,
    one container ``main`` running ``spec.image`` with ``spec.command`` as its
    ``command`` (an argv runs as given, so its exit code is the container's; a
    single string runs under ``sh -c``), ``spec.env``, ``spec.workdir`` as
    ``workingDir``, ``nvidia.com/gpu: <gpu_count>`` in its limits, ``options["cpu"]``
    and ``options["memory"]`` (Kubernetes quantities) as requests and limits,
    ``spec.disk_gb`` as ``ephemeral-storage``, and tolerations for the usual GPU
    taints (``nvidia.com/gpu``, AKS's ``sku=gpu``). ``spec.region`` becomes a
    ``topology.kubernetes.io/region`` node selector; ``options["node_selector"]``
    (``key=value,key2=value2``) and ``options["service_account"]`` are passed on.
    The resource id is ``<namespace>/<job name>``.

Multi-node (``spec.nodes = N > 1``)
    The Job is Indexed (``completionMode: Indexed``, ``parallelism = completions = N``)
    with a headless Service of the same name as its pods' ``subdomain``, so pod ``i``
    is reachable as ``<job>-<i>.<job>`` from the others. Every pod gets the
    rendezvous environment of :mod:`runctl.rendezvous`: ``MASTER_ADDR=<job>-0.<job>``,
    ``MASTER_PORT`` (29500, or ``options["master_port"]``), ``WORLD_SIZE`` and
    ``RUNCTL_NUM_NODES`` (``N``), ``RUNCTL_NODE_ADDRS`` (every pod's name in rank
    order), and ``NODE_RANK`` and ``RUNCTL_NODE_RANK`` read at run time from the pod's
    annotation ``batch.kubernetes.io/job-completion-index`` (a ``fieldRef``: the same
    value as ``JOB_COMPLETION_INDEX``), so the command itself is not wrapped. The
    Service is owned by the Job, so it goes when the Job does. Any pod failing fails
    the whole Job (``backoffLimit: 0``).

GPUs chosen by the labels clusters carry
    ``spec.gpu`` is matched against each node's labels, tried in this order, and the
    first label whose value runctl recognises names the node's GPU
    (:func:`runctl.gpus.normalize_gpu`, exact canonical matching, never substrings):
    ``nvidia.com/gpu.product`` (NVIDIA GPU Feature Discovery, e.g.
    ``NVIDIA-H100-80GB-HBM3``), ``cloud.google.com/gke-accelerator`` (GKE,
    ``nvidia-h100-80gb``), ``gpu.nvidia.com/class`` (CoreWeave, ``H100_NVLINK_80GB``),
    ``karpenter.k8s.aws/instance-gpu-name`` (Karpenter, ``h100``, with
    ``karpenter.k8s.aws/instance-gpu-memory``), ``node.kubernetes.io/instance-type``
    (``p5.48xlarge``, ``a3-highgpu-8g`` ...). The pods get a required node affinity
    for exactly the label values that matched; the offers say which label was read.

States, from the Job's conditions and its pods
    ========================================  ============  ===========================
    Kubernetes says                           runctl        detail
    ========================================  ============  ===========================
    Job ``Complete`` / ``SuccessCriteriaMet``   SUCCEEDED     exit code 0
    Job ``Failed`` / ``FailureTarget``          FAILED        the failed container's exit code
    ... reason ``DeadlineExceeded``             FAILED        the TTL was reached
    ... a pod evicted or preempted              PREEMPTED     ``DisruptionTarget``, ``Evicted``
    Job ``Suspended``                           PENDING
    being deleted                               TERMINATING
    no pods yet, or pods waiting for a node     PENDING       the scheduler's message
    pods scheduled, containers starting         PROVISIONING
    ``ErrImagePull`` / ``ImagePullBackOff``     PROVISIONING  FAILED once it lasts longer
                                                              than ``image_pull_grace``
    every pod running                           RUNNING
    ========================================  ============  ===========================

    ``raw_state`` is the condition or pod reason that decided (e.g. ``Unschedulable``).

Terminate
    Deletes the Job with ``propagationPolicy: Foreground`` (Kubernetes removes its
    pods first) and the Service, then reads the Job until it is gone (at most
    ``terminate_timeout`` seconds; still there then: TERMINATING is returned).

Limits
    Listing and offers look at one namespace's Jobs and the cluster's nodes only.
    Offers need ``list`` on nodes (and on pods in all namespaces for the free
    counts; without it, ``available`` is not said). Prices are zero unless
    ``gpu_hour_rate`` is set.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs

from ..cost import Money, Price
from ..errors import (
    AuthenticationError,
    CapacityError,
    ConfigurationError,
    ConflictError,
    MalformedResponseError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitedError,
    RunctlError,
    ServerError,
    UnsupportedOperationError,
    ValidationError,
)
from ..kit import (
    Availability,
    Fields,
    ProviderBase,
    gpu_for_instance_type,
    gpu_matches,
    normalize_gpu,
    refuse_unsupported_nodes,
)
from ..models import (
    TAG_LAUNCH_ID,
    TAG_MANAGED_BY,
    TAG_NAME,
    TAG_TTL,
    Capabilities,
    Gpu,
    LaunchSpec,
    Offer,
    OfferQuery,
    Resource,
    ResourceState,
)
from ..rendezvous import DEFAULT_PORT, rendezvous_env

if TYPE_CHECKING:
    import anyio

    from ..config import ProviderConfig

__all__ = [
    "GPU_LABELS",
    "KUBERNETES_STATES",
    "KubeJob",
    "KubePod",
    "KubernetesProvider",
    "job_name",
    "job_state",
    "node_gpu",
]

NAME = "kubernetes"
logger = logging.getLogger("runctl.providers.kubernetes")
T = TypeVar("T")

#: Node labels that name a node's GPU, in the order they are tried.
GPU_LABELS: tuple[str, ...] = (
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "gpu.nvidia.com/class",
    "karpenter.k8s.aws/instance-gpu-name",
    "node.kubernetes.io/instance-type",
)
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
#: Labels giving the memory of one GPU, in MiB, next to the product labels above.
GPU_MEMORY_LABELS = ("nvidia.com/gpu.memory", "karpenter.k8s.aws/instance-gpu-memory")
GPU_RESOURCE = "nvidia.com/gpu"
#: Taints GPU node pools commonly carry (GKE, EKS, the GPU operator; AKS's ``sku=gpu``).
GPU_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
)
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
CONTAINER = "main"

#: runctl's tag keys as Kubernetes label keys (``runctl-launch-id`` is not a
#: prefixed key; the recommended ``app.kubernetes.io/managed-by`` is used for
#: managed-by). Other tags keep their key where it is a valid label key.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_LAUNCH_ID = "runctl/launch-id"
LABEL_NAME = "runctl/name"
LABEL_TTL = "runctl/ttl"
#: On the pods of a Job: the Job's name (runctl's own, not the controller's).
LABEL_JOB = "runctl/job"
#: Every runctl tag, exactly as given, as JSON (labels cannot hold every value).
ANNOTATION_TAGS = "runctl/tags"
ANNOTATION_GPU = "runctl/gpu"
ANNOTATION_GPU_LABEL = "runctl/gpu-label"
TAG_LABELS: Mapping[str, str] = {
    TAG_MANAGED_BY: LABEL_MANAGED_BY,
    TAG_LAUNCH_ID: LABEL_LAUNCH_ID,
    TAG_NAME: LABEL_NAME,
    TAG_TTL: LABEL_TTL,
}

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUANTITY = re.compile(r"(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_SUFFIX: Mapping[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}
#: The longest Job name: pod host names are ``<job>-<index>`` and must stay DNS labels.
_MAX_JOB_NAME = 52
_IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
#: Pod ``status.reason`` values of a pod the cluster took away.
_EVICTED = frozenset(
    {"Evicted", "Preempting", "NodeLost", "Shutdown", "Terminated", "NodeShutdown"}
)


def is_label_key(key: str) -> bool:
    """Whether ``key`` is a valid Kubernetes label key (``[prefix/]name``)."""
    prefix, sep, name = key.rpartition("/")
    if sep and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (empty, or 1-63 plain characters)."""
    return value == "" or bool(_LABEL_NAME.fullmatch(value))


def job_name(launch_id: str) -> str:
    """The Job's name for a launch id: deterministic, a DNS label, at most 52 characters.

    ``runctl-<launch id>`` when the id is already lowercase letters, digits and
    ``-``; otherwise a readable part of it plus a hash of the whole id, so two ids
    that differ only in case or ``_`` never share a Job.
    """
    plain = f"runctl-{launch_id}"
    if len(plain) <= _MAX_JOB_NAME and _DNS_LABEL.fullmatch(plain):
        return plain
    digest = hashlib.sha256(launch_id.encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9-]+", "-", launch_id.lower()).strip("-")[:30].strip("-")
    return f"runctl-{readable}-{digest}" if readable else f"runctl-{digest}"


def _labels_for(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags that can be Kubernetes labels, under their label keys."""
    labels: dict[str, str] = {}
    for key, value in tags.items():
        label = TAG_LABELS.get(key, key)
        if is_label_key(label) and is_label_value(value):
            labels[label] = value
    return labels


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _quantity(text: str | None) -> Decimal | None:
    """A Kubernetes quantity (``"8"``, ``"500m"``, ``"2043484Ki"``) as a number, or ``None``."""
    if not text:
        return None
    found = _QUANTITY.fullmatch(text.strip())
    if not found:
        return None
    try:
        return Decimal(found.group(1)) * _SUFFIX[found.group(3) or ""]
    except InvalidOperation:
        return None


# --- wire models --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Condition:
    """One entry of a Job's or pod's ``status.conditions``."""

    type: str
    status: str = ""
    reason: str | None = None
    message: str | None = None
    at: datetime | None = None

    @property
    def true(self) -> bool:
        return self.status == "True"


def _conditions(f: Fields) -> list[Condition]:
    found = []
    for i, item in enumerate(f.items("conditions")):
        c = Fields(item, f"{f.what}.conditions[{i}]", provider=f.provider)
        kind = c.text("type")
        if kind:
            found.append(
                Condition(
                    type=kind, status=c.text("status") or "", reason=c.text("reason"),
                    message=c.text("message"), at=c.timestamp("lastTransitionTime"),
                )
            )
    return found


def _empty(what: str, provider: str) -> Fields:
    return Fields({}, what, provider=provider)


@attrs.frozen(kw_only=True)
class KubeJob:
    """A ``batch/v1`` Job, the parts runctl reads."""

    name: str
    namespace: str
    uid: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)
    annotations: dict[str, str] = attrs.field(factory=dict)
    created_at: datetime | None = None
    deleting: bool = False
    nodes: int = 1
    gpu_count: int = 0
    image: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    conditions: tuple[Condition, ...] = ()

    @classmethod
    def from_wire(cls, data: object, *, provider: str = NAME) -> KubeJob:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(data, "Job", provider=provider)
        meta = f.obj("metadata", required=True)
        spec = f.obj("spec") or _empty("Job.spec", provider)
        status = f.obj("status") or _empty("Job.status", provider)
        template = spec.obj("template") or _empty("Job.spec.template", provider)
        pod_spec = template.obj("spec") or _empty("Job.spec.template.spec", provider)
        containers = pod_spec.items("containers")
        gpus = 0
        image = None
        if containers:
            main = Fields(containers[0], "Job.spec.template.spec.containers[0]", provider=provider)
            image = main.text("image")
            resources = main.obj("resources") or _empty("resources", provider)
            limits = resources.str_map("limits") or resources.str_map("requests")
            gpus = int(_quantity(limits.get(GPU_RESOURCE)) or 0)
        return cls(
            name=meta.text("name", required=True),
            namespace=meta.text("namespace") or "",
            uid=meta.text("uid"),
            labels=meta.str_map("labels"),
            annotations=meta.str_map("annotations"),
            created_at=meta.timestamp("creationTimestamp"),
            deleting=meta.text("deletionTimestamp") is not None,
            nodes=spec.integer("completions") or spec.integer("parallelism") or 1,
            gpu_count=gpus,
            image=image,
            start_time=status.timestamp("startTime"),
            completion_time=status.timestamp("completionTime"),
            conditions=tuple(_conditions(status)),
        )

    @property
    def tags(self) -> dict[str, str]:
        """runctl's tags: from the annotation, else the labels read back."""
        raw = self.annotations.get(ANNOTATION_TAGS)
        if raw:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}
        back = {label: tag for tag, label in TAG_LABELS.items()}
        tags = {back.get(k, k): v for k, v in self.labels.items()}
        if tags.get(TAG_MANAGED_BY) != "runctl":
            tags.pop(TAG_MANAGED_BY, None)
        return tags

    def condition(self, *kinds: str) -> Condition | None:
        """The first true condition of one of ``kinds``."""
        for c in self.conditions:
            if c.type in kinds and c.true:
                return c
        return None


@attrs.frozen(kw_only=True)
class KubePod:
    """A pod of a Job, the parts runctl reads."""

    name: str
    labels: dict[str, str] = attrs.field(factory=dict)
    rank: int = 0
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    node_name: str | None = None
    pod_ip: str | None = None
    deleting: bool = False
    conditions: tuple[Condition, ...] = ()
    waiting_reason: str | None = None
    waiting_message: str | None = None
    running: bool = False
    exit_code: int | None = None
    terminated_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    gpu_count: int = 0

    @classmethod
    def from_wire(cls, data: object, *, provider: str = NAME) -> KubePod:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(data, "Pod", provider=provider)
        meta = f.obj("metadata", required=True)
        spec = f.obj("spec") or _empty("Pod.spec", provider)
        status = f.obj("status") or _empty("Pod.status", provider)
        labels = meta.str_map("labels")
        annotations = meta.str_map("annotations")
        index = annotations.get(COMPLETION_INDEX) or labels.get(COMPLETION_INDEX) or "0"
        waiting = running_state = terminated = None
        for i, item in enumerate(status.items("containerStatuses")):
            cs = Fields(item, f"Pod.status.containerStatuses[{i}]", provider=provider)
            if cs.text("name") not in (None, CONTAINER) and i > 0:
                continue
            state = cs.obj("state") or _empty("state", provider)
            waiting, running_state, terminated = (
                state.obj("waiting"), state.obj("running"), state.obj("terminated")
            )
            if cs.text("name") == CONTAINER:
                break
        gpus = 0
        for i, item in enumerate(spec.items("containers")):
            c = Fields(item, f"Pod.spec.containers[{i}]", provider=provider)
            resources = c.obj("resources") or _empty("resources", provider)
            limits = resources.str_map("limits") or resources.str_map("requests")
            gpus += int(_quantity(limits.get(GPU_RESOURCE)) or 0)
        return cls(
            name=meta.text("name", required=True),
            labels=labels,
            rank=int(index) if index.isdigit() else 0,
            phase=status.text("phase"),
            reason=status.text("reason"),
            message=status.text("message"),
            node_name=spec.text("nodeName"),
            pod_ip=status.text("podIP"),
            deleting=meta.text("deletionTimestamp") is not None,
            conditions=tuple(_conditions(status)),
            waiting_reason=waiting.text("reason") if waiting else None,
            waiting_message=waiting.text("message") if waiting else None,
            running=running_state is not None,
            exit_code=terminated.integer("exitCode") if terminated else None,
            terminated_reason=terminated.text("reason") if terminated else None,
            started_at=(running_state.timestamp("startedAt") if running_state else None)
            or (terminated.timestamp("startedAt") if terminated else None),
            finished_at=terminated.timestamp("finishedAt") if terminated else None,
            gpu_count=gpus,
        )

    @property
    def ended(self) -> bool:
        """The pod can run no more."""
        return self.phase in ("Succeeded", "Failed")

    @property
    def disrupted(self) -> str | None:
        """Why the cluster took the pod away (evicted, preempted ...), or ``None``."""
        for c in self.conditions:
            if c.type == "DisruptionTarget" and c.true:
                return c.reason or "DisruptionTarget"
        if self.reason in _EVICTED:
            return self.reason
        return None

    def condition(self, kind: str) -> Condition | None:
        for c in self.conditions:
            if c.type == kind:
                return c
        return None


@attrs.frozen(kw_only=True)
class KubeNode:
    """A node, the parts offers and GPU selection read."""

    name: str
    labels: dict[str, str] = attrs.field(factory=dict)
    gpus: int = 0
    vcpus: int | None = None
    memory_gb: float | None = None
    schedulable: bool = True

    @classmethod
    def from_wire(cls, data: object, *, provider: str = NAME) -> KubeNode:
        f = Fields(data, "Node", provider=provider)
        meta = f.obj("metadata", required=True)
        spec = f.obj("spec") or _empty("Node.spec", provider)
        status = f.obj("status") or _empty("Node.status", provider)
        allocatable = status.str_map("allocatable") or status.str_map("capacity")
        cpu = _quantity(allocatable.get("cpu"))
        memory = _quantity(allocatable.get("memory"))
        return cls(
            name=meta.text("name", required=True),
            labels=meta.str_map("labels"),
            gpus=int(_quantity(allocatable.get(GPU_RESOURCE)) or 0),
            vcpus=int(cpu) if cpu is not None else None,
            memory_gb=round(float(memory) / 2**30, 1) if memory is not None else None,
            schedulable=not spec.flag("unschedulable"),
        )


def _items(data: object, what: str, provider: str) -> list[Any]:
    return Fields(data, what, provider=provider).items("items")


# --- GPUs from node labels ----------------------------------------------------------------------


def node_gpu(
    labels: Mapping[str, str],
    *,
    order: Sequence[str] = GPU_LABELS,
    instance_types: Mapping[str, tuple[str, int]] | None = None,
    provider: str = NAME,
) -> tuple[Gpu, str, str] | None:
    """The GPU a node's labels name: ``(gpu, label key, label value)``, or ``None``.

    The labels of ``order`` are tried in turn; the first whose value runctl
    recognises wins. When none is recognised, the first one present is returned as
    an unknown GPU (so an offer still says what the node is).

    Args:
        labels: the node's labels.
        order: label keys to try.
        instance_types: a provider's own instance types, ``{name: (GPU name, count)}``,
            tried for ``node.kubernetes.io/instance-type`` before runctl's tables.
        provider: passed to the GPU normalisation.
    """

    memory_gb = None
    for key in GPU_MEMORY_LABELS:
        mib = _quantity(labels.get(key))
        if mib:
            memory_gb = round(float(mib) / 1024)
            break
    first: tuple[Gpu, str, str] | None = None
    for key in order:
        value = labels.get(key)
        if not value:
            continue
        gpu: Gpu | None
        if key == INSTANCE_TYPE_LABEL:
            known = (instance_types or {}).get(value)
            if known is not None:
                gpu = normalize_gpu(known[0], provider=provider, memory_gb=memory_gb)
            else:
                found = gpu_for_instance_type(value, memory_gb=memory_gb)
                gpu = found[0] if found else None
            if gpu is None:
                continue
        else:
            gpu = normalize_gpu(value, provider=provider, memory_gb=memory_gb)
        if gpu.known:
            return attrs.evolve(gpu, raw=value), key, value
        if first is None:
            first = (gpu, key, value)
    return first


# --- states -------------------------------------------------------------------------------------

_S = ResourceState
#: Every raw state :func:`job_state` reports, mapped to runctl's state. Image pull
#: failures are PROVISIONING while within the grace period, then ``ImagePullFailed``.
KUBERNETES_STATES: Mapping[str, ResourceState] = {
    "Complete": _S.SUCCEEDED,  # Job condition
    "SuccessCriteriaMet": _S.SUCCEEDED,  # Job condition (success policy)
    "Succeeded": _S.SUCCEEDED,  # every pod succeeded, condition not yet written
    "Failed": _S.FAILED,  # Job condition, or a pod failed
    "FailureTarget": _S.FAILED,  # Job condition: failing, pods being removed
    "BackoffLimitExceeded": _S.FAILED,  # Failed condition's reason
    "DeadlineExceeded": _S.FAILED,  # Failed condition's reason: activeDeadlineSeconds (TTL)
    "PodFailurePolicy": _S.FAILED,
    "ImagePullFailed": _S.FAILED,  # an image pull failed for longer than the grace period
    "Preempted": _S.PREEMPTED,  # a pod was evicted, preempted or lost with its node
    "Suspended": _S.PENDING,  # Job condition
    "Pending": _S.PENDING,  # no pods yet, or waiting to be scheduled
    "Unschedulable": _S.PENDING,  # PodScheduled=False: no node fits (the scheduler says why)
    "ContainerCreating": _S.PROVISIONING,  # scheduled; image pulling, volumes mounting
    "ErrImagePull": _S.PROVISIONING,  # within the grace period
    "ImagePullBackOff": _S.PROVISIONING,  # within the grace period
    "InvalidImageName": _S.PROVISIONING,  # within the grace period
    "Starting": _S.PROVISIONING,  # some nodes of a multi-node Job run, others do not yet
    "Running": _S.RUNNING,  # every pod's container runs
    "Terminating": _S.TERMINATING,  # the Job is being deleted
}


@attrs.frozen(kw_only=True)
class JobState:
    """What :func:`job_state` decided."""

    state: ResourceState
    raw: str
    detail: str | None = None
    exit_code: int | None = None
    ended_at: datetime | None = None


def _first_failed(pods: Sequence[KubePod]) -> KubePod | None:
    failed = [p for p in pods if p.exit_code not in (None, 0)] or [
        p for p in pods if p.phase == "Failed"
    ]
    return min(failed, key=lambda p: p.rank) if failed else None


def job_state(
    job: KubeJob, pods: Sequence[KubePod], *, pull_failed: Callable[[KubePod], bool]
) -> JobState:
    """runctl's state of a Job and its pods (see the module's table).

    Args:
        job: the Job.
        pods: its pods (any order; several per rank when one was replaced).
        pull_failed: whether a pod's image pull has failed for longer than the grace
            period (the provider measures it with its clock).
    """
    done_at = job.completion_time
    if job.deleting:
        return JobState(state=_S.TERMINATING, raw="Terminating", detail="the Job is being deleted")
    disrupted = [p for p in pods if p.disrupted]
    ok = job.condition("Complete", "SuccessCriteriaMet")
    if ok is not None:
        return JobState(state=_S.SUCCEEDED, raw=ok.type, exit_code=0, ended_at=done_at or ok.at,
                        detail="command exited with 0")
    bad = job.condition("Failed", "FailureTarget")
    failed_pod = _first_failed(pods)
    if bad is not None or (failed_pod is not None and failed_pod.phase == "Failed"):
        at = bad.at if bad is not None else failed_pod.finished_at if failed_pod else None
        if disrupted:
            pod = disrupted[0]
            why = pod.disrupted
            return JobState(
                state=_S.PREEMPTED, raw="Preempted", ended_at=at,
                detail=f"pod {pod.name} was taken away ({why}): {pod.message or ''}".rstrip(": "),
            )
        code = failed_pod.exit_code if failed_pod is not None else None
        reason = (bad.reason if bad is not None else None) or (bad.type if bad else "Failed")
        if reason == "DeadlineExceeded":
            detail = "the TTL (activeDeadlineSeconds) was reached; the Job was stopped"
        elif code is not None and failed_pod is not None:
            detail = f"command exited with {code} on node {failed_pod.rank}"
        else:
            detail = (bad.message if bad is not None else None) or "the Job failed"
        raw = reason if reason in KUBERNETES_STATES else "Failed"
        return JobState(state=_S.FAILED, raw=raw, exit_code=code, ended_at=at, detail=detail)
    if job.condition("Suspended") is not None:
        return JobState(state=_S.PENDING, raw="Suspended", detail="the Job is suspended")
    # The latest pod of each rank speaks for it.
    latest: dict[int, KubePod] = {}
    for pod in pods:
        if not pod.deleting or pod.rank not in latest:
            latest[pod.rank] = pod
    current = [latest[r] for r in sorted(latest)]
    if current and len(current) >= job.nodes and all(p.phase == "Succeeded" for p in current):
        return JobState(state=_S.SUCCEEDED, raw="Succeeded", exit_code=0, ended_at=done_at,
                        detail="command exited with 0")
    for pod in current:
        if pod.waiting_reason in _IMAGE_PULL:
            message = f"{pod.waiting_reason}: {pod.waiting_message or 'the image cannot be pulled'}"
            if pull_failed(pod):
                return JobState(state=_S.FAILED, raw="ImagePullFailed", detail=message)
            return JobState(state=_S.PROVISIONING, raw=pod.waiting_reason, detail=message)
    for pod in current:
        scheduling = pod.condition("PodScheduled")
        if scheduling is not None and scheduling.status == "False":
            why = scheduling.message or "no node fits the pod"
            raw = "Unschedulable" if scheduling.reason == "Unschedulable" else "Pending"
            return JobState(state=_S.PENDING, raw=raw, detail=f"{raw.lower()}: {why}")
    if not current:
        return JobState(state=_S.PENDING, raw="Pending", detail="waiting for the Job's pods")
    running = [p for p in current if p.phase in ("Running", "Succeeded")]
    if len(running) >= job.nodes and len(current) >= job.nodes:
        return JobState(state=_S.RUNNING, raw="Running")
    placed = [
        p for p in current
        if p.node_name or (p.condition("PodScheduled") or Condition(type="")).true
    ]
    if placed or running:
        up = len(running)
        detail = f"{up} of {job.nodes} nodes running" if job.nodes > 1 else "container starting"
        raw = "Starting" if up else "ContainerCreating"
        return JobState(state=_S.PROVISIONING, raw=raw, detail=detail)
    return JobState(state=_S.PENDING, raw="Pending", detail="waiting to be scheduled")


# --- errors -------------------------------------------------------------------------------------


def _status_message(body: object) -> str | None:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body[:300]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return None


def _map_api_error(e: Any, provider: str, what: str) -> RunctlError:
    """The runctl error for a ``kubernetes.client.ApiException`` (one table for all calls)."""
    status = int(getattr(e, "status", 0) or 0)
    headers = getattr(e, "headers", None) or {}
    request_id = headers.get("Audit-Id") if hasattr(headers, "get") else None
    message = _status_message(getattr(e, "body", None)) or str(getattr(e, "reason", "") or "")
    text = f"{what}: {message}" if message else what
    kw: dict[str, Any] = {"provider": provider, "status": status, "request_id": request_id}
    if status == 422:
        return ValidationError("spec", f"Kubernetes refused the manifest ({text})")
    if status in (401, 403):
        if status == 403 and "exceeded quota" in message:
            return QuotaExceededError(text, **kw)
        return AuthenticationError(text, **kw)
    if status == 429:
        retry = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            after = float(retry) if retry else None
        except ValueError:
            after = None
        return RateLimitedError(text, retry_after=after, **kw)
    error_class: type[ProviderError] = {
        404: NotFoundError, 409: ConflictError, 410: ConflictError,
    }.get(status, ServerError if status >= 500 else ProviderError)
    return error_class(text, **kw)


def _connection_error(e: Exception, provider: str, what: str, *, mutating: bool) -> RunctlError:
    """The runctl error for a urllib3 failure; whether a create or delete may have happened."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, TimeoutError

    reason = getattr(e, "reason", None) or e  # MaxRetryError wraps the last failure
    if isinstance(reason, TimeoutError):
        error: ProviderConnectionError = ProviderTimeoutError(
            f"{what}: no answer in time ({type(reason).__name__})", provider=provider
        )
    else:
        error = ProviderConnectionError(
            f"{what}: the API server could not be reached ({type(reason).__name__})",
            provider=provider,
        )
    # A request that never connected cannot have been applied; any other may have been.
    error.maybe_applied = mutating and not isinstance(
        reason, (ConnectTimeoutError, NewConnectionError)
    )
    return error


# --- the provider -------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


class KubernetesProvider(ProviderBase):
    """Training runs as Kubernetes Jobs (see the module docstring).

    Args:
        config: runctl's configuration for this provider.
        api_client: a ``kubernetes.client.ApiClient`` to use instead of building one
            from the kubeconfig (tests; unusual authentication).
        sleep: the async sleep used between polls (tests).
        clock: a monotonic clock in seconds, for the image-pull grace period (tests).
        max_threads: calls of the blocking client running at once.
        request_timeout: ``(connect, read)`` seconds for each API call.
        terminate_timeout: seconds ``terminate`` waits for the Job to be gone.
        log_poll: seconds between looks at a pod whose log cannot be read yet.
    """

    name: ClassVar[str] = NAME
    #: Node labels naming the GPU, in the order they are tried.
    gpu_labels: ClassVar[tuple[str, ...]] = GPU_LABELS
    #: The provider's own instance types: ``{instance type: (GPU name, count)}``.
    instance_types: ClassVar[Mapping[str, tuple[str, int]]] = {}
    #: How the provider bills; only matters once a rate is known.
    billing_increment: ClassVar[timedelta] = timedelta(seconds=1)

    def __init__(
        self,
        config: ProviderConfig,
        *,
        api_client: Any = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_threads: int = 8,
        request_timeout: tuple[float, float] = (10.0, 60.0),
        terminate_timeout: float = 60.0,
        log_poll: float = 1.0,
    ) -> None:
        super().__init__(config)
        self._api_client = api_client
        self._owns_client = api_client is None
        self._sleep_fn = sleep
        self._clock = clock
        self._max_threads = max_threads
        self._timeout = request_timeout
        self._terminate_timeout = terminate_timeout
        self._log_poll = log_poll
        self._limiter: anyio.CapacityLimiter | None = None
        self._lock: anyio.Lock | None = None
        self._namespace: str | None = None
        self._batch: Any = None
        self._core: Any = None
        #: When an image pull failure was first seen, per pod name.
        self._pull_failing_since: dict[str, float] = {}

    @property
    def capabilities(self) -> Capabilities:
        """What runctl does on Kubernetes (see the module docstring)."""
        return Capabilities(
            live_offers=True, stop_start=False, spot=False, logs=True, follow_logs=True,
            multi_node=True, ssh=False, ttl=True, idempotent_launch=True, tags=True,
            exit_code=True,
        )

    # --- access ---------------------------------------------------------------------------------

    @classmethod
    def _kubeconfig(cls, config: ProviderConfig) -> str | None:
        """The kubeconfig path(s) to load, or ``None`` when there is none."""
        # runctl's own setting first, so that one provider (coreweave) can use another
        # cluster than the KUBECONFIG every tool shares.
        configured = config.setting("kubeconfig") or config.environ.get("KUBECONFIG")
        home = config.environ.get("HOME")
        default = (Path(home) if home else Path.home()) / ".kube" / "config"
        candidates = configured or str(default)
        files = [p for p in candidates.split(":") if p]
        existing = [p for p in files if Path(p).expanduser().is_file()]
        return ":".join(existing) if existing else None

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether a kubeconfig or an in-cluster service account is there (nothing is read)."""
        found = cls._kubeconfig(config)
        if found is not None:
            context = config.setting("context")
            where = f"kubeconfig {found}" + (f", context {context}" if context else "")
            return Availability(usable=True, reason=where)
        if config.environ.get("KUBERNETES_SERVICE_HOST"):
            return Availability(usable=True, reason="in-cluster service account")
        return Availability(
            usable=False,
            reason="no kubeconfig (looked in: setting kubeconfig, env KUBECONFIG, "
            "~/.kube/config) and not running in a cluster",
        )

    def _load(self) -> tuple[Any, str]:
        """Build the API client and find the namespace (in a worker thread: reads files)."""
        from kubernetes import client
        from kubernetes import config as _kube_config

        kube_config: Any = _kube_config  # partly untyped
        namespace = self.config.setting("namespace")
        if self._api_client is not None:
            return self._api_client, namespace or "default"
        path = self._kubeconfig(self.config)
        context = self.config.setting("context")
        try:
            if path is not None:
                api = kube_config.new_client_from_config(config_file=path, context=context)
                if namespace is None:
                    contexts, active = kube_config.list_kube_config_contexts(config_file=path)
                    chosen = next((c for c in contexts if c.get("name") == context), active)
                    namespace = (chosen or {}).get("context", {}).get("namespace")
            elif self.config.environ.get("KUBERNETES_SERVICE_HOST"):
                configuration = client.Configuration()
                kube_config.load_incluster_config(client_configuration=configuration)
                api = client.ApiClient(configuration)
                if namespace is None:
                    ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    namespace = ns_file.read_text().strip() if ns_file.is_file() else None
            else:
                raise ConfigurationError(
                    f"{self.name}: {self.check(self.config).reason}; set KUBECONFIG or "
                    f"[providers.{self.name}] kubeconfig"
                )
        except kube_config.ConfigException as e:
            # The loader's messages name files and fields, never a token's value.
            raise ConfigurationError(f"{self.name}: the kubeconfig cannot be used: {e}") from e
        return api, namespace or "default"

    async def _apis(self) -> tuple[Any, Any, str]:
        import anyio

        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._batch is None:
                api, namespace = await self._thread(self._load)
                from kubernetes import client

                self._api_client = api
                self._namespace = namespace
                self._batch = client.BatchV1Api(api)
                self._core = client.CoreV1Api(api)
        assert self._namespace is not None
        return self._batch, self._core, self._namespace

    async def _thread(self, fn: Callable[[], T]) -> T:
        import anyio
        import anyio.to_thread

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_threads)
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Call the client in a worker thread; the answer's JSON, or the mapped error."""
        from kubernetes.client.exceptions import ApiException
        from pydantic import ValidationError as PydanticError  # the client validates bodies
        from urllib3.exceptions import HTTPError

        kw.setdefault("_request_timeout", self._timeout)
        kw["_preload_content"] = False
        mutating = fn.__name__.startswith(("create", "delete", "patch"))

        def call() -> Any:
            response = fn(*args, **kw)
            return response.data

        try:
            raw = await self._thread(call)
        except ApiException as e:
            raise _map_api_error(e, self.name, what) from e
        except PydanticError as e:
            raise ValidationError("spec", f"{what}: the manifest is not valid: {e}") from None
        except HTTPError as e:
            raise _connection_error(e, self.name, what, mutating=mutating) from e
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MalformedResponseError(f"{what}: not JSON", provider=self.name) from None

    async def _sleep(self, seconds: float) -> None:
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
        else:
            import anyio

            await anyio.sleep(seconds)

    async def aclose(self) -> None:
        """Close the client's connections (one built here; a given client is the caller's)."""
        if self._owns_client and self._api_client is not None:
            api = self._api_client
            self._api_client = None
            self._batch = self._core = None
            await self._thread(api.close)

    # --- reading --------------------------------------------------------------------------------

    def _parse_id(self, resource_id: str) -> tuple[str, str]:
        namespace, sep, name = resource_id.partition("/")
        if not sep or not _DNS_SUBDOMAIN.fullmatch(namespace) or not _DNS_LABEL.fullmatch(name):
            if not sep and _DNS_LABEL.fullmatch(resource_id) and self._namespace:
                return self._namespace, resource_id
            raise NotFoundError(
                f"{resource_id!r} is not a {self.name} resource id (<namespace>/<job name>)",
                provider=self.name,
            )
        return namespace, name

    async def _read_job(self, namespace: str, name: str) -> KubeJob:
        batch, _, _ = await self._apis()
        data = await self._call(
            f"read Job {namespace}/{name}", batch.read_namespaced_job, name, namespace
        )
        return self._job(data, namespace)

    def _job(self, data: object, namespace: str) -> KubeJob:
        job = KubeJob.from_wire(data, provider=self.name)
        # Some servers (and kmock) leave metadata.namespace out of what they return.
        return job if job.namespace else attrs.evolve(job, namespace=namespace)

    async def _pods(self, namespace: str, selector: str) -> list[KubePod]:
        _, core, _ = await self._apis()
        data = await self._call(
            f"list pods {selector}", core.list_namespaced_pod, namespace, label_selector=selector
        )
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        keys = [part for part in selector.split(",") if "=" not in part]
        pods = []
        for item in _items(data, "PodList", self.name):
            pod = KubePod.from_wire(item, provider=self.name)
            # The selector is the server's job; checking again costs nothing and keeps a
            # server that ignores it (or a proxy that strips it) from mixing Jobs up.
            if all(pod.labels.get(k) == v for k, v in wanted.items()) and all(
                k in pod.labels for k in keys
            ):
                pods.append(pod)
        return pods

    def _pull_failed(self, pod: KubePod) -> bool:
        now = self._clock()
        first = self._pull_failing_since.setdefault(pod.name, now)
        grace = _float_setting(self.config, "image_pull_grace", 120.0)
        return now - first >= grace

    def _price(self, gpu: Gpu | None, gpu_count: int, nodes: int = 1) -> Price:
        rate, source, observed_at = self._rate(gpu)
        return Price(
            per_hour=Money(rate * gpu_count * nodes, "USD"),
            gpu_count=gpu_count * nodes,
            billing_increment=self.billing_increment,
            observed_at=observed_at,
            source=source,
        )

    def _rate(self, gpu: Gpu | None) -> tuple[Decimal, str, datetime | None]:
        """USD per GPU-hour for ``gpu``, its price source and date.

        The configured ``gpu_hour_rate``, else 0: what a cluster costs is not known to runctl.
        """
        configured = self.config.setting("gpu_hour_rate")
        if configured is None:
            return Decimal(0), "static", None
        try:
            rate = Decimal(configured)
        except InvalidOperation:
            rate = Decimal(-1)
        if not rate.is_finite() or rate < 0:
            raise ConfigurationError(
                f"{self.name}: gpu_hour_rate {configured!r} is not a price >= 0 (USD per GPU-hour)"
            )
        return rate, "static", None

    def _resource(self, job: KubeJob, pods: Sequence[KubePod]) -> Resource:

        decided = job_state(job, pods, pull_failed=self._pull_failed)
        if decided.state.is_terminal or decided.state is _S.RUNNING:
            for pod in pods:
                self._pull_failing_since.pop(pod.name, None)
        tags = job.tags
        raw_gpu = job.annotations.get(ANNOTATION_GPU)
        gpu = normalize_gpu(raw_gpu, provider=self.name) if raw_gpu else None
        by_rank = {p.rank: p for p in sorted(pods, key=lambda p: p.deleting, reverse=True)}
        if job.nodes > 1:
            addresses = tuple(f"{job.name}-{i}.{job.name}" for i in range(job.nodes))
        else:
            ip = by_rank[0].pod_ip if 0 in by_rank else None
            addresses = (ip,) if ip else ()
        started = job.start_time or min(
            (p.started_at for p in pods if p.started_at), default=None
        )
        return Resource(
            id=f"{job.namespace}/{job.name}",
            provider=self.name,
            state=decided.state,
            raw_state=decided.raw,
            name=tags.get(TAG_NAME),
            launch_id=tags.get(TAG_LAUNCH_ID),
            created_at=job.created_at,
            started_at=started,
            ended_at=decided.ended_at if decided.state.is_terminal else None,
            exit_code=decided.exit_code,
            price=self._price(gpu, job.gpu_count, job.nodes),
            instance_type=job.annotations.get(ANNOTATION_GPU_LABEL),
            gpu=gpu,
            gpu_count=job.gpu_count * job.nodes,
            tags=tags,
            address=addresses[0] if addresses else None,
            nodes=job.nodes,
            addresses=addresses,
            detail=decided.detail,
        )

    async def get(self, resource_id: str) -> Resource:
        """The Job and its pods as Kubernetes reports them now.

        Raises:
            NotFoundError: no such Job (deleted, or removed by ``ttlSecondsAfterFinished``).
        """
        await self._apis()
        namespace, name = self._parse_id(resource_id)
        job = await self._read_job(namespace, name)
        pods = await self._pods(namespace, f"{LABEL_JOB}={name}")
        return self._resource(job, pods)

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Jobs runctl launched in the namespace, optionally only those with all ``tags``."""
        batch, _, namespace = await self._apis()
        wanted = dict(tags or {})
        selector = {LABEL_MANAGED_BY: "runctl", **_labels_for(wanted)}
        data = await self._call(
            "list Jobs", batch.list_namespaced_job, namespace, label_selector=_selector(selector)
        )
        jobs = [self._job(item, namespace) for item in _items(data, "JobList", self.name)]
        jobs = [
            j for j in jobs
            if j.tags.get(TAG_MANAGED_BY) == "runctl"
            and all(j.tags.get(k) == v for k, v in wanted.items())
        ]
        if not jobs:
            return []
        pods = await self._pods(namespace, LABEL_JOB)
        by_job: dict[str, list[KubePod]] = {}
        for pod in pods:
            by_job.setdefault(pod.labels[LABEL_JOB], []).append(pod)
        return [self._resource(j, by_job.get(j.name, [])) for j in jobs]

    # --- offers ---------------------------------------------------------------------------------

    async def _nodes(self) -> builtins.list[KubeNode]:
        _, core, _ = await self._apis()
        data = await self._call("list nodes", core.list_node)
        return [KubeNode.from_wire(item, provider=self.name) for item in
                _items(data, "NodeList", self.name)]

    def _node_gpu(self, node: KubeNode) -> tuple[Gpu, str, str] | None:
        return node_gpu(
            node.labels, order=self.gpu_labels, instance_types=self.instance_types,
            provider=self.name,
        )

    async def _gpus_in_use(self) -> dict[str, int] | None:
        """GPUs requested by pods that hold them, per node; ``None`` if pods cannot be listed."""
        _, core, _ = await self._apis()
        try:
            data = await self._call(
                "list pods", core.list_pod_for_all_namespaces,
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
            )
        except AuthenticationError:
            return None
        used: dict[str, int] = {}
        for item in _items(data, "PodList", self.name):
            pod = KubePod.from_wire(item, provider=self.name)
            if pod.node_name and not pod.ended:
                used[pod.node_name] = used.get(pod.node_name, 0) + pod.gpu_count
        return used

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """The cluster's GPU nodes, one offer per kind of node (GPU, count, instance type).

        ``available`` says whether some node of that kind has the GPUs free now; the
        note says how many nodes and GPUs are free. Prices are the configured rate.
        """

        if query.spot is True or (query.providers and self.name not in query.providers):
            return []
        nodes = [n for n in await self._nodes() if n.gpus > 0]
        if not nodes:
            return []
        used = await self._gpus_in_use()
        groups: dict[tuple[str, str, int], list[KubeNode]] = {}
        named: dict[tuple[str, str, int], tuple[Gpu, str, str]] = {}
        for node in nodes:
            found = self._node_gpu(node)
            if found is None:
                continue
            kind = node.labels.get(INSTANCE_TYPE_LABEL) or f"{found[1]}={found[2]}"
            key = (kind, found[2], node.gpus)
            groups.setdefault(key, []).append(node)
            named.setdefault(key, found)
        result: list[Offer] = []
        for key, members in groups.items():
            gpu, label, value = named[key]
            per_node = key[2]
            count = query.count or per_node
            if count > per_node:
                continue
            if query.gpu and not gpu_matches(query.gpu, gpu):
                continue
            if query.min_gpu_memory_gb and (gpu.memory_gb or 0) < query.min_gpu_memory_gb:
                continue
            sample = members[0]
            if query.min_vcpus and (sample.vcpus or 0) < query.min_vcpus:
                continue
            if query.min_memory_gb and (sample.memory_gb or 0) < query.min_memory_gb:
                continue
            price = self._price(gpu, count)
            if query.max_per_hour is not None and price.per_hour.amount > query.max_per_hour:
                continue
            if query.max_per_gpu_hour is not None and self._rate(gpu)[0] > (
                query.max_per_gpu_hour
            ):
                continue
            if query.regions and not any(
                (sample.labels.get(REGION_LABEL) or "").startswith(r) for r in query.regions
            ):
                continue
            available = None
            note = f"{len(members)} node(s), GPU from label {label}={value}"
            if used is not None:
                free = [max(n.gpus - used.get(n.name, 0), 0) for n in members if n.schedulable]
                available = any(f >= count for f in free)
                note += f"; {sum(1 for f in free if f >= count)} with {count} free, " \
                        f"{sum(free)} of {per_node * len(members)} GPUs free"
            result.append(
                Offer(
                    provider=self.name, instance_type=key[0], gpu=gpu, gpu_count=count,
                    price=price, vcpus=sample.vcpus, memory_gb=sample.memory_gb,
                    region=sample.labels.get(REGION_LABEL), zone=sample.labels.get(ZONE_LABEL),
                    available=available, note=note,
                )
            )
        result.sort(key=lambda o: (o.price.per_hour.amount, o.instance_type))
        return result[: query.limit] if query.limit else result

    # --- launching ------------------------------------------------------------------------------

    #: Whether launches read the nodes even without ``spec.gpu`` (a preset's hook needs them).
    reads_nodes: ClassVar[bool] = False

    async def _placement(
        self, spec: LaunchSpec, gpu_count: int
    ) -> tuple[
        dict[str, str], builtins.list[dict[str, Any]], str | None, str | None,
        builtins.list[KubeNode],
    ]:
        """Where the pods may run: (node selector, affinity terms, GPU name, label, nodes).

        The nodes returned are those the pods may land on, as far as runctl can tell
        (none when it had no reason to list them).
        """

        selector = _pairs("options.node_selector", spec.options.get("node_selector", ""))
        if spec.region:
            selector[REGION_LABEL] = spec.region
        wanted_type = spec.instance_type or (spec.offer.instance_type if spec.offer else None)
        if wanted_type:
            # An offer's instance type is the node's instance-type label, or the
            # ``key=value`` of the label that named its GPU when it has none.
            key, sep, value = wanted_type.partition("=")
            key, value = (key, value) if sep else (INSTANCE_TYPE_LABEL, wanted_type)
            if not is_label_key(key) or not is_label_value(value):
                raise ValidationError(
                    "instance_type", f"{wanted_type!r} is not a node label value",
                    allowed="a node.kubernetes.io/instance-type value, or label=value",
                )
            selector[key] = value
        offer_gpu = spec.offer.gpu if spec.offer is not None else None
        raw = None
        if offer_gpu is not None:
            raw = offer_gpu.name if offer_gpu.known else offer_gpu.raw
        wanted_gpu = spec.gpu if spec.offer is None else None
        if not wanted_gpu and not (self.reads_nodes and gpu_count):
            return selector, [], raw, wanted_type, []
        nodes = [
            n for n in await self._nodes()
            if n.gpus >= gpu_count and all(n.labels.get(k) == v for k, v in selector.items())
        ]
        if not wanted_gpu:
            return selector, [], raw, wanted_type, nodes
        chosen: dict[str, set[str]] = {}
        fits: list[KubeNode] = []
        names: list[str] = []
        for node in nodes:
            found = self._node_gpu(node)
            if found is None or not gpu_matches(wanted_gpu, found[0]):
                continue
            chosen.setdefault(found[1], set()).add(found[2])
            fits.append(node)
            names.append(found[0].name)
        if not chosen:
            looked = ", ".join(self.gpu_labels)
            raise CapacityError(
                f"no node of the cluster has {gpu_count} x {wanted_gpu!r} (labels read: "
                f"{looked}); name the nodes with options['node_selector'] if their labels "
                "say otherwise",
                provider=self.name,
            )
        # One term per label key (terms are ORed): exactly the values that matched.
        terms = [
            {"matchExpressions": [{"key": key, "operator": "In", "values": sorted(values)}]}
            for key, values in sorted(chosen.items())
        ]
        label = ",".join(f"{k}={'|'.join(sorted(v))}" for k, v in sorted(chosen.items()))
        return selector, terms, names[0], label, fits

    def _pod_extras(
        self, spec: LaunchSpec, nodes: Sequence[KubeNode]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, Any] | None]:
        """Extra container resources, env and security context (a preset's hook)."""
        return {}, {}, None

    async def _manifests(
        self, spec: LaunchSpec, namespace: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The Job (and, for several nodes, the headless Service) for ``spec``."""
        if spec.spot:
            raise UnsupportedOperationError(
                self.name, "spot",
                "select a spot node pool with options['node_selector'] and launch with spot=False",
            )
        if spec.ssh_public_key:
            raise UnsupportedOperationError(
                self.name, "ssh", "Kubernetes pods are reached with kubectl exec"
            )
        image = spec.image or self.config.setting("image")
        if not image:
            raise ValidationError(
                "image", "Kubernetes runs containers",
                allowed=f"spec.image, or the image setting of [providers.{self.name}]",
            )
        name = job_name(spec.launch_id)
        gpu_count = spec.gpu_count or (1 if spec.gpu else 0)
        if spec.offer is not None and not spec.gpu_count:
            gpu_count = spec.offer.gpu_count
        selector, terms, gpu_raw, gpu_label, nodes = await self._placement(spec, gpu_count)
        extra_resources, extra_env, security = self._pod_extras(spec, nodes)
        tags = spec.runctl_tags
        labels = {**_labels_for(tags), LABEL_MANAGED_BY: "runctl"}
        annotations = {ANNOTATION_TAGS: json.dumps(tags, sort_keys=True, separators=(",", ":"))}
        if gpu_raw:
            annotations[ANNOTATION_GPU] = gpu_raw
        if gpu_label:
            annotations[ANNOTATION_GPU_LABEL] = gpu_label

        command = ["sh", "-c", spec.command[0]] if spec.shell else list(spec.command)
        env: list[dict[str, Any]] = [
            {"name": k, "value": v} for k, v in {**extra_env, **spec.env}.items()
        ]
        if spec.nodes > 1:
            port = _int_option(spec, "master_port", DEFAULT_PORT, 1, 65535)
            addresses = [f"{name}-{i}.{name}" for i in range(spec.nodes)]
            rendezvous = rendezvous_env(addresses, 0, port=port)
            rank = {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}
            env = [e for e in env if e["name"] not in rendezvous]
            for key, value in rendezvous.items():
                if key in ("NODE_RANK", "RUNCTL_NODE_RANK"):
                    env.append({"name": key, "valueFrom": rank})
                else:
                    env.append({"name": key, "value": value})

        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        if gpu_count:
            limits[GPU_RESOURCE] = str(gpu_count)
        for option in ("cpu", "memory"):
            amount = spec.options.get(option)
            if amount is not None:
                if not _QUANTITY.fullmatch(amount):
                    raise ValidationError(
                        f"options.{option}", f"{amount!r} is not a Kubernetes quantity",
                        allowed="e.g. '8', '500m', '64Gi'",
                    )
                limits[option] = requests[option] = amount
        if spec.disk_gb:
            limits["ephemeral-storage"] = requests["ephemeral-storage"] = f"{spec.disk_gb}Gi"
        for key, value in extra_resources.items():
            limits[key] = requests[key] = value
        container: dict[str, Any] = {
            "name": CONTAINER, "image": image, "command": command, "env": env,
            "resources": {"limits": limits, **({"requests": requests} if requests else {})},
        }
        if spec.workdir:
            container["workingDir"] = spec.workdir
        if security:
            container["securityContext"] = security
        pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
        if gpu_count:
            pod_spec["tolerations"] = [dict(t) for t in GPU_TOLERATIONS]
        if selector:
            pod_spec["nodeSelector"] = selector
        if terms:
            pod_spec["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
                }
            }
        account = spec.options.get("service_account")
        if account:
            pod_spec["serviceAccountName"] = account
        job_spec: dict[str, Any] = {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": int(
                _float_setting(self.config, "ttl_after_finished", 86400)
            ),
            "template": {
                "metadata": {"labels": {**labels, LABEL_JOB: name}, "annotations": annotations},
                "spec": pod_spec,
            },
        }
        if spec.ttl is not None:
            job_spec["activeDeadlineSeconds"] = max(int(spec.ttl.total_seconds()), 1)
        service = None
        if spec.nodes > 1:
            job_spec.update(
                completionMode="Indexed", completions=spec.nodes, parallelism=spec.nodes
            )
            pod_spec["subdomain"] = name
            service = _service_manifest(name, namespace, labels, annotations[ANNOTATION_TAGS], port)
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "annotations": annotations},
            "spec": job_spec,
        }
        return job, service

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Create the Job (and Service) for ``spec``, or return the one of its launch id.

        Raises:
            ValidationError: no image, bad options, or a manifest Kubernetes refuses.
            UnsupportedOperationError: ``spot`` or ``ssh_public_key`` was asked.
            CapacityError: no node of the cluster carries the GPU asked for.
        """
        refuse_unsupported_nodes(self, spec)
        batch, core, namespace = await self._apis()
        namespace = spec.options.get("namespace") or namespace
        if not _DNS_LABEL.fullmatch(namespace):
            raise ValidationError("options.namespace", f"{namespace!r} is not a namespace name")
        name = job_name(spec.launch_id)
        try:
            existing = await self._read_job(namespace, name)
        except NotFoundError:
            existing = None
        if existing is None:
            job, service = await self._manifests(spec, namespace)
            try:
                data = await self._call(
                    f"create Job {namespace}/{name}", batch.create_namespaced_job, namespace, job
                )
                created = self._job(data, namespace) if data else None
            except ConflictError:
                created = None  # created meanwhile (a retry, another process): use it
            except (ProviderConnectionError, ServerError) as e:
                # No answer, or a 5xx such as the API server's 504 "request did not
                # complete": the Job may exist all the same. Look before giving up.
                if isinstance(e, ProviderConnectionError) and not e.maybe_applied:
                    raise
                try:
                    created = await self._read_job(namespace, name)
                except NotFoundError:
                    raise e from None
            if created is None:
                created = await self._read_job(namespace, name)
        else:
            created = existing
            service = None
            if created.nodes > 1:
                # A launch interrupted between the Job and its Service: finish it.
                port = _int_option(spec, "master_port", DEFAULT_PORT, 1, 65535)
                service = _service_manifest(
                    name, namespace, _labels_for(created.tags) | {LABEL_MANAGED_BY: "runctl"},
                    created.annotations.get(ANNOTATION_TAGS, "{}"), port,
                )
        if created.tags.get(TAG_LAUNCH_ID) not in (None, spec.launch_id):
            raise ConflictError(
                f"Job {namespace}/{name} belongs to launch {created.tags.get(TAG_LAUNCH_ID)!r}",
                provider=self.name,
            )
        if service is not None:
            await self._ensure_service(core, namespace, service, created)
        pods = await self._pods(namespace, f"{LABEL_JOB}={name}")
        return self._resource(created, pods)

    async def _ensure_service(
        self, core: Any, namespace: str, service: dict[str, Any], job: KubeJob
    ) -> None:
        import anyio

        if job.uid:
            # Owned by the Job: deleted with it, also when ttlSecondsAfterFinished removes it.
            service["metadata"]["ownerReferences"] = [{
                "apiVersion": "batch/v1", "kind": "Job", "name": job.name, "uid": job.uid,
            }]
        try:
            await self._call(
                f"create Service {namespace}/{job.name}", core.create_namespaced_service,
                namespace, service,
            )
        except ConflictError:
            pass
        except BaseException:
            # Without its Service the pods cannot find each other: take the Job back.
            with anyio.CancelScope(shield=True):
                await self._delete(namespace, job.name)
            raise

    # --- terminating ----------------------------------------------------------------------------

    async def _delete(self, namespace: str, name: str) -> bool:
        """Delete the Job (foreground) and its Service; whether the Job was there."""
        batch, core, _ = await self._apis()
        found = True
        try:
            await self._call(
                f"delete Job {namespace}/{name}", batch.delete_namespaced_job, name, namespace,
                propagation_policy="Foreground",
            )
        except NotFoundError:
            found = False
        try:
            await self._call(
                f"delete Service {namespace}/{name}", core.delete_namespaced_service, name,
                namespace,
            )
        except NotFoundError:
            pass
        return found

    async def terminate(self, resource_id: str) -> Resource:
        """Delete the Job and its pods (foreground) and the Service; verified gone.

        Idempotent: a Job Kubernetes no longer knows is reported TERMINATED.
        """

        await self._apis()
        namespace, name = self._parse_id(resource_id)
        rid = f"{namespace}/{name}"
        try:
            before = await self.get(rid)
        except NotFoundError:
            before = None
        await self._delete(namespace, name)
        gone = Resource(
            id=rid, provider=self.name, state=_S.TERMINATED, raw_state="Deleted",
            detail="the Job and its pods are deleted",
        )
        if before is not None:
            gone = before.evolve(
                state=_S.TERMINATED, raw_state="Deleted", ended_at=before.ended_at or _now(),
                observed_at=_now(), detail=gone.detail,
            )
        waited = 0.0
        while True:
            try:
                current = await self._read_job(namespace, name)
            except NotFoundError:
                return gone
            if waited >= self._terminate_timeout:
                return (before or gone).evolve(
                    state=_S.TERMINATING, raw_state="Terminating", observed_at=_now(),
                    detail=f"the Job is still being deleted after {waited:g} s"
                    + (" (finalizers)" if current.deleting else ""),
                )
            step = min(1.0, max(self._terminate_timeout - waited, 0.01))
            await self._sleep(step)
            waited += step

    # --- logs -----------------------------------------------------------------------------------

    def logs(
        self, resource_id: str, *, follow: bool = False, node: int | None = None
    ) -> AsyncIterator[str]:
        """The pods' output, line by line.

        Args:
            resource_id: the Job.
            follow: keep reading until the pods end.
            node: only this node's (rank's) lines; by default every node's, each line
                prefixed ``[node N] `` when the Job has several.
        """
        return self._logs(resource_id, follow=follow, node=node)

    async def _logs(
        self, resource_id: str, *, follow: bool, node: int | None
    ) -> AsyncIterator[str]:
        import anyio

        await self._apis()
        namespace, name = self._parse_id(resource_id)
        job = await self._read_job(namespace, name)
        if node is not None and (isinstance(node, bool) or not 0 <= node < job.nodes):
            raise ValidationError(
                "node", f"{node!r} is out of range", allowed=f"0 to {job.nodes - 1}"
            )
        ranks = [node] if node is not None else list(range(job.nodes))
        prefix = job.nodes > 1 and node is None
        if not follow:
            pods = await self._pods(namespace, f"{LABEL_JOB}={name}")
            for rank in ranks:
                pod = _pod_of(pods, rank)
                if pod is None:
                    continue
                for line in await self._read_log(namespace, pod.name):
                    yield f"[node {rank}] {line}" if prefix else line
            return
        if len(ranks) == 1:
            async for line in self._follow(resource_id, namespace, name, ranks[0]):
                yield line
            return
        send, receive = anyio.create_memory_object_stream[str](100)

        async def pump(rank: int) -> None:
            async for line in self._follow(resource_id, namespace, name, rank):
                await send.send(f"[node {rank}] {line}" if prefix else line)

        async def run_all() -> None:
            async with send, anyio.create_task_group() as tg:
                for rank in ranks:
                    tg.start_soon(pump, rank)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_all)
            try:
                async with receive:
                    async for line in receive:
                        yield line
            finally:
                tg.cancel_scope.cancel()

    async def _read_log(self, namespace: str, pod: str) -> builtins.list[str]:
        _, core, _ = await self._apis()
        try:
            text = await self._call_text(
                f"read log of {namespace}/{pod}", core.read_namespaced_pod_log, pod, namespace,
                container=CONTAINER,
            )
        except ProviderError as e:
            if e.status == 400:  # the container has not started: no log yet
                return []
            raise
        return text.splitlines()

    async def _call_text(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> str:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        kw.setdefault("_request_timeout", self._timeout)
        kw["_preload_content"] = False
        try:
            raw = await self._thread(lambda: fn(*args, **kw).data)
        except ApiException as e:
            raise _map_api_error(e, self.name, what) from e
        except HTTPError as e:
            raise _connection_error(e, self.name, what, mutating=False) from e
        return bytes(raw or b"").decode("utf-8", "replace")

    async def _follow(
        self, resource_id: str, namespace: str, name: str, rank: int
    ) -> AsyncIterator[str]:
        """One rank's log, followed across reconnects, each line once (by its timestamp)."""

        _, core, _ = await self._apis()
        last: tuple[str, int] | None = None
        seen_at_last: set[str] = set()
        last_read: float | None = None
        while True:
            pods = await self._pods(namespace, f"{LABEL_JOB}={name}")
            pod = _pod_of(pods, rank)
            if pod is None or not (pod.running or pod.ended):
                # Not started (or never will: an image that cannot be pulled, a Job
                # that failed elsewhere): the resource's state says whether to wait.
                state = (await self.get(resource_id)).state
                if state.is_terminal or (pod is not None and pod.deleting):
                    return
                await self._sleep(self._log_poll)
                continue
            ended_before = pod.ended
            kw: dict[str, Any] = {"container": CONTAINER, "follow": True, "timestamps": True}
            if last_read is not None:
                kw["since_seconds"] = int(self._clock() - last_read) + 2
            try:
                response = await self._open_stream(core, namespace, pod.name, kw)
            except ProviderError as e:
                if e.status == 400:
                    await self._sleep(self._log_poll)
                    continue
                raise
            complete = False
            try:
                buffer = b""
                while True:
                    chunk = await self._read_chunk(response)
                    if not chunk:
                        break
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        stamp, text = _split_timestamp(raw.decode("utf-8", "replace"))
                        if (stamp is not None and last is not None) and (
                            stamp < last or (stamp == last and text in seen_at_last)
                        ):
                            continue
                        if stamp is not None:
                            if stamp != last:
                                seen_at_last = set()
                            last = stamp
                            seen_at_last.add(text)
                        last_read = self._clock()
                        yield text
                complete = True
                if buffer:
                    stamp, text = _split_timestamp(buffer.decode("utf-8", "replace"))
                    if not (stamp is not None and last is not None and stamp <= last):
                        yield text
            finally:
                if complete:
                    response.release_conn()
                else:
                    # Abandoned mid-stream (cancelled, or the reader stopped): a worker
                    # thread may still block in a read; shutting the socket wakes it, and
                    # the connection is never put back in the pool.
                    shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3
                    if shutdown is not None:
                        shutdown()
                    response.close()
            if ended_before:
                return  # the stream of an ended container holds its whole log
            pods = await self._pods(namespace, f"{LABEL_JOB}={name}")
            pod = _pod_of(pods, rank)
            if pod is None or pod.deleting:
                return
            if pod.ended:
                continue  # one more read: the lines written after the stream broke
            await self._sleep(self._log_poll)

    async def _open_stream(self, core: Any, namespace: str, pod: str, kw: dict[str, Any]) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        def open_() -> Any:
            return core.read_namespaced_pod_log(
                pod, namespace, _preload_content=False, _request_timeout=self._timeout, **kw
            )

        try:
            return await self._thread(open_)
        except ApiException as e:
            raise _map_api_error(e, self.name, f"follow log of {namespace}/{pod}") from e
        except HTTPError as e:
            raise _connection_error(
                e, self.name, f"follow log of {namespace}/{pod}", mutating=False
            ) from e

    async def _read_chunk(self, response: Any) -> bytes:
        """The next bytes of a followed log; ``b""`` at its end or after a quiet read timeout."""
        import anyio.to_thread
        from urllib3.exceptions import HTTPError

        def read() -> bytes:
            try:
                return bytes(response.read1(65536))
            except HTTPError:
                # A quiet stream reaches the read timeout: the caller looks and reconnects.
                return b""

        assert self._limiter is not None
        return await anyio.to_thread.run_sync(read, limiter=self._limiter, abandon_on_cancel=True)


def _service_manifest(
    name: str, namespace: str, labels: Mapping[str, str], tags: str, port: int
) -> dict[str, Any]:
    """The headless Service that gives the pods of an Indexed Job their names."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                     "annotations": {ANNOTATION_TAGS: tags}},
        "spec": {
            "clusterIP": "None",
            # Rank 0 must be resolvable before every pod is ready, or the others
            # cannot reach the rendezvous.
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB: name},
            "ports": [{"name": "rendezvous", "port": port, "targetPort": port}],
        },
    }


def _pod_of(pods: Iterable[KubePod], rank: int) -> KubePod | None:
    """The pod of ``rank``: the live one, else the latest seen."""
    found = [p for p in pods if p.rank == rank]
    live = [p for p in found if not p.deleting]
    chosen = live or found
    return chosen[-1] if chosen else None


_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def _split_timestamp(line: str) -> tuple[tuple[str, int] | None, str]:
    """``(timestamp key, text)`` of a line read with ``timestamps=true``."""
    stamp, sep, text = line.partition(" ")
    found = _TIMESTAMP.fullmatch(stamp)
    if not sep or not found:
        return None, line
    nanos = int((found.group(2) or "").ljust(9, "0"))
    return (found.group(1), nanos), text


def _pairs(field: str, text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not is_label_key(key) or not is_label_value(value):
            raise ValidationError(field, f"{part!r} is not a label selector term",
                                  allowed="key=value pairs joined by ','")
        result[key] = value
    return result


def _int_option(spec: LaunchSpec, key: str, default: int, low: int, high: int) -> int:
    text = spec.options.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValidationError(f"options.{key}", f"{text!r} is invalid",
                              allowed=f"an int from {low} to {high}")
    return value


@functools.lru_cache(maxsize=64)
def _parse_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigurationError(f"setting {name}: {text!r} is not a number of seconds >= 0")
    return value


def _float_setting(config: ProviderConfig, name: str, default: float) -> float:
    text = config.setting(name)
    return default if text is None else _parse_float(name, text)
