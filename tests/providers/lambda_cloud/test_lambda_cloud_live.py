"""Against a real Lambda Cloud account: runs only with LAMBDA_API_KEY set; costs real money.

Needs ``RUNCTL_LAMBDA_SSH_KEY_NAME`` (a key registered with Lambda). ``RUNCTL_RECORD=1``
records the exchange to ``cassettes/live-lifecycle.yaml`` (auth headers filtered);
review it (jupyter tokens, IPs) before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.models import LaunchSpec, OfferQuery
from runctl.providers.lambda_cloud import LambdaCloudProvider
from tests.support.cassettes import record_to

from .conftest import CASSETTES

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("LAMBDA_API_KEY") and os.environ.get("RUNCTL_LAMBDA_SSH_KEY_NAME")),
        reason="LAMBDA_API_KEY and RUNCTL_LAMBDA_SSH_KEY_NAME are not set",
    ),
]


@pytest.mark.anyio
async def test_live_lifecycle(tmp_path: Path) -> None:
    provider = LambdaCloudProvider(
        ProviderConfig(name="lambda", home=tmp_path, environ=dict(os.environ))
    )
    with record_to(CASSETTES, "live-lifecycle.yaml"):
        offers = [o for o in await provider.offers(OfferQuery()) if o.available]
        assert offers, "Lambda has no capacity right now"
        spec = LaunchSpec(
            command=["nvidia-smi"],
            offer=offers[0],
            options={"ssh_key_name": os.environ["RUNCTL_LAMBDA_SSH_KEY_NAME"]},
            ttl=900,
        )
        resource = await provider.launch(spec)
        try:
            assert resource.launch_id == spec.launch_id
            assert resource.id in [r.id for r in await provider.list()]
            assert (await provider.launch(spec)).id == resource.id
        finally:
            await provider.terminate(resource.id)
            await provider.aclose()
