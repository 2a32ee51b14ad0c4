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
An argv (``["python", "train.py"]``) runs exactly as given; a shell command
(``LaunchSpec(command="python train.py && echo done")``, ``spec.shell``) runs
under ``/bin/sh -c``. A one-item list is an argv too: it never meets a shell.

The job's environment is ``spec.env``, ``RUNCTL_LAUNCH_ID``, ``RUNCTL_RESOURCE_ID``
and, from the launching process, only what a program needs to run here:
``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``SHELL``, ``LANG``, ``LANGUAGE``, ``TZ``,
``TERM``, ``TMPDIR``, ``PYTHONPATH``, ``VIRTUAL_ENV``, ``CONDA_PREFIX``,
``CONDA_DEFAULT_ENV`` and every ``LC_*`` and ``CUDA_*`` variable (plus the names
in the ``pass_env`` setting). Nothing else is inherited, so the launcher's
credentials (``RUNPOD_API_KEY``, ``AWS_SECRET_ACCESS_KEY`` ...) never reach a job
that was not given them. The environment is handed to the supervisor through a
pipe and never written to disk; ``meta.json`` holds no env values. Every file
under the resource's directory is readable by the user only (0600, directories 0700).

The supervisor holds an exclusive lock on ``supervisor.lock`` for its whole life
(the launcher holds it from before the directory appears until the supervisor
has it), so any process can tell a starting resource from one whose supervisor
died: a resource is never left "provisioning" by a killed launcher or supervisor.
The command runs in a session of its own; terminating kills the whole session
(background children included) and returns once none of it is left.

Settings (``[providers.local]`` in the config file, or ``spec.options``):
``grace_seconds`` — how long ``terminate`` waits after SIGTERM before SIGKILL (10);
``max_log_mb`` — ``output.log`` is rotated to ``output.log.1`` when it reaches this
size (100); ``log_backups`` — how many rotated logs are kept (1; 0 truncates), so
a job's output never takes more than ``max_log_mb * (log_backups + 1)`` MB;
``pass_env`` — more variable names (comma-separated) a job inherits.

State table (raw state → runctl state):

===================  =============
raw                  state
===================  =============
``starting``         PROVISIONING
``running``          RUNNING
``unsupervised``     RUNNING (its supervisor died: the TTL is left to ``runctl cleanup``)
``stopped``          STOPPED
``terminating``      TERMINATING
``exited``           SUCCEEDED (code 0) or FAILED
``terminated``       TERMINATED (terminate or TTL)
``lost``             FAILED (the supervisor died without recording an exit)
===================  =============
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import anyio

from ..config import ProviderConfig, open_private, private_dir
from ..cost import Money, Price
from ..errors import (
    CapacityError,
    ConfigurationError,
    MalformedResponseError,
    NotFoundError,
    ProviderError,
    UnsupportedOperationError,
    ValidationError,
)
from ..kit import Availability, ProviderBase, StateTable, refuse_unsupported_nodes, utcnow
from ..models import Capabilities, Gpu, LaunchSpec, Offer, OfferQuery, Resource, ResourceState

__all__ = ["LocalProvider"]

logger = logging.getLogger("runctl.providers.local")

NAME = "local"
_STATES = StateTable(
    NAME,
    {
        "starting": ResourceState.PROVISIONING,
        "running": ResourceState.RUNNING,
        "unsupervised": ResourceState.RUNNING,  # the job runs, its supervisor died
        "stopped": ResourceState.STOPPED,
        "terminating": ResourceState.TERMINATING,
        "exited": ResourceState.SUCCEEDED,  # FAILED when the exit code is not 0 (_observe)
        "terminated": ResourceState.TERMINATED,
        "lost": ResourceState.FAILED,
    },
    case_sensitive=True,
)
_META, _PROC, _STATUS, _LOG = "meta.json", "process.json", "status.json", "output.log"
_LOCK = "supervisor.lock"
_TERMINATE_MARK, _STOP_MARK = "terminate-requested", "stopped"
#: A resource id is "local-" and a launch id (what LaunchSpec allows), nothing longer.
_RESOURCE_ID = re.compile(r"local-[A-Za-z0-9_-]{1,64}")
#: What a job inherits from the launcher's environment (see the module docstring).
_BASE_ENV = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
    "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
})
_BASE_ENV_PREFIXES = ("LC_", "CUDA_")
_MB = 1024 * 1024


_now = utcnow


def _clock() -> float:
    """The one monotonic clock of this module (the time seam)."""
    return time.monotonic()


async def _sleep(seconds: float) -> None:
    """The one sleep of this module (the time seam)."""
    await anyio.sleep(seconds)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # Write-then-rename so a reader never sees half a file.
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data))
    os.replace(tmp, path)


def _touch(path: Path) -> None:
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT))


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


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the job and whatever it started)."""
    if not Path("/proc/self/stat").exists():  # pragma: no cover - no /proc (macOS)
        return [sid] if _alive(sid) else []
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        # Fields after the name: state, ppid, pgrp, session ...
        if fields and len(fields) > 3 and fields[3] == str(sid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_session(sid: int, sig: signal.Signals) -> None:
    """Signal the job's process group and every process left in its session.

    A child that made a process group of its own is still in the session.
    """
    _signal_group(sid, sig)
    for pid in _session_members(sid):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _supervised(directory: Path) -> bool | None:
    """Whether the supervisor holds its lock; ``None`` when the resource has no lock file."""
    try:
        fd = os.open(directory / _LOCK, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        # A shared lock is granted unless someone holds the exclusive one: the supervisor.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the shared lock, if taken
    return False


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


def _log_paths(directory: Path) -> list[Path]:
    """The log files, oldest first: rotated ones (``output.log.N`` ... ``.1``), then the current."""
    rotated = []
    for entry in directory.glob(_LOG + ".*"):
        suffix = entry.name[len(_LOG) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), entry))
    return [path for _, path in sorted(rotated, reverse=True)] + [directory / _LOG]


class _LineSplitter:
    """Bytes in, complete lines out, in time linear in the bytes (however long a line is)."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        start = len(self._pending)
        self._pending += chunk
        lines = []
        begin = 0
        # Only the new bytes are searched: a 100 MB line is scanned once, not per chunk.
        at = self._pending.find(b"\n", start)
        while at >= 0:
            lines.append(self._pending[begin:at].decode("utf-8", "replace"))
            begin = at + 1
            at = self._pending.find(b"\n", begin)
        if begin:
            del self._pending[:begin]
        return lines

    def rest(self) -> str | None:
        if not self._pending:
            return None
        text = self._pending.decode("utf-8", "replace")
        self._pending.clear()
        return text


class LocalProvider(ProviderBase):
    """Runs commands as subprocesses of this machine. See the module docstring."""

    name: ClassVar[str] = NAME
    #: Keys read from ``[providers.local]`` (``runctl doctor`` flags others).
    setting_keys: ClassVar[tuple[str, ...]] = ("grace_seconds",)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.root = config.state_dir
        self.grace_seconds = _grace_seconds(config)
        self.max_log_mb = _setting_number(config, "max_log_mb", 100.0)
        self.log_backups = int(_setting_number(config, "log_backups", 1.0, zero_ok=True))
        names = config.setting("pass_env", default="") or ""
        self.pass_env = frozenset(n.strip() for n in names.split(",") if n.strip())

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
        if not isinstance(resource_id, str) or not _RESOURCE_ID.fullmatch(resource_id):
            shown = resource_id if len(str(resource_id)) <= 80 else f"{str(resource_id)[:60]}..."
            raise NotFoundError(
                f"{shown!r} is not a local resource id (local-<launch id>)", provider=NAME
            )
        return self.root / resource_id

    def _job_env(self, spec: LaunchSpec, resource_id: str) -> dict[str, str]:
        environ = self.config.environ
        inherited = {
            k: v
            for k, v in environ.items()
            if k in _BASE_ENV or k in self.pass_env or k.startswith(_BASE_ENV_PREFIXES)
        }
        return {
            **inherited,
            **spec.env,
            "RUNCTL_LAUNCH_ID": spec.launch_id,
            "RUNCTL_RESOURCE_ID": resource_id,
        }

    async def launch(self, spec: LaunchSpec) -> Resource:
        refuse_unsupported_nodes(self, spec)
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
        if (directory / _META).exists():
            # Idempotent launch: the same launch id is the same resource.
            return await self._await_started(resource_id)
        # A shell command is the explicit form (spec.shell); an argv never meets a shell.
        command = ["/bin/sh", "-c", spec.command[0]] if spec.shell else list(spec.command)
        grace = _option_number(spec, "grace_seconds", self.grace_seconds)
        meta = {
            "id": resource_id,
            "name": spec.name,
            "launch_id": spec.launch_id,
            "command": command,
            "workdir": str(workdir),
            # Names only: values may be secrets, and reach the supervisor through a pipe.
            "env_names": sorted(spec.env),
            "tags": spec.runctl_tags,
            "ttl_seconds": spec.ttl.total_seconds() if spec.ttl else None,
            "grace_seconds": grace,
            "max_log_bytes": int(_option_number(spec, "max_log_mb", self.max_log_mb) * _MB),
            "log_backups": int(
                _option_number(spec, "log_backups", self.log_backups, zero_ok=True)
            ),
            "created_at": _now().isoformat(),
        }
        try:
            private_dir(self.root)
            staging = Path(tempfile.mkdtemp(prefix=f".{resource_id}.", dir=self.root))
        except OSError as e:
            raise ProviderError(f"cannot create {self.root}: {e}", provider=NAME) from e
        lock: int | None = None
        unpublished: Path | None = staging
        try:
            # Everything is prepared aside and then renamed into place in one step, so a
            # crash can never leave a resource directory without its metadata (which
            # would burn the launch id), and the launcher holds the supervisor's lock
            # from before anyone can see the resource until the supervisor holds it.
            _write_json(staging / _META, meta)
            lock = open_private(staging / _LOCK, os.O_RDWR | os.O_CREAT)
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self._publish(staging, directory):
                return await self._await_started(resource_id)
            unpublished = None
            env = self._job_env(spec, resource_id)
            errors = open_private(directory / "supervisor.log")
            try:
                # The supervisor double-forks (see _daemonize), so it is nobody's child
                # here: it outlives this process and is never left as a zombie.
                result = await anyio.run_process(
                    [sys.executable, "-m", "runctl.providers.local", "supervise",
                     str(directory), str(lock)],
                    input=json.dumps(env).encode(),
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    start_new_session=True,
                    pass_fds=(lock,),
                    check=False,
                )
            finally:
                os.close(errors)
            if result.returncode != 0:
                logger.warning("local: the supervisor of %s exited with %s; see %s",
                               resource_id, result.returncode, directory / "supervisor.log")
        except OSError as e:
            raise ProviderError(f"cannot launch {resource_id}: {e}", provider=NAME) from e
        finally:
            if lock is not None:
                os.close(lock)  # the supervisor holds the lock now (or has died)
            if unpublished is not None:
                shutil.rmtree(unpublished, ignore_errors=True)
        return await self._await_started(resource_id)

    def _publish(self, staging: Path, directory: Path) -> bool:
        """Rename ``staging`` to ``directory``; False when another launch got there first."""
        for _ in range(2):
            try:
                os.rename(staging, directory)
                return True
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            if (directory / _META).exists():
                return False
            # A directory without metadata, left by an older runctl that crashed
            # between mkdir and writing it: moved aside, so the launch id is not burned.
            os.rename(directory, staging.with_name(f"{staging.name}.stale"))
        return False

    async def _await_started(self, resource_id: str, timeout: float = 15.0) -> Resource:
        # PROVISIONING means the supervisor holds its lock and is starting the command:
        # it ends either way (running, or lost once the lock is free).
        deadline = _clock() + timeout
        while True:
            resource = self._observe(resource_id)
            if resource.state is not ResourceState.PROVISIONING or _clock() > deadline:
                return resource
            await _sleep(0.02)

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
        proc = _read_json(directory / _PROC)
        sid = int(proc["pgid"]) if proc else None
        if resource.is_terminal and not (sid and _session_members(sid)):
            return resource
        try:
            _touch(directory / _TERMINATE_MARK)
        except OSError as e:  # a read-only or full home: the signals below still end it
            logger.warning("local: cannot mark %s as terminating: %s", resource_id, e)
        if proc is None:
            # Still starting: the supervisor checks the mark before it starts the command.
            resource = await self._await_started(resource_id)
            proc = _read_json(directory / _PROC)
            if proc is None:
                if not _supervised(directory):
                    self._record_end(directory, "terminated before it started")
                return self._observe(resource_id)
            sid = int(proc["pgid"])
        assert sid is not None
        meta = _read_json(directory / _META) or {}
        grace = float(meta.get("grace_seconds", self.grace_seconds))
        _signal_session(sid, signal.SIGTERM)
        _signal_session(sid, signal.SIGCONT)  # a stopped process must wake to see SIGTERM
        if not await self._wait_gone(directory, sid, grace):
            _signal_session(sid, signal.SIGKILL)
            await self._wait_gone(directory, sid, 5.0)
        if not _session_members(sid) and not _supervised(directory):
            # Nobody is left to record the end (the supervisor had died): record it here.
            self._record_end(directory, "terminated on request (its supervisor had died)")
        # Still TERMINATING if anything of the session survived: the caller asks again.
        return self._observe(resource_id)

    def _record_end(self, directory: Path, detail: str) -> None:
        if (directory / _STATUS).exists():
            return
        try:
            _write_json(
                directory / _STATUS,
                {"exit_code": None, "reason": "terminated", "ended_at": _now().isoformat(),
                 "detail": detail},
            )
        except OSError as e:  # nothing runs any more; it shows as lost (FAILED) instead
            logger.warning("local: cannot record the end of %s: %s", directory.name, e)

    async def _wait_gone(self, directory: Path, sid: int, seconds: float) -> bool:
        """Wait until nothing of the session runs and the end is recorded (or cannot be)."""
        deadline = _clock() + seconds
        while True:
            if not _session_members(sid) and (
                (directory / _STATUS).exists() or not _supervised(directory)
            ):
                return True
            if _clock() >= deadline:
                return False
            await _sleep(0.05)

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
            _touch(directory / _STOP_MARK)
            _signal_session(int(proc["pgid"]), signal.SIGSTOP)
            # Signals are delivered asynchronously: report STOPPED once it is true.
            deadline = _clock() + 5
            while _clock() < deadline:
                fields = _proc_stat(int(proc["pid"]))
                if fields is None or fields[0] in ("T", "t", "Z", "X"):
                    break
                await _sleep(0.01)
        else:
            _signal_session(int(proc["pgid"]), signal.SIGCONT)
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
            await _sleep(0.05)
        lines = _LineSplitter()
        # What was rotated away first (oldest first), then the current log.
        for old in _log_paths(directory)[:-1]:
            try:
                with old.open("rb") as f:
                    while chunk := f.read(65536):
                        for line in lines.feed(chunk):
                            yield line
            except FileNotFoundError:  # rotated away meanwhile
                continue
        f = path.open("rb")
        try:
            while True:
                chunk = f.read(65536)
                if chunk:
                    for line in lines.feed(chunk):
                        yield line
                    continue
                if not follow:
                    break
                if _rotated(f, path):
                    # The supervisor rotated the log: this file is complete; go on with the new one.
                    f.close()
                    f = path.open("rb")
                    continue
                if self._observe(resource_id).is_terminal:
                    # The process has ended: read what it wrote last, then stop.
                    for line in lines.feed(f.read()):
                        yield line
                    break
                await _sleep(0.1)
        finally:
            f.close()
        rest = lines.rest()
        if rest is not None:
            yield rest

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
        supervised = _supervised(directory)
        if supervised is None:  # made by an older runctl, before the lock: its pid file
            supervisor = _read_json(directory / "supervisor.json") or {}
            supervised = _alive(supervisor.get("pid"), supervisor.get("started"))
            legacy_starting = not supervisor
        else:
            legacy_starting = False
        exit_code: int | None = None
        detail: str | None = None
        ended_at = None
        job_alive = proc is not None and (
            _alive(proc.get("pid"), proc.get("started")) or bool(_session_members(proc["pgid"]))
        )
        if status is not None:
            exit_code = status.get("exit_code")
            ended_at = _parse_time(status.get("ended_at"))
            detail = status.get("detail")
            raw = "terminated" if status.get("reason") in ("terminated", "ttl") else "exited"
        elif job_alive:
            if (directory / _TERMINATE_MARK).exists():
                raw = "terminating"
            elif (directory / _STOP_MARK).exists():
                raw = "stopped"
            elif not supervised:
                raw = "unsupervised"
                detail = ("its supervisor died: the TTL is no longer enforced on this machine; "
                          "`runctl cleanup` enforces it, `runctl terminate` ends it")
            else:
                raw = "running"
        elif supervised:
            # Between the command's end and the supervisor recording it, it is still
            # running as far as anyone can tell (unless a terminate was asked for).
            if proc is None:
                raw = "starting"
            else:
                raw = "terminating" if (directory / _TERMINATE_MARK).exists() else "running"
        elif legacy_starting and proc is None:
            raw = "starting"
        else:
            raw = "lost"
            detail = (
                "the supervisor died before starting the command" if proc is None
                else "the supervisor died without recording an exit code"
            )
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


def _setting_number(
    config: ProviderConfig, key: str, default: float, *, zero_ok: bool = False
) -> float:
    raw = config.setting(key, default=str(default))
    try:
        value = float(raw or default)
    except ValueError:
        value = -1.0
    if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):
        from ..errors import ConfigurationError

        low = ">= 0" if zero_ok else "> 0"
        raise ConfigurationError(f"[providers.local] {key}: {raw!r} is not a number {low}")
    return value


def _option_number(
    spec: LaunchSpec, key: str, default: float, *, zero_ok: bool = False
) -> float:
    raw = spec.options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):
        low = ">= 0" if zero_ok else "> 0"
        raise ValidationError(f"options.{key}", f"{raw!r} is invalid", allowed=f"a number {low}")
    return value


def _rotated(f: Any, path: Path) -> bool:
    """Whether ``path`` is no longer the file ``f`` reads (the log was rotated)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


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


class _Log:
    """The job's output file, rotated at ``cap`` bytes, keeping ``backups`` older files."""

    def __init__(self, directory: Path, cap: int, backups: int) -> None:
        self.path = directory / _LOG
        self.cap = max(cap, 1)
        self.backups = max(backups, 0)
        self.fd = open_private(self.path)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        while data:
            room = self.cap - self.size
            if room <= 0:
                try:
                    self._rotate()
                except OSError:  # a full or read-only disk: the output is lost, not the run
                    return
                continue
            part = data[:room]
            try:
                written = os.write(self.fd, part)
            except OSError:  # disk full: the job goes on; its output is lost, not its run
                return
            self.size += written
            data = data[written:]

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.backups:
            for n in range(self.backups, 0, -1):
                older = self.path.with_name(f"{_LOG}.{n - 1}") if n > 1 else self.path
                if older.exists():
                    os.replace(older, self.path.with_name(f"{_LOG}.{n}"))
            self.fd = open_private(self.path)
        else:
            self.fd = open_private(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.size = 0

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:  # already closed by a rotation that could not reopen
            pass


def _daemonize(directory: Path) -> None:
    """Fork once more so the supervisor is re-parented away from the launcher."""
    child = os.fork()
    if child > 0:
        # Written before the launcher sees this process end, so it is never missing.
        _write_json(directory / "supervisor.json", {"pid": child, "started": _process_start(child)})
        os._exit(0)


def _supervise(directory: Path, lock: int) -> int:
    """Start the command, record its process, wait, record its exit. Runs detached.

    ``lock`` is the open file holding the exclusive lock on ``supervisor.lock``,
    inherited from the launcher; it stays open (and locked) for this process's life.
    """
    env = json.loads(sys.stdin.buffer.read() or b"{}")
    os.set_inheritable(lock, False)  # the job must not hold the supervisor's lock
    _daemonize(directory)
    meta = _read_json(directory / _META) or {}
    log = _Log(
        directory, int(meta.get("max_log_bytes", 100 * _MB)), int(meta.get("log_backups", 1))
    )
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
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(
            meta["command"],
            cwd=meta.get("workdir") or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
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
    finally:
        os.close(write_end)
    _write_json(
        directory / _PROC,
        {
            "pid": child.pid,
            "pgid": child.pid,
            "started": _process_start(child.pid),
            "started_at": _now().isoformat(),
        },
    )
    # The job's exit wakes the loop below through a pipe (no polling).
    wake_read, wake_write = os.pipe()
    exited: list[int] = []

    def reap() -> None:
        exited.append(child.wait())
        os.write(wake_write, b"x")

    threading.Thread(target=reap, daemon=True).start()
    ttl = float(meta["ttl_seconds"]) if meta.get("ttl_seconds") is not None else None
    grace = float(meta.get("grace_seconds", 10))
    # When the next step is due: the TTL, then the end of the grace after SIGTERM.
    due = None if ttl is None else _clock() + ttl
    step = "ttl"
    reason, detail = "exited", None
    output_open = True
    while not exited:
        timeout = None if due is None else max(due - _clock(), 0.0)
        watched = [wake_read] + ([read_end] if output_open else [])
        ready, _, _ = select.select(watched, [], [], timeout)
        if read_end in ready:
            chunk = os.read(read_end, 65536)
            if chunk:
                log.write(chunk)
            else:
                output_open = False
        if due is None or _clock() < due:  # checked even when output is ready: a chatty job
            continue
        if step == "ttl":
            reason, detail = "ttl", f"terminated at its TTL of {ttl:g} s"
            _signal_session(child.pid, signal.SIGTERM)
            _signal_session(child.pid, signal.SIGCONT)
            step, due = "grace", _clock() + grace
        else:
            _signal_session(child.pid, signal.SIGKILL)
            due = None
    returncode = exited[0]
    # Kill anything the command left behind in its session, then keep what it wrote.
    _signal_session(child.pid, signal.SIGKILL)
    while output_open:
        ready, _, _ = select.select([read_end], [], [], 2.0)
        chunk = os.read(read_end, 65536) if ready else b""
        if chunk:
            log.write(chunk)
        else:
            output_open = False  # end of output, or a writer that escaped the session
    log.close()
    if (directory / _TERMINATE_MARK).exists() and reason == "exited":
        reason, detail = "terminated", "terminated on request"
    elif returncode < 0 and reason == "exited":
        detail = f"killed by {signal.Signals(-returncode).name}"
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
    if len(sys.argv) == 4 and sys.argv[1] == "supervise":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(_supervise(Path(sys.argv[2]), int(sys.argv[3])))
    print("usage: python -m runctl.providers.local supervise DIR LOCK_FD", file=sys.stderr)
    sys.exit(2)
