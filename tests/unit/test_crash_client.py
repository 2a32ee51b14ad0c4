"""Ctrl-C at the end of a launch, and the CLI under hostile output and ids (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import runctl
from runctl import LaunchSpec, ResourceState
from runctl.config import load_settings
from runctl.providers.local import LocalProvider

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


class InterruptedAsItCompletes(LocalProvider):
    """The real local provider; a Ctrl-C reaches the main thread as its launch returns.

    The launch waits (in the event loop's thread, so nothing in the loop can react)
    until the main thread's SIGINT handler has run, then completes without another
    checkpoint: the interrupt lands in the instant between "created" and "returned".
    """

    def __init__(self, interrupted: threading.Event) -> None:
        super().__init__(load_settings().provider_config("local"))
        self.interrupted = interrupted
        self.created: list[str] = []

    async def launch(self, spec: LaunchSpec) -> runctl.Resource:
        created = await super().launch(spec)
        self.created.append(created.id)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        self.interrupted.wait(60)
        return created


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
def test_a_ctrl_c_as_the_launch_completes_never_drops_the_resource(runctl_home):
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        provider = InterruptedAsItCompletes(interrupted)
        with runctl.Client(providers={"local": provider}) as rc:
            with pytest.raises(KeyboardInterrupt):
                rc.launch(LaunchSpec(command=[PY, "-c", "import time; time.sleep(600)"]))
            (rid,) = provider.created
            # Either returned to the caller or terminated: here, terminated.
            assert rc.get(rid, provider="local").state is ResourceState.TERMINATED
    finally:
        signal.signal(signal.SIGINT, previous)


def _runctl(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "runctl", *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "RUNCTL_HOME": str(home), **env},
    )


def test_logs_with_invalid_utf8_on_a_non_utf8_stdout_replace_and_never_crash(runctl_home):
    code = "import sys; sys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\xfe ok\\n')"
    run = _runctl(runctl_home, "run", "--", PY, "-c", code, PYTHONIOENCODING="ascii")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "caf? ?? ok\n"
    rid = run.stderr.split("launched ", 1)[1].split()[0]
    logs = _runctl(runctl_home, "logs", rid, PYTHONIOENCODING="ascii")
    assert logs.returncode == 0 and logs.stdout == "caf? ?? ok\n", logs.stderr


@pytest.mark.parametrize("rid", ["local-" + "x" * 5000, "y" * 5000])
def test_a_huge_id_is_a_clear_error(runctl_home, rid, capsys):
    from runctl.cli import main

    for command in ("logs", "status"):
        assert main([command, rid, "--provider", "local"]) == 1
        err = capsys.readouterr().err
        assert "not a local resource id" in err and len(err) < 400
    # The CLI never says "terminated" for what it cannot find (issue 9): a clear error.
    assert main(["terminate", rid, "--provider", "local"]) == 1
    err = capsys.readouterr().err
    assert "local" in err and len(err) < 400 and "Traceback" not in err


def test_the_cli_shell_form_is_explicit(runctl_home, tmp_path):
    marker = tmp_path / "marker"
    argv = _runctl(runctl_home, "run", "--workdir", str(tmp_path), "--", f"echo hi; touch {marker}")
    assert argv.returncode == 127 and not marker.exists()
    shell = _runctl(runctl_home, "run", "--shell", "--", f"echo hi; touch {marker}")
    assert shell.returncode == 0 and shell.stdout == "hi\n" and marker.exists()
