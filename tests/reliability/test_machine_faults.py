"""Machine faults around the local provider and the ledger: the figures of docs/reliability.md.

Each scenario runs ``RUNCTL_MACHINE_FAULT_TRIALS`` trials (default 10) of one fault,
at a point drawn from a seeded generator, then does what a user would do
afterwards (``reconcile``, then ``cleanup`` past every TTL) and counts:

- **leaks**: processes of any job still alive after that;
- **ghosts**: resources still reported starting or running after that, or that a
  terminate could not end.

Marked ``slow``: it runs in the ``reliability`` nox session, never in the default
suite (which has one deterministic test per fault in ``tests/unit/test_crash_*.py``).
Every wait is for an event (a file, a process, a state), bounded generously.
"""

# ruff: noqa: B023 - every lambda here is called at once, inside its loop iteration

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest

from runctl.config import ProviderConfig
from runctl.errors import LedgerError, RunctlError
from runctl.ledger import Ledger
from runctl.lifecycle import launch_safely
from runctl.models import LaunchSpec, ResourceState
from runctl.providers.local import LocalProvider, _session_members
from runctl.reconcile import cleanup, reconcile

pytestmark = pytest.mark.slow

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("RUNCTL_MACHINE_FAULT_TRIALS", "10"))
SEED = int(os.environ.get("RUNCTL_RELIABILITY_SEED", "20261127"))
SLEEPER = [PY, "-c", "import time; time.sleep(600)"]


def until(condition: Callable[[], object], what: str, limit: float = 60.0) -> object:
    deadline = time.monotonic() + limit
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)
    return value


def local(home: Path) -> LocalProvider:
    return LocalProvider(ProviderConfig(name="local", home=home, environ=dict(os.environ),
                                        settings={"grace_seconds": "1"}))


class Tally:
    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.trials = 0
        self.leaks = 0
        self.ghosts = 0
        self.outcomes: Counter[str] = Counter()
        self.started = time.monotonic()

    def report(self) -> dict[str, object]:
        data = {"fault": self.fault, "trials": self.trials, "leaks": self.leaks,
                "ghosts": self.ghosts, "outcomes": dict(self.outcomes),
                "seconds": round(time.monotonic() - self.started, 1)}
        target = os.environ.get("RUNCTL_RELIABILITY_REPORT")
        if target:
            with open(target, "a") as f:
                f.write(json.dumps({"machine_faults": data}) + "\n")
        print("\nMACHINE FAULTS", json.dumps(data))
        return data


def audit(home: Path, tally: Tally) -> None:
    """Reconcile, clean up past every TTL, then count what is left (leaks, ghosts)."""
    provider = local(home)
    ledger = Ledger(home / "ledger.sqlite3")
    later = datetime.now(timezone.utc) + timedelta(days=30)

    async def remedies() -> None:
        with contextlib.suppress(LedgerError):
            await reconcile(ledger, {"local": provider})
        report = await cleanup(ledger, {"local": provider}, dry_run=False, now=later,
                               terminate_timeout=60, poll_interval=0.05)
        tally.ghosts += sum(1 for item in report.items if not item.terminated)

    anyio.run(remedies)
    root = home / "providers" / "local"
    for directory in sorted(root.glob("local-*")) if root.is_dir() else []:
        try:
            seen = anyio.run(provider.get, directory.name)
        except RunctlError:
            continue
        if seen.state in (ResourceState.PROVISIONING, ResourceState.RUNNING,
                          ResourceState.STOPPED, ResourceState.TERMINATING):
            tally.ghosts += 1
        proc = directory / "process.json"
        if proc.exists():
            members = _session_members(json.loads(proc.read_text())["pgid"])
            tally.leaks += len(members)
            for pid in members:  # never left behind by the measurement itself
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _home(tmp_path: Path, name: str, n: int) -> Path:
    home = tmp_path / f"{name}-{n}"
    home.mkdir()
    return home


# --- SIGKILL of each runctl process -------------------------------------------------------------


@pytest.mark.parametrize("command", ["launch", "run"])
def test_sigkill_of_the_cli_at_random_points(tmp_path, command):
    rng = random.Random(SEED)
    tally = Tally(f"SIGKILL of `runctl {command}`")
    for n in range(TRIALS):
        home = _home(tmp_path, command, n)
        env = {**os.environ, "RUNCTL_HOME": str(home)}
        cli = subprocess.Popen([PY, "-m", "runctl", command, "--ttl", "10", "--", *SLEEPER],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        # Killed at a random instant of the launch, found from events: early (while the
        # interpreter starts), once the resource directory appears (the supervisor may
        # not run yet), or once the job runs (the with block of `run` is open).
        point = rng.choice(["early", "directory", "running"])
        root = home / "providers" / "local"
        if point == "early":
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            name = "meta.json" if point == "directory" else "process.json"
            with contextlib.suppress(AssertionError):
                until(lambda: cli.poll() is not None or any(root.glob(f"local-*/{name}")),
                      f"{name} appears")
            time.sleep(rng.uniform(0.0, 0.02))
        tally.outcomes[f"killed at: {point}"] += 1
        cli.kill()
        cli.wait()
        tally.trials += 1
        created = list((home / "providers" / "local").glob("local-*"))
        tally.outcomes["resource created" if created else "killed before the create"] += 1
        audit(home, tally)
    data = tally.report()
    assert data["leaks"] == 0 and data["ghosts"] == 0


def test_ctrl_c_of_runctl_run_at_random_points(tmp_path):
    """Ctrl-C (SIGINT) during `runctl run`: how long until it exits, and what is left."""
    rng = random.Random(SEED + 2)
    tally = Tally("Ctrl-C of `runctl run`")
    waits: list[float] = []
    for n in range(TRIALS):
        home = _home(tmp_path, "ctrlc", n)
        env = {**os.environ, "RUNCTL_HOME": str(home)}
        cli = subprocess.Popen([PY, "-m", "runctl", "run", "--ttl", "10", "--", *SLEEPER],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        point = rng.choice(["early", "directory", "running"])
        root = home / "providers" / "local"
        if point == "early":
            time.sleep(rng.uniform(0.3, 1.0))  # the interpreter has its SIGINT handler by then
        else:
            name = "meta.json" if point == "directory" else "process.json"
            with contextlib.suppress(AssertionError):
                until(lambda: cli.poll() is not None or any(root.glob(f"local-*/{name}")),
                      f"{name} appears")
        tally.outcomes[f"interrupted at: {point}"] += 1
        sent = time.monotonic()
        cli.send_signal(signal.SIGINT)
        code = cli.wait(timeout=300)
        waits.append(time.monotonic() - sent)
        tally.outcomes[f"exit {code}"] += 1
        tally.trials += 1
        audit(home, tally)
    tally.outcomes[f"slowest exit after Ctrl-C: {max(waits):.1f} s"] += 1
    data = tally.report()
    assert data["leaks"] == 0 and data["ghosts"] == 0


def test_sigkill_of_the_supervisor_at_random_points(tmp_path):
    # A watcher kills one supervisor process, the first stage (before it forks) or the
    # daemon (before or after the command starts), a random moment after it appears.
    rng = random.Random(SEED + 1)
    tally = Tally("SIGKILL of the local supervisor (either stage)")
    for n in range(TRIALS):
        home = _home(tmp_path, "supervisor", n)
        target = rng.choice(["first stage", "daemon"])
        delay = rng.choice([0.0, rng.uniform(0, 0.1)])
        script = textwrap.dedent(f"""
            import anyio, sys
            from runctl.config import ProviderConfig
            from runctl.ledger import Ledger
            from runctl.lifecycle import launch_safely
            from runctl.models import LaunchSpec
            from runctl.providers.local import LocalProvider
            import os
            home = {str(home)!r}
            p = LocalProvider(ProviderConfig(name="local", home=__import__("pathlib").Path(home),
                                             environ=dict(os.environ)))
            spec = LaunchSpec(command={SLEEPER!r}, ttl=10)
            try:
                anyio.run(lambda: launch_safely(p, spec, Ledger(home + "/ledger.sqlite3")))
            except Exception as e:
                print(type(e).__name__)
        """)
        launcher = subprocess.Popen([PY, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                                    text=True)
        killed = None
        deadline = time.monotonic() + 60
        while killed is None and launcher.poll() is None and time.monotonic() < deadline:
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
                    if b"supervise" in cmdline and any(str(home).encode() in a for a in cmdline):
                        stat = Path(f"/proc/{entry.name}/stat").read_text()
                        ppid = int(stat.rsplit(")", 1)[1].split()[1])
                        stage = "first stage" if ppid == launcher.pid else "daemon"
                        if stage != target:
                            continue
                        time.sleep(delay)
                        os.kill(int(entry.name), signal.SIGKILL)
                        killed = stage
                        break
            time.sleep(0.001)
        launcher.communicate(timeout=120)
        tally.trials += 1
        tally.outcomes[f"killed the {killed}" if killed else "not caught"] += 1
        audit(home, tally)
    data = tally.report()
    assert data["leaks"] == 0 and data["ghosts"] == 0


def test_sigkill_of_the_supervisor_while_the_job_runs(tmp_path):
    tally = Tally("SIGKILL of the supervisor while the job runs (its child ignores SIGTERM)")
    code = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import os, signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); os.setpgid(0, 0); time.sleep(600)']); "
            "time.sleep(600)")
    for n in range(TRIALS):
        home = _home(tmp_path, "running", n)
        provider = local(home)
        ledger = Ledger(home / "ledger.sqlite3")
        res = anyio.run(lambda: launch_safely(provider, LaunchSpec(command=[PY, "-c", code], ttl=10),
                                              ledger))
        directory = home / "providers" / "local" / res.id
        until(lambda: len(_session_members(res_pgid(directory))) >= 2, "the child starts")
        os.kill(json.loads((directory / "supervisor.json").read_text())["pid"], signal.SIGKILL)
        until(lambda: anyio.run(provider.get, res.id).raw_state == "unsupervised",
              "the supervisor's death shows")
        tally.trials += 1
        tally.outcomes["reported unsupervised"] += 1
        audit(home, tally)
    data = tally.report()
    assert data["leaks"] == 0 and data["ghosts"] == 0


def res_pgid(directory: Path) -> int:
    proc = directory / "process.json"
    return json.loads(proc.read_text())["pgid"] if proc.exists() else -1


# --- the ledger ---------------------------------------------------------------------------------


class FaultAt(LocalProvider):
    """The real local provider; ``fault()`` runs before or after the create."""

    def __init__(self, home: Path, fault: Callable[[], None], after: bool) -> None:
        super().__init__(ProviderConfig(name="local", home=home, environ=dict(os.environ)))
        self.fault, self.after = fault, after

    async def launch(self, spec: LaunchSpec):  # type: ignore[no-untyped-def]
        if not self.after:
            self.fault()
        created = await super().launch(spec)
        if self.after:
            self.fault()
        return created


def _ledger_fault(tmp_path: Path, name: str, make: Callable[[Path], Callable[[], None]],
                  undo: Callable[[], None] | None = None) -> dict[str, object]:
    rng = random.Random(f"{SEED}-{name}")
    tally = Tally(name)
    for n in range(TRIALS):
        home = _home(tmp_path, name.split()[1], n)
        ledger = Ledger(home / "ledger.sqlite3", timeout=0.2)
        ledger.records()
        after = rng.random() < 0.5  # between intent and confirm, or before the intent's create
        provider = FaultAt(home, make(home), after)
        try:
            anyio.run(lambda: launch_safely(provider, LaunchSpec(command=SLEEPER, ttl=10), ledger,
                                            poll_interval=0.05))
            tally.outcomes["launched"] += 1
        except LedgerError as e:
            when = "create and confirm" if after else "intent and create"
            tally.outcomes[f"LedgerError ({e.reason}), fault between {when}"] += 1
        finally:
            if undo is not None:
                undo()
        tally.trials += 1
        audit(home, tally)
    return tally.report()


def test_ledger_locked_past_the_busy_timeout(tmp_path):
    holders: list[sqlite3.Connection] = []

    def make(home: Path) -> Callable[[], None]:
        def lock() -> None:
            conn = sqlite3.connect(home / "ledger.sqlite3", isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            holders.append(conn)
        return lock

    def release() -> None:
        while holders:
            holders.pop().close()

    data = _ledger_fault(tmp_path, "ledger locked", make, release)
    assert data["leaks"] == 0 and data["ghosts"] == 0


def test_ledger_deleted(tmp_path):
    def make(home: Path) -> Callable[[], None]:
        def delete() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{home}/ledger.sqlite3{suffix}").unlink(missing_ok=True)
        return delete

    data = _ledger_fault(tmp_path, "ledger deleted", make)
    assert data["leaks"] == 0 and data["ghosts"] == 0


def test_ledger_corrupt(tmp_path):
    def make(home: Path) -> Callable[[], None]:
        def corrupt() -> None:
            for suffix in ("-wal", "-shm"):
                Path(f"{home}/ledger.sqlite3{suffix}").unlink(missing_ok=True)
            Path(f"{home}/ledger.sqlite3").write_bytes(os.urandom(8192))
        return corrupt

    data = _ledger_fault(tmp_path, "ledger corrupt", make)
    assert data["leaks"] == 0 and data["ghosts"] == 0


@contextlib.contextmanager
def _mounted(target: Path, *options: str) -> Iterator[None]:
    done = subprocess.run(["mount", *options, str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"needs mount privileges: {done.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_read_only_home_and_full_disk(tmp_path):
    """A job runs; then the home turns read-only (or the disk fills): launching is a clear
    error, listing and terminating the running job still work."""
    for fault in ("read-only home", "disk full"):
        tally = Tally(fault)
        for n in range(TRIALS):
            home = tmp_path / f"{fault.split()[0]}-{n}"
            home.mkdir()
            with contextlib.ExitStack() as stack:
                if fault == "disk full":
                    stack.enter_context(_mounted(home, "-t", "tmpfs", "-o", "size=2m", "tmpfs"))
                provider = local(home)
                ledger = Ledger(home / "ledger.sqlite3")
                running = anyio.run(lambda: launch_safely(
                    provider, LaunchSpec(command=SLEEPER, ttl=30), ledger))
                if fault == "read-only home":
                    stack.enter_context(_mounted(home, "--bind", str(home)))
                    subprocess.run(["mount", "-o", "remount,bind,ro", str(home)], check=True)
                else:
                    with contextlib.suppress(OSError), open(home / "filler", "wb") as f:
                        while True:
                            f.write(b"\0" * 65536)
                try:
                    anyio.run(lambda: launch_safely(provider, LaunchSpec(command=SLEEPER, ttl=30),
                                                    Ledger(home / "ledger.sqlite3")))
                    tally.outcomes["launched"] += 1
                except RunctlError as e:
                    reason = getattr(e, "reason", type(e).__name__)
                    tally.outcomes[f"launch refused ({reason})"] += 1
                listed = anyio.run(lambda: provider.list())
                tally.outcomes["running job listed" if any(r.id == running.id for r in listed)
                               else "running job NOT listed"] += 1
                from runctl.lifecycle import terminate_verified

                ended = anyio.run(lambda: terminate_verified(
                    provider, running.id, Ledger(home / "ledger.sqlite3"), poll_interval=0.05))
                tally.outcomes[f"terminated ({ended.state.value})"] += 1
                if fault == "disk full":
                    (home / "filler").unlink()
                    audit(home, tally)  # before the tmpfs (and what it holds) goes
            tally.trials += 1
            if fault == "read-only home":
                audit(home, tally)  # writable again
        data = tally.report()
        assert data["leaks"] == 0 and data["ghosts"] == 0


def test_reading_a_100_mb_line_is_linear(tmp_path):
    """Item 10's figure: one 100 MB line (it took 122 s when reading was quadratic)."""
    home = _home(tmp_path, "longline", 0)
    provider = local(home)
    code = "import sys; sys.stdout.write('x' * (100 * 1024 * 1024) + '\\n')"
    res = anyio.run(lambda: provider.launch(LaunchSpec(command=[PY, "-c", code],
                                                       options={"max_log_mb": "200"})))
    until(lambda: (home / "providers" / "local" / res.id / "status.json").exists(), "the job ends",
          limit=300)

    async def read() -> list[int]:
        return [len(line) async for line in provider.logs(res.id)]

    started = time.monotonic()
    lengths = anyio.run(read)
    seconds = time.monotonic() - started
    tally = Tally("reading one 100 MB log line")
    tally.trials = 1
    tally.outcomes[f"read in {seconds:.1f} s"] += 1
    tally.report()
    assert lengths == [100 * 1024 * 1024]
