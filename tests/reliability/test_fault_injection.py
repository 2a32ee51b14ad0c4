"""Launch/terminate cycles and cancelled launches against a RunPod-shaped server that fails
30% of requests: no duplicate, no leak, and a ledger that agrees with the server.

The default run is short; ``-m slow`` (the ``reliability`` nox session) runs 1,000 cycles
and 100 cancellations.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from runctl.ledger import Ledger

from .conftest import TextSink
from .fake_runpod import FakeRunPod
from .harness import CancelAt, run_cancellations, run_cycles

pytestmark = pytest.mark.anyio

SEED = int(os.environ.get("RUNCTL_RELIABILITY_SEED", "20261127"))


@pytest.fixture
def anyio_backend() -> str:
    # One backend is enough here: the lifecycle code is covered on both in tests/unit.
    return "asyncio"


async def _cycles(
    n: int, fake_runpod: Callable[..., FakeRunPod], runpod_provider: Any, ledger: Ledger,
    sink: TextSink,
) -> None:
    server = fake_runpod(fault_rate=0.3, seed=SEED)
    provider = runpod_provider(server)
    try:
        figures = await run_cycles(server, provider, ledger, n, sink)
    finally:
        await provider.aclose()
    print("\nRELIABILITY", figures.report())
    assert figures.cycles == n
    assert figures.faults_injected >= 0.25 * figures.requests
    assert figures.duplicates == 0
    assert figures.leaks == 0
    assert figures.ledger_inconsistencies == []
    assert figures.cleanup_found_after == 0


async def _cancellations(
    n: int, fake_runpod: Callable[..., FakeRunPod], runpod_provider: Any, ledger: Ledger,
    sink: TextSink,
) -> None:
    server = fake_runpod(fault_rate=0.3, seed=SEED + 1)
    transport = CancelAt()
    provider = runpod_provider(server, transport)
    try:
        figures = await run_cancellations(server, provider, transport, ledger, n, SEED + 2, sink)
    finally:
        await provider.aclose()
    print("\nRELIABILITY", figures.report())
    assert figures.cancellations == n
    assert figures.cancelled_before_create > 0
    assert figures.cancelled_after_create > 0
    assert figures.leaks == 0
    assert figures.duplicates == 0
    assert figures.ledger_inconsistencies == []
    assert figures.cleanup_found_after == 0


# The real clock, on purpose: the server carries out a "timeout" request late, in real
# time, and the settle window that must see that late create is measured against it.


async def test_30_cycles_with_30_percent_faults_leave_no_duplicate_and_no_leak(
    fake_runpod: Callable[..., FakeRunPod], runpod_provider: Any, ledger: Ledger, sink: TextSink,
) -> None:
    await _cycles(30, fake_runpod, runpod_provider, ledger, sink)


@pytest.mark.slow
async def test_1000_cycles_with_30_percent_faults_leave_no_duplicate_and_no_leak(
    fake_runpod: Callable[..., FakeRunPod], runpod_provider: Any, ledger: Ledger, sink: TextSink,
) -> None:
    await _cycles(1000, fake_runpod, runpod_provider, ledger, sink)


async def test_20_launches_cancelled_at_random_steps_leak_nothing(
    fake_runpod: Callable[..., FakeRunPod], runpod_provider: Any, ledger: Ledger, sink: TextSink,
) -> None:
    await _cancellations(20, fake_runpod, runpod_provider, ledger, sink)


@pytest.mark.slow
async def test_100_launches_cancelled_at_random_steps_leak_nothing(
    fake_runpod: Callable[..., FakeRunPod], runpod_provider: Any, ledger: Ledger, sink: TextSink,
) -> None:
    await _cancellations(100, fake_runpod, runpod_provider, ledger, sink)
