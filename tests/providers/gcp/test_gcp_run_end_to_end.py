"""`runctl run` on GCP, end to end, against the fake Compute Engine.

Simulated part (see fake_gcp): the fake runs the VM's startup-script with /bin/sh
here when the insert finishes and puts its output on serial port 1 as Google's
guest agent writes it, so the wrapper's exit marker reaches runctl as from a VM.
"""

from __future__ import annotations

import sys

import pytest

from runctl.cli import main

from .conftest import ZONES
from .fake_gcp import PROJECT, FakeGcp

TRAIN = "import sys; [print(f'epoch {i}') for i in range(3)]; sys.exit(int(sys.argv[1]))"


@pytest.fixture
def gcp_env(monkeypatch: pytest.MonkeyPatch):
    with FakeGcp(run_workloads=True) as fake:
        for key, value in {
            "PROJECT": PROJECT, "CREDENTIALS": "anonymous", "ZONES": ZONES,
            "COMPUTE_API_ENDPOINT": fake.url, "TPU_API_ENDPOINT": fake.url,
        }.items():
            monkeypatch.setenv(f"RUNCTL_GCP_{key}", value)
        yield fake


@pytest.mark.parametrize("code", [0, 3])
def test_runctl_run_on_gcp_streams_logs_reports_the_exit_code_and_tears_down(
    gcp_env: FakeGcp, capsys: pytest.CaptureFixture[str], code: int
) -> None:
    argv = ["run", "--provider", "gcp", "--gpu", "L4", "--gpus", "1", "--",
            sys.executable, "-c", TRAIN, str(code)]
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 0", "epoch 1", "epoch 2"]  # markers and boot lines hidden
    state = "succeeded" if code == 0 else "failed"
    assert f"{state}, exit code {code}" in err
    assert "cost " in err
    # Torn down: the delete was sent (Google finishes it in the background).
    assert [i["status"] for i in gcp_env.instances.values()] in ([], ["STOPPING"])
    assert any(r.method == "DELETE" for r in gcp_env.server.requests)
