"""The slurmrestd transport: Slurm's REST API, over TCP with a JWT or over its unix socket.

slurmrestd serves one URL tree per OpenAPI plugin version (``/slurm/v0.0.38/...``), and
which versions a server offers depends on its Slurm release: 22.05 offers v0.0.36 to
v0.0.38, 24.11 offers v0.0.40 to v0.0.42, 25.11 up to v0.0.44. runctl reads the
server's own OpenAPI document (``GET /openapi/v3``) once and uses the newest version it
knows of those offered (:data:`SUPPORTED_VERSIONS`), unless ``api_version`` is set.

Shapes that changed between versions, and how each is read:

============================  ===================  =======================================
                              v0.0.38              v0.0.40 and later
============================  ===================  =======================================
``job_state``                 ``"COMPLETED"``      ``["COMPLETED"]`` (base state + flags)
``exit_code``                 the wait status      ``{return_code: {number}, signal: {id}}``
                              (``768`` = exit 3)
times, counts, limits         numbers              ``{set, infinite, number}``
``environment`` (submit)      an object            ``["K=V", ...]``
GPUs (submit)                 ``gres``             ``tres_per_node: "gres/gpu:TYPE:N"``
collection paths              ``/jobs``            ``/jobs/`` (as the spec writes them)
a missing job                 HTTP 500, error      HTTP 404
                              2017 in the body
============================  ===================  =======================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ...errors import (
    CapacityError,
    ConfigurationError,
    NotFoundError,
    ProviderError,
    ServerError,
)
from ...kit import Fields, malformed
from ._jobs import SlurmJob, SlurmNode, exit_code_from, parse_gres
from ._script import BatchJob

if TYPE_CHECKING:
    import httpx

    from ...http import HttpApi

__all__ = ["SUPPORTED_VERSIONS", "RestBackend", "job_from_rest", "node_from_rest", "pick_version"]

NAME = "slurm"

#: OpenAPI versions runctl speaks, newest first. v0.0.39 (23.02 only) is left out: 23.02
#: also offers v0.0.38. Specs of v0.0.38 and v0.0.41 to v0.0.45 are in tests/support/specs.
SUPPORTED_VERSIONS = ("v0.0.45", "v0.0.44", "v0.0.43", "v0.0.42", "v0.0.41", "v0.0.40", "v0.0.38")
_PATH_VERSION = re.compile(r"^/slurm/(v\d+\.\d+\.\d+)/")
#: Slurm's "Invalid job id specified".
_INVALID_JOB_ID = 2017


def offered_versions(openapi: object) -> set[str]:
    """The ``/slurm/vX.Y.Z/`` versions an OpenAPI document has paths for."""
    paths = openapi.get("paths") if isinstance(openapi, Mapping) else None
    if not isinstance(paths, Mapping):
        raise malformed(NAME, "GET /openapi/v3: no 'paths'", None)
    return {m.group(1) for p in paths if (m := _PATH_VERSION.match(str(p)))}


def pick_version(offered: set[str]) -> str:
    """The newest of :data:`SUPPORTED_VERSIONS` among ``offered``.

    Raises:
        ConfigurationError: none of them is offered.
    """
    for version in SUPPORTED_VERSIONS:
        if version in offered:
            return version
    raise ConfigurationError(
        f"slurm: slurmrestd offers OpenAPI {', '.join(sorted(offered)) or 'nothing'}; runctl "
        f"speaks {', '.join(SUPPORTED_VERSIONS)} (start slurmrestd with one of those plugins, "
        "e.g. -s openapi/slurmctld)"
    )


def _number(value: object) -> int | None:
    """A number as any version writes it: bare, or ``{set, infinite, number}``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        if value.get("infinite") or value.get("set") is False:
            return None
        return _number(value.get("number"))
    return None


def _time(value: object) -> datetime | None:
    seconds = _number(value)
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _exit_code(value: object) -> int | None:
    if isinstance(value, Mapping):
        code = _number(value.get("return_code"))
        signal = value.get("signal")
        sig = _number(signal.get("id")) if isinstance(signal, Mapping) else None
        return exit_code_from(code, sig)
    status = _number(value)
    if status is None:
        return None
    # v0.0.38 reports the wait status: exit code in the high byte, signal in the low bits.
    return exit_code_from(status >> 8, status & 0x7F)


def _state(value: object) -> str | tuple[str, ...] | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return None


def job_from_rest(data: object) -> SlurmJob:
    """A job from one item of slurmrestd's ``jobs`` list, any version."""
    f = Fields(data, "job", provider=NAME)
    job_id = f.integer("job_id", required=True)
    stdout = f.text("standard_output")
    if stdout:
        # slurmrestd returns the pattern as submitted; runctl's patterns use %j only.
        stdout = stdout.replace("%j", str(job_id))
    time_limit = _number(f.data.get("time_limit"))
    return SlurmJob(
        job_id=str(job_id),
        name=f.text("name") or None,
        comment=f.text("comment") or None,
        state=_state(f.data.get("job_state")),
        reason=None if f.text("state_reason") in (None, "", "None") else f.text("state_reason"),
        exit_code=_exit_code(f.data.get("exit_code")),
        nodes=f.text("nodes") or None,
        node_count=_number(f.data.get("node_count")),
        partition=f.text("partition") or None,
        submitted_at=_time(f.data.get("submit_time")),
        started_at=_time(f.data.get("start_time")),
        ended_at=_time(f.data.get("end_time")),
        gres=f.text("tres_per_node") or None,
        stdout=stdout or None,
        time_limit_minutes=time_limit if time_limit and time_limit < 2**31 else None,
        user=f.text("user_name") or None,
        uid=f.integer("user_id"),
    )


def node_from_rest(data: object) -> SlurmNode:
    """A node from one item of slurmrestd's ``nodes`` list, any version."""
    f = Fields(data, "node", provider=NAME)
    state = f.data.get("state")
    words = [state] if isinstance(state, str) else [str(s) for s in state or []]
    used = parse_gres(f.text("gres_used"))
    return SlurmNode(
        name=f.text("name", required=True),
        partitions=tuple(str(p) for p in f.items("partitions")),
        gpus=tuple(parse_gres(f.text("gres"))),
        gpus_used=sum(c for _, c in used) if used else None,
        cpus=_number(f.data.get("cpus")),
        memory_mb=_number(f.data.get("real_memory")),
        state="+".join(words).lower() or "unknown",
    )


def _errors(data: object) -> list[Mapping[str, Any]]:
    errors = data.get("errors") if isinstance(data, Mapping) else None
    return [e for e in errors or [] if isinstance(e, Mapping)]


class RestBackend:
    """The provider's operations through slurmrestd.

    Args:
        api: the HTTP client (base URL, the JWT, the user name header, or the socket).
        version: an OpenAPI version to use instead of asking the server.
    """

    transport = "rest"

    def __init__(
        self, api: HttpApi, *, version: str | None = None, user: str | None = None
    ) -> None:
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise ConfigurationError(
                f"slurm: api_version {version!r} is not one runctl speaks "
                f"(allowed: {', '.join(SUPPORTED_VERSIONS)})"
            )
        self.api = api
        self._version = version
        #: Whose jobs ``jobs`` returns (the token's user; for the socket, this process's).
        self.user = user

    def __repr__(self) -> str:
        return f"<RestBackend {self.api.base_url} {self._version or 'version not negotiated'}>"

    async def version(self) -> str:
        """The OpenAPI version in use, negotiated with the server on first use."""
        if self._version is None:
            self._version = pick_version(offered_versions(await self.api.get("/openapi/v3")))
        return self._version

    async def _path(self, tail: str) -> str:
        version = await self.version()
        if version != "v0.0.38" and tail in ("jobs", "nodes", "ping"):
            tail += "/"  # v0.0.40+ name collections with a trailing slash
        return f"/slurm/{version}/{tail}"

    @staticmethod
    def classify(
        response: httpx.Response, message: str, kw: dict[str, Any]
    ) -> ProviderError | None:
        """Slurm's errors in the body, where the HTTP status does not say enough."""
        try:
            data = response.json()
        except ValueError:
            return None
        for error in _errors(data):
            text = f"{error.get('error', '')} {error.get('description', '')}"
            if error.get("error_number") == _INVALID_JOB_ID or "invalid job id" in text.lower():
                return NotFoundError(message, **kw)
            if "node configuration is not available" in text.lower():
                return CapacityError(f"{message}: {text.strip()}", **kw)
        return None

    async def ping(self) -> None:
        await self.api.get(await self._path("ping"))

    async def submit(self, job: BatchJob) -> str:
        version = await self.version()
        data = await self.api.post(await self._path("job/submit"), json_body=job.rest_body(version))
        f = Fields(data, "job submit response", provider=NAME)
        job_id = f.integer("job_id")
        if job_id is None:
            result = f.obj("result")  # v0.0.40/41 also nest it
            job_id = result.integer("job_id") if result is not None else None
        if job_id is None:
            detail = "; ".join(str(e.get("error")) for e in _errors(data)) or "no job_id"
            raise ServerError(f"slurmrestd did not submit the job: {detail}", provider=NAME)
        return str(job_id)

    async def job(self, job_id: str) -> SlurmJob | None:
        try:
            data = await self.api.get(await self._path(f"job/{job_id}"))
        except NotFoundError:
            return None
        items = Fields(data, "jobs response", provider=NAME).items("jobs")
        jobs = [job_from_rest(item) for item in items]
        return next((j for j in jobs if j.job_id == job_id), None)

    async def jobs(self) -> list[SlurmJob]:
        """The jobs slurmctld keeps of this user."""
        jobs = await self._all_jobs()
        return [j for j in jobs if self.user is None or j.user in (None, self.user)]

    async def _all_jobs(self) -> list[SlurmJob]:
        data = await self.api.get(await self._path("jobs"))
        return [
            job_from_rest(i) for i in Fields(data, "jobs response", provider=NAME).items("jobs")
        ]

    async def find(self, name: str) -> list[SlurmJob]:
        # 22.05's slurmrestd has no name filter: every job is read and filtered here.
        return [job for job in await self._all_jobs() if job.name == name]

    async def accounting(self, job_id: str) -> SlurmJob | None:
        # The slurmdb endpoints need slurmdbd and another plugin; the job record suffices.
        return None

    async def cancel(self, job_id: str) -> None:
        await self.api.delete(await self._path(f"job/{job_id}"))

    async def nodes(self) -> list[SlurmNode]:
        data = await self.api.get(await self._path("nodes"))
        return [
            node_from_rest(i) for i in Fields(data, "nodes response", provider=NAME).items("nodes")
        ]

    async def aclose(self) -> None:
        await self.api.aclose()
