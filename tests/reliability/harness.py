"""Drives launch/terminate cycles and cancelled launches through runctl against a
fault-injecting server, and checks the outcome against the server's own truth."""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs
import httpx

from runctl.errors import RunctlError
from runctl.lifecycle import launch_safely, terminate_verified
from runctl.models import LaunchSpec
from runctl.reconcile import cleanup, reconcile

from .conftest import SETTLE, USER_SECRET
from .fake_runpod import GPU_ID, FakeRunPod

if TYPE_CHECKING:
    from runctl.ledger import Ledger
    from runctl.provider import Provider

    from .conftest import TextSink

ATTEMPTS = 25


@attrs.define
class Figures:
    """What a run did and found; the numbers docs/reliability.md reports."""

    name: str
    cycles: int = 0
    requests: int = 0
    faults_injected: int = 0
    faults_by_kind: dict[str, int] = attrs.field(factory=dict)
    launch_errors_seen: int = 0
    terminate_errors_seen: int = 0
    errors_by_type: dict[str, int] = attrs.field(factory=dict)
    cancellations: int = 0
    cancelled_before_create: int = 0
    cancelled_after_create: int = 0
    duplicates: int = 0
    leaks: int = 0
    ledger_inconsistencies: list[str] = attrs.field(factory=list)
    cleanup_found_after: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        data = attrs.asdict(self)
        line = json.dumps(data, sort_keys=True)
        target = os.environ.get("RUNCTL_RELIABILITY_REPORT")
        if target:
            with open(target, "a") as f:
                f.write(line + "\n")
        return line


def spec_for(launch_id: str) -> LaunchSpec:
    return LaunchSpec(
        command=["python", "train.py", "--epochs", "1"],
        image="runpod/pytorch:2.4.0-py3.11-cuda12.4.1",
        instance_type=f"SECURE:{GPU_ID}",
        gpu_count=1,
        env={"HF_TOKEN": USER_SECRET},
        ttl=3600,
        launch_id=launch_id,
    )


def _count(figures: Figures, error: BaseException, sink: TextSink) -> None:
    sink.add(error)
    name = type(error).__name__
    figures.errors_by_type[name] = figures.errors_by_type.get(name, 0) + 1


async def _launch_until_done(
    provider: Provider, spec: LaunchSpec, ledger: Ledger, figures: Figures, sink: TextSink
) -> Any:
    for _ in range(ATTEMPTS):
        try:
            return await launch_safely(
                provider, spec, ledger, settle=SETTLE, poll_interval=0.03
            )
        except RunctlError as e:  # a user retries with the same launch id
            figures.launch_errors_seen += 1
            _count(figures, e, sink)
    raise AssertionError(f"launch {spec.launch_id} never succeeded in {ATTEMPTS} attempts")


async def _terminate_until_done(
    provider: Provider, resource_id: str, ledger: Ledger, figures: Figures, sink: TextSink
) -> None:
    for _ in range(ATTEMPTS):
        try:
            await terminate_verified(provider, resource_id, ledger, timeout=1.0,
                                     poll_interval=0.005)
            return
        except RunctlError as e:
            figures.terminate_errors_seen += 1
            _count(figures, e, sink)
    raise AssertionError(f"terminate {resource_id} never verified in {ATTEMPTS} attempts")


async def run_cycles(
    server: FakeRunPod, provider: Provider, ledger: Ledger, cycles: int, sink: TextSink
) -> Figures:
    figures = Figures(name=f"{cycles} launch/terminate cycles")
    started = time.monotonic()
    for i in range(cycles):
        spec = spec_for(f"cycle-{i:05d}")
        resource = await _launch_until_done(provider, spec, ledger, figures, sink)
        sink.add(resource)
        await _terminate_until_done(provider, resource.id, ledger, figures, sink)
        figures.cycles += 1
    figures.seconds = round(time.monotonic() - started, 1)
    await _settle_and_check(server, provider, ledger, figures, sink)
    return figures


class CancelAt(httpx.AsyncBaseTransport):
    """The provider's transport, which cancels the running launch at a chosen step.

    Steps count the launch's requests: step ``2k - 1`` is just before request ``k``
    is sent, step ``2k`` just after its answer arrived (the server acted, the caller
    never hears). Cancelling at a step, not at a moment of wall-clock time, makes
    the run the same on a loaded machine as on an idle one.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._scope: anyio.CancelScope | None = None
        self._step = 0
        self._seen = 0

    def arm(self, scope: anyio.CancelScope, step: int) -> None:
        self._scope, self._step, self._seen = scope, step, 0

    def disarm(self) -> None:
        self._scope = None

    async def _maybe_cancel(self) -> None:
        self._seen += 1
        if self._scope is not None and self._seen == self._step:
            scope, self._scope = self._scope, None
            scope.cancel()
            await anyio.lowlevel.checkpoint()  # raises the cancellation here

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._maybe_cancel()
        response = await self._inner.handle_async_request(request)
        try:
            await self._maybe_cancel()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await response.aclose()
            raise
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def run_cancellations(
    server: FakeRunPod,
    provider: Provider,
    transport: CancelAt,
    ledger: Ledger,
    count: int,
    seed: int,
    sink: TextSink,
    *,
    steps: int = 6,
) -> Figures:
    """Cancel ``count`` launches, each at a random step among its first ``steps`` (see CancelAt).

    A launch that finishes before its step is terminated as usual and does not count.
    """
    figures = Figures(name=f"{count} launches cancelled at random steps")
    rng = random.Random(seed)
    started = time.monotonic()
    for i in range(count * 5):
        if figures.cancellations == count:
            break
        launch_id = f"cancel-{i:04d}"
        resource = None
        with anyio.CancelScope() as scope:
            transport.arm(scope, rng.randint(1, steps))
            try:
                resource = await launch_safely(
                    provider, spec_for(launch_id), ledger, settle=SETTLE, poll_interval=0.03
                )
            except RunctlError as e:
                _count(figures, e, sink)
            finally:
                transport.disarm()
        if scope.cancelled_caught:
            figures.cancellations += 1
            if server.pods_of(launch_id):
                figures.cancelled_after_create += 1
            else:
                figures.cancelled_before_create += 1
            # Nothing of this launch may run on, right after the cancelled call returned.
            figures.leaks += sum(server.is_live(p) for p in server.pods_of(launch_id))
        elif resource is not None:
            # Finished before its step: the caller terminates it as usual.
            await _terminate_until_done(provider, resource.id, ledger, figures, sink)
        figures.cycles += 1
    figures.seconds = round(time.monotonic() - started, 1)
    await _settle_and_check(server, provider, ledger, figures, sink, count_leaks=False)
    return figures


async def _settle_and_check(
    server: FakeRunPod,
    provider: Provider,
    ledger: Ledger,
    figures: Figures,
    sink: TextSink,
    *,
    count_leaks: bool = True,
) -> None:
    figures.requests = server.requests_seen
    figures.faults_by_kind = dict(sorted(server.faults_injected.items()))
    figures.faults_injected = sum(server.faults_injected.values())
    figures.duplicates = sum(n - 1 for n in server.duplicates().values())
    if count_leaks:
        figures.leaks = len(server.live())
    figures.ledger_inconsistencies = consistency_problems(server, ledger)
    # With the faults off, reconcile and cleanup must find nothing left to do.
    server.fault_rate = 0.0
    reconciled = await reconcile(ledger, {"runpod": provider})
    swept = await cleanup(ledger, {"runpod": provider}, dry_run=False, poll_interval=0.001)
    sink.add(reconciled, swept)
    figures.cleanup_found_after = len(swept.items) + len(reconciled.unknown) + len(
        reconciled.adopted
    )


def consistency_problems(server: FakeRunPod, ledger: Ledger) -> list[str]:
    """Every way the ledger disagrees with the server's truth."""
    problems: list[str] = []
    records = {r.launch_id: r for r in ledger.records()}
    launched: Counter[str] = Counter()
    for launch_id in records:
        pods = server.pods_of(launch_id)
        launched[launch_id] = len(pods)
        record = records[launch_id]
        if record.status == "pending":
            problems.append(f"{launch_id}: still pending")
        elif record.status == "open":
            if not (record.resource_id and server.is_live(record.resource_id)):
                problems.append(f"{launch_id}: open, but {record.resource_id} is not live")
        elif record.resource_id is None:
            if pods:
                problems.append(f"{launch_id}: closed as nothing created, but {pods} exist")
        elif server.is_live(record.resource_id):
            problems.append(f"{launch_id}: closed, but {record.resource_id} still runs")
        if record.resource_id is not None and record.resource_id not in pods:
            problems.append(f"{launch_id}: records {record.resource_id}, server has {pods}")
        if record.status == "closed" and record.resource_id and record.final_cost is None:
            problems.append(f"{launch_id}: closed without a final cost")
    for pod in server.live():
        if FakeRunPod.launch_id_of(pod) not in records:
            problems.append(f"{pod['id']}: live on the server, unknown to the ledger")
    return problems

