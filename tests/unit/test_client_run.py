"""AsyncClient.run() / Client.run(): what `runctl run` does, as a library call."""

from __future__ import annotations

import inspect
import sys

import pytest

import runctl
from runctl import LaunchSpec, ResourceState, ValidationError
from runctl.client import AsyncClient, Client
from runctl.models import Capabilities

pytestmark = pytest.mark.anyio


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_run_streams_the_output_waits_for_the_end_and_tears_down():
    lines: list[str] = []
    states: list[ResourceState] = []
    spec = LaunchSpec(command=_py("print('a'); print('b')"), provider="local")
    async with runctl.AsyncClient() as rc:
        result = await rc.run(spec, on_log=lines.append, progress=lambda r: states.append(r.state))
        assert [r for r in await rc.list() if not r.is_terminal] == []  # nothing left running
    assert lines == ["a", "b"]
    assert result.outcome is ResourceState.SUCCEEDED and result.ok
    assert result.exit_code == 0 and result.returncode == 0
    assert result.resource.is_terminal and not result.timed_out
    assert result.cost is not None and result.cost.amount == 0
    assert states and states[-1] is ResourceState.SUCCEEDED


async def test_a_failing_command_gives_its_exit_code():
    spec = LaunchSpec(command=_py("raise SystemExit(3)"), provider="local")
    async with runctl.AsyncClient() as rc:
        result = await rc.run(spec)
    assert result.outcome is ResourceState.FAILED and not result.ok
    assert result.exit_code == 3 and result.returncode == 3


def test_the_sync_run_times_out_terminates_and_says_so():
    lines: list[str] = []
    spec = LaunchSpec(
        command=_py("import time; print('up', flush=True); time.sleep(60)"), provider="local"
    )
    with runctl.Client() as rc:
        result = rc.run(spec, timeout=1, on_log=lines.append)
        assert [r for r in rc.list() if not r.is_terminal] == []
    assert lines == ["up"]
    assert result.timed_out and result.returncode == 124
    assert result.outcome is ResourceState.RUNNING
    assert result.resource.state in (ResourceState.TERMINATED, ResourceState.FAILED)


class NoExitCode:
    """A provider that cannot tell when the command ends (a VM without a log API)."""

    name = "vmonly"
    api_version = 2
    launched = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def launch(self, spec):  # pragma: no cover - must never be called
        NoExitCode.launched += 1
        raise AssertionError("launched without a timeout")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "10", True])
async def test_a_bad_timeout_is_refused_before_anything_is_launched(bad):
    async with runctl.AsyncClient() as rc:
        with pytest.raises(ValidationError) as info:
            await rc.run(LaunchSpec(command=["true"], provider="local"), timeout=bad)
    assert info.value.field == "timeout"


async def test_a_provider_that_cannot_report_the_end_needs_a_timeout():
    async with runctl.AsyncClient(providers={"vmonly": NoExitCode()}) as rc:
        with pytest.raises(ValidationError) as info:
            await rc.run(LaunchSpec(command=["python3", "train.py"], provider="vmonly"))
    assert info.value.field == "timeout" and "vmonly" in str(info.value)
    assert NoExitCode.launched == 0


# --- the sync Client mirrors the AsyncClient -----------------------------------------------------

_SYNC_ONLY = {"close"}
_ASYNC_ONLY = {"aclose"}


def _public(cls: type) -> dict[str, object]:
    return {
        name: member for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


def test_the_sync_client_has_every_method_of_the_async_client_with_the_same_signature():
    sync, async_ = _public(Client), _public(AsyncClient)
    assert set(sync) - _SYNC_ONLY == set(async_) - _ASYNC_ONLY
    for name, member in async_.items():
        if name in _ASYNC_ONLY or isinstance(member, property):
            continue
        want = inspect.signature(member)
        got = inspect.signature(sync[name])
        assert list(got.parameters) == list(want.parameters), name
        for param, expected in want.parameters.items():
            actual = got.parameters[param]
            assert (actual.kind, actual.default) == (expected.kind, expected.default), (name, param)


async def test_every_sync_client_property_is_there_on_the_async_client():
    properties = [n for n, m in vars(Client).items() if isinstance(m, property)]
    assert properties
    async with AsyncClient() as rc:
        for name in properties:
            assert hasattr(rc, name), name
