"""Run the command a provider would start in its container, here, with /bin/sh.

The wrapper (``runctl._workload``) ends by keeping the container alive; tests swap
that one step (the :data:`~runctl._workload.KEEP_ALIVE` seam) for ``:`` so the script
ends with the command's exit code, and run the rest exactly as sent.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from runctl._workload import KEEP_ALIVE

__all__ = ["ECHO_ARGV", "run_container_argv"]

#: A command printing its arguments after the first as JSON, and exiting with the first.
ECHO_ARGV = (
    sys.executable,
    "-c",
    "import json, sys; print(json.dumps(sys.argv[2:])); sys.exit(int(sys.argv[1]))",
)


def run_container_argv(
    argv: Sequence[str], *, keep_alive: bool = False, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (``["sh", "-c", script]``) locally, without the keep-alive unless asked."""
    assert list(argv[:2]) == ["sh", "-c"], argv
    script = argv[2]
    assert KEEP_ALIVE in script
    if not keep_alive:
        script = script.replace(KEEP_ALIVE, ":")
    return subprocess.run(
        ["/bin/sh", "-c", script, *argv[3:]],
        capture_output=True, text=True, timeout=timeout, start_new_session=True,
    )
