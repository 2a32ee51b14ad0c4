"""The Lambda Cloud provider passes runctl's conformance kit against the fake Lambda."""

from __future__ import annotations

from decimal import Decimal

import pytest

from runctl.cost import Money
from runctl.models import Offer
from runctl.providers.lambda_cloud import LambdaCloudProvider
from runctl.testing import FakeClock, check_provider
from tests.support.conformance import HttpFaults, documented_enum

from .conftest import _TYPE, SPEC, FakeLambda
from .test_lambda_cloud_faults import spec


class LambdaDriver(HttpFaults):
    """Moves instances of the fake Lambda."""

    documented_states = documented_enum(SPEC, "InstanceStatus")
    # "unhealthy" (failed health checks) is RUNNING with a detail: the machine is up and
    # billed, so no state that ends the record; the kit checks it like any other.

    def __init__(self, fake: FakeLambda) -> None:
        self.fake = fake
        self.server = fake.server

    async def set_raw_state(self, resource_id: str, raw: str) -> None:
        self.fake.instances[resource_id]["status"] = raw

    async def finish(self, resource_id: str, exit_code: int) -> None:
        # A Lambda instance knows nothing of the command's end (no exit_code capability).
        del resource_id, exit_code

    async def hourly_price(self, offer: Offer) -> Money | None:
        if offer.instance_type != _TYPE["name"]:
            return None
        return Money(Decimal(_TYPE["price_cents_per_hour"]) / 100)  # the whole machine


@pytest.mark.anyio
async def test_lambda_conforms(
    fake: FakeLambda, fake_provider: LambdaCloudProvider, fake_clock: FakeClock
) -> None:
    report = await check_provider(fake_provider, spec=spec("conform02"), driver=LambdaDriver(fake))
    assert report.ok, str(report)
    assert fake.instances == {}, "the kit left instances behind"
    launches = [r for r in fake.server.requests if r.path.endswith("/instance-operations/launch")]
    names = [r.json().get("name") for r in launches]
    assert len(names) == len(set(names)), f"a launch id made two instances: {names}"
    assert fake.check_requests_against_spec() > 0
