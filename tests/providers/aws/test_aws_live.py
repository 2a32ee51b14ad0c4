"""Against a real AWS account: runs only with AWS credentials in the environment; costs cents.

Launches the cheapest spot-free on-demand instance asked for (``RUNCTL_AWS_LIVE_TYPE``,
default ``t3.micro``, with the default region's newest Ubuntu image from
``RUNCTL_AWS_LIVE_IMAGE``), reads it back, and terminates it. The command is ``true``:
the machine powers itself off right after boot, and the TTL is two minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.providers.aws import AwsProvider

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")),
        reason="no AWS credentials in the environment (AWS_ACCESS_KEY_ID or AWS_PROFILE)",
    ),
]


@pytest.mark.anyio
async def test_live_lifecycle(tmp_path: Path) -> None:
    provider = AwsProvider(ProviderConfig(name="aws", home=tmp_path, environ=dict(os.environ)))
    try:
        offers = await provider.offers(OfferQuery(gpu="L4", count=1))
        assert offers and all(o.provider == "aws" for o in offers)
        spec = LaunchSpec(
            command=["true"], provider="aws",
            instance_type=os.environ.get("RUNCTL_AWS_LIVE_TYPE", "t3.micro"),
            image=os.environ.get("RUNCTL_AWS_LIVE_IMAGE") or None, ttl=120,
        )
        resource = await provider.launch(spec)
        try:
            assert (await provider.get(resource.id)).launch_id == spec.launch_id
            assert resource.id in [r.id for r in await provider.list()]
            assert (await provider.launch(spec)).id == resource.id
        finally:
            ended = await provider.terminate(resource.id)
            assert ended.state in (ResourceState.TERMINATING, ResourceState.TERMINATED)
    finally:
        await provider.aclose()
