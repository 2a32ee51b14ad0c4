"""`runctl run` on RunPod, end to end: the fake runs the pod's command for real.

The fake server carries out what a pod does with its ``args`` (split like a shell,
run under /bin/sh, its output kept as the pod's log), so this is the whole main
job a user runs: launch, logs streamed back, the command's exit code, teardown,
cost, against RunPod's REST v2 shapes.
"""

from __future__ import annotations

import shlex
import sys

import pytest

from runctl.cli import main
from tests.support.fake_http import Reply, Request
from tests.support.workload import run_container_argv

from .conftest import FAKE_KEY, FakeRunPod

TRAIN = "import sys; [print(f'epoch {i}') for i in range(3)]; sys.exit(int(sys.argv[1]))"


class RunningFakeRunPod(FakeRunPod):
    """Runs each pod's command when the pod is created, and serves its output as logs."""

    def _create(self, request: Request) -> Reply:
        reply = super()._create(request)
        pod = next(reversed(self.pods.values()))
        done = run_container_argv(shlex.split(pod["args"]))
        self.logs[pod["id"]] = (done.stdout + done.stderr).splitlines()
        pod["status"] = "RUNNING"
        return reply


@pytest.fixture
def runpod(monkeypatch):
    with RunningFakeRunPod() as fake:
        monkeypatch.setenv("RUNPOD_API_KEY", FAKE_KEY)
        monkeypatch.setenv("RUNCTL_RUNPOD_BASE_URL", fake.url)
        yield fake


@pytest.mark.parametrize("code", [0, 3])
def test_runctl_run_on_runpod_streams_logs_reports_the_exit_code_and_tears_down(
    runpod, capsys, code
):
    argv = [
        "run", "--provider", "runpod", "--image", "pytorch/pytorch:latest",
        "--gpu", "H100", "--gpus", "1", "--", sys.executable, "-c", TRAIN, str(code),
    ]
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 0", "epoch 1", "epoch 2"]  # runctl's markers are hidden
    state = "succeeded" if code == 0 else "failed"
    assert f"{state}, exit code {code}" in err
    assert "now terminated" in err
    assert "cost " in err
    assert runpod.pods == {}  # torn down
    assert runpod.check_requests_against_spec() > 0
