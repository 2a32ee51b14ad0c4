"""The ledger: every launch recorded before, during and after; readable by several processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from runctl.cost import Money, Price
from runctl.errors import ConfigurationError, ValidationError
from runctl.ledger import SCHEMA_VERSION, Ledger
from runctl.models import LaunchSpec, Resource, ResourceState

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
PRICE = Price(per_hour=Money("2.00"), gpu_count=1)


def spec(launch_id: str, **kw: object) -> LaunchSpec:
    return LaunchSpec(command=["python", "train.py"], launch_id=launch_id, **kw)  # type: ignore[arg-type]


def resource(rid: str, launch_id: str, **kw: object) -> Resource:
    fields: dict[str, object] = {
        "id": rid, "provider": "fake", "state": ResourceState.RUNNING, "launch_id": launch_id,
        "created_at": T0, "started_at": T0, "price": PRICE,
    }
    fields.update(kw)
    return Resource(**fields)  # type: ignore[arg-type]


def test_the_default_ledger_lives_in_the_runctl_home(runctl_home: Path) -> None:
    ledger = Ledger()
    ledger.record_intent(spec("a1"), provider="fake")
    assert ledger.path == runctl_home / "ledger.sqlite3"
    assert ledger.path.exists()


def test_a_launch_goes_pending_then_open_then_closed_with_its_cost() -> None:
    ledger = Ledger()
    pending = ledger.record_intent(spec("a1", name="job", ttl=3600), provider="fake", price=PRICE)
    assert (pending.status, pending.resource_id, pending.ttl) == ("pending", None, timedelta(hours=1))
    assert pending.tags["runctl-launch-id"] == "a1"

    opened = ledger.confirm("a1", resource("r1", "a1"))
    assert (opened.status, opened.resource_id, opened.state) == ("open", "r1", ResourceState.RUNNING)
    assert opened.price == PRICE

    closed = ledger.close("a1", state=ResourceState.TERMINATED, ended_at=T0 + timedelta(minutes=90))
    assert closed.status == "closed"
    assert closed.final_cost == Money("3.00")
    assert ledger.find_resource("fake", "r1") == closed


def test_recording_the_same_intent_twice_returns_the_first_record() -> None:
    ledger = Ledger()
    first = ledger.record_intent(spec("same"), provider="fake")
    ledger.confirm("same", resource("r1", "same"))
    again = ledger.record_intent(spec("same"), provider="fake")
    assert again.intent_at == first.intent_at
    assert again.status == "open"
    assert len(ledger.records()) == 1


def test_a_launch_id_cannot_be_reused_on_another_provider() -> None:
    ledger = Ledger()
    ledger.record_intent(spec("x"), provider="fake")
    with pytest.raises(ValidationError, match="launch_id"):
        ledger.record_intent(spec("x"), provider="other")


def test_closing_twice_keeps_the_first_close() -> None:
    ledger = Ledger()
    ledger.record_intent(spec("a"), provider="fake")
    first = ledger.close("a", note="nothing created")
    second = ledger.close("a", note="something else")
    assert first == second
    assert second.final_cost is None


def test_a_confirmation_arriving_after_close_does_not_reopen() -> None:
    ledger = Ledger()
    ledger.record_intent(spec("a"), provider="fake")
    ledger.close("a", note="cancelled; nothing created")
    assert ledger.confirm("a", resource("r", "a")).status == "closed"


def test_unknown_launch_ids_are_reported_as_runctl_errors() -> None:
    ledger = Ledger()
    assert ledger.get("nope") is None
    with pytest.raises(ValidationError, match="not in the ledger"):
        ledger.close("nope")
    with pytest.raises(ValidationError):
        ledger.confirm("nope", resource("r", "nope"))


def test_adopting_an_unknown_resource_rebuilds_its_record_from_tags() -> None:
    ledger = Ledger()
    found = resource("r9", "lost", tags={"runctl-launch-id": "lost", "runctl-ttl": "600"})
    record = ledger.adopt(found, note="adopted")
    assert (record.launch_id, record.status, record.ttl) == ("lost", "open", timedelta(minutes=10))
    assert ledger.adopt(found, note="again") == record


def test_spend_counts_open_launches_per_hour_and_everything_in_total() -> None:
    ledger = Ledger()
    for lid in ("a", "b", "c"):
        ledger.record_intent(spec(lid), provider="fake", price=PRICE)
    ledger.confirm("a", resource("ra", "a"))
    ledger.confirm("b", resource("rb", "b"))
    ledger.close("b", ended_at=T0 + timedelta(hours=1))
    eur = Price(per_hour=Money("9", "EUR"))
    ledger.record_intent(spec("d"), provider="fake", price=eur)

    spend = ledger.spend("USD", now=T0 + timedelta(hours=2))
    # a runs (2/h for 2 h), b ended after 1 h, c is pending (priced, nothing created yet).
    assert spend.hourly == Money("4.00")
    assert spend.total == Money("6.00")
    assert spend.open_launches == 3
    assert spend.uncounted == 1


def test_open_records_are_the_ones_not_closed() -> None:
    ledger = Ledger()
    ledger.record_intent(spec("a"), provider="fake")
    ledger.record_intent(spec("b"), provider="other")
    ledger.record_intent(spec("c"), provider="fake")
    ledger.close("c")
    assert [r.launch_id for r in ledger.open_records()] == ["a", "b"]
    assert [r.launch_id for r in ledger.open_records("fake")] == ["a"]


def test_nothing_secret_from_the_spec_is_stored(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    ledger.record_intent(
        spec("s", env={"HF_TOKEN": "hf_supersecretvalue"}, ssh_public_key="ssh-ed25519 AAAAkey"),
        provider="fake",
    )
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("l.db*"))
    assert b"runctl-launch-id" in raw  # the scan reads the stored data
    assert b"supersecret" not in raw
    assert b"AAAAkey" not in raw


def test_the_database_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    Ledger(tmp_path / "l.db").records()
    conn = sqlite3.connect(tmp_path / "l.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_ledger_from_a_newer_runctl_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigurationError, match="newer runctl"):
        Ledger(tmp_path / "l.db").records()


def test_an_unwritable_location_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError):
        Ledger(blocker / "ledger.sqlite3").records()


def _writer(path: str, worker: int, count: int) -> None:
    ledger = Ledger(path)
    price = Price(per_hour=Money(Decimal("0.01")))
    for i in range(count):
        lid = f"w{worker}-{i}"
        ledger.record_intent(spec(lid), provider="fake", price=price)
        ledger.confirm(lid, resource(f"r{worker}-{i}", lid))
        # Every process also writes the same shared launch id: exactly one record must result.
        ledger.record_intent(spec("shared"), provider="fake")
        ledger.close(lid, ended_at=T0 + timedelta(hours=1))


def test_several_processes_write_at_once_without_losing_a_record(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.sqlite3")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    records = Ledger(path).records()
    assert len(records) == 4 * 40 + 1
    assert sum(r.status == "closed" for r in records) == 160
    assert Ledger(path).spend(now=T0).total == Money("320.00")  # 160 runs, 1 h at 2/h
