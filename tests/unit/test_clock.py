"""runctl's one time seam: the real clock outside tests, a virtual one that tests drive."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anyio
import pytest

from runctl import clock
from runctl.testing import FakeClock

pytestmark = pytest.mark.anyio


def test_the_system_clock_reads_aware_utc_and_a_monotonic_clock() -> None:
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timezone.utc.utcoffset(None)
    assert abs((now - datetime.now(timezone.utc)).total_seconds()) < 60
    assert clock.monotonic() <= clock.monotonic()
    assert isinstance(clock.current(), clock.SystemClock)
    assert isinstance(clock.current(), clock.Clock)


async def test_a_sleep_under_the_fake_clock_costs_no_real_time(fake_clock: FakeClock) -> None:
    real = anyio.current_time()
    before = clock.now()
    await clock.sleep(3600)
    assert clock.monotonic() == 3600
    assert clock.now() - before == timedelta(hours=1)
    assert fake_clock.sleeps == [3600]
    assert anyio.current_time() - real < 30  # an hour of virtual time, not of real time


async def test_a_deadline_fires_when_virtual_time_reaches_it(fake_clock: FakeClock) -> None:
    with pytest.raises(TimeoutError):
        with clock.fail_after(0.05):
            await clock.sleep(1.0)
    assert clock.monotonic() == 0.05
    with clock.move_on_after(2) as scope:
        await clock.sleep(1.0)
    assert not scope.cancelled_caught
    assert clock.monotonic() == 1.05


async def test_concurrent_sleeps_end_in_the_order_of_their_wake_up_times(
    fake_clock: FakeClock,
) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, *delays: float) -> None:
        for delay in delays:
            await clock.sleep(delay)
            woke.append((name, clock.monotonic()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "a", 3.0)
        tg.start_soon(sleeper, "b", 1.0, 1.0, 1.5)
    assert woke == [("b", 1.0), ("b", 2.0), ("a", 3.0), ("b", 3.5)]


async def test_a_deadline_cancels_a_task_that_another_task_sleeps_past(
    fake_clock: FakeClock,
) -> None:
    event = anyio.Event()  # never set: only virtual time can end the wait
    outcome: list[str] = []

    async def waiter() -> None:
        with clock.move_on_after(5) as scope:
            await event.wait()
        outcome.append(f"gave up at {clock.monotonic():g}" if scope.cancelled_caught else "set")

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await clock.sleep(10)
    assert outcome == ["gave up at 5"]


async def test_advance_moves_time_and_fires_what_is_due(fake_clock: FakeClock) -> None:
    with clock.move_on_after(1) as scope:
        fake_clock.advance(2)
        await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert clock.monotonic() == 2
    with pytest.raises(ValueError, match="back"):
        fake_clock.advance(-1)


async def test_a_zero_or_negative_deadline_cancels_at_the_first_checkpoint(
    fake_clock: FakeClock,
) -> None:
    for delay in (0, -1):
        with clock.move_on_after(delay) as scope:
            await anyio.lowlevel.checkpoint()
        assert scope.cancelled_caught
    with clock.move_on_after(None) as scope:
        await clock.sleep(1e6)
    assert not scope.cancelled_caught


def test_the_fake_clock_is_installed_only_inside_its_block() -> None:
    with FakeClock(start=datetime(2030, 5, 1, tzinfo=timezone.utc)) as fake:
        assert clock.current() is fake
        assert clock.now() == datetime(2030, 5, 1, tzinfo=timezone.utc)
        with pytest.raises(RuntimeError, match="already installed"):
            fake.__enter__()
    assert isinstance(clock.current(), clock.SystemClock)
    with pytest.raises(ValueError, match="aware"):
        FakeClock(start=datetime(2030, 5, 1))


async def test_http_retries_wait_on_the_clock(fake_clock: FakeClock) -> None:
    import httpx

    from runctl.http import HttpApi, RetryPolicy

    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            return httpx.Response(503, headers={"Retry-After": "7"})
        return httpx.Response(200, json={})

    api = HttpApi(provider="p", base_url="http://127.0.0.1:1", transport=httpx.MockTransport(handler),
                  retry=RetryPolicy(attempts=3, cap=10))
    try:
        await api.request("GET", "/x")
    finally:
        await api.aclose()
    assert fake_clock.sleeps == [7.0, 7.0]
    assert clock.monotonic() == 14.0
