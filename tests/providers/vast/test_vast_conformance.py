"""The Vast provider passes runctl's conformance kit against the fake Vast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runctl.models import LaunchSpec
from runctl.testing import check_provider

from .fake_vast import FakeVast
from .test_vast_faults import make


@pytest.fixture
def vast() -> Iterator[FakeVast]:
    with FakeVast() as fake:
        yield fake


@pytest.mark.anyio
async def test_vast_conforms(vast: FakeVast) -> None:
    provider = make(vast)
    spec = LaunchSpec(command=["true"], provider="vast", gpu="RTX 4090", launch_id="conform1")
    report = await check_provider(provider, spec=spec, settle_timeout=5, poll=0.05)
    await provider.aclose()
    assert report.ok, report
    assert vast.creates == 1
    vast.assert_requests_match_spec()
