"""The Slurm provider's parts that need no cluster: states, parsing, the batch script, requests.

Outputs parsed here are real: the ``scontrol`` and ``sinfo`` lines were printed by Debian's
Slurm 22.05.8 on the test cluster, the JSON shapes are those of the vendored specs.
"""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta

import pytest

from runctl.models import ResourceState
from runctl.providers.slurm import SLURM_STATES, slurm_state
from runctl.providers.slurm._cli import (
    job_from_sacct,
    job_from_scontrol,
    nodes_from_sinfo,
    parse_key_values,
)
from runctl.providers.slurm._jobs import (
    comment_for,
    expand_hostlist,
    parse_gres,
    tags_from_comment,
)
from runctl.providers.slurm._rest import job_from_rest, node_from_rest
from runctl.providers.slurm._script import BatchJob, batch_script, memory_mb, time_minutes

S = ResourceState

SCONTROL_TIMEOUT = (
    "JobId=2 JobName=runctl-xyz UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 "
    "Nice=0 Account=(null) QOS=(null) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) "
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:00:21 TimeLimit=00:01:00 "
    "TimeMin=N/A SubmitTime=1796169208 EligibleTime=1796169208 AccrueTime=1796169208 "
    "StartTime=1796169210 EndTime=1796169231 Deadline=N/A SuspendTime=None SecsPreSuspend=0 "
    "LastSchedEval=1796169210 Scheduler=Main Partition=gpu AllocNode:Sid=localhost:9469 "
    "ReqNodeList=(null) ExcNodeList=(null) NodeList=n[1-2] BatchHost=n1 NumNodes=2 NumCPUs=2 "
    "NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=* "
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 "
    "Features=(null) DelayBoot=00:00:00 OverSubscribe=YES Contiguous=0 Licenses=(null) "
    "Network=(null) Command=(null) WorkDir=/tmp/runctl-slurm/jobs "
    "Comment=runctl:a=b%20c&d=e  StdErr=/tmp/runctl-slurm/jobs/t-2.out StdIn=/dev/null "
    "StdOut=/tmp/runctl-slurm/jobs/t-2.out Power= TresPerNode=gres:gpu:h100:1"
)
SINFO = "n1|gpu*|gpu:h100:2|gpu:h100:0(IDX:N/A)|1|2000|idle\nn2|gpu*|gpu:h100:2|gpu:h100:1(IDX:0)|1|2000|mixed\n"


# --- states ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PENDING", S.PENDING),
        ("CONFIGURING", S.PROVISIONING),
        ("RUNNING", S.RUNNING),
        ("COMPLETING", S.RUNNING),
        ("COMPLETED", S.SUCCEEDED),
        ("FAILED", S.FAILED),
        ("CANCELLED", S.TERMINATED),
        ("CANCELLED by 1000", S.TERMINATED),  # sacct's spelling
        ("TIMEOUT", S.TERMINATED),
        ("PREEMPTED", S.PREEMPTED),
        ("NODE_FAIL", S.FAILED),
        ("OUT_OF_MEMORY", S.FAILED),
        ("BOOT_FAIL", S.FAILED),
        ("DEADLINE", S.TERMINATED),
        ("REQUEUED", S.PENDING),
        ("SUSPENDED", S.STOPPED),
        ("RESIZING", S.RUNNING),
        ("SOMETHING_NEW", S.UNKNOWN),
        (None, S.UNKNOWN),
        # slurmrestd >= v0.0.40: the base state and its flags
        (["COMPLETED"], S.SUCCEEDED),
        (["CANCELLED", "COMPLETING"], S.TERMINATED),
        (["RUNNING", "CONFIGURING"], S.PROVISIONING),
        (["FAILED", "REQUEUED"], S.PENDING),
        (["PENDING", "REQUEUE_HOLD"], S.PENDING),
        (["RUNNING", "STOPPED"], S.STOPPED),
        ([], S.UNKNOWN),
    ],
)
def test_every_slurm_state_has_an_explicit_meaning(raw, state):
    assert slurm_state(raw) is state


@pytest.mark.parametrize("version", ["41", "42", "43", "44", "45"])
def test_the_table_maps_every_state_each_api_can_report(version):
    import json

    from tests.support.openapi import SPECS

    spec = json.loads((SPECS / f"slurmrestd-openapi-v0.0.{version}.json").read_text())
    schemas = spec["components"]["schemas"]
    schema = schemas[f"v0.0.{version}_job_info"]["properties"]["job_state"]
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    documented = set(schema["items"]["enum"])
    assert documented <= set(SLURM_STATES), documented - set(SLURM_STATES)


# --- parsing ------------------------------------------------------------------------------------


def test_scontrol_lines_are_read_with_spaces_and_equals_signs_in_values():
    kv = parse_key_values(SCONTROL_TIMEOUT)
    assert kv["Comment"] == "runctl:a=b%20c&d=e"
    assert kv["AllocNode:Sid"] == "localhost:9469"
    job = job_from_scontrol(SCONTROL_TIMEOUT)
    assert job.job_id == "2"
    assert job.state == "TIMEOUT"
    assert job.reason == "TimeLimit"
    assert job.exit_code == 143  # killed by SIGTERM at the limit: 128 + 15
    assert job.time_limit_minutes == 1
    assert job.nodes == "n[1-2]" and job.node_count == 2
    assert job.started_at is not None and job.started_at.timestamp() == 1796169210
    assert job.gres == "gres:gpu:h100:1"
    assert job.tags is None  # not runctl's comment: no launch id


def test_sacct_lines_are_read():
    job = job_from_sacct("7|runctl-x|CANCELLED by 0|0:15|1796169208|1796169210|1796169231|2|n[1-2]|gpu")
    assert job is not None
    assert (job.job_id, job.exit_code, job.node_count) == ("7", 143, 2)
    assert slurm_state(job.state) is S.TERMINATED


def test_sinfo_nodes_say_their_gpus_and_whether_they_are_free():
    n1, n2 = nodes_from_sinfo(SINFO)
    assert n1.partitions == ("gpu",) and n1.gpus == (("h100", 2),) and n1.free
    assert n2.gpus_used == 1 and n2.free  # mixed, one of two GPUs left
    busy = nodes_from_sinfo("n3|gpu|gpu:h100:2|gpu:h100:2(IDX:0-1)|1|2000|mixed\n")[0]
    assert not busy.free
    assert not nodes_from_sinfo("n4|gpu|gpu:2|gpu:0|1|2000|drained\n")[0].free


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu:h100:2", [("h100", 2)]),
        ("gpu:2", [(None, 2)]),
        ("gres:gpu:h100:1", [("h100", 1)]),
        ("gres/gpu:h100:1", [("h100", 1)]),
        ("gpu:a100:4(S:0-1),gpu:v100:1", [("a100", 4), ("v100", 1)]),
        ("gres/gpu:1;gres/shard:2", [(None, 1)]),
        ("", []),
        (None, []),
    ],
)
def test_gpu_gres_in_every_spelling(text, expected):
    assert parse_gres(text) == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("n[1-2]", ["n1", "n2"]),
        ("node[01-03,07],gpu5", ["node01", "node02", "node03", "node07", "gpu5"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("vm", ["vm"]),
        ("(null)", []),
        ("", []),
    ],
)
def test_hostlists_expand_in_rank_order(text, names):
    assert expand_hostlist(text) == names


def test_tags_survive_the_comment():
    tags = {"runctl-launch-id": "abc", "team": "vision & speech", "why": "a=b c"}
    comment = comment_for(tags)
    assert " " not in comment and "'" not in comment
    assert tags_from_comment(comment) == tags
    assert tags_from_comment("someone else's comment") is None


def test_rest_jobs_of_both_generations_read_the_same():
    old = job_from_rest({
        "job_id": 4, "name": "x", "job_state": "FAILED", "exit_code": 768, "nodes": "n1",
        "node_count": 1, "start_time": 1796169210, "end_time": 1796169211, "time_limit": 1,
        "standard_output": "/jobs/runctl-%j.out", "state_reason": "NonZeroExitCode",
    })  # fmt: skip
    new = job_from_rest({
        "job_id": 4, "name": "x", "job_state": ["FAILED"],
        "exit_code": {"status": ["ERROR"], "return_code": {"set": True, "infinite": False, "number": 3},
                      "signal": {"id": {"set": False, "infinite": False, "number": 0}, "name": ""}},
        "nodes": "n1", "node_count": {"set": True, "infinite": False, "number": 1},
        "start_time": {"set": True, "infinite": False, "number": 1796169210},
        "end_time": {"set": True, "infinite": False, "number": 1796169211},
        "time_limit": {"set": True, "infinite": False, "number": 1},
        "standard_output": "/jobs/runctl-%j.out", "state_reason": "NonZeroExitCode",
    })  # fmt: skip
    assert old.exit_code == new.exit_code == 3
    assert slurm_state(old.state) is slurm_state(new.state) is S.FAILED
    assert old.stdout == new.stdout == "/jobs/runctl-4.out"
    assert old.started_at == new.started_at
    assert old.time_limit_minutes == new.time_limit_minutes == 1
    killed = job_from_rest({"job_id": 5, "job_state": "TIMEOUT", "exit_code": 15})
    assert killed.exit_code == 143
    unlimited = job_from_rest({"job_id": 6, "time_limit": {"set": False, "infinite": True, "number": 0}})
    assert unlimited.time_limit_minutes is None


def test_rest_nodes_of_both_generations_read_the_same():
    old = node_from_rest({"name": "n1", "partitions": ["gpu"], "gres": "gpu:h100:2",
                          "gres_used": "gpu:h100:0(IDX:N/A)", "cpus": 1, "real_memory": 2000,
                          "state": "idle"})  # fmt: skip
    new = node_from_rest({"name": "n1", "partitions": ["gpu"], "gres": "gpu:h100:2",
                          "gres_used": "gpu:h100:0(IDX:N/A)", "cpus": 1, "real_memory": 2000,
                          "state": ["IDLE"]})  # fmt: skip
    assert old == new and old.free


# --- the batch job ------------------------------------------------------------------------------


def test_the_ttl_becomes_whole_minutes_and_memory_megabytes():
    assert time_minutes(timedelta(seconds=1)) == 1
    assert time_minutes(timedelta(seconds=61)) == 2
    assert time_minutes(timedelta(hours=2)) == 120
    assert memory_mb("m", "16G") == 16384 and memory_mb("m", "500") == 500
    with pytest.raises(ValueError, match="m:"):
        memory_mb("m", "lots")


def test_the_script_runs_the_command_exactly_and_reports_its_exit_code(tmp_path):
    """The single-node script, run by bash here: quoting holds against hostile values."""
    canary = tmp_path / "pwned"
    env = {"WEIRD": f"it's $(touch {canary}) `touch {canary}` \"q\" \\n;"}
    command = ["sh", "-c", 'printf "%s|" "$WEIRD" "$1" "$2"; exit 7', "arg0", "a b", "$HOME"]
    script = batch_script(command, launch_id="L1", env=env)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "42"}, timeout=30)  # fmt: skip
    assert done.returncode == 7
    lines = done.stdout.splitlines()
    assert lines[0] == "[runctl:L1] start"
    assert lines[1] == f"{env['WEIRD']}|a b|$HOME|[runctl:L1] exit 7"
    assert not canary.exists()


def test_a_one_string_command_runs_under_sh():
    script = batch_script(["echo one && echo two"], shell=True, launch_id="L2", env={})
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines()[1:3] == ["one", "two"]


def test_a_multi_node_script_starts_one_task_per_node_with_the_rendezvous():
    script = batch_script(["python", "train.py"], launch_id="L3", env={}, nodes=4, port=1234)
    assert "srun --nodes=4 --ntasks=4 --ntasks-per-node=1" in script
    assert "scontrol show hostnames" in script and "SLURM_NODEID" in script
    assert "MASTER_PORT=1234" in script
    assert "python train.py" in script


def _job(**kw) -> BatchJob:
    values = dict(
        name="runctl-L1", comment="runctl:runctl-launch-id=L1", script="#!/bin/bash\ntrue\n",
        nodes=2, gpus_per_node=2, gpu_type="h100", cpus_per_task=4, memory="16G",
        memory_mb=16384, time_minutes=5, partition="gpu", account="proj", qos="normal",
        output="/jobs/runctl-%j.out", workdir="/work", environment={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    values.update(kw)
    return BatchJob(**values)


def test_sbatch_gets_every_directive_as_its_own_argument():
    argv = _job().sbatch_argv()
    assert argv[:2] == ["sbatch", "--parsable"]
    for flag in ("--job-name=runctl-L1", "--nodes=2", "--ntasks-per-node=1", "--gres=gpu:h100:2",
                 "--cpus-per-task=4", "--mem=16G", "--time=5", "--partition=gpu",
                 "--account=proj", "--qos=normal", "--output=/jobs/runctl-%j.out",
                 "--chdir=/work"):  # fmt: skip
        assert flag in argv
    assert "--gpus-per-node=h100:2" in _job(gpu_request="gpus-per-node").sbatch_argv()
    assert not any(a.startswith("--gres") for a in _job(gpus_per_node=0).sbatch_argv())


REST_SPECS = {
    "v0.0.38": "slurmrestd-openapi-v0.0.38-slurm-22.05.json",
    "v0.0.41": "slurmrestd-openapi-v0.0.41.json",
    "v0.0.42": "slurmrestd-openapi-v0.0.42.json",
    "v0.0.43": "slurmrestd-openapi-v0.0.43.json",
    "v0.0.44": "slurmrestd-openapi-v0.0.44.json",
    "v0.0.45": "slurmrestd-openapi-v0.0.45.json",
}


@pytest.mark.parametrize("version", sorted(REST_SPECS))
@pytest.mark.parametrize("gpu_request", ["gres", "gpus-per-node"])
def test_the_submit_body_is_what_each_spec_documents(version, gpu_request):
    from tests.support.openapi import SPECS, validate_request

    body = _job(gpu_request=gpu_request).rest_body(version)
    validate_request(SPECS / REST_SPECS[version], method="POST",
                     url=f"http://127.0.0.1/slurm/{version}/job/submit", body=body)  # fmt: skip
    job = body["job"]
    assert None not in job.values()  # 22.05 answers 500 to a null gres
    if version == "v0.0.38":
        assert job["environment"] == {"PATH": "/usr/bin:/bin"} and job["nodes"] == [2, 2]
    else:
        assert job["environment"] == ["PATH=/usr/bin:/bin"] and job["nodes"] == "2"
        assert job["tres_per_node"] == "gres/gpu:h100:2"
        assert job["time_limit"] == {"set": True, "infinite": False, "number": 5}


@pytest.mark.parametrize(
    ("stderr", "kind", "field"),
    [
        ("sbatch: error: Batch job submission failed: Requested node configuration is not available",
         "CapacityError", None),
        ("sbatch: error: Batch job submission failed: Invalid partition name specified",
         "ValidationError", "options.partition"),
        ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
         "ValidationError", "options.account"),
        ("sbatch: error: QOSMaxSubmitJobPerUserLimit", "QuotaExceededError", None),
        ("slurm_load_jobs error: Invalid job id specified", "NotFoundError", None),
        ("scontrol: error: Access/permission denied for job 5", "AuthenticationError", None),
        ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
         "ProviderConnectionError", None),
        ("sbatch: error: something new", "ProviderError", None),
    ],
)  # fmt: skip
def test_slurm_messages_map_to_the_error_tree(stderr, kind, field):
    from runctl.providers.slurm._cli import Completed, command_error

    error = command_error(["sbatch"], Completed(1, "", stderr))
    assert type(error).__name__ == kind
    if field is not None:
        assert error.field == field
    assert "sbatch" in str(error)


class ScriptedRunner:
    """A Runner that answers each command from a table: (first words) -> (rc, stdout, stderr)."""

    where = "here"

    def __init__(self, answers):
        self.answers = answers
        self.calls: list[list[str]] = []

    async def run(self, argv, *, stdin=None, timeout):
        from runctl.providers.slurm._cli import Completed

        argv = [a for a in argv if a not in ("env", "SLURM_TIME_FORMAT=%s")]
        self.calls.append(argv)
        if argv[0] == "sh":  # runctl's own file helpers (mkdir, tail): run them for real
            from runctl.providers.slurm._cli import LocalRunner

            return await LocalRunner().run(argv, stdin=stdin, timeout=timeout)
        for prefix, (rc, out, err) in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                return Completed(rc, out, err)
        raise AssertionError(f"unexpected command {argv}")

    async def aclose(self):
        return None


@pytest.mark.anyio
async def test_suspend_without_operator_rights_is_unsupported(tmp_path):
    from runctl.config import ProviderConfig
    from runctl.errors import UnsupportedOperationError
    from runctl.providers.slurm import SlurmProvider

    running = SCONTROL_TIMEOUT.replace("JobState=TIMEOUT", "JobState=RUNNING")
    runner = ScriptedRunner({
        ("scontrol", "-o", "show", "job"): (0, running + "\n", ""),
        ("scontrol", "suspend"): (1, "", "Access/permission denied for job 2\n"),
    })  # fmt: skip
    config = ProviderConfig(name="slurm", home=tmp_path, settings={"transport": "local"}, environ={})
    provider = SlurmProvider(config, runner=runner)
    with pytest.raises(UnsupportedOperationError, match="operator"):
        await provider.stop("2")
    assert ["scontrol", "suspend", "2"] in runner.calls


@pytest.mark.anyio
async def test_an_unreachable_login_node_is_a_connection_error_that_did_nothing():
    import shutil

    from runctl.errors import ProviderConnectionError
    from runctl.providers.slurm._cli import SshRunner

    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    runner = SshRunner("127.0.0.1", port=1, options=["ConnectTimeout=5", "StrictHostKeyChecking=no"])
    with pytest.raises(ProviderConnectionError) as info:
        await runner.run(["sbatch"], stdin=b"#!/bin/bash\n", timeout=30)
    assert info.value.maybe_applied is False  # refused: the command never ran
    await runner.aclose()


def _scripted_provider(tmp_path, answers, **settings):
    from runctl.config import ProviderConfig
    from runctl.providers.slurm import SlurmProvider

    runner = ScriptedRunner(answers)
    config = ProviderConfig(name="slurm", home=tmp_path,
                            settings={"transport": "local", "output_dir": str(tmp_path), **settings},
                            environ={})  # fmt: skip
    return SlurmProvider(config, runner=runner), runner


COMMENT = "Comment=runctl:runctl-launch-id=L9&runctl-managed-by=runctl  "
FAILED_LINE = (
    SCONTROL_TIMEOUT.replace("JobState=TIMEOUT", "JobState=FAILED")
    .replace("ExitCode=0:15", "ExitCode=1:0").replace("Comment=runctl:a=b%20c&d=e  ", COMMENT)
)  # fmt: skip


@pytest.mark.anyio
async def test_the_exit_code_comes_from_sacct_first_when_there_is_accounting(tmp_path):
    provider, runner = _scripted_provider(tmp_path, {
        ("scontrol", "-o", "show", "job"): (0, FAILED_LINE + "\n", ""),
        ("sacct",): (0, "2|runctl-L9|FAILED|3:0|1796169208|1796169210|1796169231|1|n1|gpu\n", ""),
    })  # fmt: skip
    assert (await provider.get("2")).exit_code == 3
    assert any(call[0] == "sacct" for call in runner.calls)


@pytest.mark.anyio
async def test_without_accounting_the_job_record_then_the_marker_say_it(tmp_path):
    no_code = FAILED_LINE.replace("ExitCode=1:0", "ExitCode=")
    provider, runner = _scripted_provider(tmp_path, {
        ("scontrol", "-o", "show", "job"): (0, no_code + "\n", ""),
        ("sacct",): (1, "", "sacct: error: Slurm accounting storage is disabled\n"),
    })  # fmt: skip
    out = tmp_path / "out.log"
    out.write_text("[runctl:L9] start\nboom\n[runctl:L9] exit 5\n")
    runner.answers[("scontrol", "-o", "show", "job")] = (
        0, no_code.replace("StdOut=/tmp/runctl-slurm/jobs/t-2.out", f"StdOut={out}") + "\n", "",
    )  # fmt: skip
    assert (await provider.get("2")).exit_code == 5  # no accounting, no ExitCode: the marker
    assert (await provider.get("2")).exit_code == 5
    assert sum(call[0] == "sacct" for call in runner.calls) == 1  # learnt once: no accounting
    runner.answers[("scontrol", "-o", "show", "job")] = (0, FAILED_LINE + "\n", "")
    assert (await provider.get("2")).exit_code == 1  # the job record's ExitCode


@pytest.mark.anyio
async def test_a_forgotten_job_is_read_from_accounting(tmp_path):
    provider, _ = _scripted_provider(tmp_path, {
        ("scontrol", "-o", "show", "job"): (1, "", "slurm_load_jobs error: Invalid job id specified\n"),
        ("sacct",): (0, "7|runctl-L9|COMPLETED|0:0|1796169208|1796169210|1796169231|2|n[1-2]|gpu\n", ""),
    })  # fmt: skip
    done = await provider.get("7")
    assert (done.state, done.exit_code, done.addresses) == (ResourceState.SUCCEEDED, 0, ("n1", "n2"))


@pytest.mark.anyio
async def test_a_configured_gpu_hour_rate_prices_offers_and_every_node_of_a_job(tmp_path):
    from decimal import Decimal

    from runctl.models import OfferQuery

    two_nodes = FAILED_LINE.replace("TresPerNode=gres:gpu:h100:1", "TresPerNode=gres:gpu:h100:2")
    provider, _ = _scripted_provider(tmp_path, {
        ("sinfo",): (0, SINFO, ""),
        ("scontrol", "-o", "show", "job"): (0, two_nodes + "\n", ""),
        ("sacct",): (1, "", "Slurm accounting storage is disabled"),
    }, gpu_hour_rate="1.50", currency="EUR")  # fmt: skip
    (offer,) = await provider.offers(OfferQuery(gpu="H100", currency="EUR"))
    assert offer.price.per_hour.amount == Decimal("3.00") and offer.price.currency == "EUR"
    assert offer.per_gpu_hour is not None and offer.per_gpu_hour.amount == Decimal("1.50")
    assert (offer.available, offer.note) == (True, "2 node(s), 2 free now; price is the configured gpu_hour_rate")
    job = await provider.get("2")
    assert (job.nodes, job.gpu_count) == (2, 2)  # GPUs per node
    assert job.price is not None and job.price.per_hour.amount == Decimal("6.00")  # 2 nodes x 2 GPUs
    assert await provider.offers(OfferQuery(gpu="H100", spot=True)) == []


@pytest.mark.anyio
async def test_following_a_job_that_ends_without_the_marker_stops_when_slurm_says_so(tmp_path):
    from runctl.config import ProviderConfig
    from runctl.providers.slurm import SlurmProvider

    out = tmp_path / "out.log"
    out.write_text("[runctl:L9] start\nepoch 1\n")
    running = FAILED_LINE.replace("JobState=FAILED", "JobState=RUNNING").replace(
        "StdOut=/tmp/runctl-slurm/jobs/t-2.out", f"StdOut={out}")
    runner = ScriptedRunner({("scontrol", "-o", "show", "job"): (0, running + "\n", ""),
                             ("sacct",): (1, "", "Slurm accounting storage is disabled")})
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 5:  # cancelled meanwhile: no exit marker will come
            runner.answers[("scontrol", "-o", "show", "job")] = (
                0, running.replace("JobState=RUNNING", "JobState=CANCELLED") + "\n", "")

    settings = {"transport": "local", "output_dir": str(tmp_path), "log_poll_seconds": "0.5",
                "state_poll_seconds": "2"}
    provider = SlurmProvider(ProviderConfig(name="slurm", home=tmp_path, settings=settings,
                                            environ={}), runner=runner, sleep=sleep)
    lines = [line async for line in provider.logs("2", follow=True)]
    assert lines == ["epoch 1"]
    asked = [c for c in runner.calls if c[:2] == ["scontrol", "-o"]]
    # the job once to find its file, then Slurm asked only after 2 s of quiet (4 polls):
    # still running at the first ask, cancelled at the second
    assert len(asked) == 1 + 2 and sleeps == [0.5] * 7
