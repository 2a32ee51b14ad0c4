"""Against a real RunPod account: runs only with RUNPOD_API_KEY set; costs a few cents.

``RUNCTL_RECORD=1`` records the exchange to ``cassettes/live-lifecycle.yaml`` (auth headers
filtered); review it (pod env, ids) before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.models import LaunchSpec, OfferQuery
from runctl.providers.runpod import RunPodProvider
from tests.support.cassettes import record_to

from .conftest import CASSETTES

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("RUNPOD_API_KEY"), reason="RUNPOD_API_KEY is not set"),
]


@pytest.mark.anyio
async def test_live_lifecycle(tmp_path: Path) -> None:
    provider = RunPodProvider(
        ProviderConfig(name="runpod", home=tmp_path, environ=dict(os.environ))
    )
    with record_to(CASSETTES, "live-lifecycle.yaml"):
        offers = [o for o in await provider.offers(OfferQuery(count=1)) if o.available]
        assert offers, "RunPod offers nothing available right now"
        spec = LaunchSpec(
            command=["sleep", "600"], image="runpod/base:0.6.2-cpu", offer=offers[0], ttl=900
        )
        resource = await provider.launch(spec)
        try:
            assert (await provider.get(resource.id)).launch_id == spec.launch_id
            assert resource.id in [r.id for r in await provider.list()]
            assert (await provider.launch(spec)).id == resource.id
        finally:
            await provider.terminate(resource.id)
            await provider.aclose()
