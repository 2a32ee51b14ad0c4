"""Fixtures: the fake Compute/TPU server and a GcpProvider on the real SDKs pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.providers.gcp import GcpProvider
from tests.support.fake_sleep import Sleeps

from .fake_gcp import PROJECT, FakeGcp

CASSETTES = Path(__file__).parent / "cassettes"
ZONES = "us-central1-a,us-central1-b,us-central1-c"


def gcp_config(tmp_path: Path, url: str, **settings: str) -> ProviderConfig:
    return ProviderConfig(
        name="gcp",
        home=tmp_path,
        settings={
            "project": PROJECT, "credentials": "anonymous", "compute_api_endpoint": url,
            "tpu_api_endpoint": url, "zones": ZONES, **settings,
        },
        environ={"HOME": str(tmp_path), "RUNCTL_HOME": str(tmp_path)},
    )


def make_provider(tmp_path: Path, url: str, sleeps: Sleeps | None = None, **settings: str) -> GcpProvider:
    return GcpProvider(
        gcp_config(tmp_path, url, **settings), sleep=sleeps or Sleeps(cap=0.0), poll_interval=1.0,
        exit_check_interval=0.0,
    )


@pytest.fixture
def fake() -> Iterator[FakeGcp]:
    with FakeGcp() as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps(cap=0.0)


@pytest.fixture
def provider(fake: FakeGcp, tmp_path: Path, sleeps: Sleeps) -> GcpProvider:
    return make_provider(tmp_path, fake.url, sleeps)
