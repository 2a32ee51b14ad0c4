"""Vast reports what happened (issue 9, items 7, 10 and 11), against a Vast on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import runctl
from runctl.config import ProviderConfig
from runctl.errors import ServerError
from runctl.models import LaunchSpec, ResourceState
from runctl.providers.vast import VastProvider, state_of
from tests.support.fake_http import Fault, Reply, Request
from tests.support.fake_sleep import Sleeps

from .fake_vast import FakeVast

KEY = "vast-truth-key-0123456789abcdef"
SPEC = LaunchSpec(command=["python", "train.py"], image="pytorch/pytorch:latest",
                  provider="vast",
                  gpu="RTX 4090", gpu_count=4, launch_id="truth1")


@pytest.fixture
def vast() -> Iterator[FakeVast]:
    with FakeVast() as fake:
        yield fake


def make(fake: FakeVast) -> VastProvider:
    config = ProviderConfig(name="vast", home=Path("/nonexistent"),
                            environ={"VAST_API_KEY": KEY, "RUNCTL_VAST_BASE_URL": fake.url})
    return VastProvider(config, sleep=Sleeps())


def stops_like_vast(fake: FakeVast) -> None:
    """PUT state=stopped as Vast really answers it: the container exits, intended stopped."""

    def manage(req: Request) -> Reply:
        inst = fake.instances[int(req.path_params["id"])]
        wanted = req.json()["state"]
        inst["intended_status"] = wanted
        inst["actual_status"] = "exited" if wanted == "stopped" else wanted
        return Reply.json({"success": True})

    fake.override("PUT", "/api/v0/instances/{id}", manage)


def test_a_stopped_instance_is_stopped_not_failed():
    assert state_of("exited", "stopped") == (ResourceState.STOPPED, None)
    # A container that exited while Vast meant it to run did fail.
    assert state_of("exited", "running")[0] is ResourceState.FAILED


@pytest.mark.anyio
async def test_stop_wait_for_stopped_and_start_again_through_the_client(vast: FakeVast) -> None:
    stops_like_vast(vast)
    async with runctl.AsyncClient(providers={"vast": make(vast)}) as rc:
        res = await rc.launch(SPEC)
        await rc.stop(res)
        stopped = await rc.wait(res, until="stopped", timeout=30, poll=0.01)
        assert stopped.state is ResourceState.STOPPED and stopped.raw_state == "exited"
        started = await rc.start(res)
        assert started.state is ResourceState.RUNNING
        await rc.terminate(res, timeout=30)


@pytest.mark.anyio
async def test_get_reports_the_offer_that_launch_returned(vast: FakeVast) -> None:
    provider = make(vast)
    launched = await provider.launch(SPEC)
    assert launched.instance_type == "12345678"
    assert (await provider.get(launched.id)).instance_type == launched.instance_type
    assert [r.instance_type for r in await provider.list()] == ["12345678"]


@pytest.mark.anyio
async def test_a_500_on_create_is_not_called_no_answer(vast: FakeVast) -> None:
    vast.server.fail("PUT", "/api/v0/asks/{id}",
                     Fault.http(500, {"success": False, "error": "server_error", "msg": "boom"}))
    with pytest.raises(ServerError) as caught:
        await make(vast).launch(SPEC)
    assert "failed with HTTP 500" in str(caught.value)
    assert "got no answer" not in str(caught.value)


def test_run_still_reports_outcome_and_cost_when_reading_the_logs_fails(vast: FakeVast,
                                                                          runctl_home: Path):
    vast.override("PUT", "/api/v0/instances/request_logs/{id}", lambda req: Reply.json(
        {"success": False, "error": "log_error", "msg": "log upload refused"}, 400))
    env = {"PATH": "/usr/bin:/bin", "RUNCTL_HOME": str(runctl_home), "VAST_API_KEY": KEY,
           "RUNCTL_VAST_BASE_URL": vast.url}
    out = subprocess.run(
        [sys.executable, "-m", "runctl", "run", "--provider", "vast", "--gpu", "RTX 4090",
         "--gpus", "4", "--image", "pytorch/pytorch:latest", "--timeout", "1", "--",
         "python", "train.py"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert out.returncode == 124, out.stderr
    assert "runctl: reading the logs failed: " in out.stderr
    assert "; cost " in out.stderr and "USD" in out.stderr
    assert vast.instances == {}  # torn down
    assert KEY not in out.stderr + out.stdout


@pytest.mark.anyio
async def test_verify_asks_for_the_account_once_and_a_refused_key_is_an_auth_error(
    vast: FakeVast,
) -> None:
    from runctl.errors import AuthenticationError

    answers = iter([Reply.json({"id": 1, "username": "me"}),
                    Reply.json({"success": False, "error": "auth_error",
                                "msg": "Invalid user key"}, 401)])
    vast.server.route("GET", "/api/v0/users/current", lambda req: next(answers))
    provider = make(vast)
    assert await provider.verify() == "GET /api/v0/users/current answered"
    with pytest.raises(AuthenticationError, match="Invalid user key"):
        await provider.verify()
    assert KEY not in repr(provider.config)
