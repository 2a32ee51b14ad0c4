"""The Paperspace provider passes runctl's conformance kit against the fake Paperspace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runctl.models import LaunchSpec
from runctl.testing import FakeClock, check_provider
from tests.support.conformance import HttpFaults
from tests.support.fake_http import Reply, Request

from .fake_paperspace import FakePaperspace
from .test_paperspace import make

#: Where each transient machine state goes on the next read, as Paperspace's machines do.
_NEXT = {"provisioning": "starting", "starting": "ready", "restarting": "ready",
         "stopping": "off"}


class MovingPaperspace(FakePaperspace):
    """The fake Paperspace, whose machines move on one step per read until a test pins them."""

    def __init__(self) -> None:
        super().__init__()
        self.pinned: set[str] = set()
        self.override("GET", self.prefix + "/machines/{id}", self._moving_get)

    def _moving_get(self, req: Request) -> Reply:
        machine = self.machines.get(req.path_params["id"])
        if machine is not None and machine["id"] not in self.pinned:
            machine["state"] = _NEXT.get(machine["state"], machine["state"])
        return self._get(req)


class PaperspaceDriver(HttpFaults):
    """Moves machines of the fake Paperspace."""

    #: The machine states of Paperspace's API reference (``state`` of a machine).
    documented_states = ("provisioning", "starting", "restarting", "upgrading", "serviceready",
                         "ready", "stopping", "off")

    def __init__(self, fake: MovingPaperspace) -> None:
        self.fake = fake
        self.server = fake.server

    async def set_raw_state(self, resource_id: str, raw: str) -> None:
        self.fake.machines[resource_id]["state"] = raw
        self.fake.pinned.add(resource_id)

    async def finish(self, resource_id: str, exit_code: int) -> None:
        # A Paperspace machine knows nothing of the command's end (no exit_code capability):
        # the VM runs on, billed, until it is stopped or deleted.
        del resource_id, exit_code


@pytest.fixture
def ps() -> Iterator[MovingPaperspace]:
    with MovingPaperspace() as fake:
        yield fake


@pytest.mark.anyio
async def test_paperspace_conforms(ps: MovingPaperspace, fake_clock: FakeClock) -> None:
    provider = make(ps)
    spec = LaunchSpec(command=["true"], provider="paperspace", instance_type="A4000",
                      launch_id="conform1")
    try:
        report = await check_provider(provider, spec=spec, driver=PaperspaceDriver(ps))
    finally:
        await provider.aclose()
    assert report.ok, str(report)
    names: list[Any] = [m["name"] for m in ps.machines.values()]
    assert ps.machines == {}, f"the kit left machines behind: {names}"
    assert ps.creates == len({r.json()["name"] for r in ps.server.requests
                              if r.method == "POST" and r.path == "/v1/machines"})
    ps.check_requests()
