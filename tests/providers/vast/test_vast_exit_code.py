"""Vast: the command's end and exit code, through runctl's wrapper and the instance's log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl._workload import shell_argv, wrap_command
from runctl.models import LaunchSpec, ResourceState
from tests.support.fake_http import Fault
from tests.support.workload import ECHO_ARGV, run_container_argv

from .fake_vast import FakeVast
from .test_vast_faults import make

S = ResourceState
LAUNCH_ID = "vexit1"
LABEL = f"runctl:runctl-launch-id={LAUNCH_ID}&runctl-managed-by=runctl"

ARGS = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24),
    max_size=6,
)


@pytest.fixture
def vast() -> Iterator[FakeVast]:
    with FakeVast() as fake:
        yield fake


def instance(vast: FakeVast, *lines: str, status: str = "running") -> str:
    inst = vast.add_instance(label=LABEL, actual_status=status)
    vast.logs[inst["id"]] = list(lines)
    return str(inst["id"])


@settings(max_examples=40)
@given(args=ARGS, code=st.integers(0, 255))
def test_the_container_args_run_any_argv_unchanged_and_report_its_exit_code(
    args: list[str], code: int
) -> None:
    done = run_container_argv(shell_argv(wrap_command([*ECHO_ARGV, str(code), *args], LAUNCH_ID)))
    lines = done.stdout.splitlines()
    assert json.loads(lines[1]) == args
    assert lines[2:] == [f"[runctl:{LAUNCH_ID}] exit {code}"] and done.returncode == code


@pytest.mark.anyio
async def test_the_instance_runs_the_wrapped_command(vast: FakeVast) -> None:
    spec = LaunchSpec(command=[*ECHO_ARGV, "5", "a b", "'"], image="pytorch/pytorch:latest",
                      gpu="RTX 4090", env={"WANDB_MODE": "offline"}, launch_id=LAUNCH_ID)
    provider = make(vast)
    await provider.launch(spec)
    body = next(r for r in vast.server.requests if r.path.startswith("/api/v0/asks/")).json()
    assert body["runtype"] == "args" and body["env"] == "-e WANDB_MODE=offline"
    done = run_container_argv(body["args"])
    assert done.stdout.splitlines()[1:] == ['["a b", "\'"]', f"[runctl:{LAUNCH_ID}] exit 5"]
    assert vast.assert_requests_match_spec() >= 3


@pytest.mark.anyio
async def test_the_command_runs_in_the_workdir_without_an_ssh_key(
    vast: FakeVast, tmp_path: Path
) -> None:
    spec = LaunchSpec(command=["pwd"], gpu="RTX 4090", launch_id=LAUNCH_ID, workdir=str(tmp_path))
    await make(vast).launch(spec)
    body = next(r for r in vast.server.requests if r.path.startswith("/api/v0/asks/")).json()
    assert body["runtype"] == "args"
    done = run_container_argv(body["args"])
    assert done.stdout.splitlines()[1] == str(tmp_path)


@pytest.mark.anyio
async def test_with_an_ssh_key_the_wrapper_is_the_onstart_script(vast: FakeVast) -> None:
    spec = LaunchSpec(command=["echo", "hi"], gpu="RTX 4090", launch_id=LAUNCH_ID, workdir="/tmp",
                      ssh_public_key="ssh-ed25519 AAAAC3Nz test@runctl")
    await make(vast).launch(spec)
    body = next(r for r in vast.server.requests if r.path.startswith("/api/v0/asks/")).json()
    assert body["runtype"] == "ssh"
    assert body["onstart"] == wrap_command(["echo", "hi"], LAUNCH_ID, workdir="/tmp", keep_alive=":")


@pytest.mark.anyio
@pytest.mark.parametrize(("code", "state"), [(0, S.SUCCEEDED), (2, S.FAILED)])
@pytest.mark.parametrize("status", ["running", "exited"])
async def test_an_instance_whose_command_ended_shows_its_exit_code(
    vast: FakeVast, code: int, state: ResourceState, status: str
) -> None:
    iid = instance(vast, f"[runctl:{LAUNCH_ID}] start", f"[runctl:{LAUNCH_ID}] exit {code}",
                   status=status)
    seen = await make(vast).get(iid)
    assert (seen.state, seen.exit_code, seen.raw_state) == (state, code, status)
    assert seen.detail == f"command exited with {code}"
    vast.assert_requests_match_spec()


@pytest.mark.anyio
async def test_exited_without_a_marker_is_failed_with_the_exit_code_unknown(vast: FakeVast) -> None:
    iid = instance(vast, f"[runctl:{LAUNCH_ID}] start", "Killed", status="exited")
    provider = make(vast, exit_check_interval=0)
    seen = await provider.get(iid)
    assert (seen.state, seen.exit_code) == (S.FAILED, None)
    assert seen.detail is not None and "exit code is unknown" in seen.detail
    await provider.get(iid)  # an exited container's log is complete: not read again
    assert vast.log_requests() == 1


@pytest.mark.anyio
async def test_a_running_command_stays_running_and_is_looked_at_once_per_interval(
    vast: FakeVast,
) -> None:
    iid = instance(vast, f"[runctl:{LAUNCH_ID}] start", "epoch 1")
    provider = make(vast)
    for _ in range(3):
        assert (await provider.get(iid)).state is S.RUNNING
    assert vast.log_requests() == 1
    assert [r.state for r in await provider.list()] == [S.RUNNING]
    assert vast.log_requests() == 1


@pytest.mark.anyio
async def test_once_known_the_exit_code_is_not_read_again(vast: FakeVast) -> None:
    iid = instance(vast, f"[runctl:{LAUNCH_ID}] exit 0")
    provider = make(vast, exit_check_interval=0)
    assert (await provider.get(iid)).exit_code == 0
    vast.logs[int(iid)] = []
    for _ in range(3):
        assert (await provider.get(iid)).state is S.SUCCEEDED
    assert [(r.state, r.exit_code) for r in await provider.list()] == [(S.SUCCEEDED, 0)]
    assert vast.log_requests() == 1
    gone = await provider.terminate(iid)
    assert (gone.state, gone.exit_code) == (S.TERMINATED, 0) and vast.log_requests() == 1


@pytest.mark.anyio
async def test_a_log_that_cannot_be_had_leaves_the_state_as_vast_says(vast: FakeVast) -> None:
    iid = instance(vast, f"[runctl:{LAUNCH_ID}] exit 0")
    vast.server.fail("GET", "/logs/{id}", *[Fault.http(404)] * 3)  # never uploaded in time
    seen = await make(vast).get(iid)
    assert (seen.state, seen.exit_code) == (S.RUNNING, None)


@pytest.mark.anyio
async def test_starting_the_instance_again_forgets_the_exit_code(vast: FakeVast) -> None:
    iid = instance(vast, f"[runctl:{LAUNCH_ID}] exit 0")
    provider = make(vast)
    assert (await provider.get(iid)).state is S.SUCCEEDED
    await provider.stop(iid)
    started = await provider.start(iid)
    assert (started.state, started.exit_code) == (S.RUNNING, None)


@pytest.mark.anyio
async def test_markers_are_not_in_the_logs_users_read(vast: FakeVast) -> None:
    iid = instance(vast, f"[runctl:{LAUNCH_ID}] start", "epoch 1", f"[runctl:{LAUNCH_ID}] exit 0")
    assert [line async for line in make(vast).logs(iid)] == ["epoch 1"]
