"""The REST transport against Slurm 24.11's slurmrestd (OpenAPI v0.0.40, v0.0.41, v0.0.42).

Run by ``nox -s slurm_current``, which builds and starts the cluster of
cluster/trixie-up.sh (Debian trixie's Slurm in a chroot); skipped when it is not up.
Requests runctl sends on v0.0.41 and v0.0.42 are checked against those versions'
specs; v0.0.40 has no published spec, so only the live server judges it.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from runctl.errors import NotFoundError
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.testing import check_provider
from tests.support.openapi import SPECS, RecordingTransport, assert_requests_match

from .conftest import current_provider

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:openapi_core"),
]
S = ResourceState


async def _finish(provider, resource_id: str) -> object:
    for _ in range(200):
        if (resource := await provider.get(resource_id)).is_terminal:
            break
        await anyio.sleep(0.3)
    return resource


async def test_the_newest_version_is_negotiated_and_a_job_runs(current_cluster, tmp_path: Path) -> None:
    provider = current_provider(current_cluster, tmp_path)
    spec = LaunchSpec(command=["sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES; exit 3"],
                      provider="slurm", gpu="H100", gpu_count=1, ttl=120)  # fmt: skip
    launched = await provider.launch(spec)
    assert await provider._backend().version() == "v0.0.42"  # type: ignore[attr-defined]
    done = await _finish(provider, launched.id)
    lines = [line async for line in provider.logs(launched.id)]
    with pytest.raises(NotFoundError):
        await provider.get("987654")  # 24.11 answers 404
    await provider.aclose()
    assert (done.state, done.raw_state, done.exit_code) == (S.FAILED, "FAILED", 3)
    assert lines == ["gpus=0"]
    assert (done.gpu_count, done.gpu.model if done.gpu else None) == (1, "H100")


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
async def test_every_offered_version_submits_reads_and_cancels(current_cluster, tmp_path: Path, version: str) -> None:
    provider = current_provider(current_cluster, tmp_path, api_version=version)
    recording = RecordingTransport()
    provider._http_transport = recording
    spec = LaunchSpec(command=["sleep", "30"], provider="slurm", gpu="H100", gpu_count=1,
                      ttl=120, options={"mem": "100M"})  # fmt: skip
    launched = await provider.launch(spec)
    for _ in range(100):
        if (await provider.get(launched.id)).state is S.RUNNING:
            break
        await anyio.sleep(0.3)
    assert [r.id for r in await provider.list(tags={"runctl-launch-id": spec.launch_id})] == [launched.id]
    offers = await provider.offers(OfferQuery(gpu="H100"))
    ended = await provider.terminate(launched.id)
    await provider.aclose()
    assert ended.state is S.TERMINATED and ended.raw_state.startswith("CANCELLED")
    assert [(o.gpu_count, o.available is not None) for o in offers] == [(2, True)]
    if version != "v0.0.40":
        sent = [
            httpx.Request(r.method, r.url, content=r.content,
                          headers={k: v for k, v in r.headers.items() if not k.startswith("x-slurm")})
            for r in recording.requests if r.url.path.startswith("/slurm/")
        ]  # fmt: skip
        assert assert_requests_match(SPECS / f"slurmrestd-openapi-{version}.json", sent) >= 6


async def test_the_provider_conforms_on_24_11(current_cluster, tmp_path: Path) -> None:
    provider = current_provider(current_cluster, tmp_path, terminate_wait_seconds="10")
    spec = LaunchSpec(command=["sleep", "60"], provider="slurm")
    report = await check_provider(provider, spec=spec, settle_timeout=30, poll=0.2)
    await provider.aclose()
    assert report.ok, str(report)
