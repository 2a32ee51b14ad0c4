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
def _no_live_credentials(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Unit tests never see real credentials from the developer's environment (live tests do)."""
    if request.node.get_closest_marker("live"):
        return
    for var in (
        "RUNPOD_API_KEY", "VAST_API_KEY", "LAMBDA_API_KEY", "PAPERSPACE_API_KEY",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
