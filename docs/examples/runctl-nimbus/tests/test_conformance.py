"""Nimbus passes runctl's conformance kit against the fake Nimbus, under asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest
from runctl_nimbus import NimbusProvider
from runctl_nimbus.fake import FakeNimbus, NimbusDriver

from runctl import ProviderConfig
from runctl.testing import ProviderConformance


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake() -> FakeNimbus:
    return FakeNimbus()


class TestNimbusConforms(ProviderConformance):
    conformance_spec: ClassVar[dict[str, str]] = {
        "instance_type": "a100x1",
        "image": "python:3.12-slim",
    }
    conformance_poll = 0.0  # the fake answers at once; nothing to wait for

    @pytest.fixture
    async def conformance_provider(
        self, fake: FakeNimbus, tmp_path: Path
    ) -> AsyncIterator[NimbusProvider]:
        config = ProviderConfig(
            name="nimbus", home=tmp_path, environ={"NIMBUS_API_KEY": "nimbus-test-key"}
        )
        provider = NimbusProvider(config, transport=fake.transport)
        yield provider
        await provider.aclose()
        assert fake.live() == [], "the kit left jobs running"

    @pytest.fixture
    def conformance_driver(self, fake: FakeNimbus) -> NimbusDriver:
        return NimbusDriver(fake)
