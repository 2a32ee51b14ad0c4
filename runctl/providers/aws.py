"""AWS EC2: GPU and accelerator instances (on-demand and spot) through boto3.

Prerequisites
    ``pip install 'runctl[aws]'`` (boto3; imported the first time the provider is
    used, never by ``import runctl``), an AWS account whose quotas allow the
    instance family (GPU quotas start at 0 vCPUs in new accounts), and a default
    VPC in the region or a ``subnet`` setting. The IAM actions runctl needs are
    listed in ``docs/providers/aws.md``.

Credentials and region, as the AWS CLI finds them
    Credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and
    ``AWS_SESSION_TOKEN``), a profile (``AWS_PROFILE`` or the ``profile`` setting)
    in ``~/.aws/credentials`` or ``~/.aws/config`` (keys, SSO, ``role_arn``,
    ``credential_process``), web identity, the container role, the instance role.
    :meth:`AwsProvider.check` says which one it found, without a network call.
    Region: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the ``region`` setting
    (``RUNCTL_AWS_REGION`` or ``[providers.aws]`` in the config file), then the
    profile's ``region``. ``AWS_ENDPOINT_URL_EC2`` / ``AWS_ENDPOINT_URL`` point
    runctl elsewhere (a proxy, moto), as they do boto3.

Settings (``[providers.aws]`` or ``RUNCTL_AWS_<NAME>``)
    ``region``, ``regions`` (comma-separated, searched by ``offers`` and ``list``;
    default: the region), ``profile``, ``subnet`` (a subnet id: its zone is then
    the only one tried), ``security_groups`` (comma-separated ids), ``key_name``
    (an EC2 key pair), ``image_name`` / ``image_owner`` (the default image's name
    pattern and owner).

Capabilities
    =================  =====  =====================================================================
    capability         value  how
    =================  =====  =====================================================================
    live_offers        yes    GPU facts from ``DescribeInstanceTypes``, on-demand prices from the
                              offline snapshot, spot prices live from ``DescribeSpotPriceHistory``
    stop_start         yes    ``StopInstances`` / ``StartInstances`` (on-demand, EBS-backed)
    spot               yes    ``InstanceMarketOptions``: one-time, terminated on interruption
    logs               yes    ``GetConsoleOutput`` (the serial console; it lags, see below)
    follow_logs        yes    the console polled every ``log_poll`` seconds
    multi_node         no     one instance per launch
    ssh                yes    ``key_name`` (a key pair), or ``ssh_public_key`` put in place by
                              user data; the security group must allow port 22
    ttl                yes    the machine itself: ``shutdown -P +<minutes>`` from user data, with
                              ``InstanceInitiatedShutdownBehavior=terminate``
    idempotent_launch  yes    ``ClientToken`` derived from the launch id, and a look by tag first
    tags               yes    EC2 tags on the instance and its volumes (``TagSpecifications``)
    exit_code          yes    runctl's wrapper prints it on the serial console; ``get`` reads it
    =================  =====  =====================================================================

How a launch maps to EC2
    * The instance type is ``spec.offer.instance_type``, ``spec.instance_type``, or
      the cheapest offer in the region matching ``spec.gpu`` (canonical models
      matched exactly, as :func:`runctl.gpus.gpu_matches` does) and ``spec.gpu_count``.
    * ``spec.image`` is an AMI id; without one, the newest AWS Deep Learning Base OSS
      Nvidia Driver GPU AMI (Ubuntu 22.04, owner 898082745236) for the instance's
      architecture, found by name. ``spec.disk_gb`` sizes the root volume (gp3);
      every volume is deleted on termination. No security group, key pair or other
      side resource is created.
    * The command runs from user data (cloud-init, as root) inside runctl's wrapper
      (:mod:`runctl._workload`), its output and the ``[runctl:<launch id>] exit <N>``
      marker written to the serial console (``/dev/ttyS0``, else ``/dev/console``).
      When the command ends the script powers the machine off, which
      ``InstanceInitiatedShutdownBehavior=terminate`` turns into a termination: the
      bill stops with the command. ``spec.ttl`` becomes ``shutdown -P +<minutes>``
      (rounded up, counted from when the script starts), re-armed at every boot, so
      the machine dies on time even when nothing on the launching side runs.
    * ``spec.env`` is exported by the user data script. User data is readable by
      anyone allowed ``ec2:DescribeInstanceAttribute`` and from the instance's
      metadata service: do not put secrets there.
    * No zone asked (``options["zone"]``) and no ``subnet`` set: EC2 picks one, and
      on ``InsufficientInstanceCapacity`` each other zone offering the type is tried.
    * ``spec.spot`` launches one-time spot capacity, terminated on interruption
      (``options["max_price"]`` caps the hourly price; default: the on-demand price).

Reading state and the exit code
    Every EC2 state code maps to one state (:data:`AWS_STATES`); ``state_reason`` is the
    detail. A spot interruption (``Server.SpotInstanceTermination``) is PREEMPTED. While
    the instance runs, and after it powered itself off, ``get`` reads the console
    (``GetConsoleOutput`` with ``Latest``, at most every ``exit_check_interval``
    seconds) for the exit marker: found, the resource is SUCCEEDED (exit 0) or FAILED
    with ``exit_code``. EC2 posts console output with a lag (seconds to minutes; older
    Xen types only at boot, reboot and termination), so an instance that powered itself
    off without the marker yet shown is reported TERMINATING for up to
    ``console_grace`` seconds, then TERMINATED with the code unknown. The console keeps
    the last 64 KB only.

Prices
    On-demand: the snapshot's Linux price for the type in the region; spot: the
    current ``DescribeSpotPriceHistory`` price per zone (``source="live"``). Both
    bill per second with a 60-second minimum. EBS volumes are billed on top.
"""

from __future__ import annotations

import base64
import configparser
import functools
import hashlib
import logging
import math
import re
import shlex
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ..cost import Money, Price
from ..errors import (
    AuthenticationError,
    CapacityError,
    ConfigurationError,
    ConflictError,
    MalformedResponseError,
    MissingCredentialsError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitedError,
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
    gpu_for_instance_type,
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
    import anyio

    from ..config import ProviderConfig

__all__ = [
    "AWS_STATES",
    "DLAMI_NAME",
    "DLAMI_OWNER",
    "AwsInstance",
    "AwsInstanceType",
    "AwsProvider",
    "aws_state",
    "client_token",
    "user_data",
]

NAME = "aws"
logger = logging.getLogger("runctl.providers.aws")

#: The AWS account that publishes the Deep Learning AMIs.
DLAMI_OWNER = "898082745236"
#: The default image, newest first by name: NVIDIA driver, CUDA, Docker, EFA.
DLAMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"
DLAMI_NAME_ARM64 = "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"
#: Instance families with accelerators: GPUs (p, g), Trainium, Inferentia, Gaudi/AI100 (dl).
FAMILIES = ("p*", "g*", "trn*", "inf*", "dl*")
#: EC2 bills Linux on-demand and spot per second, with a 60 s minimum.
BILLING_INCREMENT = timedelta(seconds=1)
MINIMUM_DURATION = timedelta(seconds=60)
#: EC2 refuses user data over 16 KB (before base64).
USER_DATA_LIMIT = 16 * 1024
#: Tag EC2 shows as the instance's name.
TAG_AWS_NAME = "Name"
#: Accelerator instance types per (endpoint, region), read once per process.
_INSTANCE_TYPES: dict[tuple[str, str], dict[str, AwsInstanceType]] = {}
#: "User initiated (2026-12-01 10:00:00 GMT)": when a user stopped or terminated it.
_TRANSITION_TIME = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)")
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")

# --- states -------------------------------------------------------------------------------------

_S = ResourceState
#: Every EC2 instance state name, mapped to runctl's state (before the reason is looked at).
AWS_STATES: Mapping[str, ResourceState] = {
    "pending": _S.PROVISIONING,  # 0: booting
    "running": _S.RUNNING,  # 16
    "shutting-down": _S.TERMINATING,  # 32
    "terminated": _S.TERMINATED,  # 48: still listed for about an hour
    "stopping": _S.STOPPING,  # 64
    "stopped": _S.STOPPED,  # 80: EBS kept (and billed), compute not
}
#: The low byte of ``State.Code`` names the state; the high byte is internal to EC2.
STATE_CODES: Mapping[int, str] = {
    0: "pending", 16: "running", 32: "shutting-down", 48: "terminated", 64: "stopping",
    80: "stopped",
}
#: ``StateReason`` codes that mean EC2 took a spot instance back.
SPOT_INTERRUPTIONS = frozenset({"Server.SpotInstanceTermination", "Server.SpotInstanceShutdown"})
#: ``StateReason`` codes of an instance that ended by powering itself off (the command
#: ended, or the TTL timer fired).
SELF_SHUTDOWN = "Client.InstanceInitiatedShutdown"


def aws_state(raw: str | None, code: int | None = None, reason: str | None = None) -> ResourceState:
    """runctl's state for an EC2 instance state and its ``StateReason`` code.

    The state code wins over the name when both are given (its low byte). A spot
    interruption is PREEMPTED; a termination EC2 caused for another reason
    (``Server.InternalError``, a volume limit ...) is FAILED; anything unknown UNKNOWN.
    """
    name = STATE_CODES.get(code & 0xFF) if code is not None else None
    name = name or raw
    state = AWS_STATES.get(name or "", _S.UNKNOWN)
    if state in (_S.TERMINATING, _S.TERMINATED) and reason:
        if reason in SPOT_INTERRUPTIONS:
            return _S.PREEMPTED
        if reason.startswith("Server.") or reason in (
            "Client.VolumeLimitExceeded", "Client.InternalError", "Client.InvalidSnapshot.NotFound",
        ):
            return _S.FAILED
    return state


# --- wire models --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AwsInstanceType:
    """One entry of ``DescribeInstanceTypes``: the machine and its accelerators."""

    name: str
    gpu: Gpu | None = None
    gpu_count: int = 0
    vcpus: int | None = None
    memory_gb: float | None = None
    architectures: tuple[str, ...] = ()
    spot: bool = True

    @classmethod
    def from_wire(cls, data: object) -> AwsInstanceType:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""

        f = Fields(data, "InstanceTypeInfo", provider=NAME)
        name = f.text("InstanceType", required=True)
        raw_name, count, memory_mib = _accelerator(f)
        memory_gb = memory_mib / 1024 if memory_mib else None
        gpu: Gpu | None = None
        if raw_name is not None:
            # The machine type names the exact part (p4d is the 40 GB SXM A100); the
            # accelerator's own name is the fallback for types runctl's table lacks.
            found = gpu_for_instance_type(name, provider=NAME, memory_gb=memory_gb)
            if found is not None and found[0].known:
                gpu = attrs.evolve(found[0], raw=raw_name)
            else:
                gpu = normalize_gpu(raw_name, provider=NAME, memory_gb=memory_gb)
        vcpu = f.obj("VCpuInfo")
        memory = f.obj("MemoryInfo")
        processor = f.obj("ProcessorInfo")
        classes = [c for c in f.items("SupportedUsageClasses") if isinstance(c, str)]
        mib = memory.integer("SizeInMiB") if memory is not None else None
        return cls(
            name=name,
            gpu=gpu,
            gpu_count=count,
            vcpus=vcpu.integer("DefaultVCpus") if vcpu is not None else None,
            memory_gb=mib / 1024 if mib else None,
            architectures=tuple(
                a for a in (processor.items("SupportedArchitectures") if processor else [])
                if isinstance(a, str)
            ),
            spot=not classes or "spot" in classes,
        )


def _accelerator(f: Fields) -> tuple[str | None, int, int | None]:
    """(name, count, memory per device in MiB) of the accelerators ``f`` lists, if any."""
    for key, devices, vendor_key in (
        ("GpuInfo", "Gpus", "Manufacturer"),
        ("NeuronInfo", "NeuronDevices", None),
        ("InferenceAcceleratorInfo", "Accelerators", "Manufacturer"),
    ):
        info = f.obj(key)
        if info is None:
            continue
        for item in info.items(devices):
            device = Fields(item, f"{f.what}.{key}.{devices}", provider=NAME)
            name = device.text("Name")
            if not name:
                continue
            vendor = device.text(vendor_key) if vendor_key else None
            memory = device.obj("MemoryInfo")
            return (
                f"{vendor} {name}" if vendor and vendor.lower() not in name.lower() else name,
                device.integer("Count") or 1,
                memory.integer("SizeInMiB") if memory is not None else None,
            )
    return None, 0, None


@attrs.frozen(kw_only=True)
class AwsInstance:
    """An instance as ``DescribeInstances`` returns it, the parts runctl reads."""

    id: str
    region: str
    state: str | None = None
    state_code: int | None = None
    reason_code: str | None = None
    reason_message: str | None = None
    transition_reason: str | None = None
    instance_type: str | None = None
    zone: str | None = None
    lifecycle: str | None = None
    launched_at: datetime | None = None
    created_at: datetime | None = None
    address: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_wire(cls, data: object, region: str) -> AwsInstance:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(data, "Instance", provider=NAME)
        state = f.obj("State")
        reason = f.obj("StateReason")
        placement = f.obj("Placement")
        tags: dict[str, str] = {}
        for item in f.items("Tags"):
            if isinstance(item, Mapping) and isinstance(item.get("Key"), str):
                tags[item["Key"]] = str(item.get("Value") or "")
        launched = _when(f, "LaunchTime")
        # LaunchTime moves to the last start; the root volume was attached at the first.
        attached = [
            _when(Fields(m["Ebs"], "Instance.BlockDeviceMappings.Ebs", provider=NAME),
                  "AttachTime")
            for m in f.items("BlockDeviceMappings")
            if isinstance(m, Mapping) and isinstance(m.get("Ebs"), Mapping)
        ]
        first = min((a for a in attached if a is not None), default=None)
        return cls(
            id=f.text("InstanceId", required=True),
            region=region,
            state=state.text("Name") if state is not None else None,
            state_code=state.integer("Code") if state is not None else None,
            reason_code=(reason.text("Code") or None) if reason is not None else None,
            reason_message=(reason.text("Message") or None) if reason is not None else None,
            transition_reason=f.text("StateTransitionReason") or None,
            instance_type=f.text("InstanceType"),
            zone=placement.text("AvailabilityZone") if placement is not None else None,
            lifecycle=f.text("InstanceLifecycle"),
            launched_at=launched,
            created_at=first if first is not None and (launched is None or first <= launched)
            else launched,
            address=f.text("PublicIpAddress") or f.text("PrivateIpAddress"),
            tags=tags,
        )

    @property
    def raw_state(self) -> str | None:
        """The state name (from the code when EC2 sent one)."""
        if self.state_code is not None:
            return STATE_CODES.get(self.state_code & 0xFF, self.state)
        return self.state

    @property
    def launch_id(self) -> str | None:
        return self.tags.get(TAG_LAUNCH_ID)

    @property
    def shut_itself_down(self) -> bool:
        """The instance ended by powering itself off (its command ended, or its TTL)."""
        return self.reason_code == SELF_SHUTDOWN and self.raw_state in (
            "shutting-down", "terminated",
        )


# --- the user data script -----------------------------------------------------------------------


def user_data(spec: LaunchSpec) -> str:
    """The user data script that runs ``spec.command`` on the instance (see the module docstring).

    It is a function of the spec alone (no clock, no randomness), so a retried
    launch sends the same parameters under the same ``ClientToken``.

    Raises:
        ValidationError: the script would exceed EC2's 16 KB user data limit.
    """
    lines = [
        "#!/bin/sh",
        f"# runctl launch {spec.launch_id}: runs the command under runctl's wrapper, its output",
        "# on the serial console, then powers the machine off (InstanceInitiatedShutdownBehavior",
        "# is terminate, so that ends the instance and its bill).",
    ]
    if spec.ttl is not None:
        seconds = max(1, math.ceil(spec.ttl.total_seconds()))
        minutes = max(1, math.ceil(seconds / 60))
        per_boot = '"$d/runctl-ttl.sh"'
        rearm = (
            "#!/bin/sh\\n# runctl: the TTL deadline, re-armed at every boot\\n"
            "left=$(( %s - $(date +%%s) ))\\n"
            'if [ "$left" -le 0 ]; then poweroff; else shutdown -P +$(( (left + 59) / 60 )); fi\\n'
        )
        lines += [
            f"# TTL {seconds} s: the machine powers itself off then, whatever else happens.",
            # systemd's shutdown schedules and returns; `timeout` keeps one that would wait
            # (sysvinit) from holding up the command, and the fallback then keeps time.
            f"timeout 10 shutdown -P +{minutes} >/dev/null 2>&1 || "
            f"{{ (sleep {seconds}; poweroff) >/dev/null 2>&1 & }}",
            f"deadline=$(( $(date +%s) + {seconds} ))",
            # cloud-init runs per-boot scripts at every later boot (RUNCTL_CLOUD_DIR: tests).
            'd="${RUNCTL_CLOUD_DIR:-/var/lib/cloud}/scripts/per-boot"',
            'if [ -d "$d" ]; then',
            f"  printf '{rearm}' \"$deadline\" > {per_boot} && chmod 755 {per_boot}",
            "fi",
        ]
    if spec.ssh_public_key:
        key = shlex.quote(spec.ssh_public_key.strip())
        lines += [
            f"k={key}",
            "for h in /home/ubuntu /home/ec2-user; do",
            '  [ -d "$h" ] || continue',
            '  mkdir -p "$h/.ssh" && printf "%s\\n" "$k" >> "$h/.ssh/authorized_keys"',
            '  chown -R "$(stat -c %u:%g "$h")" "$h/.ssh"; chmod 700 "$h/.ssh"',
            "done",
        ]
    lines.append('export HOME="${HOME:-/root}"')
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(spec.env.items())]
    script = wrap_command(
        spec.command, spec.launch_id, shell=spec.shell, workdir=spec.workdir, keep_alive=":"
    )
    lines += [
        # The serial console is what GetConsoleOutput returns; /dev/console reaches it on
        # images whose kernel console is ttyS0. RUNCTL_CONSOLE is a seam for tests.
        'o="${RUNCTL_CONSOLE:-}"',
        'if [ -z "$o" ]; then',
        "  for c in /dev/ttyS0 /dev/console; do",
        '    if (: >>"$c") 2>/dev/null; then o=$c; break; fi',
        "  done",
        "fi",
        'if [ -n "$o" ]; then exec >>"$o" 2>&1; fi',
        f"sh -c {shlex.quote(script)} </dev/null",
        "sync",
        "poweroff",
        "",
    ]
    text = "\n".join(lines)
    size = len(text.encode())
    if size > USER_DATA_LIMIT:
        raise ValidationError(
            "command",
            f"the user data script would be {size} bytes; EC2 accepts at most {USER_DATA_LIMIT}",
            allowed="a shorter command and env (ship large inputs in the image or from S3)",
        )
    return text


def client_token(launch_id: str, zone: str | None) -> str:
    """The ``ClientToken`` of one ``RunInstances`` attempt of a launch.

    Derived from the launch id, so a retried launch is the same request to EC2; one
    token per zone tried, since EC2 refuses a token reused with other parameters.
    """
    digest = hashlib.sha256(f"runctl:{launch_id}:{zone or '*'}".encode()).hexdigest()
    return f"runctl-{digest[:40]}"


# --- errors -------------------------------------------------------------------------------------

#: EC2 error codes and the runctl error each means. ``InvalidAMIID.*`` and the other
#: input errors become ``ValidationError`` (:data:`_INPUT_ERRORS`).
_ERRORS: Mapping[str, type[ProviderError]] = {
    "InsufficientInstanceCapacity": CapacityError,
    "InsufficientHostCapacity": CapacityError,
    "InsufficientCapacity": CapacityError,
    "InsufficientReservedInstanceCapacity": CapacityError,
    "InstanceLimitExceeded": QuotaExceededError,
    "VcpuLimitExceeded": QuotaExceededError,
    "MaxSpotInstanceCountExceeded": QuotaExceededError,
    "InsufficientFreeAddressesInSubnet": QuotaExceededError,
    "VolumeLimitExceeded": QuotaExceededError,
    "RequestLimitExceeded": RateLimitedError,
    "Throttling": RateLimitedError,
    "ThrottlingException": RateLimitedError,
    "UnauthorizedOperation": AuthenticationError,
    "AuthFailure": AuthenticationError,
    "InvalidClientTokenId": AuthenticationError,
    "SignatureDoesNotMatch": AuthenticationError,
    "ExpiredToken": AuthenticationError,
    "RequestExpired": AuthenticationError,
    "OptInRequired": AuthenticationError,
    "Blocked": AuthenticationError,
    "InvalidInstanceID.NotFound": NotFoundError,
    "InvalidInstanceID.Malformed": NotFoundError,
    "IncorrectInstanceState": ConflictError,
    "IncorrectState": ConflictError,
    "IdempotentParameterMismatch": ConflictError,
    "InternalError": ServerError,
    "InternalFailure": ServerError,
    "ServiceUnavailable": ServerError,
    "Unavailable": ServerError,
}
#: EC2 error codes that mean bad input, and the field of the spec they name
#: (``None``: read the field from the message).
_INPUT_ERRORS: Mapping[str, str | None] = {
    "InvalidAMIID": "image",  # .NotFound, .Malformed, .Unavailable
    "InvalidInstanceType": "instance_type",
    "InvalidKeyPair": "options.key_name",
    "InvalidSubnetID": "subnet",
    "InvalidSubnet": "subnet",
    "InvalidGroup": "options.security_groups",
    "InvalidGroupId": "options.security_groups",
    "InvalidBlockDeviceMapping": "disk_gb",
    "InvalidUserData": "command",
    "SpotMaxPriceTooLow": "options.max_price",
    "InvalidParameterValue": None,
    "InvalidParameterCombination": None,
    "InvalidParameter": None,
    "MissingParameter": None,
    "UnknownParameter": None,
}
#: Words of an EC2 message and the spec field they point at, first match wins.
_FIELD_WORDS: tuple[tuple[str, str], ...] = (
    ("tag key", "tags"),
    ("tag value", "tags"),
    ("tagspecification", "tags"),
    ("instancetype", "instance_type"),
    ("instance type", "instance_type"),
    ("imageid", "image"),
    ("ami", "image"),
    ("architecture", "image"),
    ("volume", "disk_gb"),
    ("blockdevice", "disk_gb"),
    ("keyname", "options.key_name"),
    ("key pair", "options.key_name"),
    ("subnet", "subnet"),
    ("securitygroup", "options.security_groups"),
    ("security group", "options.security_groups"),
    ("userdata", "command"),
    ("availabilityzone", "options.zone"),
    ("availability zone", "options.zone"),
    ("spotprice", "options.max_price"),
    ("maxprice", "options.max_price"),
    ("iaminstanceprofile", "options.instance_profile"),
    ("tag", "tags"),
)


def _input_field(code: str, message: str) -> str | None:
    """The spec field an EC2 input error names, or ``None`` if ``code`` is not one."""
    head = code.split(".", 1)[0]
    if code not in _INPUT_ERRORS and head not in _INPUT_ERRORS:
        return None
    field = _INPUT_ERRORS.get(code, _INPUT_ERRORS.get(head))
    if field is not None:
        return field
    squashed = message.lower()
    for word, name in _FIELD_WORDS:
        if word in squashed or word in squashed.replace(" ", ""):
            return name
    return "spec"


def _is_zone_capacity(code: str, message: str) -> bool:
    """An error that another availability zone might not give."""
    if code in ("InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity"):
        return True
    return code == "Unsupported" and "availability zone" in message.lower()


def _map_client_error(error: Any, operation: str) -> Exception:
    """The runctl error for a botocore ``ClientError``."""
    response = getattr(error, "response", {}) or {}
    err = response.get("Error", {}) or {}
    meta = response.get("ResponseMetadata", {}) or {}
    code = str(err.get("Code") or "Unknown")
    message = str(err.get("Message") or code)
    status = meta.get("HTTPStatusCode")
    request_id = meta.get("RequestId")
    text = f"{operation}: {code}: {message}"
    field = _input_field(code, message)
    if field is not None:
        where = f" (EC2 request id {request_id})" if request_id else ""
        return ValidationError(field, f"EC2 refused it: {code}: {message}{where}")
    kw: dict[str, Any] = {"provider": NAME, "status": status, "request_id": request_id}
    if _is_zone_capacity(code, message):
        found: Exception = CapacityError(text, **kw)
    else:
        cls = _ERRORS.get(code)
        if cls is None:
            cls = ServerError if isinstance(status, int) and status >= 500 else ProviderError
        found = cls(text, **kw)
    found.aws_code = code  # type: ignore[attr-defined]
    return found


def _map_error(error: BaseException, operation: str) -> Exception | None:
    """The runctl error for an exception of boto3/botocore; ``None`` for anything else."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    if isinstance(error, bx.ClientError):
        return _map_client_error(error, operation)
    if isinstance(error, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return MissingCredentialsError(NAME, _LOOKED_IN, _CREDENTIALS_HINT)
    if isinstance(error, bx.ProfileNotFound):
        return ConfigurationError(f"aws: {error}")
    if isinstance(error, bx.NoRegionError):
        return ConfigurationError(f"aws: no region: {_REGION_HINT}")
    if isinstance(error, (bx.SSOError, bx.TokenRetrievalError, bx.UnauthorizedSSOTokenError)):
        return AuthenticationError(f"{operation}: {error}", provider=NAME)
    if isinstance(error, ResponseParserError):
        return MalformedResponseError(f"{operation}: {error}", provider=NAME)
    if isinstance(error, (bx.ConnectTimeoutError, bx.EndpointConnectionError)):
        # Never connected: the request did not reach EC2.
        return ProviderConnectionError(f"{operation}: {error}", provider=NAME)
    if isinstance(error, (bx.ReadTimeoutError, bx.ConnectionClosedError)):
        lost: ProviderConnectionError = (
            ProviderTimeoutError(f"{operation}: {error}", provider=NAME)
            if isinstance(error, bx.ReadTimeoutError)
            else ProviderConnectionError(f"{operation}: {error}", provider=NAME)
        )
        lost.maybe_applied = True
        return lost
    if isinstance(error, bx.HTTPClientError):
        failed = ProviderConnectionError(f"{operation}: {error}", provider=NAME)
        failed.maybe_applied = True
        return failed
    if isinstance(error, bx.BotoCoreError):
        return ProviderError(f"{operation}: {error}", provider=NAME)
    return None


# --- credentials and region (no boto3, no network) ----------------------------------------------

_LOOKED_IN = (
    "env AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    "the profile in ~/.aws/credentials and ~/.aws/config (AWS_PROFILE, setting profile)",
    "env AWS_WEB_IDENTITY_TOKEN_FILE",
    "env AWS_CONTAINER_CREDENTIALS_*",
    "the EC2 instance role",
)
_CREDENTIALS_HINT = "Run `aws configure` (or `aws configure sso`), or set AWS_PROFILE"
_REGION_HINT = "set AWS_REGION, or region in [providers.aws] of runctl's config file"
_PROFILE_CREDENTIAL_KEYS = {
    "aws_access_key_id": "keys",
    "sso_session": "SSO",
    "sso_start_url": "SSO",
    "role_arn": "assumed role",
    "credential_process": "credential_process",
    "web_identity_token_file": "web identity",
    "login_session": "console login",
}


@attrs.frozen(kw_only=True)
class _Where:
    """Where the AWS CLI would find credentials and region, read from files and env only."""

    profile: str | None
    credentials: str | None
    region: str | None


def _aws_files(environ: Mapping[str, str]) -> tuple[Path, Path]:
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    credentials = environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws" / "credentials")
    config = environ.get("AWS_CONFIG_FILE") or str(home / ".aws" / "config")
    return Path(credentials).expanduser(), Path(config).expanduser()


def _read_ini(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        pass  # boto3 will say what is wrong with the file when it is used
    return parser


def _on_ec2() -> bool:
    for name in ("board_vendor", "sys_vendor"):
        try:
            text = Path(f"/sys/devices/virtual/dmi/id/{name}").read_text()
        except OSError:
            continue
        if "amazon" in text.lower():
            return True
    return False


def _where(config: ProviderConfig) -> _Where:
    env = config.environ
    profile = (
        config.setting("profile", env=("AWS_PROFILE", "AWS_DEFAULT_PROFILE")) or None
    )
    credentials_file, config_file = _aws_files(env)
    creds_ini, config_ini = _read_ini(credentials_file), _read_ini(config_file)
    name = profile or "default"
    section = name if name == "default" else f"profile {name}"
    in_config = dict(config_ini[section]) if config_ini.has_section(section) else {}
    if name == "default" and not in_config and config_ini.has_section("profile default"):
        in_config = dict(config_ini["profile default"])
    found: str | None = None
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        found = "env AWS_ACCESS_KEY_ID"
    elif creds_ini.has_section(name) and creds_ini.has_option(name, "aws_access_key_id"):
        found = f"profile {name!r} in {credentials_file}"
    else:
        kind = next((k for key, k in _PROFILE_CREDENTIAL_KEYS.items() if key in in_config), None)
        if kind is not None:
            found = f"profile {name!r} in {config_file} ({kind})"
        elif env.get("AWS_WEB_IDENTITY_TOKEN_FILE") and env.get("AWS_ROLE_ARN"):
            found = "web identity (env AWS_WEB_IDENTITY_TOKEN_FILE)"
        elif env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI"
        ):
            found = "the container role (env AWS_CONTAINER_CREDENTIALS_*)"
        elif _on_ec2() and env.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":
            found = "the EC2 instance role (instance metadata; not verified without a call)"
    region = (
        config.setting("region", env=("AWS_REGION", "AWS_DEFAULT_REGION"))
        or in_config.get("region")
        or None
    )
    return _Where(profile=profile, credentials=found, region=region)


# --- the provider -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Plan:
    """Everything one launch sends, decided before anything is created."""

    region: str
    instance_type: AwsInstanceType
    image_id: str
    root_device: str | None
    root_gb: int | None
    user_data: str
    zones: tuple[str | None, ...]
    zone_asked: bool
    price: Price | None


class AwsProvider(ProviderBase):
    """EC2 instances through boto3 (see the module docstring).

    Args:
        config: runctl's configuration for ``aws``.
        sleep: the async sleep used between retries and polls (tests).
        clock: a monotonic clock, for the exit-code throttle and the console grace (tests).
        max_threads: the most boto3 calls in flight at once (one limiter per provider).
        attempts: tries of a call EC2 throttles or fails on its side (``RequestLimitExceeded``,
            5xx), with exponential backoff between them.
        exit_check_interval: the least time, in seconds, between two console reads of one
            instance by :meth:`get` looking for the command's end.
        console_grace: how long, in seconds, an instance that powered itself off is
            reported TERMINATING while its console output may still bring the exit code.
        log_poll: seconds between console reads of ``logs(follow=True)``.
    """

    name: ClassVar[str] = NAME

    def __init__(
        self,
        config: ProviderConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        max_threads: int = 8,
        attempts: int = 5,
        exit_check_interval: float = 15.0,
        console_grace: float = 600.0,
        log_poll: float = 10.0,
    ) -> None:
        super().__init__(config)
        self._sleep_fn = sleep
        self._clock = clock or time.monotonic
        self._max_threads = max_threads
        self._limiter_obj: anyio.CapacityLimiter | None = None
        self._attempts = max(1, attempts)
        self._exits = ExitCodes(every=exit_check_interval, clock=self._clock)
        self._console_grace = console_grace
        self._log_poll = log_poll
        self._clients: dict[str, Any] = {}
        self._client_lock = threading.Lock()
        self._types: dict[str, dict[str, AwsInstanceType]] = {}
        self._images: dict[tuple[str, str], tuple[str, str | None, int | None]] = {}
        #: When each self-terminated instance was first seen without its exit marker.
        self._gone_at: dict[str, float] = {}
        self._launch_ids: dict[str, str] = {}
        self._where_found: _Where | None = None
        self._ended_seen: dict[str, datetime] = {}
        self._no_latest: set[str] = set()
        self._od_prices: dict[str, dict[str, Price]] = {}

    # --- configuration --------------------------------------------------------------------------

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether credentials and a region are there, and where they came from (no network)."""
        where = _where(config)
        if where.credentials is None:
            looked = ", ".join(_LOOKED_IN)
            return Availability(usable=False, reason=f"no AWS credentials (looked in: {looked})")
        if where.region is None:
            return Availability(usable=False, reason=f"no region: {_REGION_HINT}")
        return Availability(usable=True, reason=f"{where.credentials}; region {where.region}")

    @property
    def capabilities(self) -> Capabilities:
        """What EC2 supports through runctl (see the module docstring)."""
        return Capabilities(
            live_offers=True,
            stop_start=True,
            spot=True,
            logs=True,
            follow_logs=True,
            multi_node=False,
            ssh=True,
            ttl=True,
            idempotent_launch=True,
            tags=True,
            exit_code=True,
        )

    def _where(self) -> _Where:
        if self._where_found is None:
            self._where_found = _where(self.config)
        return self._where_found

    def _region(self) -> str:
        region = self._where().region
        if region is None:
            raise ConfigurationError(f"aws: no region: {_REGION_HINT}")
        if not _REGION.fullmatch(region):
            raise ConfigurationError(f"aws: region {region!r} is not an AWS region name")
        return region

    def _regions(self) -> list[str]:
        listed = self.config.setting("regions")
        if not listed:
            return [self._region()]
        regions = [r.strip() for r in listed.split(",") if r.strip()]
        for region in regions:
            if not _REGION.fullmatch(region):
                raise ConfigurationError(f"aws: regions: {region!r} is not an AWS region name")
        return regions

    def _list_setting(self, key: str, spec: LaunchSpec | None = None) -> list[str]:
        value = (spec.options.get(key) if spec is not None else None) or self.config.setting(key)
        return [v.strip() for v in (value or "").split(",") if v.strip()]

    # --- calling boto3 --------------------------------------------------------------------------

    def _limiter(self) -> anyio.CapacityLimiter:
        if self._limiter_obj is None:
            import anyio

            self._limiter_obj = anyio.CapacityLimiter(self._max_threads)
        return self._limiter_obj

    async def _sleep(self, seconds: float) -> None:
        """Wait (through the ``sleep`` seam in tests)."""
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
        else:
            import anyio

            await anyio.sleep(seconds)

    def _client(self, region: str) -> Any:
        """The EC2 client of ``region``, built on first use (in a worker thread)."""
        with self._client_lock:
            client = self._clients.get(region)
            if client is not None:
                return client
            import boto3
            import botocore.session
            from botocore.config import Config

            env = self.config.environ
            where = self._where()
            session_kw: dict[str, Any] = {}
            if where.profile and not env.get("AWS_ACCESS_KEY_ID"):
                session_kw["profile_name"] = where.profile
            if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
                # The provider's environment may not be the process's (tests, tools).
                session_kw["aws_access_key_id"] = env["AWS_ACCESS_KEY_ID"]
                session_kw["aws_secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
                if env.get("AWS_SESSION_TOKEN"):
                    session_kw["aws_session_token"] = env["AWS_SESSION_TOKEN"]
            try:
                core = botocore.session.Session(profile=session_kw.pop("profile_name", None))
                # botocore parses its 2 MB EC2 model per session; one loader reads it once.
                core.register_component("data_loader", _loader())
                session = boto3.session.Session(botocore_session=core, **session_kw)
            except Exception as e:
                raise _map_error(e, "configuration") or e from e
            endpoint = self._endpoint()
            # Retries are runctl's (with the sleep seam); botocore's would sleep in the thread.
            boto_config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                user_agent_extra="runctl",
            )
            client = session.client(
                "ec2", region_name=region, endpoint_url=endpoint, config=boto_config
            )
            self._clients[region] = client
            return client

    def _call_sync(self, region: str, operation: str, params: Mapping[str, Any]) -> Any:
        try:
            client = self._client(region)
            return getattr(client, operation)(**params)
        except Exception as e:
            mapped = _map_error(e, operation)
            if mapped is None:
                raise
            raise mapped from e

    def _pages_sync(
        self, region: str, operation: str, key: str, params: Mapping[str, Any]
    ) -> list[Any]:
        try:
            paginator = self._client(region).get_paginator(operation)
            items: list[Any] = []
            for page in paginator.paginate(**params):
                found = page.get(key, [])
                if not isinstance(found, list):
                    raise MalformedResponseError(f"{operation}: {key} is not a list", provider=NAME)
                items.extend(found)
            return items
        except Exception as e:
            mapped = _map_error(e, operation)
            if mapped is None:
                raise
            raise mapped from e

    async def _run(self, fn: Callable[[], Any], operation: str, *, idempotent: bool = True) -> Any:
        """``fn`` in a worker thread, retried with backoff when EC2 throttles or fails."""
        import anyio

        delay = 1.0
        for attempt in range(1, self._attempts + 1):
            try:
                return await anyio.to_thread.run_sync(fn, limiter=self._limiter())
            except (RateLimitedError, ServerError) as e:
                # Throttled: not carried out. A 5xx on a create may have been: the caller
                # looks before it tries again.
                if attempt == self._attempts or (isinstance(e, ServerError) and not idempotent):
                    if isinstance(e, RateLimitedError):
                        e.retry_after = delay
                    raise
            except ProviderConnectionError as e:
                if (e.maybe_applied and not idempotent) or attempt == self._attempts:
                    raise
            logger.debug("aws: %s: attempt %d failed; retrying in %.1f s",
                         operation, attempt, delay)
            await self._sleep(delay)
            delay = min(delay * 2, 20.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(
        self, region: str, operation: str, *, idempotent: bool = True, **params: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(
            functools.partial(self._call_sync, region, operation, params),
            operation,
            idempotent=idempotent,
        )
        return result

    async def _pages(self, region: str, operation: str, key: str, **params: Any) -> list[Any]:
        result: list[Any] = await self._run(
            functools.partial(self._pages_sync, region, operation, key, params), operation
        )
        return result

    async def aclose(self) -> None:
        """Close boto3's HTTP connections."""
        import anyio

        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            close = getattr(client, "close", None)
            if close is not None:
                await anyio.to_thread.run_sync(close, limiter=self._limiter())

    # --- instance types and offers --------------------------------------------------------------

    def _endpoint(self) -> str | None:
        return self.config.setting(
            "endpoint_url", env=("AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL")
        )

    async def _instance_types(self, region: str) -> dict[str, AwsInstanceType]:
        """The accelerator instance types of ``region``, read once per process.

        EC2's catalog of instance types changes a few times a year, and reading it is
        a dozen pages: it is kept for the life of the process.
        """
        key = (self._endpoint() or "aws", region)
        cached = _INSTANCE_TYPES.get(key)
        if cached is None:
            items = await self._pages(
                region, "describe_instance_types", "InstanceTypes",
                Filters=[{"Name": "instance-type", "Values": list(FAMILIES)}],
            )
            found = (AwsInstanceType.from_wire(item) for item in items)
            cached = {t.name: t for t in found if t.gpu is not None and t.gpu_count > 0}
            _INSTANCE_TYPES[key] = cached
        self._types[region] = cached
        return cached

    async def _instance_type(self, region: str, name: str) -> AwsInstanceType:
        """One instance type (any family), checked with EC2."""
        known = _INSTANCE_TYPES.get((self._endpoint() or "aws", region), {}).get(name)
        if known is not None:
            return known
        data = await self._call(region, "describe_instance_types", InstanceTypes=[name])
        items = Fields(data, "DescribeInstanceTypes", provider=NAME).items("InstanceTypes")
        if not items:
            raise ValidationError(
                "instance_type", f"{name!r} is not an EC2 instance type in {region}"
            )
        return AwsInstanceType.from_wire(items[0])

    def _on_demand_prices(self, region: str) -> dict[str, Price]:
        """The snapshot's on-demand price of each instance type in ``region`` (blocking)."""
        from .. import catalog
        from ..config import Settings
        from ..offers import select

        cached = self._od_prices.get(region)
        if cached is not None:
            return cached
        settings = Settings(home=self.config.home, environ=self.config.environ)
        snapshot = catalog.load_snapshot(settings, warn=False)
        query = OfferQuery(providers=(NAME,), spot=False, regions=(region,))
        prices: dict[str, Price] = {}
        for offer in select(snapshot.offers, query):
            if offer.region != region:
                continue  # the query's regions are prefixes: us-east-1 also finds us-east-10
            known = prices.get(offer.instance_type)
            if known is None or offer.price.per_hour.amount < known.per_hour.amount:
                prices[offer.instance_type] = offer.price
        self._od_prices[region] = prices
        return prices

    async def _spot_prices(
        self, region: str, types: Sequence[str], zone: str | None = None
    ) -> dict[tuple[str, str], Decimal]:
        """The current spot price of each (instance type, zone)."""
        if not types:
            return {}
        params: dict[str, Any] = {
            "InstanceTypes": list(types),
            "ProductDescriptions": ["Linux/UNIX"],
            # A start time of now gives the price in force now for each type and zone.
            "StartTime": _utcnow(),
        }
        if zone:
            params["AvailabilityZone"] = zone
        history = await self._pages(
            region, "describe_spot_price_history", "SpotPriceHistory", **params
        )
        prices: dict[tuple[str, str], tuple[datetime | None, Decimal]] = {}
        for item in history:
            f = Fields(item, "SpotPrice", provider=NAME)
            type_name, az = f.text("InstanceType"), f.text("AvailabilityZone")
            amount = f.number("SpotPrice")
            if not type_name or not az or amount is None:
                continue
            stamp = item.get("Timestamp") if isinstance(item, Mapping) else None
            stamp = stamp if isinstance(stamp, datetime) else None
            seen = prices.get((type_name, az))
            if seen is None or (stamp is not None and (seen[0] is None or stamp > seen[0])):
                prices[(type_name, az)] = (stamp, amount)
        return {key: amount for key, (_, amount) in prices.items()}

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Accelerator instances in the configured regions: on-demand and spot, cheapest first.

        On-demand prices are the offline snapshot's (EC2 has no price API of its own;
        the Pricing API is another service), one offer per type and region; spot prices
        are read live, one offer per type and zone.
        """
        import anyio

        from ..offers import select

        if query.providers and NAME not in query.providers:
            return []
        regions = [
            r for r in self._regions()
            if not query.regions or any(r.startswith(p) for p in query.regions)
        ]
        now = _utcnow()
        result: list[Offer] = []
        for region in regions:
            types = [
                t for t in (await self._instance_types(region)).values()
                if (not query.gpu or (t.gpu is not None and gpu_matches(query.gpu, t.gpu)))
                and (not query.count or t.gpu_count == query.count)
            ]
            if query.spot is not True:
                prices = await anyio.to_thread.run_sync(
                    self._on_demand_prices, region, limiter=self._limiter()
                )
                result += [
                    self._offer(t, prices[t.name], region)
                    for t in types if t.name in prices
                ]
            if query.spot is not False:
                spot_types = [t for t in types if t.spot]
                spot = await self._spot_prices(region, [t.name for t in spot_types])
                by_name = {t.name: t for t in spot_types}
                for (type_name, zone), amount in sorted(spot.items()):
                    price = _price(amount, by_name[type_name].gpu_count, spot=True, at=now)
                    result.append(self._offer(by_name[type_name], price, region, zone))
        # The core's matcher decides; the filters above only save round trips.
        return select(result, query)

    def _offer(
        self, t: AwsInstanceType, price: Price, region: str, zone: str | None = None
    ) -> Offer:
        return Offer(
            provider=NAME, instance_type=t.name, gpu=t.gpu, gpu_count=t.gpu_count, price=price,
            vcpus=t.vcpus, memory_gb=t.memory_gb, region=region, zone=zone,
        )

    # --- reading instances ----------------------------------------------------------------------

    def _resource_id(self, instance: AwsInstance) -> str:
        try:
            home = self._region()
        except ConfigurationError:
            home = None
        return instance.id if instance.region == home else f"{instance.region}/{instance.id}"

    def _split_id(self, resource_id: str) -> tuple[str, str]:
        region, sep, instance_id = resource_id.rpartition("/")
        if not sep:
            region = self._region()
        if not _INSTANCE_ID.fullmatch(instance_id) or (sep and not _REGION.fullmatch(region)):
            raise NotFoundError(
                f"{resource_id!r} is not an EC2 instance id (i-... or <region>/i-...)",
                provider=NAME,
            )
        return region, instance_id

    def _resource(self, instance: AwsInstance, *, code: int | None = None) -> Resource:
        """The resource for ``instance``; ``code`` is an exit code just read from its console."""
        resource = self._read_resource(instance, code)
        if resource.is_terminal and resource.ended_at is None:
            resource = resource.evolve(ended_at=self._ended_at(instance, resource.id))
        return resource

    def _ended_at(self, instance: AwsInstance, rid: str) -> datetime:
        """When the instance ended: the time EC2 gives for a user's termination, else when
        runctl first saw it ended (EC2 gives no time for the other reasons)."""
        found = _TRANSITION_TIME.search(instance.transition_reason or "")
        if found:
            try:
                return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(
                    tzinfo=timezone.utc
                )
            except ValueError:
                pass
        return self._ended_seen.setdefault(rid, _utcnow())

    def _read_resource(self, instance: AwsInstance, code: int | None) -> Resource:
        rid = self._resource_id(instance)
        raw = instance.raw_state
        state = aws_state(raw, instance.state_code, instance.reason_code)
        detail = instance.reason_message or instance.transition_reason
        if state is _S.UNKNOWN:
            detail = f"EC2 reported state {raw!r}, which runctl does not know"
        elif state is _S.PREEMPTED:
            detail = f"spot interruption: {instance.reason_message or instance.reason_code}"
        elif state is _S.STOPPED:
            detail = "stopped; its EBS volumes are kept (and billed) until it is terminated"
        if instance.launch_id:
            self._launch_ids[rid] = instance.launch_id
        tags = dict(instance.tags)
        resource = Resource(
            id=rid,
            provider=NAME,
            state=state,
            raw_state=raw,
            name=tags.get(TAG_NAME) or tags.get(TAG_AWS_NAME),
            launch_id=instance.launch_id,
            created_at=instance.created_at,
            started_at=instance.launched_at,  # EC2's LaunchTime: the last start
            instance_type=instance.instance_type,
            gpu=None,
            gpu_count=0,
            region=instance.region,
            tags=tags,
            address=instance.address,
            detail=detail,
        )
        known = self._types.get(instance.region, {}).get(instance.instance_type or "")
        if known is not None:
            resource = resource.evolve(gpu=known.gpu, gpu_count=known.gpu_count)
        elif instance.instance_type:

            found = gpu_for_instance_type(instance.instance_type, provider=NAME)
            if found is not None:
                resource = resource.evolve(gpu=found[0], gpu_count=found[1])
        if code is None:
            code = self._exits.get(rid)
        if code is None:
            if state is _S.TERMINATED and instance.shut_itself_down and instance.launch_id:
                first = self._gone_at.setdefault(rid, self._clock())
                if self._clock() - first < self._console_grace:
                    return resource.evolve(
                        state=_S.TERMINATING,
                        detail="the machine powered itself off; waiting for its console output "
                        "to show the command's exit code (EC2 posts it with a lag)",
                    )
                # TERMINATED is final: the console is not read for this one again.
                self._exits.read(rid, None, final=True)
                return resource.evolve(
                    detail="the machine powered itself off (its command ended, or its TTL); "
                    "the exit code never showed in its console output"
                )
            return resource
        if state in (_S.RUNNING, _S.STOPPING, _S.STOPPED) or (
            state in (_S.TERMINATING, _S.TERMINATED) and instance.shut_itself_down
        ):
            # The command ended; a running machine powers itself off right after.
            return ended(resource, code)
        return resource.evolve(exit_code=code)

    async def _describe(
        self, region: str, *, ids: Sequence[str] = (), filters: Sequence[Mapping[str, Any]] = ()
    ) -> list[AwsInstance]:
        params: dict[str, Any] = {}
        if ids:
            params["InstanceIds"] = list(ids)
        if filters:
            params["Filters"] = list(filters)
        reservations = await self._pages(region, "describe_instances", "Reservations", **params)
        found = []
        for reservation in reservations:
            f = Fields(reservation, "Reservation", provider=NAME)
            found += [AwsInstance.from_wire(item, region) for item in f.items("Instances")]
        return found

    async def _instance(self, resource_id: str) -> AwsInstance:
        region, instance_id = self._split_id(resource_id)
        found = await self._describe(region, ids=[instance_id])
        if not found:
            raise NotFoundError(f"no EC2 instance {instance_id} in {region}", provider=NAME)
        return found[0]

    async def _console(self, resource_id: str) -> list[str]:
        """The instance's serial console output (its last 64 KB), as lines."""
        region, instance_id = self._split_id(resource_id)
        data: Mapping[str, Any] | None = None
        if resource_id not in self._no_latest:
            try:
                data = await self._call(
                    region, "get_console_output", InstanceId=instance_id, Latest=True
                )
            except ProviderError as e:
                if getattr(e, "aws_code", None) != "UnsupportedOperation":
                    raise
                # Latest is for Nitro instances; others have it posted at boot and stop.
                self._no_latest.add(resource_id)
        if data is None:
            data = await self._call(region, "get_console_output", InstanceId=instance_id)
        output = data.get("Output") if isinstance(data, Mapping) else None
        if not output:
            return []
        text = _console_text(str(output))
        return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    async def get(self, resource_id: str) -> Resource:
        """The instance as EC2 sees it now; SUCCEEDED or FAILED once its command ended.

        Raises:
            NotFoundError: no such instance (terminated instances vanish after about an hour).
        """
        instance = await self._instance(resource_id)
        rid = self._resource_id(instance)
        code = None
        raw = instance.raw_state
        readable = raw in ("running", "stopping", "stopped") or instance.shut_itself_down
        if readable and instance.launch_id and self._exits.due(rid):
            try:
                code = exit_code_in(await self._console(rid), instance.launch_id)
            except ProviderError as e:
                # A best-effort look: the state stands without it; the next get looks again.
                logger.debug("aws: reading the console of %s failed: %s", rid, e)
            self._exits.read(rid, code)
        return self._resource(instance, code=code)

    def _filters(self, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Instances runctl launched in the configured regions (only those with ``tags``)."""
        wanted = {TAG_MANAGED_BY: "runctl", **(tags or {})}
        found: list[Resource] = []
        for region in self._regions():
            for instance in await self._describe(region, filters=self._filters(wanted)):
                if all(instance.tags.get(k) == v for k, v in wanted.items()):
                    found.append(self._resource(instance))
        return found

    async def _find(self, region: str, launch_id: str) -> Resource | None:
        """The instance of ``launch_id`` in ``region`` that is not terminated, if any."""
        live = ["pending", "running", "shutting-down", "stopping", "stopped"]
        filters = [
            *self._filters({TAG_LAUNCH_ID: launch_id}),
            {"Name": "instance-state-name", "Values": live},
        ]
        for instance in await self._describe(region, filters=filters):
            if instance.launch_id == launch_id and instance.raw_state in live:
                return self._resource(instance)
        return None

    # --- launching ------------------------------------------------------------------------------

    async def _pick_type(
        self, spec: LaunchSpec, region: str
    ) -> tuple[AwsInstanceType, Price | None, str | None]:
        """The instance type for the spec, its price if an offer says, and a zone to try first."""
        if spec.offer is not None:
            if spec.offer.provider != NAME:
                raise ValidationError("offer", f"an offer from {spec.offer.provider!r}",
                                      allowed="an offer from 'aws'")
            t = await self._instance_type(region, spec.offer.instance_type)
            zone = spec.offer.zone if spec.offer.region == region else None
            return t, spec.offer.price, zone
        if spec.instance_type:
            t = await self._instance_type(region, spec.instance_type)
            if spec.gpu_count and t.gpu_count != spec.gpu_count:
                raise ValidationError(
                    "gpu_count",
                    f"{t.name} has {t.gpu_count} accelerators, not {spec.gpu_count}",
                    allowed=f"{t.gpu_count}, or 0 to take the instance type's",
                )
            return t, None, None
        if not spec.gpu:
            raise ValidationError(
                "instance_type",
                "EC2 needs a machine type",
                allowed="spec.instance_type (e.g. 'g6.xlarge'), spec.gpu (e.g. 'L4') or spec.offer",
            )
        query = OfferQuery(gpu=spec.gpu, count=spec.gpu_count or None, spot=spec.spot,
                           regions=(region,), sort="per_hour")
        offers = [o for o in await self.offers(query) if o.region == region]
        if not offers:
            count = f" x{spec.gpu_count}" if spec.gpu_count else ""
            kind = "spot" if spec.spot else "on-demand"
            raise ValidationError(
                "gpu", f"no {kind} EC2 instance type in {region} has {spec.gpu!r}{count}",
                allowed="see `runctl offers --provider aws`",
            )
        best = offers[0]
        types = await self._instance_types(region)
        # A spot offer is per zone: the cheapest zone is tried first.
        return types[best.instance_type], (None if spec.spot else best.price), best.zone

    async def _image(
        self, region: str, spec: LaunchSpec, t: AwsInstanceType
    ) -> tuple[str, str | None, int | None]:
        """(AMI id, root device, its size in GB): the spec's AMI, or the newest default image."""
        if spec.image:
            if not re.fullmatch(r"ami-[0-9a-f]{8,17}", spec.image):
                raise ValidationError(
                    "image", f"{spec.image!r} is not an AMI id",
                    allowed="an AMI id such as 'ami-0123456789abcdef0', or None for the "
                    "default GPU image (EC2 runs machine images, not containers)",
                )
            data = await self._call(region, "describe_images", ImageIds=[spec.image])
            images = Fields(data, "DescribeImages", provider=NAME).items("Images")
            if not images:
                raise ValidationError("image", f"{spec.image} does not exist in {region}")
            return (spec.image, *_root_device(Fields(images[0], "Image", provider=NAME)))
        arch = "arm64" if t.architectures and "x86_64" not in t.architectures else "x86_64"
        cached = self._images.get((region, arch))
        if cached is not None:
            return cached
        pattern = self.config.setting("image_name") or (
            DLAMI_NAME_ARM64 if arch == "arm64" else DLAMI_NAME
        )
        owner = self.config.setting("image_owner") or DLAMI_OWNER
        images = await self._pages(
            region, "describe_images", "Images",
            Owners=[owner],
            Filters=[
                {"Name": "name", "Values": [pattern]},
                {"Name": "state", "Values": ["available"]},
                {"Name": "architecture", "Values": [arch]},
            ],
        )
        parsed = [Fields(i, "Image", provider=NAME) for i in images]
        candidates = [
            (i.text("CreationDate") or "", i.text("Name") or "", i.text("ImageId") or "", i)
            for i in parsed if i.text("ImageId")
        ]
        if not candidates:
            raise ConfigurationError(
                f"aws: no image named {pattern!r} from owner {owner} for {arch} in {region}; "
                "give spec.image an AMI id, or set image_name / image_owner"
            )
        # Newest first: the creation date, then the name (which carries a date stamp).
        _, _, image_id, newest = max(candidates, key=lambda c: c[:3])
        found = (image_id, *_root_device(newest))
        self._images[(region, arch)] = found
        return found

    async def _plan(self, spec: LaunchSpec, region: str) -> _Plan:
        nodes = getattr(spec, "nodes", 1)
        if isinstance(nodes, int) and nodes > 1:
            raise UnsupportedOperationError(
                NAME, "multi-node launches", "one EC2 instance per launch; use nodes=1"
            )
        t, price, hint = await self._pick_type(spec, region)
        if spec.spot and not t.spot:
            raise ValidationError("spot", f"{t.name} is not offered as spot capacity",
                                  allowed="False for this instance type")
        image_id, root, root_gb = await self._image(region, spec, t)
        script = user_data(spec)
        asked = spec.options.get("zone")
        subnet = spec.options.get("subnet") or self.config.setting("subnet")
        if asked:
            if not asked.startswith(region):
                raise ValidationError("options.zone", f"{asked!r} is not a zone of {region}",
                                      allowed=f"a zone such as {region}a")
            zones: tuple[str | None, ...] = (asked,)
        elif subnet:
            zones = (None,)  # the subnet is in one zone
        elif hint and hint.startswith(region):
            # A zone name ("us-east-1b"); the snapshot's offers carry zone ids ("use1-az2"),
            # which differ per account, so those are left to EC2.
            zones = (hint,)
        else:
            zones = (None,)
        if price is None and not spec.spot:
            import anyio

            prices = await anyio.to_thread.run_sync(
                self._on_demand_prices, region, limiter=self._limiter()
            )
            price = prices.get(t.name)
        return _Plan(
            region=region, instance_type=t, image_id=image_id, root_device=root, root_gb=root_gb,
            user_data=script, zones=zones, zone_asked=bool(asked or subnet), price=price,
        )

    def _run_params(self, spec: LaunchSpec, plan: _Plan, zone: str | None) -> dict[str, Any]:
        tags = [{"Key": k, "Value": v} for k, v in sorted(spec.runctl_tags.items())]
        tags.append({"Key": TAG_AWS_NAME, "Value": spec.name or f"runctl-{spec.launch_id}"})
        ebs: dict[str, Any] = {"DeleteOnTermination": True, "VolumeType": "gp3"}
        size = spec.disk_gb or plan.root_gb
        if size:
            ebs["VolumeSize"] = size
        params: dict[str, Any] = {
            "ImageId": plan.image_id,
            "InstanceType": plan.instance_type.name,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": client_token(spec.launch_id, zone),
            "UserData": plan.user_data,
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        }
        if plan.root_device:
            params["BlockDeviceMappings"] = [{"DeviceName": plan.root_device, "Ebs": ebs}]
        if zone:
            params["Placement"] = {"AvailabilityZone": zone}
        subnet = spec.options.get("subnet") or self.config.setting("subnet")
        if subnet:
            params["SubnetId"] = subnet
        groups = self._list_setting("security_groups", spec)
        if groups:
            params["SecurityGroupIds"] = groups
        key_name = spec.options.get("key_name") or self.config.setting("key_name")
        if key_name:
            params["KeyName"] = key_name
        profile = spec.options.get("instance_profile")
        if profile:
            params["IamInstanceProfile"] = (
                {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
            )
        if spec.spot:
            options: dict[str, Any] = {
                "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate",
            }
            if spec.options.get("max_price"):
                options["MaxPrice"] = spec.options["max_price"]
            params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
        return params

    async def _zones(self, region: str, instance_type: str) -> tuple[str, ...]:
        """The zones of ``region`` that offer ``instance_type``, in name order."""
        offerings = await self._pages(
            region, "describe_instance_type_offerings", "InstanceTypeOfferings",
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}],
        )
        zones = {
            o["Location"] for o in offerings
            if isinstance(o, Mapping) and isinstance(o.get("Location"), str)
        }
        return tuple(sorted(zones))

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Start an instance for ``spec``, or return the one already started with its launch id.

        Raises:
            ValidationError: the spec cannot run on EC2 (bad AMI, instance type, field ...).
            UnsupportedOperationError: a multi-node spec.
            CapacityError: no zone tried had capacity; the message lists what was tried.
            QuotaExceededError: an account limit (vCPUs, instances, spot requests).
            ProviderConnectionError: the request may have reached EC2 but no instance with
                this launch id can be found yet; launching again with the same spec is safe.
        """
        refuse_unsupported_nodes(self, spec)
        region = spec.region or (spec.offer.region if spec.offer else None) or self._region()
        if not _REGION.fullmatch(region):
            raise ValidationError("region", f"{region!r} is not an AWS region",
                                  allowed="a region name such as 'us-east-1'")
        existing = await self._find(region, spec.launch_id)
        if existing is not None:
            return existing
        plan = await self._plan(spec, region)
        queue = list(plan.zones)
        tried: list[str] = []
        capacity: CapacityError | None = None
        expanded = plan.zone_asked
        while queue:
            zone = queue.pop(0)
            params = self._run_params(spec, plan, zone)
            try:
                data = await self._create(spec, region, params)
            except CapacityError as e:
                capacity = e
                tried.append(f"{zone or region + ' (zone chosen by EC2)'}: {e.message}")
                if not expanded:
                    expanded = True
                    queue += [z for z in await self._zones(region, plan.instance_type.name)
                              if z not in plan.zones]
                continue
            if isinstance(data, Resource):
                return data
            instances = Fields(data, "RunInstances", provider=NAME).items("Instances")
            if not instances:
                raise MalformedResponseError("RunInstances: no instance in the answer",
                                             provider=NAME)
            instance = AwsInstance.from_wire(instances[0], region)
            resource = self._resource(instance)
            price = plan.price
            if spec.spot:
                price = await self._launch_spot_price(region, plan, instance.zone)
            return resource.evolve(price=price) if price is not None else resource
        assert capacity is not None
        raise CapacityError(
            f"no {plan.instance_type.name} capacity{' (spot)' if spec.spot else ''}; tried "
            + "; ".join(tried),
            provider=NAME, status=capacity.status, request_id=capacity.request_id,
        ) from capacity

    async def _create(
        self, spec: LaunchSpec, region: str, params: Mapping[str, Any]
    ) -> dict[str, Any] | Resource:
        """``RunInstances``; after a lost answer, the instance it made (looked up by tag)."""
        try:
            return await self._call(region, "run_instances", idempotent=False, **params)
        except (ProviderConnectionError, ServerError) as e:
            if isinstance(e, ProviderConnectionError) and not e.maybe_applied:
                raise
            # The request may have been carried out: never start a second instance.
            logger.debug("aws: RunInstances for %s may have been applied: %s", spec.launch_id, e)
        found = await self._find(region, spec.launch_id)
        if found is not None:
            return found
        # Not visible yet (DescribeInstances is eventually consistent): the same request
        # again is safe, the ClientToken makes EC2 answer with the instance it made.
        try:
            return await self._call(region, "run_instances", idempotent=False, **params)
        except (ProviderConnectionError, ServerError) as e:
            found = await self._find(region, spec.launch_id)
            if found is not None:
                return found
            error = ProviderConnectionError(
                f"RunInstances for launch {spec.launch_id} got no answer twice and no instance "
                "with that launch id is visible yet; launching again with the same launch id "
                "is safe (the ClientToken and the tag look-up prevent a second instance)",
                provider=NAME,
            )
            error.maybe_applied = True
            raise error from e

    async def _launch_spot_price(
        self, region: str, plan: _Plan, zone: str | None
    ) -> Price | None:
        if zone is None:
            return None
        try:
            prices = await self._spot_prices(region, [plan.instance_type.name], zone)
        except ProviderError as e:
            logger.debug("aws: no spot price for %s in %s: %s", plan.instance_type.name, zone, e)
            return None
        amount = prices.get((plan.instance_type.name, zone))
        if amount is None:
            return None
        return _price(amount, plan.instance_type.gpu_count, spot=True,
                      at=_utcnow())

    # --- changing instances ---------------------------------------------------------------------

    async def terminate(self, resource_id: str) -> Resource:
        """Terminate the instance; returns it as observed after asking.

        Idempotent: a terminated instance stays terminated, and one EC2 no longer lists
        (about an hour after termination) is reported ``TERMINATED``.
        """
        try:
            region, instance_id = self._split_id(resource_id)
            await self._call(region, "terminate_instances", InstanceIds=[instance_id])
            instance = await self._instance(resource_id)
        except NotFoundError:
            return Resource(
                id=resource_id, provider=NAME, state=_S.TERMINATED, raw_state="terminated",
                detail="not known to EC2 (terminated over an hour ago, or never existed)",
            )
        resource = self._resource(instance)
        if resource.state is _S.TERMINATING and instance.shut_itself_down:
            # Asked to end it: stop waiting for a console that may never show the code.
            self._gone_at[resource.id] = -math.inf
            resource = self._resource(instance)
        return resource

    async def _change(self, resource_id: str, operation: str, goal: ResourceState) -> Resource:
        instance = await self._instance(resource_id)
        if instance.lifecycle == "spot":
            raise UnsupportedOperationError(
                NAME, operation.split("_")[0], "a one-time spot instance can only be terminated"
            )
        region, instance_id = self._split_id(resource_id)
        try:
            await self._call(region, operation, InstanceIds=[instance_id])
        except ConflictError:
            # A retried call whose first answer was lost finds the instance there already.
            current = self._resource(await self._instance(resource_id))
            if current.state is goal:
                return current
            raise
        return self._resource(await self._instance(resource_id))

    async def stop(self, resource_id: str) -> Resource:
        """Stop the instance (compute released, EBS kept and billed).

        Raises:
            UnsupportedOperationError: a spot instance (one-time spot cannot stop).
            ConflictError: it cannot be stopped in its current state.
        """
        return await self._change(resource_id, "stop_instances", _S.STOPPED)

    async def start(self, resource_id: str) -> Resource:
        """Start a stopped instance. The command is not run again (user data runs once per
        instance); the TTL deadline is re-armed at boot.

        Raises:
            ConflictError: it cannot be started in its current state.
        """
        return await self._change(resource_id, "start_instances", _S.RUNNING)

    # --- logs -----------------------------------------------------------------------------------

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """The command's output from the serial console, without runctl's marker lines.

        Only the lines after this launch's start marker are shown (the boot messages
        before it are not the command's), or every line when the marker has scrolled
        out of the console's last 64 KB. EC2 posts console output with a lag. With
        ``follow``, the console is read every ``log_poll`` seconds until the exit
        marker shows or the instance is gone.
        """
        return self._logs(resource_id, follow=follow)

    async def _logs(self, resource_id: str, *, follow: bool) -> AsyncIterator[str]:
        launch_id = self._launch_ids.get(resource_id)
        if launch_id is None:
            launch_id = (await self.get(resource_id)).launch_id
        shown: list[str] = []
        while True:
            lines = await self._console(resource_id)
            body, code = _command_lines(lines, launch_id)
            if follow and code is None and lines and lines[-1] != "" and body:
                body = body[:-1]  # a line still being written: shown once it is whole
            for line in _new_lines(shown, body):
                shown.append(line)
                yield line
            if code is not None:
                self._exits.read(resource_id, code)
            if not follow or code is not None:
                return
            current = await self.get(resource_id)
            if current.is_terminal and current.state is not _S.TERMINATING:
                if current.exit_code is None:
                    # One last read: the console may have caught up with the end.
                    body, _ = _command_lines(await self._console(resource_id), launch_id)
                    for line in _new_lines(shown, body):
                        shown.append(line)
                        yield line
                return
            await self._sleep(self._log_poll)


def _command_lines(lines: Sequence[str], launch_id: str | None) -> tuple[list[str], int | None]:
    """The console lines the command printed (between this launch's markers), and its exit code.

    What the machine printed after the command ended (the power-down) is not the command's.
    """
    start, end = 0, len(lines)
    code = None
    for n, line in enumerate(lines):
        marker = parse_marker(line)
        if marker is not None and marker.launch_id == launch_id:
            if marker.exit_code is None:
                start, end, code = n + 1, len(lines), None
            else:
                end, code = n, marker.exit_code
    body = [line for line in lines[start:end] if not parse_marker(line)]
    while body and not body[-1].strip():
        body.pop()  # the console's trailing newline
    return body, code


def _new_lines(shown: Sequence[str], current: Sequence[str]) -> list[str]:
    """The lines of ``current`` after those already ``shown``.

    The console is a moving tail: ``current`` is some end of what was shown, then the
    new lines. The longest overlap of ``shown``'s end with ``current``'s start is taken.
    """
    for size in range(min(len(shown), len(current)), 0, -1):
        if current[0] == shown[-size] and list(current[:size]) == list(shown[-size:]):
            return list(current[size:])
    return list(current)


def _root_device(image: Fields) -> tuple[str | None, int | None]:
    """An image's root device name and the size of its root volume in GB."""
    root = image.text("RootDeviceName")
    for item in image.items("BlockDeviceMappings"):
        mapping = Fields(item, "Image.BlockDeviceMappings", provider=NAME)
        ebs = mapping.obj("Ebs")
        if mapping.text("DeviceName") == root and ebs is not None:
            return root, ebs.integer("VolumeSize")
    return root, None


def _when(f: Fields, key: str) -> datetime | None:
    """A time boto3 parsed (a datetime), or one still in ISO 8601 text; in UTC."""
    value = f.data.get(key)
    if isinstance(value, str):
        value = f.timestamp(key)
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _utcnow() -> datetime:
    """The wall clock (one place, so a time seam can replace it)."""
    return datetime.now(timezone.utc)


def _console_text(output: str) -> str:
    """The console text of ``GetConsoleOutput``'s ``Output``: base64 from EC2.

    Text that is not base64 (moto sends the text itself) is taken as it is.
    """
    try:
        raw = base64.b64decode("".join(output.split()), validate=True)
        return raw.decode("utf-8", errors="replace")
    except ValueError:
        return output


@functools.cache
def _loader() -> Any:
    """botocore's model loader, shared by every session of the process (it caches what it read)."""
    from botocore.loaders import create_loader

    return create_loader()


def _price(amount: Decimal, gpu_count: int, *, spot: bool, at: datetime) -> Price:
    return Price(
        per_hour=Money(amount, "USD"),
        gpu_count=gpu_count,
        billing_increment=BILLING_INCREMENT,
        minimum_duration=MINIMUM_DURATION,
        spot=spot,
        observed_at=at,
        source="live",
    )
