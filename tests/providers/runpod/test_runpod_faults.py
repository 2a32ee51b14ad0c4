"""RunPod against a fake server on loopback: rate limits, 5xx, timeouts, lost answers, bad bodies."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import pytest

from runctl.errors import (
    CapacityError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
)
from runctl.models import LaunchSpec, OfferQuery, ResourceState
from runctl.providers.runpod import RunPodProvider
from tests.support.fake_http import Fault, Reply, Request

from .conftest import FAKE_KEY, FakeRunPod

S = ResourceState


def spec(launch_id: str = "faulty0001") -> LaunchSpec:
    return LaunchSpec(
        command=["python", "train.py"],
        image="runpod/pytorch:2.4",
        instance_type="SECURE:NVIDIA H100 80GB HBM3",
        gpu_count=1,
        launch_id=launch_id,
    )


def creates(fake: FakeRunPod) -> int:
    return sum(1 for r in fake.server.requests if r.method == "POST" and r.path == "/v2/pods")


def no_secret(error: BaseException) -> None:
    text = str(error) + repr(error) + (getattr(error, "body", None) or "")
    assert FAKE_KEY not in text


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.anyio
async def test_full_cycle_against_the_fake(fake: FakeRunPod, fake_provider: RunPodProvider) -> None:
    offers = await fake_provider.offers(OfferQuery(gpu="NVIDIA H100 80GB HBM3", count=2))
    assert [(o.gpu_count, str(o.price.per_hour)) for o in offers] == [(2, "5.98 USD")]
    launched = await fake_provider.launch(spec())
    assert launched.state is S.PROVISIONING
    fake.pods[launched.id]["status"] = "RUNNING"
    assert (await fake_provider.stop(launched.id)).state is S.STOPPED
    # Stopping a stopped pod is what was asked: RunPod's 409 is answered with the pod.
    assert (await fake_provider.stop(launched.id)).state is S.STOPPED
    assert (await fake_provider.start(launched.id)).state is S.RUNNING
    assert (await fake_provider.terminate(launched.id)).state is S.TERMINATED
    assert fake.pods == {}
    assert fake.check_requests_against_spec() > 5


@pytest.mark.anyio
async def test_a_burst_of_429s_is_waited_out(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    fake.server.fail("GET", "/v2/pods", *[Fault.http(429, headers={"Retry-After": "0"})] * 3)
    assert await fake_provider.list() == []


@pytest.mark.anyio
async def test_rate_limit_that_does_not_end_is_reported(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    limited = Fault.http(
        429,
        {"title": "Too Many Requests", "status": 429, "detail": "rate limit exceeded"},
        headers={"Retry-After": "0"},
    )
    fake.server.fail("GET", "/v2/pods", *[limited] * 10)
    with pytest.raises(RateLimitedError) as caught:
        await fake_provider.list()
    assert caught.value.retry_after == 0
    no_secret(caught.value)


@pytest.mark.anyio
async def test_a_lost_create_answer_never_makes_a_second_pod(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    fake.server.fail("POST", "/v2/pods", Fault.lose_response())
    launched = await fake_provider.launch(spec())
    assert list(fake.pods) == [launched.id]
    assert launched.launch_id == "faulty0001"
    assert creates(fake) == 1
    again = await fake_provider.launch(spec())  # the caller retries anyway
    assert again.id == launched.id
    assert creates(fake) == 1


@pytest.mark.anyio
async def test_a_5xx_after_the_pod_was_made_returns_that_pod(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    fake.create_then_fail = 502
    launched = await fake_provider.launch(spec())
    assert list(fake.pods) == [launched.id]
    assert creates(fake) == 1


@pytest.mark.anyio
async def test_a_5xx_that_made_nothing_is_a_server_error(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    fake.server.fail(
        "POST", "/v2/pods", Fault.http(500, {"title": "x", "status": 500, "detail": "boom"})
    )
    with pytest.raises(ServerError):
        await fake_provider.launch(spec())
    assert fake.pods == {}
    assert creates(fake) == 1  # a POST that may have applied is never blindly re-sent


@pytest.mark.anyio
async def test_a_timeout_mid_launch_is_a_clear_error_and_a_retry_makes_no_duplicate(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    # The server creates the pod only after the client gave up waiting.
    fake.server.fail("POST", "/v2/pods", Fault.sleep(1.5))
    with pytest.raises(ProviderConnectionError) as caught:
        await fake_provider.launch(spec())
    assert caught.value.maybe_applied
    assert "launching again with the same launch id is safe" in str(caught.value)
    assert isinstance(caught.value.__cause__, ProviderTimeoutError)
    # The server finishes the create in its own thread; wait for it there.
    await anyio.to_thread.run_sync(until, lambda: bool(fake.pods))
    again = await fake_provider.launch(spec())
    assert list(fake.pods) == [again.id]
    assert creates(fake) == 1


@pytest.mark.anyio
async def test_truncated_json_is_malformed_not_a_crash(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    fake.override("GET", "/v2/pods/{id}", lambda r: Reply(200, b'{"id": "pod1", "sta', {}))
    with pytest.raises(MalformedResponseError):
        await fake_provider.get("pod1")


@pytest.mark.anyio
async def test_a_body_cut_off_mid_transfer_is_retried(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    launched = await fake_provider.launch(spec())
    fake.server.fail("GET", "/v2/pods/{id}", Fault.truncate())
    assert (await fake_provider.get(launched.id)).id == launched.id


@pytest.mark.anyio
async def test_unknown_states_are_kept_raw(fake: FakeRunPod, fake_provider: RunPodProvider) -> None:
    launched = await fake_provider.launch(spec())
    fake.pods[launched.id]["status"] = "HIBERNATING"
    seen = await fake_provider.get(launched.id)
    assert seen.state is S.UNKNOWN
    assert seen.raw_state == "HIBERNATING"
    assert "HIBERNATING" in (seen.detail or "")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body", [{"pods": "none"}, {"pods": [{"name": "no id"}]}, {"nothing": []}, ["a"]]
)
async def test_malformed_lists(
    fake: FakeRunPod, fake_provider: RunPodProvider, body: object
) -> None:
    fake.override("GET", "/v2/pods", lambda r: Reply.json(body))
    with pytest.raises(MalformedResponseError):
        await fake_provider.list()


@pytest.mark.anyio
async def test_no_capacity_is_a_capacity_error(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    detail = "There are no longer any instances available with the requested specifications."
    fake.server.fail(
        "POST",
        "/v2/pods",
        Fault.http(400, {"title": "Bad Request", "status": 400, "detail": detail}),
    )
    with pytest.raises(CapacityError) as caught:
        await fake_provider.launch(spec())
    assert caught.value.status == 400
    no_secret(caught.value)


@pytest.mark.anyio
async def test_insufficient_balance_is_a_quota_error(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    body = {"title": "Payment Required", "status": 402, "detail": "insufficient balance"}
    fake.server.fail("POST", "/v2/pods", Fault.http(402, body))
    with pytest.raises(QuotaExceededError):
        await fake_provider.launch(spec())


@pytest.mark.anyio
async def test_logs_follow_the_stream_across_reconnects(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    def event(n: int, line: str) -> str:
        ts = f"2026-01-01T00:00:0{n}Z"
        return f'id: {ts}/{n}\ndata: {{"ts":"{ts}","source":"container","line":"{line}"}}\n\n'

    answers = [event(1, "a") + event(2, "b"), event(2, "b") + event(3, "c")]

    def logs(request: Request) -> Reply:
        body = answers.pop(0) if answers else ""
        return Reply(200, body.encode(), {"Content-Type": "text/event-stream"})

    fake.override("GET", "/v2/pods/{id}/logs", logs)
    lines = []
    with anyio.fail_after(10):
        async for line in fake_provider.logs("pod1", follow=True):
            lines.append(line)
            if len(lines) == 3:
                break
    # The stream ended and was resumed from the last event; the event seen twice is shown once.
    assert lines == ["a", "b", "c"]
    second = [r for r in fake.server.requests if r.path.endswith("/logs")][1]
    assert second.query["since"] == ["2026-01-01T00:00:02Z"]
    fake.check_requests_against_spec()


@pytest.mark.anyio
async def test_a_stop_whose_answer_was_lost_is_not_reported_as_a_conflict(
    fake: FakeRunPod, fake_provider: RunPodProvider
) -> None:
    pod = await fake_provider.launch(spec("stoplost01"))
    fake.pods[pod.id]["status"] = "RUNNING"
    # The stop is carried out, its answer lost; the retry finds the pod already stopped (409).
    fake.server.fail("POST", "/v2/pods/{id}/action", Fault.lose_response())
    stopped = await fake_provider.stop(pod.id)
    assert stopped.state is ResourceState.STOPPED
    assert sum(1 for r in fake.server.requests if r.path.endswith("/action")) == 2
