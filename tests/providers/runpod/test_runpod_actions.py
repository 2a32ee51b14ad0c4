"""Stop and start follow RunPod's documented actions, not only runctl's states (issue 9, item 7)."""

from __future__ import annotations

import pytest

import runctl
from runctl.errors import InvalidTransitionError
from runctl.models import LaunchSpec, Resource, ResourceState
from runctl.providers.runpod import POD_ACTIONS, RunPodProvider

from .conftest import FakeRunPod

SPEC = LaunchSpec(command=["python", "train.py"], image="runpod/pytorch:latest", provider="runpod",
                  instance_type="SECURE:NVIDIA GeForce RTX 4090", gpu_count=1, launch_id="act1")


def test_the_action_table_is_the_documented_one():
    assert POD_ACTIONS["ERROR"] == POD_ACTIONS["EXITED"] == frozenset({"start"})
    assert POD_ACTIONS["RUNNING"] == frozenset({"stop"})
    pod = Resource(id="p", provider="runpod", state=ResourceState.FAILED, raw_state="ERROR")
    assert RunPodProvider.allowed_actions(None, pod) == {"start"}  # type: ignore[arg-type]
    odd = Resource(id="p", provider="runpod", state=ResourceState.UNKNOWN, raw_state="WEIRD")
    assert RunPodProvider.allowed_actions(None, odd) is None  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_pod_in_error_can_be_started_through_the_client(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    async with runctl.AsyncClient(providers={"runpod": fake_provider}) as rc:
        res = await rc.launch(SPEC)
        pod = fake.pods[res.id]
        pod["status"], pod["actions"] = "ERROR", ["start", "terminate"]
        failed = await rc.get(res)
        assert failed.state is ResourceState.FAILED
        started = await rc.start(res)
        assert started.state is ResourceState.RUNNING and fake.pods[res.id]["status"] == "RUNNING"
        # ... and what RunPod does not allow is refused before any request is sent:
        # a STARTING pod may only be stopped.
        pod["status"], pod["actions"] = "STARTING", ["stop", "terminate"]
        actions = sum(1 for r in fake.server.requests if r.path.endswith("/action"))
        with pytest.raises(InvalidTransitionError):
            await rc.start(res)
        assert sum(1 for r in fake.server.requests if r.path.endswith("/action")) == actions
        await rc.terminate(res, timeout=30)
