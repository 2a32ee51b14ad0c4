"""From a LaunchSpec to a Slurm batch job: the script, ``sbatch``'s arguments, slurmrestd's body.

A launch becomes one :class:`BatchJob`. Its directives (nodes, GPUs, time, partition
...) travel as ``sbatch`` options on the command line (CLI transports) or as fields of
the job description (REST), never as ``#SBATCH`` lines, so no value is ever parsed as
script text. The script itself (:func:`batch_script`) exports the env, prints runctl's
start marker, runs the command (on one node directly, on several with ``srun``, one
task per node, the rendezvous variables set on each), then prints the exit marker.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs

from ...errors import ValidationError
from ...kit import shell_command
from ...rendezvous import DEFAULT_PORT

__all__ = ["BatchJob", "GPU_REQUESTS", "batch_script", "memory_mb", "time_minutes"]

#: How GPUs are asked for: ``--gres=gpu:TYPE:N`` or ``--gpus-per-node=TYPE:N``.
GPU_REQUESTS = ("gres", "gpus-per-node")

#: A value passed to Slurm as one option (partition, account, QOS, GPU type ...).
_WORD = re.compile(r"^[A-Za-z0-9_.+@%-][A-Za-z0-9_.+@%:/-]{0,127}$")
_MEMORY = re.compile(r"^(\d+)([KMGT]?)B?$", re.IGNORECASE)
_MEMORY_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


def check_word(field: str, value: str) -> str:
    """``value`` if it is a plain Slurm name (no spaces, quotes or newlines)."""
    if not isinstance(value, str) or not _WORD.match(value):
        raise ValidationError(
            field,
            f"{value!r} is not a Slurm name",
            allowed="letters, digits and . _ - + @ % : / (no spaces)",
        )
    return value


def memory_mb(field: str, value: str) -> int:
    """Memory as Slurm's ``--mem`` takes it (``16G``, ``500M``, ``2000``: MB) in MB."""
    match = _MEMORY.match(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise ValidationError(
            field, f"{value!r} is not an amount of memory", allowed="e.g. 16G, 500M, 2000 (MB)"
        )
    return max(1, math.ceil(int(match.group(1)) * _MEMORY_MB[match.group(2).upper()]))


def time_minutes(ttl: timedelta) -> int:
    """A TTL as Slurm's time limit: whole minutes, rounded up (Slurm's unit), at least 1."""
    return max(1, math.ceil(ttl.total_seconds() / 60))


def batch_script(
    command: Sequence[str],
    *,
    shell: bool = False,
    launch_id: str,
    env: Mapping[str, str],
    nodes: int = 1,
    port: int = DEFAULT_PORT,
) -> str:
    """The batch script of a launch.

    Args:
        command: the user's command (an argv, or one string for ``sh -c``).
        launch_id: named in the markers (``[runctl:<launch id>] start`` / ``exit N``).
        env: exported before the command runs (values quoted with :func:`shlex.quote`).
        nodes: above 1, the command runs once per node under ``srun`` with the rendezvous
            variables of :mod:`runctl.rendezvous` set from Slurm's own.
        port: ``MASTER_PORT``.

    Returns:
        A bash script (``#!/bin/bash``).
    """
    lines = ["#!/bin/bash", f"# runctl launch {launch_id}"]
    for key, value in env.items():
        lines.append(f"export {key}={shlex.quote(value)}")
    lines += [
        f"export RUNCTL_LAUNCH_ID={launch_id}",
        'export RUNCTL_RESOURCE_ID="$SLURM_JOB_ID"',
        f"m='[runctl:{launch_id}]'",
        'printf "%s start\\n" "$m"',
    ]
    if nodes == 1:
        lines.append(shell_command(command, shell=shell))
    else:
        lines += [
            # Slurm knows the hosts only now: node 0 is the first of the allocation.
            'RUNCTL_NODE_ADDRS=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | paste -sd, -)',
            'export RUNCTL_NODE_ADDRS MASTER_ADDR="${RUNCTL_NODE_ADDRS%%,*}"',
            f"export MASTER_PORT={int(port)}",
            'export WORLD_SIZE="$SLURM_JOB_NUM_NODES" RUNCTL_NUM_NODES="$SLURM_JOB_NUM_NODES"',
            # One task per node; each learns its rank from SLURM_NODEID.
            f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 "
            'bash -c \'export NODE_RANK="$SLURM_NODEID" RUNCTL_NODE_RANK="$SLURM_NODEID"; '
            f'exec "$@"\' runctl-node {shell_command(command, shell=shell)}',
        ]
    lines += ["c=$?", 'printf "%s exit %s\\n" "$m" "$c"', "exit $c", ""]
    return "\n".join(lines)


@attrs.frozen(kw_only=True)
class BatchJob:
    """One job to submit, independent of the transport.

    Attributes:
        name: the job name (``<spec name or runctl>-<launch id>``).
        comment: runctl's tags (:func:`~runctl.providers.slurm._jobs.comment_for`).
        script: the batch script.
        nodes: nodes (one task on each).
        gpus_per_node: GPUs per node (0: none asked).
        gpu_type: the cluster's GRES type (``h100``), or ``None`` for any GPU.
        gpu_request: ``"gres"`` or ``"gpus-per-node"``.
        cpus_per_task: ``--cpus-per-task``.
        memory: ``--mem`` as the user wrote it (``16G``); ``memory_mb`` the same in MB.
        time_minutes: ``--time`` in minutes (``None``: the partition's default).
        partition / account / qos: where and as whom it runs.
        output: the output file, with ``%j`` for the job id.
        workdir: ``--chdir`` (``None``: where the job is submitted from).
        environment: the environment of a REST job, which inherits none.
    """

    name: str
    comment: str
    script: str = attrs.field(repr=False)
    nodes: int = 1
    gpus_per_node: int = 0
    gpu_type: str | None = None
    gpu_request: str = "gres"
    cpus_per_task: int | None = None
    memory: str | None = None
    memory_mb: int | None = None
    time_minutes: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    output: str = "runctl-%j.out"
    workdir: str | None = None
    environment: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    def _gpus(self, separator: str = ":") -> str | None:
        if not self.gpus_per_node:
            return None
        head = f"{self.gpu_type}{separator}" if self.gpu_type else ""
        return f"{head}{self.gpus_per_node}"

    def sbatch_argv(self) -> list[str]:
        """``sbatch`` and its options; the script goes on its stdin."""
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={self.name}",
            f"--comment={self.comment}",
            f"--nodes={self.nodes}",
            "--ntasks-per-node=1",
            f"--output={self.output}",
        ]
        gpus = self._gpus()
        if gpus is not None:
            argv.append(
                f"--gres=gpu:{gpus}" if self.gpu_request == "gres" else f"--gpus-per-node={gpus}"
            )
        if self.cpus_per_task:
            argv.append(f"--cpus-per-task={self.cpus_per_task}")
        if self.memory:
            argv.append(f"--mem={self.memory}")
        if self.time_minutes:
            argv.append(f"--time={self.time_minutes}")
        for flag, value in (
            ("partition", self.partition),
            ("account", self.account),
            ("qos", self.qos),
            ("chdir", self.workdir),
        ):
            if value:
                argv.append(f"--{flag}={value}")
        return argv

    def rest_body(self, version: str) -> dict[str, Any]:
        """The ``POST .../job/submit`` body for slurmrestd OpenAPI ``version`` (``v0.0.38`` ...).

        v0.0.38 (Slurm 22.05, 23.02) takes ``environment`` as an object, ``nodes`` as
        ``[min, max]``, numbers bare and GPUs as ``gres``; v0.0.40 and later take
        ``environment`` as ``["K=V"]``, ``nodes`` as a string, numbers as
        ``{"set": true, "number": N}`` and GPUs as ``tres_per_node: "gres/gpu:..."``.
        Unset fields are left out, never sent as null (22.05 answers 500 to
        ``"gres": null``).
        """
        legacy = version == "v0.0.38"
        job: dict[str, Any] = {
            "name": self.name,
            "comment": self.comment,
            # One task per node. 22.05 ignores nodes=[N, N] unless the task count says so.
            "tasks": self.nodes,
            "tasks_per_node": 1,
            "standard_output": self.output,
            "current_working_directory": self.workdir or "/tmp",
        }
        env = dict(self.environment)
        if legacy:
            job["nodes"] = [self.nodes, self.nodes]
            job["environment"] = env
        else:
            job["nodes"] = str(self.nodes)
            job["environment"] = [f"{k}={v}" for k, v in env.items()]
            job["script"] = self.script

        def number(n: int) -> Any:
            return n if legacy else {"set": True, "infinite": False, "number": n}

        gpus = self._gpus()
        if gpus is not None:
            if legacy:
                if self.gpu_request == "gres":
                    job["gres"] = f"gpu:{gpus}"
                else:
                    job["gpus_per_node"] = gpus
            else:
                job["tres_per_node"] = f"gres/gpu:{gpus}"
        if self.cpus_per_task:
            job["cpus_per_task"] = self.cpus_per_task
        if self.memory_mb:
            job["memory_per_node"] = number(self.memory_mb)
        if self.time_minutes:
            job["time_limit"] = number(self.time_minutes)
        for key, value in (
            ("partition", self.partition),
            ("account", self.account),
            ("qos", self.qos),
        ):
            if value:
                job[key] = value
        if legacy:
            return {"script": self.script, "job": job}
        return {"job": job}
