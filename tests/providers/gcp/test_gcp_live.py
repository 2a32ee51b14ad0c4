"""Against a real Google Cloud project: runs only with ADC and RUNCTL_GCP_LIVE_PROJECT set.

Launches one spot L4 VM (g2-standard-4) for a few minutes: cents. ``RUNCTL_RECORD=1``
records the exchange to ``cassettes/live-lifecycle.yaml`` (auth headers filtered);
review it (project id, addresses) before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.models import LaunchSpec
from runctl.providers.gcp import GcpProvider
from tests.support.cassettes import record_to

from .conftest import CASSETTES

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("RUNCTL_GCP_LIVE_PROJECT") and (
            os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            or Path("~/.config/gcloud/application_default_credentials.json").expanduser().is_file()
        )),
        reason="no Google credentials (ADC) or RUNCTL_GCP_LIVE_PROJECT",
    ),
]


@pytest.mark.anyio
async def test_live_lifecycle(tmp_path: Path) -> None:
    environ = dict(os.environ)
    environ["GOOGLE_CLOUD_PROJECT"] = os.environ["RUNCTL_GCP_LIVE_PROJECT"]
    provider = GcpProvider(ProviderConfig(name="gcp", home=tmp_path, environ=environ),
                           exit_check_interval=0)
    with record_to(CASSETTES, "live-lifecycle.yaml"):
        spec = LaunchSpec(command=["sh", "-c", "nvidia-smi -L || true"], gpu="L4", spot=True,
                          ttl=1800)
        resource = await provider.launch(spec)
        try:
            assert (await provider.get(resource.id)).launch_id == spec.launch_id
            assert resource.id in [r.id for r in await provider.list()]
            assert (await provider.launch(spec)).id == resource.id
        finally:
            await provider.terminate(resource.id)
            await provider.aclose()
