"""Google Cloud: Compute Engine GPU VMs and Cloud TPU VMs.

Prerequisites
    A Google Cloud project with billing, the Compute Engine API (and, for TPUs, the
    Cloud TPU API) enabled, and GPU/TPU quota in the zones you use.
    ``pip install 'runctl[gcp]'`` installs ``google-cloud-compute`` and
    ``google-cloud-tpu``; runctl imports them the first time the provider talks to
    Google (``compute_v1`` alone takes over a second to import), never on
    ``import runctl``. Every call goes over the SDKs' REST transport, from worker
    threads, at most :data:`CONCURRENCY` at a time.

Credentials
    Application Default Credentials, as every Google tool finds them:
    ``gcloud auth application-default login``, ``GOOGLE_APPLICATION_CREDENTIALS``
    (a service account key file), or the metadata server on Google Cloud. The
    setting ``credentials = "anonymous"`` sends none (emulators and tests only).

Settings (``[providers.gcp]`` of the config file, or ``RUNCTL_GCP_<KEY>``)
    ``project``
        the project; else ``GOOGLE_CLOUD_PROJECT`` / ``CLOUDSDK_CORE_PROJECT``, else
        the project of the ADC credentials.
    ``zones``
        comma-separated zones runctl may launch in (e.g. ``us-central1-a,us-east4-c``);
        without it, the zones where the snapshot prices the machine, cheapest first.
    ``compute_api_endpoint``, ``tpu_api_endpoint``
        API roots other than ``https://compute.googleapis.com`` and
        ``https://tpu.googleapis.com`` (a proxy, a test server).
    ``image``
        the default boot image of GPU VMs (default :data:`DEFAULT_IMAGE`).
    ``zone_attempts``
        how many zones a launch tries when they are out of capacity (default 3).

Capabilities
    ================  =====  ==================================================
    capability        yes?   how
    ================  =====  ==================================================
    live_offers       no     offers are built from runctl's price snapshot
    stop_start        yes    ``instances.stop`` / ``start``; TPU ``stopNode`` / ``startNode``
    spot              yes    ``provisioningModel=SPOT`` (VMs), ``spot`` (TPU nodes, queued)
    logs              yes    GPU VMs: the serial port (``getSerialPortOutput``); not TPU VMs
    follow_logs       yes    the serial port, read again from ``next`` every few seconds
    multi_node        yes    TPU multi-host slices: one resource, one address per host
    ssh               yes    ``spec.ssh_public_key`` → metadata ``ssh-keys`` (user ``runctl``)
    ttl               yes    VMs: ``scheduling.maxRunDuration`` with DELETE (TPU: a label only)
    idempotent_launch yes    ``requestId`` from the launch id, deterministic instance name
    tags              yes    GCP labels (adapted, below), exact tags in metadata
    exit_code         yes    the wrapper's marker on the serial port; TPU: guest attributes
    ================  =====  ==================================================

GPU VMs
    - ``spec.instance_type`` is a machine type: accelerator-optimized (``a2-*``,
      ``a3-*``, ``a4-highgpu-8g``, ``g2-standard-*``), whose GPUs come with it, or
      an N1 type with GPUs attached as ``guestAccelerators``, written
      ``"n1-standard-8+nvidia-tesla-t4:1"`` (or ``"n1-standard-8"`` with
      ``spec.gpu="T4"``). With ``spec.gpu`` alone, runctl picks the cheapest machine
      with exactly that canonical GPU model and count (:mod:`runctl.gpus`).
    - ``instances.insert`` carries a ``requestId``, a UUID derived from the launch id
      and zone, so Google ignores a retried insert; the instance name is
      ``<spec.name or "runctl">-<launch id>`` (lowercased, with a short hash when the
      launch id had to be changed to fit GCP's name rules). A retried launch first
      looks for the instance by its launch-id label in every zone.
    - ``onHostMaintenance=TERMINATE`` (GPU VMs cannot live-migrate). Spot:
      ``provisioningModel=SPOT``, ``instanceTerminationAction=DELETE`` (a stopped
      spot VM would keep billing its disk); ``options["spot_termination"]="STOP"``
      keeps it instead. A preempted spot VM is reported ``PREEMPTED`` (from the
      zone's ``compute.instances.preempted`` operation).
    - The TTL is ``scheduling.maxRunDuration`` with ``instanceTerminationAction=DELETE``:
      Google deletes the VM when it runs out, whatever happens to runctl (30 s to
      120 days).
    - The boot disk is ``spec.disk_gb`` (default 100) GB of ``pd-balanced``
      (``hyperdisk-balanced`` on A4), from ``spec.image`` or the ``image`` setting,
      by default the Deep Learning VM family :data:`DEFAULT_IMAGE` with the NVIDIA
      driver installed on first boot (``install-nvidia-driver=True``).
      ``spec.image`` is a GCE image (``projects/P/global/images/family/F``), not a
      container.
    - The command runs as the ``startup-script`` (as root, at every boot: after
      ``start`` it runs again) inside runctl's wrapper (:mod:`runctl._workload`),
      whose output the guest agent copies to serial port 1. ``spec.env`` is
      exported by the script, so it is stored in the instance's metadata: anyone
      who can read the instance can read it. ``get`` reads the serial port (at most
      every ``exit_check_interval`` seconds) for the wrapper's exit marker; then the
      VM is ``SUCCEEDED``/``FAILED`` with ``exit_code`` set while Google still says
      ``RUNNING``: terminate it to stop the bill.
    - Network: the ``default`` network with an external IP
      (``options["network"]``, ``options["subnetwork"]``, ``options["external_ip"]="false"``),
      the project's default service account with the ``cloud-platform`` scope
      (``options["service_account"]``).

TPU VMs
    - ``spec.instance_type`` is a TPU accelerator type (``v5litepod-8``, ``v6e-8``,
      ``v5p-8``, ``v4-8``; a ``tpu-`` prefix is accepted), or ``spec.gpu="TPU v5e"``
      with ``gpu_count`` chips. The runtime version defaults per generation
      (:data:`TPU_RUNTIMES`); ``options["runtime_version"]`` chooses another.
    - Created as a node (``projects.locations.nodes.create``), or through a queued
      resource (Google's recommended path for scarce capacity) when
      ``options["queued"]="true"`` or the slice is multi-host.
    - A multi-host slice is one resource with one address per host
      (``Resource.addresses``, worker 0 first). The startup script runs on every
      host and sets the rendezvous environment (:mod:`runctl.rendezvous`) there from
      the host's metadata (``agent-worker-number``, ``worker-network-endpoints``).
    - TPU VMs have no serial-port API: ``logs`` is unsupported for them (use
      ``gcloud compute tpus tpu-vm ssh`` or Cloud Logging). The command's exit code
      is written by each host to its guest attributes
      (``runctl/exit-<launch id>``), which ``get`` reads; the slice has ended once
      every host wrote one (the first non-zero code wins).
    - Google enforces no run duration on TPU VMs: a TTL is only the ``runctl-ttl``
      label there (runctl's cleanup reads it).

Labels
    GCP labels are lowercase (keys ``[a-z][a-z0-9_-]{0,62}``, values
    ``[a-z0-9_-]{0,63}``). runctl's own keys (``runctl-managed-by``,
    ``runctl-launch-id``, ``runctl-name``, ``runctl-ttl``) already fit; a user's key
    or value is lowercased, other characters become ``_``, keys not starting with a
    letter get the prefix ``t_``, and both are cut to 63 characters. The exact
    tags are kept as JSON in the metadata key ``runctl-tags`` and are what
    ``Resource.tags`` shows; ``list(tags=...)`` filters by label at Google and
    then by the exact tags.

Prices
    From runctl's offline snapshot: Google prices a GPU VM's accelerators and its
    host (vCPUs and memory) separately; an offer sums both into one instance
    price and says so in its note. Where the snapshot has no host price for the
    region (G2, N1 and some A2/A3 regions), the price covers the accelerators
    only and the note says the VM is billed on top. A4's snapshot price is the
    whole machine. TPU slices are priced per chip-hour times chips. Billing is per
    second with a 1 minute minimum.

States
    :data:`GCE_STATES`, :data:`TPU_STATES` and :data:`QUEUED_STATES` map every
    documented status. Note that a GCE ``TERMINATED`` instance is a *stopped* one
    (disk kept, startable): runctl reports ``STOPPED``.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import logging
import re
import shlex
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ..cost import Money, Price
from ..errors import (
    AuthenticationError,
    CapacityError,
    ConfigurationError,
    ConflictError,
    MissingCredentialsError,
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
    ExitCodes,
    Fields,
    ProviderBase,
    ended,
    exit_code_in,
    gpu_matches,
    normalize_gpu,
    parse_marker,
    refuse_unsupported_nodes,
    wrap_command,
)
from ..models import (
    TAG_LAUNCH_ID,
    TAG_MANAGED_BY,
    TAG_NAME,
    Capabilities,
    Gpu,
    LaunchSpec,
    Offer,
    OfferQuery,
    Resource,
    ResourceState,
)

if TYPE_CHECKING:
    from ..config import ProviderConfig

__all__ = [
    "DEFAULT_IMAGE",
    "GCE_STATES",
    "QUEUED_STATES",
    "TPU_RUNTIMES",
    "TPU_STATES",
    "GcpProvider",
    "gce_state",
    "gcp_label_key",
    "gcp_label_value",
    "request_id",
    "tpu_state",
]

NAME = "gcp"
logger = logging.getLogger("runctl.providers.gcp")

#: Blocking SDK calls in flight at once, per provider object.
CONCURRENCY = 8
#: The default boot image of GPU VMs: Google's Deep Learning VM, CUDA 12.8, NVIDIA 570.
DEFAULT_IMAGE = (
    "projects/deeplearning-platform-release/global/images/family/"
    "common-cu128-ubuntu-2204-nvidia-570"
)
DEFAULT_DISK_GB = 100
#: The default TPU runtime (software) version per generation (Google's TPU docs).
TPU_RUNTIMES: Mapping[str, str] = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}
#: Google bills VMs and TPUs per second, with a 1 minute minimum.
BILLING_INCREMENT = timedelta(seconds=1)
MINIMUM_CHARGE = timedelta(minutes=1)
#: ``maxRunDuration`` bounds (Compute Engine API reference).
TTL_MIN = timedelta(seconds=30)
TTL_MAX = timedelta(days=120)
#: Metadata keys runctl writes.
META_LAUNCH_ID = "runctl-launch-id"
META_TAGS = "runctl-tags"
_CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_STARTUP_PREFIX = re.compile(r"startup-script: ?(.*)$")
#: The UUID namespace of runctl's request ids (uuid5 names: "<action>:<zone>:<launch id>").
_RUNCTL_NAMESPACE = "5b0f3a52-6f2e-4c41-9b8e-2d7c1c7f4a10"

_S = ResourceState

# --- states -------------------------------------------------------------------------------------

#: Every ``Instance.status`` of the Compute Engine API, mapped to runctl's state.
GCE_STATES: Mapping[str, ResourceState] = {
    "PENDING": _S.PENDING,  # waiting for capacity (future reservations, flex start)
    "PROVISIONING": _S.PROVISIONING,  # resources are being allocated
    "STAGING": _S.PROVISIONING,  # booting
    "RUNNING": _S.RUNNING,
    "REPAIRING": _S.PROVISIONING,  # moved off a failed host; comes back RUNNING
    "PENDING_STOP": _S.STOPPING,
    "STOPPING": _S.STOPPING,  # being stopped (or deleted, or preempted)
    "SUSPENDING": _S.STOPPING,
    "SUSPENDED": _S.STOPPED,  # memory saved to disk; resumable
    "STOPPED": _S.STOPPED,
    "TERMINATED": _S.STOPPED,  # GCE's word for a stopped VM: disk kept, startable
    "DEPROVISIONING": _S.STOPPING,
}

#: Every ``Node.State`` of the Cloud TPU API v2.
TPU_STATES: Mapping[str, ResourceState] = {
    "STATE_UNSPECIFIED": _S.UNKNOWN,
    "CREATING": _S.PROVISIONING,
    "READY": _S.RUNNING,
    "RESTARTING": _S.PROVISIONING,
    "REIMAGING": _S.PROVISIONING,
    "DELETING": _S.TERMINATING,
    "REPAIRING": _S.PROVISIONING,
    "STOPPED": _S.STOPPED,
    "STOPPING": _S.STOPPING,
    "STARTING": _S.PROVISIONING,
    "PREEMPTED": _S.PREEMPTED,
    "TERMINATED": _S.TERMINATED,
    "HIDING": _S.STOPPING,
    "HIDDEN": _S.STOPPED,
    "UNHIDING": _S.PROVISIONING,
    "UNKNOWN": _S.UNKNOWN,
}

#: Every ``QueuedResourceState.State`` (a queued resource before and around its node).
QUEUED_STATES: Mapping[str, ResourceState] = {
    "STATE_UNSPECIFIED": _S.UNKNOWN,
    "CREATING": _S.PENDING,
    "ACCEPTED": _S.PENDING,
    "WAITING_FOR_RESOURCES": _S.PENDING,
    "PROVISIONING": _S.PROVISIONING,
    "ACTIVE": _S.RUNNING,  # the node exists; its own state is reported when it can be read
    "FAILED": _S.FAILED,
    "DELETING": _S.TERMINATING,
    "SUSPENDING": _S.TERMINATING,  # its nodes are being deleted (e.g. spot preemption)
    "SUSPENDED": _S.TERMINATED,  # its nodes are gone; PREEMPTED for a spot request
}


def gce_state(raw: str | None) -> ResourceState:
    """runctl's state for a Compute Engine instance status; ``UNKNOWN`` if undocumented."""
    return GCE_STATES.get((raw or "").upper(), _S.UNKNOWN)


def tpu_state(raw: str | None) -> ResourceState:
    """runctl's state for a TPU node state; ``UNKNOWN`` if undocumented."""
    return TPU_STATES.get((raw or "").upper(), _S.UNKNOWN)


# --- names, labels, request ids -----------------------------------------------------------------

_LABEL_KEY_OK = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_BAD = re.compile(r"[^a-z0-9_-]")
_NAME_OK = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def gcp_label_key(key: str) -> str:
    """A runctl tag key as a GCP label key (lowercase, ``[a-z][a-z0-9_-]``, 63 characters)."""
    adapted = _LABEL_BAD.sub("_", key.lower())
    if not adapted[:1].isalpha() or not adapted[:1].isascii():
        adapted = "t_" + adapted
    return adapted[:63]


def gcp_label_value(value: str) -> str:
    """A runctl tag value as a GCP label value (lowercase, ``[a-z0-9_-]``, 63 characters)."""
    return _LABEL_BAD.sub("_", value.lower())[:63]


def _labels(tags: Mapping[str, str]) -> dict[str, str]:
    return {gcp_label_key(k): gcp_label_value(v) for k, v in tags.items()}


def request_id(launch_id: str, zone: str, action: str = "insert") -> str:
    """The ``requestId`` of one request for ``launch_id`` in ``zone``: a UUID, the same every time.

    Google ignores a request whose id it has seen in the last hour, so a retried
    insert (a lost answer, a retried launch) never creates a second VM.
    """
    import uuid

    return str(uuid.uuid5(uuid.UUID(_RUNCTL_NAMESPACE), f"{action}:{zone}:{launch_id}"))


def _resource_name(spec: LaunchSpec) -> str:
    """The instance (or TPU node) name: ``<name or runctl>-<launch id>``, valid for GCP."""
    lid = spec.launch_id
    suffix = lid.lower().replace("_", "-")
    if suffix != lid or suffix.endswith("-"):
        # Changed to fit: a short hash keeps "Ab" and "ab" apart.
        import hashlib

        suffix = f"{suffix.strip('-')}-{hashlib.sha256(lid.encode()).hexdigest()[:6]}"
    base = spec.name or "runctl"
    name = f"{base}-{suffix}"
    if len(name) > 63:
        name = f"{base[: max(1, 62 - len(suffix))]}-{suffix}"[-63:]
    if not name[0].isalpha():
        name = "r" + name[1:]
    name = name.rstrip("-")
    if not _NAME_OK.fullmatch(name):  # pragma: no cover - the steps above always fit
        raise ValidationError("launch_id", f"{lid!r} gives no valid GCP name")
    return name


def _parse_id(resource_id: str) -> tuple[str, str, str]:
    """``(kind, zone, name)`` of a runctl GCP id: ``zone/name`` (VM) or ``tpu/zone/name``.

    Raises:
        NotFoundError: not an id this provider ever gives out.
    """
    parts = resource_id.split("/") if isinstance(resource_id, str) else []
    if len(parts) == 3 and parts[0] == "tpu":
        kind, zone, name = parts
    elif len(parts) == 2:
        kind, (zone, name) = "vm", parts
    else:
        kind = zone = name = ""
    if not (re.fullmatch(r"[a-z]+-[a-z]+\d+-[a-z]", zone) and _NAME_OK.fullmatch(name)):
        raise NotFoundError(
            f"no GCP resource has the id {resource_id!r} (ids are 'zone/name' for VMs and "
            "'tpu/zone/name' for TPU VMs)",
            provider=NAME,
        )
    return kind, zone, name


def _last(url: str | None) -> str | None:
    return url.rsplit("/", 1)[-1] if url else None


# --- machines and prices ------------------------------------------------------------------------

#: GCP accelerator type per snapshot accelerator name.
ACCELERATOR_TYPES: Mapping[str, str] = {
    "A100": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "H100": "nvidia-h100-80gb",
    "H100-MEGA": "nvidia-h100-mega-80gb",
    "H200": "nvidia-h200-141gb",
    "B200": "nvidia-b200",
    "L4": "nvidia-l4",
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
}
#: Accelerators attached to N1 machines (the rest come with their machine type).
N1_ACCELERATORS = frozenset({"T4", "V100", "P100", "P4"})


@attrs.frozen
class _Machine:
    machine_type: str
    vcpus: int
    memory_gb: float
    #: the host family in :data:`_HOST_UNIT`, and how many units this machine is
    host: str | None = None
    units: int = 1


def _machines() -> dict[tuple[str, int], _Machine]:
    m: dict[tuple[str, int], _Machine] = {}
    for n in (1, 2, 4, 8):
        m["A100", n] = _Machine(f"a2-highgpu-{n}g", 12 * n, 85.0 * n, "a2-highgpu", n)
        m["A100-80GB", n] = _Machine(f"a2-ultragpu-{n}g", 12 * n, 170.0 * n, "a2-ultragpu", n)
        m["H100", n] = _Machine(f"a3-highgpu-{n}g", 26 * n, 234.0 * n, "a3-h100", n)
        # N1 hosts: 8 vCPUs per GPU fits every N1 GPU's limits.
        for accel in N1_ACCELERATORS:
            m[accel, n] = _Machine(f"n1-standard-{8 * n}", 8 * n, 30.0 * n)
    m["A100", 16] = _Machine("a2-megagpu-16g", 96, 1360.0, "a2-ultragpu", 8)
    m["H100-MEGA", 8] = _Machine("a3-megagpu-8g", 208, 1872.0, "a3-h100", 8)
    m["H200", 8] = _Machine("a3-ultragpu-8g", 224, 2952.0, "a3-ultragpu", 1)
    m["B200", 8] = _Machine("a4-highgpu-8g", 224, 3968.0, "a4", 1)
    for n, (vcpus, mem) in {1: (4, 16.0), 2: (24, 96.0), 4: (48, 192.0), 8: (96, 384.0)}.items():
        m["L4", n] = _Machine(f"g2-standard-{vcpus}", vcpus, mem)
    return m


MACHINES = _machines()
#: Machine type -> (snapshot accelerator, count), for machine types given by the user.
_MACHINE_GPUS: dict[str, tuple[str, int]] = {
    mt.machine_type: key for key, mt in MACHINES.items() if key[0] not in N1_ACCELERATORS
}
_MACHINE_GPUS.update({"a3-edgegpu-8g": ("H100", 8), "a2-highgpu-16g": ("A100", 16)})
for _n in (4, 8, 12, 16, 32):
    _MACHINE_GPUS[f"g2-standard-{_n}"] = ("L4", 1)

#: Host (vCPU + memory) prices, USD per hour (on-demand, spot), of one unit of each
#: family, by region: the 1-GPU machine (``a2-highgpu-1g``, ``a2-ultragpu-1g``,
#: ``a3-highgpu-1g``) or the whole ``a3-ultragpu-8g``. A machine of N GPUs costs N
#: units (``a3-megagpu-8g``/``a3-edgegpu-8g`` as 8 ``a3-highgpu-1g``). A4's snapshot
#: row already prices the whole machine. Source: the figures behind the snapshot,
#: skypilot-org/skypilot-catalog catalogs/v8/gcp/vms.csv at 006059e0.
_HOST_UNIT: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "a2-highgpu": {
        "asia-northeast1": ("0.94803", "0.41783"),
        "asia-northeast3": ("0.94803", "0.34226"),
        "asia-southeast1": ("0.9122", "0.41954"),
        "europe-west4": ("0.81406", "0.31824"),
        "me-west1": ("0.81342", "0.33516"),
        "us-central1": ("0.73948", "0.36975"),
        "us-east1": ("0.73948", "0.36975"),
        "us-west1": ("0.73948", "0.36975"),
        "us-west3": ("0.8882", "0.40554"),
        "us-west4": ("0.8328", "0.33306"),
    },
    "a2-ultragpu": {
        "asia-southeast1": ("1.35641", "0.62379"),
        "europe-west4": ("1.2105", "0.47328"),
        "us-central1": ("1.09962", "0.54978"),
        "us-east4": ("1.23833", "0.49613"),
        "us-east5": ("1.09962", "0.31193"),
    },
    "a3-h100": {
        "asia-east1": ("1.36923", "0.34284"),
        "asia-northeast1": ("1.51858", "0.38002"),
        "asia-south1": ("1.22981", "0.28161"),
        "asia-south2": ("1.42031", "0.32474"),
        "asia-southeast1": ("1.45886", "0.34879"),
        "australia-southeast1": ("1.47813", "0.31187"),
        "europe-north1": ("1.30206", "0.2022"),
        "europe-west1": ("1.30206", "0.29773"),
        "europe-west3": ("1.39536", "0.31954"),
        "europe-west4": ("1.24163", "0.28434"),
        "europe-west8": ("1.37171", "0.2469"),
        "europe-west9": ("1.37171", "0.28246"),
        "us-central1": ("1.18251", "0.36117"),
        "us-east4": ("1.18251", "0.26996"),
        "us-east5": ("1.33186", "0.29078"),
        "us-west1": ("1.18251", "0.36117"),
        "us-west4": ("1.33186", "0.30467"),
    },
    "a3-ultragpu": {
        "asia-south1": ("12.75664", "2.92129"),
        "asia-south2": ("14.73269", "3.36872"),
        "europe-west1": ("13.50609", "3.08825"),
        "europe-west4": ("12.8793", "2.94949"),
        "us-central1": ("12.266", "3.74713"),
        "us-east4": ("12.266", "2.80034"),
        "us-east5": ("13.81519", "3.01627"),
        "us-south1": ("14.47387", "3.15354"),
        "us-west1": ("12.266", "3.74713"),
    },
}

NOTE_SUMMED = "accelerators and host (vCPUs, memory) priced separately by Google, summed here"
NOTE_ACCELERATORS_ONLY = (
    "accelerators only: the VM's vCPUs and memory are billed on top (no host price in "
    "runctl's snapshot for this machine and region)"
)
NOTE_WHOLE = "the whole machine (Google prices A4 with its GPUs)"


def _host_price(machine: _Machine, region: str | None, spot: bool) -> Decimal | None:
    if machine.host == "a4":
        return Decimal(0)
    if machine.host is None or region is None:
        return None
    found = _HOST_UNIT.get(machine.host, {}).get(region)
    if found is None:
        return None
    return (Decimal(found[1] if spot else found[0]) * machine.units).quantize(Decimal("0.00001"))


def _price(amount: Decimal, chips: int, spot: bool, observed_at: datetime | None) -> Price:
    return Price(
        per_hour=Money(amount, "USD"),
        gpu_count=chips,
        billing_increment=BILLING_INCREMENT,
        minimum_duration=MINIMUM_CHARGE,
        spot=spot,
        observed_at=observed_at,
        source="snapshot",
    )


def _tpu_generation(accelerator_type: str) -> tuple[str, int]:
    """``(generation, chips)`` of a TPU accelerator type such as ``v5litepod-8`` or ``v4-16``.

    Raises:
        ValidationError: not a TPU accelerator type runctl knows.
    """
    found = re.fullmatch(r"(?:tpu-)?(v2|v3|v4|v5p|v5litepod|v6e)-(\d+)", accelerator_type)
    if found is None:
        raise ValidationError(
            "instance_type",
            f"{accelerator_type!r} is not a TPU accelerator type",
            allowed="e.g. v5litepod-8, v6e-8, v5p-8, v4-8",
        )
    generation, size = found.group(1), int(found.group(2))
    # v5e and v6e are named by chips; the older ones by TensorCores (2 per chip).
    chips = size if generation in ("v5litepod", "v6e") else max(1, size // 2)
    return generation, chips


def tpu_hosts(accelerator_type: str) -> int:
    """How many TPU VM hosts a slice has (4 chips per host; v5e/v6e up to 8 on one host)."""
    generation, chips = _tpu_generation(accelerator_type)
    if generation in ("v5litepod", "v6e") and chips <= 8:
        return 1
    return max(1, chips // 4)


@functools.cache
def _tpu_gpu(generation: str) -> Gpu:

    return normalize_gpu(f"tpu-{generation}", provider=NAME)


def gcp_offers(snapshot: Iterable[Offer]) -> list[Offer]:
    """runctl's GCP offers, composed from the snapshot's accelerator and TPU rows.

    Each ``"<GPU>:<count>"`` row (the accelerators' price in one zone) becomes the
    machine that carries them, priced with its host where the host price is known;
    each ``tpu-<type>`` row becomes a slice offer named by its accelerator type.
    """
    offers: list[Offer] = []
    for row in snapshot:
        if row.provider != NAME:
            continue
        if row.instance_type.startswith("tpu-"):
            accel = row.instance_type[len("tpu-") :]
            try:
                generation, chips = _tpu_generation(accel)
            except ValidationError:
                continue
            hosts = tpu_hosts(accel)
            offers.append(
                attrs.evolve(
                    row,
                    instance_type=accel,
                    gpu=_tpu_gpu(generation),
                    gpu_count=chips,
                    price=_price(row.price.per_hour.amount, chips, row.spot, row.price.observed_at),
                    note=f"TPU slice, {chips} chips on {hosts} host{'s' if hosts > 1 else ''}",
                )
            )
            continue
        name, sep, count_text = row.instance_type.partition(":")
        if not sep or not count_text.isdigit():
            continue
        machine = MACHINES.get((name, int(count_text)))
        if machine is None:
            continue
        host = _host_price(machine, row.region, row.spot)
        accel_price = row.price.per_hour.amount
        if host is None:
            amount, note = accel_price, NOTE_ACCELERATORS_ONLY
        elif machine.host == "a4":
            amount, note = accel_price, NOTE_WHOLE
        else:
            amount = accel_price + host
            note = f"{NOTE_SUMMED}: {accel_price} + {host} USD/h"
        instance_type = machine.machine_type
        if name in N1_ACCELERATORS:
            instance_type = f"{instance_type}+{ACCELERATOR_TYPES[name]}:{count_text}"
        offers.append(
            attrs.evolve(
                row,
                instance_type=instance_type,
                vcpus=machine.vcpus,
                memory_gb=machine.memory_gb,
                note=note,
                price=_price(amount, row.gpu_count, row.spot, row.price.observed_at),
            )
        )
    return offers


def _matches(query: OfferQuery, offer: Offer) -> bool:

    if query.gpu and (offer.gpu is None or not gpu_matches(query.gpu, offer.gpu)):
        return False
    if query.count is not None and offer.gpu_count != query.count:
        return False
    if query.spot is not None and offer.spot != query.spot:
        return False
    if query.regions and not any((offer.region or "").startswith(r) for r in query.regions):
        return False
    return query.max_per_hour is None or offer.per_hour.amount <= query.max_per_hour


# --- wire models (the REST shapes of Google's APIs) ---------------------------------------------


@attrs.frozen(kw_only=True)
class GceInstance:
    """A Compute Engine ``Instance`` (REST JSON), the parts runctl reads."""

    name: str
    zone: str
    status: str | None = None
    status_message: str | None = None
    machine_type: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)
    launch_id: str | None = None
    tags_json: str | None = None
    provisioning_model: str | None = None
    accelerators: tuple[tuple[str, int], ...] = ()
    created_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    address: str | None = None
    self_link: str | None = None

    @classmethod
    def from_wire(cls, data: object) -> GceInstance:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(data, "Instance", provider=NAME)
        meta: dict[str, str] = {}
        metadata = f.obj("metadata")
        for item in metadata.items("items") if metadata is not None else []:
            if isinstance(item, dict) and item.get("key") in (META_LAUNCH_ID, META_TAGS):
                meta[item["key"]] = str(item.get("value") or "")
        accelerators = []
        for acc in f.items("guestAccelerators"):
            if isinstance(acc, dict):
                af = Fields(acc, "Instance.guestAccelerators", provider=NAME)
                accelerators.append(
                    (_last(af.text("acceleratorType")) or "", af.integer("acceleratorCount") or 1)
                )
        address = None
        for nic in f.items("networkInterfaces"):
            if not isinstance(nic, dict):
                continue
            for ac in nic.get("accessConfigs") or []:
                if isinstance(ac, dict) and isinstance(ac.get("natIP"), str):
                    address = ac["natIP"]
            if address is None and isinstance(nic.get("networkIP"), str):
                address = nic["networkIP"]
            break
        scheduling = f.obj("scheduling")
        return cls(
            name=f.text("name", required=True),
            zone=_last(f.text("zone")) or "",
            status=f.text("status"),
            status_message=f.text("statusMessage"),
            machine_type=_last(f.text("machineType")),
            labels=f.str_map("labels"),
            launch_id=meta.get(META_LAUNCH_ID),
            tags_json=meta.get(META_TAGS),
            provisioning_model=scheduling.text("provisioningModel") if scheduling else None,
            accelerators=tuple(accelerators),
            created_at=f.timestamp("creationTimestamp"),
            started_at=f.timestamp("lastStartTimestamp"),
            stopped_at=f.timestamp("lastStopTimestamp"),
            address=address,
            self_link=f.text("selfLink"),
        )

    @property
    def tags(self) -> dict[str, str]:
        """The exact tags from metadata; the labels when there are none."""
        if self.tags_json:
            try:
                data = json.loads(self.tags_json)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}
        return dict(self.labels)


@attrs.frozen(kw_only=True)
class TpuNode:
    """A Cloud TPU v2 ``Node`` (REST JSON), the parts runctl reads."""

    name: str
    zone: str
    state: str | None = None
    accelerator_type: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)
    launch_id: str | None = None
    tags_json: str | None = None
    spot: bool = False
    created_at: datetime | None = None
    addresses: tuple[str, ...] = ()
    health: str | None = None

    @classmethod
    def from_wire(cls, data: object) -> TpuNode:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(data, "Node", provider=NAME)
        full = f.text("name", required=True)
        parts = full.split("/")
        zone = parts[3] if len(parts) >= 6 else ""
        metadata = f.str_map("metadata")
        addresses = []
        for ep in f.items("networkEndpoints"):
            if not isinstance(ep, dict):
                continue
            external = (ep.get("accessConfig") or {}).get("externalIp")
            ip = external if isinstance(external, str) and external else ep.get("ipAddress")
            if isinstance(ip, str) and ip:
                addresses.append(ip)
        sched = f.obj("schedulingConfig")
        return cls(
            name=parts[-1],
            zone=zone,
            state=f.text("state"),
            accelerator_type=f.text("acceleratorType"),
            labels=f.str_map("labels"),
            launch_id=metadata.get(META_LAUNCH_ID),
            tags_json=metadata.get(META_TAGS),
            spot=bool(sched and (sched.flag("spot") or sched.flag("preemptible"))),
            created_at=f.timestamp("createTime"),
            addresses=tuple(addresses),
            health=f.text("healthDescription") or None,
        )

    @property
    def tags(self) -> dict[str, str]:
        """The exact tags from metadata; the labels when there are none."""
        if self.tags_json:
            try:
                data = json.loads(self.tags_json)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}
        return dict(self.labels)


def _to_wire(message: Any) -> dict[str, Any]:
    """A proto-plus message as its REST JSON (camelCase keys, enum names)."""
    result: dict[str, Any] = type(message).to_dict(
        message,
        use_integers_for_enums=False,
        preserving_proto_field_name=False,
        always_print_fields_with_no_presence=False,  # absent stays absent, as on the wire
    )
    return result


# --- errors -------------------------------------------------------------------------------------

#: Google's error reasons and operation error codes, mapped to runctl's errors.
_ERROR_CODES: Mapping[str, type[ProviderError]] = {
    "ZONE_RESOURCE_POOL_EXHAUSTED": CapacityError,
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": CapacityError,
    "RESOURCE_POOL_EXHAUSTED": CapacityError,
    "STOCKOUT": CapacityError,
    "resourcePoolExhausted": CapacityError,
    "QUOTA_EXCEEDED": QuotaExceededError,
    "quotaExceeded": QuotaExceededError,
    "rateLimitExceeded": RateLimitedError,
    "userRateLimitExceeded": RateLimitedError,
    "RATE_LIMIT_EXCEEDED": RateLimitedError,
    "alreadyExists": ConflictError,
    "RESOURCE_ALREADY_EXISTS": ConflictError,
    "notFound": NotFoundError,
    "RESOURCE_NOT_FOUND": NotFoundError,
    "forbidden": AuthenticationError,
    "PERMISSION_DENIED": AuthenticationError,
}
#: HTTP status -> error, when no reason says more.
_STATUS_ERRORS: Mapping[int, type[ProviderError]] = {
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}
#: gRPC status codes of TPU operation errors (google.rpc.Code).
_RPC_CODES: Mapping[int, type[ProviderError]] = {
    5: NotFoundError,  # NOT_FOUND
    6: ConflictError,  # ALREADY_EXISTS
    7: AuthenticationError,  # PERMISSION_DENIED
    8: CapacityError,  # RESOURCE_EXHAUSTED (quota when the message says so)
    14: ServerError,  # UNAVAILABLE
    16: AuthenticationError,  # UNAUTHENTICATED
}
_QUOTA_WORDS = re.compile(r"quota", re.IGNORECASE)
_API_OFF = re.compile(r"SERVICE_DISABLED|has not been used|is disabled|not been enabled", re.I)
_CAPACITY_WORDS = re.compile(
    r"resource_pool_exhausted|stockout|no more capacity|does not have enough resources|"
    r"insufficient capacity",
    re.IGNORECASE,
)


def _error_class(codes: Iterable[str], status: int | None, message: str) -> type[ProviderError]:
    for code in codes:
        found = _ERROR_CODES.get(code)
        if found is not None:
            return found
    if _CAPACITY_WORDS.search(message):
        return CapacityError
    if status == 403 and _QUOTA_WORDS.search(message):
        return QuotaExceededError
    if status is not None:
        if status in _STATUS_ERRORS:
            return _STATUS_ERRORS[status]
        if status >= 500:
            return ServerError
    return ProviderError


def _map_sdk_error(e: BaseException, what: str) -> ProviderError | None:
    """An exception from the SDK (api_core, requests, auth) as runctl's error (``None``: a bug)."""
    from google.api_core import exceptions as gexc

    if isinstance(e, gexc.GoogleAPICallError):
        codes: list[str] = []
        for item in getattr(e, "errors", None) or ():
            if isinstance(item, Mapping) and isinstance(item.get("reason"), str):
                codes.append(item["reason"])
        reason = getattr(e, "reason", None)
        if isinstance(reason, str):
            codes.append(reason)
        status = e.code if isinstance(e.code, int) and e.code >= 100 else None
        message = e.message or type(e).__name__
        cls = _error_class(codes, status, message)
        if cls is RateLimitedError:
            return RateLimitedError(f"{what}: {message}", provider=NAME, status=status)
        return cls(f"{what}: {message}", provider=NAME, status=status)
    if isinstance(e, gexc.RetryError):
        return ProviderTimeoutError(f"{what}: {e}", provider=NAME)
    import requests

    if isinstance(e, requests.exceptions.Timeout):
        error: ProviderConnectionError = ProviderTimeoutError(
            f"{what}: no answer in time", provider=NAME
        )
        error.maybe_applied = isinstance(e, requests.exceptions.ReadTimeout)
        return error
    if isinstance(e, requests.exceptions.ConnectionError):
        error = ProviderConnectionError(f"{what}: connection failed ({e})", provider=NAME)
        # A connection that broke after the request was sent may have been applied.
        error.maybe_applied = "Connection refused" not in str(e)
        return error
    from google.auth import exceptions as auth_exc

    if isinstance(e, auth_exc.GoogleAuthError):
        return AuthenticationError(f"{what}: credentials refused ({e})", provider=NAME)
    return None


def _operation_error(op: Mapping[str, Any], what: str) -> ProviderError | None:
    """The error of a finished Compute operation (REST JSON), or ``None`` when it succeeded."""
    errors = ((op.get("error") or {}).get("errors")) or []
    if not errors:
        return None
    codes = [str(x.get("code")) for x in errors if isinstance(x, Mapping)]
    message = "; ".join(
        str(x.get("message") or x.get("code")) for x in errors if isinstance(x, Mapping)
    )
    status = op.get("httpErrorStatusCode")
    cls = _error_class(codes, status if isinstance(status, int) else None, message)
    return cls(
        f"{what} failed: {message}",
        provider=NAME,
        status=status if isinstance(status, int) else None,
    )


def _rpc_error(status: Any, what: str) -> ProviderError:
    """The error of a failed TPU operation (a ``google.rpc.Status``)."""
    code = int(getattr(status, "code", 0) or 0)
    message = str(getattr(status, "message", "") or "operation failed")
    cls = _RPC_CODES.get(code, ProviderError)
    if code == 8 and _QUOTA_WORDS.search(message):
        cls = QuotaExceededError
    elif cls is ProviderError and _CAPACITY_WORDS.search(message):
        cls = CapacityError
    return cls(f"{what} failed: {message}", provider=NAME)


# --- the startup script -------------------------------------------------------------------------

_MD = "http://metadata.google.internal/computeMetadata/v1/instance"


def _tpu_rendezvous_script(port: int) -> list[str]:
    """Shell lines setting the rendezvous environment on one host of a TPU slice.

    The addresses are known only once the slice exists, so each host reads them
    from its metadata: its worker number and every worker's endpoint
    (``...:...:<ip>``, comma-separated, worker 0 first).
    """
    md = f'md() {{ curl -sf -H "Metadata-Flavor: Google" "{_MD}/attributes/$1"; }}'
    return [
        md,
        "NODE_RANK=$(md agent-worker-number)",
        "RUNCTL_NODE_ADDRS=$(md worker-network-endpoints | tr ',' '\\n' | "
        "awk -F: 'NF {print $NF}' | paste -sd, -)",
        "MASTER_ADDR=${RUNCTL_NODE_ADDRS%%,*}",
        f"MASTER_PORT={port}",
        "WORLD_SIZE=$(printf '%s\\n' \"$RUNCTL_NODE_ADDRS\" | tr ',' '\\n' | grep -c .)",
        "RUNCTL_NUM_NODES=$WORLD_SIZE",
        "RUNCTL_NODE_RANK=$NODE_RANK",
        "export MASTER_ADDR MASTER_PORT WORLD_SIZE NODE_RANK RUNCTL_NUM_NODES RUNCTL_NODE_RANK "
        "RUNCTL_NODE_ADDRS",
    ]


def startup_script(spec: LaunchSpec, *, tpu_hosts: int = 0, port: int | None = None) -> str:
    """The ``startup-script`` that runs ``spec.command`` under runctl's wrapper.

    Args:
        spec: the launch.
        tpu_hosts: for a TPU VM, the hosts of its slice (0 for a GPU VM); a
            multi-host slice gets the rendezvous environment, and every TPU host
            writes the exit code to its guest attributes.
        port: the rendezvous port (default :data:`runctl.rendezvous.DEFAULT_PORT`).
    """
    from ..rendezvous import DEFAULT_PORT

    lines = ["#!/bin/sh", "# runctl: runs the launch's command at each boot, then reports its end"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(spec.env.items())]
    if tpu_hosts > 1:
        lines += _tpu_rendezvous_script(port or DEFAULT_PORT)
    after = ":"
    if tpu_hosts:
        after = (
            f'curl -sf -X PUT --data "$c" -H "Metadata-Flavor: Google" '
            f'"{_MD}/guest-attributes/runctl/exit-{spec.launch_id}" || :'
        )
    lines.append(
        wrap_command(
            spec.command, spec.launch_id, shell=spec.shell, workdir=spec.workdir, keep_alive=after
        )
    )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _operation_deadline(seconds: float, what: str) -> Iterator[None]:
    """Bound a wait for an operation; running out is a timeout that may have applied."""
    import anyio

    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError:
        error = ProviderTimeoutError(
            f"{what}: the operation was not done after {seconds:g} s (it may still finish)",
            provider=NAME,
        )
        error.maybe_applied = True
        raise error from None


def _on_google_cloud() -> bool:
    """Whether this machine is a Google Cloud VM (its DMI product name), without a request."""
    try:
        with open("/sys/class/dmi/id/product_name", encoding="ascii", errors="replace") as f:
            return f.read().startswith("Google")
    except OSError:
        return False


def _serial_text(line: str) -> str | None:
    """The startup script's output on one serial-console line, or ``None`` for other lines."""
    found = _STARTUP_PREFIX.search(line)
    return found.group(1) if found else None


# --- the provider -------------------------------------------------------------------------------


@attrs.frozen
class _Target:
    """Where and what to launch."""

    kind: str  # "vm" or "tpu"
    machine_type: str
    zones: tuple[str, ...]
    zone_asked: bool
    accelerator: str | None = None  # snapshot accelerator name (VM)
    count: int = 0
    n1_accelerator: str | None = None  # GCP acceleratorType for N1 guestAccelerators


class GcpProvider(ProviderBase):
    """Compute Engine GPU VMs and Cloud TPU VMs.

    Args:
        config: runctl's configuration for ``gcp``.
        credentials: Google credentials to use instead of ADC (tests:
            ``AnonymousCredentials()``).
        sleep: the async sleep between polls (tests).
        poll_interval: seconds between polls of an operation and of a followed log.
        exit_check_interval: the least time, in seconds, between two serial-port reads
            by :meth:`get` of one VM looking for the command's end.
        operation_timeout: seconds to wait for an insert or TPU create to finish.
    """

    name: ClassVar[str] = NAME

    def __init__(
        self,
        config: ProviderConfig,
        *,
        credentials: Any = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        poll_interval: float = 2.0,
        exit_check_interval: float = 5.0,
        operation_timeout: float = 600.0,
    ) -> None:
        super().__init__(config)
        self._credentials = credentials
        self._sleep_fn = sleep
        self._poll = poll_interval
        self._operation_timeout = operation_timeout
        self._sdk_lock = threading.Lock()
        self._clients: dict[str, Any] | None = None
        self._project: str | None = None
        self._limiter: Any = None
        self._exits = ExitCodes(every=exit_check_interval)
        self._serial_next: dict[str, int] = {}
        self._serial_lines: dict[str, builtins.list[str]] = {}
        self._launch_ids: dict[str, str] = {}
        #: VMs this object asked Google to delete: their STOPPING is a TERMINATING
        self._deleting: set[str] = set()
        self._offers: builtins.list[Offer] | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            live_offers=False,
            stop_start=True,
            spot=True,
            logs=True,
            follow_logs=True,
            multi_node=True,
            ssh=True,
            ttl=True,
            idempotent_launch=True,
            tags=True,
            exit_code=True,
        )

    # --- configuration --------------------------------------------------------------------------

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether ADC credentials and a project can be found (without importing the SDK)."""
        from pathlib import Path

        env = config.environ
        if (config.setting("credentials") or "").lower() == "anonymous":
            source = "anonymous (no credentials sent)"
        elif env.get("GOOGLE_APPLICATION_CREDENTIALS"):
            path = Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).expanduser()
            if not path.is_file():
                return Availability(
                    usable=False,
                    reason=f"GOOGLE_APPLICATION_CREDENTIALS names {str(path)!r}: not a file",
                )
            source = "GOOGLE_APPLICATION_CREDENTIALS"
        else:
            home = Path(env["HOME"]) if env.get("HOME") else Path.home()
            root = (
                Path(env["CLOUDSDK_CONFIG"])
                if env.get("CLOUDSDK_CONFIG")
                else home / ".config/gcloud"
            )
            adc = root / "application_default_credentials.json"
            if adc.is_file():
                source = f"gcloud ADC file {adc}"
            elif env.get("GCE_METADATA_HOST") or env.get("K_SERVICE") or _on_google_cloud():
                source = "the metadata server"
            else:
                return Availability(
                    usable=False,
                    reason="no Application Default Credentials (run `gcloud auth "
                    "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS)",
                )
        if not cls._configured_project(config):
            if source.startswith("anonymous"):
                return Availability(
                    usable=False,
                    reason="no project (set GOOGLE_CLOUD_PROJECT or [providers.gcp] project)",
                )
            # ADC carry a project (the key file's, gcloud's, the VM's).
            return Availability(usable=True, reason=f"credentials from {source}; project from ADC")
        return Availability(usable=True, reason=f"credentials from {source}")

    @staticmethod
    def _configured_project(config: ProviderConfig) -> str | None:
        return config.setting("project", env=("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"))

    def _zones_setting(self) -> tuple[str, ...]:
        raw = self.config.setting("zones") or ""
        return tuple(z.strip() for z in raw.split(",") if z.strip())

    # --- the SDK, in worker threads -------------------------------------------------------------

    def _sdk(self) -> dict[str, Any]:
        """The SDK clients, built once (in a worker thread: the imports are slow)."""
        with self._sdk_lock:
            if self._clients is not None:
                return self._clients
            from google.api_core.client_options import ClientOptions
            from google.cloud import compute_v1, tpu_v2

            credentials = self._credentials
            project = self._configured_project(self.config)
            if credentials is None:
                if (self.config.setting("credentials") or "").lower() == "anonymous":
                    from google.auth.credentials import AnonymousCredentials

                    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
                else:
                    import google.auth
                    from google.auth import exceptions as auth_exc

                    try:
                        credentials, adc_project = google.auth.default(scopes=[_CLOUD_PLATFORM])
                    except auth_exc.DefaultCredentialsError as e:
                        raise MissingCredentialsError(
                            NAME,
                            (
                                "GOOGLE_APPLICATION_CREDENTIALS",
                                "gcloud ADC file",
                                "metadata server",
                            ),
                            "run `gcloud auth application-default login`",
                        ) from e
                    project = project or adc_project
            if not project:
                raise ConfigurationError(
                    "gcp: no project: set GOOGLE_CLOUD_PROJECT or [providers.gcp] project"
                )

            def opts(key: str) -> dict[str, Any]:
                endpoint = self.config.setting(key)
                return {
                    "credentials": credentials,
                    "transport": "rest",
                    "client_options": ClientOptions(api_endpoint=endpoint) if endpoint else None,
                }

            compute = opts("compute_api_endpoint")
            instances = compute_v1.InstancesClient(**compute)
            operations = compute_v1.ZoneOperationsClient(**compute)
            self._project = project
            self._clients = {
                "instances": instances,
                "operations": operations,
                "tpu": tpu_v2.TpuClient(**opts("tpu_api_endpoint")),
                "compute_v1": compute_v1,
                "tpu_v2": tpu_v2,
            }
            return self._clients

    async def _call(self, what: str, fn: Callable[[dict[str, Any]], Any]) -> Any:
        """Run ``fn(clients)`` in a worker thread (bounded); map the SDK's errors."""
        import anyio

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(CONCURRENCY)

        def run() -> Any:
            clients = self._sdk()
            try:
                return fn(clients)
            except RunctlError:
                raise
            except Exception as e:
                mapped = _map_sdk_error(e, what)
                if mapped is None:
                    raise
                raise mapped from e

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    @property
    def project(self) -> str:
        assert self._project is not None
        return self._project

    async def _sleep(self, seconds: float) -> None:
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
        else:
            import anyio

            await anyio.sleep(seconds)

    def _snapshot_offers(self) -> builtins.list[Offer]:
        """GCP's offers from the snapshot, composed once per provider object (blocking)."""
        if self._offers is None:
            from .. import catalog
            from ..config import load_settings

            snapshot = catalog.load_snapshot(load_settings(self.config.environ), warn=False)
            self._offers = _composed(snapshot)
        return self._offers

    async def aclose(self) -> None:
        """Close the SDK clients' HTTP sessions."""
        clients, self._clients = self._clients, None
        if clients is None:
            return
        import anyio

        def close() -> None:
            for key in ("instances", "operations", "tpu"):
                try:
                    clients[key].transport.close()
                except Exception:  # closing is best effort
                    logger.debug("gcp: closing %s failed", key, exc_info=True)

        await anyio.to_thread.run_sync(close)

    # --- offers ---------------------------------------------------------------------------------

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """GPU machines and TPU slices, priced from runctl's snapshot (no API call)."""
        import anyio

        if query.providers and NAME not in query.providers:
            return []
        every = await anyio.to_thread.run_sync(self._snapshot_offers)
        return [o for o in every if _matches(query, o)]

    # --- reading --------------------------------------------------------------------------------

    def _vm_resource(self, inst: GceInstance, *, price: Price | None = None) -> Resource:
        rid = f"{inst.zone}/{inst.name}"
        gpu: Gpu | None = None
        count = 0

        known = _MACHINE_GPUS.get(inst.machine_type or "")
        if known is not None:
            gpu, count = normalize_gpu(known[0], provider=NAME), known[1]
        elif inst.accelerators:
            raw, count = inst.accelerators[0]
            gpu = normalize_gpu(raw, provider=NAME)
        tags = inst.tags
        state = gce_state(inst.status)
        if rid in self._deleting and state in (_S.STOPPING, _S.STOPPED):
            state = _S.TERMINATING  # a delete in progress goes through STOPPING
        if price is None:
            price = self._price_of(
                inst.machine_type, inst.accelerators, inst.zone, inst.provisioning_model == "SPOT"
            )
        resource = Resource(
            id=rid,
            provider=NAME,
            state=state,
            raw_state=inst.status,
            name=tags.get(TAG_NAME),
            launch_id=inst.launch_id or tags.get(TAG_LAUNCH_ID),
            created_at=inst.created_at,
            started_at=inst.started_at,
            price=price,
            instance_type=inst.machine_type,
            gpu=gpu,
            gpu_count=count,
            region=inst.zone,
            tags=tags,
            address=inst.address,
            addresses=(inst.address,) if inst.address else (),
            detail=inst.status_message,
        )
        if resource.launch_id:
            self._launch_ids[rid] = resource.launch_id
        code = self._exits.get(rid)
        if code is not None and state is _S.RUNNING:
            return ended(resource, code)
        return resource

    def _price_of(
        self,
        machine_type: str | None,
        accelerators: Sequence[tuple[str, int]],
        zone: str,
        spot: bool,
    ) -> Price | None:
        try:
            every = self._snapshot_offers()
        except Exception:  # a price is a nicety on a read; never fail the read for it
            return None
        wanted = machine_type or ""
        if accelerators and wanted.startswith("n1-"):
            wanted = f"{wanted}+{accelerators[0][0]}:{accelerators[0][1]}"
        for offer in every:
            if offer.instance_type == wanted and offer.zone == zone and offer.spot == spot:
                return offer.price
        return None

    async def _get_instance(self, zone: str, name: str) -> GceInstance:
        data = await self._call(
            f"get instance {zone}/{name}",
            lambda c: _to_wire(c["instances"].get(project=self.project, zone=zone, instance=name)),
        )
        return GceInstance.from_wire(data)

    async def get(self, resource_id: str) -> Resource:
        """The VM or TPU VM as Google sees it now, with the command's end once it is known.

        A VM Google no longer knows is ``PREEMPTED`` when the zone's operations say a
        spot preemption removed it, ``TERMINATED`` when they show its deletion.

        Raises:
            NotFoundError: Google knows nothing of it.
        """
        kind, zone, name = _parse_id(resource_id)
        if kind == "tpu":
            return await self._get_tpu(zone, name)
        try:
            inst = await self._get_instance(zone, name)
        except NotFoundError:
            gone = await self._vanished(zone, name)
            if gone is None:
                raise
            return gone
        resource = self._vm_resource(inst)
        spot_stopped = inst.status == "TERMINATED" and inst.provisioning_model == "SPOT"
        if spot_stopped and await self._preempted(zone, name):
            return resource.evolve(state=_S.PREEMPTED, detail="spot VM preempted by Google")
        if resource.state is _S.RUNNING and self._exits.due(resource.id) and resource.launch_id:
            code = await self._exit_from_serial(zone, name, resource.launch_id)
            if code is not None:
                return ended(resource, code)
        return resource

    async def _zone_operations(self, zone: str, name: str) -> builtins.list[dict[str, Any]]:
        link_end = f"/zones/{zone}/instances/{name}"

        def run(c: dict[str, Any]) -> builtins.list[dict[str, Any]]:
            req = c["compute_v1"].ListZoneOperationsRequest(
                project=self.project, zone=zone, filter=f'targetLink eq ".*{link_end}"'
            )
            return [_to_wire(op) for op in c["operations"].list(request=req)]

        ops = await self._call(f"list operations of {zone}/{name}", run)
        # The filter is a hint; the target is what counts.
        return [op for op in ops if str(op.get("targetLink", "")).endswith(link_end)]

    async def _preempted(self, zone: str, name: str) -> bool:
        try:
            ops = await self._zone_operations(zone, name)
        except ProviderError:
            return False
        return any(op.get("operationType") == "compute.instances.preempted" for op in ops)

    async def _vanished(self, zone: str, name: str) -> Resource | None:
        """A VM Google no longer lists, as its zone's operations tell its end; else ``None``."""
        try:
            ops = await self._zone_operations(zone, name)
        except ProviderError:
            return None
        types = {op.get("operationType") for op in ops}
        rid = f"{zone}/{name}"
        if "compute.instances.preempted" in types:
            state, raw, detail = (
                _S.PREEMPTED,
                "PREEMPTED",
                "spot VM preempted and deleted by Google",
            )
        elif ops:  # it existed, and Google no longer has it
            state, raw, detail = _S.TERMINATED, "DELETED", "deleted (Google no longer lists it)"
        else:
            return None
        return Resource(
            id=rid,
            provider=NAME,
            state=state,
            raw_state=raw,
            region=zone,
            detail=detail,
            launch_id=self._launch_ids.get(rid),
        )

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """VMs and TPU VMs runctl launched in the project, in every zone, with all ``tags``."""
        wanted = {TAG_MANAGED_BY: "runctl", **(tags or {})}
        labels = _labels(wanted)
        flt = " AND ".join(f'labels.{k} = "{v}"' for k, v in sorted(labels.items()))

        def vms(c: dict[str, Any]) -> builtins.list[dict[str, Any]]:
            req = c["compute_v1"].AggregatedListInstancesRequest(project=self.project, filter=flt)
            found = []
            for _zone, scoped in c["instances"].aggregated_list(request=req):
                found += [_to_wire(i) for i in scoped.instances]
            return found

        result: builtins.list[Resource] = []
        for data in await self._call("list instances", vms):
            inst = GceInstance.from_wire(data)
            if all(inst.tags.get(k) == v for k, v in wanted.items()):
                result.append(self._vm_resource(inst))
        for tpu in await self._tpu_resources():
            if all(tpu.tags.get(k) == v for k, v in wanted.items()):
                result.append(tpu)
        return result

    async def _find(self, launch_id: str) -> Resource | None:
        for resource in await self.list(tags={TAG_LAUNCH_ID: launch_id}):
            if resource.launch_id == launch_id and resource.state not in (
                _S.TERMINATED,
                _S.TERMINATING,
            ):
                return resource
        return None

    # --- launching ------------------------------------------------------------------------------

    def _pick(self, spec: LaunchSpec) -> tuple[_Target, builtins.list[Offer]]:
        """What to launch and the zones to try, cheapest first (blocking: reads the snapshot)."""
        every = self._snapshot_offers()
        zones_allowed = self._zones_setting()
        region = spec.region
        asked_zone = region if region and re.fullmatch(r"[a-z]+-[a-z]+\d+-[a-z]", region) else None
        wanted_type = spec.instance_type or (spec.offer.instance_type if spec.offer else None)
        gpu_query = None if wanted_type else spec.gpu
        count = spec.gpu_count or (spec.offer.gpu_count if spec.offer else 0)
        if spec.offer is not None and spec.offer.zone and not region:
            asked_zone = spec.offer.zone
        if wanted_type is None and not gpu_query:
            raise ValidationError(
                "gpu",
                "a GCP launch needs a GPU or TPU",
                allowed="spec.gpu (e.g. 'H100', 'TPU v5e'), spec.instance_type or spec.offer",
            )
        candidates: builtins.list[Offer] = []
        target: _Target | None = None
        if wanted_type and re.fullmatch(r"(?:tpu-)?(v2|v3|v4|v5p|v5litepod|v6e)-\d+", wanted_type):
            accel = wanted_type.removeprefix("tpu-")
            _, chips = _tpu_generation(accel)
            target = _Target("tpu", accel, (), False, count=chips)
            candidates = [o for o in every if o.instance_type == accel and o.spot == spec.spot]
        elif wanted_type:
            raw_row = re.fullmatch(r"([A-Z0-9-]+):(\d+)", wanted_type)
            if raw_row and (raw_row.group(1), int(raw_row.group(2))) in MACHINES:
                # A snapshot row ("H100:8", the accelerators alone): the machine carrying them.
                row_key = (raw_row.group(1), int(raw_row.group(2)))
                wanted_type = MACHINES[row_key].machine_type
                if row_key[0] in N1_ACCELERATORS:
                    wanted_type += f"+{ACCELERATOR_TYPES[row_key[0]]}:{row_key[1]}"
            machine, _, attached = wanted_type.partition("+")
            accel_type, n1_count = None, 0
            if attached:
                accel_type, _, n_text = attached.partition(":")
                n1_count = int(n_text) if n_text.isdigit() else (count or 1)
            elif machine.startswith("n1-"):
                if not spec.gpu:
                    raise ValidationError(
                        "gpu",
                        f"{machine} carries no GPU of its own",
                        allowed="spec.gpu (T4, V100, P100, P4), or 'n1-...+nvidia-tesla-t4:1'",
                    )
                accel_type = self._n1_accelerator(spec.gpu)
                n1_count = count or 1
            if accel_type:
                reverse = {v: k for k, v in ACCELERATOR_TYPES.items()}
                accel_name = reverse.get(accel_type)
                target = _Target("vm", machine, (), False, accel_name, n1_count, accel_type)
                # Zones and prices of the attached GPUs, whichever N1 size carries them.
                attached_key = f"+{accel_type}:{n1_count}"
                candidates = [
                    o
                    for o in every
                    if o.instance_type.endswith(attached_key) and o.spot == spec.spot
                ]
            else:
                known = _MACHINE_GPUS.get(machine)
                target = _Target(
                    "vm", machine, (), False, known[0] if known else None, known[1] if known else 0
                )
                candidates = [
                    o for o in every if o.instance_type == machine and o.spot == spec.spot
                ]
        else:

            assert gpu_query is not None
            if not normalize_gpu(gpu_query).known:
                # A launch rents what was named exactly: no prefix or substring guesses.
                raise ValidationError(
                    "gpu",
                    f"{gpu_query!r} is not a GPU or TPU model runctl knows",
                    allowed="canonical models such as H100, A100-80GB, L4, T4, TPU v5e",
                )
            matching = [
                o
                for o in every
                if o.gpu is not None
                and gpu_matches(gpu_query, o.gpu)
                and o.spot == spec.spot
                and (o.gpu_count == count if count else True)
            ]
            if not matching:
                raise ValidationError(
                    "gpu",
                    f"GCP has no {gpu_query!r}"
                    + (f" x{count}" if count else "")
                    + " in runctl's price snapshot",
                    allowed="GPU models such as H100, A100, L4, T4, or TPU v5e / v6e / v5p / v4",
                )
            if not count:
                least = min(o.gpu_count for o in matching)
                matching = [o for o in matching if o.gpu_count == least]
            best = min(matching, key=lambda o: o.per_hour.amount)
            candidates = [o for o in matching if o.instance_type == best.instance_type]
            if best.gpu is not None and best.gpu.kind == "tpu":
                target = _Target("tpu", best.instance_type, (), False, count=best.gpu_count)
            else:
                machine, _, attached = best.instance_type.partition("+")
                accel_type, _, n_text = attached.partition(":")
                known = _MACHINE_GPUS.get(machine)
                target = _Target(
                    "vm",
                    machine,
                    (),
                    False,
                    known[0]
                    if known
                    else {v: k for k, v in ACCELERATOR_TYPES.items()}.get(accel_type),
                    int(n_text) if n_text else (known[1] if known else 0),
                    accel_type or None,
                )
        assert target is not None
        candidates.sort(key=lambda o: o.per_hour.amount)
        if asked_zone:
            zones: tuple[str, ...] = (asked_zone,)
        else:
            found = [o.zone for o in candidates if o.zone]
            if region:
                found = [z for z in found if z.startswith(region)]
            if zones_allowed:
                found = [z for z in found if z in zones_allowed] or [
                    z for z in zones_allowed if not region or z.startswith(region)
                ]
            zones = tuple(dict.fromkeys(found))
            if not zones:
                raise ValidationError(
                    "region",
                    f"no zone to launch {target.machine_type} in"
                    + (f" within {region!r}" if region else ""),
                    allowed="a zone such as us-central1-a (spec.region), or the zones setting",
                )
        return attrs.evolve(target, zones=zones, zone_asked=asked_zone is not None), candidates

    @staticmethod
    def _n1_accelerator(gpu: str) -> str:

        for name in sorted(N1_ACCELERATORS):
            if gpu_matches(gpu, normalize_gpu(name, provider=NAME)):
                return ACCELERATOR_TYPES[name]
        raise ValidationError(
            "gpu", f"{gpu!r} cannot be attached to N1", allowed="T4, V100, P100, P4"
        )

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Create the VM (or TPU VM) for ``spec``, or return the one with its launch id.

        Zones are tried cheapest first; one out of capacity moves the launch to the
        next (up to ``zone_attempts``) unless a zone was asked for.

        Raises:
            ValidationError: the spec cannot run on GCP (no GPU, a container image ...).
            UnsupportedOperationError: ``nodes > 1`` for a GPU VM.
            CapacityError: no zone tried had capacity.
            QuotaExceededError: the project's quota is reached.
            ProviderConnectionError: the insert got no answer and no VM can be found;
                launching again with the same launch id is safe.
        """
        refuse_unsupported_nodes(self, spec)
        import anyio

        self._check_spec(spec)
        existing = await self._find(spec.launch_id)
        if existing is not None:
            return existing
        target, candidates = await anyio.to_thread.run_sync(self._pick, spec)
        if target.kind == "tpu":
            return await self._launch_tpu(spec, target)
        if spec.nodes > 1:
            raise UnsupportedOperationError(
                NAME, "nodes", "one GCP launch is one GPU VM; multi-node launches are TPU slices"
            )
        attempts = (
            1 if target.zone_asked else max(1, int(self.config.setting("zone_attempts") or 3))
        )
        last: ProviderError | None = None
        for zone in target.zones[:attempts]:
            price = next((o.price for o in candidates if o.zone == zone), None)
            try:
                return await self._insert(spec, target, zone, price)
            except CapacityError as e:
                logger.info("gcp: %s has no capacity for %s: %s", zone, target.machine_type, e)
                last = e
        assert last is not None
        tried = ", ".join(target.zones[:attempts])
        raise CapacityError(
            f"no capacity for {target.machine_type} in {tried}: {last.message}",
            provider=NAME,
            status=last.status,
        ) from last

    def _check_spec(self, spec: LaunchSpec) -> None:
        if spec.ttl is not None and not TTL_MIN <= spec.ttl <= TTL_MAX:
            raise ValidationError("ttl", f"{spec.ttl} is out of range", allowed="30 s to 120 days")
        if spec.image and not re.match(
            r"(https://www\.googleapis\.com/compute/v1/)?(projects/|global/images/)", spec.image
        ):
            raise ValidationError(
                "image",
                f"{spec.image!r} is not a Compute Engine image",
                allowed="projects/P/global/images/NAME or projects/P/global/images/family/F",
            )
        mode = spec.options.get("spot_termination", "DELETE").upper()
        if mode not in ("DELETE", "STOP"):
            raise ValidationError("options.spot_termination", f"{mode!r}", allowed="DELETE, STOP")

    def _instance_body(self, spec: LaunchSpec, target: _Target, zone: str) -> dict[str, Any]:
        """The ``Instance`` to insert, in the REST shape."""
        family = target.machine_type.split("-", 1)[0]
        disk_type = spec.options.get("disk_type") or (
            "hyperdisk-balanced" if family == "a4" else "pd-balanced"
        )
        image = spec.image or self.config.setting("image") or DEFAULT_IMAGE
        tags = spec.runctl_tags
        metadata = [
            {"key": "startup-script", "value": startup_script(spec)},
            {"key": META_LAUNCH_ID, "value": spec.launch_id},
            {"key": META_TAGS, "value": json.dumps(tags, sort_keys=True, separators=(",", ":"))},
            {"key": "install-nvidia-driver", "value": "True"},
        ]
        if spec.ssh_public_key:
            metadata.append({"key": "ssh-keys", "value": f"runctl:{spec.ssh_public_key.strip()}"})
        scheduling: dict[str, Any] = {
            "onHostMaintenance": "TERMINATE",
            "automaticRestart": not spec.spot,
        }
        if spec.spot:
            scheduling.update(
                provisioningModel="SPOT",
                instanceTerminationAction=spec.options.get("spot_termination", "DELETE").upper(),
            )
        if spec.ttl is not None:
            scheduling["maxRunDuration"] = {"seconds": str(int(spec.ttl.total_seconds()))}
            scheduling["instanceTerminationAction"] = "DELETE"
        nic: dict[str, Any] = {
            "network": f"global/networks/{spec.options.get('network', 'default')}"
        }
        if "subnetwork" in spec.options:
            nic["subnetwork"] = spec.options["subnetwork"]
        if spec.options.get("external_ip", "true").lower() != "false":
            nic["accessConfigs"] = [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]
        body: dict[str, Any] = {
            "name": _resource_name(spec),
            "machineType": f"zones/{zone}/machineTypes/{target.machine_type}",
            "labels": _labels(tags),
            "metadata": {"items": metadata},
            "scheduling": scheduling,
            "disks": [
                {
                    "boot": True,
                    "autoDelete": True,
                    "type": "PERSISTENT",
                    "initializeParams": {
                        "sourceImage": image,
                        "diskSizeGb": str(spec.disk_gb or DEFAULT_DISK_GB),
                        "diskType": f"zones/{zone}/diskTypes/{disk_type}",
                    },
                }
            ],
            "networkInterfaces": [nic],
            "serviceAccounts": [
                {
                    "email": spec.options.get("service_account", "default"),
                    "scopes": [_CLOUD_PLATFORM],
                }
            ],
        }
        if target.n1_accelerator:
            body["guestAccelerators"] = [
                {
                    "acceleratorType": f"zones/{zone}/acceleratorTypes/{target.n1_accelerator}",
                    "acceleratorCount": target.count,
                }
            ]
        return body

    async def _insert(
        self, spec: LaunchSpec, target: _Target, zone: str, price: Price | None
    ) -> Resource:
        body = self._instance_body(spec, target, zone)
        name = body["name"]
        rid = request_id(spec.launch_id, zone)

        def insert(c: dict[str, Any]) -> dict[str, Any]:
            compute_v1 = c["compute_v1"]
            req = compute_v1.InsertInstanceRequest(
                project=self.project,
                zone=zone,
                request_id=rid,
                instance_resource=compute_v1.Instance.from_json(json.dumps(body)),
            )
            return _to_wire(c["instances"].insert_unary(request=req, timeout=60))

        what = f"insert {name} in {zone}"
        try:
            op = await self._call(what, insert)
        except ProviderConnectionError as e:
            if not e.maybe_applied:
                raise
            # The same requestId again: Google answers with the first insert's operation.
            try:
                op = await self._call(what, insert)
            except ProviderConnectionError as again:
                found = await self._find(spec.launch_id)
                if found is not None:
                    return found
                error = ProviderConnectionError(
                    f"the insert of {name} got no answer and no VM with launch id "
                    f"{spec.launch_id} exists yet; launching again with the same launch id is "
                    "safe (the same requestId is sent)",
                    provider=NAME,
                )
                error.maybe_applied = True
                raise error from again
        except ConflictError:
            inst = await self._get_instance(zone, name)
            if inst.launch_id != spec.launch_id:
                raise
            return self._vm_resource(inst, price=price)
        await self._wait_operation(zone, op, what)
        inst = await self._get_instance(zone, name)
        return self._vm_resource(inst, price=price)

    async def _wait_operation(self, zone: str, op: dict[str, Any], what: str) -> dict[str, Any]:
        """Wait for a zone operation to be DONE; raise its error if it failed."""

        with _operation_deadline(self._operation_timeout, what):
            while op.get("status") != "DONE":
                name = str(op.get("name"))

                def wait(c: dict[str, Any], name: str = name) -> dict[str, Any]:
                    req = c["compute_v1"].WaitZoneOperationRequest(
                        project=self.project, zone=zone, operation=name
                    )
                    return _to_wire(c["operations"].wait(request=req, timeout=150))

                previous = op
                op = await self._call(f"{what} (operation {name})", wait)
                if op.get("status") != "DONE" and previous.get("status") == op.get("status"):
                    await self._sleep(self._poll)
        error = _operation_error(op, what)
        if error is not None:
            raise error
        return op

    # --- TPU VMs --------------------------------------------------------------------------------

    def _tpu_resource(self, node: TpuNode, *, queued_state: str | None = None) -> Resource:
        rid = f"tpu/{node.zone}/{node.name}"
        generation, chips = ("", 0)
        if node.accelerator_type:
            try:
                generation, chips = _tpu_generation(node.accelerator_type)
            except ValidationError:
                pass
        tags = node.tags
        state = tpu_state(node.state)
        raw = node.state
        if queued_state is not None and node.state is None:
            state = QUEUED_STATES.get(queued_state, _S.UNKNOWN)
            if queued_state == "SUSPENDED" and node.spot:
                state = _S.PREEMPTED
            raw = f"QUEUED:{queued_state}"
        price = None
        if node.accelerator_type:
            price = self._price_of(node.accelerator_type, (), node.zone, node.spot)
        resource = Resource(
            id=rid,
            provider=NAME,
            state=state,
            raw_state=raw,
            name=tags.get(TAG_NAME),
            launch_id=node.launch_id or tags.get(TAG_LAUNCH_ID),
            created_at=node.created_at,
            price=price,
            instance_type=node.accelerator_type,
            gpu=_tpu_gpu(generation) if generation else None,
            gpu_count=chips,
            region=node.zone,
            tags=tags,
            address=node.addresses[0] if node.addresses else None,
            nodes=tpu_hosts(node.accelerator_type) if generation and node.accelerator_type else 1,
            addresses=node.addresses,
            detail=node.health,
        )
        code = self._exits.get(rid)
        if code is not None and state is _S.RUNNING:
            return ended(resource, code)
        return resource

    async def _tpu_resources(self) -> builtins.list[Resource]:
        """Every TPU node, and every queued resource that has no node (yet), in every zone.

        A project without the Cloud TPU API enabled has none: that is not an error
        for a user of GPU VMs only.
        """

        def run(c: dict[str, Any]) -> tuple[builtins.list[Any], builtins.list[Any]]:
            where = f"projects/{self.project}/locations/-"  # every zone
            nodes = [_to_wire(n) for n in c["tpu"].list_nodes(parent=where)]
            queued = [_to_wire(q) for q in c["tpu"].list_queued_resources(parent=where)]
            return nodes, queued

        try:
            nodes, queued = await self._call("list TPU nodes", run)
        except (AuthenticationError, NotFoundError) as e:
            if _API_OFF.search(e.message):
                logger.debug("gcp: the Cloud TPU API is not enabled: no TPU VMs listed")
                return []
            raise
        found = [self._tpu_resource(TpuNode.from_wire(d)) for d in nodes]
        have = {r.id for r in found}
        for q in queued:
            parts = str(q.get("name", "")).split("/")
            if len(parts) == 6 and f"tpu/{parts[3]}/{parts[5]}" not in have:
                found.append(self._queued_resource(parts[3], parts[5], q))
        return found

    async def _get_tpu(self, zone: str, name: str) -> Resource:
        path = f"projects/{{p}}/locations/{zone}"
        try:
            data = await self._call(
                f"get TPU node {zone}/{name}",
                lambda c: _to_wire(
                    c["tpu"].get_node(name=f"{path.format(p=self.project)}/nodes/{name}")
                ),
            )
        except NotFoundError:
            data = None
        if data is not None:
            node = TpuNode.from_wire(data)
            resource = self._tpu_resource(node)
            if resource.state is _S.RUNNING and self._exits.due(resource.id) and resource.launch_id:
                code = await self._tpu_exit(zone, name, resource.launch_id, max(1, resource.nodes))
                if code is not None:
                    return ended(resource, code)
            return resource
        # Not a node (yet, or any more): a queued resource of the same id?
        qdata = await self._call(
            f"get queued resource {zone}/{name}",
            lambda c: _to_wire(
                c["tpu"].get_queued_resource(
                    name=f"{path.format(p=self.project)}/queuedResources/{name}"
                )
            ),
        )
        return self._queued_resource(zone, name, qdata)

    def _queued_resource(self, zone: str, name: str, data: Mapping[str, Any]) -> Resource:
        state = str(((data.get("state") or {}).get("state")) or "STATE_UNSPECIFIED")
        specs = ((data.get("tpu") or {}).get("nodeSpec")) or [{}]
        node_data = dict(specs[0].get("node") or {})
        node_data["name"] = f"projects/{self.project}/locations/{zone}/nodes/{name}"
        node_data.pop("state", None)
        node = TpuNode.from_wire(node_data)
        if "spot" in data:
            node = attrs.evolve(node, spot=True)
        resource = self._tpu_resource(node, queued_state=state)
        failed = ((data.get("state") or {}).get("failedData") or {}).get("error") or {}
        if failed.get("message"):
            resource = resource.evolve(detail=str(failed["message"]))
        return resource

    async def _tpu_exit(self, zone: str, name: str, launch_id: str, hosts: int) -> int | None:
        """The exit code the slice's hosts wrote to their guest attributes, once all did."""
        node = f"projects/{self.project}/locations/{zone}/nodes/{name}"

        def run(c: dict[str, Any]) -> dict[str, Any]:
            req = c["tpu_v2"].GetGuestAttributesRequest(name=node, query_path="runctl/")
            return _to_wire(c["tpu"].get_guest_attributes(request=req))

        try:
            data = await self._call(f"guest attributes of {zone}/{name}", run)
        except ProviderError:
            self._exits.read(f"tpu/{zone}/{name}", None)
            return None
        codes: builtins.list[int] = []
        for attrs_ in data.get("guestAttributes") or []:
            for item in ((attrs_.get("queryValue") or {}).get("items")) or []:
                if item.get("key") == f"exit-{launch_id}" and str(item.get("value", "")).isdigit():
                    codes.append(int(item["value"]))
        code = None
        if len(codes) >= hosts:
            code = next((c for c in codes if c != 0), 0)
        self._exits.read(f"tpu/{zone}/{name}", code)
        return code

    def _tpu_body(self, spec: LaunchSpec, target: _Target, hosts: int) -> dict[str, Any]:
        generation, _ = _tpu_generation(target.machine_type)
        tags = spec.runctl_tags
        body: dict[str, Any] = {
            "acceleratorType": target.machine_type,
            "runtimeVersion": spec.options.get("runtime_version") or TPU_RUNTIMES[generation],
            "labels": _labels(tags),
            "metadata": {
                "startup-script": startup_script(spec, tpu_hosts=hosts),
                META_LAUNCH_ID: spec.launch_id,
                META_TAGS: json.dumps(tags, sort_keys=True, separators=(",", ":")),
                "enable-guest-attributes": "TRUE",
            },
            "networkConfig": {
                "network": spec.options.get("network", "default"),
                "enableExternalIps": spec.options.get("external_ip", "true").lower() != "false",
            },
        }
        if "subnetwork" in spec.options:
            body["networkConfig"]["subnetwork"] = spec.options["subnetwork"]
        if spec.ssh_public_key:
            body["metadata"]["ssh-keys"] = f"runctl:{spec.ssh_public_key.strip()}"
        if spec.spot:
            body["schedulingConfig"] = {"spot": True}
        return body

    async def _launch_tpu(self, spec: LaunchSpec, target: _Target) -> Resource:
        hosts = tpu_hosts(target.machine_type)
        if spec.nodes not in (1, hosts):
            raise ValidationError(
                "nodes",
                f"{target.machine_type} has {hosts} host(s)",
                allowed=f"1 or {hosts} (the slice decides its hosts)",
            )
        queued = spec.options.get("queued", "").lower() in ("1", "true", "yes") or hosts > 1
        attempts = (
            1 if target.zone_asked else max(1, int(self.config.setting("zone_attempts") or 3))
        )
        name = _resource_name(spec)
        last: ProviderError | None = None
        for zone in target.zones[:attempts]:
            body = self._tpu_body(spec, target, hosts)
            try:
                if queued:
                    return await self._create_queued(spec, zone, name, body)
                return await self._create_node(zone, name, body)
            except CapacityError as e:
                last = e
        assert last is not None
        raise CapacityError(
            f"no TPU capacity for {target.machine_type} in {', '.join(target.zones[:attempts])}: "
            f"{last.message}",
            provider=NAME,
        ) from last

    async def _poll_lro(self, what: str, op: Any) -> Any:
        """Wait for a TPU long-running operation; return its result or raise its error."""

        with _operation_deadline(self._operation_timeout, what):
            while not await self._call(what, lambda c: op.done(retry=None)):
                await self._sleep(self._poll)

        raw = op.operation  # the google.longrunning.Operation, done
        if raw.HasField("error") and raw.error.code:
            raise _rpc_error(raw.error, what)
        return None

    async def _create_node(self, zone: str, name: str, body: dict[str, Any]) -> Resource:
        parent = f"projects/{{p}}/locations/{zone}"
        what = f"create TPU node {name} in {zone}"

        def create(c: dict[str, Any]) -> Any:
            node = c["tpu_v2"].Node.from_json(json.dumps(body))
            return c["tpu"].create_node(
                parent=parent.format(p=self.project), node_id=name, node=node
            )

        try:
            op = await self._call(what, create)
        except ConflictError:
            return await self._get_tpu(zone, name)
        await self._poll_lro(what, op)
        return await self._get_tpu(zone, name)

    async def _create_queued(
        self, spec: LaunchSpec, zone: str, name: str, body: dict[str, Any]
    ) -> Resource:
        parent = f"projects/{{p}}/locations/{zone}"
        what = f"create queued TPU resource {name} in {zone}"
        qr: dict[str, Any] = {
            "tpu": {"nodeSpec": [{"parent": "", "nodeId": name, "node": body}]},
        }
        if spec.spot:
            qr["spot"] = {}
            body.pop("schedulingConfig", None)
        if "queue_timeout" in spec.options:
            # How long the request may wait for capacity (not a run time limit).
            qr["queueingPolicy"] = {"validUntilDuration": f"{int(spec.options['queue_timeout'])}s"}

        def create(c: dict[str, Any]) -> Any:
            where = parent.format(p=self.project)
            qr["tpu"]["nodeSpec"][0]["parent"] = where
            message = c["tpu_v2"].QueuedResource.from_json(json.dumps(qr))
            return c["tpu"].create_queued_resource(
                parent=where, queued_resource_id=name, queued_resource=message
            )

        try:
            op = await self._call(what, create)
        except ConflictError:
            return await self._get_tpu(zone, name)
        await self._poll_lro(what, op)
        return await self._get_tpu(zone, name)

    # --- changing resources ---------------------------------------------------------------------

    async def terminate(self, resource_id: str) -> Resource:
        """Delete the VM (with its boot disk) or the TPU VM (and its queued resource).

        Returns it as last seen, ``TERMINATING`` (Google deletes in the background).
        Idempotent: something Google no longer knows is ``TERMINATED``.
        """
        kind, zone, name = _parse_id(resource_id)
        try:
            before = await self.get(resource_id)
        except NotFoundError:
            return Resource(
                id=resource_id,
                provider=NAME,
                state=_S.TERMINATED,
                raw_state="DELETED",
                detail="not known to Google (deleted)",
            )
        if before.state is _S.TERMINATED:
            return before
        if kind == "tpu":
            await self._delete_tpu(zone, name)
            self._exits.forget(resource_id)
        else:

            def delete(c: dict[str, Any]) -> Any:
                req = c["compute_v1"].DeleteInstanceRequest(
                    project=self.project,
                    zone=zone,
                    instance=name,
                    request_id=request_id(before.launch_id or name, zone, "delete"),
                )
                return c["instances"].delete_unary(request=req, timeout=60)

            try:
                await self._call(f"delete {resource_id}", delete)
            except NotFoundError:
                pass
            self._deleting.add(resource_id)
            self._exits.forget(resource_id)
            self._serial_next.pop(resource_id, None)
        now = datetime.now(timezone.utc)
        return before.evolve(state=_S.TERMINATING, raw_state="STOPPING", observed_at=now)

    async def _delete_tpu(self, zone: str, name: str) -> None:
        """Delete the queued resource (with its node) if there is one, else the node."""
        base = f"projects/{{p}}/locations/{zone}"

        def delete_node(c: dict[str, Any]) -> Any:
            return c["tpu"].delete_node(name=f"{base.format(p=self.project)}/nodes/{name}")

        def delete_queued(c: dict[str, Any]) -> Any:
            req = c["tpu_v2"].DeleteQueuedResourceRequest(
                name=f"{base.format(p=self.project)}/queuedResources/{name}", force=True
            )
            return c["tpu"].delete_queued_resource(request=req)

        try:
            await self._call(f"delete queued resource {zone}/{name}", delete_queued)
            return
        except NotFoundError:
            pass
        try:
            await self._call(f"delete TPU node {zone}/{name}", delete_node)
        except NotFoundError:
            pass

    async def stop(self, resource_id: str) -> Resource:
        """Stop the VM or TPU VM (compute released, disk kept and billed).

        Raises:
            ConflictError: Google refused in the resource's current state.
        """
        return await self._power(resource_id, "stop")

    async def start(self, resource_id: str) -> Resource:
        """Start a stopped VM or TPU VM. The startup script, and so the command, runs again."""
        self._exits.forget(resource_id)
        return await self._power(resource_id, "start")

    async def _power(self, resource_id: str, action: str) -> Resource:
        kind, zone, name = _parse_id(resource_id)
        goal = _S.STOPPED if action == "stop" else _S.RUNNING
        current = await self.get(resource_id)
        # A retried stop or start whose first answer was lost finds it there already.
        if current.state is goal or (
            action == "start" and current.raw_state in ("RUNNING", "READY")
        ):
            return current
        if kind == "tpu":

            def tpu_call(c: dict[str, Any]) -> Any:
                req_cls = (
                    c["tpu_v2"].StopNodeRequest
                    if action == "stop"
                    else c["tpu_v2"].StartNodeRequest
                )
                fn = c["tpu"].stop_node if action == "stop" else c["tpu"].start_node
                return fn(
                    request=req_cls(name=f"projects/{self.project}/locations/{zone}/nodes/{name}")
                )

            op = await self._call(f"{action} {resource_id}", tpu_call)
            await self._poll_lro(f"{action} {resource_id}", op)
        else:

            def vm_call(c: dict[str, Any]) -> dict[str, Any]:
                fn = c["instances"].stop_unary if action == "stop" else c["instances"].start_unary
                return _to_wire(fn(project=self.project, zone=zone, instance=name, timeout=60))

            op = await self._call(f"{action} {resource_id}", vm_call)
            if action == "start":
                # The command runs again: only markers written from now on count.
                self._serial_lines.pop(resource_id, None)
                try:
                    _, nxt = await self._serial_read(zone, name, None)
                    self._serial_next[resource_id] = nxt
                except ProviderError:
                    self._serial_next.pop(resource_id, None)
            await self._wait_operation(zone, op, f"{action} {resource_id}")
        return await self.get(resource_id)

    # --- serial port: exit code and logs --------------------------------------------------------

    async def _serial_read(self, zone: str, name: str, start: int | None) -> tuple[str, int]:
        def run(c: dict[str, Any]) -> dict[str, Any]:
            req = c["compute_v1"].GetSerialPortOutputInstanceRequest(
                project=self.project,
                zone=zone,
                instance=name,
                port=1,
                **({"start": start} if start is not None else {}),
            )
            return _to_wire(c["instances"].get_serial_port_output(request=req, timeout=60))

        data = await self._call(f"serial port of {zone}/{name}", run)
        f = Fields(data, "SerialPortOutput", provider=NAME)
        contents = f.text("contents") or ""
        raw_next = data.get("next")  # an int64: a string in JSON
        try:
            nxt = int(raw_next)
        except (TypeError, ValueError):
            nxt = (start or 0) + len(contents.encode())
        return contents, nxt

    async def _serial_lines_since(
        self, zone: str, name: str, start: int
    ) -> tuple[builtins.list[str], int, str]:
        """Whole lines of the serial port from ``start`` (paged by ``next``), the next offset,
        and the unfinished last line."""
        lines: builtins.list[str] = []
        rest = ""
        offset = start
        while True:
            contents, nxt = await self._serial_read(zone, name, offset)
            if not contents:
                return lines, nxt, rest
            text = rest + contents
            *whole, rest = text.split("\n")
            lines += whole
            if nxt <= offset:
                return lines, nxt, rest
            offset = nxt

    async def _exit_from_serial(self, zone: str, name: str, launch_id: str) -> int | None:
        rid = f"{zone}/{name}"
        start = self._serial_next.get(rid, 0)
        try:
            lines, nxt, rest = await self._serial_lines_since(zone, name, start)
        except ProviderError:
            self._exits.read(rid, None)
            return None
        seen = self._serial_lines.setdefault(rid, [])
        seen += [
            t for t in (_serial_text(line) for line in lines) if t is not None and parse_marker(t)
        ]
        # Re-read the unfinished line next time.
        self._serial_next[rid] = nxt - len(rest.encode())
        code = exit_code_in(seen, launch_id)
        self._exits.read(rid, code)
        return code

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """The command's output on a GPU VM, from its serial port, without runctl's markers.

        Without ``follow``: what the serial port holds now (Google keeps the last 1 MB).
        With ``follow``: polls every ``poll_interval`` seconds until the command ends.

        Raises:
            UnsupportedOperationError: for TPU VMs (no serial-port API).
        """
        kind, _, _ = _parse_id(resource_id)
        if kind == "tpu":
            raise UnsupportedOperationError(
                NAME,
                "logs",
                "TPU VMs have no serial-port API; read the output with `gcloud compute tpus "
                "tpu-vm ssh` or in Cloud Logging (the exit code is still reported)",
            )
        return self._logs(resource_id, follow=follow)

    async def _logs(self, resource_id: str, *, follow: bool) -> AsyncIterator[str]:
        _, zone, name = _parse_id(resource_id)
        launch_id = self._launch_ids.get(resource_id)
        if launch_id is None:
            launch_id = (await self.get(resource_id)).launch_id
        offset = 0
        code: int | None = None
        while True:
            lines, nxt, tail = await self._serial_lines_since(zone, name, offset)
            # An unfinished last line is read again next time; shown now if not following.
            offset = nxt - len(tail.encode())
            if tail and not follow:
                lines.append(tail)
            for line in lines:
                text = _serial_text(line)
                if text is None:
                    continue
                marker = parse_marker(text)
                if marker is None:
                    yield text
                elif marker.launch_id == launch_id:
                    code = marker.exit_code
            if not follow or code is not None:
                break
            try:
                current = await self._get_instance(zone, name)
            except NotFoundError:
                break
            if gce_state(current.status) in (_S.STOPPED, _S.TERMINATED):
                break
            await self._sleep(self._poll)
        if code is not None:
            self._exits.read(resource_id, code)


def _composed(snapshot: Any) -> list[Offer]:
    """The composed offers of one loaded snapshot, built once per snapshot."""
    key = id(snapshot)
    found = _COMPOSED.get(key)
    if found is None or found[0] is not snapshot:
        gcp_rows = snapshot.offers.select(OfferQuery(providers=(NAME,)))
        found = _COMPOSED[key] = (snapshot, gcp_offers(gcp_rows))
        while len(_COMPOSED) > 2:
            _COMPOSED.pop(next(iter(_COMPOSED)))
    return found[1]


#: The last snapshots' composed offers (the snapshot is kept, so its id is not reused).
_COMPOSED: dict[int, tuple[Any, list[Offer]]] = {}
