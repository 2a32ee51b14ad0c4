"""The local provider, driven through the clients: real subprocesses, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import runctl
from runctl import LaunchSpec, ResourceState
from runctl.errors import (
    InvalidTransitionError,
    NotFoundError,
    ResourceEndedError,
    UnsupportedOperationError,
    WaitTimeoutError,
)

PY = sys.executable


def spec(code: str, **kw) -> LaunchSpec:
    return LaunchSpec(command=[PY, "-c", textwrap.dedent(code)], provider="local", **kw)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] in "ZX")


def workload_pid(home: Path, resource_id: str) -> int:
    return json.loads((home / "providers" / "local" / resource_id / "process.json").read_text())["pid"]


class TestAsyncClient:
    @pytest.mark.anyio
    async def test_launch_block_runs_streams_and_terminates(self, runctl_home):
        seen: list[ResourceState] = []
        async with runctl.AsyncClient() as rc:
            async with rc.launch(spec("print('hello'); print('world')", env={"A": "1"})) as res:
                assert res.provider == "local" and res.id.startswith("local-")
                lines = [line async for line in rc.logs(res, follow=True)]
                done = await rc.wait(res, until="finished", timeout=30, progress=lambda r: seen.append(r.state))
            assert lines == ["hello", "world"]
            assert done.state is ResourceState.SUCCEEDED and done.exit_code == 0
            assert seen[-1] is ResourceState.SUCCEEDED
            cost = await rc.cost(done)
            assert cost == runctl.Money(Decimal(0), "USD")

    @pytest.mark.anyio
    async def test_non_zero_exit_is_failed_with_its_code(self):
        async with runctl.AsyncClient() as rc:
            res = await rc.launch(spec("import sys; sys.exit(3)"))
            done = await rc.wait(res, timeout=30)
        assert done.state is ResourceState.FAILED and done.exit_code == 3

    @pytest.mark.anyio
    async def test_wait_times_out_with_the_last_observation(self):
        async with runctl.AsyncClient() as rc:
            async with rc.launch(spec("import time; time.sleep(60)")) as res:
                with pytest.raises(WaitTimeoutError) as info:
                    await rc.wait(res, until="finished", timeout=0.5)
                assert info.value.resource.state is ResourceState.RUNNING

    @pytest.mark.anyio
    async def test_waiting_for_a_state_that_can_no_longer_come_raises(self):
        async with runctl.AsyncClient() as rc:
            res = await rc.launch(spec("pass"))
            await rc.wait(res, timeout=30)
            with pytest.raises(ResourceEndedError, match="succeeded"):
                await rc.wait(res, until="stopped", timeout=5)
            # "running" is satisfied by a workload that already ran
            assert (await rc.wait(res, until="running", timeout=5)).state is ResourceState.SUCCEEDED

    @pytest.mark.anyio
    async def test_stop_and_start_pause_the_process(self, runctl_home):
        async with runctl.AsyncClient() as rc:
            async with rc.launch(spec("import time\nwhile True: print(time.time(), flush=True); time.sleep(0.05)")) as res:
                await rc.wait(res, until="running", timeout=10)
                stopped = await rc.stop(res)
                assert stopped.state is ResourceState.STOPPED
                state = Path(f"/proc/{workload_pid(runctl_home, res.id)}/stat").read_text().rsplit(")", 1)[1].split()[0]
                assert state == "T"
                assert (await rc.start(res)).state is ResourceState.RUNNING
            ended = await rc.get(res)
            assert ended.state is ResourceState.TERMINATED

    @pytest.mark.anyio
    async def test_stop_of_an_ended_resource_is_an_invalid_transition(self):
        async with runctl.AsyncClient() as rc:
            res = await rc.launch(spec("pass"))
            await rc.wait(res, timeout=30)
            with pytest.raises(InvalidTransitionError, match="succeeded to stopped"):
                await rc.stop(res)

    @pytest.mark.anyio
    async def test_ttl_is_enforced_by_the_provider(self):
        async with runctl.AsyncClient() as rc:
            res = await rc.launch(spec("import time; time.sleep(60)", ttl=timedelta(seconds=0.5)))
            done = await rc.wait(res, timeout=20)
        assert done.state is ResourceState.TERMINATED
        assert "TTL" in (done.detail or "")

    @pytest.mark.anyio
    async def test_same_launch_id_is_the_same_resource(self):
        s = spec("import time; time.sleep(30)", launch_id="fixed-id-1")
        async with runctl.AsyncClient() as rc:
            first = await rc.launch(s)
            again = await rc.launch(s)
            assert again.id == first.id
            assert len(await rc.list(tags={"runctl-launch-id": "fixed-id-1"})) == 1
            await rc.terminate(first)

    @pytest.mark.anyio
    async def test_terminate_escalates_to_sigkill_after_the_grace_period(self):
        code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('ready', flush=True)
        time.sleep(60)
        """
        s = spec(code, options={"grace_seconds": "0.5"})
        async with runctl.AsyncClient() as rc:
            res = await rc.launch(s)
            async for line in rc.logs(res, follow=True):
                if line == "ready":
                    break
            ended = await rc.terminate(res)
        assert ended.state is ResourceState.TERMINATED
        # Killed (it ignores SIGTERM and would sleep 60 s): the escalation happened.
        assert ended.exit_code == 128 + signal.SIGKILL

    @pytest.mark.anyio
    async def test_a_missing_command_fails_with_127_and_says_why(self):
        async with runctl.AsyncClient() as rc:
            res = await rc.launch(LaunchSpec(command=["/no/such/binary"], provider="local"))
            done = await rc.wait(res, timeout=20)
            logs = [line async for line in rc.logs(res)]
        assert done.state is ResourceState.FAILED and done.exit_code == 127
        assert "cannot start" in logs[0]

    @pytest.mark.anyio
    async def test_a_shell_string_runs_under_sh(self):
        async with runctl.AsyncClient() as rc:
            res = await rc.launch(LaunchSpec(command="echo $GREETING && echo two", env={"GREETING": "hi"}))
            await rc.wait(res, timeout=20)
            assert [line async for line in rc.logs(res)] == ["hi", "two"]

    @pytest.mark.anyio
    async def test_spot_is_refused_clearly(self):
        async with runctl.AsyncClient() as rc:
            with pytest.raises(UnsupportedOperationError, match="local does not support spot"):
                await rc.launch(spec("pass", spot=True))

    @pytest.mark.anyio
    async def test_unknown_id_is_not_found(self):
        async with runctl.AsyncClient() as rc:
            with pytest.raises(NotFoundError):
                await rc.get("local-doesnotexist")
            with pytest.raises(NotFoundError):
                await rc.get("../../etc")

    @pytest.mark.anyio
    async def test_offer_describes_this_machine_for_free(self):
        async with runctl.AsyncClient() as rc:
            (offer,) = await rc.provider("local").offers(runctl.OfferQuery())
        assert offer.vcpus == os.cpu_count()
        assert offer.price.per_hour.amount == 0 and offer.price.source == "static"


class TestSyncClient:
    def test_quickstart_shape(self):
        with runctl.Client() as rc:
            with rc.launch(spec("print('epoch 1'); print('epoch 2')", name="mnist")) as res:
                rc.wait(res, until="running", timeout=30)
                lines = list(rc.logs(res, follow=True))
                done = rc.wait(res, until="finished", timeout=60)
            assert lines == ["epoch 1", "epoch 2"]
            assert (done.state, done.exit_code) == (ResourceState.SUCCEEDED, 0)
            assert rc.cost(done).amount == 0

            res = rc.launch(spec("import time; time.sleep(60)"))
            assert rc.get(res.id).state is ResourceState.RUNNING
            assert rc.terminate(res.id).state is ResourceState.TERMINATED

    def test_works_inside_a_running_event_loop_like_jupyter(self):
        import asyncio

        async def notebook_cell():
            # A notebook cell runs in the loop's own thread; the sync client must not
            # try to run (or block) that loop.
            with runctl.Client() as rc:
                res = rc.launch(spec("print('inside')"))
                done = rc.wait(res, timeout=30)
                return done.state, list(rc.logs(res))

        assert asyncio.run(notebook_cell()) == (ResourceState.SUCCEEDED, ["inside"])

    def test_sync_client_on_trio(self):
        with runctl.Client(backend="trio") as rc:
            res = rc.launch(spec("print('trio')"))
            assert rc.wait(res, timeout=30).state is ResourceState.SUCCEEDED

    def test_abandoning_a_log_follow_midway_is_clean(self):
        with runctl.Client() as rc:
            with rc.launch(spec("import time\nfor i in range(1000): print(i, flush=True); time.sleep(0.01)")) as res:
                for line in rc.logs(res, follow=True):
                    if line == "5":
                        break
            assert rc.get(res).state is ResourceState.TERMINATED


LAUNCHER = """
import sys, runctl
spec = runctl.LaunchSpec(command=[sys.executable, "-c", "import time\\nprint('up', flush=True)\\ntime.sleep(120)"],
                         provider="local", name="survivor")
with runctl.Client() as rc:
    res = rc.launch(spec)
    print(res.id, flush=True)
"""


def test_a_resource_outlives_the_process_that_launched_it(runctl_home):
    out = subprocess.run([PY, "-c", LAUNCHER], capture_output=True, text=True, timeout=60, check=True)
    rid = out.stdout.strip()
    with runctl.Client() as rc:
        res = rc.get(rid)
        assert res.state is ResourceState.RUNNING and res.name == "survivor"
        assert [r.id for r in rc.list()] == [rid]
        logs = rc.logs(rid, follow=True)
        assert next(logs) == "up"
        logs.close()
        pid = workload_pid(runctl_home, rid)
        assert rc.terminate(rid).state is ResourceState.TERMINATED
    assert not pid_alive(pid)


CTRL_C = """
import sys, runctl
spec = runctl.LaunchSpec(command=[sys.executable, "-c", "import time\\nprint('up', flush=True)\\ntime.sleep(120)"],
                         provider="local")
with runctl.Client() as rc:
    with rc.launch(spec) as res:
        print(res.id, flush=True)
        rc.wait(res, until="finished")
"""


def test_ctrl_c_inside_a_launch_block_leaves_nothing_running(runctl_home):
    proc = subprocess.Popen([PY, "-c", CTRL_C], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rid = proc.stdout.readline().strip()
    assert rid.startswith("local-"), proc.stderr.read()
    pid = workload_pid(runctl_home, rid)
    assert pid_alive(pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    with runctl.Client() as rc:
        assert rc.get(rid).state is ResourceState.TERMINATED
    assert not pid_alive(pid)


CTRL_C_DURING_LAUNCH = """
import sys, anyio, runctl
from runctl.providers.local import LocalProvider

class SlowLocal(LocalProvider):
    async def launch(self, spec):
        res = await super().launch(spec)
        print(res.id, flush=True)
        await anyio.sleep(120)   # the answer never comes back
        return res

settings = runctl.load_settings()
with runctl.Client(providers={"local": SlowLocal(settings.provider_config("local"))}) as rc:
    rc.launch(runctl.LaunchSpec(command=[sys.executable, "-c", "import time; time.sleep(120)"]))
"""


def test_ctrl_c_during_the_launch_call_terminates_what_was_created(runctl_home):
    proc = subprocess.Popen([PY, "-c", CTRL_C_DURING_LAUNCH], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rid = proc.stdout.readline().strip()
    assert rid.startswith("local-"), proc.stderr.read()
    pid = workload_pid(runctl_home, rid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert not pid_alive(pid)
    with runctl.Client() as rc:
        assert rc.get(rid).state is ResourceState.TERMINATED


@pytest.mark.anyio
async def test_a_launch_cancelled_midway_terminates_what_it_created(runctl_home):
    import anyio

    from runctl.providers.local import LocalProvider

    created: list[str] = []
    made = anyio.Event()

    class SlowLocal(LocalProvider):
        async def launch(self, spec):
            res = await super().launch(spec)
            created.append(res.id)
            made.set()
            await anyio.sleep_forever()  # the response never arrives
            return res

    settings = runctl.load_settings()
    async with runctl.AsyncClient(providers={"local": SlowLocal(settings.provider_config("local"))}) as rc:
        scope = anyio.CancelScope()

        async def launch() -> None:
            with scope:
                await rc.launch(spec("import time; time.sleep(60)"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(launch)
            await made.wait()  # cancelled once the process exists, however long that took
            scope.cancel()
        assert (await rc.get(created[0])).state is ResourceState.TERMINATED


def test_an_unclosed_sync_client_does_not_hang_interpreter_exit():
    code = "import runctl; rc = runctl.Client(); rc.list(); print('done')"
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "done", out.stderr
