"""Shared fixtures: every async test runs under asyncio and trio; each test gets its own runctl home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from runctl.testing import fake_clock  # noqa: F401  (the fixture: a virtual clock for the test)

# Shared 2-core machines: no per-example deadline (speed is measured in benchmarks, not here).
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests (long measurements) run only when asked for: ``-m slow`` (nox -s reliability)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow (nox -s reliability)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def runctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty runctl home for every test, set through RUNCTL_HOME (never the user's)."""
    home = tmp_path / "runctl-home"
    home.mkdir()
    monkeypatch.setenv("RUNCTL_HOME", str(home))
    yield home


@pytest.fixture(autouse=True)
def _no_live_credentials(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Unit tests never see real credentials from the developer's environment (live tests do)."""
    if request.node.get_closest_marker("live"):
        return
    for var in (
        "RUNPOD_API_KEY", "VAST_API_KEY", "LAMBDA_API_KEY", "PAPERSPACE_API_KEY",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
        "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT",
        "KUBERNETES_SERVICE_HOST", "RUNCTL_KUBERNETES_KUBECONFIG", "RUNCTL_COREWEAVE_KUBECONFIG",
        "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "SLURM_JWT",
    ):
        monkeypatch.delenv(var, raising=False)
    # Never the developer's ~/.kube/config: a KUBECONFIG that names no file.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
