"""RunPod: the command's end and exit code, through runctl's wrapper and the pod's log."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl._workload import KEEP_ALIVE, shell_argv, wrap_command
from runctl.models import LaunchSpec, ResourceState
from runctl.providers.runpod import RunPodProvider
from tests.support.fake_http import Fault
from tests.support.workload import ECHO_ARGV, run_container_argv

from .conftest import FakeRunPod

S = ResourceState
LAUNCH_ID = "exit0001"

#: Any argument a process can receive: text without NUL (and without lone surrogates).
ARGS = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24),
    max_size=6,
)


def spec(command: list[str] | str = "python train.py", launch_id: str = LAUNCH_ID) -> LaunchSpec:
    return LaunchSpec(
        command=command,
        image="runpod/pytorch:2.4",
        instance_type="SECURE:NVIDIA H100 80GB HBM3",
        gpu_count=1,
        env={"WANDB_MODE": "offline"},
        launch_id=launch_id,
    )


def container_argv(args: str) -> list[str]:
    """What RunPod runs for a pod's ``args``: the string split into words like a shell."""
    return shlex.split(args)


async def running_pod(fake: FakeRunPod, provider: RunPodProvider, *lines: str) -> str:
    launched = await provider.launch(spec())
    fake.pods[launched.id]["status"] = "RUNNING"
    fake.logs[launched.id] = list(lines)
    return launched.id


# --- the wrapper, run here with /bin/sh ---------------------------------------------------------


@settings(max_examples=60)
@given(args=ARGS, code=st.integers(0, 255))
def test_any_argv_reaches_the_command_unchanged_and_its_exit_code_is_reported(
    args: list[str], code: int
) -> None:
    body_args = shlex.join(shell_argv(wrap_command([*ECHO_ARGV, str(code), *args], LAUNCH_ID)))
    done = run_container_argv(container_argv(body_args))
    lines = done.stdout.splitlines()
    assert lines[0] == f"[runctl:{LAUNCH_ID}] start"
    assert json.loads(lines[1]) == args
    assert lines[2:] == [f"[runctl:{LAUNCH_ID}] exit {code}"]
    assert done.returncode == code


def test_a_one_string_command_runs_under_sh_c() -> None:
    script = wrap_command(['echo "a  b" | tr a-z A-Z; [ -n "$HOME" ] && exit 7'], LAUNCH_ID, shell=True)
    done = run_container_argv(shell_argv(script))
    assert done.stdout.splitlines() == [
        f"[runctl:{LAUNCH_ID}] start", "A  B", f"[runctl:{LAUNCH_ID}] exit 7"
    ]
    assert done.returncode == 7


def test_a_missing_program_is_exit_127_not_a_silent_hang() -> None:
    done = run_container_argv(shell_argv(wrap_command(["no-such-program-xyz", "a"], LAUNCH_ID)))
    assert done.stdout.splitlines()[-1] == f"[runctl:{LAUNCH_ID}] exit 127"


def test_the_container_stays_up_after_the_command_until_it_is_stopped() -> None:
    script = wrap_command(["true"], LAUNCH_ID)
    assert KEEP_ALIVE in script
    proc = subprocess.Popen(
        shell_argv(script), stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"[runctl:{LAUNCH_ID}] start"
        assert proc.stdout.readline().strip() == f"[runctl:{LAUNCH_ID}] exit 0"
        time.sleep(0.3)
        assert proc.poll() is None, "the wrapper must keep the container alive"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0  # promptly, with the command's code
    finally:
        # The whole group: the keep-alive's `sleep` outlives the shell that started it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_stop_signal_reaches_the_command_and_its_code_is_reported() -> None:
    command = [
        sys.executable, "-c",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)",
    ]
    proc = subprocess.Popen(
        shell_argv(wrap_command(command, LAUNCH_ID)),
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"[runctl:{LAUNCH_ID}] start"
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 7
        assert proc.stdout.read().splitlines() == [f"[runctl:{LAUNCH_ID}] exit 7"]
    finally:
        # The whole group: the keep-alive's `sleep` outlives the shell that started it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- what the provider sends and reports, against the fake RunPod --------------------------------


@pytest.mark.anyio
async def test_the_pod_runs_the_wrapped_command_with_the_env_as_before(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    await fake_provider.launch(spec([*ECHO_ARGV, "3", "it's", "$x y"]))
    body = next(r for r in fake.server.requests if r.method == "POST").json()
    assert body["env"]["WANDB_MODE"] == "offline"
    done = run_container_argv(container_argv(body["args"]))
    assert done.stdout.splitlines()[1:] == ['["it\'s", "$x y"]', f"[runctl:{LAUNCH_ID}] exit 3"]
    assert fake.check_requests_against_spec() >= 2


@pytest.mark.anyio
@pytest.mark.parametrize(("code", "state"), [(0, S.SUCCEEDED), (3, S.FAILED)])
async def test_a_pod_whose_command_ended_shows_its_exit_code(
    fake: FakeRunPod, fake_provider: RunPodProvider, code: int, state: ResourceState
) -> None:
    pod = await running_pod(
        fake, fake_provider, f"[runctl:{LAUNCH_ID}] start", "epoch 1", f"[runctl:{LAUNCH_ID}] exit {code}"
    )
    seen = await fake_provider.get(pod)
    assert (seen.state, seen.exit_code, seen.raw_state) == (state, code, "RUNNING")
    assert seen.detail == f"command exited with {code}"
    assert S.RUNNING.can_become(seen.state) and seen.state.can_become(S.TERMINATING)
    fake.check_requests_against_spec()


@pytest.mark.anyio
async def test_a_running_command_stays_running(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(fake, fake_provider, f"[runctl:{LAUNCH_ID}] start", "epoch 1")
    seen = await fake_provider.get(pod)
    assert (seen.state, seen.exit_code) == (S.RUNNING, None)


@pytest.mark.anyio
async def test_a_restarted_container_runs_again_and_an_other_launchs_marker_is_ignored(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(
        fake, fake_provider,
        f"[runctl:{LAUNCH_ID}] start", f"[runctl:{LAUNCH_ID}] exit 0",
        f"[runctl:{LAUNCH_ID}] start", "[runctl:someone-else] exit 1",
    )
    assert (await fake_provider.get(pod)).state is S.RUNNING


@pytest.mark.anyio
async def test_once_known_the_exit_code_is_not_read_again(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(fake, fake_provider, f"[runctl:{LAUNCH_ID}] exit 0")
    assert (await fake_provider.get(pod)).exit_code == 0
    reads = fake.log_requests()
    fake.logs[pod] = []  # an ended command cannot un-end, whatever the log says now
    for _ in range(3):
        assert (await fake_provider.get(pod)).state is S.SUCCEEDED
    listed = await fake_provider.list()
    assert [(r.state, r.exit_code) for r in listed] == [(S.SUCCEEDED, 0)]
    assert fake.log_requests() == reads == 1
    gone = await fake_provider.terminate(pod)
    assert (gone.state, gone.exit_code) == (S.TERMINATED, 0)
    assert fake.log_requests() == 1


@pytest.mark.anyio
async def test_the_log_of_a_running_pod_is_read_at_most_once_per_interval(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(fake, fake_provider, f"[runctl:{LAUNCH_ID}] start")
    for _ in range(3):
        assert (await fake_provider.get(pod)).state is S.RUNNING
    assert fake.log_requests() == 1
    listed = await fake_provider.list()  # list reads no logs
    assert [r.state for r in listed] == [S.RUNNING] and fake.log_requests() == 1


@pytest.mark.anyio
async def test_a_log_that_cannot_be_read_leaves_the_state_as_runpod_says(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(fake, fake_provider, f"[runctl:{LAUNCH_ID}] exit 0")
    fake.server.fail("GET", "/v2/pods/{id}/logs", Fault.http(500))
    seen = await fake_provider.get(pod)
    assert (seen.state, seen.exit_code) == (S.RUNNING, None)


@pytest.mark.anyio
async def test_starting_the_pod_again_forgets_the_exit_code(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(fake, fake_provider, f"[runctl:{LAUNCH_ID}] exit 0")
    assert (await fake_provider.get(pod)).state is S.SUCCEEDED
    await fake_provider.stop(pod)
    fake.logs[pod].append(f"[runctl:{LAUNCH_ID}] start")
    started = await fake_provider.start(pod)
    assert (started.state, started.exit_code) == (S.RUNNING, None)


@pytest.mark.anyio
async def test_markers_are_not_in_the_logs_users_read(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(
        fake, fake_provider, f"[runctl:{LAUNCH_ID}] start", "epoch 1", f"[runctl:{LAUNCH_ID}] exit 0"
    )
    assert [line async for line in fake_provider.logs(pod)] == ["epoch 1"]


@pytest.mark.anyio
async def test_following_the_logs_ends_when_the_command_ends(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await running_pod(
        fake, fake_provider, f"[runctl:{LAUNCH_ID}] start", "epoch 1", f"[runctl:{LAUNCH_ID}] exit 4"
    )
    with anyio.fail_after(10):
        lines = [line async for line in fake_provider.logs(pod, follow=True)]
    assert lines == ["epoch 1"]
    reads = fake.log_requests()
    seen = await fake_provider.get(pod)  # what the stream showed is known: no second read
    assert (seen.state, seen.exit_code) == (S.FAILED, 4)
    assert fake.log_requests() == reads
    fake.check_requests_against_spec()
