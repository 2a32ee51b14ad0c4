"""Slurm: batch jobs on a cluster, through its commands (here or over ssh) or slurmrestd.

Prerequisites
    A Slurm cluster you can submit to. No extra Python package: runctl drives the
    Slurm commands (``sbatch``, ``squeue``, ``scontrol``, ``scancel``, ``sinfo``, and
    ``sacct`` when the cluster keeps accounting) or slurmrestd's REST API.

Transports (``transport`` in ``[providers.slurm]``, or ``RUNCTL_SLURM_TRANSPORT``)
    ``local``  the Slurm commands on this machine: runctl runs on a login node.
    ``ssh``    the same commands on a login node through the system ``ssh`` client
               (``ssh_host``; optional ``ssh_config``, ``ssh_identity``, ``ssh_port``,
               ``ssh_options``), so ``~/.ssh/config``, the agent, ``ProxyJump`` and keys
               work as for the user; one multiplexed connection per provider object.
    ``rest``   slurmrestd: ``rest_url`` with a JWT (``jwt`` in the config file, or
               ``SLURM_JWT``; ``user`` or ``SLURM_USER_NAME`` names the user), or
               ``rest_socket`` (the unix socket of ``slurmrestd -a rest_auth/local``). The
               OpenAPI version is the newest the server offers that runctl speaks
               (v0.0.38 on 22.05, v0.0.40 to v0.0.42 on 24.11, up to v0.0.45), or
               ``api_version``.
    The default is ``rest`` when ``rest_url`` or ``rest_socket`` is set, ``ssh`` when
    ``ssh_host`` is, else ``local``.

Capabilities
    ================  ======  ====================================================
    capability        yes?    how
    ================  ======  ====================================================
    live_offers       yes     partitions and their nodes' GPUs (``sinfo``, REST ``/nodes``)
    stop_start        CLI     ``scontrol suspend`` / ``resume`` (operators only; else
                              UnsupportedOperationError); not over REST
    spot              no      raises UnsupportedOperationError
    logs              yes     the job's output file: read here, over ssh (``tail -c``),
                              or over REST from ``local_output_dir``, a mount of it here
    follow_logs       yes     the file is read as it grows until the job ends
    multi_node        yes     ``--nodes=N``, one ``srun`` task per node, rendezvous env
    ssh               no
    ttl               yes     ``--time`` from the TTL, rounded up to whole minutes
    idempotent_launch yes     the job name and comment carry the launch id (``squeue``)
    tags              yes     in the job comment: ``runctl:key=value&...``
    exit_code         yes     ``sacct``, else ``scontrol``/REST, else runctl's marker
    ================  ======  ====================================================

The batch job
    The command runs in a bash batch script (``_script.batch_script``) that exports
    ``spec.env``, prints ``[runctl:<launch id>] start``, runs the command (one string
    under ``sh -c``), and prints ``[runctl:<launch id>] exit <N>``. With ``nodes > 1``
    it runs under ``srun`` with one task per node, and sets ``MASTER_ADDR`` (the first
    host of ``scontrol show hostnames $SLURM_JOB_NODELIST``), ``MASTER_PORT``,
    ``WORLD_SIZE`` and ``RUNCTL_NUM_NODES`` (``$SLURM_JOB_NUM_NODES``),
    ``RUNCTL_NODE_ADDRS``, and per task ``NODE_RANK`` / ``RUNCTL_NODE_RANK``
    (``$SLURM_NODEID``). Options: ``--job-name=<name>-<launch id>``,
    ``--comment=runctl:...``, ``--nodes``, ``--ntasks-per-node=1``, GPUs as
    ``--gres=gpu:TYPE:N`` (or ``--gpus-per-node``, setting ``gpu_request``),
    ``--cpus-per-task`` and ``--mem`` (``options``), ``--time``, ``--partition``,
    ``--account``, ``--qos``, ``--output=<output_dir>/runctl-%j.out`` and ``--chdir``
    (``spec.workdir``).

States
    :data:`SLURM_STATES` maps every Slurm job state: PENDING (the reason is the
    detail), CONFIGURING → PROVISIONING, RUNNING and COMPLETING → RUNNING, COMPLETED →
    SUCCEEDED, FAILED / NODE_FAIL / BOOT_FAIL / OUT_OF_MEMORY → FAILED, CANCELLED →
    TERMINATED, TIMEOUT and DEADLINE → TERMINATED (the time limit, i.e. the TTL, ended
    it), PREEMPTED, SUSPENDED → STOPPED, REQUEUED → PENDING, and the rest.

Prices
    Slurm has none: every price is 0 unless ``gpu_hour_rate`` (and ``currency``,
    default USD) gives an internal charge-back rate per GPU-hour, billed per second.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, ClassVar, Protocol

from ...cost import Money, Price
from ...errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidTransitionError,
    MissingCredentialsError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    UnsupportedOperationError,
    ValidationError,
)
from ...kit import (
    Availability,
    ProviderBase,
    exit_code_in,
    gpu_matches,
    is_marker,
    normalize_gpu,
    parse_marker,
    refuse_unsupported_nodes,
)
from ...models import (
    TAG_LAUNCH_ID,
    TAG_NAME,
    Capabilities,
    Gpu,
    LaunchSpec,
    Offer,
    OfferQuery,
    Resource,
    ResourceState,
)
from ...rendezvous import DEFAULT_PORT
from ._jobs import (
    SLURM_STATES,
    SlurmJob,
    SlurmNode,
    comment_for,
    expand_hostlist,
    parse_gres,
    raw_state,
    slurm_state,
)
from ._script import GPU_REQUESTS, BatchJob, batch_script, check_word, memory_mb, time_minutes

if TYPE_CHECKING:
    import httpx

    from ...config import ProviderConfig
    from ._cli import Runner

__all__ = ["SLURM_STATES", "SlurmProvider", "slurm_state"]

NAME = "slurm"
TRANSPORTS = ("local", "ssh", "rest")
logger = logging.getLogger("runctl.providers.slurm")
_S = ResourceState
_JOB_ID = re.compile(r"^\d{1,12}$")
#: PATH of a job submitted over REST, which inherits no environment.
REST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Bytes at the end of an output file searched for runctl's exit marker.
_MARKER_TAIL = 8192


class _Backend(Protocol):
    """What a transport does (see ``_cli.CliBackend`` and ``_rest.RestBackend``)."""

    transport: str

    async def submit(self, job: BatchJob) -> str: ...
    async def job(self, job_id: str) -> SlurmJob | None: ...
    async def jobs(self) -> list[SlurmJob]: ...
    async def find(self, name: str) -> list[SlurmJob]: ...
    async def accounting(self, job_id: str) -> SlurmJob | None: ...
    async def cancel(self, job_id: str) -> None: ...
    async def nodes(self) -> list[SlurmNode]: ...
    async def aclose(self) -> None: ...


def _gpu(gres_type: str | None) -> Gpu | None:

    return normalize_gpu(gres_type or "gpu", provider=NAME)


def _gpu_type_matches(query: str, gres_type: str) -> bool:
    """Whether the cluster's GRES type ``gres_type`` is the GPU ``query`` names.

    Canonical models are compared (``"H100"`` matches ``h100``, ``h100_sxm``); a name
    runctl does not know matches only itself. Never a substring.
    """

    if query.strip().lower() == gres_type.lower():
        return True
    wanted, have = normalize_gpu(query), normalize_gpu(gres_type, provider=NAME)
    return wanted.known and have.known and gpu_matches(query, have)


class SlurmProvider(ProviderBase):
    """Slurm batch jobs. See the module docstring for settings and behaviour.

    Args:
        config: runctl's configuration for ``slurm``.
        runner: where the CLI transports run commands (tests); default from the settings.
        http_transport: an httpx transport for the REST transport (tests).
        sleep: the async sleep between polls (tests).
    """

    name: ClassVar[str] = NAME

    def __init__(
        self,
        config: ProviderConfig,
        *,
        runner: Runner | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self.transport = self._transport_setting(config)
        self._runner = runner
        self._http_transport = http_transport
        self._sleep_fn = sleep
        self._backend_obj: _Backend | None = None
        self._output_dir: str | None = None
        #: Jobs this object saw end through terminate: asked again, nothing can have changed.
        self._ended: dict[str, Resource] = {}
        self._accounting_setting = self._flag("accounting")
        gpu_request = self._setting("gpu_request", "gres")
        if gpu_request not in GPU_REQUESTS:
            raise ConfigurationError(
                f"slurm: gpu_request {gpu_request!r} is unknown "
                f"(allowed: {', '.join(GPU_REQUESTS)})"
            )
        self.gpu_request = gpu_request
        self.currency = self._setting("currency", "USD").upper()
        rate = self._setting("gpu_hour_rate", "0")
        try:
            self.gpu_hour_rate = Decimal(rate)
        except InvalidOperation:
            raise ConfigurationError(f"slurm: gpu_hour_rate {rate!r} is not a number") from None
        if not self.gpu_hour_rate.is_finite() or self.gpu_hour_rate < 0:
            raise ConfigurationError(f"slurm: gpu_hour_rate {rate!r} must be a number >= 0")
        self.command_timeout = self._seconds("command_timeout", 60.0)
        self.log_poll = self._seconds("log_poll_seconds", 1.0)
        self.state_poll = self._seconds("state_poll_seconds", 5.0)
        self.terminate_wait = self._seconds("terminate_wait_seconds", 15.0)

    # --- settings -------------------------------------------------------------------------------

    @staticmethod
    def _transport_setting(config: ProviderConfig) -> str:
        chosen = config.setting("transport")
        if chosen is None:
            if config.setting("rest_url") or config.setting("rest_socket"):
                chosen = "rest"
            elif config.setting("ssh_host"):
                chosen = "ssh"
            else:
                chosen = "local"
        if chosen not in TRANSPORTS:
            raise ConfigurationError(
                f"slurm: transport {chosen!r} is unknown (allowed: {', '.join(TRANSPORTS)})"
            )
        return chosen

    def _setting(self, key: str, default: str) -> str:
        return self.config.setting(key, default=default) or default

    def _flag(self, key: str) -> bool | None:
        value = self.config.setting(key)
        if value is None or value.lower() == "auto":
            return None
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"slurm: {key} {value!r} is not one of auto, true, false")

    def _seconds(self, key: str, default: float) -> float:
        value = self.config.setting(key)
        if value is None:
            return default
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds > 0 or math.isinf(seconds):
            raise ConfigurationError(f"slurm: {key} {value!r} is not a number of seconds > 0")
        return seconds

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether the chosen transport can work here (its settings and tools are present)."""
        try:
            transport = cls._transport_setting(config)
        except ConfigurationError as e:
            return Availability(usable=False, reason=str(e))
        configured = bool(config.settings) or any(
            k.startswith("RUNCTL_SLURM_") for k in config.environ
        )
        if not configured:
            # Not used unasked: `runctl ls` or offers across providers must not query a
            # cluster just because its commands happen to be installed here.
            return Availability(
                usable=False,
                reason="not configured: set transport (local, ssh or rest) in "
                "[providers.slurm] or RUNCTL_SLURM_TRANSPORT",
            )
        if transport == "local":
            if shutil.which("sbatch", path=config.environ.get("PATH")) is None:
                return Availability(
                    usable=False,
                    reason="transport local: sbatch is not on PATH (set ssh_host or rest_url)",
                )
            return Availability(usable=True, reason="transport local: the Slurm commands here")
        if transport == "ssh":
            host = config.setting("ssh_host")
            if not host:
                return Availability(usable=False, reason="transport ssh: no ssh_host set")
            if shutil.which("ssh", path=config.environ.get("PATH")) is None:
                return Availability(usable=False, reason="transport ssh: no ssh client on PATH")
            return Availability(usable=True, reason=f"transport ssh: to {host}")
        if config.setting("rest_socket"):
            return Availability(usable=True, reason="transport rest: slurmrestd's unix socket")
        if not config.setting("rest_url"):
            return Availability(usable=False, reason="transport rest: no rest_url or rest_socket")
        secret = config.secret("jwt", env=("SLURM_JWT",))
        if secret is None:
            return Availability(
                usable=False,
                reason="transport rest: no JWT (looked in: env SLURM_JWT, config file "
                "[providers.slurm] jwt)",
            )
        return Availability(usable=True, reason=f"transport rest: JWT from {secret.source}")

    @property
    def capabilities(self) -> Capabilities:
        """What Slurm supports through the chosen transport (see the module docstring)."""
        return Capabilities(
            live_offers=True,
            stop_start=self.transport != "rest",
            spot=False,
            logs=True,
            follow_logs=True,
            multi_node=True,
            ssh=False,
            ttl=True,
            idempotent_launch=True,
            tags=True,
            exit_code=True,
        )

    def __repr__(self) -> str:
        return f"<SlurmProvider transport={self.transport!r}>"

    # --- the transport --------------------------------------------------------------------------

    def _backend(self) -> _Backend:
        if self._backend_obj is None:
            self._backend_obj = self._build_backend()
        return self._backend_obj

    def _build_backend(self) -> _Backend:
        if self.transport == "rest":
            return self._rest_backend()
        from ._cli import CliBackend, LocalRunner, SshRunner

        runner = self._runner
        if runner is None and self.transport == "local":
            runner = LocalRunner()
        elif runner is None:
            host = self.config.setting("ssh_host")
            if not host:
                raise ConfigurationError("slurm: transport ssh needs ssh_host")
            port = self.config.setting("ssh_port")
            options = [o.strip() for o in (self.config.setting("ssh_options") or "").split(";")]
            runner = SshRunner(
                host,
                config_file=self.config.setting("ssh_config"),
                identity=self.config.setting("ssh_identity"),
                port=int(port) if port and port.isdigit() else None,
                options=[o for o in options if o],
            )
        return CliBackend(runner, timeout=self.command_timeout, accounting=self._accounting_setting)

    def _rest_backend(self) -> _Backend:
        import httpx

        from ...http import HttpApi
        from ._rest import RestBackend

        socket = self.config.setting("rest_socket")
        user: str | None = None
        url = self.config.setting("rest_url")
        version = self.config.setting("api_version")
        holder: list[HttpApi] = []

        def classify(response: httpx.Response, message: str) -> ProviderError | None:
            return RestBackend.classify(response, message, holder[0].error_kwargs(response))

        if socket:
            transport = self._http_transport or httpx.AsyncHTTPTransport(uds=socket)
            api = HttpApi(
                provider=NAME,
                base_url="http://localhost",
                transport=transport,
                classify=classify,
                sleep=self._sleep_fn,
            )
        else:
            if not url:
                raise ConfigurationError("slurm: transport rest needs rest_url or rest_socket")
            secret = self.config.secret("jwt", env=("SLURM_JWT",))
            if secret is None:
                raise MissingCredentialsError(
                    NAME,
                    ("env SLURM_JWT", "config file [providers.slurm] jwt"),
                    "Make one on the cluster with `scontrol token lifespan=86400`",
                )
            user = (
                self.config.setting("user", env=("SLURM_USER_NAME",))
                or self.config.environ.get("USER")
                or None
            )
            api = HttpApi(
                provider=NAME,
                base_url=url,
                secret=secret,
                auth_header="X-SLURM-USER-TOKEN",
                auth_scheme=None,
                headers={"X-SLURM-USER-NAME": user or ""},
                classify=classify,
                transport=self._http_transport,
                sleep=self._sleep_fn,
            )
        holder.append(api)
        if socket:
            # rest_auth/local runs jobs as the user slurmrestd maps the socket's peer to,
            # which runctl cannot see: `user` names it (else list shows every user's jobs).
            user = self.config.setting("user", env=("SLURM_USER_NAME",))
        return RestBackend(api, version=version, user=user)

    async def _sleep(self, seconds: float) -> None:
        """Wait between polls (through the ``sleep`` seam in tests)."""
        if self._sleep_fn is not None:
            await self._sleep_fn(seconds)
        else:
            import anyio

            await anyio.sleep(seconds)

    async def aclose(self) -> None:
        """Close the ssh master connection or the HTTP connections."""
        if self._backend_obj is not None:
            backend, self._backend_obj = self._backend_obj, None
            await backend.aclose()

    # --- paths ----------------------------------------------------------------------------------

    async def _outdir(self) -> str:
        """Where job output goes, absolute on the cluster (created by the CLI transports)."""
        if self._output_dir is None:
            wanted = self.config.setting("output_dir")
            backend = self._backend()
            if self.transport == "rest":
                if not wanted or not wanted.startswith("/"):
                    raise ConfigurationError(
                        "slurm: transport rest needs output_dir, an absolute directory on the "
                        "cluster (on a filesystem its nodes share) for the jobs' output"
                    )
                self._output_dir = wanted.rstrip("/") or "/"
            else:
                from ._cli import CliBackend

                assert isinstance(backend, CliBackend)
                self._output_dir = await backend.output_dir(wanted or "runctl-slurm")
        return self._output_dir

    def _local_path(self, cluster_path: str) -> str | None:
        """Where a file of the cluster is readable by this process (REST: ``local_output_dir``)."""
        if self.transport != "rest":
            return cluster_path
        outdir = (self.config.setting("output_dir") or "").rstrip("/")
        local = self.config.setting("local_output_dir") or outdir
        if outdir and cluster_path.startswith(outdir + "/") and os.path.isdir(local):
            return local.rstrip("/") + cluster_path[len(outdir) :]
        return None

    async def _read(
        self, cluster_path: str, offset: int, *, tail: int | None = None
    ) -> bytes | None:
        """Bytes of a cluster file from ``offset`` (or its last ``tail`` bytes)."""
        from ._cli import CliBackend, read_local

        backend = self._backend()
        if isinstance(backend, CliBackend):
            return await backend.read(cluster_path, offset, tail=tail)
        local = self._local_path(cluster_path)
        if local is None:
            return None
        return await read_local(local, offset, tail=tail)

    # --- reading jobs ---------------------------------------------------------------------------

    def _price(self, gpus_per_node: int, nodes: int) -> Price:
        per_hour = Money(self.gpu_hour_rate * gpus_per_node, self.currency)
        return Price(
            per_hour=per_hour,
            gpu_count=gpus_per_node,
            source="static",
            observed_at=_now(),
        ).scaled(max(1, nodes))

    def _resource(self, job: SlurmJob) -> Resource:
        state = slurm_state(job.state)
        raw = raw_state(job.state)
        tags = job.tags or {}
        gpus = parse_gres(job.gres)
        gres_type, per_node = gpus[0] if gpus else (None, 0)
        nodes = job.node_count or 1
        addresses = tuple(expand_hostlist(job.nodes)) if job.started_at or job.nodes else ()
        detail = _detail(job, state, raw)
        return Resource(
            id=job.job_id,
            provider=NAME,
            state=state,
            raw_state=raw,
            name=tags.get(TAG_NAME) or job.name,
            launch_id=tags.get(TAG_LAUNCH_ID),
            created_at=job.submitted_at,
            started_at=job.started_at if state is not _S.PENDING else None,
            ended_at=job.ended_at if state.is_terminal else None,
            exit_code=job.exit_code if state.is_terminal else None,
            price=self._price(per_node, nodes),
            instance_type=_instance_type(job.partition or "default", gres_type, per_node),
            gpu=_gpu(gres_type) if per_node else None,
            gpu_count=per_node,
            region=job.partition,
            tags=tags,
            address=addresses[0] if addresses else None,
            nodes=nodes,
            addresses=addresses,
            detail=detail,
        )

    def _check_id(self, resource_id: str) -> str:
        if not isinstance(resource_id, str) or not _JOB_ID.match(resource_id):
            raise NotFoundError(f"{resource_id!r} is not a Slurm job id", provider=NAME)
        return resource_id

    async def get(self, resource_id: str) -> Resource:
        """The job as the cluster reports it now.

        The exit code comes from ``sacct`` when the cluster keeps accounting, else from
        the job record (``scontrol``, REST); a job slurmctld has forgotten (after
        ``MinJobAge``) without accounting is read from runctl's markers in its output.

        Raises:
            NotFoundError: Slurm knows no such job and no runctl output of it exists.
        """
        job_id = self._check_id(resource_id)
        backend = self._backend()
        job = await backend.job(job_id)
        if job is None:
            return await self._forgotten(job_id)
        resource = self._resource(job)
        if resource.is_terminal:
            accounted = await backend.accounting(job_id)
            code = accounted.exit_code if accounted is not None else None
            if code is None:
                code = resource.exit_code
            if code is None and resource.launch_id:
                code = await self._marker_code(
                    _stdout(job, await self._outdir()), resource.launch_id
                )
            resource = resource.evolve(exit_code=code)
        return resource

    async def _forgotten(self, job_id: str) -> Resource:
        """A job slurmctld no longer lists: from accounting, else from its output's markers."""
        accounted = await self._backend().accounting(job_id)
        if accounted is not None:
            return self._resource(accounted)
        path = f"{await self._outdir()}/runctl-{job_id}.out"
        tail = await self._read(path, 0, tail=_MARKER_TAIL)
        markers = [m for m in map(parse_marker, _lines(tail)) if m is not None]
        if not markers:
            raise NotFoundError(f"Slurm knows no job {job_id}", provider=NAME)
        launch_id = markers[-1].launch_id
        code = exit_code_in(_lines(tail), launch_id)
        detail = f"Slurm no longer lists job {job_id} and keeps no accounting; " + (
            f"its output says the command exited with {code}"
            if code is not None
            else "it ended without runctl's exit marker (cancelled, timed out or killed)"
        )
        state = _S.TERMINATED if code is None else (_S.SUCCEEDED if code == 0 else _S.FAILED)
        return Resource(
            id=job_id,
            provider=NAME,
            state=state,
            raw_state=None,
            launch_id=launch_id,
            exit_code=code,
            price=self._price(0, 1),
            detail=detail,
        )

    async def _marker_code(self, path: str, launch_id: str) -> int | None:
        try:
            tail = await self._read(path, 0, tail=_MARKER_TAIL)
        except ProviderError as e:
            logger.debug("slurm: reading %s for the exit marker failed: %s", path, e)
            return None
        return exit_code_in(_lines(tail), launch_id)

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        """Jobs runctl launched that the cluster still lists, optionally those with ``tags``."""
        found = []
        if self.transport == "ssh":
            await self._outdir()  # also learns who we are on the login node
        for job in await self._backend().jobs():
            job_tags = job.tags
            if job_tags is None:
                continue
            if tags and any(job_tags.get(k) != v for k, v in tags.items()):
                continue
            found.append(self._resource(job))
        return found

    # --- launching ------------------------------------------------------------------------------

    @staticmethod
    def _job_name(spec: LaunchSpec) -> str:
        return f"{spec.name or 'runctl'}-{spec.launch_id}"

    async def _find(self, spec: LaunchSpec) -> Resource | None:
        for job in await self._backend().find(self._job_name(spec)):
            if (job.tags or {}).get(TAG_LAUNCH_ID) == spec.launch_id:
                return self._resource(job)
        return None

    async def _gpu_type(self, wanted: str) -> str:
        types = sorted({t for node in await self._backend().nodes() for t, _ in node.gpus if t})
        matching = [t for t in types if _gpu_type_matches(wanted, t)]
        if not matching:
            raise ValidationError(
                "gpu",
                f"this cluster has no {wanted!r} GPUs",
                allowed=", ".join(types) or "none: the cluster has no typed GPUs (omit gpu)",
            )
        return matching[0]

    def _option(self, spec: LaunchSpec, key: str) -> str | None:
        value = spec.options.get(key) or self.config.setting(key)
        return check_word(f"options.{key}", value) if value else None

    async def _batch_job(self, spec: LaunchSpec) -> BatchJob:
        known = set(_OPTIONS)
        unknown = sorted(set(spec.options) - known)
        if unknown:
            raise ValidationError(
                "options",
                f"{', '.join(unknown)} unknown to slurm",
                allowed=", ".join(sorted(known)),
            )
        partition, gpu_type = None, None
        chosen = spec.offer.instance_type if spec.offer is not None else spec.instance_type
        if chosen:
            partition, _, kind = chosen.partition("/")
            gpu_type = kind if kind not in ("", "cpu", "gpu") else None
            partition = None if partition in ("", "default") else partition
        gpus = spec.gpu_count or (spec.offer.gpu_count if spec.offer is not None else 0)
        if spec.gpu and gpu_type is None:
            gpu_type = await self._gpu_type(spec.gpu)
            gpus = gpus or 1
        if gpu_type is not None:
            check_word("gpu", gpu_type)
        cpus = spec.options.get("cpus_per_task")
        if cpus is not None and (not cpus.isdigit() or int(cpus) < 1):
            raise ValidationError(
                "options.cpus_per_task", f"{cpus!r} is invalid", allowed="an int >= 1"
            )
        mem = spec.options.get("mem")
        port = spec.options.get("master_port", str(DEFAULT_PORT))
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValidationError("options.master_port", f"{port!r} is invalid", allowed="1-65535")
        outdir = await self._outdir()
        return BatchJob(
            name=self._job_name(spec),
            comment=comment_for(spec.runctl_tags),
            script=batch_script(
                spec.command,
                shell=spec.shell,
                launch_id=spec.launch_id,
                env=spec.env,
                nodes=spec.nodes,
                port=int(port),
            ),
            nodes=spec.nodes,
            gpus_per_node=gpus,
            gpu_type=gpu_type,
            gpu_request=spec.options.get("gpu_request", self.gpu_request),
            cpus_per_task=int(cpus) if cpus else None,
            memory=mem.strip().upper() if mem else None,
            memory_mb=memory_mb("options.mem", mem) if mem else None,
            time_minutes=time_minutes(spec.ttl) if spec.ttl is not None else None,
            partition=self._option(spec, "partition")
            or partition
            or (check_word("region", spec.region) if spec.region else None),
            account=self._option(spec, "account"),
            qos=self._option(spec, "qos"),
            output=f"{outdir}/runctl-%j.out",
            workdir=spec.workdir or (outdir if self.transport == "rest" else None),
            environment={"PATH": REST_PATH, "RUNCTL_LAUNCH_ID": spec.launch_id},
        )

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Submit ``spec`` as a batch job, or return the job already submitted with its launch id.

        Raises:
            UnsupportedOperationError: ``spec.spot``.
            ValidationError: an option, GPU or partition this cluster does not have.
            CapacityError: no node of the cluster could ever run it.
            ProviderConnectionError: the submission may have happened but no job with
                this launch id is listed yet; launching again with the same spec is safe.
        """
        refuse_unsupported_nodes(self, spec)
        if spec.spot:
            raise UnsupportedOperationError(
                NAME, "spot", "Slurm jobs are not interruptible capacity"
            )
        gpu_request = spec.options.get("gpu_request", self.gpu_request)
        if gpu_request not in GPU_REQUESTS:
            raise ValidationError(
                "options.gpu_request",
                f"{gpu_request!r} is unknown",
                allowed=", ".join(GPU_REQUESTS),
            )
        if spec.image:
            logger.warning(
                "slurm: ignoring image %r; the command runs on the nodes as they are", spec.image
            )
        existing = await self._find(spec)
        if existing is not None:
            return existing
        job = await self._batch_job(spec)
        try:
            job_id = await self._backend().submit(job)
        except ProviderConnectionError as e:
            if not e.maybe_applied:
                raise
            found = await self._find(spec)
            if found is not None:
                return found
            error = ProviderConnectionError(
                f"the submission of launch {spec.launch_id} got no answer and no job with that "
                "launch id is listed yet; launching again with the same launch id is safe",
                provider=NAME,
            )
            error.maybe_applied = True
            raise error from e
        # What was just submitted pends: said without another round trip to the cluster.
        return Resource(
            id=job_id,
            provider=NAME,
            state=_S.PENDING,
            raw_state="PENDING",
            name=spec.name or job.name,
            launch_id=spec.launch_id,
            created_at=_now(),
            price=self._price(job.gpus_per_node, spec.nodes),
            instance_type=_instance_type(
                job.partition or "default", job.gpu_type, job.gpus_per_node
            ),
            gpu=_gpu(job.gpu_type) if job.gpus_per_node else None,
            gpu_count=job.gpus_per_node,
            region=job.partition,
            tags=spec.runctl_tags,
            nodes=spec.nodes,
            detail="submitted",
        )

    # --- changing jobs --------------------------------------------------------------------------

    async def terminate(self, resource_id: str) -> Resource:
        """``scancel`` the job, then watch until Slurm reports it ended.

        Returns the job CANCELLED (TERMINATED), or TERMINATING if its processes are
        still ending after ``terminate_wait_seconds``. Idempotent: an ended job is
        returned as it is.
        """
        job_id = self._check_id(resource_id)
        if job_id in self._ended:
            return self._ended[job_id]  # an ended job stays ended: nothing to ask
        try:
            # Harmless on an ended job (Slurm says so, and nothing changes).
            await self._backend().cancel(job_id)
        except ProviderError as e:
            logger.debug("slurm: scancel %s: %s", job_id, e)
        steps = max(1, math.ceil(self.terminate_wait / 0.25))
        for _ in range(steps):
            current = await self.get(job_id)
            if current.is_terminal:
                self._ended[job_id] = current
                return current
            await self._sleep(0.25)
        return current.evolve(
            state=_S.TERMINATING,
            detail=f"scancel sent; Slurm still reports {current.raw_state}",
        )

    async def _suspend(self, resource_id: str, *, stop: bool) -> Resource:
        from ._cli import CliBackend

        backend = self._backend()
        verb = "suspend" if stop else "resume"
        if not isinstance(backend, CliBackend):
            raise UnsupportedOperationError(
                NAME, "stop" if stop else "start", "slurmrestd has no suspend/resume"
            )
        current = await self.get(resource_id)
        wanted = _S.STOPPED if stop else _S.RUNNING
        if current.state is wanted:
            return current
        if current.state is not (_S.RUNNING if stop else _S.STOPPED):
            raise InvalidTransitionError(resource_id, current.state, wanted)
        try:
            if stop:
                await backend.suspend(resource_id)
            else:
                await backend.resume(resource_id)
        except AuthenticationError as e:
            raise UnsupportedOperationError(
                NAME,
                "stop" if stop else "start",
                f"scontrol {verb} needs Slurm operator rights on this cluster ({e.message})",
            ) from e
        return await self.get(resource_id)

    async def stop(self, resource_id: str) -> Resource:
        """``scontrol suspend`` the job (CLI transports; Slurm operators only)."""
        return await self._suspend(resource_id, stop=True)

    async def start(self, resource_id: str) -> Resource:
        """``scontrol resume`` a suspended job (CLI transports; Slurm operators only)."""
        return await self._suspend(resource_id, stop=False)

    # --- logs -----------------------------------------------------------------------------------

    def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """The job's output file, line by line, without runctl's marker lines.

        Read where the transport reaches it: here, over ssh (``tail -c``), or for REST
        from ``local_output_dir``. With ``follow``, the file is read every
        ``log_poll_seconds`` until runctl's exit marker, or until Slurm (asked every
        ``state_poll_seconds`` while no output comes) says the job ended.

        Raises:
            UnsupportedOperationError: REST without a local view of the output directory.
        """
        return self._logs(resource_id, follow=follow)

    async def _logs(self, resource_id: str, *, follow: bool) -> AsyncIterator[str]:
        from ._cli import READ_LIMIT

        job_id = self._check_id(resource_id)
        job = await self._backend().job(job_id)
        path = (
            _stdout(job, await self._outdir())
            if job is not None
            else (f"{await self._outdir()}/runctl-{job_id}.out")
        )
        if self.transport == "rest" and self._local_path(path) is None:
            raise UnsupportedOperationError(
                NAME,
                "logs",
                f"slurmrestd cannot read files: set local_output_dir to where {path} "
                "is mounted on this machine",
            )
        launch_id = (job.tags or {}).get(TAG_LAUNCH_ID) if job is not None else None
        offset, pending, done = 0, b"", job is None
        quiet = self.state_poll  # seconds without output since Slurm was last asked
        while True:
            chunk = await self._read(path, offset)
            if chunk:
                offset += len(chunk)
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace").rstrip("\r")
                    marker = parse_marker(line)
                    if marker is None:
                        yield line
                    elif marker.exit_code is not None and marker.launch_id == launch_id:
                        done = True  # the script's last line: read once more, then stop
                if len(chunk) >= READ_LIMIT:
                    continue
            if not follow or (done and not chunk):
                break
            if not chunk:
                # Nothing new. The exit marker normally ends the follow; Slurm is asked
                # whether the job ended some other way (cancelled, timed out, killed) only
                # every state_poll_seconds, to spare slurmctld (and ssh round trips).
                quiet += self.log_poll
                if not done and quiet >= self.state_poll:
                    quiet = 0.0
                    done = (await self.get(job_id)).is_terminal
                if not done:
                    await self._sleep(self.log_poll)
            else:
                quiet = 0.0  # output flows: the job runs
        if pending:
            line = pending.decode(errors="replace")
            if not is_marker(line):
                yield line

    # --- offers ---------------------------------------------------------------------------------

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """One offer per partition and node shape (GPU type and count, CPUs, memory).

        ``available`` says whether a node of that shape could start a job now (idle, or
        mixed with GPUs to spare). The price is 0, or ``gpu_hour_rate`` per GPU-hour.
        """
        if query.spot is True or (query.providers and NAME not in query.providers):
            return []
        shapes: dict[tuple[str, str | None, int, int | None, int | None], list[SlurmNode]]
        shapes = defaultdict(list)
        for node in await self._backend().nodes():
            gres_type, count = node.gpus[0] if node.gpus else (None, 0)
            for partition in node.partitions or ("default",):
                shapes[(partition, gres_type, count, node.cpus, node.memory_mb)].append(node)
        offers = []
        for (partition, gres_type, count, cpus, memory), nodes in sorted(
            shapes.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2])
        ):
            free = sum(node.free for node in nodes)
            offers.append(
                Offer(
                    provider=NAME,
                    instance_type=_instance_type(partition, gres_type, count),
                    gpu=_gpu(gres_type) if count else None,
                    gpu_count=count,
                    price=self._price(count, 1),
                    vcpus=cpus,
                    memory_gb=round(memory / 1024, 1) if memory else None,
                    region=partition,
                    available=free > 0,
                    note=f"{len(nodes)} node(s), {free} free now; price is "
                    + ("the configured gpu_hour_rate" if self.gpu_hour_rate else "0 (no rate set)"),
                )
            )
        from ...offers import select

        return select(offers, query)


#: ``spec.options`` the Slurm provider reads.
_OPTIONS = ("partition", "account", "qos", "cpus_per_task", "mem", "gpu_request", "master_port")


def _now() -> datetime:
    """The time (the one clock of this module; a seam for tests)."""
    return datetime.now(timezone.utc)


def _instance_type(partition: str, gres_type: str | None, gpus: int) -> str:
    """``<partition>/<GRES type>``, ``<partition>/gpu`` (untyped) or ``<partition>/cpu``."""
    return f"{partition}/{gres_type or ('gpu' if gpus else 'cpu')}"


def _stdout(job: SlurmJob, outdir: str) -> str:
    return job.stdout or f"{outdir}/runctl-{job.job_id}.out"


def _lines(data: bytes | None) -> list[str]:
    return data.decode(errors="replace").splitlines() if data else []


def _detail(job: SlurmJob, state: ResourceState, raw: str | None) -> str | None:
    reason = job.reason
    names = set((raw or "").split("+"))
    if state is _S.PENDING:
        return f"pending: {reason}" if reason else "pending"
    if "TIMEOUT" in names:
        limit = f" of {job.time_limit_minutes} min" if job.time_limit_minutes else ""
        return f"ended at its time limit{limit} (the TTL)"
    if "DEADLINE" in names:
        return "ended at its deadline"
    if "CANCELLED" in names:
        return "cancelled (scancel)"
    if "COMPLETING" in names and state is _S.RUNNING:
        return "completing: its processes are ending"
    if state is _S.UNKNOWN:
        return f"Slurm reported state {raw!r}, which runctl does not know"
    if state in (_S.FAILED, _S.PREEMPTED) and reason:
        return f"{raw}: {reason}"
    return None
