"""The public data types: what a machine is, what it costs, what to launch, what runs.

All are ``attrs`` frozen, keyword-only classes that do no I/O. User input
(``LaunchSpec``, ``OfferQuery``) is validated strictly on construction and the
error names the field and what is allowed. Every model serialises to JSON and
back through :func:`runctl.to_json` / :func:`runctl.from_json`.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, NoReturn

import attrs

from . import clock
from .cost import Money, Price, _to_decimal
from .errors import ValidationError

__all__ = [
    "TERMINAL_STATES",
    "RunResult",
    "Capabilities",
    "Gpu",
    "MAX_TTL",
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

# Used with fullmatch only: ``$`` would also match before a final newline, and a key
# ending in one splits the line a provider writes it into (Paperspace's ``docker run``).
_SLUG = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COMMAND_ALLOWED = (
    "a non-empty list of strings (an argv, e.g. ['python', 'train.py']), or one shell str"
)
#: The longest TTL a launch may ask for: longer is no TTL at all, and a date that far
#: ahead is past what ``datetime`` can hold.
MAX_TTL = timedelta(days=3650)


def _fail(field: str, value: object, allowed: str, problem: str | None = None) -> NoReturn:
    raise ValidationError(field, problem or f"{value!r} is invalid", allowed=allowed)


def _positive_int(field: str, value: object, *, zero_ok: bool = False) -> None:
    low = 0 if zero_ok else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _fail(field, value, f"an int >= {low}")


def _optional_positive_number(field: str, value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        _fail(field, value, "a finite number > 0, or None")


def _optional_text(field: str, value: object, allowed: str) -> None:
    """``value`` is None or a non-empty str a command line or an API can carry."""
    if value is None:
        return
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        _fail(field, value, allowed)


def _plain(value: str) -> bool:
    """No NUL (no process can be given one) and no line break (it would split a line)."""
    return "\x00" not in value and "\n" not in value and "\r" not in value


def _to_tuple(field: str, value: object) -> tuple[Any, ...]:
    """``value`` as a tuple; a bare str is one item. Anything else names ``field``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (Sequence, set, frozenset)) and not isinstance(value, (bytes, bytearray)):
        return tuple(value)
    raise ValidationError(
        field, f"{type(value).__name__} is not a list", allowed="a list of str, or one str"
    )


def _to_command(value: object) -> Any:
    # A str stays a str here: __attrs_post_init__ records it as the shell form.
    if isinstance(value, str):
        return value
    if isinstance(value, (set, frozenset)):
        _fail("command", value, _COMMAND_ALLOWED, problem="a set has no order")
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return tuple(value)
    _fail("command", value, _COMMAND_ALLOWED, problem=f"{type(value).__name__} is not a command")


def _to_str_dict(field: str, value: object) -> dict[str, str]:
    """``value`` as a dict; anything but a mapping names ``field``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            field, f"{type(value).__name__} is not a mapping", allowed="a dict of str to str"
        )
    return dict(value)


def _to_optional_decimal(field: str, value: object) -> Decimal | None:
    """``value`` as a Decimal amount; a bad one names ``field``, not ``amount``."""
    if value is None:
        return None
    if isinstance(value, Money):
        return value.amount
    try:
        return _to_decimal(value)
    except ValidationError as e:
        raise ValidationError(
            field, e.problem, allowed="a number such as 3.50 (no currency sign), or None"
        ) from None


# Named converters, one per field, so an error names the argument the user wrote.
def _env(value: object) -> dict[str, str]:
    return _to_str_dict("env", value)


def _tags(value: object) -> dict[str, str]:
    return _to_str_dict("tags", value)


def _options(value: object) -> dict[str, str]:
    return _to_str_dict("options", value)


def _regions(value: object) -> tuple[Any, ...]:
    return _to_tuple("regions", value)


def _providers(value: object) -> tuple[Any, ...]:
    return _to_tuple("providers", value)


def _addresses(value: object) -> tuple[Any, ...]:
    return _to_tuple("addresses", value)


def _max_per_hour(value: object) -> Decimal | None:
    return _to_optional_decimal("max_per_hour", value)


def _max_per_gpu_hour(value: object) -> Decimal | None:
    return _to_optional_decimal("max_per_gpu_hour", value)


def _to_sort_key(value: object) -> object:
    # The CLI spells views with '-', Python with '_': both mean the same view.
    return value.replace("-", "_") if isinstance(value, str) else value


def _hide_values(env: Mapping[str, str]) -> str:
    # Environment values are often tokens: a repr shows which variables are set, not their values.
    return repr({key: "***" for key in env})


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
        sort: price view to sort by, cheapest first (``"per_gpu_hour"``; the CLI's
            ``"per-gpu-hour"`` is accepted too).
        limit: keep only the first ``limit`` offers.
    """

    gpu: str | None = None
    count: int | None = None
    min_gpu_memory_gb: float | None = None
    min_vcpus: int | None = None
    min_memory_gb: float | None = None
    max_per_hour: Decimal | None = attrs.field(
        default=None, converter=_max_per_hour
    )
    max_per_gpu_hour: Decimal | None = attrs.field(
        default=None, converter=_max_per_gpu_hour
    )
    spot: bool | None = None
    regions: tuple[str, ...] = attrs.field(default=(), converter=_regions)
    providers: tuple[str, ...] = attrs.field(default=(), converter=_providers)
    currency: str = "USD"
    sort: str = attrs.field(default="per_hour", converter=_to_sort_key)
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
        if not isinstance(self.sort, str) or self.sort not in _SORT_KEYS:
            _fail("sort", self.sort, ", ".join(_SORT_KEYS))
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            _fail("currency", self.currency, "a 3-letter ISO code such as 'USD'")
        for region in self.regions:
            if not isinstance(region, str) or "\x00" in region:
                _fail("regions", region, "region names or prefixes such as 'us-'")
        for provider in self.providers:
            if not isinstance(provider, str) or not _SLUG.fullmatch(provider):
                _fail("providers", provider, "provider names (lowercase slugs: `runctl providers`)")


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

    The command has two forms, and every provider keeps them apart:

    - an **argv** (a list or tuple of str): run exactly as given, never through a
      shell, however many items it has (``["echo", "hi; rm x"]`` prints
      ``hi; rm x``; ``["python train.py"]`` looks for a program of that name);
    - a **shell command** (one str, or ``shell=True`` with a one-item list): run
      by ``sh -c``, so pipes, ``&&`` and ``$VAR`` work.

    ``spec.command`` is always a tuple; ``spec.shell`` says which form it is.

    Attributes:
        command: the argv (a list of str), or one str to run under ``sh -c``.
        shell: ``command`` is one shell command (set by giving a str); default False.
        provider: provider name; ``None`` means the configured default (``local``).
        name: a human name for the resource (lowercase letters, digits, ``-``).
        env: environment variables for the command (the repr shows their names only).
        image: container image, for providers that run containers.
        gpu: GPU model wanted, e.g. ``"H100"`` (ignored when ``offer`` is given).
        gpu_count: GPUs wanted on each node.
        nodes: machines (nodes) to run the command on, each with ``gpu_count`` GPUs.
            Above 1 only on providers with the ``multi_node`` capability; every node
            runs the same command with the rendezvous environment set
            (:mod:`runctl.rendezvous`), and the launch is one resource.
        offer: launch exactly this offer (from ``offers()``).
        instance_type: the provider's machine type, when you know it.
        region: where to launch.
        spot: launch interruptible capacity.
        disk_gb: disk size in GB.
        ssh_public_key: a public key to install, for providers that need one.
        workdir: working directory for the command (local provider: a local path).
        tags: extra tags or labels to put on the resource.
        ttl: the resource is terminated after this long (enforced where the provider can;
            ``runctl cleanup`` everywhere); at most :data:`MAX_TTL`. A launch that sets
            none gets the configured default (``default_ttl_hours``).
        launch_id: idempotency key; a retried launch with the same id never creates a
            second resource. Generated when not given.
        options: provider-specific settings, documented on each provider's page.
    """

    command: tuple[str, ...] = attrs.field(converter=_to_command)
    shell: bool = False
    provider: str | None = None
    name: str | None = None
    env: dict[str, str] = attrs.field(factory=dict, converter=_env, repr=_hide_values)
    image: str | None = None
    gpu: str | None = None
    gpu_count: int = 0
    nodes: int = 1
    offer: Offer | None = None
    instance_type: str | None = None
    region: str | None = None
    spot: bool = False
    disk_gb: int | None = None
    ssh_public_key: str | None = attrs.field(default=None, repr=False)
    workdir: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict, converter=_tags)
    ttl: timedelta | None = attrs.field(default=None, converter=_to_timedelta)
    launch_id: str = attrs.field(factory=_new_launch_id)
    options: dict[str, str] = attrs.field(factory=dict, converter=_options)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.shell, bool):
            _fail("shell", self.shell, "True or False")
        command: object = self.command
        if isinstance(command, str):
            # The shell form, given as one str: recorded as a 1-tuple with shell=True.
            object.__setattr__(self, "command", (command,))
            object.__setattr__(self, "shell", True)
        if not self.command or not all(isinstance(a, str) for a in self.command):
            _fail("command", self.command, _COMMAND_ALLOWED)
        if not all("\x00" not in a for a in self.command):
            _fail("command", self.command, _COMMAND_ALLOWED, problem="an argument holds a NUL byte")
        if self.shell and len(self.command) != 1:
            _fail(
                "command",
                self.command,
                "one non-empty str when shell=True",
                problem=f"a shell command is one str, got {len(self.command)} item(s)",
            )
        if not self.command[0].strip():
            _fail(
                "command",
                self.command,
                "a non-empty list of strings, e.g. ['python', 'train.py']",
                problem="the program to run is empty",
            )
        if self.provider is not None and (
            not isinstance(self.provider, str) or not _SLUG.fullmatch(self.provider)
        ):
            _fail("provider", self.provider, "a provider name (lowercase slug: `runctl providers`)")
        if self.name is not None and (
            not isinstance(self.name, str)
            or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", self.name)
        ):
            _fail(
                "name", self.name, "1-63 lowercase letters, digits and '-', starting alphanumeric"
            )
        for key, value in self.env.items():
            if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
                _fail(
                    "env",
                    key,
                    "variable names of letters, digits and '_'",
                    problem=f"{key!r} is not a valid variable name",
                )
            if not isinstance(value, str) or "\x00" in value:
                _fail(
                    f"env.{key}",
                    "***",  # a value may be a secret: never shown
                    "str values without NUL bytes",
                    problem="not a str" if not isinstance(value, str) else "holds a NUL byte",
                )
        for key, value in self.tags.items():
            if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
                _fail(
                    "tags",
                    key,
                    "keys of 1-63 letters, digits, '-', '_', '.', '/'",
                    problem=f"{key!r} is not a valid tag key",
                )
            if not isinstance(value, str) or len(value) > 255 or not _plain(value):
                _fail(f"tags.{key}", value, "one-line str values of at most 255 characters")
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
        _positive_int("nodes", self.nodes)
        if self.disk_gb is not None:
            _positive_int("disk_gb", self.disk_gb)
        _optional_text("image", self.image, "a container image name, or None")
        _optional_text("instance_type", self.instance_type, "the provider's machine type, or None")
        _optional_text("region", self.region, "a region name, or None")
        _optional_text("workdir", self.workdir, "a directory path, or None")
        _optional_text("ssh_public_key", self.ssh_public_key, "an SSH public key, or None")
        if self.offer is not None and not isinstance(self.offer, Offer):
            _fail(
                "offer",
                type(self.offer).__name__,
                "an Offer from offers(), or None",
                problem=f"{type(self.offer).__name__} is not an Offer",
            )
        if not isinstance(self.spot, bool):
            _fail("spot", self.spot, "True or False")
        if self.ttl is not None and not timedelta(0) < self.ttl <= MAX_TTL:
            _fail("ttl", self.ttl, f"a positive duration of at most {MAX_TTL.days} days, or None")
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
    def expected_price(self) -> Price | None:
        """The price of the whole launch (all its nodes), when an offer was given."""
        if self.offer is None:
            return None
        return self.offer.price.scaled(self.nodes)

    @property
    def runctl_tags(self) -> dict[str, str]:
        """The tags runctl puts on the resource: the user's, plus managed-by, launch id, ttl."""
        tags = dict(self.tags)
        tags[TAG_MANAGED_BY] = "runctl"
        tags[TAG_LAUNCH_ID] = self.launch_id
        if self.name:
            tags[TAG_NAME] = self.name
        if self.ttl is not None:
            tags[TAG_TTL] = str(max(int(self.ttl.total_seconds()), 1))
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
        ended_at: when it ended (terminal states only); set once the resource holds (and
            bills) nothing any more, so a command that ended on a machine that still
            exists leaves it unset.
        exit_code: the workload's exit code, where known.
        price: the price it was launched at.
        instance_type: the provider's machine type.
        gpu: the accelerator.
        gpu_count: accelerators.
        region: where it runs.
        tags: the tags or labels it carries.
        address: a host name or IP to reach it (the first node's), when it has one.
        nodes: machines in the launch (1 unless launched with ``nodes > 1``).
        addresses: every node's host name or IP, in rank order, where known.
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
    nodes: int = 1
    addresses: tuple[str, ...] = attrs.field(default=(), converter=_addresses)
    observed_at: datetime = attrs.field(factory=_utcnow, eq=False)
    detail: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the resource can never run again."""
        return self.state.is_terminal

    def evolve(self, **changes: Any) -> Resource:
        """Return a copy with ``changes`` applied."""
        return attrs.evolve(self, **changes)


@attrs.frozen(kw_only=True)
class RunResult:
    """What :meth:`runctl.AsyncClient.run` did: the command's outcome, and what it cost.

    Attributes:
        resource: the resource as observed after teardown (the provider may no
            longer know it; then as last seen).
        outcome: the state the run ended in: SUCCEEDED, FAILED or PREEMPTED when
            the command ended, or the state it was in when ``timeout`` ran out.
        exit_code: the command's exit code, where the provider reports it.
        timed_out: the run was ended by its ``timeout``, not by the command.
        cost: what it cost, at the price it was launched at (``None``: price unknown).
        logs_error: why reading the output failed, if it did (the run went on to its
            end and teardown all the same).
    """

    resource: Resource
    outcome: ResourceState
    exit_code: int | None = None
    timed_out: bool = False
    cost: Money | None = None
    logs_error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command ran to the end and succeeded."""
        return self.outcome is ResourceState.SUCCEEDED and not self.timed_out

    @property
    def returncode(self) -> int:
        """A process exit status for the run, as ``runctl run`` exits with it.

        The command's exit code when known; 124 when ``timeout`` ended it (as
        ``timeout(1)`` does); else 0 for SUCCEEDED and 1 for anything else.
        """
        if self.exit_code is not None and not self.timed_out:
            return self.exit_code
        if self.timed_out:
            return 124
        return 0 if self.outcome is ResourceState.SUCCEEDED else 1
