"""The public data types: what a machine is, what it costs, what to launch, what runs.

All are ``attrs`` frozen, keyword-only classes that do no I/O. User input
(``LaunchSpec``, ``OfferQuery``) is validated strictly on construction and the
error names the field and what is allowed. Every model serialises to JSON and
back through :func:`runctl.to_json` / :func:`runctl.from_json`.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import attrs

from . import clock
from .cost import Money, Price, _to_decimal
from .errors import ValidationError

__all__ = [
    "TERMINAL_STATES",
    "Capabilities",
    "Gpu",
    "LaunchSpec",
    "Offer",
    "OfferQuery",
    "Resource",
    "ResourceState",
    "SortKey",
]


class ResourceState(str, enum.Enum):
    """Where a resource is in its life, the same for every provider.

    The raw provider state is kept beside it on :attr:`Resource.raw_state`.
    """

    PENDING = "pending"
    """Accepted by the provider, waiting for a machine."""
    PROVISIONING = "provisioning"
    """A machine is being prepared (booting, pulling the image)."""
    RUNNING = "running"
    """The workload runs."""
    STOPPING = "stopping"
    STOPPED = "stopped"
    """Paused; disk kept; compute usually not billed."""
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    """Gone, by request."""
    SUCCEEDED = "succeeded"
    """The workload exited with code 0."""
    FAILED = "failed"
    """The workload exited non-zero, or the provider failed it."""
    PREEMPTED = "preempted"
    """Taken back by the provider (spot, interruptible)."""
    UNKNOWN = "unknown"
    """The provider reported a state runctl does not know; see ``raw_state``."""

    @property
    def is_terminal(self) -> bool:
        """True once the resource can never run again."""
        return self in TERMINAL_STATES

    def can_become(self, other: ResourceState) -> bool:
        """Whether ``other`` can be observed after ``self`` (directly or via states in between).

        States are observed by polling, so a resource seen PENDING may next be
        seen SUCCEEDED; what can never happen is, say, TERMINATED then RUNNING.
        """
        return other in _REACHABLE[self]


TERMINAL_STATES = frozenset(
    {
        ResourceState.TERMINATED,
        ResourceState.SUCCEEDED,
        ResourceState.FAILED,
        ResourceState.PREEMPTED,
    }
)

_S = ResourceState
#: Direct transitions. UNKNOWN can come from and go to anything (a provider hiccup).
_NEXT: dict[ResourceState, frozenset[ResourceState]] = {
    _S.PENDING: frozenset({_S.PROVISIONING, _S.RUNNING, _S.FAILED, _S.TERMINATING, _S.PREEMPTED}),
    _S.PROVISIONING: frozenset({_S.RUNNING, _S.FAILED, _S.TERMINATING, _S.PREEMPTED}),
    _S.RUNNING: frozenset({_S.STOPPING, _S.TERMINATING, _S.SUCCEEDED, _S.FAILED, _S.PREEMPTED}),
    _S.STOPPING: frozenset({_S.STOPPED, _S.TERMINATING, _S.FAILED, _S.PREEMPTED}),
    _S.STOPPED: frozenset({_S.PENDING, _S.PROVISIONING, _S.RUNNING, _S.TERMINATING}),
    _S.TERMINATING: frozenset({_S.TERMINATED}),
    # A finished workload may still hold a machine; removing it is the last step.
    _S.SUCCEEDED: frozenset({_S.TERMINATING}),
    _S.FAILED: frozenset({_S.TERMINATING}),
    _S.PREEMPTED: frozenset({_S.TERMINATING}),
    _S.TERMINATED: frozenset(),
    _S.UNKNOWN: frozenset(set(_S) - {_S.UNKNOWN}),
}


def _closure() -> dict[ResourceState, frozenset[ResourceState]]:
    reach: dict[ResourceState, frozenset[ResourceState]] = {}
    for start in ResourceState:
        seen: set[ResourceState] = {start}
        todo = [start]
        while todo:
            for nxt in _NEXT[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if start is not _S.TERMINATED:
            seen.add(_S.UNKNOWN)
        reach[start] = frozenset(seen)
    return reach


_REACHABLE = _closure()


def _utcnow() -> datetime:
    return clock.now()


# --- validators ---------------------------------------------------------------------------------

_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")


def _fail(field: str, value: object, allowed: str, problem: str | None = None) -> None:
    raise ValidationError(field, problem or f"{value!r} is invalid", allowed=allowed)


def _positive_int(field: str, value: object, *, zero_ok: bool = False) -> None:
    low = 0 if zero_ok else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _fail(field, value, f"an int >= {low}")


def _optional_positive_number(field: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        _fail(field, value, "a number > 0, or None")


def _to_tuple(value: object) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (Sequence, set, frozenset)):
        return tuple(value)
    return (value,)


def _to_str_dict(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("mapping", f"{type(value).__name__} is not a mapping", allowed="dict")
    return dict(value)


def _to_optional_decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Money):
        return value.amount
    return _to_decimal(value)


def _to_timedelta(value: object) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return timedelta(seconds=value)
        except (ValueError, OverflowError):  # NaN, inf, beyond ~2.7 million years
            pass
    raise ValidationError(
        "ttl", f"{value!r} is not a duration", allowed="a timedelta, or finite seconds"
    )


# --- GPUs ---------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Gpu:
    """An accelerator, in runctl's canonical naming.

    Attributes:
        model: canonical model, e.g. ``"H100"``; ``"unknown"`` when the provider's
            name could not be recognised (see ``raw``).
        vendor: ``"nvidia"``, ``"amd"``, ``"google"``, ``"intel"``, ``"aws"`` ...
        variant: form factor or memory variant, e.g. ``"SXM"``, ``"PCIe"``, ``"80GB"``.
        memory_gb: memory per device, in GB.
        bf16_tflops: dense BF16/FP16 tensor TFLOPS per device, when known.
        fp32_tflops: FP32 TFLOPS per device, when known.
        kind: ``"gpu"``, ``"tpu"`` or another accelerator kind.
        raw: the name as the provider spelled it.
    """

    model: str
    vendor: str = "nvidia"
    variant: str | None = None
    memory_gb: float | None = None
    bf16_tflops: float | None = None
    fp32_tflops: float | None = None
    kind: str = "gpu"
    raw: str | None = attrs.field(default=None, eq=False)

    @property
    def known(self) -> bool:
        """False when the provider's name was not recognised."""
        return self.model != "unknown"

    @property
    def name(self) -> str:
        """Display name, e.g. ``"H100 SXM"``."""
        if not self.known:
            return f"unknown ({self.raw})" if self.raw else "unknown"
        return f"{self.model} {self.variant}" if self.variant else self.model


# --- capabilities -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a provider can do. Operations it lacks raise ``UnsupportedOperationError``.

    Attributes:
        live_offers: ``offers()`` asks the provider for current prices and availability.
        stop_start: resources can be stopped and started again.
        spot: interruptible capacity can be launched.
        logs: the workload's output can be read.
        follow_logs: logs can be followed as they are written.
        multi_node: one launch can span several machines.
        ssh: the resource can be reached by SSH.
        ttl: the provider enforces a time to live on the resource itself.
        idempotent_launch: a retried launch with the same launch id never creates a second resource.
        tags: resources carry runctl's tags or labels.
        exit_code: the workload's exit code is reported.
    """

    live_offers: bool = False
    stop_start: bool = False
    spot: bool = False
    logs: bool = False
    follow_logs: bool = False
    multi_node: bool = False
    ssh: bool = False
    ttl: bool = False
    idempotent_launch: bool = False
    tags: bool = False
    exit_code: bool = False


# --- offers -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Offer:
    """A machine one provider would rent you, and its price.

    Attributes:
        provider: provider name.
        instance_type: the provider's name for the machine.
        gpu: the accelerator (canonical), or ``None`` for CPU-only machines.
        gpu_count: accelerators in one machine.
        price: what it costs and how it is billed.
        vcpus: virtual CPUs, when known.
        memory_gb: RAM in GB, when known.
        region: provider region, when the offer is regional.
        zone: availability zone, when known.
        available: whether the provider says it can be launched now (``None``: not said).
        note: what a reader of this price must know, e.g. that it covers the
            accelerators only and the VM is billed on top.
        spot: an interruptible offer (same as ``price.spot``).
    """

    provider: str
    instance_type: str
    gpu: Gpu | None
    gpu_count: int
    price: Price
    vcpus: int | None = None
    memory_gb: float | None = None
    region: str | None = None
    zone: str | None = None
    available: bool | None = None
    note: str | None = None

    @property
    def spot(self) -> bool:
        """True for interruptible capacity."""
        return self.price.spot

    @property
    def gpu_memory_gb(self) -> float | None:
        """Total accelerator memory in the machine, in GB."""
        if self.gpu is None or self.gpu.memory_gb is None:
            return None
        return self.gpu.memory_gb * self.gpu_count

    @property
    def per_hour(self) -> Money:
        """Price of the whole machine per hour."""
        return self.price.per_hour

    @property
    def per_gpu_hour(self) -> Money | None:
        """Price per accelerator per hour; ``None`` without accelerators."""
        if self.gpu_count == 0:
            return None
        return self.price.per_hour / self.gpu_count

    @property
    def per_gpu_memory_gb_hour(self) -> Money | None:
        """Price per GB of accelerator memory per hour; ``None`` when the memory is unknown."""
        memory = self.gpu_memory_gb
        if not memory:
            return None
        return self.price.per_hour / _to_decimal(memory)

    @property
    def per_bf16_pflop_hour(self) -> Money | None:
        """Price per hour of one PFLOPS of dense BF16 (FP16 where the GPU lacks BF16).

        ``None`` when the GPU's dense BF16 throughput is not known.
        """
        if self.gpu is None or not self.gpu.bf16_tflops or self.gpu_count == 0:
            return None
        pflops = _to_decimal(self.gpu.bf16_tflops) * self.gpu_count / 1000
        return self.price.per_hour / pflops

    def price_view(self, view: str) -> Money | None:
        """The price under one of the :data:`SortKey` views, e.g. ``"per_gpu_hour"``."""
        if view not in _SORT_KEYS:
            _fail("view", view, ", ".join(_SORT_KEYS))
        result: Money | None = getattr(self, view)
        return result


SortKey = Literal["per_hour", "per_gpu_hour", "per_gpu_memory_gb_hour", "per_bf16_pflop_hour"]
_SORT_KEYS: tuple[str, ...] = SortKey.__args__  # type: ignore[attr-defined]


@attrs.frozen(kw_only=True)
class OfferQuery:
    """What to look for across providers' offers. Every filter is optional.

    Attributes:
        gpu: GPU model or family, e.g. ``"H100"``, ``"A100-80GB"``, ``"L4"``.
        count: exact number of GPUs per machine.
        min_gpu_memory_gb: minimum memory per GPU.
        min_vcpus: minimum vCPUs.
        min_memory_gb: minimum RAM.
        max_per_hour: highest acceptable price per instance-hour.
        max_per_gpu_hour: highest acceptable price per GPU-hour.
        spot: ``True`` only spot, ``False`` only on-demand, ``None`` both.
        regions: only these regions (prefix match, e.g. ``"us-"``).
        providers: only these providers.
        currency: currency of the price limits.
        sort: price view to sort by, cheapest first.
        limit: keep only the first ``limit`` offers.
    """

    gpu: str | None = None
    count: int | None = None
    min_gpu_memory_gb: float | None = None
    min_vcpus: int | None = None
    min_memory_gb: float | None = None
    max_per_hour: Decimal | None = attrs.field(default=None, converter=_to_optional_decimal)
    max_per_gpu_hour: Decimal | None = attrs.field(default=None, converter=_to_optional_decimal)
    spot: bool | None = None
    regions: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    providers: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    currency: str = "USD"
    sort: str = "per_hour"
    limit: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.gpu is not None and (not isinstance(self.gpu, str) or not self.gpu.strip()):
            _fail("gpu", self.gpu, "a GPU model name such as 'H100', or None")
        if self.count is not None:
            _positive_int("count", self.count)
        if self.min_vcpus is not None:
            _positive_int("min_vcpus", self.min_vcpus)
        if self.limit is not None:
            _positive_int("limit", self.limit)
        _optional_positive_number("min_gpu_memory_gb", self.min_gpu_memory_gb)
        _optional_positive_number("min_memory_gb", self.min_memory_gb)
        for name in ("max_per_hour", "max_per_gpu_hour"):
            value = getattr(self, name)
            if value is not None and value < 0:
                _fail(name, value, "a price >= 0, or None")
        if self.spot is not None and not isinstance(self.spot, bool):
            _fail("spot", self.spot, "True, False or None")
        if self.sort not in _SORT_KEYS:
            _fail("sort", self.sort, ", ".join(_SORT_KEYS))
        for provider in self.providers:
            if not isinstance(provider, str) or not _SLUG.match(provider):
                _fail("providers", provider, "provider names such as 'runpod'")


# --- launching ----------------------------------------------------------------------------------

#: Tag keys runctl puts on every resource it launches, so they can be found again.
TAG_MANAGED_BY = "runctl-managed-by"
TAG_LAUNCH_ID = "runctl-launch-id"
TAG_TTL = "runctl-ttl"
TAG_NAME = "runctl-name"


def _new_launch_id() -> str:
    return uuid.uuid4().hex[:16]


@attrs.frozen(kw_only=True)
class LaunchSpec:
    """What to run and where.

    Attributes:
        command: the command to run, as an argument list (or a shell string).
        provider: provider name; ``None`` means the configured default (``local``).
        name: a human name for the resource (lowercase letters, digits, ``-``).
        env: environment variables for the command.
        image: container image, for providers that run containers.
        gpu: GPU model wanted, e.g. ``"H100"`` (ignored when ``offer`` is given).
        gpu_count: GPUs wanted.
        offer: launch exactly this offer (from ``offers()``).
        instance_type: the provider's machine type, when you know it.
        region: where to launch.
        spot: launch interruptible capacity.
        disk_gb: disk size in GB.
        ssh_public_key: a public key to install, for providers that need one.
        workdir: working directory for the command (local provider: a local path).
        tags: extra tags or labels to put on the resource.
        ttl: the resource is terminated after this long (enforced where the provider can).
        launch_id: idempotency key; a retried launch with the same id never creates a
            second resource. Generated when not given.
        options: provider-specific settings, documented on each provider's page.
    """

    command: tuple[str, ...] = attrs.field(converter=_to_tuple)
    provider: str | None = None
    name: str | None = None
    env: dict[str, str] = attrs.field(factory=dict, converter=_to_str_dict)
    image: str | None = None
    gpu: str | None = None
    gpu_count: int = 0
    offer: Offer | None = None
    instance_type: str | None = None
    region: str | None = None
    spot: bool = False
    disk_gb: int | None = None
    ssh_public_key: str | None = attrs.field(default=None, repr=False)
    workdir: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict, converter=_to_str_dict)
    ttl: timedelta | None = attrs.field(default=None, converter=_to_timedelta)
    launch_id: str = attrs.field(factory=_new_launch_id)
    options: dict[str, str] = attrs.field(factory=dict, converter=_to_str_dict)

    def __attrs_post_init__(self) -> None:
        if not self.command or not all(isinstance(a, str) for a in self.command):
            _fail(
                "command", self.command, "a non-empty list of strings, e.g. ['python', 'train.py']"
            )
        if self.provider is not None and (
            not isinstance(self.provider, str) or not _SLUG.match(self.provider)
        ):
            _fail("provider", self.provider, "a provider name such as 'local' or 'runpod'")
        if self.name is not None and (
            not isinstance(self.name, str)
            or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", self.name)
        ):
            _fail(
                "name", self.name, "1-63 lowercase letters, digits and '-', starting alphanumeric"
            )
        for key, value in self.env.items():
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                _fail(
                    "env",
                    key,
                    "variable names of letters, digits and '_'",
                    problem=f"{key!r} is not a valid variable name",
                )
            if not isinstance(value, str):
                _fail(
                    f"env.{key}",
                    value,
                    "str values",
                    problem=f"{type(value).__name__} is not a str",
                )
        for key, value in self.tags.items():
            if not isinstance(key, str) or not _LABEL_KEY.match(key):
                _fail(
                    "tags",
                    key,
                    "keys of 1-63 letters, digits, '-', '_', '.', '/'",
                    problem=f"{key!r} is not a valid tag key",
                )
            if not isinstance(value, str) or len(value) > 255:
                _fail(f"tags.{key}", value, "str values of at most 255 characters")
        for key, value in self.options.items():
            if not isinstance(key, str) or not isinstance(value, str):
                _fail("options", key, "str keys and str values")
        if (
            isinstance(self.gpu_count, bool)
            or not isinstance(self.gpu_count, int)
            or self.gpu_count < 0
        ):
            _fail("gpu_count", self.gpu_count, "an int >= 0")
        if self.gpu is not None and (not isinstance(self.gpu, str) or not self.gpu.strip()):
            _fail("gpu", self.gpu, "a GPU model name such as 'H100', or None")
        if self.disk_gb is not None:
            _positive_int("disk_gb", self.disk_gb)
        if not isinstance(self.spot, bool):
            _fail("spot", self.spot, "True or False")
        if self.ttl is not None and self.ttl <= timedelta(0):
            _fail("ttl", self.ttl, "a positive duration, or None")
        if not isinstance(self.launch_id, str) or not re.fullmatch(
            r"[A-Za-z0-9_-]{1,64}", self.launch_id
        ):
            _fail("launch_id", self.launch_id, "1-64 letters, digits, '-' and '_'")
        if (
            self.offer is not None
            and self.provider is not None
            and self.offer.provider != self.provider
        ):
            _fail(
                "offer",
                self.offer.provider,
                f"an offer from {self.provider!r}",
                problem=f"offer is from {self.offer.provider!r} but provider is {self.provider!r}",
            )

    @property
    def runctl_tags(self) -> dict[str, str]:
        """The tags runctl puts on the resource: the user's, plus managed-by, launch id, ttl."""
        tags = dict(self.tags)
        tags[TAG_MANAGED_BY] = "runctl"
        tags[TAG_LAUNCH_ID] = self.launch_id
        if self.name:
            tags[TAG_NAME] = self.name
        if self.ttl is not None:
            tags[TAG_TTL] = str(int(self.ttl.total_seconds()))
        return tags


# --- resources ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Resource:
    """A launched machine, job or pod, as last observed.

    Attributes:
        id: the provider's id; enough for any process to find it again.
        provider: provider name.
        state: runctl's state.
        raw_state: the provider's own state string.
        name: the name given at launch.
        launch_id: the launch id it was created with.
        created_at: when the provider created it.
        started_at: when it started running (billing start, where the provider says).
        ended_at: when it ended (terminal states only).
        exit_code: the workload's exit code, where known.
        price: the price it was launched at.
        instance_type: the provider's machine type.
        gpu: the accelerator.
        gpu_count: accelerators.
        region: where it runs.
        tags: the tags or labels it carries.
        address: a host name or IP to reach it, when it has one.
        observed_at: when this record was read from the provider.
        detail: a short human-readable note from the provider (e.g. why it failed).
    """

    id: str
    provider: str
    state: ResourceState
    raw_state: str | None = None
    name: str | None = None
    launch_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    price: Price | None = None
    instance_type: str | None = None
    gpu: Gpu | None = None
    gpu_count: int = 0
    region: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict)
    address: str | None = None
    observed_at: datetime = attrs.field(factory=_utcnow, eq=False)
    detail: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the resource can never run again."""
        return self.state.is_terminal

    def evolve(self, **changes: Any) -> Resource:
        """Return a copy with ``changes`` applied."""
        return attrs.evolve(self, **changes)
