"""Fixtures: one kmock loop per session, a fresh emulated cluster per test, providers on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("kmock", reason="kmock is in the test extra: pip install -e '.[test]'")
pytest.importorskip("kubernetes", reason="the kubernetes client is in the test extra")

from runctl.config import ProviderConfig
from runctl.providers.coreweave import CoreWeaveProvider
from runctl.providers.kubernetes import KubernetesProvider
from tests.support.fake_sleep import Sleeps

from .cluster import FakeCluster, KMockLoop
from .manifests import check_job, check_service


class FakeClock:
    """A monotonic clock the tests move by hand (the image-pull grace period reads it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def kmock_loop() -> Iterator[KMockLoop]:
    loop = KMockLoop().start()
    yield loop
    loop.stop()


@pytest.fixture
def cluster(kmock_loop: KMockLoop) -> Iterator[FakeCluster]:
    """A fresh API server; after the test, every Job and Service runctl sent is validated."""
    fake = FakeCluster(kmock_loop)
    try:
        yield fake
        for body in fake.posted("jobs"):
            check_job(body)
        for body in fake.posted("services"):
            check_service(body)
    finally:
        fake.close()


@pytest.fixture
def kubeconfig(cluster: FakeCluster, tmp_path: Path) -> Path:
    return cluster.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps(cap=0.01)


def make_config(name: str, kubeconfig: Path, tmp_path: Path, **settings: str) -> ProviderConfig:
    return ProviderConfig(
        name=name, home=tmp_path / "home", settings=settings,
        environ={"KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)},
    )


@pytest.fixture
async def provider(
    kubeconfig: Path, tmp_path: Path, clock: FakeClock, sleeps: Sleeps
) -> AsyncIterator[KubernetesProvider]:
    p = KubernetesProvider(
        make_config("kubernetes", kubeconfig, tmp_path, image="python:3.12-slim"),
        clock=clock, sleep=sleeps, terminate_timeout=2.0, log_poll=0.01,
    )
    yield p
    await p.aclose()


@pytest.fixture
async def coreweave(
    kubeconfig: Path, tmp_path: Path, clock: FakeClock, sleeps: Sleeps
) -> AsyncIterator[CoreWeaveProvider]:
    p = CoreWeaveProvider(
        make_config("coreweave", kubeconfig, tmp_path, image="ghcr.io/coreweave/nccl-tests:latest"),
        clock=clock, sleep=sleeps, terminate_timeout=2.0, log_poll=0.01,
    )
    yield p
    await p.aclose()
