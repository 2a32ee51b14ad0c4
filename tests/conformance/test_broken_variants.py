"""The kit catches deliberately broken variants of a working plugin, and never crashes on one.

The variants (tests/conformance/broken/) are the Nimbus example plugin with one
real mistake each; the issue that asked for kit v2 found the old kit caught 8
of 20 such mistakes and crashed on one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runctl_nimbus import NimbusProvider
from runctl_nimbus.fake import FakeNimbus, NimbusDriver

from runctl import LaunchSpec, ProviderConfig
from runctl.testing import ConformanceReport, check_provider

from .broken.variants import all_variants

VARIANTS = all_variants()

pytestmark = pytest.mark.anyio

#: Every variant the kit catches today; a change that loses one fails the test.
CAUGHT = sorted(VARIANTS)


@pytest.fixture
def kubernetes_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``kubernetes`` package, visible to the kit's fresh interpreter only.

    The variant's module was imported before this (without it), so nothing in this
    process loads it; the kit's subprocess gets this process's sys.path.
    """
    stub = tmp_path / "site" / "kubernetes"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(stub.parent))


async def _kit(cls: type[NimbusProvider], tmp_path: Path) -> tuple[ConformanceReport, FakeNimbus]:
    fake = FakeNimbus()
    config = ProviderConfig(name="nimbus", home=tmp_path, environ={"NIMBUS_API_KEY": "nimbus-test-key"})
    provider = cls(config, transport=fake.transport)
    try:
        spec = LaunchSpec(command=["python", "train.py"], instance_type="a100x1", launch_id="broken-1")
        report = await check_provider(provider, spec=spec, driver=NimbusDriver(fake))
    finally:
        await provider.aclose()
    return report, fake


@pytest.mark.usefixtures("fake_clock")  # the kit's polls and settle waits take no real time
async def test_the_working_plugin_passes(tmp_path: Path) -> None:
    report, fake = await _kit(NimbusProvider, tmp_path)
    assert report.ok, str(report)
    assert fake.live() == []


@pytest.mark.usefixtures("kubernetes_installed", "fake_clock")
async def test_the_kit_catches_at_least_18_of_20_broken_variants(tmp_path: Path) -> None:
    assert len(VARIANTS) == 20
    caught, how = [], {}
    for name, (cls, check) in VARIANTS.items():
        report, fake = await _kit(cls, tmp_path / name.replace(" ", "-").replace("/", "-"))
        failed = [f.name for f in report.failures]
        how[name] = failed
        if not report.ok:
            caught.append(name)
            assert any(check in f for f in failed), f"{name}: caught by {failed}, not by {check!r}"
        if name not in ("terminate raises RuntimeError", "terminate does nothing"):
            assert fake.live() == [], f"{name}: the kit left {fake.live()} running"
    print("\n".join(f"{n}: {how[n]}" for n in VARIANTS))
    assert len(caught) >= 18
    assert sorted(caught) == CAUGHT


@pytest.mark.usefixtures("fake_clock")
async def test_a_terminate_that_crashes_is_reported_not_raised_and_the_rest_still_runs(
    tmp_path: Path,
) -> None:
    cls, _ = VARIANTS["terminate raises RuntimeError"]
    report, _fake = await _kit(cls, tmp_path)
    failures = {f.name: f.detail for f in report.failures}
    assert "RuntimeError" in failures["terminate ends it and is idempotent"]
    assert "RuntimeError" in failures["only runctl errors from every method"]
    assert "everything launched was terminated" in failures
    # checks after the crash still ran
    assert any(r.name == "unknown id: get raises NotFoundError" and r.passed for r in report.results)


@pytest.mark.usefixtures("fake_clock")
async def test_a_method_that_never_answers_is_reported_as_hung_and_the_kit_goes_on(
    tmp_path: Path,
) -> None:
    # Hangs lives in a module that imports nothing heavy: the kit imports a provider's
    # module afresh, and this test module's parametrisation imports the heavy variant.
    from .broken.variants import Hangs

    report, fake = await _kit(Hangs, tmp_path)
    failures = {f.name: f.detail for f in report.failures}
    assert list(failures) == [
        "stop/start works, or raises UnsupportedOperationError",
        "unknown id: other methods raise runctl errors",  # stop of an unknown id hangs too
    ]
    assert all("stop did not return within 120 s" in d for d in failures.values()), failures
    assert fake.live() == []
