"""SIGTERM and SIGHUP tear down what was launched, like Ctrl-C (issue 9, item 4)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta

import pytest

import runctl
from runctl.ledger import Ledger

RUNCTL = [sys.executable, "-m", "runctl"]
SLEEPER = ["--", sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"]


def runctl_json(*args: str) -> object:
    out = subprocess.run([*RUNCTL, *args], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def run_then_signal(signum: int, *extra: str) -> tuple[int, str]:
    """Start `runctl run`, wait until its workload printed, send ``signum``; (exit code, stderr)."""
    proc = subprocess.Popen(
        [*RUNCTL, "run", "--provider", "local", "--name", "sig", *extra, *SLEEPER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"  # the workload runs: the launch is done
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the assertion above failed
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_terminated_run_tears_its_machine_down_and_exits_128_plus_n(signum, code, runctl_home):
    returncode, err = run_then_signal(signum)
    assert returncode == code, err
    assert f"received {signal.Signals(signum).name}; cleaned up" in err
    assert runctl_json("ls", "--json") == []  # nothing left running
    (record,) = Ledger(runctl_home / "ledger.sqlite3").records()
    assert record.status == "closed"


def test_run_with_a_timeout_records_a_ttl_so_cleanup_can_act_if_the_cli_dies(runctl_home):
    # Killed with SIGKILL (no handler can run), the ledger and the resource's tags still
    # carry a TTL just past --start-timeout + --timeout: `runctl cleanup` will reap it.
    proc = subprocess.Popen(
        [*RUNCTL, "run", "--provider", "local", "--timeout", "600", "--start-timeout", "60",
         *SLEEPER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "up\n"
    proc.kill()
    proc.communicate(timeout=60)
    (record,) = Ledger(runctl_home / "ledger.sqlite3").open_records()
    assert record.ttl == timedelta(seconds=60 + 600 + 600)
    (listed,) = runctl_json("ls", "--json")  # type: ignore[misc]
    assert listed["tags"]["runctl-ttl"] == "1260"
    assert subprocess.run([*RUNCTL, "terminate", listed["id"]], check=False).returncode == 0


def test_the_library_helper_turns_sigterm_into_a_keyboard_interrupt():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as caught:
        with runctl.interrupt_on_signals():
            signal.raise_signal(signal.SIGTERM)
    assert isinstance(caught.value, runctl.SignalInterrupt)
    assert caught.value.signum == signal.SIGTERM and caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_only_the_first_signal_interrupts_so_cleanup_is_not_cut_short():
    cleaned = []

    def work_then_clean_up() -> None:
        with runctl.interrupt_on_signals([signal.SIGHUP]):
            try:
                signal.raise_signal(signal.SIGHUP)
            finally:
                signal.raise_signal(signal.SIGHUP)  # a second one, during the cleanup
                cleaned.append(True)

    with pytest.raises(runctl.SignalInterrupt):
        work_then_clean_up()
    assert cleaned == [True]


def test_the_helper_refuses_to_run_outside_the_main_thread():
    import threading

    errors: list[BaseException] = []

    def other() -> None:
        try:
            with runctl.interrupt_on_signals():
                pass
        except RuntimeError as e:
            errors.append(e)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])
