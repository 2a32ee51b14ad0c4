"""Models: strict validation of user input, the state machine, JSON round trips."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import runctl
from runctl import LaunchSpec, OfferQuery, Resource, ResourceState, ValidationError
from runctl.cost import Money, Price
from runctl.models import TERMINAL_STATES, Capabilities, Gpu, Offer


class TestLaunchSpecValidation:
    @pytest.mark.parametrize(
        ("kwargs", "field", "allowed"),
        [
            ({"command": []}, "command", "non-empty list of strings"),
            ({"command": ["x"], "gpu_count": -1}, "gpu_count", "int >= 0"),
            ({"command": ["x"], "gpu_count": True}, "gpu_count", "int >= 0"),
            ({"command": ["x"], "name": "Bad Name"}, "name", "lowercase"),
            ({"command": ["x"], "provider": "No Such!"}, "provider", "provider name"),
            ({"command": ["x"], "env": {"1BAD": "v"}}, "env", "variable names"),
            ({"command": ["x"], "env": {"GOOD": 1}}, "env.GOOD", "str values"),
            ({"command": ["x"], "disk_gb": 0}, "disk_gb", "int >= 1"),
            ({"command": ["x"], "ttl": -5}, "ttl", "positive duration"),
            ({"command": ["x"], "launch_id": "has space"}, "launch_id", "letters, digits"),
            ({"command": ["x"], "tags": {"": "v"}}, "tags", "keys of"),
        ],
    )
    def test_bad_input_names_the_field_and_what_is_allowed(self, kwargs, field, allowed):
        with pytest.raises(ValidationError) as info:
            LaunchSpec(**kwargs)
        assert info.value.field == field
        assert allowed in (info.value.allowed or "")
        assert str(info.value).startswith(f"{field}:")

    def test_validation_error_is_a_value_error_and_a_runctl_error(self):
        with pytest.raises(ValueError):
            LaunchSpec(command=[])
        assert issubclass(ValidationError, runctl.RunctlError)

    def test_a_launch_id_is_generated_and_stable_on_the_spec(self):
        spec = LaunchSpec(command=["python", "train.py"])
        assert spec.launch_id and spec.launch_id == spec.launch_id
        assert LaunchSpec(command=["x"]).launch_id != spec.launch_id

    def test_runctl_tags_carry_managed_by_launch_id_and_ttl(self):
        spec = LaunchSpec(command=["x"], name="job", ttl=timedelta(hours=2), tags={"team": "nlp"})
        assert spec.runctl_tags == {
            "team": "nlp",
            "runctl-managed-by": "runctl",
            "runctl-launch-id": spec.launch_id,
            "runctl-name": "job",
            "runctl-ttl": "7200",
        }

    def test_offer_from_another_provider_is_refused(self):
        offer = Offer(provider="runpod", instance_type="x", gpu=None, gpu_count=0,
                      price=Price(per_hour=Money("1"), gpu_count=0))
        with pytest.raises(ValidationError, match="offer is from 'runpod'"):
            LaunchSpec(command=["x"], provider="local", offer=offer)

    def test_ssh_key_is_not_in_the_repr(self):
        spec = LaunchSpec(command=["x"], ssh_public_key="ssh-ed25519 AAAAsecretish")
        assert "AAAAsecretish" not in repr(spec)


class TestOfferQueryValidation:
    def test_unknown_sort_lists_the_allowed_keys(self):
        with pytest.raises(ValidationError) as info:
            OfferQuery(sort="cheapest")
        assert info.value.field == "sort"
        assert "per_gpu_hour" in (info.value.allowed or "")

    def test_prices_become_decimals(self):
        q = OfferQuery(max_per_gpu_hour="3.50")
        assert q.max_per_gpu_hour == Decimal("3.50")

    @pytest.mark.parametrize("kwargs", [{"count": 0}, {"min_vcpus": -1}, {"limit": 0},
                                        {"max_per_hour": "-1"}, {"min_gpu_memory_gb": 0}])
    def test_nonsense_limits_are_refused(self, kwargs):
        with pytest.raises(ValidationError):
            OfferQuery(**kwargs)


class TestStates:
    def test_terminal_states(self):
        assert {s for s in ResourceState if s.is_terminal} == set(TERMINAL_STATES)

    @pytest.mark.parametrize(
        ("before", "after"),
        [
            (ResourceState.PENDING, ResourceState.RUNNING),
            (ResourceState.PENDING, ResourceState.SUCCEEDED),  # seen across one poll
            (ResourceState.RUNNING, ResourceState.STOPPED),
            (ResourceState.STOPPED, ResourceState.RUNNING),
            (ResourceState.RUNNING, ResourceState.TERMINATED),
            (ResourceState.SUCCEEDED, ResourceState.TERMINATED),
            (ResourceState.UNKNOWN, ResourceState.RUNNING),
            (ResourceState.RUNNING, ResourceState.UNKNOWN),
        ],
    )
    def test_legal(self, before, after):
        assert before.can_become(after)

    @pytest.mark.parametrize(
        ("before", "after"),
        [
            (ResourceState.TERMINATED, ResourceState.RUNNING),
            (ResourceState.TERMINATED, ResourceState.UNKNOWN),
            (ResourceState.SUCCEEDED, ResourceState.RUNNING),
            (ResourceState.FAILED, ResourceState.STOPPED),
            (ResourceState.TERMINATING, ResourceState.RUNNING),
            (ResourceState.PREEMPTED, ResourceState.RUNNING),
        ],
    )
    def test_illegal(self, before, after):
        assert not before.can_become(after)

    def test_every_state_can_stay_itself(self):
        assert all(s.can_become(s) for s in ResourceState)


# --- JSON round trips ---------------------------------------------------------------------------

# No NUL: no process can be given one, so LaunchSpec refuses it in commands and env values.
_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    max_size=12,
)
_decimals = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False)
_datetimes = st.datetimes(timezones=st.just(timezone.utc))
_money = st.builds(Money, _decimals, st.sampled_from(["USD", "EUR"]))
_prices = st.builds(
    Price,
    per_hour=st.builds(Money, _decimals, st.just("USD")),
    gpu_count=st.integers(0, 16),
    billing_increment=st.sampled_from([timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)]),
    minimum_duration=st.sampled_from([timedelta(0), timedelta(minutes=1)]),
    spot=st.booleans(),
    storage_per_gb_month=st.none() | st.builds(Money, _decimals, st.just("USD")),
    observed_at=st.none() | _datetimes,
    source=st.sampled_from(["live", "snapshot", "static"]),
)
_gpus = st.builds(Gpu, model=st.sampled_from(["H100", "A100", "unknown"]), memory_gb=st.none() | st.floats(1, 200),
                  bf16_tflops=st.none() | st.floats(1, 5000), raw=st.none() | _text)
_offers = st.builds(
    Offer, provider=st.sampled_from(["runpod", "aws"]), instance_type=_text, gpu=st.none() | _gpus,
    gpu_count=st.integers(0, 16), price=_prices, vcpus=st.none() | st.integers(1, 256),
    memory_gb=st.none() | st.floats(1, 4096), region=st.none() | _text, available=st.none() | st.booleans(),
)
_specs = st.builds(
    LaunchSpec,
    # The program (first word) is never blank: LaunchSpec refuses that.
    command=st.tuples(_text.filter(str.strip), st.lists(_text, max_size=3)).map(
        lambda t: [t[0], *t[1]]
    ),
    provider=st.none() | st.sampled_from(["local", "runpod"]),
    env=st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), _text, max_size=3),
    gpu_count=st.integers(0, 8),
    spot=st.booleans(),
    ttl=st.none() | st.integers(1, 10**6).map(lambda s: timedelta(seconds=s)),
    disk_gb=st.none() | st.integers(1, 10**4),
)
_resources = st.builds(
    Resource, id=_text.filter(bool), provider=st.just("local"), state=st.sampled_from(ResourceState),
    raw_state=st.none() | _text, created_at=st.none() | _datetimes, exit_code=st.none() | st.integers(-255, 255),
    price=st.none() | _prices, tags=st.dictionaries(_text, _text, max_size=3), gpu=st.none() | _gpus,
)


@pytest.mark.parametrize(
    ("strategy", "cls"),
    [(_money, Money), (_prices, Price), (_offers, Offer), (_specs, LaunchSpec), (_resources, Resource),
     (st.builds(Capabilities, stop_start=st.booleans(), logs=st.booleans()), Capabilities),
     (st.builds(OfferQuery, gpu=st.none() | st.just("H100"), count=st.none() | st.integers(1, 8),
                max_per_gpu_hour=st.none() | _decimals, regions=st.lists(_text, max_size=2)), OfferQuery)],
)
def test_every_public_model_round_trips_through_json(strategy, cls):
    @given(strategy)
    def check(value):
        text = runctl.to_json(value)
        assert runctl.from_json(text, cls) == value

    check()


def test_malformed_json_is_a_validation_error():
    with pytest.raises(ValidationError, match="json"):
        runctl.from_json("{not json", LaunchSpec)


def test_wrong_types_in_json_name_the_field():
    with pytest.raises(ValidationError) as info:
        runctl.from_json('{"command": ["x"], "disk_gb": 0}', LaunchSpec)
    assert info.value.field == "disk_gb"


def test_money_is_json_as_a_decimal_string_never_a_float():
    text = runctl.to_json(Money("0.1"))
    assert '"0.1"' in text
    assert runctl.from_json(text, Money).amount == Decimal("0.1")


def test_resource_timestamps_survive_with_their_timezone():
    when = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    res = Resource(id="x", provider="local", state=ResourceState.RUNNING, created_at=when)
    assert runctl.from_json(runctl.to_json(res), Resource).created_at == when
