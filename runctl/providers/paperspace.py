"""Paperspace (DigitalOcean): whole GPU virtual machines, created from an OS template.

Prerequisites
    A Paperspace team, an API key made in the team's settings (API keys), and an OS
    template with Docker and the NVIDIA drivers (the "ML-in-a-Box" templates have
    both) if you launch a container image. Nothing to install: runctl talks to the
    REST API at https://api.paperspace.com/v1 over httpx.

Credentials (first match wins; :meth:`PaperspaceProvider.check` says which one was used)
    1. ``PAPERSPACE_API_KEY`` in the environment (what the ``pspace`` CLI reads too);
    2. ``api_key`` in ``[providers.paperspace]`` of runctl's ``config.toml``;
    3. the ``pspace`` CLI's files: the key of the current ``team`` of
       ``~/.paperspace/config.toml`` in ``~/.paperspace/credentials.toml``
       (``[keys] <team> = "..."``, written by ``pspace login``).

Settings (``RUNCTL_PAPERSPACE_<NAME>`` or the config file)
    ``base_url``: API root, default ``https://api.paperspace.com/v1``; plain http only
    to loopback. ``region``: default region (``"East Coast (NY2)"``). ``template_id``:
    default OS template.

Capabilities

=================  =====  =====================================================================
capability         value  how
=================  =====  =====================================================================
live_offers        no     the v1 API publishes no machine-type price list: ``offers()``
                          returns ``[]`` and runctl's offline snapshot covers Paperspace
stop_start         yes    ``PATCH /machines/{id}/stop`` and ``/start``
spot               no     Paperspace rents no interruptible machines; ``spot=True`` raises
logs               no     the API exposes no machine console or log; ``logs()`` raises
follow_logs        no
multi_node         no
ssh                yes    ``ssh_public_key`` is added for user ``paperspace`` by the startup script
ttl                no     (auto-shutdown is an idle timer, not a TTL); the core enforces TTL
idempotent_launch  yes    the machine name carries the launch id; launch looks before creating
tags               yes    runctl's launch id and name, in the machine name (see below)
exit_code          no     a VM has no exit code
=================  =====  =====================================================================

How a launch maps to Paperspace
    * ``machineType`` is ``spec.instance_type`` (e.g. ``"A4000"``, ``"A100-80G"``), or
      ``spec.gpu`` with ``x<count>`` appended for several GPUs (``"H100x8"``).
    * ``templateId`` is ``options["template_id"]``, the ``template_id`` setting, or the
      newest OS template named "ML-in-a-Box" that is available on that machine type.
    * The command runs from a run-once *startup script* (``POST /startup-scripts``,
      named ``runctl-<launch id>``) as root at first boot, with ``spec.env``
      exported (one string runs under ``sh -c``, a list as exactly that argv); with
      ``spec.image`` it runs in ``docker run --gpus all``. Its output
      goes to ``/var/log/runctl-<launch id>.log`` on the machine. The script is deleted
      when the machine is terminated. Env values are stored in the script at Paperspace.
    * The machine name is ``runctl-<launch id>`` or ``runctl-<launch id>-<spec.name>``.
      Paperspace machines have no labels, so *other* tags (``spec.tags``) cannot be
      stored and a launch with them raises ``ValidationError``; a TTL is kept by
      runctl's ledger, not on the machine.
    * ``spec.disk_gb`` is the disk (default 50 GB); ``spec.region`` the region.

State after the command ends
    The VM keeps running (and billing) after the command; runctl does not turn it
    off. Stop or terminate it, or let the lifecycle's TTL do it.

Prices
    Resources carry no price: the API's ``usageRate``/``storageRate`` fields are not
    documented with units, so runctl does not guess. Use the snapshot catalog.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .. import clock
from .._wire import Fields, malformed
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
    TAG_TTL,
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

    from ..config import ProviderConfig, Secret

__all__ = [
    "CAPABILITIES",
    "DEFAULT_BASE_URL",
    "RAW_STATES",
    "PaperspaceMachine",
    "PaperspaceProvider",
    "machine_name",
    "parse_machine_name",
    "state_of",
]

DEFAULT_BASE_URL = "https://api.paperspace.com/v1"
DEFAULT_REGION = "East Coast (NY2)"
DEFAULT_DISK_GB = 50
DEFAULT_TEMPLATE_NAME = "ML-in-a-Box"
_NAME_PREFIX = "runctl-"
_PAGE = 100
_RECONCILE_TRIES = 3
_RECONCILE_WAIT = 2.0

CAPABILITIES = Capabilities(
    live_offers=False,
    stop_start=True,
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

_S = ResourceState
#: Every machine ``state`` the v1 API documents (the enum in Paperspace/cli
#: ``api/openapi.ts``, generated from https://api.paperspace.com/v1/openapi.json).
RAW_STATES: Mapping[str, ResourceState] = {
    "provisioning": _S.PROVISIONING,  # being created
    "starting": _S.PROVISIONING,  # booting
    "restarting": _S.PROVISIONING,  # rebooting (transient)
    "upgrading": _S.PROVISIONING,  # being resized / upgraded
    "serviceready": _S.RUNNING,  # booted, Paperspace's agent up (the VM runs and bills)
    "ready": _S.RUNNING,  # fully up
    "stopping": _S.STOPPING,
    "off": _S.STOPPED,  # powered off; disk kept and billed
}


def state_of(raw: str | None, *, deleted: bool = False) -> tuple[ResourceState, str | None]:
    """runctl's state for a machine ``state`` (``deleted``: ``dtDeleted`` is set)."""
    if deleted:
        return _S.TERMINATED, None
    if raw is not None and raw in RAW_STATES:
        return RAW_STATES[raw], None
    return _S.UNKNOWN, f"unrecognised Paperspace state {raw!r}"


# --- names: how runctl's tags ride on a Paperspace machine ---------------------------------------

_NAME_RE = re.compile(
    r"^runctl-(?P<launch_id>[A-Za-z0-9_]{1,64})(?:-(?P<name>[a-z0-9][a-z0-9-]*))?$"
)


def machine_name(spec: LaunchSpec) -> str:
    """The machine name that carries ``spec``'s launch id and name.

    Raises:
        ValidationError: the spec has tags a Paperspace machine cannot carry, or its
            launch id contains ``-`` (which would make the name ambiguous).
    """
    extra = sorted(set(spec.runctl_tags) - {TAG_MANAGED_BY, TAG_LAUNCH_ID, TAG_NAME, TAG_TTL})
    if extra:
        raise ValidationError(
            "tags", f"Paperspace machines carry no tags; cannot store {', '.join(extra)}",
            allowed="no extra tags on paperspace (runctl keeps launch id and name in the name)",
        )
    if "-" in spec.launch_id:
        raise ValidationError("launch_id", f"{spec.launch_id!r} contains '-'",
                              allowed="letters, digits and '_' on paperspace")
    name = f"{_NAME_PREFIX}{spec.launch_id}"
    return f"{name}-{spec.name}" if spec.name else name


def parse_machine_name(name: str | None) -> dict[str, str] | None:
    """runctl's tags from a machine name, or ``None`` for a machine runctl did not launch."""
    found = _NAME_RE.match(name or "")
    if not found:
        return None
    tags = {TAG_MANAGED_BY: "runctl", TAG_LAUNCH_ID: found["launch_id"]}
    if found["name"]:
        tags[TAG_NAME] = found["name"]
    return tags


# --- wire models ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PaperspaceAccelerator:
    """One entry of a machine's ``accelerators``."""

    name: str
    count: int
    memory: float | None = None


@attrs.frozen(kw_only=True)
class PaperspaceMachine:
    """A machine from ``/machines`` (only the fields runctl uses)."""

    id: str
    name: str | None = None
    state: str | None = None
    machine_type: str | None = None
    region: str | None = None
    public_ip: str | None = None
    accelerators: tuple[PaperspaceAccelerator, ...] = ()
    dt_created: datetime | None = None
    dt_deleted: datetime | None = None

    @classmethod
    def from_json(cls, data: object) -> PaperspaceMachine:
        """Parse one machine (extra keys ignored).

        Raises:
            MalformedResponseError: ``id`` is missing, or a field has the wrong type.
        """
        f = Fields(data, "machine", provider="paperspace")
        accelerators = []
        for item in f.items("accelerators"):
            acc = Fields(item, "machine.accelerators[]", provider="paperspace")
            accelerators.append(
                PaperspaceAccelerator(
                    name=acc.text("name", required=True),
                    count=acc.integer("count", required=True),
                    memory=acc.real("memory"),
                )
            )
        return cls(
            id=f.text("id", required=True),
            name=f.text("name"),
            state=f.text("state"),
            machine_type=f.text("machineType"),
            region=f.text("region"),
            public_ip=f.text("publicIp"),
            accelerators=tuple(accelerators),
            dt_created=f.timestamp("dtCreated"),
            dt_deleted=f.timestamp("dtDeleted"),
        )


# --- the provider ---------------------------------------------------------------------------------


def _pspace_key(environ: Mapping[str, str]) -> tuple[str, Path] | None:
    """The ``pspace`` CLI's key for its current team, and the file it came from."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    folder = home / ".paperspace"
    try:
        team = tomllib.loads((folder / "config.toml").read_text()).get("team")
        keys = tomllib.loads((folder / "credentials.toml").read_text()).get("keys") or {}
    except (OSError, ValueError):
        return None
    key = keys.get(team) if isinstance(team, str) and isinstance(keys, dict) else None
    if isinstance(key, str) and key.strip():
        return key.strip(), folder / "credentials.toml"
    return None


def _utcnow() -> datetime:
    return clock.now()


def startup_script(spec: LaunchSpec) -> str:
    """The bash script that runs ``spec`` at the machine's first boot (as root)."""
    log = f"/var/log/runctl-{spec.launch_id}.log"
    lines = ["#!/bin/bash", "# Written by runctl; runs once, at first boot.", "set -u"]
    if spec.ssh_public_key:
        key = shlex.quote(spec.ssh_public_key.strip())
        lines += [
            "install -d -m 700 -o paperspace -g paperspace /home/paperspace/.ssh",
            f"echo {key} >> /home/paperspace/.ssh/authorized_keys",
            "chown paperspace:paperspace /home/paperspace/.ssh/authorized_keys",
            "chmod 600 /home/paperspace/.ssh/authorized_keys",
        ]
    for k, v in spec.env.items():
        lines.append(f"export {k}={shlex.quote(v)}")
    # One string is a shell command (pipes, ``&&``); a list is run as exactly that argv.
    if len(spec.command) == 1:
        command = f"sh -c {shlex.quote(spec.command[0])}"
    else:
        command = shlex.join(spec.command)
    if spec.image:
        env_flags = "".join(f" -e {k}" for k in spec.env)
        workdir = f" -w {shlex.quote(spec.workdir)}" if spec.workdir else ""
        run = (f"docker run --rm --gpus all{env_flags}{workdir} "
               f"{shlex.quote(spec.image)} {command}")
    else:
        run = command
        if spec.workdir:
            run = f"cd {shlex.quote(spec.workdir)} && {run}"
    # Never re-split ``run``: whitespace and newlines inside quoted arguments are the user's.
    lines.append(f"( {run} ) > {log} 2>&1")
    return "\n".join(lines) + "\n"


class PaperspaceProvider(RestProviderBase):
    """runctl's Paperspace provider. See the module docstring for the whole story.

    Args:
        config: runctl's configuration for ``paperspace``.
        transport: an httpx transport (tests); default: the network.
        retry: the HTTP retry policy (tests).
        sleep: the async sleep used between retries and reconciliation looks (tests).
        timeout: HTTP timeouts; default connect 10 s, everything else 30 s.
    """

    name: ClassVar[str] = "paperspace"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    api_key_env: ClassVar[tuple[str, ...]] = ("PAPERSPACE_API_KEY",)
    api_key_elsewhere: ClassVar[tuple[str, ...]] = (
        "~/.paperspace/credentials.toml (pspace login)",
    )
    api_key_hint: ClassVar[str] = "set PAPERSPACE_API_KEY or run `pspace login`"

    @property
    def capabilities(self) -> Capabilities:
        """What Paperspace supports (the table in the module docstring)."""
        return CAPABILITIES

    @classmethod
    def _secret(cls, config: ProviderConfig) -> Secret | None:
        """The key from the environment or config file, else the ``pspace`` CLI's login."""
        secret = super()._secret(config)
        if secret is not None:
            return secret
        found = _pspace_key(config.environ)
        if found is None:
            return None
        from ..config import Secret

        return Secret(found[0], f"file {found[1]} (pspace CLI, current team)")

    # --- errors -------------------------------------------------------------------------------

    def _classify(self, response: httpx.Response, message: str) -> ProviderError | None:
        """Paperspace's error shape: ``{"code": ..., "message": ..., "details": {...}}``.

        Capacity and quota problems come back as 4xx with a message; they are told
        apart by the message, since the codes are not documented.
        """
        api = self._api()
        kw = api.error_kwargs(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        code = text = ""
        if isinstance(body, Mapping):
            code = str(body.get("code") or "")
            text = str(body.get("message") or body.get("error") or "")
        status = response.status_code
        lowered = f"{code} {text}".lower()
        if status in (401, 403) and "quota" not in lowered and "limit" not in lowered:
            return AuthenticationError(message, **kw)
        if status >= 500:
            return ServerError(message, **kw)
        if status == 429:
            return None  # "rate limit exceeded" is not a quota: the default RateLimitedError
        if re.search(r"capacity|out of stock|not available|unavailable|no machines", lowered):
            return CapacityError(message, **kw)
        if status == 402 or re.search(r"quota|limit|exceed|billing|payment|credit", lowered):
            return QuotaExceededError(message, **kw)
        return None

    # --- offers -------------------------------------------------------------------------------

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Always ``[]``: the v1 API publishes no machine-type prices (the snapshot has them)."""
        return []

    # --- machines -----------------------------------------------------------------------------

    def _resource(self, m: PaperspaceMachine, *, observed_at: datetime | None = None) -> Resource:
        from ..gpus import normalize_gpu

        state, detail = state_of(m.state, deleted=m.dt_deleted is not None)
        tags = parse_machine_name(m.name) or {}
        acc = m.accelerators[0] if m.accelerators else None
        gpu = None
        if acc is not None:
            gpu = normalize_gpu(acc.name, provider=self.name)
        return Resource(
            id=m.id,
            provider=self.name,
            state=state,
            raw_state=m.state,
            name=tags.get(TAG_NAME),
            launch_id=tags.get(TAG_LAUNCH_ID),
            created_at=m.dt_created,
            ended_at=m.dt_deleted,
            instance_type=m.machine_type,
            gpu=gpu,
            gpu_count=sum(a.count for a in m.accelerators),
            region=m.region,
            tags=tags,
            address=m.public_ip,
            observed_at=observed_at or _utcnow(),
            detail=detail,
        )

    @staticmethod
    def _machine_id(resource_id: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", resource_id or ""):
            raise NotFoundError(f"{resource_id!r} is not a Paperspace machine id",
                                provider="paperspace")
        return resource_id

    def _machine(self, data: object, what: str) -> PaperspaceMachine:
        # get answers with the machine; create/start/stop/delete with {data, event}
        if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
            data = data["data"]
        if not isinstance(data, Mapping):
            raise malformed(self.name, f"{what}: expected a machine object")
        return PaperspaceMachine.from_json(data)

    async def get(self, resource_id: str) -> Resource:
        """The machine now.

        Raises:
            NotFoundError: no such machine.
        """
        mid = self._machine_id(resource_id)
        data = await self._api().get(f"/machines/{mid}")
        return self._resource(self._machine(data, f"GET /machines/{mid}"))

    async def _all_items(self, path: str) -> list[Any]:
        """Every item of a list endpoint, page by page (``hasMore``, ``nextPage``)."""
        api = self._api()
        found: list[Any] = []
        after: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"limit": _PAGE}
            if after:
                params["after"] = after
            data = await api.get(path, params=params)
            items = data.get("items") if isinstance(data, Mapping) else None
            if not isinstance(items, list):
                raise malformed(self.name, f"GET {path}: expected {{'items': [...]}}")
            found.extend(items)
            after = data.get("nextPage")
            if after is not None and not isinstance(after, str):
                raise malformed(self.name, f"GET {path}: 'nextPage' is not a string")
            if not data.get("hasMore") or not after or after in seen:
                return found
            seen.add(after)

    async def _all_machines(self) -> list[PaperspaceMachine]:
        return [PaperspaceMachine.from_json(item) for item in await self._all_items("/machines")]

    async def _find(self, launch_id: str) -> Resource | None:
        found = await self.list(tags={TAG_LAUNCH_ID: launch_id})
        return found[0] if found else None

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

    # --- launch -------------------------------------------------------------------------------

    @staticmethod
    def _machine_type(spec: LaunchSpec) -> str:
        if spec.offer is not None:
            return spec.offer.instance_type
        if spec.instance_type:
            return spec.instance_type
        if spec.gpu:
            return spec.gpu if spec.gpu_count <= 1 else f"{spec.gpu}x{spec.gpu_count}"
        raise ValidationError("instance_type", "no machine type given",
                              allowed="instance_type such as 'A4000' or 'A100-80G', or gpu")

    async def _template_id(self, spec: LaunchSpec, machine_type: str) -> str:
        chosen = spec.options.get("template_id") or self.config.setting("template_id")
        if chosen:
            return chosen
        items = await self._all_items("/os-templates")
        candidates: list[tuple[str, str]] = []
        for item in items:
            if not isinstance(item, Mapping):
                continue
            tid, name = item.get("id"), item.get("name")
            if not isinstance(tid, str) or not isinstance(name, str):
                continue
            if DEFAULT_TEMPLATE_NAME.lower() not in name.lower():
                continue
            types = item.get("availableMachineTypes")
            if isinstance(types, list) and types and not any(
                isinstance(t, Mapping) and t.get("machineTypeLabel") == machine_type
                and t.get("isAvailable") for t in types
            ):
                continue
            created = item.get("dtCreated")
            candidates.append((created if isinstance(created, str) else "", tid))
        if not candidates:
            raise ValidationError(
                "options.template_id", f"no {DEFAULT_TEMPLATE_NAME} template for {machine_type}",
                allowed="an OS template id (see `pspace os-template list`) in "
                "options['template_id'] or the template_id setting",
            )
        return max(candidates)[1]

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Create a machine that runs ``spec`` at first boot; idempotent on the launch id.

        Raises:
            UnsupportedOperationError: ``spec.spot`` (Paperspace has no spot machines).
            ValidationError: no machine type, extra tags, or no template found.
            ProviderConnectionError: the create may or may not have happened and no
                machine with this launch id could be found; launching again is safe.
        """
        if spec.spot:
            raise UnsupportedOperationError(
                self.name, "spot", "Paperspace has no interruptible machines"
            )
        name = machine_name(spec)
        existing = await self._find(spec.launch_id)
        if existing is not None:
            return existing
        machine_type = self._machine_type(spec)
        template_id = await self._template_id(spec, machine_type)
        api = self._api()
        script = await api.post("/startup-scripts", json_body={
            "name": f"runctl-{spec.launch_id}", "script": startup_script(spec), "isRunOnce": True,
        })
        script_id = script.get("id") if isinstance(script, Mapping) else None
        if not isinstance(script_id, str):
            raise malformed(self.name, "POST /startup-scripts: no 'id' in the answer")
        body = {
            "name": name,
            "machineType": machine_type,
            "templateId": template_id,
            "region": spec.region or self.config.setting("region") or DEFAULT_REGION,
            "diskSize": spec.disk_gb or DEFAULT_DISK_GB,
            "startupScriptId": script_id,
            "startOnCreate": True,
            "publicIpType": "dynamic",
            "emailPassword": False,
        }
        try:
            data = await api.post("/machines", json_body=body)
        except (ProviderConnectionError, ServerError) as e:
            found = await self._reconcile(spec.launch_id)
            if found is not None:
                return found
            raise type(e)(
                f"create machine {name} got no answer ({e.message}); no machine with launch id "
                f"{spec.launch_id} was found. Retrying the launch is safe: it looks for that "
                "launch id first",
                provider=self.name, status=e.status, request_id=e.request_id, body=e.body,
            ) from e
        except ProviderError:
            await self._delete_script(script_id)
            raise
        resource = self._resource(self._machine(data, "POST /machines"))
        return resource.evolve(launch_id=spec.launch_id, name=spec.name,
                               tags=parse_machine_name(name) or {})

    async def _delete_script(self, script_id: str) -> None:
        try:
            await self._api().delete(f"/startup-scripts/{script_id}")
        except ProviderError:
            pass  # a left-over script costs nothing; the machine matters

    async def _scripts_for(self, launch_id: str) -> list[str]:
        try:
            items = await self._all_items("/startup-scripts")
        except ProviderError:
            return []
        return [
            str(i["id"]) for i in items
            if isinstance(i, Mapping) and i.get("name") == f"runctl-{launch_id}" and i.get("id")
        ]

    # --- stop, start, terminate ---------------------------------------------------------------

    async def stop(self, resource_id: str) -> Resource:
        """Power the machine off; its disk is kept (and billed)."""
        mid = self._machine_id(resource_id)
        data = await self._api().patch(
            f"/machines/{mid}/stop", json_body={}, idempotent=True
        )
        return self._resource(self._machine(data, f"PATCH /machines/{mid}/stop"))

    async def start(self, resource_id: str) -> Resource:
        """Power a stopped machine on (the run-once startup script does not run again)."""
        mid = self._machine_id(resource_id)
        data = await self._api().patch(
            f"/machines/{mid}/start", json_body={}, idempotent=True
        )
        return self._resource(self._machine(data, f"PATCH /machines/{mid}/start"))

    async def terminate(self, resource_id: str) -> Resource:
        """Delete the machine and its disk, and runctl's startup script for it. Idempotent:
        a machine Paperspace no longer knows is reported TERMINATED."""
        mid = self._machine_id(resource_id)
        try:
            data = await self._api().delete(f"/machines/{mid}")
        except NotFoundError:
            # Already deleted (terminate is idempotent), unless it never existed.
            try:
                return await self.get(mid)
            except NotFoundError:
                return Resource(id=mid, provider=self.name, state=_S.TERMINATED,
                                raw_state=None, detail="not known to Paperspace (deleted)")
        resource = self._resource(self._machine(data, f"DELETE /machines/{mid}"))
        if resource.launch_id:
            for script_id in await self._scripts_for(resource.launch_id):
                await self._delete_script(script_id)
        if resource.state is not _S.TERMINATED:
            resource = resource.evolve(state=_S.TERMINATING, detail="delete requested")
        return resource

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """Not available: the v1 API has no machine log or console endpoint.

        The command's output is in ``/var/log/runctl-<launch id>.log`` on the machine.

        Raises:
            UnsupportedOperationError: always.
        """
        raise UnsupportedOperationError(
            self.name, "logs",
            "the Paperspace API has no machine logs; read /var/log/runctl-<launch id>.log over SSH",
        )

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Machines runctl launched (named ``runctl-<launch id>...``), filtered by ``tags``."""
        now = _utcnow()
        out: list[Resource] = []
        for m in await self._all_machines():
            carried = parse_machine_name(m.name)
            if carried is None or m.dt_deleted is not None:
                continue
            if tags and any(carried.get(k) != v for k, v in tags.items()):
                continue
            out.append(self._resource(m, observed_at=now))
        return out
