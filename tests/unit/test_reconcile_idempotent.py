"""Reconcile and cleanup tell the truth and are idempotent (issue 9, items 6 and 11)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import runctl
from runctl.cost import Money, Price
from runctl.errors import AuthenticationError
from runctl.ledger import Ledger
from runctl.lifecycle import launch_safely
from runctl.models import Capabilities, LaunchSpec, Offer, Resource, ResourceState
from runctl.provider import ProviderBase
from runctl.reconcile import cleanup, reconcile

QUICK = LaunchSpec(command=[sys.executable, "-c", "print('done')"], provider="local", name="quick")


def test_a_job_that_ended_on_its_own_is_closed_with_its_final_cost_once():
    with runctl.Client() as rc:
        res = rc.launch(QUICK)  # detached: nobody terminates it
        done = rc.wait(res, until="finished", timeout=60)
        assert done.state is ResourceState.SUCCEEDED
        first = rc.reconcile()
        assert [r.resource_id for r in first.closed] == [res.id]
        record = rc.ledger.find_resource("local", res.id)
        assert record is not None and record.status == "closed"
        assert record.final_cost == Money("0", "USD")
        assert record.note == "reconcile: ended on its own (succeeded)"
        assert first.ok
        second = rc.reconcile()
        assert (second.adopted, second.closed, second.unknown, second.orphans) == ((), (), (), ())
        assert rc.cleanup(dry_run=False).items == ()


def test_after_a_run_reconcile_reports_no_orphan_and_cleanup_finds_nothing_twice():
    # What `runctl run` does: launch, wait, terminate; the local provider still lists
    # the finished job (it holds nothing) and the ledger has closed it.
    with runctl.Client() as rc:
        with rc.launch(QUICK) as res:
            rc.wait(res, until="finished", timeout=60)
        report = rc.reconcile()
        assert report.orphans == () and report.ok
        for _ in range(2):
            swept = rc.cleanup(dry_run=False)
            assert swept.items == () and swept.ok


# --- a provider whose ended command keeps its machine (and bill), like RunPod and Vast ------

PRICE = Price(per_hour=Money(Decimal("2"), "USD"), gpu_count=1)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class HeldMachines(ProviderBase):
    """In memory. ``ended_holding`` makes every resource SUCCEEDED with its machine kept."""

    name = "held"

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.ended_holding = False
        self.list_calls = 0
        self.refuse_key = False

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(tags=True, idempotent_launch=True)

    async def offers(self, query: Any) -> Sequence[Offer]:
        return []

    async def launch(self, spec: LaunchSpec) -> Resource:
        if self.refuse_key:
            raise AuthenticationError("held: POST /pods: invalid API key", provider=self.name,
                                      status=401)
        res = Resource(id=f"m{len(self.resources) + 1}", provider=self.name,
                       state=ResourceState.RUNNING, launch_id=spec.launch_id,
                       created_at=_now(), started_at=_now(), price=PRICE, tags=spec.runctl_tags)
        self.resources[res.id] = res
        return res

    def _seen(self, res: Resource) -> Resource:
        if self.ended_holding and res.state is ResourceState.RUNNING:
            return res.evolve(state=ResourceState.SUCCEEDED, exit_code=0)  # no ended_at
        return res

    async def get(self, resource_id: str) -> Resource:
        return self._seen(self.resources[resource_id])

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        self.list_calls += 1
        return [self._seen(r) for r in self.resources.values()
                if r.state is not ResourceState.TERMINATED]

    async def terminate(self, resource_id: str) -> Resource:
        res = self.resources[resource_id].evolve(state=ResourceState.TERMINATED, ended_at=_now())
        self.resources[resource_id] = res
        return res


@pytest.mark.anyio
async def test_an_ended_command_on_a_machine_that_still_bills_stays_open_and_is_cleaned():
    cloud, ledger = HeldMachines(), Ledger()
    spec = LaunchSpec(command=["train"], launch_id="l1", ttl=timedelta(seconds=1))
    made = await launch_safely(cloud, spec, ledger)
    cloud.ended_holding = True
    report = await reconcile(ledger, {"held": cloud})
    assert report.closed == () and report.orphans == ()
    assert ledger.get("l1").status == "open"  # type: ignore[union-attr]
    later = _now() + timedelta(minutes=1)
    swept = await cleanup(ledger, {"held": cloud}, dry_run=False, now=later, poll_interval=0.001)
    assert [i.resource.id for i in swept.items] == [made.id] and swept.ok
    assert ledger.get("l1").status == "closed"  # type: ignore[union-attr]
    assert (await cleanup(ledger, {"held": cloud}, dry_run=False, now=later)).items == ()


@pytest.mark.anyio
async def test_a_launch_refused_with_401_closes_its_record_as_nothing_created(caplog):
    cloud, ledger = HeldMachines(), Ledger()
    cloud.refuse_key = True
    with pytest.raises(AuthenticationError):
        await launch_safely(cloud, LaunchSpec(command=["train"], launch_id="l401"), ledger)
    record = ledger.get("l401")
    assert record is not None and record.status == "closed"
    assert record.note == "launch failed (AuthenticationError); nothing created"
    assert cloud.list_calls == 0  # no look for what a refused request cannot have made
    assert "reconcile" not in caplog.text
