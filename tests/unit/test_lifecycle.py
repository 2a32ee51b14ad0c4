"""Launch guards, safe launch, verified termination, reconcile and cleanup, over an in-process fake."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest

from runctl import clock
from runctl.budget import Budget, check_budget
from runctl.cost import Money, Price
from runctl.errors import (
    BudgetExceededError,
    CapacityError,
    CurrencyMismatchError,
    NotFoundError,
    ProviderConnectionError,
    ServerError,
    TerminationUnverifiedError,
    ValidationError,
)
from runctl.ledger import Ledger
from runctl.lifecycle import apply_default_ttl, launch_safely, terminate_verified
from runctl.models import Capabilities, LaunchSpec, Offer, Resource, ResourceState
from runctl.provider import ProviderBase
from runctl.reconcile import cleanup, reconcile

# Every wait here (the fake cloud's, the settle looks, the deadlines) is on the fake clock:
# the outcome of a cancellation depends on virtual time, never on how busy the machine is.
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("fake_clock")]

PRICE = Price(per_hour=Money("2.00"), gpu_count=1)
FAST = {"settle": 0.05, "poll_interval": 0.005}


def now() -> datetime:
    return clock.now()


class FakeCloud(ProviderBase):
    """A provider in memory. ``faults[method]`` holds what the next calls do instead."""

    name = "fake"

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.faults: dict[str, list[Any]] = {}
        self.launch_calls = 0
        self.before_create = 0.0
        self.after_create = 0.0
        self.on_launch: Any = None
        self._ids = itertools.count(1)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(tags=True, idempotent_launch=True)

    def _fault(self, method: str) -> Any:
        queue = self.faults.get(method)
        return queue.pop(0) if queue else None

    def live(self) -> list[Resource]:
        return [r for r in self.resources.values() if r.state is not ResourceState.TERMINATED]

    def add(self, launch_id: str, **kw: Any) -> Resource:
        rid = f"r{next(self._ids)}"
        fields: dict[str, Any] = {
            "id": rid, "provider": self.name, "state": ResourceState.RUNNING,
            "launch_id": launch_id, "created_at": now(), "started_at": now(), "price": PRICE,
            "tags": {"runctl-managed-by": "runctl", "runctl-launch-id": launch_id},
        }
        fields.update(kw)
        self.resources[rid] = Resource(**fields)
        return self.resources[rid]

    async def offers(self, query: Any) -> Sequence[Offer]:
        return []

    async def launch(self, spec: LaunchSpec) -> Resource:
        self.launch_calls += 1
        if self.on_launch is not None:
            self.on_launch(spec)
        await clock.sleep(self.before_create)
        fault = self._fault("launch")
        if isinstance(fault, BaseException):
            raise fault
        existing = [r for r in self.live() if r.launch_id == spec.launch_id]
        created = existing[0] if existing else self.add(spec.launch_id, tags=spec.runctl_tags)
        await clock.sleep(self.after_create)
        if fault == "lose":
            error = ProviderConnectionError("POST /pods failed (ReadError)", provider=self.name)
            error.maybe_applied = True
            raise error
        return created

    async def get(self, resource_id: str) -> Resource:
        fault = self._fault("get")
        if isinstance(fault, BaseException):
            raise fault
        if resource_id not in self.resources:
            raise NotFoundError(f"{resource_id} not found", provider=self.name, status=404)
        return self.resources[resource_id]

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        fault = self._fault("list")
        if isinstance(fault, BaseException):
            raise fault
        if fault == "lag":  # the provider's list does not show the newest resources yet
            return []
        return [
            r for r in self.resources.values()
            if all(r.tags.get(k) == v for k, v in (tags or {}).items())
        ]

    async def terminate(self, resource_id: str) -> Resource:
        fault = self._fault("terminate")
        if isinstance(fault, BaseException):
            raise fault
        current = await self.get(resource_id)
        if fault == "stale":  # accepted, but reported as still running
            return current
        gone = current.evolve(state=ResourceState.TERMINATED, ended_at=now())
        self.resources[resource_id] = gone
        return gone


def spec(launch_id: str = "l1", **kw: Any) -> LaunchSpec:
    return LaunchSpec(command=["python", "train.py"], launch_id=launch_id, **kw)


def server_error() -> ServerError:
    return ServerError("boom", provider="fake", status=502)


# --- launch ---------------------------------------------------------------------------------


async def test_the_intent_is_written_before_the_provider_is_called() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    seen: list[str | None] = []
    cloud.on_launch = lambda s: seen.append(getattr(ledger.get(s.launch_id), "status", None))
    resource = await launch_safely(cloud, spec(), ledger, price=PRICE, **FAST)
    assert seen == ["pending"]
    record = ledger.get("l1")
    assert record is not None
    assert (record.status, record.resource_id, record.price) == ("open", resource.id, PRICE)


async def test_a_lost_answer_to_a_create_is_recovered_without_a_second_resource() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    cloud.faults["launch"] = ["lose"]
    resource = await launch_safely(cloud, spec(), ledger, **FAST)
    assert [r.id for r in cloud.live()] == [resource.id]
    assert ledger.get("l1").resource_id == resource.id  # type: ignore[union-attr]


async def test_a_failed_launch_that_created_nothing_is_closed_and_raises() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    cloud.faults["launch"] = [CapacityError("no H100 left", provider="fake", status=400)]
    with pytest.raises(CapacityError):
        await launch_safely(cloud, spec(), ledger, **FAST)
    record = ledger.get("l1")
    assert record is not None
    assert record.status == "closed"
    assert record.note == "launch failed (CapacityError); nothing created"


async def test_when_the_provider_cannot_be_asked_the_launch_stays_pending_for_reconcile() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    cloud.faults["launch"] = ["lose"]
    cloud.faults["list"] = [server_error()] * 1000
    with pytest.raises(ProviderConnectionError):
        await launch_safely(cloud, spec(), ledger, **FAST)
    assert ledger.get("l1").status == "pending"  # type: ignore[union-attr]
    cloud.faults["list"] = []

    report = await reconcile(ledger, {"fake": cloud})
    assert [r.launch_id for r in report.adopted] == ["l1"]
    assert ledger.get("l1").resource_id == cloud.live()[0].id  # type: ignore[union-attr]


async def test_a_lagging_list_then_rate_limits_never_close_a_created_launch_as_nothing() -> None:
    # Issue 9: the create is carried out after the client's read timeout; one lookup
    # gets a 500, one an empty list (the list lags), the later ones are rate limited.
    from runctl.errors import RateLimitedError

    cloud, ledger = FakeCloud(), Ledger()
    cloud.faults["launch"] = ["lose"]
    limited = RateLimitedError("slow down", provider="fake", status=429)
    cloud.faults["list"] = [ServerError("boom", provider="fake", status=500), "lag",
                            *[limited] * 1000]
    with pytest.raises(ProviderConnectionError):
        await launch_safely(cloud, spec(), ledger, settle=3.0, poll_interval=1.0)
    record = ledger.get("l1")
    assert record is not None and record.status == "pending"  # open, as unknown
    assert "reconcile" in (record.note or "")
    assert len(cloud.live()) == 1  # it exists, and the ledger still says it may
    cloud.faults["list"] = []
    report = await reconcile(ledger, {"fake": cloud})
    assert [r.launch_id for r in report.adopted] == ["l1"]


async def test_an_empty_answer_after_the_settle_period_closes_the_launch_as_nothing_created(
) -> None:
    cloud, ledger = FakeCloud(), Ledger()
    started = clock.monotonic()
    error = ProviderConnectionError("POST /pods failed (ReadError)", provider="fake")
    error.maybe_applied = True
    cloud.faults["launch"] = [error]  # raised before anything was created
    cloud.faults["list"] = ["lag", "lag"]
    with pytest.raises(ProviderConnectionError):
        await launch_safely(cloud, spec(), ledger, settle=3.0, poll_interval=1.0)
    record = ledger.get("l1")
    assert record is not None and record.status == "closed"
    assert record.note == "launch failed (ProviderConnectionError); nothing created"
    assert clock.monotonic() - started >= 3.0  # only once the settle period was over


async def test_retrying_a_launch_id_returns_the_resource_it_created() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    first = await launch_safely(cloud, spec(), ledger, **FAST)
    again = await launch_safely(cloud, spec(), ledger, **FAST)
    assert again.id == first.id
    assert cloud.launch_calls == 1


async def test_retrying_after_a_crash_before_confirmation_finds_the_first_resource() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    ledger.record_intent(spec(), provider="fake")
    made = cloud.add("l1")  # the crashed process got this far
    resource = await launch_safely(cloud, spec(), ledger, **FAST)
    assert resource.id == made.id
    assert len(cloud.live()) == 1


async def test_a_launch_id_whose_launch_ended_is_refused() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    first = await launch_safely(cloud, spec(), ledger, **FAST)
    await terminate_verified(cloud, first.id, ledger, poll_interval=0.001)
    with pytest.raises(ValidationError, match="launch_id"):
        await launch_safely(cloud, spec(), ledger, **FAST)


@pytest.mark.parametrize("after", [0.0, 0.01, 0.03, 0.05])
async def test_a_cancelled_launch_leaves_nothing_running(after: float) -> None:
    cloud, ledger = FakeCloud(), Ledger()
    cloud.before_create = 0.02  # the create happens 20 ms into the launch ...
    cloud.after_create = 0.04  # ... and the launch returns 40 ms after that
    with clock.move_on_after(after) as scope:
        await launch_safely(cloud, spec(), ledger, **FAST)
    assert scope.cancelled_caught
    assert bool(cloud.resources) is (after > 0.02)  # in virtual time, so always the same branch
    assert cloud.live() == []
    record = ledger.get("l1")
    assert record is not None
    assert record.status == "closed"
    if cloud.resources:
        assert record.note is not None
        assert record.note.startswith("cancelled; terminated r")
    else:
        assert record.note == "cancelled; nothing created"


async def test_a_timeout_inside_launch_terminates_what_was_created() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    ledger.records()  # created before the clock starts: only the launch is timed
    cloud.after_create = 1.0
    with pytest.raises(TimeoutError):
        with clock.fail_after(0.05):
            await launch_safely(cloud, spec(), ledger, **FAST)
    assert len(cloud.resources) == 1
    assert cloud.live() == []
    assert ledger.get("l1").note == "cancelled; terminated r1"  # type: ignore[union-attr]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancelling_the_asyncio_task_directly_leaves_nothing_running(
    anyio_backend: str,
) -> None:
    # What Ctrl-C does under asyncio.run: the main task is cancelled, not an anyio scope.
    import asyncio

    cloud, ledger = FakeCloud(), Ledger()
    ledger.records()  # created before the clock starts: only the launch is timed
    cloud.before_create = 0.01
    cloud.after_create = 1.0
    task = asyncio.ensure_future(launch_safely(cloud, spec(), ledger, **FAST))
    await clock.sleep(0.05)  # the create happened at 0.01; the launch returns at 1.01
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(cloud.resources) == 1
    assert cloud.live() == []
    assert ledger.get("l1").note == "cancelled; terminated r1"  # type: ignore[union-attr]


async def test_a_cancelled_launch_catches_a_resource_created_late() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    cloud.before_create = 0.05

    async def cancel_then_create_late() -> None:
        with clock.move_on_after(0.01):
            await launch_safely(cloud, spec(), ledger, settle=0.5, poll_interval=0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_then_create_late)
        await clock.sleep(0.02)
        cloud.add("l1")  # the provider carries out the create after the client gave up
    assert cloud.live() == []


# --- budget and TTL -------------------------------------------------------------------------


def test_the_default_ttl_applies_only_when_the_launch_sets_none() -> None:
    assert apply_default_ttl(spec(), 2.0).ttl == timedelta(hours=2)
    assert apply_default_ttl(spec(ttl=60), 2.0).ttl == timedelta(minutes=1)
    assert apply_default_ttl(spec(), None).ttl is None


async def test_a_launch_over_the_hourly_budget_is_refused_with_the_numbers() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    budget = Budget(max_hourly_spend=Money("5"))
    await launch_safely(cloud, spec("a"), ledger, budget=budget, price=PRICE, **FAST)
    await launch_safely(cloud, spec("b"), ledger, budget=budget, price=PRICE, **FAST)
    with pytest.raises(BudgetExceededError) as caught:
        await launch_safely(cloud, spec("c"), ledger, budget=budget, price=PRICE, **FAST)
    message = str(caught.value)
    assert "6.00 USD/h" in message
    assert "running 4.00 USD/h" in message
    assert "max_hourly_spend is 5.00 USD/h" in message
    assert ledger.get("c") is None
    assert cloud.launch_calls == 2


def test_the_total_budget_counts_the_new_launch_for_its_whole_ttl() -> None:
    ledger = Ledger()
    budget = Budget(max_total_spend=Money("10"))
    check_budget(budget, ledger, price=PRICE, ttl=timedelta(hours=5))
    with pytest.raises(BudgetExceededError, match=r"total spend would be 12.00 USD .*is 10.00 USD"):
        check_budget(budget, ledger, price=PRICE, ttl=timedelta(hours=6))


def test_a_launch_in_another_currency_cannot_be_checked_against_the_budget() -> None:
    with pytest.raises(CurrencyMismatchError):
        check_budget(Budget(max_hourly_spend=Money("5")), Ledger(),
                     price=Price(per_hour=Money("1", "EUR")), ttl=None)


def test_the_budget_comes_from_settings() -> None:
    class S:
        max_hourly_spend = "12.5"
        max_total_spend = None

    assert Budget.from_settings(S()) == Budget(max_hourly_spend=Money("12.5"))
    assert Budget.from_settings(object()).unlimited


# --- terminate ------------------------------------------------------------------------------


async def test_terminate_waits_through_stale_answers_and_then_closes_the_record() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    resource = await launch_safely(cloud, spec(), ledger, **FAST)
    cloud.faults["terminate"] = ["stale", server_error(), "stale"]
    gone = await terminate_verified(cloud, resource.id, ledger, poll_interval=0.001)
    assert gone.state is ResourceState.TERMINATED
    record = ledger.get("l1")
    assert record is not None
    assert (record.status, record.state, record.note) == ("closed", gone.state, "terminated")
    assert record.final_cost is not None


async def test_an_unconfirmed_terminate_raises_and_keeps_the_record_open() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    resource = await launch_safely(cloud, spec(), ledger, **FAST)
    cloud.faults["terminate"] = ["stale"] * 1000
    with pytest.raises(TerminationUnverifiedError, match=f"{resource.id}.*running"):
        await terminate_verified(cloud, resource.id, ledger, timeout=0.05, poll_interval=0.005)
    assert ledger.get("l1").status == "open"  # type: ignore[union-attr]


async def test_terminating_a_resource_the_provider_no_longer_has_counts_as_gone() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    resource = await launch_safely(cloud, spec(), ledger, **FAST)
    del cloud.resources[resource.id]
    await terminate_verified(cloud, resource.id, ledger)
    assert ledger.get("l1").status == "closed"  # type: ignore[union-attr]


# --- reconcile and cleanup ------------------------------------------------------------------


async def test_reconcile_closes_gone_launches_and_records_unknown_ones() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    kept = await launch_safely(cloud, spec("kept"), ledger, **FAST)
    gone = await launch_safely(cloud, spec("gone"), ledger, **FAST)
    del cloud.resources[gone.id]
    ledger.record_intent(spec("never"), provider="fake")
    ledger.record_intent(spec("inflight"), provider="fake")
    stranger = cloud.add("stranger")

    report = await reconcile(ledger, {"fake": cloud}, now=now() + timedelta(minutes=11))
    closed = {r.launch_id: r.note for r in report.closed}
    assert closed == {"gone": "reconcile: gone", "never": "reconcile: never created",
                      "inflight": "reconcile: never created"}
    assert [r.resource_id for r in report.unknown] == [stranger.id]
    assert ledger.get("kept").status == "open"  # type: ignore[union-attr]
    assert kept.id not in [r.id for r in report.orphans]
    assert report.ok


async def test_reconcile_leaves_young_pending_launches_alone() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    ledger.record_intent(spec("inflight"), provider="fake")
    report = await reconcile(ledger, {"fake": cloud})
    assert [r.launch_id for r in report.pending] == ["inflight"]
    assert ledger.get("inflight").status == "pending"  # type: ignore[union-attr]


async def test_reconcile_changes_nothing_for_a_provider_it_cannot_ask() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    resource = await launch_safely(cloud, spec(), ledger, **FAST)
    del cloud.resources[resource.id]
    cloud.faults["list"] = [server_error()]
    report = await reconcile(ledger, {"fake": cloud})
    assert "fake" in report.errors
    assert not report.ok
    assert ledger.get("l1").status == "open"  # type: ignore[union-attr]


async def test_reconcile_does_not_close_a_launch_a_stale_list_misses() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    resource = await launch_safely(cloud, spec(), ledger, **FAST)
    original = cloud.list

    async def stale_list(*, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        return []

    cloud.list = stale_list  # type: ignore[method-assign]
    report = await reconcile(ledger, {"fake": cloud})
    cloud.list = original  # type: ignore[method-assign]
    assert report.closed == ()
    assert ledger.get("l1").resource_id == resource.id  # type: ignore[union-attr]


async def test_cleanup_dry_run_lists_expired_orphaned_and_unknown_with_cost() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    fresh = await launch_safely(cloud, spec("fresh", ttl=3600), ledger, **FAST)
    old = cloud.add("old", created_at=now() - timedelta(hours=3),
                    started_at=now() - timedelta(hours=3),
                    tags={"runctl-managed-by": "runctl", "runctl-launch-id": "old",
                          "runctl-ttl": "3600"})
    ledger.record_intent(spec("old"), provider="fake")
    ledger.confirm("old", old)
    stranger = cloud.add("stranger")
    ledger.record_intent(spec("closed"), provider="fake")
    ledger.close("closed", note="cancelled; nothing created")
    late = cloud.add("closed")

    report = await cleanup(ledger, {"fake": cloud}, dry_run=True)
    found = {i.resource.id: i for i in report.items}
    assert set(found) == {old.id, stranger.id, late.id}
    assert fresh.id not in found
    assert found[old.id].reasons == ("expired",)
    assert found[old.id].cost_so_far is not None
    assert Money("6.00") <= found[old.id].cost_so_far <= Money("6.01")  # type: ignore[operator]
    assert found[stranger.id].reasons == ("unknown",)
    assert found[late.id].reasons == ("orphaned",)
    assert len(cloud.live()) == 4  # a dry run terminates nothing


async def test_cleanup_terminates_what_it_finds_and_verifies_it() -> None:
    cloud, ledger = FakeCloud(), Ledger()
    await launch_safely(cloud, spec("fresh", ttl=3600), ledger, **FAST)
    stranger = cloud.add("stranger")
    cloud.faults["terminate"] = ["stale"]
    report = await cleanup(ledger, {"fake": cloud}, dry_run=False, poll_interval=0.001)
    assert [(i.resource.id, i.terminated) for i in report.items] == [(stranger.id, True)]
    assert report.ok
    assert [r.launch_id for r in cloud.live()] == ["fresh"]


# --- through the client ---------------------------------------------------------------------


async def test_the_client_records_launches_in_the_ledger_and_enforces_the_budget(
    runctl_home: Any,
) -> None:
    from runctl.client import AsyncClient
    from runctl.config import Settings

    cloud = FakeCloud()
    settings = Settings(home=runctl_home, default_provider="fake", default_ttl_hours=2.0,
                        max_hourly_spend=3.0)
    offer = Offer(provider="fake", instance_type="gpu-1", gpu=None, gpu_count=1, price=PRICE)
    async with AsyncClient(settings=settings, providers={"fake": cloud}) as rc:
        first = await rc.launch(spec("a", offer=offer))
        record = rc.ledger.get("a")
        assert record is not None
        assert (record.status, record.resource_id) == ("open", first.id)
        assert record.ttl == timedelta(hours=2)
        with pytest.raises(BudgetExceededError, match="max_hourly_spend is 3.00 USD/h"):
            await rc.launch(spec("b", offer=offer))
        await rc.terminate(first)
        assert rc.ledger.get("a").status == "closed"  # type: ignore[union-attr]
        stray = cloud.add("stray")
        assert [i.resource.id for i in (await rc.cleanup(dry_run=True)).items] == [stray.id]
        assert [r.resource_id for r in (await rc.reconcile()).unknown] == [stray.id]
