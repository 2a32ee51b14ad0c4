"""The worked example plugin, as a user gets it: a wheel installed into a fresh venv,
found through its entry point, passes the conformance kit, and type-checks with
``mypy --strict`` using only top-level ``from runctl import ...`` imports. Its own
suite (the kit as a pytest class) runs in-process: test_example_suite.py.

No network: the wheel is built without build isolation (hatchling is a test
dependency) and installed with ``--no-deps --no-index`` into a venv that sees
this environment's packages (runctl, httpx, anyio, pytest) through a ``.pth`` file.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import EXAMPLE

RUN_KIT = """
import sys
from pathlib import Path

import anyio

from runctl import LaunchSpec, ProviderConfig
from runctl.registry import default_registry
from runctl.testing import check_provider

registry = default_registry()
assert "nimbus" in registry.names(), registry.names()
factory = registry.load("nimbus")
module = sys.modules[factory.__module__]
assert "site-packages" in module.__file__, module.__file__  # the installed wheel, not the source

from runctl_nimbus.fake import FakeNimbus, NimbusDriver


async def main() -> int:
    fake = FakeNimbus()
    config = ProviderConfig(name="nimbus", home=Path(sys.argv[1]),
                            environ={"NIMBUS_API_KEY": "nimbus-test-key"})
    provider = factory(config, transport=fake.transport)
    try:
        report = await check_provider(
            provider, driver=NimbusDriver(fake), poll=0.0,
            spec=LaunchSpec(command=["python", "train.py"], instance_type="a100x1"),
        )
    finally:
        await provider.aclose()
    print(report)
    assert fake.live() == [], fake.live()
    return 0 if report.ok else 1


sys.exit(anyio.run(main))
"""


def _run(*argv: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, check=False, **kw
    )
    assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the example's wheel installed (and this environment's packages)."""
    root = tmp_path_factory.mktemp("example-plugin")
    wheels = root / "wheels"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", wheels, EXAMPLE, env=env)
    (wheel,) = wheels.glob("runctl_nimbus-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip())
    # This environment's packages (runctl among them), as --system-site-packages would give
    # them were this environment the system's; addsitedir also reads its .pth files.
    here = sysconfig.get_path("purelib")
    (site / "_runctl_test_env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", wheel, env=env)
    return python


def test_the_installed_wheel_is_found_by_its_entry_point_and_passes_the_kit(
    venv_python: Path, tmp_path: Path
) -> None:
    result = _run(venv_python, "-c", RUN_KIT, tmp_path, cwd=tmp_path)
    assert "conformance of 'nimbus': ok" in result.stdout


def test_the_example_plugin_imports_runctl_only_from_the_top_level() -> None:
    for path in (EXAMPLE / "src" / "runctl_nimbus").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runctl."):
                raise AssertionError(f"{path.name}: from {node.module} import ...")
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("runctl.") for a in node.names), path.name


def test_the_example_plugin_passes_mypy_strict() -> None:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
         str(EXAMPLE / "src" / "runctl_nimbus")],
        capture_output=True, text=True, timeout=600, check=False, cwd=EXAMPLE,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    if errors and all("does not explicitly export attribute" in line for line in errors):
        # runctl's __init__ does not yet name its exports to mypy (issue 8, part 1); once it
        # does, this passes with no change here. Any other error fails the test.
        pytest.xfail(f"{len(errors)} names not yet exported from runctl to mypy")
    assert result.returncode == 0, result.stdout + result.stderr
