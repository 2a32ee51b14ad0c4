"""Lambda Cloud: on-demand GPU virtual machines through Lambda's public cloud API v1.

Prerequisites
    A Lambda Cloud account with a payment method, an API key (console → API
    keys) and either an SSH key registered with Lambda or a public key runctl may
    register for you: Lambda refuses to launch an instance without one. runctl
    talks to ``https://cloud.lambda.ai/api/v1`` with httpx.

Credentials, first match wins
    1. ``LAMBDA_API_KEY`` in the environment;
    2. ``api_key`` in ``[providers.lambda]`` of runctl's config file.

    ``RUNCTL_LAMBDA_BASE_URL`` (or ``base_url`` in the config file) points runctl
    at another API root; plain http is accepted for loopback only.

Capabilities
    ================  =====  ==================================================
    capability        yes?   how
    ================  =====  ==================================================
    live_offers       yes    ``GET /instance-types`` (price and regions with capacity)
    stop_start        no     Lambda instances cannot be stopped; ``stop``/``start`` raise
    spot              no     Lambda sells on-demand instances only
    logs              no     no log API; the command's output is in ``/var/log/runctl.log``
    follow_logs       no     as above
    multi_node        no     1-Click Clusters are not wired in
    ssh               yes    ``options["ssh_key_name"]`` or ``spec.ssh_public_key``
    ttl               no     not enforced by Lambda; the TTL is recorded as a tag
    idempotent_launch yes    instances carry the launch id tag; a retried launch finds them
    tags              yes    Lambda instance tags
    exit_code         no     the API reports no exit code
    ================  =====  ==================================================

How runctl maps things
    - ``spec.command`` runs once at boot through cloud-init ``user_data`` (a shell
      script) with ``spec.env`` exported, output to ``/var/log/runctl.log`` and
      its exit code to ``/var/log/runctl.exit``. With ``spec.image`` it runs in
      that container (``docker run --gpus all``; Lambda Stack images ship Docker).
      The instance keeps running (and billing) after the command ends.
    - The machine image is Lambda's default unless ``options["image_family"]`` or
      ``options["image_id"]`` is given.
    - SSH: Lambda requires exactly one registered key name. runctl uses
      ``options["ssh_key_name"]``; otherwise it looks for ``spec.ssh_public_key``
      among the account's keys and registers it (as ``runctl-<fingerprint>``) if absent.
    - Tags: runctl's tags become Lambda tags. Lambda tag keys must match
      ``^[a-z][a-z0-9-:]+$`` (at most 55 characters) and values are at most 128
      characters; other user tags are refused with a ``ValidationError``.
    - ``spec.region`` is a Lambda region (``us-east-1``); without it runctl picks
      the first region the instance type has capacity in.
    - ``spec.disk_gb`` cannot be chosen: each instance type has fixed storage.

Prices
    ``price_cents_per_hour`` of the instance type, per instance-hour, billed in
    one-minute increments from passing health checks to termination. Local storage is included;
    filesystems (not managed by runctl) are billed separately.

Spec
    Requests are checked against Lambda's OpenAPI 1.8.3 (a third-party-vendored
    copy, older than the spec Lambda serves today): see ``tests/support/specs``.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .. import clock
from .._wire import Fields, malformed
from ..cost import Money, Price
from ..errors import (
    AuthenticationError,
    CapacityError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
    ServerError,
    UnsupportedOperationError,
    ValidationError,
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
from ..provider import RestProviderBase

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

__all__ = [
    "LAMBDA_STATES",
    "LambdaCloudProvider",
    "LambdaInstance",
    "LambdaInstanceType",
    "lambda_state",
]

NAME = "lambda"
#: Lambda bills on-demand instances in one-minute increments.
BILLING_INCREMENT = timedelta(minutes=1)
_GIB_IN_GB = Decimal("1.073741824")
_TAG_KEY = re.compile(r"^[a-z][a-z0-9-:]+$")

# --- states -------------------------------------------------------------------------------------

_S = ResourceState
#: Every documented ``InstanceStatus`` of Lambda's API, mapped to runctl's state.
LAMBDA_STATES: Mapping[str, ResourceState] = {
    "booting": _S.PROVISIONING,  # launched, booting, not yet passed health checks
    "active": _S.RUNNING,  # running (and billed)
    # Failed health checks; it may recover or need a restart, so it is not terminal.
    "unhealthy": _S.UNKNOWN,
    "terminating": _S.TERMINATING,
    "terminated": _S.TERMINATED,
    "preempted": _S.PREEMPTED,
}


def lambda_state(raw: str | None) -> ResourceState:
    """runctl's state for a Lambda ``InstanceStatus``; ``UNKNOWN`` for anything undocumented."""
    if raw is None:
        return _S.UNKNOWN
    return LAMBDA_STATES.get(raw.lower(), _S.UNKNOWN)


# --- wire models --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LambdaInstanceType:
    """One type of ``GET /instance-types`` (schemas ``InstanceType``, ``InstanceTypesItem``)."""

    name: str
    description: str | None = None
    gpu_description: str | None = None
    price_cents_per_hour: int
    vcpus: int | None = None
    memory_gib: int | None = None
    storage_gib: int | None = None
    gpus: int = 0
    regions_with_capacity: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: object, regions: Sequence[object] = ()) -> LambdaInstanceType:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(data, "InstanceType", provider=NAME)
        specs = f.obj("specs") or Fields({}, "InstanceType.specs", provider=NAME)
        names = []
        for region in regions:
            name = Fields(region, "Region", provider=NAME).text("name")
            if name:
                names.append(name)
        return cls(
            name=f.text("name", required=True),
            description=f.text("description"),
            gpu_description=f.text("gpu_description"),
            price_cents_per_hour=f.integer("price_cents_per_hour", required=True),
            vcpus=specs.integer("vcpus"),
            memory_gib=specs.integer("memory_gib"),
            storage_gib=specs.integer("storage_gib"),
            gpus=specs.integer("gpus") or 0,
            regions_with_capacity=tuple(names),
        )

    @property
    def gpu(self) -> Gpu | None:
        """The canonical GPU, ``None`` for CPU-only types."""
        if not self.gpus or not self.gpu_description:
            return None
        from ..gpus import normalize_gpu

        return normalize_gpu(self.gpu_description, provider=NAME)

    def price(self, *, observed_at: datetime | None) -> Price:
        """The type's price per instance-hour, as runctl :class:`Price`."""
        return lambda_price(self.price_cents_per_hour, self.gpus, observed_at=observed_at)


@attrs.frozen(kw_only=True)
class LambdaInstance:
    """An instance as ``GET /instances/{id}`` returns it (schema ``Instance``), in part."""

    id: str
    name: str | None = None
    status: str | None = None
    ip: str | None = None
    region: str | None = None
    instance_type: LambdaInstanceType | None = None
    tags: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_wire(cls, data: object) -> LambdaInstance:
        """Parse leniently; raise ``MalformedResponseError`` when it cannot be understood."""
        f = Fields(_hide_tokens(data), "Instance", provider=NAME)
        region = f.obj("region")
        raw_type = f.data.get("instance_type")
        tags = {}
        for entry in f.items("tags"):
            tag = Fields(entry, "Instance.tags[]", provider=NAME)
            key, value = tag.text("key"), tag.text("value")
            if key is not None and value is not None:
                tags[key] = value
        return cls(
            id=f.text("id", required=True) or "",
            name=f.text("name"),
            status=f.text("status"),
            ip=f.text("ip"),
            region=region.text("name") if region is not None else None,
            instance_type=None if raw_type is None else LambdaInstanceType.from_wire(raw_type),
            tags=tags,
        )


#: Instance fields that grant access to the machine (JupyterLab): never in an error.
_TOKENS = ("jupyter_token", "jupyter_url")


def _hide_tokens(data: object) -> object:
    if isinstance(data, Mapping) and any(data.get(k) is not None for k in _TOKENS):
        return {**data, **{k: "***" for k in _TOKENS if data.get(k) is not None}}
    return data


def _data(body: object, what: str) -> Any:
    """The ``data`` member every Lambda success response wraps its payload in."""
    if not isinstance(body, dict) or "data" not in body:
        raise malformed(NAME, f"{what}: expected an object with 'data'", body)
    return body["data"]


# --- prices -------------------------------------------------------------------------------------


def lambda_price(cents_per_hour: int, gpu_count: int, *, observed_at: datetime | None) -> Price:
    """Lambda's ``price_cents_per_hour`` (whole instance) as a runctl :class:`Price`."""
    return Price(
        per_hour=Money(Decimal(cents_per_hour) / 100, "USD"),
        gpu_count=gpu_count,
        billing_increment=BILLING_INCREMENT,
        spot=False,
        observed_at=observed_at,
        source="live",
    )


def _gib_to_gb(gib: int | None) -> float | None:
    return None if gib is None else float(Decimal(gib) * _GIB_IN_GB)


def _matches_gpu(wanted: str, instance_type: LambdaInstanceType) -> bool:
    gpu = instance_type.gpu
    if gpu is None:
        return False
    wanted_l = wanted.strip().lower()
    if wanted_l in (instance_type.gpu_description or "").lower():
        return True
    return gpu.known and wanted_l in (
        gpu.model.lower(),
        gpu.name.lower(),
        gpu.name.replace(" ", "-").lower(),
    )


# --- errors -------------------------------------------------------------------------------------

_CODES: Mapping[str, type[ProviderError]] = {
    "global/invalid-api-key": AuthenticationError,
    "global/account-inactive": AuthenticationError,
    "global/object-does-not-exist": NotFoundError,
    "instance-operations/launch/insufficient-capacity": CapacityError,
    "global/quota-exceeded": QuotaExceededError,
    "global/internal-error": ServerError,
}


# --- user data ----------------------------------------------------------------------------------


def user_data_script(spec: LaunchSpec) -> str:
    """The cloud-init user data (a shell script) that runs ``spec.command`` once at boot."""
    command = spec.command[0] if len(spec.command) == 1 else shlex.join(spec.command)
    lines = [
        "#!/bin/bash",
        f"# runctl launch {spec.launch_id}",
        "set -u",
    ]
    if spec.image:
        flags = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in spec.env.items())
        workdir = f" -w {shlex.quote(spec.workdir)}" if spec.workdir else ""
        lines.append(
            f"docker run --rm --gpus all --network host{workdir} {flags} "
            f"{shlex.quote(spec.image)} /bin/sh -c {shlex.quote(command)} "
            "> /var/log/runctl.log 2>&1"
        )
    else:
        lines.extend(f"export {k}={shlex.quote(v)}" for k, v in spec.env.items())
        if spec.workdir:
            lines.append(f"mkdir -p {shlex.quote(spec.workdir)} && cd {shlex.quote(spec.workdir)}")
        lines.append(f"/bin/bash -c {shlex.quote(command)} > /var/log/runctl.log 2>&1")
    lines.append("echo $? > /var/log/runctl.exit")
    return "\n".join(lines) + "\n"


# --- the provider -------------------------------------------------------------------------------


class LambdaCloudProvider(RestProviderBase):
    """Lambda Cloud on-demand instances.

    Args:
        config: runctl's configuration for ``lambda``.
        transport: an httpx transport (tests); default: the network.
        retry: the HTTP retry policy; default: :class:`runctl.http.RetryPolicy`.
        timeout: HTTP timeouts; default: :class:`runctl.http.HttpApi`'s.
        sleep: the async sleep used between retries (tests).
    """

    name: ClassVar[str] = NAME
    default_base_url: ClassVar[str] = "https://cloud.lambda.ai/api/v1"
    api_key_env: ClassVar[tuple[str, ...]] = ("LAMBDA_API_KEY",)
    api_key_hint: ClassVar[str] = "Create a key at https://cloud.lambda.ai/api-keys"

    @property
    def capabilities(self) -> Capabilities:
        """What Lambda supports through runctl (see the module docstring)."""
        return Capabilities(
            live_offers=True,
            stop_start=False,
            spot=False,
            logs=False,
            follow_logs=False,
            multi_node=False,
            ssh=True,
            ttl=False,
            idempotent_launch=True,
            tags=True,
            exit_code=False,
        )

    def _classify(self, response: httpx.Response, message: str) -> ProviderError | None:
        """Map Lambda's ``{"error": {"code", "message", "suggestion"}}`` by its code."""
        try:
            body = response.json()
        except ValueError:
            return None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return None
        code = error.get("code")
        kind = _CODES.get(code) if isinstance(code, str) else None
        if kind is None or response.status_code == 429:
            return None
        suggestion = error.get("suggestion")
        if isinstance(suggestion, str) and suggestion:
            message = f"{message} ({suggestion})"
        return kind(f"{message} [{code}]", **self._api().error_kwargs(response))

    # --- offers ---------------------------------------------------------------------------------

    async def _instance_types(self) -> list[LambdaInstanceType]:
        data = _data(await self._api().get("/instance-types"), "InstanceTypes")
        if not isinstance(data, dict):
            raise malformed(NAME, "InstanceTypes: expected an object keyed by type name", data)
        result = []
        for item in data.values():
            f = Fields(item, "InstanceTypesItem", provider=NAME)
            raw_type = f.obj("instance_type", required=True)
            regions = f.items("regions_with_capacity_available")
            result.append(LambdaInstanceType.from_wire(raw_type.data, regions))
        return result

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Instance types Lambda rents, one offer per region with capacity.

        A type with no capacity anywhere is offered once, with ``region=None`` and
        ``available=False``. Lambda sells no spot capacity.
        """
        if query.spot is True or (query.providers and NAME not in query.providers):
            return []
        now = clock.now()
        result: list[Offer] = []
        for instance_type in await self._instance_types():
            gpu = instance_type.gpu
            if query.gpu and not _matches_gpu(query.gpu, instance_type):
                continue
            if query.count is not None and instance_type.gpus != query.count:
                continue
            if query.min_gpu_memory_gb and (
                gpu is None or gpu.memory_gb is None or gpu.memory_gb < query.min_gpu_memory_gb
            ):
                continue
            if query.min_vcpus and (instance_type.vcpus or 0) < query.min_vcpus:
                continue
            memory = _gib_to_gb(instance_type.memory_gib)
            if query.min_memory_gb and (memory or 0) < query.min_memory_gb:
                continue
            price = instance_type.price(observed_at=now)
            if query.max_per_hour is not None and price.per_hour.amount > query.max_per_hour:
                continue
            per_gpu = price.per_gpu_hour
            if query.max_per_gpu_hour is not None and (
                per_gpu is None or per_gpu.amount > query.max_per_gpu_hour
            ):
                continue
            regions: Sequence[str | None] = instance_type.regions_with_capacity or (None,)
            for region in regions:
                if query.regions and (
                    region is None or not any(region.startswith(r) for r in query.regions)
                ):
                    continue
                result.append(
                    Offer(
                        provider=NAME,
                        instance_type=instance_type.name,
                        gpu=gpu,
                        gpu_count=instance_type.gpus,
                        price=price,
                        vcpus=instance_type.vcpus,
                        memory_gb=memory,
                        region=region,
                        available=region is not None,
                    )
                )
        result.sort(key=lambda o: o.price.per_hour.amount)
        return result[: query.limit] if query.limit else result

    # --- reading instances ----------------------------------------------------------------------

    def _resource(self, instance: LambdaInstance, *, price: Price | None = None) -> Resource:
        state = lambda_state(instance.status)
        kind = instance.instance_type
        detail = None
        if instance.status == "unhealthy":
            detail = "Lambda reports the instance unhealthy (failed health checks)"
        elif state is _S.UNKNOWN:
            detail = f"Lambda reported status {instance.status!r}, which runctl does not know"
        if price is None and kind is not None:
            price = kind.price(observed_at=clock.now())
        return Resource(
            id=instance.id,
            provider=NAME,
            state=state,
            raw_state=instance.status,
            name=instance.tags.get(TAG_NAME) or instance.name,
            launch_id=instance.tags.get(TAG_LAUNCH_ID),
            price=price,
            instance_type=kind.name if kind is not None else None,
            gpu=kind.gpu if kind is not None else None,
            gpu_count=kind.gpus if kind is not None else 0,
            region=instance.region,
            tags=dict(instance.tags),
            address=instance.ip,
            detail=detail,
            ended_at=clock.now() if state.is_terminal else None,
        )

    async def _instances(self) -> list[LambdaInstance]:
        data = _data(await self._api().get("/instances"), "ListInstances")
        if not isinstance(data, list):
            raise malformed(NAME, "ListInstances: 'data' is not a list", data)
        return [LambdaInstance.from_wire(item) for item in data]

    async def get(self, resource_id: str) -> Resource:
        """The instance as Lambda sees it now.

        Raises:
            NotFoundError: no such instance (terminated instances disappear after a while).
        """
        data = _data(await self._api().get(f"/instances/{_path_id(resource_id)}"), "GetInstance")
        return self._resource(LambdaInstance.from_wire(data))

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Instances runctl launched (they carry its tags), optionally only those with ``tags``."""
        found = []
        for instance in await self._instances():
            if instance.tags.get(TAG_MANAGED_BY) != "runctl":
                continue
            if tags and any(instance.tags.get(k) != v for k, v in tags.items()):
                continue
            found.append(self._resource(instance))
        return found

    async def _find(self, launch_id: str) -> Resource | None:
        for instance in await self._instances():
            if instance.tags.get(TAG_LAUNCH_ID) == launch_id and lambda_state(
                instance.status
            ) not in (_S.TERMINATED, _S.TERMINATING):
                return self._resource(instance)
        return None

    # --- launching ------------------------------------------------------------------------------

    async def _ssh_key_name(self, spec: LaunchSpec) -> str:
        named = spec.options.get("ssh_key_name")
        if named:
            return named
        if not spec.ssh_public_key:
            raise ValidationError(
                "ssh_public_key",
                "Lambda launches no instance without an SSH key",
                allowed="options['ssh_key_name'] (a key known to Lambda) or spec.ssh_public_key",
            )
        wanted = spec.ssh_public_key.split()
        if len(wanted) < 2:
            raise ValidationError(
                "ssh_public_key", "not an OpenSSH public key", allowed="'<type> <base64> [comment]'"
            )
        data = _data(await self._api().get("/ssh-keys"), "ListSSHKeys")
        for entry in data if isinstance(data, list) else []:
            key = Fields(entry, "SSHKey", provider=NAME)
            public, name = key.text("public_key"), key.text("name")
            if public and name and public.split()[:2] == wanted[:2]:
                return name
        fingerprint = hashlib.sha256(wanted[1].encode()).hexdigest()[:12]
        name = f"runctl-{fingerprint}"
        await self._api().post(
            "/ssh-keys", json_body={"name": name, "public_key": spec.ssh_public_key.strip()}
        )
        return name

    async def _choose(self, spec: LaunchSpec) -> tuple[LambdaInstanceType | None, str, str]:
        """(the type if looked up, its name, the region) for the spec."""
        type_name = spec.instance_type or (spec.offer.instance_type if spec.offer else None)
        region = spec.region or (spec.offer.region if spec.offer else None)
        if type_name and region:
            return None, type_name, region
        types = await self._instance_types()
        if type_name:
            candidates = [t for t in types if t.name == type_name]
        elif spec.gpu:
            count = spec.gpu_count or 1
            candidates = [t for t in types if t.gpus == count and _matches_gpu(spec.gpu, t)]
        else:
            raise ValidationError(
                "instance_type",
                "Lambda needs an instance type",
                allowed="spec.instance_type (e.g. 'gpu_1x_a10'), spec.gpu or spec.offer",
            )
        if region:
            candidates = [t for t in candidates if region in t.regions_with_capacity] or candidates
        with_capacity = [t for t in candidates if t.regions_with_capacity]
        if not with_capacity:
            what = type_name or f"{spec.gpu_count or 1}x {spec.gpu}"
            raise CapacityError(f"no Lambda capacity for {what} now", provider=NAME)
        chosen = min(with_capacity, key=lambda t: t.price_cents_per_hour)
        return chosen, chosen.name, region or chosen.regions_with_capacity[0]

    async def _launch_body(
        self, spec: LaunchSpec
    ) -> tuple[dict[str, Any], LambdaInstanceType | None]:
        if spec.spot:
            raise UnsupportedOperationError(NAME, "spot", "Lambda sells on-demand instances only")
        tags = spec.runctl_tags
        for key, value in tags.items():
            if len(key) > 55 or not _TAG_KEY.match(key):
                raise ValidationError(
                    f"tags.{key}",
                    "Lambda refuses this tag key",
                    allowed="lowercase letters, digits, '-' and ':', starting with a letter, <= 55",
                )
            if len(value) > 128:
                raise ValidationError(f"tags.{key}", "Lambda tag values are at most 128 characters")
        chosen, type_name, region = await self._choose(spec)
        body: dict[str, Any] = {
            "region_name": region,
            "instance_type_name": type_name,
            "ssh_key_names": [await self._ssh_key_name(spec)],
            "name": (spec.name or f"runctl-{spec.launch_id}")[:64],
            "user_data": user_data_script(spec),
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        }
        if "image_id" in spec.options:
            body["image"] = {"id": spec.options["image_id"]}
        elif "image_family" in spec.options:
            body["image"] = {"family": spec.options["image_family"]}
        if "file_system_name" in spec.options:
            body["file_system_names"] = [spec.options["file_system_name"]]
        return body, chosen

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Launch an instance for ``spec``, or return the one already launched with its launch id.

        Raises:
            ValidationError: the spec cannot be run on Lambda (no SSH key, bad tag ...).
            UnsupportedOperationError: ``spec.spot``.
            CapacityError: no capacity for the instance type.
            QuotaExceededError: the account's quota is reached.
            ProviderConnectionError: the launch may have reached Lambda but no instance
                with this launch id can be found; launching again with the same spec is safe.
        """
        existing = await self._find(spec.launch_id)
        if existing is not None:
            return existing
        body, chosen = await self._launch_body(spec)
        try:
            answer = await self._api().post("/instance-operations/launch", json_body=body)
        except (ProviderConnectionError, ServerError) as e:
            if isinstance(e, ProviderConnectionError) and not e.maybe_applied:
                raise
            found = await self._find(spec.launch_id)
            if found is not None:
                return found
            if isinstance(e, ServerError):
                raise
            error = ProviderConnectionError(
                f"the launch request for launch {spec.launch_id} got no answer and no instance "
                "with that launch id exists yet; launching again with the same launch id is safe "
                "(it will not create a second instance)",
                provider=NAME,
            )
            error.maybe_applied = True
            raise error from e
        what = "InstanceLaunchResponse"
        data = Fields(_data(answer, what), what, provider=NAME)
        ids = [i for i in data.items("instance_ids", required=True) if isinstance(i, str)]
        if not ids:
            raise malformed(NAME, "InstanceLaunchResponse: no instance id", answer)
        price = chosen.price(observed_at=clock.now()) if chosen else None
        try:
            return await self.get(ids[0])
        except ProviderError:
            # Just launched (and billing): the instance may not be readable yet, and a
            # failed read must not hide the id of an instance that exists.
            return Resource(
                id=ids[0],
                provider=NAME,
                state=_S.PENDING,
                raw_state=None,
                name=spec.name,
                launch_id=spec.launch_id,
                price=price,
                instance_type=body["instance_type_name"],
                region=body["region_name"],
                tags=spec.runctl_tags,
            )

    # --- terminating ----------------------------------------------------------------------------

    async def terminate(self, resource_id: str) -> Resource:
        """Terminate the instance; returns it as Lambda reports it after the request.

        Idempotent: an instance Lambda no longer knows is reported ``TERMINATED``
        (Lambda cannot tell "terminated long ago" from "never existed").
        """
        try:
            answer = await self._api().post(
                "/instance-operations/terminate",
                json_body={"instance_ids": [_path_id(resource_id)]},
                idempotent=True,
            )
        except NotFoundError:
            try:
                return await self.get(resource_id)  # still listed as terminated
            except NotFoundError:
                return Resource(
                    id=resource_id, provider=NAME, state=_S.TERMINATED,
                    detail="not known to Lambda (terminated)",
                )
        what = "InstanceTerminateResponse"
        data = Fields(_data(answer, what), what, provider=NAME)
        for item in data.items("terminated_instances"):
            instance = LambdaInstance.from_wire(item)
            if instance.id == resource_id:
                return self._resource(instance)
        raise malformed(
            NAME,
            f"InstanceTerminateResponse: {resource_id} is not among the terminated",
            [_hide_tokens(item) for item in data.items("terminated_instances")],
        )

    async def stop(self, resource_id: str) -> Resource:
        """Not supported: Lambda instances cannot be stopped, only terminated."""
        raise UnsupportedOperationError(
            NAME, "stop", "Lambda instances cannot be stopped; terminate them instead"
        )

    async def start(self, resource_id: str) -> Resource:
        """Not supported: Lambda instances cannot be stopped, so never started again."""
        raise UnsupportedOperationError(
            NAME, "start", "Lambda instances cannot be stopped, so there is nothing to start"
        )

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """Not supported: Lambda has no log API (read ``/var/log/runctl.log`` over SSH)."""
        raise UnsupportedOperationError(
            NAME,
            "logs",
            "Lambda has no log API; the command's output is in /var/log/runctl.log on the "
            "instance (ssh ubuntu@<address>)",
        )


def _path_id(resource_id: str) -> str:
    if not resource_id or not re.fullmatch(r"[A-Za-z0-9_-]+", resource_id):
        raise ValidationError("resource_id", f"{resource_id!r} is not a Lambda instance id")
    return resource_id
