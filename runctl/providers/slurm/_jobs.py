"""What the Slurm provider reads back from a cluster, whatever the transport: jobs, nodes, states.

The CLI transports parse ``scontrol``/``squeue``/``sinfo``/``sacct`` text and the REST
transport parses slurmrestd's JSON; both end in the same :class:`SlurmJob` and
:class:`SlurmNode`, so the state table, the tags in the job's comment and the
hostlist expansion live here once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import quote, unquote

import attrs

from ...models import TAG_LAUNCH_ID, ResourceState

__all__ = [
    "COMMENT_PREFIX",
    "SLURM_STATES",
    "SlurmJob",
    "SlurmNode",
    "comment_for",
    "expand_hostlist",
    "exit_code_from",
    "parse_gres",
    "slurm_state",
    "tags_from_comment",
]

_S = ResourceState

#: Every job state Slurm reports (base states and the state flags that ``squeue``,
#: ``scontrol`` and slurmrestd <= v0.0.38 print instead of the base state), mapped
#: explicitly. Where a flag is printed, the base state is unknown: the flag's entry
#: says what the job is doing.
SLURM_STATES: Mapping[str, ResourceState] = {
    # base states
    "PENDING": _S.PENDING,  # queued; the reason says why (Resources, Priority, QOS limits ...)
    "RUNNING": _S.RUNNING,
    "SUSPENDED": _S.STOPPED,  # scontrol suspend (or gang scheduling): paused, resources held
    "COMPLETED": _S.SUCCEEDED,  # every process exited 0
    "CANCELLED": _S.TERMINATED,  # scancel (by the user, an admin, or runctl's terminate)
    "FAILED": _S.FAILED,  # non-zero exit, or could not start
    "TIMEOUT": _S.TERMINATED,  # ended at its time limit (runctl's TTL)
    "NODE_FAIL": _S.FAILED,  # a node of the job failed
    "PREEMPTED": _S.PREEMPTED,  # taken back for a higher-priority job
    "BOOT_FAIL": _S.FAILED,  # a node would not boot
    "DEADLINE": _S.TERMINATED,  # ended at its --deadline
    "OUT_OF_MEMORY": _S.FAILED,  # killed for exceeding its memory
    # flags, printed in place of the base state
    "LAUNCH_FAILED": _S.FAILED,  # the batch step could not be launched
    "CONFIGURING": _S.PROVISIONING,  # nodes allocated, booting or being set up
    "POWER_UP_NODE": _S.PROVISIONING,  # waiting for powered-down nodes to start
    "COMPLETING": _S.RUNNING,  # its processes are ending (epilog); the end state follows
    "STAGE_OUT": _S.RUNNING,  # staging files out of a burst buffer after the run
    "SIGNALING": _S.RUNNING,  # being signalled (e.g. at its time limit), still running
    "RESIZING": _S.RUNNING,  # its node count is changing
    "STOPPED": _S.STOPPED,  # sent SIGSTOP; resources held
    "REQUEUED": _S.PENDING,  # requeued: it will run again
    "REQUEUE_FED": _S.PENDING,  # requeued by the federation
    "REQUEUE_HOLD": _S.PENDING,  # requeued and held until released
    "SPECIAL_EXIT": _S.PENDING,  # requeued and held after a special exit code
    "RESV_DEL_HOLD": _S.PENDING,  # held: its reservation was deleted
    "EXPEDITING": _S.PENDING,  # being requeued ahead of others (Slurm 25.11+)
    "RECONFIG_FAIL": _S.FAILED,  # node reconfiguration failed
    "REVOKED": _S.TERMINATED,  # a federation sibling ran it instead
    "UPDATE_DB": _S.UNKNOWN,  # an accounting update is in flight; nothing said of the job
}

_BASE = frozenset(
    {
        "PENDING",
        "RUNNING",
        "SUSPENDED",
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
    }
)
#: Spellings older commands and sacct use for the same states.
_ALIASES = {"COMPLETE": "COMPLETED", "CANCELED": "CANCELLED", "OOM": "OUT_OF_MEMORY"}


def _names(raw: str | Sequence[str] | None) -> list[str]:
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)
    names = []
    for item in items:
        # sacct says "CANCELLED by 1000"; some versions join flags with '+'.
        for word in str(item).replace("+", " ").replace(",", " ").split():
            word = word.upper()
            if word == "BY":
                break
            names.append(_ALIASES.get(word, word))
    return names


def slurm_state(raw: str | Sequence[str] | None) -> ResourceState:
    """runctl's state for a Slurm job state: a string, or slurmrestd >= v0.0.40's list.

    A list holds the base state and the flags set on it (``["CANCELLED",
    "COMPLETING"]``): the base decides, except that a running job still
    ``CONFIGURING`` is PROVISIONING and one ``STOPPED`` is STOPPED. A lone flag (the
    string form) maps through :data:`SLURM_STATES`. A state runctl does not know is
    ``UNKNOWN``.
    """
    names = _names(raw)
    if not names:
        return _S.UNKNOWN
    base = next((n for n in names if n in _BASE), None)
    flags = [n for n in names if n not in _BASE]
    if base is None:
        return SLURM_STATES.get(flags[0], _S.UNKNOWN)
    if base == "RUNNING" and "CONFIGURING" in flags:
        return _S.PROVISIONING
    if base == "RUNNING" and "STOPPED" in flags:
        return _S.STOPPED
    if base == "PENDING" or any(f.startswith("REQUEUE") for f in flags):
        return _S.PENDING
    return SLURM_STATES[base]


def raw_state(raw: str | Sequence[str] | None) -> str | None:
    """The state as one string (a list joined with ``+``), for ``Resource.raw_state``."""
    names = _names(raw)
    return "+".join(names) if names else None


def exit_code_from(code: int | None, signal: int | None) -> int | None:
    """One exit code as a shell reports it: the return code, or 128 + the signal."""
    if signal:
        return 128 + signal
    return code


# --- tags in the comment -------------------------------------------------------------------------

#: A job runctl launched carries its tags in its comment: ``runctl:key=value&key=value``.
COMMENT_PREFIX = "runctl:"


def comment_for(tags: Mapping[str, str]) -> str:
    """The job comment that carries ``tags`` (percent-encoded: no spaces, no quotes)."""
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(tags.items()))
    return COMMENT_PREFIX + body


def tags_from_comment(comment: str | None) -> dict[str, str] | None:
    """The tags in a runctl job comment; ``None`` for a job runctl did not launch."""
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    tags = {}
    for part in comment[len(COMMENT_PREFIX) :].strip().split("&"):
        key, sep, value = part.partition("=")
        if sep and key:
            tags[unquote(key)] = unquote(value)
    return tags if TAG_LAUNCH_ID in tags else None


# --- GRES and hostlists --------------------------------------------------------------------------

_GRES = re.compile(r"^(?:gres[:/])?gpu(?::(?P<type>[^:(,\s]+))?(?::(?P<count>\d+))?")


def parse_gres(text: str | None) -> list[tuple[str | None, int]]:
    """The GPUs in a GRES/TRES string, as ``(type, count)`` per entry.

    Reads every spelling Slurm prints: ``gpu:h100:2``, ``gpu:2``, ``gres:gpu:h100:1``
    (22.05 ``TresPerNode``), ``gres/gpu:h100:1`` (24.11), ``gpu:h100:2(S:0-1)``,
    several entries separated by ``,`` or ``;``. Non-GPU GRES are skipped.
    """
    found: list[tuple[str | None, int]] = []
    for entry in re.split(r"[,;]", text or ""):
        match = _GRES.match(entry.strip())
        if match is None:
            continue
        gres_type, count = match.group("type"), match.group("count")
        if gres_type is not None and gres_type.isdigit() and count is None:
            gres_type, count = None, gres_type  # "gpu:2": a count, not a type
        found.append((gres_type, int(count) if count else 1))
    return found


_RANGE = re.compile(r"^(\d+)-(\d+)$")


def expand_hostlist(text: str | None) -> list[str]:
    """Node names in a Slurm hostlist: ``n[1-2],gpu07`` → ``["n1", "n2", "gpu07"]``.

    Handles zero-padded ranges (``node[01-03]``), lists inside brackets
    (``n[1,3-4]``) and several bracket groups (``r[1-2]n[1-2]``).
    """
    if not text or text in ("(null)", "None"):
        return []
    names: list[str] = []
    for item in _split_top(text):
        names.extend(_expand_one(item))
    return names


def _split_top(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            if current:
                items.append(current)
            current = ""
        else:
            current += char
    if current:
        items.append(current)
    return items


def _expand_one(item: str) -> list[str]:
    start = item.find("[")
    if start < 0:
        return [item]
    end = item.index("]", start)
    prefix, body, rest = item[:start], item[start + 1 : end], item[end + 1 :]
    values: list[str] = []
    for part in body.split(","):
        match = _RANGE.match(part)
        if match is None:
            values.append(part)
            continue
        low, high = match.groups()
        width = len(low)
        values.extend(str(n).zfill(width) for n in range(int(low), int(high) + 1))
    tails = _expand_one(rest) if rest else [""]
    return [f"{prefix}{v}{t}" for v in values for t in tails]


# --- records -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SlurmJob:
    """A job as the cluster reports it, from any transport.

    Attributes:
        job_id: Slurm's job id.
        name: the job name.
        comment: the job comment (runctl's tags).
        state: the state as reported: a string, or a tuple (slurmrestd >= v0.0.40).
        reason: why it pends or failed (``None`` for Slurm's ``None``).
        exit_code: the batch script's exit code (128 + signal when killed), when known.
        nodes: the hostlist of its allocation.
        node_count: nodes asked for or allocated.
        partition: its partition.
        submitted_at / started_at / ended_at: times, when set.
        gres: the GPUs it asked for per node, as Slurm prints them.
        stdout: the path of its output file on the cluster.
        time_limit_minutes: its time limit (``None``: unlimited or unknown).
        user / uid: whose job it is, where reported.
    """

    job_id: str
    name: str | None = None
    comment: str | None = None
    state: str | tuple[str, ...] | None = None
    reason: str | None = None
    exit_code: int | None = None
    nodes: str | None = None
    node_count: int | None = None
    partition: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    gres: str | None = None
    stdout: str | None = None
    time_limit_minutes: int | None = None
    user: str | None = None
    uid: int | None = None

    @property
    def tags(self) -> dict[str, str] | None:
        """runctl's tags from the comment; ``None`` if runctl did not launch it."""
        return tags_from_comment(self.comment)


@attrs.frozen(kw_only=True)
class SlurmNode:
    """A compute node, for offers.

    Attributes:
        name: the node name.
        partitions: the partitions it is in.
        gpus: ``(type, count)`` of its GPUs (``type`` ``None`` when untyped).
        gpus_used: GPUs allocated now, where reported.
        cpus: its CPUs.
        memory_mb: its memory (``RealMemory``), in MB.
        state: its state, lowercase (``idle``, ``mixed``, ``allocated``, ``down`` ...).
    """

    name: str
    partitions: tuple[str, ...] = ()
    gpus: tuple[tuple[str | None, int], ...] = ()
    gpus_used: int | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    state: str = "unknown"

    @property
    def free(self) -> bool:
        """Whether a job could start on it now (idle, or mixed with GPUs to spare)."""
        words = set(re.split(r"[+\s,]+", self.state.lower()))
        if words & {
            "down",
            "drain",
            "drained",
            "draining",
            "fail",
            "failing",
            "maint",
            "reserved",
            "inval",
            "not_responding",
            "power_down",
            "powered_down",
        }:
            return False
        if "idle" in words:
            return True
        if words & {"mixed", "mix"}:
            total = sum(count for _, count in self.gpus)
            return self.gpus_used is None or self.gpus_used < total
        return False
