"""The wrapper runctl puts around a container's command, so that its end and exit code show.

Container providers (RunPod, Vast) report the state of the *container*, not of the
command in it: RunPod restarts a container whose command exited (the training runs
again, billing continues) and Vast reports a bare ``exited``. Neither says the exit
code. So a provider launches the command inside a small POSIX ``sh`` script,
:func:`wrap_command`, which

1. prints ``[runctl:<launch id>] start``;
2. runs the command in the background: an argv exactly as given (each argument
   quoted with :func:`shlex.quote`, however many there are), the shell form
   (``LaunchSpec.shell``) under ``sh -c`` (so pipes and ``&&`` work); with a
   workdir, after ``cd`` into it. A TERM, INT or
   HUP sent to the wrapper is passed on to the command as TERM;
3. prints ``[runctl:<launch id>] exit <N>`` (the marker) once the command ends;
4. keeps the container alive, so the provider neither restarts it nor calls it
   dead, until the machine is stopped or terminated (a signal that arrived while the
   command ran ends the wrapper right after the marker, with the command's code).

The command's stdin is ``/dev/null``, as for a container started without ``-i``.

A provider reading a resource's state looks at the tail of its log for the last
marker of that launch (:func:`exit_code_in`); an ``exit`` marker after the last
``start`` means the command ended. What it finds is kept in an :class:`ExitCodes`
(a command that ended cannot un-end) and applied with :func:`ended`. Markers are
hidden from the logs users read (:func:`is_marker`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from . import clock as _clock
from .models import Resource, ResourceState

__all__ = [
    "KEEP_ALIVE",
    "ExitCodes",
    "Marker",
    "ended",
    "exit_code_in",
    "is_marker",
    "parse_marker",
    "shell_argv",
    "wrap_command",
]

#: What the wrapper does once the command ended: sleep until the machine goes away.
#: ``sleep`` runs in the background and is waited for, so that a TERM is acted on at
#: once rather than after the hour. (``sleep infinity`` is GNU-only.)
KEEP_ALIVE = "while :; do sleep 3600 & wait $!; done"

# A marker, possibly after a prefix the log pipeline adds (a timestamp) but alone on
# its line otherwise: "[runctl:<launch id>] start" or "[runctl:<launch id>] exit <N>".
_LAUNCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MARKER = re.compile(r"(?:^|\s)\[runctl:([A-Za-z0-9_-]{1,64})\] (?:start|exit (\d{1,3}))\s*$")


def wrap_command(
    command: Sequence[str],
    launch_id: str,
    *,
    shell: bool = False,
    workdir: str | None = None,
    keep_alive: str = KEEP_ALIVE,
) -> str:
    """The ``sh`` script that runs ``command`` and reports its end (see the module docstring).

    Args:
        command: the user's command: an argv, or (``shell``) one string for ``sh -c``.
        launch_id: the launch id named in the markers (letters, digits, ``-``, ``_``).
        shell: ``command`` is the shell form (``LaunchSpec.shell``); an argv, even of
            one item, never meets a shell.
        workdir: a directory to run the command in.
        keep_alive: what to do after the marker; tests put ``:`` here so the script
            ends, exiting with the command's code.

    Returns:
        One line of POSIX ``sh``, to be run as ``sh -c <script>`` (:func:`shell_argv`).

    Raises:
        ValueError: ``launch_id`` is not one (:class:`~runctl.models.LaunchSpec` checks it),
            or ``shell`` is set for more than one string.
    """
    if shell:
        if len(command) != 1:
            raise ValueError("a shell command is one string")
        run = f"sh -c {shlex.quote(command[0])}"
    else:
        run = " ".join(shlex.quote(arg) for arg in command)
    if workdir:
        # exec: the background job's pid is then the command's, so TERM reaches it.
        run = f"{{ cd {shlex.quote(workdir)} && exec {run}; }}"
    if not _LAUNCH_ID.fullmatch(launch_id):
        raise ValueError(f"{launch_id!r} is not a launch id")
    # No single quotes of its own: the script travels inside a shell-quoted string
    # (RunPod's ``args``), which then stays one plain '...' word for a plain command.
    return "; ".join(
        [
            f"m=[runctl:{launch_id}]",  # an assignment: no pathname expansion of [...]
            'printf "%s start\\n" "$m"',
            f"{run} & p=$!",
            "s=",
            'trap "s=1; kill -TERM $p 2>/dev/null" TERM INT HUP',
            # A trapped signal interrupts wait (status > 128) while the command may
            # still run: wait again until it is gone.
            "while :; do wait $p; c=$?; kill -0 $p 2>/dev/null || break; done",
            'printf "%s exit %s\\n" "$m" "$c"',
            '[ -z "$s" ] || exit $c',
            'trap "exit $c" TERM INT HUP',
            keep_alive,
            "exit $c",
        ]
    )


def shell_argv(script: str) -> list[str]:
    """The container argv that runs ``script``: ``["sh", "-c", script]``."""
    return ["sh", "-c", script]


class Marker(NamedTuple):
    """One of the wrapper's lines: the command of ``launch_id`` started, or ended."""

    launch_id: str
    exit_code: int | None
    """The command's exit code; ``None`` for the ``start`` marker."""


def parse_marker(line: str) -> Marker | None:
    """The marker ``line`` is, or ``None`` for any other line."""
    found = _MARKER.search(line)
    if found is None:
        return None
    code = found.group(2)
    return Marker(found.group(1), int(code) if code is not None else None)


def is_marker(line: str) -> bool:
    """Whether ``line`` is one of the wrapper's marker lines (hidden from users' logs)."""
    return parse_marker(line) is not None


def exit_code_in(lines: Iterable[str], launch_id: str) -> int | None:
    """The command's exit code, if the last marker of ``launch_id`` in ``lines`` is ``exit``.

    ``None`` while it runs (the last marker is ``start``) or when no marker is there.
    """
    code: int | None = None
    for line in lines:
        found = parse_marker(line)
        if found is not None and found.launch_id == launch_id:
            code = found.exit_code
    return code


def ended(resource: Resource, code: int) -> Resource:
    """``resource`` with its command ended with ``code``: SUCCEEDED or FAILED, code set.

    The provider's own state stays in ``raw_state``: the machine exists (and bills)
    until it is terminated.
    """
    return resource.evolve(
        state=ResourceState.SUCCEEDED if code == 0 else ResourceState.FAILED,
        exit_code=code,
        detail=f"command exited with {code}",
    )


class ExitCodes:
    """Exit codes found per resource id, and when each resource's log was last read.

    Kept in memory, per provider object. A found code is final until :meth:`forget`
    (a restarted container runs the command again); a resource whose log was read
    less than ``every`` seconds ago is not read again (:meth:`due`).

    Args:
        every: the least time between two log reads for one resource, in seconds.
        clock: a monotonic clock (tests).
    """

    def __init__(self, *, every: float, clock: Callable[[], float] = _clock.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._codes: dict[str, int] = {}
        self._read_at: dict[str, float] = {}
        self._settled: set[str] = set()

    def get(self, resource_id: str) -> int | None:
        """The exit code found for ``resource_id``, if any."""
        return self._codes.get(resource_id)

    def due(self, resource_id: str) -> bool:
        """Whether the log of ``resource_id`` should be read now."""
        if resource_id in self._codes or resource_id in self._settled:
            return False
        last = self._read_at.get(resource_id)
        return last is None or self._clock() - last >= self.every

    def read(self, resource_id: str, code: int | None, *, final: bool = False) -> None:
        """Record a read of the log and what it showed (``None``: no end seen).

        Args:
            resource_id: the resource whose log was read.
            code: the exit code found, or ``None``.
            final: the log can show nothing more (the container is gone): do not
                read it again, even when it showed no exit code.
        """
        self._read_at[resource_id] = self._clock()
        if code is not None:
            self._codes[resource_id] = code
        if final:
            self._settled.add(resource_id)

    def forget(self, resource_id: str) -> None:
        """Forget ``resource_id`` (restarted, or gone)."""
        self._codes.pop(resource_id, None)
        self._read_at.pop(resource_id, None)
        self._settled.discard(resource_id)
