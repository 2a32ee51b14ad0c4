"""The SDKs' recorded traffic (vcrpy cassettes), replayed with no server at all.

The cassettes were recorded from the real SDKs talking to the fake server
(``RUNCTL_RECORD=1`` records them again; the live test records from Google).
Credentials never reach them: AnonymousCredentials send none, and auth headers
are filtered anyway. Requests match on method, path, query and body (host and
port differ: the fake's port is random, the replay points at a closed port).

A dropped connection cannot be stored in a cassette: the lost-insert-answer
case is exercised against the fake server (test_gcp_faults).
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path

import pytest
import vcr

from runctl.errors import CapacityError, ProviderError, QuotaExceededError
from runctl.models import LaunchSpec, ResourceState
from tests.support.cassettes import recording

from .conftest import CASSETTES, make_provider
from .fake_gcp import FakeGcp

DEAD = "http://127.0.0.1:9"  # nothing listens: every answer must come from the cassette


def _as_google(request):  # type: ignore[no-untyped-def]
    """Store requests under Google's hosts, not the fake's random loopback port."""
    host = "https://tpu.googleapis.com" if "/compute/" not in request.uri else "https://compute.googleapis.com"
    request.uri = re.sub(r"^http://127\.0\.0\.1:\d+", host, request.uri)
    return request


def gcp_vcr(record: bool) -> vcr.VCR:
    return vcr.VCR(
        before_record_request=_as_google,
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if record else "none",
        match_on=("method", "path", "query", "body"),
        filter_headers=["authorization", "x-goog-user-project", "cookie", "set-cookie"],
        decode_compressed_response=True,
    )


def _setup(name: str, tmp_path: Path, **fake_options: bool):
    record = recording() or not (CASSETTES / name).exists()
    fake = FakeGcp(**fake_options) if record else None
    server = fake if fake is not None else nullcontext()
    return record, fake, server


@pytest.mark.anyio
async def test_the_lifecycle_replays_from_its_cassette(tmp_path: Path, anyio_backend: str) -> None:
    name = "lifecycle.yaml"
    record, fake, server = _setup(name, tmp_path, run_workloads=True)
    if record and anyio_backend == "trio":
        pytest.skip("recorded once, under asyncio")
    with server:
        provider = make_provider(tmp_path, fake.url if fake else DEAD)
        with gcp_vcr(record).use_cassette(name):
            spec = LaunchSpec(command=["sh", "-c", "echo training; exit 0"], gpu="L4",
                              launch_id="cassette1", region="us-central1-a")
            r = await provider.launch(spec)
            assert r.id == "us-central1-a/runctl-cassette1"
            got = await provider.get(r.id)
            assert got.state is ResourceState.SUCCEEDED and got.exit_code == 0
            assert [x.id for x in await provider.list()] == [r.id]
            assert [line async for line in provider.logs(r.id)] == ["training"]
            assert (await provider.stop(r.id)).state is ResourceState.STOPPED
            assert (await provider.start(r.id)).raw_state == "RUNNING"
            assert (await provider.terminate(r.id)).state is ResourceState.TERMINATING
            assert (await provider.get(r.id)).state is ResourceState.TERMINATED
    text = (CASSETTES / name).read_text()
    assert "authorization" not in text.lower()


@pytest.mark.anyio
async def test_the_faults_replay_from_their_cassette(tmp_path: Path, anyio_backend: str) -> None:
    name = "faults.yaml"
    record, fake, server = _setup(name, tmp_path)
    if record and anyio_backend == "trio":
        pytest.skip("recorded once, under asyncio")
    with server:
        if fake is not None:
            fake.stockout = {"us-central1-a"}
            fake.no_quota = {"us-central1-c"}
        provider = make_provider(tmp_path, fake.url if fake else DEAD)
        with gcp_vcr(record).use_cassette(name):
            moved = await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="fault1"))
            assert moved.id == "us-central1-b/runctl-fault1"  # after a stockout in -a
            with pytest.raises(CapacityError):
                await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="fault2",
                                                 region="us-central1-a"))
            with pytest.raises(QuotaExceededError):
                await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="fault3",
                                                 region="us-central1-c"))
            if fake is not None:
                fake.late_failure = ("UNSUPPORTED_OPERATION", "Machine type with name 'g2-standard-4' does not exist in zone")
            with pytest.raises(ProviderError, match="does not exist in zone"):
                await provider.launch(LaunchSpec(command=["true"], gpu="L4", launch_id="fault4",
                                                 region="us-central1-b"))
