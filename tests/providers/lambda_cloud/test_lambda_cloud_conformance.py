"""The Lambda Cloud provider passes runctl's conformance kit against the fake Lambda."""

from __future__ import annotations

import pytest

from runctl.providers.lambda_cloud import LambdaCloudProvider
from runctl.testing import check_provider

from .conftest import FakeLambda
from .test_lambda_cloud_faults import spec


@pytest.mark.anyio
async def test_lambda_conforms(fake: FakeLambda, fake_provider: LambdaCloudProvider) -> None:
    report = await check_provider(fake_provider, spec=spec("conform02"), settle_timeout=5, poll=0.05)
    assert report.ok, str(report)
    assert fake.check_requests_against_spec() > 0
