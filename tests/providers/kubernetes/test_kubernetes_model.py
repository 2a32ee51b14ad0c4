"""The Kubernetes provider's pure parts: Job names, label rules, node GPUs, the state table."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl.models import ResourceState
from runctl.providers.kubernetes import (
    KUBERNETES_STATES,
    KubeJob,
    KubePod,
    is_label_key,
    is_label_value,
    job_name,
    job_state,
    node_gpu,
)

from .cluster import job_condition, running, terminated, unschedulable, waiting

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
launch_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@settings(max_examples=50)
@given(launch_ids)
def test_a_job_name_is_a_short_dns_label_derived_from_the_launch_id_alone(launch_id: str) -> None:
    name = job_name(launch_id)
    assert DNS_LABEL.fullmatch(name) and len(name) <= 52
    # Pod host names of an Indexed Job are <job>-<index>: still DNS labels.
    assert DNS_LABEL.fullmatch(f"{name}-9999")
    assert job_name(launch_id) == name


@settings(max_examples=30)
@given(st.sets(launch_ids, min_size=2, max_size=30))
def test_different_launch_ids_get_different_jobs(ids: set[str]) -> None:
    assert len({job_name(i) for i in ids}) == len(ids)


def test_case_and_underscores_are_not_lost() -> None:
    names = {job_name(i) for i in ("abc", "ABC", "a_bc", "a-bc", "abc-")}
    assert len(names) == 5
    assert job_name("abc") == "runctl-abc"


@pytest.mark.parametrize(
    ("key", "ok"),
    [("team", True), ("app.kubernetes.io/managed-by", True), ("runctl/launch-id", True),
     ("a/b/c", False), ("-x", False), ("x" * 64, False), ("Bad_Prefix/x", False), ("", False)],
)
def test_label_keys_follow_kubernetes_rules(key: str, ok: bool) -> None:
    assert is_label_key(key) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("v1.2_x-y", True), ("has space", False), ("-x", False), ("x" * 64, False)],
)
def test_label_values_follow_kubernetes_rules(value: str, ok: bool) -> None:
    assert is_label_value(value) is ok


def test_the_first_recognised_label_names_the_gpu() -> None:
    found = node_gpu({
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "node.kubernetes.io/instance-type": "p5.48xlarge",  # not consulted: a label before it won
    })
    assert found is not None
    gpu, key, value = found
    assert (gpu.name, key, value) == ("A100 80GB SXM", "nvidia.com/gpu.product",
                                      "NVIDIA-A100-SXM4-80GB")
    unknown = node_gpu({"nvidia.com/gpu.product": "NVIDIA-Future-9000"})
    assert unknown is not None and not unknown[0].known and unknown[2] == "NVIDIA-Future-9000"
    assert node_gpu({"node.kubernetes.io/instance-type": "m5.large"}) is None
    assert node_gpu({"kubernetes.io/os": "linux"}) is None


# --- the state table ----------------------------------------------------------------------------

JOB = {"metadata": {"name": "runctl-x", "namespace": "team"},
       "spec": {"completions": 2, "parallelism": 2, "completionMode": "Indexed",
                "template": {"spec": {"containers": [{"name": "main", "image": "i"}]}}}}


def pod(rank: int, status: dict, **meta: object) -> KubePod:
    body = {"metadata": {"name": f"runctl-x-{rank}",
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)},
                         **meta},
            "spec": {}, "status": status}
    return KubePod.from_wire(body)


POD_STATES = [
    None, {"phase": "Pending"}, unschedulable("0/4 nodes are available"),
    waiting("ContainerCreating"), waiting("ErrImagePull"), waiting("ImagePullBackOff"),
    running(), terminated(0), terminated(1),
    {"phase": "Failed", "reason": "Evicted", "message": "low on memory"},
]
JOB_STATUSES = [
    {}, job_condition("Complete"), job_condition("Failed", "BackoffLimitExceeded"),
    job_condition("Failed", "DeadlineExceeded"), job_condition("Suspended"),
    job_condition("FailureTarget", "PodFailurePolicy"), job_condition("FailureTarget"),
    job_condition("SuccessCriteriaMet"),
]


@pytest.mark.parametrize("pulled_for_long", [False, True])
def test_every_state_decided_is_the_one_the_table_gives_its_raw_state(
    pulled_for_long: bool,
) -> None:
    """Over every combination of Job condition and two pods' states."""
    seen = set()
    for status, first, second in itertools.product(JOB_STATUSES, POD_STATES, POD_STATES):
        job = KubeJob.from_wire({**JOB, "status": status})
        pods = [pod(r, s) for r, s in ((0, first), (1, second)) if s is not None]
        decided = job_state(job, pods, pull_failed=lambda p: pulled_for_long)
        assert decided.raw in KUBERNETES_STATES, decided
        assert KUBERNETES_STATES[decided.raw] is decided.state, decided
        seen.add(decided.raw)
    deleting = KubeJob.from_wire({**JOB, "metadata": {**JOB["metadata"],
                                                      "deletionTimestamp": "2026-12-01T10:00:00Z"}})
    assert job_state(deleting, [], pull_failed=lambda p: False).raw == "Terminating"
    seen.add("Terminating")
    # Every raw state of the table can happen (the table has no dead rows).
    expected = set(KUBERNETES_STATES) - {"InvalidImageName"}
    if not pulled_for_long:
        expected -= {"ImagePullFailed"}
    else:
        expected -= {"ErrImagePull", "ImagePullBackOff"}
    assert expected <= seen, expected - seen


def test_a_failed_rank_gives_its_exit_code_and_rank() -> None:
    job = KubeJob.from_wire({**JOB, "status": job_condition("Failed", "BackoffLimitExceeded")})
    decided = job_state(job, [pod(0, terminated(0)), pod(1, terminated(42))],
                        pull_failed=lambda p: False)
    assert decided.state is ResourceState.FAILED and decided.exit_code == 42
    assert decided.detail == "command exited with 42 on node 1"


def test_the_provider_modules_import_no_kubernetes_client() -> None:
    import json
    import subprocess
    import sys

    probe = (
        "import sys, json; import runctl.providers.kubernetes, runctl.providers.coreweave; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kubernetes', 'urllib3', 'pydantic', 'yaml'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == []
