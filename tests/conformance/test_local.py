"""The built-in local provider passes the conformance kit plugin authors use.

The local "backend" is this machine: the driver moves a resource the way the
machine would (signals, the supervisor's marks, a killed supervisor) and ends a
workload by telling its command which code to exit with. Real processes run in
real time, so this kit run uses the real clock.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import anyio
import attrs
import pytest

import runctl
from runctl.providers.local import LocalProvider
from runctl.testing import check_provider

pytestmark = pytest.mark.anyio

#: The workload: waits until the driver names its exit code (in a file named by its pid).
WORKLOAD = """
import os, sys, time
path = os.path.join(os.environ["RUNCTL_CONFORMANCE_EXITS"], str(os.getpid()))
while not os.path.exists(path):
    time.sleep(0.02)
sys.exit(int(open(path).read()))
"""


class LocalDriver:
    """Moves local resources: by signals and marks, as the machine and the supervisor do.

    ``starting``, ``exited`` and ``terminated`` are reached by the kit's own launch,
    :meth:`finish` and terminate; the walk covers the others, in an order one
    resource can go through.
    """

    documented_states = ("running", "stopped", "running", "terminating", "lost")

    def __init__(self, provider: LocalProvider, exits: Path) -> None:
        self.provider = provider
        self.root = provider.root
        self.exits = exits

    def _json(self, resource_id: str, name: str) -> dict[str, int]:
        data: dict[str, int] = json.loads((self.root / resource_id / name).read_text())
        return data

    async def set_raw_state(self, resource_id: str, raw: str) -> None:
        directory = self.root / resource_id
        pgid = self._json(resource_id, "process.json")["pgid"]
        if raw == "stopped":
            (directory / "stopped").touch()
            os.killpg(pgid, signal.SIGSTOP)
        elif raw == "running":
            os.killpg(pgid, signal.SIGCONT)
            (directory / "stopped").unlink(missing_ok=True)
        elif raw == "terminating":
            (directory / "terminate-requested").touch()  # asked, not yet acted on
        elif raw == "lost":
            os.kill(self._json(resource_id, "supervisor.json")["pid"], signal.SIGKILL)
            os.killpg(pgid, signal.SIGKILL)
        else:
            raise AssertionError(f"the local driver cannot produce {raw!r}")
        # Signals land when the kernel gets to them: return once the machine shows the state.
        with anyio.fail_after(30):
            while True:
                if (await self.provider.get(resource_id)).raw_state == raw:
                    return
                await anyio.sleep(0.02)

    async def finish(self, resource_id: str, exit_code: int) -> None:
        pid = self._json(resource_id, "process.json")["pid"]
        # Written aside, then renamed: the workload must never read a half-written file
        # (an empty one is int('') -> exit 1, seen once under load).
        part = self.exits / f".{pid}.part"
        part.write_text(str(exit_code))
        part.replace(self.exits / str(pid))

    async def write_log(self, resource_id: str, lines: list[str]) -> None:
        with (self.root / resource_id / "output.log").open("a") as log:
            log.write("".join(f"{line}\n" for line in lines))


def _spec(exits: Path, **kw: object) -> runctl.LaunchSpec:
    return runctl.LaunchSpec(
        command=[sys.executable, "-c", WORKLOAD], provider="local",
        env={"RUNCTL_CONFORMANCE_EXITS": str(exits)}, **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def exits(tmp_path: Path) -> Path:
    path = tmp_path / "exits"
    path.mkdir()
    return path


async def test_local_provider_conforms(exits: Path) -> None:
    provider = LocalProvider(runctl.load_settings().provider_config("local"))
    report = await check_provider(
        provider, spec=_spec(exits), driver=LocalDriver(provider, exits), poll=0.05,
        settle_timeout=30,
    )
    assert report.ok, str(report)
    skipped = {r.name for r in report.results if r.skipped}
    # Nothing between runctl and this machine can fail a request; LaunchSpec.nodes may be absent.
    assert skipped <= {"a failed backend request raises a runctl error",
                       "nodes > 1 without multi_node is refused"}, skipped
    assert all(r.is_terminal for r in await provider.list())


async def test_the_kit_catches_a_provider_that_launches_twice(exits: Path) -> None:
    class Duplicating(LocalProvider):
        async def launch(self, spec: runctl.LaunchSpec) -> runctl.Resource:
            # Ignores the launch id: every call makes a new resource.
            fresh = runctl.LaunchSpec(command=["x"]).launch_id
            return await super().launch(attrs.evolve(spec, launch_id=fresh))

    provider = Duplicating(runctl.load_settings().provider_config("local"))
    report = await check_provider(provider, spec=_spec(exits), poll=0.05, settle_timeout=30)
    assert not report.ok
    assert [f.name for f in report.failures] == ["launch is idempotent on launch_id"]
    assert "created a second resource" in report.failures[0].detail
    # and the kit cleaned up both resources it launched
    assert all(r.is_terminal for r in await provider.list())
