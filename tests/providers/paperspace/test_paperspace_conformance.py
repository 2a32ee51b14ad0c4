"""The Paperspace provider passes runctl's conformance kit against the fake Paperspace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runctl.models import LaunchSpec
from runctl.testing import check_provider

from .fake_paperspace import FakePaperspace
from .test_paperspace import make


@pytest.fixture
def ps() -> Iterator[FakePaperspace]:
    with FakePaperspace() as fake:
        yield fake


@pytest.mark.anyio
async def test_paperspace_conforms(ps: FakePaperspace) -> None:
    provider = make(ps)
    spec = LaunchSpec(command=["true"], provider="paperspace", instance_type="A4000",
                      launch_id="conform1")
    report = await check_provider(provider, spec=spec, settle_timeout=5, poll=0.05)
    await provider.aclose()
    assert report.ok, report
    assert ps.creates == 1
    ps.check_requests()
