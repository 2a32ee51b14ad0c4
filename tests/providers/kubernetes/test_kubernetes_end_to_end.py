"""Whole runs through ``runctl.Client`` and ``runctl run``: a fake kubelet runs the pods here.

The fake (``FakeKubelet``) does what the Job controller and the kubelet would: it
creates the Job's pods, runs each container's command as a local process with the
environment the pod would get (``fieldRef`` values included), and writes the log and
the final status. Everything between runctl and it is the official client over HTTP.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import runctl
from runctl.cli import main
from runctl.models import ResourceState
from runctl.providers.kubernetes import job_name

from .cluster import FakeCluster, FakeKubelet

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")

TRAIN = "import sys; [print(f'epoch {i}') for i in range(3)]; sys.exit(int(sys.argv[1]))"
RANKS = (
    "import os; print('rank', os.environ['NODE_RANK'], 'of', os.environ['WORLD_SIZE'],"
    " 'master', os.environ['MASTER_ADDR'] + ':' + os.environ['MASTER_PORT'])"
)


@pytest.fixture
def kube_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    return kubeconfig


def test_a_run_through_the_client_launches_waits_reads_logs_and_terminates(
    cluster: FakeCluster, kube_env: Path
) -> None:
    spec = runctl.LaunchSpec(
        command=[sys.executable, "-c", TRAIN, "0"], provider="kubernetes", image="python:3.12",
        launch_id="client1",
    )
    with FakeKubelet(cluster), runctl.Client() as rc:
        res = rc.launch(spec).resource
        assert res.id == f"team/{job_name('client1')}"
        done = rc.wait(res, until="finished", timeout=30, poll=0.02)
        assert done.state is ResourceState.SUCCEEDED and done.exit_code == 0
        assert list(rc.logs(res)) == ["epoch 0", "epoch 1", "epoch 2"]
        assert [r.id for r in rc.list(providers=["kubernetes"])] == [res.id]
        gone = rc.terminate(res)
        assert gone.state is ResourceState.TERMINATED
    assert cluster.jobs() == {}


@pytest.mark.parametrize("code", [0, 3])
def test_runctl_run_on_kubernetes_streams_logs_and_returns_the_exit_code(
    cluster: FakeCluster, kube_env: Path, capsys: pytest.CaptureFixture[str], code: int
) -> None:
    argv = ["run", "--provider", "kubernetes", "--image", "python:3.12", "--launch-id",
            f"cli{code}", "--", sys.executable, "-c", TRAIN, str(code)]
    with FakeKubelet(cluster):
        assert main(argv) == code
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 0", "epoch 1", "epoch 2"]
    state = "succeeded" if code == 0 else "failed"
    assert f"{state}, exit code {code}" in err
    assert "now terminated" in err
    assert cluster.jobs() == {}  # torn down


def test_runctl_run_on_two_nodes_gives_every_node_its_rank(
    cluster: FakeCluster, kube_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--provider", "kubernetes", "--image", "python:3.12", "--launch-id", "two",
            "--", sys.executable, "-c", RANKS]
    with pytest.MonkeyPatch.context() as mp:
        # `runctl run` has no --nodes flag: build the spec as the Python API would.
        from runctl import cli

        original = cli._spec_from

        def two_nodes(args):  # type: ignore[no-untyped-def]
            import attrs

            return attrs.evolve(original(args), nodes=2)

        mp.setattr(cli, "_spec_from", two_nodes)
        with FakeKubelet(cluster) as kubelet:
            assert main(argv) == 0
    out, _ = capsys.readouterr()
    name = job_name("two")
    master = f"{name}-0.{name}:29500"
    assert sorted(out.splitlines()) == [
        f"[node 0] rank 0 of 2 master {master}", f"[node 1] rank 1 of 2 master {master}",
    ]
    assert [env["RUNCTL_NODE_ADDRS"] for env in kubelet.envs.values()] == [
        f"{name}-0.{name},{name}-1.{name}"] * 2
    assert cluster.jobs() == {} and cluster.services() == {}
