"""The Slurm provider against a real cluster: slurmctld and two slurmd (n1, n2) on this host.

Every transport drives the same cluster (``local``: the commands here, ``ssh``: through
a real sshd, ``rest``: slurmrestd with a JWT; ``socket``: slurmrestd's unix socket). See
conftest.py for how the cluster is found, and cluster/up.sh for what it is.

The cluster keeps no accounting (no slurmdbd), so exit codes come from ``scontrol`` /
the REST job record, and, for a job slurmctld has forgotten, from runctl's marker in
the output file; both paths run here.

TIMEOUT without waiting a minute: Slurm's smallest time limit is one minute, so the
TTL test lowers the running job's limit to 0 with ``scontrol update TimeLimit=0``;
slurmctld then ends it at its next time-limit check (it checks every 30 s). That job is
started when this module starts and checked by the module's last test, so the wait
overlaps the other tests.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import runctl
from runctl.cli import main
from runctl.errors import CapacityError, NotFoundError, ValidationError
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.testing import check_provider

from .conftest import Cluster

S = ResourceState
RENDEZVOUS = (
    'echo "rank=$NODE_RANK/$RUNCTL_NODE_RANK of $WORLD_SIZE/$RUNCTL_NUM_NODES '
    'master=$MASTER_ADDR:$MASTER_PORT addrs=$RUNCTL_NODE_ADDRS host=$SLURMD_NODENAME '
    'gpus=$CUDA_VISIBLE_DEVICES secret=$TOKEN"'
)


# --- TIMEOUT from the TTL, started first, checked last ------------------------------------------


@pytest.fixture(scope="module")
def timeout_job(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A job launched with a 30 s TTL (so --time=1), whose limit is then lowered to 0."""
    home = tmp_path_factory.mktemp("timeout-home")

    async def launch() -> str:
        provider = cluster.provider("local", home)
        spec = LaunchSpec(command=["sleep", "300"], provider="slurm", ttl=30, name="ttl")
        resource = await provider.launch(spec)
        for _ in range(100):  # a limit can only be lowered once the job runs
            if (await provider.get(resource.id)).state is S.RUNNING:
                break
            await anyio.sleep(0.1)
        await provider.aclose()
        return resource.id

    job_id = anyio.run(launch)
    assert "TimeLimit=00:01:00" in cluster.scontrol("show", "job", job_id)  # the TTL, rounded up
    cluster.scontrol("update", f"JobId={job_id}", "TimeLimit=0")
    yield job_id
    subprocess.run(["scancel", job_id], capture_output=True, check=False, timeout=30)


@pytest.fixture(autouse=True)
def _start_the_timeout_job_first(timeout_job: str) -> None:
    """Every test here asks for the TIMEOUT job, so it starts before the first one."""


# --- lifecycle ----------------------------------------------------------------------------------


def test_a_two_node_job_through_the_client(cluster: Cluster, slurm_env: str) -> None:
    spec = LaunchSpec(
        command=["sh", "-c", RENDEZVOUS], provider="slurm", nodes=2, gpu="H100", gpu_count=1,
        env={"TOKEN": "s3cr3t-value"}, ttl=300,
    )  # fmt: skip
    with runctl.Client() as rc:
        assert rc.provider("slurm").capabilities.multi_node
        launched = rc.launch(spec)
        done = rc.wait(launched, until="finished", timeout=90)
        lines = sorted(rc.logs(launched))
        final = rc.terminate(launched)  # a no-op for an ended job
        cost = rc.cost(final)
    assert done.state is S.SUCCEEDED and done.exit_code == 0, done
    assert done.raw_state == "COMPLETED"
    assert (done.nodes, done.addresses, done.address) == (2, ("n1", "n2"), "n1")
    assert (done.gpu_count, done.gpu.model if done.gpu else None) == (1, "H100")
    assert done.started_at is not None and done.ended_at is not None
    assert final.state is S.SUCCEEDED
    assert cost is not None and cost.amount == 0  # no gpu_hour_rate configured
    assert lines == [
        "rank=0/0 of 2/2 master=n1:29500 addrs=n1,n2 host=n1 gpus=0 secret=s3cr3t-value",
        "rank=1/1 of 2/2 master=n1:29500 addrs=n1,n2 host=n2 gpus=0 secret=s3cr3t-value",
    ]  # one task per node, the same MASTER_ADDR, ranks 0 and 1; no runctl markers


@pytest.mark.parametrize("code", [3])
def test_runctl_run_reports_a_failing_jobs_exit_code(
    cluster: Cluster, slurm_env: str, capsys: pytest.CaptureFixture[str], code: int
) -> None:
    train = f"import sys; [print(f'epoch {{i}}') for i in range(3)]; sys.exit({code})"
    # python3 from PATH: REST jobs run as the token's user (slurm), who cannot run this venv.
    argv = ["run", "--provider", "slurm", "--ttl", "5", "--", "python3", "-c", train]
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out.splitlines() == ["epoch 0", "epoch 1", "epoch 2"]
    assert f"failed, exit code {code}" in err
    assert re.search(r"cost 0(\.0+)? USD$", err.strip()), err  # no gpu_hour_rate: free


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["local", "ssh", "rest", "socket"])
async def test_the_provider_conforms(cluster: Cluster, transport: str, tmp_path: Path) -> None:
    provider = cluster.provider(transport, tmp_path, terminate_wait_seconds="10")
    spec = LaunchSpec(command=["sleep", "60"], provider="slurm", name="conform")
    report = await check_provider(provider, spec=spec, settle_timeout=30, poll=0.2)
    await provider.aclose()
    assert report.ok, str(report)
    if transport == "ssh":
        # The shared ssh connection is closed with the provider: no ssh process is left.
        mine = Path(f"/tmp/runctl-ssh-{os.getuid()}")
        assert not [p for p in mine.glob(f"{os.getpid()}-*")], "ssh master left running"


@pytest.mark.anyio
async def test_arguments_reach_the_login_node_intact_over_ssh(cluster: Cluster, tmp_path: Path) -> None:
    from runctl.providers.slurm._cli import SshRunner

    canary = tmp_path / "pwned"
    hostile = f"a b 'c' \"d\" $(touch {canary}) `touch {canary}`; touch {canary} & $HOME *"
    runner = SshRunner(cluster.env["SLURM_SSH_HOST"], config_file=cluster.env["SLURM_SSH_CONFIG"])
    try:
        done = await runner.run(["printf", "%s", hostile], timeout=30)
    finally:
        await runner.aclose()
    assert done.stdout == hostile
    assert not canary.exists()


# --- states, errors, exit-code fallbacks --------------------------------------------------------


@pytest.mark.anyio
async def test_a_job_that_cannot_start_pends_with_slurms_reason(cluster: Cluster, tmp_path: Path) -> None:
    provider = cluster.provider("local", tmp_path)
    resource = await provider.launch(LaunchSpec(command=["true"], provider="slurm", nodes=3))
    try:
        for _ in range(50):
            resource = await provider.get(resource.id)
            if resource.detail != "pending":
                break
            await anyio.sleep(0.1)
        assert resource.state is S.PENDING
        # 3 nodes asked of a 2-node partition; 22.05 names it one way or the other.
        assert resource.detail in ("pending: PartitionNodeLimit", "pending: PartitionConfig")
    finally:
        ended = await provider.terminate(resource.id)
        await provider.aclose()
    assert ended.state is S.TERMINATED and ended.raw_state == "CANCELLED"


@pytest.mark.anyio
async def test_gpus_the_cluster_lacks_are_refused_before_anything_runs(cluster: Cluster, tmp_path: Path) -> None:
    provider = cluster.provider("local", tmp_path)
    with pytest.raises(ValidationError) as info:
        await provider.launch(LaunchSpec(command=["true"], provider="slurm", gpu="A100"))
    assert info.value.field == "gpu" and "h100" in str(info.value)
    with pytest.raises(CapacityError, match="node configuration is not available"):
        await provider.launch(LaunchSpec(command=["true"], provider="slurm", gpu="H100", gpu_count=4))
    assert await provider.list(tags={"runctl-managed-by": "runctl", "runctl-name": "none"}) == []
    await provider.aclose()


@pytest.mark.anyio
async def test_a_job_slurm_forgot_is_read_from_runctls_markers(cluster: Cluster, tmp_path: Path) -> None:
    """No accounting here: after MinJobAge only the output file knows how a job ended."""
    provider = cluster.provider("local", tmp_path)
    out = Path(cluster.job_dir)
    ok, killed = "9999991", "9999992"
    (out / f"runctl-{ok}.out").write_text("[runctl:gone1] start\ntraining\n[runctl:gone1] exit 0\n")
    (out / f"runctl-{killed}.out").write_text("[runctl:gone2] start\ntraining\n")
    try:
        done = await provider.get(ok)
        assert (done.state, done.exit_code, done.launch_id) == (S.SUCCEEDED, 0, "gone1")
        assert "keeps no accounting" in (done.detail or "")
        assert [line async for line in provider.logs(ok)] == ["training"]
        cut = await provider.get(killed)
        assert (cut.state, cut.exit_code) == (S.TERMINATED, None)
        with pytest.raises(NotFoundError):
            await provider.get("9999993")
        assert provider._backend()._accounting is False  # type: ignore[attr-defined]
    finally:
        for job_id in (ok, killed):
            (out / f"runctl-{job_id}.out").unlink()
        await provider.aclose()


@pytest.mark.anyio
async def test_suspend_and_resume_where_permitted(cluster: Cluster, tmp_path: Path) -> None:
    provider = cluster.provider("local", tmp_path)
    resource = await provider.launch(LaunchSpec(command=["sleep", "60"], provider="slurm"))
    try:
        for _ in range(100):
            if (resource := await provider.get(resource.id)).state is S.RUNNING:
                break
            await anyio.sleep(0.1)
        stopped = await provider.stop(resource.id)
        assert (stopped.state, stopped.raw_state) == (S.STOPPED, "SUSPENDED")
        assert (await provider.stop(resource.id)).state is S.STOPPED  # idempotent
        assert (await provider.start(resource.id)).state is S.RUNNING
    finally:
        await provider.terminate(resource.id)
        await provider.aclose()


def test_offers_are_the_clusters_partitions_and_gpus(cluster: Cluster, slurm_env: str) -> None:
    with runctl.Client() as rc:
        offers = rc.offers(OfferQuery(gpu="H100", providers=["slurm"]))
        none = rc.offers(OfferQuery(gpu="A100", providers=["slurm"]))
    found = [o for o in offers if o.provider == "slurm"]
    assert [(o.instance_type, o.gpu_count, o.vcpus, o.region) for o in found] == [
        ("gpu/h100", 2, 1, "gpu")
    ]
    assert found[0].gpu is not None and found[0].gpu.model == "H100"
    assert found[0].price.per_hour.amount == 0 and found[0].available is not None
    assert re.match(r"2 node\(s\), \d free now", found[0].note or "")
    assert [o for o in none if o.provider == "slurm"] == []


# --- last: the TIMEOUT --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_ttl_ends_the_job_as_timeout(cluster: Cluster, timeout_job: str, tmp_path: Path) -> None:
    provider = cluster.provider("local", tmp_path)
    for _ in range(180):  # slurmctld checks time limits every 30 s
        if (resource := await provider.get(timeout_job)).state is not S.RUNNING:
            break
        await anyio.sleep(0.5)
    await provider.aclose()
    assert (resource.state, resource.raw_state) == (S.TERMINATED, "TIMEOUT")
    assert resource.detail == "ended at its time limit (the TTL)"
    assert resource.exit_code == 143  # SIGTERM at the limit
    assert resource.name == "ttl" and resource.tags["runctl-ttl"] == "30"
