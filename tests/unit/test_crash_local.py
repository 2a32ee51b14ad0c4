"""The local provider under machine faults: SIGKILLed launchers and supervisors, shells,
secrets on disk, chatty jobs and hostile ids (issue 18). Real processes, real signals;
every wait is for an observable event (a file, a pid, a state), bounded generously."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import runctl
from runctl import LaunchSpec, ResourceState
from runctl.config import ProviderConfig
from runctl.errors import NotFoundError
from runctl.providers.local import LocalProvider, _LineSplitter, _supervised

PY = sys.executable


def spec(code: str, **kw: object) -> LaunchSpec:
    return LaunchSpec(command=[PY, "-c", textwrap.dedent(code)], provider="local", **kw)


def until(condition: Callable[[], object], what: str, limit: float = 60.0) -> object:
    """Poll ``condition`` until it holds; the limit only turns a hang into a failure."""
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def resource_dir(home: Path, rid: str) -> Path:
    return home / "providers" / "local" / rid


def provider(home: Path, environ: dict[str, str] | None = None, **settings: str) -> LocalProvider:
    return LocalProvider(
        ProviderConfig(name="local", home=home, settings=settings,
                       environ=dict(os.environ if environ is None else environ))
    )


# --- item 7: an argv never meets a shell ---------------------------------------------------------


@pytest.mark.anyio
async def test_a_one_element_list_is_an_argv_and_never_runs_under_a_shell(runctl_home, tmp_path):
    marker = tmp_path / "marker"
    async with runctl.AsyncClient() as rc:
        res = await rc.launch(LaunchSpec(command=[f"echo hi; touch {marker}"], workdir=str(tmp_path)))
        done = await rc.wait(res, timeout=30)
    assert done.state is ResourceState.FAILED and done.exit_code == 127  # no such program
    assert not marker.exists()


@pytest.mark.anyio
async def test_the_shell_form_is_explicit(runctl_home, tmp_path):
    marker = tmp_path / "marker"
    async with runctl.AsyncClient() as rc:
        for s in (LaunchSpec(command=f"echo hi; touch {marker}"),
                  LaunchSpec(command=[f"echo hi; touch {marker}"], shell=True)):
            assert s.shell
            done = await rc.wait(await rc.launch(s), timeout=30)
            assert done.state is ResourceState.SUCCEEDED
            assert marker.exists()
            marker.unlink()


# --- item 8: secrets stay out of files and out of jobs that were not given them -------------------


@pytest.mark.anyio
async def test_env_values_are_never_written_and_files_are_private(runctl_home, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rp_launcher_secret_value")
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    async with runctl.AsyncClient() as rc:
        res = await rc.launch(spec(code, env={"HF_TOKEN": "hf_value_for_the_job_only"}))
        await rc.wait(res, timeout=30)
        (line,) = [line async for line in rc.logs(res)]
    seen = json.loads(line)
    assert seen["HF_TOKEN"] == "hf_value_for_the_job_only"
    assert "RUNPOD_API_KEY" not in seen  # the launcher's credentials are not inherited
    assert seen["PATH"] == os.environ["PATH"] and seen["RUNCTL_RESOURCE_ID"] == res.id
    directory = resource_dir(runctl_home, res.id)
    for path in [directory, directory.parent, *directory.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        if path.is_file() and path.name != "output.log":
            assert "hf_value_for_the_job_only" not in path.read_text(errors="replace"), path


@pytest.mark.anyio
async def test_pass_env_names_more_variables_a_job_inherits(runctl_home):
    environ = {**os.environ, "WANDB_DIR": "/tmp/wandb", "SECRET_KEY": "no"}
    local = provider(runctl_home, environ, pass_env="WANDB_DIR")
    res = await local.launch(spec("import os; print(os.environ.get('WANDB_DIR'), os.environ.get('SECRET_KEY'))"))
    until(lambda: (resource_dir(runctl_home, res.id) / "status.json").exists(), "the job ends")
    assert [line async for line in local.logs(res.id)] == ["/tmp/wandb None"]


# --- items 2 and 3: killed launchers and supervisors leave no ghost and no survivor ---------------


@pytest.mark.anyio
async def test_a_launcher_killed_before_the_supervisor_runs_leaves_no_ghost(runctl_home):
    # The launcher is stopped the moment the resource directory appears (SIGSTOP keeps
    # it from going further), then SIGKILLed: the supervisor never started.
    local = provider(runctl_home)
    root = runctl_home / "providers" / "local"
    launcher = subprocess.Popen(  # noqa: ASYNC220 - the launcher is the process under test
        [PY, "-c", textwrap.dedent("""
            import anyio, os, signal, sys
            import runctl.providers.local as local
            from runctl.config import load_settings
            from runctl.models import LaunchSpec
            real = local.LocalProvider._publish
            def publish(self, staging, directory):
                done = real(self, staging, directory)
                os.kill(os.getpid(), signal.SIGSTOP)  # frozen right after publishing
                return done
            local.LocalProvider._publish = publish
            p = local.LocalProvider(load_settings().provider_config("local"))
            anyio.run(p.launch, LaunchSpec(command=["sleep", "60"], launch_id="ghost1"))
        """)],
        env={**os.environ, "RUNCTL_HOME": str(runctl_home)},
    )
    until(lambda: (root / "local-ghost1" / "meta.json").exists(), "the resource appears")
    until(lambda: Path(f"/proc/{launcher.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T",
          "the launcher stops")
    # While the launcher lives it holds the lock: the resource is starting, not lost.
    assert (await local.get("local-ghost1")).state is ResourceState.PROVISIONING
    launcher.kill()
    launcher.wait()
    res = await local.get("local-ghost1")
    assert res.state is ResourceState.FAILED and "before starting" in (res.detail or "")
    ended = await local.terminate("local-ghost1")
    assert ended.is_terminal
    assert (await local.list(tags={"runctl-launch-id": "ghost1"}))[0].is_terminal


@pytest.mark.anyio
async def test_a_killed_supervisor_is_reported_and_terminate_kills_the_whole_session(
    runctl_home, tmp_path
):
    # The job ignores SIGTERM and starts a background child in a process group of its
    # own that ignores SIGTERM too: only a session-wide SIGKILL ends both.
    code = """
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); os.setpgid(0, 0); "
            "open('child.pid', 'w').write(str(os.getpid())); time.sleep(600)"])
        time.sleep(600)
    """
    local = provider(runctl_home, grace_seconds="0.2")
    res = await local.launch(spec(code, workdir=str(tmp_path)))
    directory = resource_dir(runctl_home, res.id)
    child_pid = int(until(lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text(),
                          "the background child starts"))
    workdir_pid = json.loads((directory / "process.json").read_text())["pid"]
    supervisor = json.loads((directory / "supervisor.json").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    # Dead once its lock is free (a killed process releases its files a moment after
    # /proc shows it a zombie).
    until(lambda: _supervised(directory) is False, "the supervisor's lock is released")
    seen = await local.get(res.id)
    assert seen.state is ResourceState.RUNNING and seen.raw_state == "unsupervised"
    assert "supervisor died" in (seen.detail or "")
    ended = await local.terminate(res.id)
    assert ended.state is ResourceState.TERMINATED
    assert not alive(workdir_pid) and not alive(child_pid)


@pytest.mark.anyio
async def test_a_job_that_exits_leaves_no_background_child_behind(runctl_home, tmp_path):
    # The job starts a worker (same session), waits until it runs, and exits: the
    # supervisor ends the worker before it records the end.
    code = """
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c",
            "import os, time; open('left.tmp', 'w').write(str(os.getpid())); os.replace('left.tmp', 'left.pid'); time.sleep(600)"])
        while not os.path.exists("left.pid"):
            time.sleep(0.01)
    """
    local = provider(runctl_home)
    res = await local.launch(spec(code, workdir=str(tmp_path)))
    until(lambda: (resource_dir(runctl_home, res.id) / "status.json").exists(), "the job ends")
    assert not alive(int((tmp_path / "left.pid").read_text()))


@pytest.mark.anyio
async def test_a_directory_left_without_metadata_does_not_burn_the_launch_id(runctl_home):
    # What an older runctl left when it crashed between mkdir and writing meta.json.
    (runctl_home / "providers" / "local" / "local-burned1").mkdir(parents=True)
    (runctl_home / "providers" / "local" / "local-burned1" / "supervisor.log").write_text("")
    local = provider(runctl_home)
    res = await local.launch(spec("print('ok')", launch_id="burned1"))
    until(lambda: (resource_dir(runctl_home, res.id) / "status.json").exists(), "the job ends")
    assert (await local.get(res.id)).state is ResourceState.SUCCEEDED


# --- item 10: logs -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_chatty_job_is_capped_and_rotated(runctl_home):
    # 3 MB of output with a 1 MB cap and one backup: at most 2 MB stays on disk.
    code = "import sys\nfor i in range(3 * 1024):\n    sys.stdout.write(f'{i:07d}' + 'x' * 1016 + '\\n')"
    local = provider(runctl_home, max_log_mb="1", log_backups="1")
    res = await local.launch(spec(code))
    directory = resource_dir(runctl_home, res.id)
    until(lambda: (directory / "status.json").exists(), "the job ends")
    logs = sorted(p.name for p in directory.glob("output.log*"))
    assert logs == ["output.log", "output.log.1"]
    assert all((directory / name).stat().st_size <= 1024 * 1024 for name in logs)
    lines = [line async for line in local.logs(res.id)]
    # The newest output is kept, in order, from the rotated file into the current one.
    assert lines[-1].startswith(f"{3 * 1024 - 1:07d}")
    numbers = [int(line[:7]) for line in lines if len(line) == 1023]
    assert numbers == sorted(numbers) and len(numbers) >= 1024


def test_line_splitting_is_exact_across_chunks_and_replaces_bad_utf8():
    splitter = _LineSplitter()
    out: list[str] = []
    for chunk in (b"ab", b"c\nd", b"\xff\xfe\n", b"\n", b"tail"):
        out += splitter.feed(chunk)
    assert out == ["abc", "d\ufffd\ufffd", ""]
    assert splitter.rest() == "tail"


@pytest.mark.anyio
async def test_invalid_utf8_is_replaced(runctl_home):
    local = provider(runctl_home)
    res = await local.launch(spec("import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')"))
    until(lambda: (resource_dir(runctl_home, res.id) / "status.json").exists(), "the job ends")
    assert [line async for line in local.logs(res.id)] == ["ok \ufffd\ufffd end"]


@pytest.mark.anyio
@pytest.mark.parametrize("rid", ["local-" + "a" * 5000, "local-a/../../x", "local-\x00", "x" * 5000])
async def test_a_huge_or_hostile_id_is_not_found_clearly(runctl_home, rid):
    local = provider(runctl_home)
    for call in (local.get(rid), local.terminate(rid)):
        with pytest.raises(NotFoundError, match="not a local resource id") as info:
            await call
        assert len(str(info.value)) < 300
    with pytest.raises(NotFoundError):
        async for _ in local.logs(rid):
            pass


@pytest.mark.anyio
async def test_a_launch_cancelled_before_its_supervisor_runs_is_undone_at_once(runctl_home):
    # Ctrl-C early in a launch: the cancellation lands right after the resource appears,
    # before the supervisor is started. The undo finds it ended (lost), not provisioning.
    import anyio

    from runctl.ledger import Ledger
    from runctl.lifecycle import launch_safely

    class CancelledAfterPublish(LocalProvider):
        scope: anyio.CancelScope

        def _publish(self, staging: Path, directory: Path) -> bool:
            done = super()._publish(staging, directory)
            self.scope.cancel()
            return done

    local = CancelledAfterPublish(ProviderConfig(name="local", home=runctl_home,
                                                 environ=dict(os.environ)))
    ledger = Ledger(runctl_home / "ledger.sqlite3")
    with anyio.CancelScope() as scope:
        local.scope = scope
        await launch_safely(local, spec("import time; time.sleep(600)", launch_id="early1"),
                            ledger, settle=0.1, poll_interval=0.05, cleanup_timeout=60)
    assert scope.cancelled_caught
    record = ledger.get("early1")
    assert record is not None and record.status == "closed"
    assert record.note == "cancelled; terminated local-early1", record.note
    assert (await local.get("local-early1")).is_terminal


@pytest.mark.anyio
@pytest.mark.parametrize("option", [{"max_log_mb": "x"}, {"grace_seconds": "nan"},
                                    {"log_backups": "-1"}])
async def test_a_bad_option_is_a_validation_error_naming_it(runctl_home, option):
    from runctl.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        await provider(runctl_home).launch(spec("pass", options=option))
    assert info.value.field == f"options.{next(iter(option))}"
    assert not list((runctl_home / "providers" / "local").glob("local-*"))
