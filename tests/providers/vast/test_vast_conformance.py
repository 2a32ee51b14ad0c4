"""The Vast provider passes runctl's conformance kit against the fake Vast."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest

from runctl.cost import Money
from runctl.models import LaunchSpec, Offer
from runctl.testing import FakeClock, check_provider
from tests.support.conformance import HttpFaults

from .fake_vast import OFFER, FakeVast
from .test_vast_faults import make


class VastDriver(HttpFaults):
    """Moves instances of the fake Vast: their ``actual_status``, their container's output."""

    #: The container states Vast's API documents in prose (its OpenAPI has no enum); ``null``
    #: (provisioning) cannot be sent as a string, and is covered by the provider's own tests.
    documented_states = (
        "created", "loading", "running", "stopped", "frozen", "exited", "rebooting",
        "unknown", "offline",
    )
    # "unknown" and "offline" (no heartbeat from the host) are RUNNING with a detail: the
    # instance may still run and bill, so no state that ends the record.

    def __init__(self, fake: FakeVast) -> None:
        self.fake = fake
        self.server = fake.server

    async def set_raw_state(self, resource_id: str, raw: str) -> None:
        self.fake.instances[int(resource_id)]["actual_status"] = raw

    async def finish(self, resource_id: str, exit_code: int) -> None:
        inst = self.fake.instances[int(resource_id)]
        found = re.search(r"\[runctl:([A-Za-z0-9_-]+)\]", " ".join(inst.get("image_args") or []))
        assert found is not None, inst
        lines = self.fake.logs.setdefault(int(resource_id), [])
        lines.append(f"[runctl:{found[1]}] exit {exit_code}")

    async def write_log(self, resource_id: str, lines: list[str]) -> None:
        self.fake.logs.setdefault(int(resource_id), []).extend(lines)

    async def hourly_price(self, offer: Offer) -> Money | None:
        # Vast lists compute for the whole machine (all its GPUs) per hour: dph_base, or
        # min_bid for an interruptible rental; storage and bandwidth are billed apart.
        if offer.instance_type != str(OFFER["id"]):
            return None
        return Money(Decimal(str(OFFER["min_bid" if offer.spot else "dph_base"])))


@pytest.fixture
def vast() -> Iterator[FakeVast]:
    with FakeVast() as fake:
        yield fake


@pytest.mark.anyio
async def test_vast_conforms(vast: FakeVast, fake_clock: FakeClock) -> None:
    provider = make(vast)
    spec = LaunchSpec(command=["true"], provider="vast", gpu="RTX 4090", launch_id="conform1")
    try:
        # Polls 10 s apart in virtual time: the exit marker is read at most every 30 s.
        report = await check_provider(provider, spec=spec, driver=VastDriver(vast), poll=10.0)
    finally:
        await provider.aclose()
    assert report.ok, str(report)
    labels = [i.get("label") for i in vast.instances.values()]
    assert vast.instances == {}, f"the kit left instances behind: {labels}"
    vast.assert_requests_match_spec()
