"""Vast.ai: rent GPU containers from a marketplace of hosts, on demand or interruptible.

Prerequisites
    A Vast.ai account with credit, and an API key (https://cloud.vast.ai/manage-keys/).
    Nothing to install: runctl talks to the REST API at https://console.vast.ai
    (``/api/v0`` and ``/api/v1``) over httpx.

Credentials (first match wins; :meth:`VastProvider.check` says which one was used)
    1. ``VAST_API_KEY`` in the environment;
    2. ``api_key`` in ``[providers.vast]`` of runctl's ``config.toml``;
    3. the vastai CLI's key file: ``$XDG_CONFIG_HOME/vastai/vast_api_key``
       (``~/.config/vastai/vast_api_key``, what ``vastai set api-key`` writes today),
       then the legacy ``~/.vast_api_key``.

Settings
    ``base_url`` (``RUNCTL_VAST_BASE_URL`` or the config file): API root, default
    ``https://console.vast.ai``; plain http only to loopback.

Capabilities

=================  =====  =====================================================================
capability         value  how
=================  =====  =====================================================================
live_offers        yes    ``POST /api/v0/bundles`` (on-demand and ``bid`` searches)
stop_start         yes    ``PUT /api/v0/instances/{id}`` with ``state``
spot               yes    interruptible: a bid (``price``) on the offer, default its ``min_bid``
logs               yes    ``PUT /api/v0/instances/request_logs/{id}``, then the returned URL is read
follow_logs        no     Vast uploads a snapshot of the log; ``follow=True`` raises
multi_node         no
ssh                yes    ``ssh_public_key`` is attached with ``POST /api/v0/instances/{id}/ssh``
ttl                no     the core's lifecycle enforces TTL; Vast has no TTL of its own
idempotent_launch  yes    the instance ``label`` carries the launch id; launch looks before creating
tags               yes    all runctl tags are encoded in the ``label`` (at most 1024 characters)
exit_code          yes    runctl's wrapper prints it; ``get`` reads the log's tail (throttled)
=================  =====  =====================================================================

How a launch maps to Vast
    * Without ``spec.offer``, the cheapest matching offer is searched (``spec.gpu``,
      ``spec.gpu_count``, ``spec.spot``); ``spec.offer.instance_type`` or
      ``spec.instance_type`` is a Vast offer (ask) id.
    * ``spec.image`` is the container image (default ``vastai/base-image:@vastai-automatic-tag``).
    * Vast reports the container, never the command's exit code. So runctl runs
      ``spec.command`` inside a small ``sh`` wrapper (:mod:`runctl._workload`) that
      prints ``[runctl:<launch id>] start``, runs it, prints
      ``[runctl:<launch id>] exit <N>``. Without an SSH key the wrapper is the
      container's arguments (``runtype="args"``) and then keeps the container
      ``running`` (idle, still billed) until it is terminated. With
      ``spec.ssh_public_key`` the container runs sshd (``runtype="ssh"``), the
      wrapper is the ``onstart`` script (at most 4048 characters) and ends after the
      marker; the instance runs until terminated. Either way ``spec.workdir`` is honoured.
    * ``get`` of a ``running`` or ``exited`` instance reads the last 20 lines of its
      log for the marker. Each read is a log upload requested from Vast and then
      downloaded, so it is done at most once every ``exit_check_interval`` seconds
      (default 30) per instance, and given up (state unchanged) when the upload is
      not there after three tries a second apart. Found: SUCCEEDED (exit 0) or
      FAILED, ``exit_code`` set, ``raw_state`` kept; terminate it to stop the bill.
      The code is remembered in memory (``list`` shows it, reading no logs);
      ``start`` forgets it. ``exited`` without a marker (the container died before
      the wrapper could print) is FAILED, the exit code unknown. Markers never show
      in ``logs``. Whether onstart's output reaches Vast's log in SSH mode is not
      documented by Vast; if it does not, such instances stay RUNNING.
    * ``spec.env`` becomes Docker ``-e`` flags; ``spec.disk_gb`` the disk (default 16 GB).
    * ``spec.spot`` rents interruptibly at ``options["bid_price"]`` (USD/hour for the
      whole machine) or the offer's minimum bid. An outbid instance is *stopped*
      by Vast, not destroyed, and resumes when its bid wins again: runctl reports
      it STOPPED (PENDING while Vast still intends to run it) with a detail.

Prices
    ``per_hour`` is the machine's compute price (``dph_base``, or ``min_bid`` for an
    interruptible offer), ``storage_per_gb_month`` the host's ``storage_cost``,
    ``egress_per_gb`` its ``inet_up_cost``; billing is per second (the host's
    ``dph_*`` are hourly rates charged for the time used). ``source="live"``.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import attrs

from .. import clock
from .._wire import Fields, malformed
from .._workload import ExitCodes, ended, exit_code_in, is_marker, shell_argv, wrap_command
from ..cost import Money, Price
from ..errors import (
    AuthenticationError,
    CapacityError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
    UnsupportedOperationError,
    ValidationError,
)
from ..models import (
    TAG_LAUNCH_ID,
    TAG_NAME,
    Capabilities,
    LaunchSpec,
    Offer,
    OfferQuery,
    Resource,
    ResourceState,
)
from ..provider import RestProviderBase

if TYPE_CHECKING:
    import httpx

    from ..config import ProviderConfig
    from ..http import RetryPolicy

__all__ = [
    "CAPABILITIES",
    "DEFAULT_BASE_URL",
    "RAW_STATES",
    "VastInstance",
    "VastOffer",
    "VastProvider",
    "decode_label",
    "encode_label",
    "state_of",
]

logger = logging.getLogger("runctl.providers.vast")

DEFAULT_BASE_URL = "https://console.vast.ai"
DEFAULT_IMAGE = "vastai/base-image:@vastai-automatic-tag"
DEFAULT_DISK_GB = 16
_LABEL_PREFIX = "runctl:"
_LABEL_MAX = 1024
_ONSTART_MAX = 4048
_PAGE = 25  # the v1 instance list's maximum page size
_SEARCH_LIMIT = 256
#: After a create whose answer was lost, how often to look for the instance, and how long apart.
_RECONCILE_TRIES = 3
_RECONCILE_WAIT = 2.0
#: Reading an instance's log to see whether its command ended: Vast uploads a snapshot
#: on request, so each look costs a request and a download. get() looks at most once
#: per ``exit_check_interval`` (default below) per instance, at the last lines only,
#: and waits for the upload a few seconds at most.
EXIT_CHECK_INTERVAL = 30.0
_EXIT_TAIL = 20
_EXIT_DOWNLOAD_TRIES = 3
_EXIT_DOWNLOAD_WAIT = 1.0

CAPABILITIES = Capabilities(
    live_offers=True,
    stop_start=True,
    spot=True,
    logs=True,
    follow_logs=False,
    multi_node=False,
    ssh=True,
    ttl=False,
    idempotent_launch=True,
    tags=True,
    exit_code=True,
)

_S = ResourceState
#: Every ``actual_status`` Vast documents (vast-ai/vast-cli ``vastai/SKILL.md``,
#: "Instance status values"; the OpenAPI spec only says it is a nullable string).
#: ``None`` is the JSON null Vast reports while the instance is being provisioned.
RAW_STATES: Mapping[str | None, ResourceState] = {
    None: _S.PROVISIONING,  # null: provisioning
    "created": _S.PENDING,  # created, not yet provisioned
    "loading": _S.PROVISIONING,  # image downloading / container starting
    "running": _S.RUNNING,  # GPU charges apply
    "stopped": _S.STOPPED,  # halted, disk charges only (also: an outbid interruptible)
    "frozen": _S.STOPPED,  # paused with memory; GPU charges apply
    "exited": _S.FAILED,  # the container's process exited; Vast reports no exit code
    "rebooting": _S.PROVISIONING,  # restarting (transient)
    "unknown": _S.UNKNOWN,  # no recent heartbeat from the host
    "offline": _S.UNKNOWN,  # host disconnected from Vast's servers; may come back
}

_DETAILS: Mapping[str, str] = {
    "frozen": "frozen (paused with memory; GPU charges continue)",
    "exited": "the container exited before runctl's wrapper reported the command's exit "
    "code; the exit code is unknown (see logs)",
    "unknown": "no recent heartbeat from the host",
    "offline": "the host is disconnected from Vast",
}


def state_of(
    actual_status: str | None, intended_status: str | None = None, *, is_bid: bool = False
) -> tuple[ResourceState, str | None]:
    """runctl's state for Vast's ``actual_status``, refined by ``intended_status``.

    Returns:
        The state and a short detail (``None`` when the state says it all).
    """
    state = RAW_STATES.get(actual_status, _S.UNKNOWN)
    detail = _DETAILS.get(actual_status or "")
    if actual_status not in RAW_STATES:
        detail = f"unrecognised Vast status {actual_status!r}"
    if intended_status == "stopped" and state in (_S.PENDING, _S.PROVISIONING, _S.RUNNING):
        return _S.STOPPING, "stop requested"
    if intended_status == "running" and actual_status == "stopped":
        if is_bid:
            return _S.STOPPED, "interruptible: outbid (or waiting for its bid to win)"
        return _S.PENDING, "start requested; waiting for the host"
    return state, detail


# --- labels: how runctl's tags ride on a Vast instance ------------------------------------------


def encode_label(tags: Mapping[str, str]) -> str:
    """The instance label that carries ``tags`` (launch id first, then sorted).

    Raises:
        ValidationError: the label would exceed Vast's 1024 characters.
    """
    items = sorted(tags.items(), key=lambda kv: (kv[0] != TAG_LAUNCH_ID, kv[0]))
    label = _LABEL_PREFIX + urlencode(items)
    if len(label) > _LABEL_MAX:
        raise ValidationError(
            "tags", f"the tags need {len(label)} characters in the Vast label",
            allowed=f"at most {_LABEL_MAX} characters once encoded",
        )
    return label


def decode_label(label: str | None) -> dict[str, str] | None:
    """The tags in a runctl label, or ``None`` for an instance runctl did not launch."""
    if not label or not label.startswith(_LABEL_PREFIX):
        return None
    try:
        pairs = parse_qsl(label[len(_LABEL_PREFIX):], keep_blank_values=True, strict_parsing=True)
        tags = dict(pairs)
    except ValueError:
        return None
    return tags if TAG_LAUNCH_ID in tags else None


# --- wire models ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class VastOffer:
    """One row of ``POST /api/v0/bundles`` (only the fields runctl uses).

    Units as Vast sends them: ``gpu_ram`` and ``cpu_ram`` in MB, prices in USD/hour,
    ``storage_cost`` in USD per GB-month, ``inet_*_cost`` in USD per GB.
    """

    id: int
    num_gpus: int
    gpu_name: str | None = None
    gpu_ram_mb: float | None = None
    cpu_cores_effective: float | None = None
    cpu_ram_mb: float | None = None
    dph_base: Decimal | None = None
    dph_total: Decimal | None = None
    min_bid: Decimal | None = None
    storage_cost: Decimal | None = None
    inet_up_cost: Decimal | None = None
    geolocation: str | None = None
    rentable: bool | None = None

    @classmethod
    def from_json(cls, data: object) -> VastOffer:
        """Parse one offer.

        Raises:
            MalformedResponseError: a field runctl needs is missing or of the wrong type.
        """
        f = Fields(data, "offer", provider="vast")
        return cls(
            id=f.integer("id", required=True),
            num_gpus=f.integer("num_gpus") or 0,
            gpu_name=f.text("gpu_name"),
            gpu_ram_mb=f.real("gpu_ram"),
            cpu_cores_effective=f.real("cpu_cores_effective"),
            cpu_ram_mb=f.real("cpu_ram"),
            dph_base=f.number("dph_base"),
            dph_total=f.number("dph_total"),
            min_bid=f.number("min_bid"),
            storage_cost=f.number("storage_cost"),
            inet_up_cost=f.number("inet_up_cost"),
            geolocation=f.text("geolocation"),
            rentable=f.flag("rentable"),
        )


#: Instance fields that carry the user's env values, scripts, command or Jupyter token.
_SECRET_FIELDS = ("extra_env", "env", "onstart", "image_args", "jupyter_token")


def _hide_secrets(data: object) -> object:
    if isinstance(data, Mapping) and any(data.get(k) is not None for k in _SECRET_FIELDS):
        return {**data, **{k: "***" for k in _SECRET_FIELDS if data.get(k) is not None}}
    return data


@attrs.frozen(kw_only=True)
class VastInstance:
    """An instance, from ``GET /api/v0/instances/{id}`` or ``GET /api/v1/instances``."""

    id: int
    actual_status: str | None = None
    intended_status: str | None = None
    label: str | None = None
    status_msg: str | None = None
    num_gpus: int = 0
    gpu_name: str | None = None
    gpu_ram_mb: float | None = None
    dph_base: Decimal | None = None
    storage_cost: Decimal | None = None
    inet_up_cost: Decimal | None = None
    is_bid: bool = False
    start_date: float | None = None
    geolocation: str | None = None
    public_ipaddr: str | None = None
    ssh_host: str | None = None
    machine_id: int | None = None

    @classmethod
    def from_json(cls, data: object) -> VastInstance:
        """Parse one instance.

        Raises:
            MalformedResponseError: a field runctl needs is missing or of the wrong type.
        """
        # An error shows the object it could not read: show it without the user's secrets.
        f = Fields(_hide_secrets(data), "instance", provider="vast")
        return cls(
            id=f.integer("id", required=True),
            actual_status=f.text("actual_status"),
            intended_status=f.text("intended_status"),
            label=f.text("label"),
            status_msg=f.text("status_msg"),
            num_gpus=f.integer("num_gpus") or 0,
            gpu_name=f.text("gpu_name"),
            gpu_ram_mb=f.real("gpu_ram"),
            dph_base=f.number("dph_base"),
            storage_cost=f.number("storage_cost"),
            inet_up_cost=f.number("inet_up_cost"),
            is_bid=bool(f.flag("is_bid")),
            start_date=f.real("start_date"),
            geolocation=f.text("geolocation"),
            public_ipaddr=(f.text("public_ipaddr") or "").strip() or None,
            ssh_host=f.text("ssh_host"),
            machine_id=f.integer("machine_id"),
        )

    @property
    def tags(self) -> dict[str, str] | None:
        """runctl's tags from the label; ``None`` if runctl did not launch this instance."""
        return decode_label(self.label)


# --- price normalisation --------------------------------------------------------------------------


def _price(
    per_hour: Decimal,
    *,
    gpu_count: int,
    spot: bool,
    storage_cost: Decimal | None,
    inet_up_cost: Decimal | None,
    observed_at: datetime,
) -> Price:
    return Price(
        per_hour=Money(per_hour, "USD"),
        gpu_count=gpu_count,
        billing_increment=timedelta(seconds=1),
        spot=spot,
        storage_per_gb_month=None if storage_cost is None else Money(storage_cost, "USD"),
        egress_per_gb=None if inet_up_cost is None else Money(inet_up_cost, "USD"),
        observed_at=observed_at,
        source="live",
    )


def offer_price(offer: VastOffer, *, spot: bool, observed_at: datetime) -> Price | None:
    """The runctl price of a Vast offer; ``None`` when Vast gave no compute price."""
    per_hour = (offer.min_bid if spot else offer.dph_base) or (None if spot else offer.dph_total)
    if per_hour is None:
        return None
    return _price(
        per_hour, gpu_count=offer.num_gpus, spot=spot, storage_cost=offer.storage_cost,
        inet_up_cost=offer.inet_up_cost, observed_at=observed_at,
    )


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


# --- the provider ---------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return clock.now()


class VastProvider(RestProviderBase):
    """runctl's Vast.ai provider. See the module docstring for the whole story.

    Args:
        config: runctl's configuration for ``vast``.
        transport: an httpx transport (tests); default: the network.
        retry: the HTTP retry policy (tests); default: :class:`runctl.http.RetryPolicy`.
        sleep: the async sleep used between retries and reconciliation looks (tests).
        timeout: HTTP timeouts; default connect 10 s, everything else 30 s.
        exit_check_interval: the least time, in seconds, between two reads of one
            instance's log by :meth:`get` looking for the command's end.
    """

    name: ClassVar[str] = "vast"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    api_key_env: ClassVar[tuple[str, ...]] = ("VAST_API_KEY",)
    #: Where the vastai CLI keeps the key: today's file, then the legacy one.
    api_key_files: ClassVar[tuple[str, ...]] = (
        "$XDG_CONFIG_HOME/vastai/vast_api_key",
        "~/.vast_api_key",
    )
    api_key_hint: ClassVar[str] = "set VAST_API_KEY or run `vastai set api-key <KEY>`"

    def __init__(
        self,
        config: ProviderConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        exit_check_interval: float = EXIT_CHECK_INTERVAL,
    ) -> None:
        super().__init__(config, transport=transport, retry=retry, timeout=timeout, sleep=sleep)
        self._exits = ExitCodes(every=exit_check_interval)
        #: Launch ids of the instances seen, to tell this launch's markers in the logs.
        self._launch_ids: dict[str, str] = {}

    @property
    def capabilities(self) -> Capabilities:
        """What Vast supports (the table in the module docstring)."""
        return CAPABILITIES

    # --- errors -------------------------------------------------------------------------------

    def _classify(self, response: httpx.Response, message: str) -> ProviderError | None:
        """Vast's error shapes: ``{"success": false, "error": code, "msg": text}``, or
        ``{"detail": text}`` on 429. The human text is in ``msg``."""
        api = self._api()
        kw = api.error_kwargs(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        code = text = ""
        if isinstance(body, Mapping):
            code = str(body.get("error") or "")
            text = str(body.get("msg") or body.get("detail") or body.get("error") or "")
        status = response.status_code
        where = f"{response.request.method} {response.request.url.path}"
        msg = api.redact(f"{where}: {text}" if text else message)
        lowered = f"{code} {text}".lower()
        if status == 429:
            # Vast sends no Retry-After: HttpApi backs off exponentially with jitter.
            return RateLimitedError(msg, retry_after=None, **kw)
        if status in (401, 403) or "invalid user key" in lowered or code == "auth_error":
            # search offers answers 404 "Invalid user key" for a bad key.
            return AuthenticationError(msg, **kw)
        if "no_such_ask" in lowered or status == 410 or "not available" in lowered:
            return CapacityError(msg, **kw)
        if re.search(r"insufficient|credit|balance|quota|limit reached", lowered):
            return QuotaExceededError(msg, **kw)
        if status == 404:
            return NotFoundError(msg, **kw)
        if status >= 500:
            return ServerError(msg, **kw)
        if text:
            return ProviderError(msg, **kw)
        return None

    # --- offers -------------------------------------------------------------------------------

    def _search_body(
        self, query: OfferQuery, *, spot: bool, ask_id: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "limit": _SEARCH_LIMIT,
            "type": "bid" if spot else "ondemand",
            "verified": {"eq": True},
            "rentable": {"eq": True},
            "rented": {"eq": False},
            # Cheapest first; the tiebreaker also satisfies the spec's minItems of 2.
            "order": [["dph_total", "asc"], ["id", "asc"]],
        }
        if ask_id is not None:
            body["id"] = {"eq": ask_id}
        if query.count is not None:
            body["num_gpus"] = {"eq": query.count}
        if query.min_gpu_memory_gb is not None:
            body["gpu_ram"] = {"gte": int(query.min_gpu_memory_gb * 1000)}
        if query.min_vcpus is not None:
            body["cpu_cores_effective"] = {"gte": query.min_vcpus}
        if query.min_memory_gb is not None:
            body["cpu_ram"] = {"gte": int(query.min_memory_gb * 1000)}
        return body

    async def _search(
        self, query: OfferQuery, *, spot: bool, ask_id: int | None = None
    ) -> list[Offer]:
        from ..gpus import normalize_gpu

        data = await self._api().post(
            "/api/v0/bundles", json_body=self._search_body(query, spot=spot, ask_id=ask_id),
            idempotent=True,  # a search changes nothing
        )
        if not isinstance(data, Mapping):
            raise malformed(self.name, "POST /api/v0/bundles: expected an object")
        rows = data.get("offers")
        if isinstance(rows, Mapping):  # the spec's own example shows a single object
            rows = [rows]
        if not isinstance(rows, list):
            raise malformed(self.name, "POST /api/v0/bundles: 'offers' is not a list")
        now = _utcnow()
        offers: list[Offer] = []
        for row in rows:
            raw = VastOffer.from_json(row)
            price = offer_price(raw, spot=spot, observed_at=now)
            if price is None:
                continue
            gpu = normalize_gpu(raw.gpu_name, provider=self.name) if raw.gpu_name else None
            model = gpu.model if gpu else None
            if query.gpu and not self._gpu_matches(query.gpu, raw.gpu_name, model):
                continue
            offers.append(
                Offer(
                    provider=self.name,
                    instance_type=str(raw.id),
                    gpu=gpu,
                    gpu_count=raw.num_gpus,
                    price=price,
                    vcpus=int(raw.cpu_cores_effective) if raw.cpu_cores_effective else None,
                    memory_gb=raw.cpu_ram_mb / 1024 if raw.cpu_ram_mb else None,
                    region=raw.geolocation,
                    available=raw.rentable if raw.rentable is not None else True,
                )
            )
        return offers

    @staticmethod
    def _gpu_matches(wanted: str, raw: str | None, model: str | None) -> bool:
        if model and model != "unknown":
            have, want = _squash(model), _squash(wanted)
            return have.startswith(want) or want.startswith(have)
        return bool(raw) and _squash(wanted) in _squash(raw or "")

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Live offers from Vast's marketplace, cheapest first.

        ``query.spot`` None searches both on-demand and interruptible (two requests).
        GPU name, count, memory and CPU filters are applied; other filters are the core's.
        """
        kinds = [False, True] if query.spot is None else [query.spot]
        found: list[Offer] = []
        for spot in kinds:
            found.extend(await self._search(query, spot=spot))
        found.sort(key=lambda o: o.price.per_hour.amount)
        return found

    # --- instances ----------------------------------------------------------------------------

    def _resource(self, inst: VastInstance, *, observed_at: datetime | None = None) -> Resource:
        from ..gpus import normalize_gpu

        now = observed_at or _utcnow()
        state, detail = state_of(inst.actual_status, inst.intended_status, is_bid=inst.is_bid)
        tags = inst.tags or {}
        price = None
        if inst.dph_base is not None:
            price = _price(
                inst.dph_base, gpu_count=inst.num_gpus, spot=inst.is_bid,
                storage_cost=inst.storage_cost, inet_up_cost=inst.inet_up_cost, observed_at=now,
            )
        started = (
            datetime.fromtimestamp(inst.start_date, timezone.utc) if inst.start_date else None
        )
        launch_id = tags.get(TAG_LAUNCH_ID)
        if launch_id:
            self._launch_ids[str(inst.id)] = launch_id
        resource = Resource(
            id=str(inst.id),
            provider=self.name,
            state=state,
            raw_state=inst.actual_status if inst.actual_status is not None else "null",
            name=tags.get(TAG_NAME),
            launch_id=tags.get(TAG_LAUNCH_ID),
            created_at=started,
            started_at=started if state is _S.RUNNING else None,
            price=price,
            gpu=normalize_gpu(inst.gpu_name, provider=self.name) if inst.gpu_name else None,
            gpu_count=inst.num_gpus,
            region=inst.geolocation,
            tags=tags,
            address=inst.public_ipaddr or inst.ssh_host,
            observed_at=now,
            detail=detail or inst.status_msg,
        )
        code = self._exits.get(resource.id)
        if code is not None:
            # The command ended earlier; the instance (and its bill) stays until destroyed.
            return ended(resource, code)
        return resource

    def _instance_id(self, resource_id: str) -> int:
        try:
            return int(resource_id)
        except (TypeError, ValueError):
            # Not an id Vast could have issued: no such instance.
            raise NotFoundError(f"{resource_id!r} is not a Vast instance id (an integer)",
                                provider=self.name) from None

    async def _instance(self, resource_id: str) -> VastInstance:
        iid = self._instance_id(resource_id)
        data = await self._api().get(f"/api/v0/instances/{iid}")
        if not isinstance(data, Mapping):
            raise malformed(self.name, f"GET /api/v0/instances/{iid}: expected an object")
        inst = data.get("instances")
        if isinstance(inst, list):  # older servers answer with a one-item list
            inst = inst[0] if inst else None
        if not inst:
            raise NotFoundError(f"instance {iid} not found", provider=self.name)
        return VastInstance.from_json(inst)

    async def _read(self, resource_id: str) -> Resource:
        """The instance now, with an exit code already known; its log is not read."""
        return self._resource(await self._instance(resource_id))

    async def get(self, resource_id: str) -> Resource:
        """The instance now; SUCCEEDED or FAILED once its command ended.

        For a ``running`` or ``exited`` instance, the last lines of its log are read
        (at most once every ``exit_check_interval`` seconds) for the exit marker
        runctl's wrapper prints. ``exited`` without one stays FAILED, exit code unknown.

        Raises:
            NotFoundError: no such instance (or it was destroyed).
        """
        inst = await self._instance(resource_id)
        resource = self._resource(inst)
        looks = (inst.actual_status == "running" and resource.state is _S.RUNNING) or (
            inst.actual_status == "exited" and resource.state is _S.FAILED
        )
        if looks and resource.launch_id and self._exits.due(resource.id):
            lines = await self._exit_lines(inst.id)
            code = None if lines is None else exit_code_in(lines, resource.launch_id)
            # An exited container's log is complete: one successful read settles it.
            final = lines is not None and inst.actual_status == "exited"
            self._exits.read(resource.id, code, final=final)
            if code is not None:
                return ended(resource, code)
        return resource

    async def _exit_lines(self, iid: int) -> tuple[str, ...] | None:
        """The last lines of the log, or ``None`` when they could not be had quickly."""
        try:
            return await self._log_lines(
                iid, tail=_EXIT_TAIL, tries=_EXIT_DOWNLOAD_TRIES,
                wait=lambda attempt: _EXIT_DOWNLOAD_WAIT,
            )
        except ProviderError as e:
            # A best-effort look: the state stands without it; a later get looks again.
            logger.debug("vast: reading the log of %s for its exit code failed: %s", iid, e)
            return None

    async def _all_instances(self) -> list[VastInstance]:
        api = self._api()
        found: list[VastInstance] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"limit": _PAGE}
            if token:
                params["after_token"] = token
            data = await api.get("/api/v1/instances", params=params)
            if not isinstance(data, Mapping) or not isinstance(data.get("instances", []), list):
                raise malformed(self.name, "GET /api/v1/instances: expected {'instances': [...]}")
            found.extend(VastInstance.from_json(row) for row in data.get("instances") or [])
            token = data.get("next_token")
            if token is not None and not isinstance(token, str):
                raise malformed(self.name, "GET /api/v1/instances: 'next_token' is not a string")
            if not token or token in seen:
                return found
            seen.add(token)

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Instances runctl launched (their label carries runctl's tags), filtered by ``tags``."""
        now = _utcnow()
        out: list[Resource] = []
        for inst in await self._all_instances():
            carried = inst.tags
            if carried is None:
                continue
            if tags and any(carried.get(k) != v for k, v in tags.items()):
                continue
            out.append(self._resource(inst, observed_at=now))
        return out

    async def _find(self, launch_id: str) -> Resource | None:
        # Destroyed instances vanish from Vast's list, so any match is the live one.
        found = await self.list(tags={TAG_LAUNCH_ID: launch_id})
        return found[0] if found else None

    # --- launch -------------------------------------------------------------------------------

    async def _choose_offer(self, spec: LaunchSpec) -> Offer:
        if spec.offer is not None:
            if spec.offer.provider != self.name:
                raise ValidationError("offer", f"offer is from {spec.offer.provider!r}",
                                      allowed="an offer from 'vast'")
            return spec.offer
        if spec.instance_type:
            ask_id = self._ask_id(spec.instance_type)
            found = await self._search(OfferQuery(), spot=spec.spot, ask_id=ask_id)
            if not found:
                raise CapacityError(f"offer {ask_id} is no longer available", provider=self.name)
            return found[0]
        query = OfferQuery(gpu=spec.gpu, count=spec.gpu_count or None, spot=spec.spot)
        found = await self._search(query, spot=spec.spot)
        if not found:
            raise CapacityError(
                f"no {'interruptible' if spec.spot else 'on-demand'} offer for "
                f"{spec.gpu_count or 'any number of'} x {spec.gpu or 'any GPU'}",
                provider=self.name,
            )
        return min(found, key=lambda o: o.price.per_hour.amount)

    @staticmethod
    def _ask_id(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise ValidationError("instance_type", f"{value!r} is not a Vast offer id",
                                  allowed="an offer id from offers(), e.g. '12345678'") from None

    def _create_body(self, spec: LaunchSpec, offer: Offer) -> tuple[dict[str, Any], Decimal | None]:
        body: dict[str, Any] = {
            "image": spec.image or DEFAULT_IMAGE,
            "label": encode_label(spec.runctl_tags),
            "disk": spec.disk_gb or DEFAULT_DISK_GB,
            "target_state": "running",
        }
        if spec.env:
            body["env"] = " ".join(f"-e {k}={shlex.quote(v)}" for k, v in spec.env.items())
        if spec.ssh_public_key:
            # sshd keeps this container up: the wrapper need not, so it ends after the marker.
            onstart = wrap_command(
                spec.command, spec.launch_id, workdir=spec.workdir, keep_alive=":"
            )
            if len(onstart) > _ONSTART_MAX:
                raise ValidationError("command", f"{len(onstart)} characters as Vast onstart",
                                      allowed=f"at most {_ONSTART_MAX} characters")
            body["runtype"] = "ssh"
            body["onstart"] = onstart
        else:
            body["runtype"] = "args"
            # The wrapper reports the exit code and keeps the container up (``running``),
            # rather than letting it end as ``exited``, which tells nothing.
            body["args"] = shell_argv(
                wrap_command(spec.command, spec.launch_id, workdir=spec.workdir)
            )
        bid: Decimal | None = None
        if spec.spot or offer.spot:
            raw = spec.options.get("bid_price")
            try:
                bid = Decimal(raw) if raw is not None else offer.price.per_hour.amount
            except ArithmeticError:
                raise ValidationError("options.bid_price", f"{raw!r} is not a price",
                                      allowed="USD per hour, e.g. '0.35'") from None
            if not Decimal("0.001") <= bid <= Decimal(128):
                raise ValidationError("options.bid_price", f"{bid} is out of range",
                                      allowed="0.001 to 128 USD per hour")
            body["price"] = float(bid)
        else:
            body["cancel_unavail"] = True
        return body, bid

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Rent an offer and run ``spec`` on it; idempotent on ``spec.launch_id``.

        Raises:
            CapacityError: no matching offer, or the offer was taken meanwhile.
            ProviderConnectionError: the create may or may not have happened and no
                instance with this launch id could be found; launching again is safe.
        """
        existing = await self._find(spec.launch_id)
        if existing is not None:
            return existing
        offer = await self._choose_offer(spec)
        ask_id = self._ask_id(offer.instance_type)
        body, bid = self._create_body(spec, offer)
        try:
            data = await self._api().put(f"/api/v0/asks/{ask_id}", json_body=body, idempotent=False)
        except (ProviderConnectionError, ServerError) as e:
            # The create may have been applied: look before failing, never create twice.
            found = await self._reconcile(spec.launch_id)
            if found is not None:
                return found
            raise type(e)(
                f"create instance from offer {ask_id} got no answer ({e.message}); no instance "
                f"with launch id {spec.launch_id} was found. Retrying the launch is safe: it "
                "looks for that launch id first",
                provider=self.name, status=e.status, request_id=e.request_id, body=e.body,
            ) from e
        if not isinstance(data, Mapping) or not isinstance(data.get("new_contract"), int):
            found = await self._reconcile(spec.launch_id)
            if found is not None:
                return found
            raise malformed(
                self.name, f"PUT /api/v0/asks/{ask_id}: no 'new_contract' in the answer"
            )
        new_id = str(data["new_contract"])
        if spec.ssh_public_key:
            try:
                await self._api().post(
                    f"/api/v0/instances/{new_id}/ssh", json_body={"ssh_key": spec.ssh_public_key},
                    idempotent=True,  # attaching the same key twice changes nothing
                )
            except ProviderError:
                # The launch fails: never leave its instance running (and billing) behind;
                # a retried launch would find it and return it without the key.
                try:
                    await self._api().delete(f"/api/v0/instances/{new_id}")
                except ProviderError as e:
                    logger.warning("vast: destroying instance %s after a failed launch "
                                   "failed: %s", new_id, e)
                raise
        price = offer.price
        if bid is not None:
            price = attrs.evolve(price, per_hour=Money(bid, "USD"), spot=True)
        try:
            resource = await self._read(new_id)
        except NotFoundError:
            resource = Resource(id=new_id, provider=self.name, state=_S.PENDING, raw_state="null",
                                tags=spec.runctl_tags, name=spec.name)
        return resource.evolve(
            price=price, launch_id=spec.launch_id, name=spec.name, tags=spec.runctl_tags,
            instance_type=offer.instance_type, gpu=resource.gpu or offer.gpu,
            gpu_count=resource.gpu_count or offer.gpu_count, region=resource.region or offer.region,
        )

    async def _reconcile(self, launch_id: str) -> Resource | None:
        for attempt in range(_RECONCILE_TRIES):
            if attempt:
                await self._sleep(_RECONCILE_WAIT)
            try:
                found = await self._find(launch_id)
            except ProviderError:
                continue
            if found is not None:
                return found
        return None

    # --- stop, start, terminate ---------------------------------------------------------------

    async def _set_state(self, resource_id: str, state: str) -> Resource:
        iid = self._instance_id(resource_id)
        await self._api().put(f"/api/v0/instances/{iid}", json_body={"state": state})
        return await self._read(resource_id)

    async def stop(self, resource_id: str) -> Resource:
        """Stop the instance; its disk is kept (and billed)."""
        return await self._set_state(resource_id, "stopped")

    async def start(self, resource_id: str) -> Resource:
        """Start a stopped instance (it may wait for its host's GPUs to be free).

        Its container starts afresh and runs the command again: an exit code known
        from before is forgotten.
        """
        self._exits.forget(resource_id)
        return await self._set_state(resource_id, "running")

    async def terminate(self, resource_id: str) -> Resource:
        """Destroy the instance (irreversible: its disk is deleted). Idempotent.

        Vast forgets destroyed instances, so an id it does not know is reported
        TERMINATED (it cannot tell "destroyed" from "never existed").
        """
        iid = self._instance_id(resource_id)
        try:
            before = await self._read(resource_id)
        except NotFoundError:
            return Resource(id=str(iid), provider=self.name, state=_S.TERMINATED,
                            raw_state="destroyed", detail="not known to Vast (destroyed)")
        try:
            await self._api().delete(f"/api/v0/instances/{iid}")
        except NotFoundError:
            pass  # gone meanwhile: what was asked
        try:
            after = await self._read(resource_id)
        except NotFoundError:
            self._exits.forget(resource_id)
            return before.evolve(state=_S.TERMINATED, raw_state="destroyed", ended_at=_utcnow(),
                                 observed_at=_utcnow(), detail=None)
        if after.state is not _S.TERMINATED:
            after = after.evolve(state=_S.TERMINATING, detail="destroy requested")
        return after

    # --- logs ---------------------------------------------------------------------------------

    async def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """The container's log as Vast last uploaded it (up to 10000 lines).

        runctl's marker lines are left out.

        Raises:
            UnsupportedOperationError: ``follow=True`` (Vast uploads snapshots only).
        """
        if follow:
            raise UnsupportedOperationError(self.name, "follow logs",
                                            "Vast uploads a snapshot; call logs() again")
        iid = self._instance_id(resource_id)
        lines = await self._log_lines(
            iid, tail=10000, tries=10, wait=lambda attempt: min(2.0 * (attempt + 1), 10.0)
        )
        launch_id = self._launch_ids.get(resource_id)
        if launch_id is not None:
            code = exit_code_in(lines, launch_id)
            if code is not None:
                self._exits.read(resource_id, code)
        for line in lines:
            if not is_marker(line):
                yield line

    async def _log_lines(
        self, iid: int, *, tail: int, tries: int, wait: Callable[[int], float]
    ) -> tuple[str, ...]:
        """The last ``tail`` lines of the log, markers included: ask Vast, then download.

        The log is uploaded asynchronously; its URL answers 403/404 until it is there,
        so the download is tried ``tries`` times, ``wait(attempt)`` seconds apart.
        """
        import httpx

        from ..http import check_base_url

        data = await self._api().put(
            f"/api/v0/instances/request_logs/{iid}", json_body={"tail": str(tail)}
        )
        url = data.get("result_url") if isinstance(data, Mapping) else None
        if not isinstance(url, str) or not url:
            raise malformed(self.name, f"PUT /api/v0/instances/request_logs/{iid}: no 'result_url'")
        url = check_base_url(self.name, url)
        # A separate client: the Vast API key must never be sent to the storage host.
        async with httpx.AsyncClient(transport=self._transport, timeout=30.0) as client:
            for attempt in range(tries):
                try:
                    response = await client.get(url)
                except httpx.TransportError as e:
                    raise ProviderConnectionError(f"log download failed ({type(e).__name__})",
                                                  provider=self.name) from e
                if response.status_code < 400:
                    return tuple(response.text.splitlines())
                if response.status_code not in (403, 404) or attempt == tries - 1:
                    raise ProviderError("log download failed", provider=self.name,
                                        status=response.status_code)
                await self._sleep(wait(attempt))
        raise AssertionError("unreachable")  # pragma: no cover
