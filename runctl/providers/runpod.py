"""RunPod: GPU pods (containers) through RunPod's REST API v2.

Prerequisites
    A RunPod account with credit, and an API key with read/write access
    (console → Settings → API Keys). Nothing else: runctl talks to
    ``https://api.runpod.io/v2/...`` with httpx. The REST v1 API
    (``rest.runpod.io/v1``) was retired on 2026-11-15 and is never used.

Credentials, first match wins
    1. ``RUNPOD_API_KEY`` in the environment;
    2. ``api_key`` in ``[providers.runpod]`` of runctl's config file.

    ``RUNCTL_RUNPOD_BASE_URL`` (or ``base_url`` in the config file) points runctl
    at another API root, e.g. a test server; plain http is accepted for loopback only.

Capabilities
    ================  =====  ==================================================
    capability        yes?   how
    ================  =====  ==================================================
    live_offers       yes    ``GET /v2/catalog/gpus`` with pod availability
    stop_start        yes    ``POST /v2/pods/{id}/action`` ``stop`` / ``start``
    spot              no     REST v2 has no interruptible pods; ``spot=True`` raises
    logs              yes    ``GET /v2/pods/{id}/logs`` (Server-Sent Events)
    follow_logs       yes    same stream, kept open
    multi_node        no     RunPod clusters are not wired in
    ssh               yes    ``spec.ssh_public_key`` → ``PUBLIC_KEY`` + ``startSsh``
    ttl               no     RunPod does not enforce one; the TTL is recorded as a tag
    idempotent_launch yes    pods carry the launch id; a retried launch finds them
    tags              yes    RunPod has no labels: tags travel in env ``RUNCTL_TAGS``
    exit_code         yes    runctl's wrapper prints it; ``get`` reads the log's tail
    ================  =====  ==================================================

How runctl maps things
    - A pod runs ``spec.image`` (required, or ``options["template_id"]``) with
      ``spec.command`` wrapped by runctl (below) as the container's ``args``;
      ``spec.env`` becomes the pod's env; ``spec.disk_gb`` its container disk.
    - ``instance_type`` of an offer is ``"<CLOUD>:<gpu type id>"``, e.g.
      ``"SECURE:NVIDIA H100 80GB HBM3"``; ``options["cloud"]`` (``SECURE`` or
      ``COMMUNITY``) is used when a bare GPU type id or ``spec.gpu`` is given.
    - ``spec.region`` is a RunPod data center id (``"US-KS-2"``).
    - runctl's tags (managed-by, launch id, name, TTL and the user's) are stored as
      JSON in the env var ``RUNCTL_TAGS``, and the pod is named
      ``<spec.name>-<launch_id>`` (or ``runctl-<launch_id>``).
    - RunPod reports the container, never the command: a container whose command
      exits is restarted (the command runs again, billing continues) and no exit
      code is reported. So runctl launches the command inside a small ``sh`` wrapper
      (:func:`runctl.kit.wrap_command`) that prints ``[runctl:<launch id>] start``, runs it,
      prints ``[runctl:<launch id>] exit <N>`` and then keeps the container alive
      (idle, still billed) until it is stopped or terminated.
    - ``get`` of a ``RUNNING`` pod reads the last 20 lines of its log (at most once
      every ``exit_check_interval`` seconds, default 5) for that marker; once found,
      the pod is SUCCEEDED (exit 0) or FAILED, ``exit_code`` set, ``raw_state``
      still ``RUNNING``: terminate it to stop the bill. The code is remembered in
      memory (``list`` shows it, reading no logs); ``start`` forgets it.
      ``logs(follow=True)`` ends once the command has ended. Markers never show in
      ``logs``. A log that cannot be read leaves the state as RunPod reports it.
    - ``EXITED`` (the container was stopped, or the wrapper itself died) is
      ``STOPPED``: the pod keeps its disk, and must be terminated to stop storage
      charges.

Prices
    The catalog quotes a list price per GPU-hour for each cloud tier; runctl
    multiplies it by the GPU count (``Price.per_hour`` is per instance-hour).
    RunPod bills per second, no minimum. Container and volume disk cost
    $0.10 per GB-month (RunPod's published rate, not returned by the API).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, cast

import attrs

from .. import clock
from ..cost import Money, Price
from ..errors import (
    CapacityError,
    ConflictError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
    UnsupportedOperationError,
    ValidationError,
)
from ..kit import (
    TAG_LAUNCH_ID,
    TAG_NAME,
    BillingRule,
    ExitCodes,
    Fields,
    GpuSpellings,
    RestProviderBase,
    StateTable,
    check_resource_id,
    ended,
    exit_code_in,
    gpu_matches,
    gpu_query_model,
    parse_marker,
    parse_timestamp,
    shell_argv,
    utcnow,
    wrap_command,
)
from ..models import Capabilities, Gpu, LaunchSpec, Offer, OfferQuery, Resource, ResourceState

if TYPE_CHECKING:
    import httpx

    from ..config import ProviderConfig
    from ..http import RetryPolicy

__all__ = ["RUNPOD_STATES", "RunPodGpuType", "RunPodPod", "RunPodProvider", "runpod_state"]

NAME = "runpod"
logger = logging.getLogger("runctl.providers.runpod")
#: Pod fields whose values are the user's (env values: API tokens, often).
SECRET_FIELDS = ("env",)
#: Env var on the pod that carries runctl's tags as JSON (RunPod pods have no labels).
TAGS_ENV = "RUNCTL_TAGS"
CLOUDS = ("SECURE", "COMMUNITY")

#: How RunPod bills pods: per second, no minimum.
BILLING_RULE = BillingRule(
    increment=timedelta(seconds=1),
    source="https://docs.runpod.io/accounts-billing/billing (compute and storage billed "
    "per second)",
)
BILLING_INCREMENT = BILLING_RULE.increment
#: Container and volume disk, per GB-month (published price; the API does not return it).
STORAGE_PER_GB_MONTH = Money("0.10", "USD")
#: Log lines read to look for the wrapper's exit marker (it is the last line once the
#: command ended: the wrapper prints nothing after it).
EXIT_TAIL = 20
#: RunPod's names for GPUs where runctl's table means another card: its bare "H100" is
#: the PCIe card, its "A100-80GB" the PCIe one; and its "<count>x_<gpu>" machine names.
GPU_SPELLINGS = GpuSpellings(
    aliases={
        "A100-80GB": "a100-80gb-pcie",
        "A100 80GB": "a100-80gb-pcie",
        "A100-80GB-SXM": "a100-80gb-sxm",
        "H100": "h100-pcie",
        "H100-SXM": "h100-sxm",
        "H100-NVL": "h100-nvl",
        "H200-SXM": "h200-sxm",
    },
    patterns=[r"^(?P<count>\d+)x_(?P<gpu>.+?)(?:_(?:SECURE|COMMUNITY))?$"],
)

# --- states -------------------------------------------------------------------------------------

_S = ResourceState
#: Every documented ``PodStatus`` of REST v2, mapped to runctl's state.
RUNPOD_STATES = StateTable(
    NAME,
    {
        "PROVISIONING": _S.PROVISIONING,  # the pod is being allocated
        "STARTING": _S.PROVISIONING,  # the container is starting (image pull, boot)
        "RUNNING": _S.RUNNING,  # the container is healthy
        "EXITED": _S.STOPPED,  # the container exited or was stopped; disk kept, startable
        "ERROR": _S.FAILED,  # unrecoverable error state
        "TERMINATED": _S.TERMINATED,  # permanently deleted
    },
    details={
        "EXITED": "the container exited or was stopped; terminate the pod to release its disk",
    },
)


def runpod_state(raw: str | None) -> ResourceState:
    """runctl's state for a RunPod ``PodStatus``; ``UNKNOWN`` for anything undocumented."""
    return RUNPOD_STATES(raw)


#: The state each pod action leads to.
_ACTION_GOAL: Mapping[str, ResourceState] = {"stop": _S.STOPPED, "start": _S.RUNNING}

#: The stop/start actions RunPod permits per ``PodStatus`` (``POST /v2/pods/{id}/action``:
#: "RUNNING allows stop/restart/terminate; EXITED and ERROR allow start/terminate;
#: PROVISIONING and STARTING allow stop/terminate").
POD_ACTIONS: Mapping[str, frozenset[str]] = {
    "RUNNING": frozenset({"stop"}),
    "EXITED": frozenset({"start"}),
    "ERROR": frozenset({"start"}),
    "PROVISIONING": frozenset({"stop"}),
    "STARTING": frozenset({"stop"}),
    "TERMINATED": frozenset(),
}


# --- wire models --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunPodGpuType:
    """One entry of ``GET /v2/catalog/gpus`` (schema ``GpuType``)."""

    id: str
    name: str | None = None
    memory_gb: int | None = None
    secure: bool = False
    community: bool = False
    price_secure: Decimal | None = None
    price_community: Decimal | None = None
    max_secure: int | None = None
    max_community: int | None = None
    availability: str | None = None

    @classmethod
    def from_wire(cls, data: object) -> RunPodGpuType:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(data, "GpuType", provider=NAME)
        price = f.obj("price") or Fields({}, "GpuType.price", provider=NAME)
        most = f.obj("maxCount") or Fields({}, "GpuType.maxCount", provider=NAME)
        return cls(
            id=f.text("id", required=True),
            name=f.text("name"),
            memory_gb=f.integer("memory"),
            secure=bool(f.flag("secure")),
            community=bool(f.flag("community")),
            price_secure=price.number("secure"),
            price_community=price.number("community"),
            max_secure=most.integer("secure"),
            max_community=most.integer("community"),
            availability=f.text("availability"),
        )

    def price_per_gpu(self, cloud: str) -> Decimal | None:
        """List price per GPU-hour in ``cloud``; ``None`` where the tier does not offer it."""
        if cloud == "SECURE":
            return self.price_secure if self.secure else None
        return self.price_community if self.community else None

    def max_count(self, cloud: str) -> int:
        """The largest GPU count of one pod in ``cloud`` (1 when not said)."""
        value = self.max_secure if cloud == "SECURE" else self.max_community
        return value if value and value > 0 else 1


@attrs.frozen(kw_only=True)
class RunPodPod:
    """A pod as ``GET /v2/pods/{id}`` returns it (schema ``Pod``), the parts runctl reads."""

    id: str
    name: str | None = None
    status: str | None = None
    image: str | None = None
    #: The user's env (API tokens, often): never in a repr.
    env: dict[str, str] = attrs.field(factory=dict, repr=False)
    gpu_id: str | None = None
    gpu_count: int = 0
    cloud: str | None = None
    data_center_id: str | None = None
    cost_per_hour: Decimal | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    address: str | None = None

    @classmethod
    def from_wire(cls, data: object) -> RunPodPod:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        # Errors show the object they could not read: show it with the env's values hidden.
        f = Fields(data, "Pod", provider=NAME, secret=SECRET_FIELDS)
        f.str_map("env")
        raw_env = data.get("env") if isinstance(data, Mapping) else None
        gpu = f.obj("gpu")
        address = None
        ssh = f.obj("ssh")
        if ssh is not None:
            direct = ssh.obj("direct")
            address = direct.text("host") if direct is not None else None
        if address is None:
            runtime = f.obj("runtime")
            for port in runtime.items("ports") if runtime is not None else []:
                if isinstance(port, dict) and isinstance(port.get("ip"), str):
                    address = port["ip"]
                    break
        return cls(
            id=f.text("id", required=True),
            name=f.text("name"),
            status=f.text("status"),
            image=f.text("image"),
            env={str(k): v for k, v in raw_env.items() if isinstance(v, str)}
            if isinstance(raw_env, Mapping)
            else {},
            gpu_id=gpu.text("id") if gpu is not None else None,
            gpu_count=(gpu.integer("count") or 1) if gpu is not None else 0,
            cloud=f.text("cloud"),
            data_center_id=f.text("dataCenterId"),
            cost_per_hour=f.number("cost"),
            created_at=f.timestamp("createdAt"),
            started_at=f.timestamp("startedAt"),
            address=address,
        )

    @property
    def tags(self) -> dict[str, str]:
        """runctl's tags, read back from the pod's env (empty for pods runctl did not launch)."""
        raw = self.env.get(TAGS_ENV)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items()}

    @property
    def launch_id(self) -> str | None:
        """The launch id: from the tags, else from a ``runctl-<launch id>`` name."""
        found = self.tags.get(TAG_LAUNCH_ID)
        if found:
            return found
        if self.name and self.name.startswith("runctl-"):
            return self.name[len("runctl-") :]
        return None


def _list_of(data: object, key: str, what: str) -> list[Any]:
    return Fields(data, what, provider=NAME).items(key, required=True)


# --- prices -------------------------------------------------------------------------------------


def runpod_price(per_gpu_hour: Decimal, gpu_count: int, *, observed_at: datetime) -> Price:
    """A RunPod list price (USD per GPU-hour) as a runctl :class:`Price` for the whole pod."""
    return Price(
        per_hour=Money(per_gpu_hour * gpu_count, "USD"),
        gpu_count=gpu_count,
        billing_increment=BILLING_INCREMENT,
        spot=False,
        storage_per_gb_month=STORAGE_PER_GB_MONTH,
        observed_at=observed_at,
        source="live",
    )


def _gpu(raw: str | None) -> Gpu | None:
    return GPU_SPELLINGS.normalize(raw) if raw else None


def _matches_gpu(wanted: str, gpu_type: RunPodGpuType) -> bool:
    # The core's matcher only: exact on canonical models (a pre-filter; offers are
    # filtered again by the core).
    gpu = _gpu(gpu_type.id)
    return gpu is not None and gpu_matches(wanted, gpu)


# --- errors -------------------------------------------------------------------------------------

# RunPod reports "no capacity" as a 400 whose only sign is the human-readable detail.
_CAPACITY_WORDS = re.compile(
    r"capacity|no longer any instances|not enough|no available|unavailable|could not be placed|"
    r"out of stock|insufficient (gpu|resources)",
    re.IGNORECASE,
)


# --- the provider -------------------------------------------------------------------------------


class RunPodProvider(RestProviderBase):
    """RunPod pods through REST v2.

    Args:
        config: runctl's configuration for ``runpod``.
        transport: an httpx transport (tests); default: the network.
        retry: the HTTP retry policy; default: :class:`runctl.http.RetryPolicy`.
        timeout: HTTP timeouts; default: :class:`runctl.http.HttpApi`'s.
        log_idle_timeout: for ``logs(follow=False)``, seconds without a new line after
            which the backlog is taken to be complete.
        exit_check_interval: the least time, in seconds, between two reads of one pod's
            log by :meth:`get` looking for the command's end.
    """

    name: ClassVar[str] = NAME
    resource_noun: ClassVar[str] = "pod"
    billing_rule: ClassVar[BillingRule | None] = BILLING_RULE
    gpu_spellings: ClassVar[GpuSpellings | None] = GPU_SPELLINGS
    secret_fields: ClassVar[tuple[str, ...]] = SECRET_FIELDS
    default_base_url: ClassVar[str] = "https://api.runpod.io"
    api_key_env: ClassVar[tuple[str, ...]] = ("RUNPOD_API_KEY",)
    api_key_hint: ClassVar[str] = "Create a key at https://console.runpod.io/user/settings"
    #: The account's SSH keys: one cheap authenticated GET for ``runctl doctor --online``.
    verify_path: ClassVar[str | None] = "/v2/account/ssh-keys"

    def __init__(
        self,
        config: ProviderConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        log_idle_timeout: float = 2.0,
        exit_check_interval: float = 5.0,
    ) -> None:
        super().__init__(config, transport=transport, retry=retry, timeout=timeout)
        self._log_idle_timeout = log_idle_timeout
        self._exits = ExitCodes(every=exit_check_interval)
        #: Launch ids of the pods seen, to tell this launch's markers in the logs.
        self._launch_ids: dict[str, str] = {}

    @property
    def capabilities(self) -> Capabilities:
        """What RunPod supports through runctl (see the module docstring)."""
        return Capabilities(
            live_offers=True,
            stop_start=True,
            spot=False,
            logs=True,
            follow_logs=True,
            multi_node=False,
            ssh=True,
            ttl=False,
            idempotent_launch=True,
            tags=True,
            exit_code=True,
        )

    def classify_error(self, response: httpx.Response, message: str) -> ProviderError | None:
        """Refine HttpApi's mapping for RunPod's ``application/problem+json`` errors."""
        status = response.status_code
        kw = self._api().error_kwargs(response)
        if status == 402:
            return QuotaExceededError(f"{message} (insufficient balance)", **kw)
        if status == 400 and _CAPACITY_WORDS.search(message):
            return CapacityError(message, **kw)
        return None

    # --- offers ---------------------------------------------------------------------------------

    async def _gpu_types(self, *, cloud: str | None = None, count: int = 1) -> list[RunPodGpuType]:
        params: dict[str, Any] = {}
        if cloud is not None:
            params = {"include": "AVAILABILITY", "product": "POD", "cloud": cloud, "count": count}
        data = await self._api().get("/v2/catalog/gpus", params=params or None)
        return [
            RunPodGpuType.from_wire(item) for item in _list_of(data, "gpus", "ListGpuTypesResponse")
        ]

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Pods RunPod would rent now, one offer per GPU type, cloud tier and GPU count.

        Availability is asked for the queried count (1 if none); offers for other
        counts say ``available=None``. RunPod has no spot pods, so ``spot=True``
        queries get no offers.
        """
        if query.spot is True or (query.providers and NAME not in query.providers):
            return []
        count = query.count or 1
        now = utcnow()
        result: list[Offer] = []
        for cloud in CLOUDS:
            for gpu_type in await self._gpu_types(cloud=cloud, count=count):
                per_gpu = gpu_type.price_per_gpu(cloud)
                if per_gpu is None or per_gpu <= 0:
                    continue
                if query.gpu and not _matches_gpu(query.gpu, gpu_type):
                    continue
                gpu = _gpu(gpu_type.id)
                if gpu is not None and gpu.memory_gb is None and gpu_type.memory_gb:
                    gpu = attrs.evolve(gpu, memory_gb=float(gpu_type.memory_gb))
                memory = gpu.memory_gb if gpu is not None else None
                if query.min_gpu_memory_gb and (memory is None or memory < query.min_gpu_memory_gb):
                    continue
                most = gpu_type.max_count(cloud)
                counts = [query.count] if query.count else [c for c in (1, 2, 4, 8) if c <= most]
                for n in counts:
                    if n > most:
                        continue
                    price = runpod_price(per_gpu, n, observed_at=now)
                    if (
                        query.max_per_hour is not None
                        and price.per_hour.amount > query.max_per_hour
                    ):
                        continue
                    if query.max_per_gpu_hour is not None and per_gpu > query.max_per_gpu_hour:
                        continue
                    available = None
                    if n == count and gpu_type.availability is not None:
                        available = gpu_type.availability.upper() != "NONE"
                    result.append(
                        Offer(
                            provider=NAME,
                            instance_type=f"{cloud}:{gpu_type.id}",
                            gpu=gpu,
                            gpu_count=n,
                            price=price,
                            available=available,
                        )
                    )
        result.sort(key=lambda o: o.price.per_hour.amount)
        return result[: query.limit] if query.limit else result

    # --- reading pods ---------------------------------------------------------------------------

    def _resource(self, pod: RunPodPod) -> Resource:
        tags = pod.tags
        state = runpod_state(pod.status)
        price = None
        if pod.cost_per_hour is not None and pod.cost_per_hour > 0 and pod.gpu_count:
            price = runpod_price(
                pod.cost_per_hour / pod.gpu_count,
                pod.gpu_count,
                observed_at=utcnow(),
            )
        detail = RUNPOD_STATES.detail(pod.status)
        launch_id = pod.launch_id
        if launch_id:
            self._launch_ids[pod.id] = launch_id
        resource = Resource(
            id=pod.id,
            provider=NAME,
            state=state,
            raw_state=pod.status,
            name=tags.get(TAG_NAME) or pod.name,
            launch_id=pod.launch_id,
            created_at=pod.created_at,
            started_at=pod.started_at,
            price=price,
            instance_type=f"{pod.cloud}:{pod.gpu_id}" if pod.cloud and pod.gpu_id else pod.gpu_id,
            gpu=_gpu(pod.gpu_id),
            gpu_count=pod.gpu_count,
            region=pod.data_center_id,
            tags=tags,
            address=pod.address,
            detail=detail,
        )
        code = self._exits.get(pod.id)
        if code is not None and state is not _S.TERMINATED:
            # The command ended earlier; the pod (and its bill) stays until terminated.
            return ended(resource, code)
        return resource

    async def _pods(self) -> list[RunPodPod]:
        data = await self._api().get("/v2/pods")
        return [RunPodPod.from_wire(item) for item in _list_of(data, "pods", "ListPodsResponse")]

    async def _read(self, resource_id: str) -> Resource:
        """The pod now, with an exit code already known; its log is not read."""
        data = await self._api().get(f"/v2/pods/{_pod_id(resource_id)}")
        return self._resource(RunPodPod.from_wire(data))

    async def get(self, resource_id: str) -> Resource:
        """The pod as RunPod sees it now; SUCCEEDED or FAILED once its command ended.

        For a ``RUNNING`` pod, the last lines of its log are read (at most once every
        ``exit_check_interval`` seconds) for the exit marker runctl's wrapper prints.

        Raises:
            NotFoundError: no such pod (terminated pods disappear).
        """
        resource = await self._read(resource_id)
        if (
            resource.state is _S.RUNNING
            and resource.launch_id
            and self._exits.due(resource.id)
        ):
            code = await self._exit_code(resource.id, resource.launch_id)
            self._exits.read(resource.id, code)
            if code is not None:
                return ended(resource, code)
        return resource

    async def _exit_code(self, resource_id: str, launch_id: str) -> int | None:
        """The exit code in the tail of the pod's log; ``None`` if not there or unreadable."""
        seen: list[str] = []
        try:
            async for line in self._lines(
                resource_id, follow=False, tail=EXIT_TAIL, idle=min(self._log_idle_timeout, 1.0)
            ):
                seen.append(line)
        except ProviderError as e:
            # A best-effort look: the pod's state stands without it; the next get looks again.
            logger.debug("runpod: reading the log of %s for its exit code failed: %s",
                         resource_id, e)
            return None
        return exit_code_in(seen, launch_id)

    async def list_all(self) -> Sequence[Resource]:
        """Every pod of the account (``list`` keeps those runctl launched, by their tags)."""
        return [self._resource(pod) for pod in await self._pods()]

    # --- launching ------------------------------------------------------------------------------

    async def _resolve_gpu(self, spec: LaunchSpec) -> tuple[str, str, int]:
        """(cloud, gpu type id, count) for the spec."""
        cloud = spec.options.get("cloud", "SECURE").upper()
        if cloud not in CLOUDS:
            raise ValidationError(
                "options.cloud", f"{cloud!r} is unknown", allowed="SECURE, COMMUNITY"
            )
        count = spec.gpu_count
        wanted = None
        if spec.offer is not None:
            wanted = spec.offer.instance_type
            count = count or spec.offer.gpu_count
        elif spec.instance_type:
            wanted = spec.instance_type
        if wanted is not None:
            head, sep, tail = wanted.partition(":")
            if sep and head.upper() in CLOUDS:
                return head.upper(), tail, count or 1
            return cloud, wanted, count or 1
        if not spec.gpu:
            raise ValidationError(
                "gpu",
                "RunPod pods launched by runctl need a GPU",
                allowed="spec.gpu (e.g. 'H100'), spec.instance_type or spec.offer",
            )
        candidates = [
            t
            for t in await self._gpu_types()
            if _matches_gpu(spec.gpu, t) and t.price_per_gpu(cloud)
        ]
        if not candidates:
            # Never another model than asked: no such GPU here is a capacity answer.
            model = gpu_query_model(spec.gpu) or spec.gpu
            raise CapacityError(f"RunPod offers no {model} in the {cloud} cloud", provider=NAME)
        cheapest = min(candidates, key=lambda t: t.price_per_gpu(cloud) or Decimal(0))
        return cloud, cheapest.id, count or 1

    def _pod_name(self, spec: LaunchSpec) -> str:
        return f"{spec.name or 'runctl'}-{spec.launch_id}"

    def check_launch(self, spec: LaunchSpec) -> None:
        """Refuse what RunPod can never run: spot pods, a pod without an image."""
        if spec.spot:
            raise UnsupportedOperationError(
                NAME,
                "spot",
                "RunPod's REST v2 API has no interruptible pods; launch with spot=False",
            )
        if not spec.image and not spec.options.get("template_id"):
            raise ValidationError(
                "image", "RunPod runs containers", allowed="spec.image, or options['template_id']"
            )

    async def _create_body(self, spec: LaunchSpec) -> dict[str, Any]:
        template = spec.options.get("template_id")
        cloud, gpu_id, count = await self._resolve_gpu(spec)
        env = dict(spec.env)
        env[TAGS_ENV] = json.dumps(spec.runctl_tags, sort_keys=True, separators=(",", ":"))
        body: dict[str, Any] = {
            "name": self._pod_name(spec),
            "cloud": cloud,
            "gpu": {"id": gpu_id, "count": count},
            "env": env,
            # RunPod splits ``args`` into words like a shell (its own examples read
            # "bash -c '...'"); the wrapper reports the exit code and keeps the container
            # alive, so RunPod does not restart it and run the command again.
            "args": shlex.join(
                shell_argv(wrap_command(spec.command, spec.launch_id, shell=spec.shell))
            ),
        }
        if spec.image:
            body["image"] = spec.image
        if template:
            body["templateId"] = template
        if spec.disk_gb is not None:
            body["disk"] = spec.disk_gb
        if spec.region:
            body["dataCenterIds"] = [spec.region]
        if "volume_gb" in spec.options:
            try:
                size = int(spec.options["volume_gb"])
            except ValueError:
                raise ValidationError("options.volume_gb", "not an int", allowed=">= 10") from None
            body["mounts"] = {
                "persistent": {"size": size, "path": spec.options.get("volume_path", "/workspace")}
            }
        if spec.ssh_public_key:
            # RunPod images install PUBLIC_KEY into authorized_keys; startSsh starts sshd.
            env["PUBLIC_KEY"] = spec.ssh_public_key
            body["startSsh"] = True
            body["ports"] = ["22/tcp"]
        return body

    async def create(self, spec: LaunchSpec) -> Resource:
        """Create a pod for ``spec`` (``launch`` looks for its launch id first).

        Raises:
            ValidationError: the spec cannot be run on RunPod (no image, no GPU ...).
            UnsupportedOperationError: ``spec.spot`` (RunPod v2 has no interruptible pods).
            CapacityError: RunPod could not place the pod, or offers no such GPU.
        """
        body = await self._create_body(spec)
        data = await self._api().post("/v2/pods", json_body=body)
        return self._resource(RunPodPod.from_wire(data))

    # --- changing pods --------------------------------------------------------------------------

    async def remove(self, resource_id: str) -> Resource:
        """Delete the pod; returns it as last seen, marked ``TERMINATED``.

        (``terminate`` reports a pod RunPod no longer knows as ``TERMINATED``: RunPod
        cannot tell "deleted" from "never existed".)
        """
        before = await self._read(resource_id)
        try:
            await self._api().delete(f"/v2/pods/{_pod_id(resource_id)}")
        except NotFoundError:
            # A retried DELETE whose first answer was lost: the pod is already gone.
            pass
        self._exits.forget(resource_id)
        return before.evolve(
            state=_S.TERMINATED, raw_state="TERMINATED", ended_at=utcnow(), observed_at=utcnow()
        )

    async def _action(self, resource_id: str, action: str) -> Resource:
        try:
            data = await self._api().post(
                f"/v2/pods/{_pod_id(resource_id)}/action",
                json_body={"action": action},
                idempotent=True,
            )
        except ConflictError:
            # A retried action whose first answer was lost finds the pod already there.
            current = await self._read(resource_id)
            if current.state is _ACTION_GOAL[action]:
                return current
            raise
        if data is None:
            return await self._read(resource_id)
        return self._resource(RunPodPod.from_wire(data))

    def allowed_actions(self, resource: Resource) -> frozenset[str] | None:
        """The stop/start actions RunPod permits in the pod's raw status (:data:`POD_ACTIONS`).

        A pod in ``ERROR`` is FAILED to runctl, yet RunPod starts it again.
        ``None`` for a status RunPod does not document.
        """
        return POD_ACTIONS.get((resource.raw_state or "").upper())

    async def stop(self, resource_id: str) -> Resource:
        """Stop the pod (compute released, disk kept).

        Raises:
            ConflictError: the pod cannot be stopped in its current status.
        """
        return await self._action(resource_id, "stop")

    async def start(self, resource_id: str) -> Resource:
        """Start a stopped (``EXITED``) or failed (``ERROR``) pod again.

        Its container starts afresh and runs the command again: an exit code known
        from before is forgotten.

        Raises:
            ConflictError: the pod cannot be started in its current status.
        """
        self._exits.forget(resource_id)
        return await self._action(resource_id, "start")

    # --- logs -----------------------------------------------------------------------------------

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """The container's output, line by line, without runctl's marker lines.

        RunPod streams logs as Server-Sent Events and never says where the backlog
        ends. Without ``follow``, runctl reads up to 5000 past lines and stops at the
        first line written after the call, or after ``log_idle_timeout`` seconds
        without a line. With ``follow``, it ends once the command has ended (the
        wrapper's exit marker, then ``log_idle_timeout`` seconds without a restart).
        """
        return self._logs(resource_id, follow=follow)

    async def _launch_id(self, resource_id: str) -> str | None:
        known = self._launch_ids.get(resource_id)
        if known is None:
            try:
                known = (await self._read(resource_id)).launch_id
            except ProviderError:
                return None  # the stream will say what is wrong, if anything
        return known

    async def _logs(self, resource_id: str, *, follow: bool) -> AsyncIterator[str]:

        # Following needs the launch id to end with the command; one pod read is cheap.
        launch_id = (
            await self._launch_id(resource_id) if follow else self._launch_ids.get(resource_id)
        )
        lines = cast(
            "AsyncGenerator[str, None]",
            self._lines(
                resource_id, follow=follow, tail=100 if follow else 5000,
                idle=self._log_idle_timeout,
            ),
        )
        code: int | None = None  # the exit code in the last marker of this launch
        try:
            while True:
                if code is not None and follow:
                    # The command ended: stop unless the container restarts meanwhile.
                    line = None
                    with clock.move_on_after(self._log_idle_timeout):
                        line = await anext(lines, None)
                    if line is None:
                        break
                else:
                    line = await anext(lines, None)
                    if line is None:
                        break
                marker = parse_marker(line)
                if marker is None:
                    yield line
                elif marker.launch_id == launch_id:
                    code = marker.exit_code
        finally:
            await lines.aclose()
        if code is not None:
            self._exits.read(resource_id, code)

    async def _lines(
        self, resource_id: str, *, follow: bool, tail: int, idle: float
    ) -> AsyncIterator[str]:
        """The log as RunPod streams it, markers included.

        Without ``follow``: at most ``tail`` past lines, ending at the first line
        written after the call or after ``idle`` seconds without a line.
        """

        started = utcnow()
        params: dict[str, Any] = {"source": "container", "tail": tail}
        path = f"/v2/pods/{_pod_id(resource_id)}/logs"
        last_ts: str | None = None
        seen_ids: set[str] = set()
        count = 0
        while True:
            if last_ts is not None:
                params = {"source": "container", "since": last_ts}
            lines = cast("AsyncGenerator[str, None]", self._api().stream_lines(path, params=params))
            event_id: str | None = None
            try:
                while True:
                    if follow:
                        line = await anext(lines, None)
                    else:
                        line = None
                        with clock.move_on_after(idle):
                            line = await anext(lines, None)
                    if line is None:
                        break
                    if line.startswith("id:"):
                        event_id = line[3:].strip()
                        continue
                    if not line.startswith("data:"):
                        continue
                    event = _log_event(line[5:].strip())
                    if event is None:
                        continue
                    text, ts = event
                    if event_id is not None:
                        if event_id in seen_ids:
                            continue
                        seen_ids.add(event_id)
                    last_ts = ts or last_ts
                    if not follow and ts and _after(ts, started):
                        return
                    yield text
                    count += 1
                    if not follow and count >= tail:
                        return  # the whole backlog asked for
            except ProviderConnectionError as e:
                if not follow:
                    raise ProviderConnectionError(
                        f"log stream of {resource_id} broke ({e.message})", provider=NAME
                    ) from e
                # A quiet stream times out; reconnect from the last line seen.
                continue
            finally:
                await lines.aclose()
            if not follow:
                return
            await self._sleep(1.0)


def _log_event(payload: str) -> tuple[str, str | None] | None:
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        return payload, None
    if not isinstance(data, dict) or not isinstance(data.get("line"), str):
        return None
    ts = data.get("ts")
    return data["line"], ts if isinstance(ts, str) else None


def _after(ts: str, moment: datetime) -> bool:
    when = parse_timestamp(ts)
    return when is not None and when > moment


def _pod_id(resource_id: str) -> str:
    return check_resource_id(resource_id, provider=NAME, what="RunPod pod")
