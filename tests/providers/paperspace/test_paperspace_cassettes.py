"""Paperspace's whole lifecycle replayed from a cassette; every request checked against the
verified request shapes (``api_shapes.py``: no Paperspace OpenAPI file is stored here).

``RUNCTL_RECORD=1`` with ``PAPERSPACE_API_KEY`` set re-records it from a real team
through the live test (it creates an A4000 machine for a few minutes: set
``RUNCTL_PAPERSPACE_TEMPLATE_ID`` if your team has no ML-in-a-Box template).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.models import TAG_LAUNCH_ID, LaunchSpec, ResourceState
from runctl.providers.paperspace import PaperspaceProvider
from tests.support.cassettes import cassette_vcr, record_to, recording
from tests.support.openapi import RecordingTransport

from .api_shapes import check_request

CASSETTES = Path(__file__).parent / "cassettes"
S = ResourceState



async def _lifecycle(provider: PaperspaceProvider, launch_id: str) -> str:
    spec = LaunchSpec(command=["nvidia-smi"], instance_type="A4000", launch_id=launch_id,
                      name="train", disk_gb=50)
    launched = await provider.launch(spec)
    assert launched.launch_id == launch_id and launched.instance_type == "A4000"
    seen = await provider.get(launched.id)
    assert seen.launch_id == launch_id and seen.gpu_count == 1
    assert [r.id for r in await provider.list(tags={TAG_LAUNCH_ID: launch_id})] == [launched.id]
    assert (await provider.stop(launched.id)).state in (S.STOPPING, S.STOPPED)
    assert (await provider.start(launched.id)).state in (S.PROVISIONING, S.RUNNING)
    gone = await provider.terminate(launched.id)
    assert gone.state in (S.TERMINATING, S.TERMINATED)
    return launched.id


@pytest.mark.anyio
async def test_lifecycle_replays_with_only_verified_requests() -> None:
    config = ProviderConfig(name="paperspace", home=Path("/nonexistent"),
                            environ={"PAPERSPACE_API_KEY": "cassette-key-not-real"})
    transport = RecordingTransport()
    provider = PaperspaceProvider(config, transport=transport)
    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml") as cassette:
        assert await _lifecycle(provider, "cassette1") == "psz3lbmqe"
        await provider.aclose()
        assert cassette.all_played
    ops = [
        check_request(r.method, r.url.path.removeprefix("/v1"), dict(r.url.params), r.content or None)
        for r in transport.requests
    ]
    assert ops == [
        "machines-list", "osTemplates-list", "startupScripts-create", "machines-create",
        "machines-get", "machines-list", "machines-stop", "machines-start", "machines-delete",
        "startupScripts-list", "startupScripts-delete",
    ]
    create = next(r for r in transport.requests if r.method == "POST" and r.url.path == "/v1/machines")
    assert b'"templateId": "t0nspur5"' in create.content or b'"templateId":"t0nspur5"' in create.content


@pytest.mark.live
@pytest.mark.anyio
async def test_live_lifecycle(anyio_backend: str) -> None:
    """Against a real team (costs cents). Re-records the cassette with RUNCTL_RECORD=1."""
    if not os.environ.get("PAPERSPACE_API_KEY"):
        pytest.skip("PAPERSPACE_API_KEY is not set")
    if anyio_backend != "asyncio":
        pytest.skip("one live run is enough")
    config = ProviderConfig(name="paperspace", home=Path("/nonexistent"), environ=dict(os.environ))
    provider = PaperspaceProvider(config)
    launch_id = "cassette1" if recording() else "live" + os.urandom(4).hex()
    with record_to(CASSETTES, "lifecycle.yaml"):
        await _lifecycle(provider, launch_id)
    await provider.aclose()
