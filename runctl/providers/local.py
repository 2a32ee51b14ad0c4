"""The local provider: runs the launch command as a subprocess on this machine.

It is runctl's embedded default. It needs no account and no network, so it is
the way to try a training command end to end before paying for a GPU, and the
provider the quickstart uses.

Prerequisites: none (POSIX: Linux or macOS). GPUs are found with ``nvidia-smi``
when it is installed.

Credentials: none.

How it works: ``launch`` starts a small detached *supervisor* process
(``python -m runctl.providers.local supervise DIR``) which starts the command in
its own process group, writes its output to ``output.log``, waits for it and
records the exit code. Everything lives in a directory per resource under
``<runctl home>/providers/local/<id>/``, so resources outlive the Python process
that launched them: any other process can ``get``, ``list``, follow ``logs`` of,
``stop``, ``start`` and ``terminate`` them.

=====================  =====  ===============================================
capability             here   how
=====================  =====  ===============================================
live_offers            yes    one offer: this machine (CPUs, RAM, GPUs), price 0
stop_start             yes    SIGSTOP / SIGCONT to the process group
spot                   no     raises ``UnsupportedOperationError``
logs / follow_logs     yes    stdout and stderr, merged, from ``output.log``
ttl                    yes    the supervisor terminates the command at its TTL
idempotent_launch      yes    the resource id is ``local-<launch id>``
tags                   yes    kept in the resource's ``meta.json``
exit_code              yes    signals are reported as 128 + signal number
=====================  =====  ===============================================

``spec.image`` is ignored here (a warning is logged): the command runs on the
host, so one spec can be tried locally and then sent to a container cloud.
A single-string command (``"python train.py && echo done"``) runs under
``/bin/sh -c``; a list runs as is.

Settings (``[providers.local]`` in the config file, or ``spec.options``):
``grace_seconds`` — how long ``terminate`` waits after SIGTERM before SIGKILL (10).

State table (raw state → runctl state):

===================  =============
raw                  state
===================  =============
``starting``         PROVISIONING
``running``          RUNNING
``stopped``          STOPPED
``terminating``      TERMINATING
``exited``           SUCCEEDED (code 0) or FAILED
``terminated``       TERMINATED (terminate or TTL)
``lost``             FAILED (supervisor died without recording an exit)
===================  =============
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import anyio

from ..config import ProviderConfig
from ..cost import Money, Price
from ..errors import (
    CapacityError,
    ConfigurationError,
    MalformedResponseError,
    NotFoundError,
    UnsupportedOperationError,
    ValidationError,
)
from ..kit import Availability, ProviderBase, StateTable, utcnow
from ..models import Capabilities, Gpu, LaunchSpec, Offer, OfferQuery, Resource, ResourceState

__all__ = ["LocalProvider"]

logger = logging.getLogger("runctl.providers.local")

NAME = "local"
_STATES = StateTable(
    NAME,
    {
        "starting": ResourceState.PROVISIONING,
        "running": ResourceState.RUNNING,
        "stopped": ResourceState.STOPPED,
        "terminating": ResourceState.TERMINATING,
        "exited": ResourceState.SUCCEEDED,  # FAILED when the exit code is not 0 (_observe)
        "terminated": ResourceState.TERMINATED,
        "lost": ResourceState.FAILED,
    },
    case_sensitive=True,
)
_META, _PROC, _STATUS, _LOG = "meta.json", "process.json", "status.json", "output.log"
_TERMINATE_MARK, _STOP_MARK = "terminate-requested", "stopped"


_now = utcnow


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # Write-then-rename so a reader never sees half a file.
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise MalformedResponseError(f"{path} is unreadable: {e}", provider=NAME) from e
    if not isinstance(data, dict):
        raise MalformedResponseError(f"{path} is not a JSON object", provider=NAME)
    return data


def _alive(pid: int | None, started: float | None = None) -> bool:
    """Whether ``pid`` runs and is the process we started (not a reused pid)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if started is not None:
        now_start = _process_start(pid)
        if now_start is not None and now_start != started:
            return False
    return not _is_zombie(pid)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the rest follows the last ')'.
    return text[text.rfind(")") + 2 :].split()


def _process_start(pid: int) -> float | None:
    fields = _proc_stat(pid)
    return float(fields[19]) if fields else None


def _is_zombie(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and bool(fields) and fields[0] in ("Z", "X")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _exit_code(returncode: int) -> int:
    # Popen reports death by signal N as -N; shells (and users) know it as 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _grace_seconds(config: ProviderConfig) -> float:
    raw = config.setting("grace_seconds", default="10") or "10"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value != float("inf")):
        raise ConfigurationError(
            f"[providers.local] grace_seconds: {raw!r} is invalid (allowed: seconds >= 0)"
        )
    return value


class LocalProvider(ProviderBase):
    """Runs commands as subprocesses of this machine. See the module docstring."""

    name: ClassVar[str] = NAME
    #: Keys read from ``[providers.local]`` (``runctl doctor`` flags others).
    setting_keys: ClassVar[tuple[str, ...]] = ("grace_seconds",)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.root = config.state_dir
        self.grace_seconds = _grace_seconds(config)

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Usable on POSIX with valid settings: no credentials."""
        if os.name != "posix":  # pragma: no cover - Windows is not supported yet
            return Availability(usable=False, reason="needs a POSIX system (Linux, macOS)")
        try:
            _grace_seconds(config)
        except ConfigurationError as e:
            return Availability(usable=False, reason=str(e))
        return Availability(usable=True, reason="no credentials needed")

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            live_offers=True,
            stop_start=True,
            logs=True,
            follow_logs=True,
            ttl=True,
            idempotent_launch=True,
            tags=True,
            exit_code=True,
        )

    # --- offers ---------------------------------------------------------------------------------

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        gpus = await _local_gpus()
        gpu = gpus[0] if gpus else None
        return [
            Offer(
                provider=NAME,
                instance_type="this-machine",
                gpu=gpu,
                gpu_count=len(gpus),
                price=Price(
                    per_hour=Money.zero("USD"),
                    gpu_count=len(gpus),
                    source="static",
                    observed_at=_now(),
                ),
                vcpus=os.cpu_count(),
                memory_gb=_memory_gb(),
                region="local",
                available=True,
            )
        ]

    # --- lifecycle ------------------------------------------------------------------------------

    def _dir(self, resource_id: str) -> Path:
        if not resource_id.startswith("local-") or "/" in resource_id or ".." in resource_id:
            raise NotFoundError(f"{resource_id!r} is not a local resource id", provider=NAME)
        return self.root / resource_id

    async def launch(self, spec: LaunchSpec) -> Resource:
        if spec.spot:
            raise UnsupportedOperationError(NAME, "spot", "the local machine is not interruptible")
        if spec.image:
            logger.warning("local: ignoring image %r; the command runs on this machine", spec.image)
        if spec.gpu_count:
            found = await _local_gpus()
            if len(found) < spec.gpu_count:
                raise CapacityError(
                    f"{spec.gpu_count} GPU(s) asked for, {len(found)} found on this machine",
                    provider=NAME,
                )
        workdir = Path(spec.workdir).expanduser() if spec.workdir else Path.cwd()
        if not workdir.is_dir():
            raise ValidationError(
                "workdir",
                f"{str(workdir)!r} is not a directory",
                allowed="an existing directory on this machine",
            )

        resource_id = f"local-{spec.launch_id}"
        directory = self.root / resource_id
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
        except FileExistsError:
            # Idempotent launch: the same launch id is the same resource.
            return await self._await_started(resource_id)

        command = list(spec.command)
        if len(command) == 1 and any(c.isspace() for c in command[0]):
            command = ["/bin/sh", "-c", command[0]]
        grace = float(spec.options.get("grace_seconds", self.grace_seconds))
        meta = {
            "id": resource_id,
            "name": spec.name,
            "launch_id": spec.launch_id,
            "command": command,
            "workdir": str(workdir),
            "env": {
                **spec.env,
                "RUNCTL_LAUNCH_ID": spec.launch_id,
                "RUNCTL_RESOURCE_ID": resource_id,
            },
            "tags": spec.runctl_tags,
            "ttl_seconds": spec.ttl.total_seconds() if spec.ttl else None,
            "grace_seconds": grace,
            "created_at": _now().isoformat(),
        }
        _write_json(directory / _META, meta)
        # The supervisor double-forks (see _daemonize), so it is nobody's child here:
        # it outlives this process and is never left as a zombie.
        with open(directory / "supervisor.log", "ab") as errors:
            await anyio.run_process(
                [sys.executable, "-m", "runctl.providers.local", "supervise", str(directory)],
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
                check=True,
            )
        return await self._await_started(resource_id)

    async def _await_started(self, resource_id: str, timeout: float = 15.0) -> Resource:
        deadline = time.monotonic() + timeout
        while True:
            resource = self._observe(resource_id)
            if resource.state is not ResourceState.PROVISIONING or time.monotonic() > deadline:
                return resource
            await anyio.sleep(0.02)

    async def get(self, resource_id: str) -> Resource:
        return self._observe(resource_id)

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if not entry.name.startswith("local-") or not (entry / _META).exists():
                continue
            try:
                resource = self._observe(entry.name)
            except (NotFoundError, MalformedResponseError):
                continue
            if tags and any(resource.tags.get(k) != v for k, v in tags.items()):
                continue
            found.append(resource)
        return found

    async def terminate(self, resource_id: str) -> Resource:
        directory = self._dir(resource_id)
        resource = self._observe(resource_id)
        if resource.is_terminal:
            return resource
        (directory / _TERMINATE_MARK).touch()
        proc = _read_json(directory / _PROC)
        if proc is None:
            # Still starting: the supervisor checks the mark before it starts the command.
            resource = await self._await_started(resource_id)
            proc = _read_json(directory / _PROC)
            if proc is None:
                return self._observe(resource_id)
        meta = _read_json(directory / _META) or {}
        grace = float(meta.get("grace_seconds", self.grace_seconds))
        pgid = int(proc["pgid"])
        _signal_group(pgid, signal.SIGTERM)
        _signal_group(pgid, signal.SIGCONT)  # a stopped process must wake to see SIGTERM
        if not await self._wait_exit(resource_id, grace):
            _signal_group(pgid, signal.SIGKILL)
            await self._wait_exit(resource_id, 5.0)
        return self._observe(resource_id)

    async def _wait_exit(self, resource_id: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._observe(resource_id).is_terminal:
                return True
            await anyio.sleep(0.05)
        return self._observe(resource_id).is_terminal

    async def stop(self, resource_id: str) -> Resource:
        return await self._pause(resource_id, stop=True)

    async def start(self, resource_id: str) -> Resource:
        return await self._pause(resource_id, stop=False)

    async def _pause(self, resource_id: str, *, stop: bool) -> Resource:
        directory = self._dir(resource_id)
        resource = self._observe(resource_id)
        wanted = ResourceState.STOPPED if stop else ResourceState.RUNNING
        if resource.state is wanted:
            return resource
        proc = _read_json(directory / _PROC)
        if proc is None or resource.is_terminal:
            from ..errors import InvalidTransitionError

            raise InvalidTransitionError(resource_id, resource.state, wanted)
        if stop:
            (directory / _STOP_MARK).touch()
            _signal_group(int(proc["pgid"]), signal.SIGSTOP)
            # Signals are delivered asynchronously: report STOPPED once it is true.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                fields = _proc_stat(int(proc["pid"]))
                if fields is None or fields[0] in ("T", "t", "Z", "X"):
                    break
                await anyio.sleep(0.01)
        else:
            _signal_group(int(proc["pgid"]), signal.SIGCONT)
            (directory / _STOP_MARK).unlink(missing_ok=True)
        return self._observe(resource_id)

    async def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        directory = self._dir(resource_id)
        if not (directory / _META).exists():
            raise NotFoundError(f"no local resource {resource_id!r}", provider=NAME)
        path = directory / _LOG
        while not path.exists():
            if self._observe(resource_id).is_terminal or not follow:
                return
            await anyio.sleep(0.05)
        with path.open("rb") as f:
            pending = b""
            while True:
                chunk = f.read(65536)
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", "replace")
                    continue
                if not follow:
                    break
                if self._observe(resource_id).is_terminal:
                    # The process has ended: read what it wrote last, then stop.
                    rest = f.read()
                    if rest:
                        pending += rest
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            yield line.decode("utf-8", "replace")
                    break
                await anyio.sleep(0.1)
            if pending:
                yield pending.decode("utf-8", "replace")

    async def aclose(self) -> None:
        return None

    # --- observation ----------------------------------------------------------------------------

    def _observe(self, resource_id: str) -> Resource:
        directory = self._dir(resource_id)
        meta = _read_json(directory / _META)
        if meta is None:
            raise NotFoundError(f"no local resource {resource_id!r}", provider=NAME)
        proc = _read_json(directory / _PROC)
        status = _read_json(directory / _STATUS)
        supervisor = _read_json(directory / "supervisor.json") or {}
        exit_code: int | None = None
        detail: str | None = None
        ended_at = None
        if status is not None:
            exit_code = status.get("exit_code")
            ended_at = _parse_time(status.get("ended_at"))
            detail = status.get("detail")
            raw = "terminated" if status.get("reason") in ("terminated", "ttl") else "exited"
        elif proc is not None and _alive(proc.get("pid"), proc.get("started")):
            if (directory / _TERMINATE_MARK).exists():
                raw = "terminating"
            elif (directory / _STOP_MARK).exists():
                raw = "stopped"
            else:
                raw = "running"
        elif _alive(supervisor.get("pid"), supervisor.get("started")):
            raw = "starting" if proc is None else "terminating"
        elif supervisor or proc:
            raw = "lost"
            detail = "the supervisor process died without recording an exit code"
        else:
            raw = "starting"
        if raw == "exited":
            state = ResourceState.SUCCEEDED if exit_code == 0 else ResourceState.FAILED
        else:
            state = _STATES[raw]
        created = _parse_time(meta.get("created_at"))
        started = _parse_time(proc.get("started_at")) if proc else None
        return Resource(
            id=resource_id,
            provider=NAME,
            state=state,
            raw_state=raw,
            name=meta.get("name"),
            launch_id=meta.get("launch_id"),
            created_at=created,
            started_at=started,
            ended_at=ended_at if state.is_terminal else None,
            exit_code=exit_code,
            price=Price(
                per_hour=Money.zero("USD"), gpu_count=0, source="static", observed_at=created
            ),
            instance_type="this-machine",
            region="local",
            tags=dict(meta.get("tags") or {}),
            address="localhost",
            detail=detail,
        )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _memory_gb() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return None
    return round(pages * size / 1024**3, 1)


async def _local_gpus() -> list[Gpu]:
    """GPUs ``nvidia-smi`` reports, one entry per device."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        with anyio.fail_after(10):
            result = await anyio.run_process(
                [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"], check=False
            )
    except (OSError, TimeoutError):
        return []
    if result.returncode != 0:
        return []
    from ..kit import normalize_gpu

    gpus = []
    for line in result.stdout.decode(errors="replace").splitlines():
        name, _, memory = line.partition(",")
        gpu = normalize_gpu(name.strip())
        if gpu.memory_gb is None and memory.strip().isdigit():
            import attrs

            gpu = attrs.evolve(gpu, memory_gb=round(int(memory) / 1024, 1))
        gpus.append(gpu)
    return gpus


# --- the supervisor (runs as its own process) ---------------------------------------------------


def _daemonize(directory: Path) -> None:
    """Fork once more so the supervisor is re-parented away from the launcher."""
    if os.fork() > 0:
        os._exit(0)
    _write_json(
        directory / "supervisor.json", {"pid": os.getpid(), "started": _process_start(os.getpid())}
    )


def _supervise(directory: Path) -> int:
    """Start the command, record its process, wait, record its exit. Runs detached."""
    _daemonize(directory)
    meta = _read_json(directory / _META) or {}
    log = (directory / _LOG).open("ab", buffering=0)
    env = {**os.environ, **meta.get("env", {})}
    if (directory / _TERMINATE_MARK).exists():
        _write_json(
            directory / _STATUS,
            {
                "exit_code": None,
                "reason": "terminated",
                "ended_at": _now().isoformat(),
                "detail": "terminated before it started",
            },
        )
        return 0
    try:
        child = subprocess.Popen(
            meta["command"],
            cwd=meta.get("workdir") or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        log.write(f"runctl: cannot start {meta.get('command')!r}: {e}\n".encode())
        _write_json(
            directory / _STATUS,
            {
                "exit_code": 127,
                "reason": "exited",
                "ended_at": _now().isoformat(),
                "detail": f"cannot start the command: {e.strerror}",
            },
        )
        return 0
    _write_json(
        directory / _PROC,
        {
            "pid": child.pid,
            "pgid": child.pid,
            "started": _process_start(child.pid),
            "started_at": _now().isoformat(),
        },
    )
    ttl = meta.get("ttl_seconds")
    reason = "exited"
    detail = None
    try:
        returncode = child.wait(timeout=ttl)
    except subprocess.TimeoutExpired:
        reason, detail = "ttl", f"terminated at its TTL of {ttl:g} s"
        _signal_group(child.pid, signal.SIGTERM)
        _signal_group(child.pid, signal.SIGCONT)
        try:
            returncode = child.wait(timeout=float(meta.get("grace_seconds", 10)))
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
            returncode = child.wait()
    if (directory / _TERMINATE_MARK).exists() and reason == "exited":
        reason, detail = "terminated", "terminated on request"
    elif returncode < 0 and reason == "exited":
        detail = f"killed by {signal.Signals(-returncode).name}"
    # Kill anything the command left behind in its group.
    _signal_group(child.pid, signal.SIGKILL)
    _write_json(
        directory / _STATUS,
        {
            "exit_code": _exit_code(returncode),
            "reason": reason,
            "ended_at": _now().isoformat(),
            "detail": detail,
        },
    )
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through launch() in the tests
    if len(sys.argv) == 3 and sys.argv[1] == "supervise":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(_supervise(Path(sys.argv[2])))
    print("usage: python -m runctl.providers.local supervise DIR", file=sys.stderr)
    sys.exit(2)
