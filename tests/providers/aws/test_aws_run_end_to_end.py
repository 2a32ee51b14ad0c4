"""`runctl run` and `runctl.Client` on AWS, end to end against moto.

moto keeps instances but runs nothing on them, and its console output is a fixed boot
log. So when an instance is created, the test does what the machine would: it runs the
instance's user data here, exactly as EC2 received it, under /bin/sh (with ``poweroff``
and ``shutdown`` replaced by stand-ins on ``PATH`` that record their calls, and the
serial console a file), and gives moto's GetConsoleOutput for that instance what the
script printed. The provider then reads the command's output and exit code from the
console over HTTP, as it would on EC2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import runctl
from runctl.cli import main
from runctl.models import LaunchSpec, ResourceState

from .conftest import MotoEc2, run_user_data

TRAIN = "import sys; [print(f'epoch {i}') for i in range(3)]; sys.exit(int(sys.argv[1]))"


def boot_runs_user_data(moto: MotoEc2, tmp_path: Path, power: list[list[str]]) -> None:
    def on_run(instance) -> None:
        console, calls = run_user_data(instance.user_data.decode(), tmp_path / instance.id)
        moto.consoles[instance.id] = console
        power.append(calls)

    moto.on_run = on_run


@pytest.mark.parametrize("code", [0, 3])
def test_runctl_run_on_aws_streams_logs_reports_the_exit_code_and_tears_down(
    moto, tmp_path, capsys, code
):
    power: list[list[str]] = []
    boot_runs_user_data(moto, tmp_path, power)
    argv = [
        "run", "--provider", "aws", "--gpu", "L4", "--gpus", "1", "--ttl", "30",
        "--", sys.executable, "-c", TRAIN, str(code),
    ]
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 0", "epoch 1", "epoch 2"]  # markers and boot log hidden
    state = "succeeded" if code == 0 else "failed"
    assert f"{state}, exit code {code}" in err
    assert "cost " in err
    # The machine was told to die at its TTL, and powered itself off after the command.
    (calls,) = power
    assert calls == ["shutdown -P +30", "poweroff"]
    (instance,) = moto.backend().all_instances()
    assert instance.state == "terminated"


def test_client_lifecycle_on_aws(moto, tmp_path):
    power: list[list[str]] = []
    boot_runs_user_data(moto, tmp_path, power)
    spec = LaunchSpec(
        command=["sh", "-c", 'echo "hello $WHO"; pwd'], provider="aws",
        instance_type="g6.xlarge", env={"WHO": "aws"}, workdir="/tmp", name="hello",
    )
    with runctl.Client() as rc:
        with rc.launch(spec) as res:
            done = rc.wait(res, until="finished", timeout=60)
            assert done.state is ResourceState.SUCCEEDED and done.exit_code == 0
            assert list(rc.logs(res)) == ["hello aws", "/tmp"]
            assert [r.id for r in rc.list(providers=["aws"])] == [res.id]
        final = rc.get(res.id, provider="aws")
        assert final.state is ResourceState.TERMINATED
        assert rc.cost(final) is not None
    # The default TTL (24 h) is applied to every launch: the machine's own shutdown timer.
    assert power == [["shutdown -P +1440", "poweroff"]]
