"""The ledger is not a single point of failure, and a launch it cannot record does not
leak (issue 18, items 1, 4, 5, 6, 9). Real SQLite files, real local processes."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import runctl
from runctl import LaunchSpec, ResourceState
from runctl.budget import Budget
from runctl.config import ProviderConfig
from runctl.cost import Money, Price
from runctl.errors import BudgetExceededError, LedgerError
from runctl.ledger import SCHEMA_VERSION, Ledger
from runctl.lifecycle import DEFAULT_TTL, launch_safely
from runctl.models import MAX_TTL
from runctl.providers.local import LocalProvider
from runctl.reconcile import cleanup, reconcile

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def sleeper(**kw: object) -> LaunchSpec:
    return LaunchSpec(command=[PY, "-c", "import time; time.sleep(600)"], provider="local", **kw)


def session_alive(home: Path, rid: str) -> bool:
    import json

    proc = json.loads((home / "providers" / "local" / rid / "process.json").read_text())
    try:
        os.killpg(proc["pgid"], 0)
    except ProcessLookupError:
        return False
    return True


class LedgerFaultAfterCreate(LocalProvider):
    """The real local provider; the ledger breaks between the intent and the confirm."""

    def __init__(self, home: Path, fault: str) -> None:
        super().__init__(ProviderConfig(name="local", home=home, environ=dict(os.environ)))
        self.fault = fault
        self.holder: sqlite3.Connection | None = None
        self.ledger_path = home / "ledger.sqlite3"

    async def launch(self, spec: LaunchSpec) -> runctl.Resource:
        created = await super().launch(spec)
        if self.fault == "locked":  # another process holds the write lock past the timeout
            self.holder = sqlite3.connect(self.ledger_path, isolation_level=None)
            self.holder.execute("BEGIN IMMEDIATE")
        elif self.fault == "deleted":
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.ledger_path) + suffix).unlink(missing_ok=True)
        return created


# --- item 1: a confirmation the ledger cannot write terminates what was created ------------------


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["locked", "deleted"])
async def test_a_confirm_that_cannot_be_written_terminates_the_resource(runctl_home, fault):
    provider = LedgerFaultAfterCreate(runctl_home, fault)
    ledger = Ledger(runctl_home / "ledger.sqlite3", timeout=0.2)
    with pytest.raises(LedgerError) as info:
        await launch_safely(provider, sleeper(launch_id=f"c-{fault}"), ledger, poll_interval=0.05)
    if provider.holder is not None:
        provider.holder.close()
    assert info.value.reason == ("locked" if fault == "locked" else "missing")
    assert "was terminated" in str(info.value)
    rid = f"local-c-{fault}"
    assert (await provider.get(rid)).state is ResourceState.TERMINATED
    assert not session_alive(runctl_home, rid)


# --- item 6: the budget holds across processes -----------------------------------------------------


_BUDGET_WORKER = textwrap.dedent("""
    import os, sys, time
    from decimal import Decimal
    from pathlib import Path
    import anyio
    from runctl.cost import Money, Price
    from runctl.errors import BudgetExceededError
    from runctl.ledger import Ledger
    from runctl.budget import Budget
    from runctl.lifecycle import launch_safely
    from runctl.models import LaunchSpec, Resource, ResourceState
    from runctl.provider import ProviderBase
    from runctl.models import Capabilities

    class Priced(ProviderBase):
        name = "priced"
        capabilities = Capabilities()
        async def offers(self, q): return []
        async def launch(self, spec):
            return Resource(id="r-" + spec.launch_id, provider="priced",
                            state=ResourceState.RUNNING, launch_id=spec.launch_id)
        async def get(self, rid): raise NotImplementedError
        async def list(self, *, tags=None): return []
        async def terminate(self, rid): raise NotImplementedError
        async def aclose(self): pass

    worker, ledger_path, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    ledger = Ledger(ledger_path)
    ledger.records()  # ready before the start: the race is the launch itself
    Path(str(go) + "." + worker).touch()
    while not go.exists():  # all released together
        time.sleep(0.001)
    price = Price(per_hour=Money(Decimal("1.00")))
    budget = Budget(max_hourly_spend=Money(Decimal("3.00")))
    spec = LaunchSpec(command=["x"], launch_id="b" + worker)
    try:
        anyio.run(lambda: launch_safely(Priced(None), spec, ledger, budget=budget, price=price))
        print("launched")
    except BudgetExceededError:
        print("refused")
""")


def test_a_cap_that_fits_three_launches_lets_three_of_eight_processes_through(tmp_path):
    ledger_path = tmp_path / "ledger.sqlite3"
    go = tmp_path / "go"
    workers = [
        subprocess.Popen([PY, "-c", _BUDGET_WORKER, str(i), str(ledger_path), str(go)],
                         stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for i in range(8)
    ]
    deadline_polls = 0
    while len(list(tmp_path.glob("go.*"))) < 8 and all(w.poll() is None for w in workers):
        deadline_polls += 1
        assert deadline_polls < 60_000, "the workers never got ready"
        import time

        time.sleep(0.005)
    go.touch()
    results = [w.communicate(timeout=120)[0].strip() for w in workers]
    assert sorted(results) == ["launched"] * 3 + ["refused"] * 5, results
    spend = Ledger(ledger_path).spend()
    assert spend.hourly == Money(Decimal("3.00")) and spend.open_launches == 3


def test_a_launch_over_the_budget_leaves_no_intent(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    price = Price(per_hour=Money(Decimal("5")))
    budget = Budget(max_hourly_spend=Money(Decimal("3")))
    import anyio

    with pytest.raises(BudgetExceededError):
        anyio.run(lambda: launch_safely(LocalProvider(ProviderConfig(name="local", home=tmp_path)),
                                        sleeper(launch_id="over"), ledger, budget=budget,
                                        price=price))
    assert ledger.get("over") is None


# --- item 4: the default TTL is applied and recorded ----------------------------------------------


@pytest.mark.anyio
async def test_the_api_applies_and_records_the_default_ttl(runctl_home):
    local = LocalProvider(ProviderConfig(name="local", home=runctl_home, environ=dict(os.environ)))
    ledger = Ledger(runctl_home / "ledger.sqlite3")
    res = await launch_safely(local, sleeper(launch_id="ttl1"), ledger)
    try:
        record = ledger.get("ttl1")
        assert record is not None and record.ttl == DEFAULT_TTL and record.ttl_source == "default"
        assert res.tags["runctl-ttl"] == str(int(DEFAULT_TTL.total_seconds()))
        mine = await launch_safely(local, sleeper(launch_id="ttl2", ttl=timedelta(minutes=5)),
                                   ledger)
        assert ledger.get("ttl2").ttl_source == "spec"  # type: ignore[union-attr]
    finally:
        await local.terminate(res.id)
        await local.terminate(mine.id)


def test_the_cli_launch_records_the_default_ttl(runctl_home):
    env = {**os.environ, "RUNCTL_HOME": str(runctl_home)}
    rid = subprocess.run([PY, "-m", "runctl", "launch", "--", "sleep", "30"], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    try:
        (record,) = Ledger(runctl_home / "ledger.sqlite3").locate(rid)
        assert record.ttl == timedelta(hours=24) and record.ttl_source == "default"
    finally:
        subprocess.run([PY, "-m", "runctl", "terminate", rid], env=env, check=True,
                       capture_output=True, cwd=ROOT)


@pytest.mark.anyio
async def test_an_adopted_resource_gets_the_default_ttl_and_cleanup_ends_it(runctl_home):
    # The ledger lost the launch (a fault after the create): reconcile adopts it with the
    # default TTL, and a cleanup past that TTL terminates it.
    local = LocalProvider(ProviderConfig(name="local", home=runctl_home, environ=dict(os.environ)))
    res = await local.launch(sleeper(launch_id="lost1"))  # no TTL tag, no ledger row
    ledger = Ledger(runctl_home / "ledger.sqlite3")
    report = await reconcile(ledger, {"local": local}, default_ttl=timedelta(hours=1))
    (adopted,) = report.unknown
    assert adopted.ttl == timedelta(hours=1) and adopted.ttl_source == "default"
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    done = await cleanup(ledger, {"local": local}, dry_run=False, now=later, poll_interval=0.05)
    assert [i.reasons for i in done.items] == [("expired",)] and done.items[0].terminated
    assert (await local.get(res.id)).state is ResourceState.TERMINATED


def test_a_version_1_ledger_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE launches (launch_id TEXT PRIMARY KEY, provider TEXT NOT NULL,
            status TEXT NOT NULL, resource_id TEXT, name TEXT, tags TEXT NOT NULL DEFAULT '{}',
            ttl_seconds INTEGER, price TEXT, state TEXT, intent_at TEXT NOT NULL,
            confirmed_at TEXT, created_at TEXT, started_at TEXT, ended_at TEXT,
            final_cost TEXT, currency TEXT, note TEXT, updated_at TEXT NOT NULL);
        INSERT INTO launches (launch_id, provider, status, ttl_seconds, intent_at, updated_at)
            VALUES ('a', 'local', 'pending', 60, '2026-01-01T00:00:00+00:00', 'x'),
                   ('b', 'local', 'pending', NULL, '2026-01-01T00:00:00+00:00', 'x');
        PRAGMA user_version = 1;
    """)
    conn.close()
    ledger = Ledger(path)
    a, b = ledger.records()
    assert (a.ttl, a.ttl_source) == (timedelta(seconds=60), "spec")
    assert (b.ttl, b.ttl_source) == (None, "none")
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# --- item 5: a huge TTL breaks nothing ---------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "code"), [("1e12", 1), ("nan", 2), ("inf", 2), ("-5", 2), ("0", 2)])
def test_a_bad_ttl_is_a_clear_cli_error(runctl_home, ttl, code, capsys):
    from runctl.cli import main

    # Out of any range: a usage error (2); beyond the longest TTL: refused by the model (1).
    try:
        got = main(["launch", "--ttl", ttl, "--", "true"])
    except SystemExit as e:
        got = e.code
    assert got == code
    assert "--ttl" in capsys.readouterr().err
    assert not (runctl_home / "providers").exists()  # nothing was launched


@pytest.mark.anyio
async def test_cleanup_survives_huge_ttls_in_tags_and_rows(runctl_home):
    local = LocalProvider(ProviderConfig(name="local", home=runctl_home, environ=dict(os.environ)))
    res = await local.launch(sleeper(launch_id="huge1", tags={"k": "v"}, ttl=MAX_TTL))
    meta = runctl_home / "providers" / "local" / res.id / "meta.json"
    import json

    data = json.loads(meta.read_text())
    data["tags"]["runctl-ttl"] = "9" * 30  # as an older runctl or another tool wrote it
    meta.write_text(json.dumps(data))
    ledger = Ledger(runctl_home / "ledger.sqlite3")
    ledger.adopt(await local.get(res.id), note="test")
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("UPDATE launches SET ttl_seconds = 1e300")
    try:
        report = await cleanup(ledger, {"local": local}, dry_run=True)
        assert report.items == () and report.ok
    finally:
        await local.terminate(res.id)


# --- item 9: the ledger is not a single point of failure ---------------------------------------------


def test_readers_never_wait_behind_a_writer(tmp_path):
    path = tmp_path / "l.sqlite3"
    Ledger(path).record_intent(sleeper(launch_id="w1"), provider="local")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # held for the whole test
    try:
        fresh = Ledger(path, timeout=0.1)  # a new process's first use: `runctl ls`
        assert [r.launch_id for r in fresh.records()] == ["w1"]
        assert fresh.spend().open_launches == 1
        with pytest.raises(LedgerError) as info:
            fresh.record_intent(sleeper(launch_id="w2"), provider="local")
        assert info.value.reason == "locked"
    finally:
        writer.close()


def test_a_bad_row_is_reported_and_skipped(tmp_path, caplog):
    ledger = Ledger(tmp_path / "l.sqlite3")
    for lid in ("good1", "bad1", "good2"):
        ledger.record_intent(sleeper(launch_id=lid), provider="local")
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("UPDATE launches SET state = 'bogus' WHERE launch_id = 'bad1'")
    with caplog.at_level(logging.WARNING, logger="runctl.ledger"):
        assert [r.launch_id for r in ledger.records()] == ["good1", "good2"]
        assert ledger.get("bad1") is None
        assert ledger.spend().open_launches == 2
    assert "bad1" in caplog.text and "bogus" in caplog.text
    with pytest.raises(LedgerError, match="bad1"):
        ledger.close("bad1")


@pytest.mark.anyio
async def test_a_corrupt_ledger_still_lists_terminates_cleans_up_and_is_rebuilt(runctl_home):
    local = LocalProvider(ProviderConfig(name="local", home=runctl_home, environ=dict(os.environ)))
    ledger = Ledger(runctl_home / "ledger.sqlite3")
    old = await launch_safely(local, sleeper(launch_id="old1", ttl=timedelta(minutes=2)), ledger)
    keep = await launch_safely(local, sleeper(launch_id="keep1"), ledger)
    ledger.path.write_bytes(b"this is not a database" * 200)
    for suffix in ("-wal", "-shm"):
        Path(str(ledger.path) + suffix).unlink(missing_ok=True)
    damaged = Ledger(ledger.path)
    async with runctl.AsyncClient(providers={"local": local}) as rc:
        assert {r.id for r in await rc.list()} >= {old.id, keep.id}
        with pytest.raises(LedgerError) as info:
            await rc.launch(sleeper(launch_id="new1"))
        assert info.value.reason == "corrupt" and "reconcile" in str(info.value)
    # cleanup works from the tags alone: the expired one ends, the other is left alone.
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    report = await cleanup(damaged, {"local": local}, dry_run=False, now=later, poll_interval=0.05)
    assert [i.resource.id for i in report.items] == [old.id] and report.items[0].terminated
    assert "ledger" in report.errors
    # reconcile moves the damaged file aside and rebuilds the records from the provider.
    rebuilt = await reconcile(damaged, {"local": local})
    assert rebuilt.rebuilt_from is not None and Path(rebuilt.rebuilt_from).exists()
    assert [r.resource_id for r in rebuilt.unknown] == [keep.id]
    async with runctl.AsyncClient(providers={"local": local}) as rc:
        assert (await rc.terminate(keep.id)).state is ResourceState.TERMINATED
    assert damaged.find_resource("local", keep.id).is_closed  # type: ignore[union-attr]


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` made read-only for real: a read-only bind mount as root, else chmod."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    bound = subprocess.run(["mount", "--bind", str(directory), str(directory)],
                           capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot make a read-only directory here: {bound.stderr!r}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_a_read_only_home_reads_and_refuses_writes_clearly(runctl_home):
    ledger = Ledger(runctl_home / "ledger.sqlite3")
    ledger.record_intent(sleeper(launch_id="ro1"), provider="local")
    with read_only(runctl_home):
        again = Ledger(runctl_home / "ledger.sqlite3")
        assert [r.launch_id for r in again.records()] == ["ro1"]
        with pytest.raises(LedgerError) as info:
            again.record_intent(sleeper(launch_id="ro2"), provider="local")
        assert info.value.reason == "read-only" and "read-only" in str(info.value)
        env = {**os.environ, "RUNCTL_HOME": str(runctl_home)}
        ls = subprocess.run([PY, "-m", "runctl", "ls"], env=env, capture_output=True,
                            text=True, cwd=ROOT)
        assert ls.returncode == 0, ls.stderr


def test_a_full_disk_refuses_writes_clearly_and_reads_go_on(tmp_path):
    # The write is refused by the kernel (a file size limit: the same refusal a full
    # disk gives), in a process of its own.
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    ledger.record_intent(sleeper(launch_id="f1"), provider="local")
    script = textwrap.dedent(f"""
        import os, resource, signal
        from runctl.errors import LedgerError
        from runctl.ledger import Ledger
        from runctl.models import LaunchSpec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        files = [{str(path)!r} + suffix for suffix in ("", "-wal")]
        size = max(os.path.getsize(f) for f in files if os.path.exists(f))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
        ledger = Ledger({str(path)!r})
        print([r.launch_id for r in ledger.records()])
        try:
            ledger.record_intent(LaunchSpec(command=["x"], launch_id="f2", tags={{"k": "v" * 250}},
                                            name="n" * 60), provider="local")
        except LedgerError as e:
            print(e.reason, "|", e)
    """)
    out = subprocess.run([PY, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[0] == "['f1']", out.stderr
    assert lines[1].startswith("full |") and "disk is full" in lines[1], out.stdout + out.stderr


def test_damage_inside_the_file_is_found_and_moved_aside(tmp_path):
    # The header is intact (a plain open works); pages inside it are not.
    ledger = Ledger(tmp_path / "l.sqlite3")
    for i in range(200):
        ledger.record_intent(sleeper(launch_id=f"p{i}", name="n" * 60), provider="local")
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(ledger.path.read_bytes())
    page = 4096
    data[2 * page : 2 * page + page] = os.urandom(page)
    ledger.path.write_bytes(bytes(data))
    aside = Ledger(ledger.path).rebuild()
    assert aside is not None and aside.exists()
    assert Ledger(ledger.path).records() == []
