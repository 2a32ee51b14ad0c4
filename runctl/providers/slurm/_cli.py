"""The Slurm command-line transports: the commands on this machine, or on a login node over ssh.

Both run the same argv lists (never a shell string built from user input): here with
:func:`anyio.run_process`; over ssh with the system ``ssh`` client, the argv joined with
:func:`shlex.join` as ssh's remote command (so the login node's shell sees each
argument quoted), through one multiplexed connection per provider object
(``ControlMaster``/``ControlPath``/``ControlPersist``), so ``~/.ssh/config``, the agent,
``ProxyJump`` and keys work as they do for the user. The batch script always goes on
``sbatch``'s stdin. Every command runs under a timeout.

What is read, and from where:

- a job: ``scontrol -o show job ID`` (one ``Key=Value`` line; times as epoch seconds through
  ``SLURM_TIME_FORMAT=%s``); jobs by name: ``squeue --states=all --name=NAME -O ...``;
- the exit code: ``sacct`` when the cluster keeps accounting, else ``scontrol``'s
  ``ExitCode`` (the caller falls back to runctl's marker in the output file);
- nodes: ``sinfo --Node -O ...``;
- the output file: read from a byte offset (``tail -c +N``), locally or over ssh.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import anyio
import attrs

from ...errors import (
    AuthenticationError,
    CapacityError,
    ConfigurationError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    ValidationError,
)
from ._jobs import SlurmJob, SlurmNode, exit_code_from, parse_gres
from ._script import BatchJob

__all__ = ["CliBackend", "Completed", "LocalRunner", "Runner", "SshRunner"]

NAME = "slurm"
#: Output of one command kept for errors (Slurm's messages are short).
_SHOWN = 500
#: The most of an output file read by one call.
READ_LIMIT = 1 << 20


@attrs.frozen
class Completed:
    """A finished command."""

    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """Runs one argv where the Slurm commands are."""

    #: Where, for messages: ``"here"`` or ``"over ssh to HOST"``.
    where: str

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float
    ) -> Completed:
        """Run ``argv`` (stdin given, output captured), at most ``timeout`` seconds."""
        ...

    async def aclose(self) -> None:
        """Release what the runner holds (the ssh master connection)."""
        ...


async def _run_process(argv: Sequence[str], stdin: bytes | None, timeout: float) -> Completed:
    try:
        with anyio.fail_after(timeout):
            # anyio kills the process if this is cancelled or times out.
            if stdin is None:
                result = await anyio.run_process(list(argv), stdin=subprocess.DEVNULL, check=False)
            else:
                result = await anyio.run_process(list(argv), input=stdin, check=False)
    except TimeoutError:
        error = ProviderTimeoutError(
            f"`{argv[0]}` did not finish within {timeout:g} s", provider=NAME
        )
        error.maybe_applied = True
        raise error from None
    except FileNotFoundError as e:
        raise ConfigurationError(
            f"slurm: {argv[0]!r} was not found on this machine's PATH "
            "(install it, or choose another transport)"
        ) from e
    except OSError as e:
        raise ProviderConnectionError(f"cannot run {argv[0]!r}: {e.strerror}", provider=NAME) from e
    return Completed(
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


class LocalRunner:
    """The Slurm commands on this machine (runctl runs on a login node)."""

    where = "here"

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float
    ) -> Completed:
        return await _run_process(argv, stdin, timeout)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return "<LocalRunner>"


#: ssh's own failures (the connection, not the remote command): exit status 255.
_SSH_FAILED = 255
_SSH_NOT_CONNECTED = re.compile(
    r"could not resolve|connection refused|no route to host|connection timed out|"
    r"permission denied|host key verification failed|operation timed out|"
    r"network is unreachable|bad configuration option|no such file",
    re.IGNORECASE,
)


class SshRunner:
    """The Slurm commands on a login node, through the system ``ssh`` client.

    Args:
        host: the destination as the user writes it for ``ssh`` (``login1``,
            ``me@login.cluster.edu``, an alias of ``~/.ssh/config``).
        config_file: ``ssh -F``; default: the user's own.
        identity: ``ssh -i``.
        port: ``ssh -p``.
        options: more ``-o`` options (``Key=Value``).
        control_persist: seconds the shared connection stays open when idle.
        ssh: the ssh executable.
    """

    def __init__(
        self,
        host: str,
        *,
        config_file: str | None = None,
        identity: str | None = None,
        port: int | None = None,
        options: Sequence[str] = (),
        control_persist: int = 60,
        ssh: str = "ssh",
    ) -> None:
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise ValidationError(
                "ssh_host",
                f"{host!r} is not an ssh destination",
                allowed="host, user@host or an alias",
            )
        self.host = host
        self.where = f"over ssh to {host}"
        # One master connection per provider object, in a short private directory
        # (a unix socket path must stay under ~100 bytes).
        base = Path(tempfile.gettempdir()) / f"runctl-ssh-{os.getuid()}"
        base.mkdir(mode=0o700, exist_ok=True)
        self._control = str(base / f"{os.getpid()}-{id(self):x}-%C")
        self._used = False
        common = [ssh]
        if config_file:
            common += ["-F", config_file]
        if identity:
            common += ["-i", identity]
        if port:
            common += ["-p", str(port)]
        for option in options:
            common += ["-o", option]
        common += ["-o", f"ControlPath={self._control}"]
        self._common = common
        self._connect = [
            *common,
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPersist={int(control_persist)}",
            "-o",
            "ServerAliveInterval=15",
        ]

    def __repr__(self) -> str:
        return f"<SshRunner {self.host}>"

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float
    ) -> Completed:
        self._used = True
        # ssh hands the remote side one string for the login shell: quote every word.
        result = await _run_process(
            [*self._connect, "--", self.host, shlex.join(argv)], stdin, timeout
        )
        if result.returncode == _SSH_FAILED:
            message = result.stderr.strip().splitlines()[-1:] or ["ssh failed"]
            error = ProviderConnectionError(
                f"ssh to {self.host} failed: {message[0][:_SHOWN]}", provider=NAME
            )
            # A connection that failed before the command ran certainly did nothing.
            error.maybe_applied = not _SSH_NOT_CONNECTED.search(result.stderr)
            raise error
        return result

    async def aclose(self) -> None:
        """Close this object's master connection (if one was opened)."""
        if not self._used:
            return
        self._used = False
        with anyio.move_on_after(10, shield=True):
            await anyio.run_process([*self._common, "-O", "exit", "--", self.host], check=False)
            # The master exits (and removes its socket) just after it acknowledges.
            prefix = Path(self._control.replace("%C", ""))
            for _ in range(100):
                if not list(prefix.parent.glob(prefix.name + "*")):
                    break
                await _pause(0.02)


async def _pause(seconds: float) -> None:
    """The one wait of this module (a seam for tests)."""
    await anyio.sleep(seconds)


# --- errors --------------------------------------------------------------------------------------

_ERRORS: tuple[tuple[re.Pattern[str], type[ProviderError]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"invalid job id", NotFoundError),
        (
            r"requested node configuration is not available|invalid generic resource|"
            r"node count specification invalid|more processors requested than permitted",
            CapacityError,
        ),
        (
            r"qosmax|assocmax|maxsubmit|job violates accounting/qos policy|qos.*limit",
            QuotaExceededError,
        ),
        (
            r"access/permission denied|invalid user|user not found|authentication",
            AuthenticationError,
        ),
        (
            r"unable to contact slurm controller|socket timed out|connection refused|"
            r"zero bytes were transmitted",
            ProviderConnectionError,
        ),
    )
)
_INVALID_FIELD = re.compile(r"invalid (partition|account|qos)", re.IGNORECASE)


def command_error(argv: Sequence[str], result: Completed) -> ProviderError | ValidationError:
    """The error a failed Slurm command means, from its message."""
    text = result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
    text = text.replace("\n", " | ")[:_SHOWN]
    message = f"`{argv[0]}` failed: {text}"
    invalid = _INVALID_FIELD.search(text)
    if invalid:
        field = invalid.group(1).lower()
        return ValidationError(f"options.{field}", text, allowed=f"a {field} this cluster has")
    for pattern, kind in _ERRORS:
        if pattern.search(text):
            return kind(message, provider=NAME)
    return ProviderError(message, provider=NAME)


# --- parsing -------------------------------------------------------------------------------------

_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


def parse_key_values(line: str) -> dict[str, str]:
    """One ``scontrol -o`` line as a dict (values may hold spaces; keys follow whitespace)."""
    found = list(_KEY.finditer(line))
    pairs = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(line)
        pairs[match.group(1)] = line[match.end() : end].strip()
    return pairs


def _none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "(null)", "None", "N/A", "Unknown", "n/a") else value


def _epoch(value: str | None) -> datetime | None:
    value = _none(value)
    if value is None or not value.isdigit() or int(value) == 0:
        return None
    return datetime.fromtimestamp(int(value), tz=timezone.utc)


def _leading_int(value: str | None) -> int | None:
    match = re.match(r"\d+", value or "")
    return int(match.group()) if match else None


def _minutes(value: str | None) -> int | None:
    """Slurm's ``[days-]hours:minutes:seconds`` (or ``UNLIMITED``) in minutes."""
    value = _none(value)
    if value is None or value.upper() in ("UNLIMITED", "INFINITE"):
        return None
    days = 0
    if "-" in value:
        head, _, value = value.partition("-")
        days = int(head) if head.isdigit() else 0
    parts = [int(p) if p.isdigit() else 0 for p in value.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts[-3:]
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def job_from_scontrol(line: str) -> SlurmJob:
    """A job from one ``scontrol -o show job`` line (times as epoch seconds)."""
    kv = parse_key_values(line)
    code, _, sig = (kv.get("ExitCode") or "").partition(":")
    user = re.match(r"^([^()]*)\((\d+)\)$", kv.get("UserId", ""))
    return SlurmJob(
        job_id=kv.get("JobId", ""),
        user=user.group(1) if user else None,
        uid=int(user.group(2)) if user else None,
        name=_none(kv.get("JobName")),
        comment=_none(kv.get("Comment")),
        state=_none(kv.get("JobState")),
        reason=_none(kv.get("Reason")),
        exit_code=exit_code_from(_leading_int(code), _leading_int(sig)) if code.isdigit() else None,
        nodes=_none(kv.get("NodeList")),
        node_count=_leading_int(kv.get("NumNodes")),
        partition=_none(kv.get("Partition")),
        submitted_at=_epoch(kv.get("SubmitTime")),
        started_at=_epoch(kv.get("StartTime")),
        ended_at=_epoch(kv.get("EndTime")),
        gres=_none(kv.get("TresPerNode")),
        stdout=_none(kv.get("StdOut")),
        time_limit_minutes=_minutes(kv.get("TimeLimit")),
    )


_SQUEUE_FIELDS = (
    "JobID",
    "Name",
    "State",
    "Reason",
    "NodeList",
    "NumNodes",
    "Partition",
    "SubmitTime",
    "StartTime",
    "EndTime",
    "tres-per-node",
    "STDOUT",
    "TimeLimit",
    "Comment",
)


def job_from_squeue(line: str) -> SlurmJob | None:
    """A job from one ``squeue -O`` line of :data:`_SQUEUE_FIELDS` (the comment last, so a
    ``|`` in someone's comment cannot shift the other fields). squeue has no exit code."""
    values = line.split("|", len(_SQUEUE_FIELDS) - 1)
    if len(values) < len(_SQUEUE_FIELDS) or not values[0].strip().isdigit():
        return None
    row = {k: v.strip() for k, v in zip(_SQUEUE_FIELDS, values)}
    stdout = _none(row["STDOUT"])
    return SlurmJob(
        job_id=row["JobID"],
        name=_none(row["Name"]),
        comment=_none(row["Comment"]),
        state=_none(row["State"]),
        reason=_none(row["Reason"]),
        nodes=_none(row["NodeList"]),
        node_count=_leading_int(row["NumNodes"]),
        partition=_none(row["Partition"]),
        submitted_at=_epoch(row["SubmitTime"]),
        started_at=_epoch(row["StartTime"]),
        ended_at=_epoch(row["EndTime"]),
        gres=_none(row["tres-per-node"]),
        stdout=stdout.replace("%j", row["JobID"]) if stdout else None,
        time_limit_minutes=_minutes(row["TimeLimit"]),
    )


_SACCT_FIELDS = (
    "JobIDRaw",
    "JobName",
    "State",
    "ExitCode",
    "Submit",
    "Start",
    "End",
    "NNodes",
    "NodeList",
    "Partition",
)


def job_from_sacct(line: str) -> SlurmJob | None:
    """A job from one ``sacct --parsable2`` line of :data:`_SACCT_FIELDS`."""
    values = line.split("|")
    if len(values) < len(_SACCT_FIELDS):
        return None
    row = dict(zip(_SACCT_FIELDS, values))
    code, _, sig = row["ExitCode"].partition(":")
    return SlurmJob(
        job_id=row["JobIDRaw"],
        name=_none(row["JobName"]),
        state=_none(row["State"]),
        exit_code=exit_code_from(_leading_int(code), _leading_int(sig)) if code.isdigit() else None,
        node_count=_leading_int(row["NNodes"]),
        nodes=_none(row["NodeList"]),
        partition=_none(row["Partition"]),
        submitted_at=_epoch(row["Submit"]),
        started_at=_epoch(row["Start"]),
        ended_at=_epoch(row["End"]),
    )


_SINFO_FIELDS = ("NodeList", "Partition", "Gres", "GresUsed", "CPUs", "Memory", "StateLong")


def nodes_from_sinfo(text: str) -> list[SlurmNode]:
    """Nodes from ``sinfo --Node -O`` with :data:`_SINFO_FIELDS`, ``|``-separated.

    A node in several partitions is listed once per partition; they are merged.
    """
    nodes: dict[str, SlurmNode] = {}
    for line in text.splitlines():
        values = [v.strip() for v in line.split("|")]
        if len(values) < len(_SINFO_FIELDS):
            continue
        row = dict(zip(_SINFO_FIELDS, values))
        name = row["NodeList"]
        partition = row["Partition"].rstrip("*")
        known = nodes.get(name)
        if known is not None:
            nodes[name] = attrs.evolve(known, partitions=(*known.partitions, partition))
            continue
        used = parse_gres(row["GresUsed"])
        nodes[name] = SlurmNode(
            name=name,
            partitions=(partition,),
            gpus=tuple(parse_gres(_none(row["Gres"]))),
            gpus_used=sum(count for _, count in used) if used else None,
            cpus=_leading_int(row["CPUs"]),
            memory_mb=_leading_int(row["Memory"]),
            state=row["StateLong"].lower() or "unknown",
        )
    return list(nodes.values())


# --- the backend ---------------------------------------------------------------------------------

#: Epoch seconds in every time Slurm prints (the login node's time zone never matters).
_TIME_FORMAT = ("env", "SLURM_TIME_FORMAT=%s")


class CliBackend:
    """The provider's operations through the Slurm commands, run by ``runner``.

    Args:
        runner: where the commands run.
        timeout: seconds each command may take.
        accounting: ``True``/``False`` to say whether ``sacct`` works; ``None`` to find out.
    """

    def __init__(self, runner: Runner, *, timeout: float = 60.0, accounting: bool | None = None):
        self.runner = runner
        self.timeout = timeout
        self._accounting = accounting
        self.transport = "ssh" if isinstance(runner, SshRunner) else "local"
        #: The user the commands run as (here: this process's; over ssh: learnt with the
        #: output directory).
        self.uid: int | None = os.getuid() if isinstance(runner, LocalRunner) else None

    def __repr__(self) -> str:
        return f"<CliBackend {self.runner!r}>"

    async def _run(self, argv: Sequence[str], *, stdin: bytes | None = None) -> Completed:
        return await self.runner.run(argv, stdin=stdin, timeout=self.timeout)

    async def _check(self, argv: Sequence[str], *, stdin: bytes | None = None) -> str:
        result = await self._run(argv, stdin=stdin)
        if result.returncode != 0:
            raise command_error(argv, result)
        return result.stdout

    async def output_dir(self, wanted: str) -> str:
        """``wanted`` made absolute on the cluster (relative: to the home directory), created."""
        if wanted.startswith("~/"):
            wanted = wanted[2:]
        if isinstance(self.runner, LocalRunner):
            path = Path(wanted) if Path(wanted).is_absolute() else Path.home() / wanted
            path.mkdir(parents=True, exist_ok=True)
            return str(path.resolve())
        # ssh starts in the home directory: a relative path is under it. The same round
        # trip says who we are there (list shows only that user's jobs).
        out = await self._check(
            ["sh", "-c", 'mkdir -p -- "$1" && cd -- "$1" && pwd -P && id -u', "runctl", wanted]
        )
        where, _, uid = out.strip().rpartition("\n")
        if uid.strip().isdigit():
            self.uid = int(uid)
        return where.strip()

    async def submit(self, job: BatchJob) -> str:
        out = await self._check(job.sbatch_argv(), stdin=job.script.encode())
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise ProviderError(
                f"sbatch answered {out.strip()[:_SHOWN]!r}, not a job id", provider=NAME
            )
        return job_id

    async def job(self, job_id: str) -> SlurmJob | None:
        """The job as slurmctld knows it; ``None`` once it is no longer kept (MinJobAge)."""
        argv = [*_TIME_FORMAT, "scontrol", "-o", "show", "job", job_id]
        result = await self._run(argv)
        if result.returncode != 0:
            error = command_error(argv[2:], result)
            if isinstance(error, NotFoundError):
                return None
            raise error
        lines = [line for line in result.stdout.splitlines() if line.startswith("JobId=")]
        # A job array or het job prints several lines: the first is the job itself.
        return job_from_scontrol(lines[0]) if lines else None

    async def jobs(self) -> list[SlurmJob]:
        """The jobs slurmctld keeps of this user (runctl filters its own by their comment)."""
        argv = [*_TIME_FORMAT, "scontrol", "-o", "show", "job"]
        result = await self._run(argv)
        if result.returncode != 0:
            if "no jobs in the system" in result.stdout.lower() + result.stderr.lower():
                return []
            raise command_error(argv[2:], result)
        lines = [line for line in result.stdout.splitlines() if line.startswith("JobId=")]
        jobs = [job_from_scontrol(line) for line in lines]
        return [job for job in jobs if self.uid is None or job.uid in (None, self.uid)]

    async def find(self, name: str) -> list[SlurmJob]:
        """Jobs named ``name``, in any state slurmctld keeps: one ``squeue --name``."""
        fields = ",".join(f"{f}:0|" for f in _SQUEUE_FIELDS[:-1]) + f",{_SQUEUE_FIELDS[-1]}:0"
        out = await self._check(
            [
                *_TIME_FORMAT,
                "squeue",
                "--noheader",
                "--states=all",
                f"--name={name}",
                f"--Format={fields}",
            ]
        )
        jobs = [job_from_squeue(line) for line in out.splitlines()]
        return [job for job in jobs if job is not None]

    async def accounting(self, job_id: str) -> SlurmJob | None:
        """The job from ``sacct``; ``None`` without accounting or when it has no record."""
        if self._accounting is False:
            return None
        argv = [
            *_TIME_FORMAT,
            "sacct",
            "--noheader",
            "--parsable2",
            "--allocations",
            f"--jobs={job_id}",
            f"--format={','.join(_SACCT_FIELDS)}",
        ]
        result = await self._run(argv)
        text = result.stdout + result.stderr
        if result.returncode != 0:
            if re.search(r"accounting storage is disabled|slurmdbd", text, re.IGNORECASE):
                self._accounting = False
                return None
            raise command_error(argv[2:], result)
        self._accounting = True
        for line in result.stdout.splitlines():
            job = job_from_sacct(line)
            if job is not None and job.job_id == job_id:
                return job
        return None

    async def cancel(self, job_id: str) -> None:
        await self._check(["scancel", job_id])

    async def suspend(self, job_id: str) -> None:
        await self._check(["scontrol", "suspend", job_id])

    async def resume(self, job_id: str) -> None:
        await self._check(["scontrol", "resume", job_id])

    async def nodes(self) -> list[SlurmNode]:
        fields = ",".join(f"{name}:0|" for name in _SINFO_FIELDS)
        out = await self._check(["sinfo", "--noheader", "--Node", f"--Format={fields}"])
        return nodes_from_sinfo(out)

    async def read(
        self, path: str, offset: int, limit: int = READ_LIMIT, *, tail: int | None = None
    ) -> bytes | None:
        """Up to ``limit`` bytes of the file at ``path`` from ``offset`` (or its last
        ``tail`` bytes); ``None`` if it does not exist. One command over ssh."""
        if isinstance(self.runner, LocalRunner):
            return await read_local(path, offset, limit, tail=tail)
        # tail -c N: the last N bytes; tail -c +N: from byte N (1-based).
        start = str(tail) if tail is not None else f"+{offset + 1}"
        result = await self._run(
            [
                "sh",
                "-c",
                '[ -e "$2" ] || exit 3; tail -c "$1" -- "$2" | head -c "$3"',
                "runctl",
                start,
                path,
                str(limit),
            ]
        )
        if result.returncode == 3:
            return None
        if result.returncode != 0:
            raise command_error(["tail"], result)
        return result.stdout.encode(errors="surrogateescape")

    async def aclose(self) -> None:
        await self.runner.aclose()


async def read_local(
    path: str, offset: int, limit: int = READ_LIMIT, *, tail: int | None = None
) -> bytes | None:
    """Up to ``limit`` bytes of a local file from ``offset`` (or its last ``tail`` bytes);
    ``None`` if absent."""
    try:
        async with await anyio.open_file(path, "rb") as f:
            if tail is not None:
                size = (await anyio.Path(path).stat()).st_size
                offset = max(0, size - tail)
            await f.seek(offset)
            return await f.read(limit)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ProviderError(f"cannot read {path}: {e.strerror}", provider=NAME) from e
