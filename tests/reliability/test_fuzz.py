"""Hypothesis fuzzing: whatever a user passes or a provider answers, only runctl errors come out.

Provider answers reach the real RunPod provider through an httpx transport (the one
seam providers offer for this); user input goes through the public constructors and
the ledger/lifecycle entry points.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runctl.budget import Budget, check_budget
from runctl.config import ProviderConfig
from runctl.cost import Money, Price
from runctl.errors import RunctlError
from runctl.http import RetryPolicy
from runctl.ledger import Ledger
from runctl.lifecycle import launch_safely, terminate_verified
from runctl.models import LaunchSpec

from .conftest import API_KEY

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=20,
)
pod_keys = st.sampled_from(
    ["id", "name", "status", "env", "gpu", "cost", "createdAt", "startedAt", "cloud",
     "dataCenterId", "ssh", "runtime", "pods"]
)
# Pod-shaped objects with wrong types in the right places find more than random JSON.
pods = st.dictionaries(pod_keys, json_values, max_size=10)
bodies = st.one_of(
    json_values,
    pods,
    st.builds(lambda p: {"pods": p}, st.lists(pods | json_values, max_size=3)),
    st.binary(max_size=40),
)
statuses = st.sampled_from([200, 201, 204, 400, 401, 404, 409, 422, 429, 500, 502])

fuzz = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _provider(answer: Any, status: int) -> Any:
    from runctl.providers.runpod import RunPodProvider

    def handler(request: httpx.Request) -> httpx.Response:
        content = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return httpx.Response(status, content=content, headers={"Retry-After": "0"})

    config = ProviderConfig(name="runpod", home=Path("/nonexistent"),
                            environ={"RUNPOD_API_KEY": API_KEY})
    return RunPodProvider(config, transport=httpx.MockTransport(handler),
                          retry=RetryPolicy(attempts=2, base=0.0, cap=0.0))


def _spec() -> LaunchSpec:
    return LaunchSpec(command=["python", "train.py"], image="img", launch_id="fuzz",
                      instance_type="SECURE:NVIDIA H100 80GB HBM3", ttl=600)


@fuzz
@given(answer=bodies, status=statuses)
def test_any_provider_answer_gives_a_resource_or_a_runctl_error(answer: Any, status: int) -> None:
    async def main() -> None:
        provider = _provider(answer, status)
        try:
            for call in (
                lambda: provider.get("pod1"),
                lambda: provider.list(tags={"runctl-managed-by": "runctl"}),
                lambda: provider.launch(_spec()),
                lambda: provider.terminate("pod1"),
            ):
                try:
                    await call()
                except RunctlError as e:
                    assert API_KEY not in str(e) and API_KEY not in repr(e)
        finally:
            await provider.aclose()

    anyio.run(main)


@fuzz
@given(answer=bodies, status=statuses)
def test_the_safe_launch_and_terminate_give_only_runctl_errors(
    answer: Any, status: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ledger = Ledger(tmp_path_factory.mktemp("ledger") / "l.db")

    async def main() -> None:
        provider = _provider(answer, status)
        try:
            try:
                await launch_safely(provider, _spec(), ledger, settle=0.0, poll_interval=0.0)
            except RunctlError:
                pass
            try:
                await terminate_verified(provider, "pod1", ledger, timeout=0.01,
                                         poll_interval=0.001)
            except RunctlError:
                pass
        finally:
            await provider.aclose()

    anyio.run(main)


launch_fields = st.fixed_dictionaries(
    {"command": json_values},  # the one required argument (omitting it is a Python TypeError)
    optional={
        "name": json_values,
        "env": json_values,
        "gpu_count": json_values,
        "tags": json_values,
        # NaN and out-of-range seconds: see the test below.
        "ttl": st.none() | st.integers(-10**9, 10**9) | st.floats(-1e9, 1e9) | st.text(max_size=5),
        "launch_id": json_values,
        "disk_gb": json_values,
        "spot": json_values,
        "options": json_values,
    },
)


@fuzz
@given(fields=launch_fields)
def test_any_launch_spec_input_is_accepted_or_refused_with_a_runctl_error(
    fields: dict[str, Any],
) -> None:
    try:
        LaunchSpec(**fields)
    except RunctlError:
        pass


@pytest.mark.parametrize("ttl", [float("nan"), 1e15, float("inf")])
def test_a_ttl_that_is_not_a_duration_is_a_validation_error(ttl: float) -> None:
    try:
        LaunchSpec(command=["x"], ttl=ttl)
    except RunctlError:
        return
    raise AssertionError("accepted")


amounts = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=8),
                    st.decimals(allow_nan=True))


@fuzz
@given(hourly=amounts, total=amounts,
       per_hour=st.none() | st.decimals(0, 10**6, places=4), ttl=st.floats(0, 1e6))
def test_any_budget_input_is_checked_or_refused_with_a_runctl_error(
    hourly: Any, total: Any, per_hour: Any, ttl: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    class Settings:
        max_hourly_spend = hourly
        max_total_spend = total

    try:
        budget = Budget.from_settings(Settings())
        price = Price(per_hour=Money(per_hour)) if per_hour is not None else None
        check_budget(budget, Ledger(tmp_path_factory.mktemp("b") / "l.db"), price=price,
                     ttl=timedelta(seconds=ttl))
    except RunctlError:
        pass
