"""Money, prices and billing: exact Decimal arithmetic that matches the invoice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runctl._convert import from_json, to_json
from runctl.cost import Money, Price, billed_duration, cost, estimate
from runctl.errors import CurrencyMismatchError, ValidationError
from runctl.gpus import normalize_gpu
from runctl.models import Offer, Resource, ResourceState

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def per_minute(per_hour: str = "6") -> Price:
    return Price(per_hour=usd(per_hour), billing_increment=timedelta(minutes=1))


def h100_offer(per_hour: str = "24", count: int = 8) -> Offer:
    return Offer(
        provider="lambda",
        instance_type="gpu_8x_h100_sxm5",
        gpu=normalize_gpu("H100 SXM"),
        gpu_count=count,
        price=Price(per_hour=usd(per_hour), gpu_count=count, billing_increment=timedelta(minutes=1)),
    )


# --- billing arithmetic -------------------------------------------------------------------------


def test_61_seconds_on_a_per_minute_increment_bills_two_minutes() -> None:
    assert billed_duration(timedelta(seconds=61), timedelta(minutes=1)) == timedelta(minutes=2)
    assert estimate(per_minute("6"), timedelta(seconds=61)) == usd("0.2")


def test_a_per_hour_provider_bills_a_full_first_hour() -> None:
    hourly = Price(per_hour=usd("3.50"), billing_increment=timedelta(hours=1))
    assert estimate(hourly, timedelta(minutes=5)) == usd("3.50")
    assert estimate(hourly, timedelta(minutes=61)) == usd("7.00")


def test_minimum_duration_applies_to_short_runs_only() -> None:
    aws = Price(
        per_hour=usd("36"), billing_increment=timedelta(seconds=1), minimum_duration=timedelta(seconds=60)
    )
    assert estimate(aws, timedelta(seconds=10)) == usd("0.6")  # 60 s at $36/h
    assert estimate(aws, timedelta(seconds=90)) == usd("0.9")  # 90 s, exactly
    assert aws.minimum_charge == usd("0.6")


def test_zero_duration_costs_the_minimum() -> None:
    aws = Price(per_hour=usd("36"), minimum_duration=timedelta(seconds=60))
    assert estimate(aws, timedelta(0)) == usd("0.6")
    assert estimate(per_minute(), timedelta(0)) == usd("0")


def test_amounts_stay_decimal_and_exact() -> None:
    total = estimate(per_minute("0.10"), timedelta(minutes=3))
    assert isinstance(total.amount, Decimal)
    assert total == usd("0.005")  # 0.1 * 3/60, no float error
    assert Money(0.1) + Money(0.2) == usd("0.3")  # floats enter through their repr


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValidationError, match="duration"):
        estimate(per_minute(), timedelta(seconds=-1))


def test_disk_is_charged_per_gb_month_for_the_billed_duration() -> None:
    price = Price(
        per_hour=usd("1"), billing_increment=timedelta(hours=1), storage_per_gb_month=usd("0.073")
    )
    # 10 min bills a full hour of compute; 100 GB for that hour of a 730-hour month.
    assert estimate(price, timedelta(minutes=10), disk_gb=100) == usd("1.01")


def test_estimate_accepts_an_offer() -> None:
    assert estimate(h100_offer("24"), timedelta(minutes=30)) == usd("12")


# --- views --------------------------------------------------------------------------------------


def test_price_views_per_gpu_memory_and_pflop() -> None:
    offer = h100_offer("24", count=8)
    assert offer.per_hour == usd("24")
    assert offer.per_gpu_hour == usd("3")
    assert offer.per_gpu_memory_gb_hour == usd("24") / Decimal(640)
    # 8 x 989.5 dense BF16 TFLOPS = 7.916 PFLOPS
    assert offer.per_bf16_pflop_hour == usd("24") / Decimal("7.916")
    assert offer.price_view("per_gpu_hour") == usd("3")


def test_views_are_none_when_the_gpu_figures_are_unknown() -> None:
    offer = attrs.evolve(h100_offer(), gpu=normalize_gpu("mystery accelerator"))
    assert offer.per_gpu_hour == usd("3")
    assert offer.per_gpu_memory_gb_hour is None
    assert offer.per_bf16_pflop_hour is None
    cpu = attrs.evolve(h100_offer(), gpu=None, gpu_count=0)
    assert cpu.per_gpu_hour is None


# --- currencies ---------------------------------------------------------------------------------


def test_currencies_never_mix_silently() -> None:
    with pytest.raises(CurrencyMismatchError):
        usd("1") + Money(Decimal(1), "EUR")
    with pytest.raises(CurrencyMismatchError):
        Price(per_hour=usd("1"), storage_per_gb_month=Money(Decimal("0.1"), "EUR"))


def test_conversion_uses_only_the_rates_given() -> None:
    eur = Price(per_hour=Money(Decimal("10"), "EUR"), storage_per_gb_month=Money(Decimal("0.1"), "EUR"))
    in_usd = eur.convert("USD", {"EUR": Decimal("1.08")})
    assert in_usd.per_hour == usd("10.80")
    assert in_usd.storage_per_gb_month == usd("0.108")
    with pytest.raises(CurrencyMismatchError):
        eur.convert("USD", {"GBP": Decimal("1.25")})


# --- cost of a resource -------------------------------------------------------------------------


def resource(price: Price, **kw: object) -> Resource:
    fields: dict[str, object] = {"id": "r-1", "provider": "lambda", "state": ResourceState.RUNNING}
    fields.update(kw)
    return Resource(price=price, **fields)  # type: ignore[arg-type]


def test_cost_so_far_of_a_running_resource() -> None:
    r = resource(per_minute("6"), started_at=T0)
    assert cost(r, now=T0 + timedelta(seconds=61)) == usd("0.2")


def test_final_cost_of_an_ended_resource_ignores_now() -> None:
    r = resource(
        per_minute("6"), state=ResourceState.TERMINATED, started_at=T0,
        ended_at=T0 + timedelta(minutes=10),
    )
    assert cost(r, now=T0 + timedelta(days=3)) == usd("1")


def test_launch_price_survives_a_later_catalog_change() -> None:
    launched = h100_offer("24")
    r = resource(launched.price, started_at=T0, ended_at=T0 + timedelta(hours=1),
                 state=ResourceState.TERMINATED)
    stored = to_json(r)
    # The catalog changes: the same machine now costs twice as much.
    _new_catalog = [attrs.evolve(launched, price=attrs.evolve(launched.price, per_hour=usd("48")))]
    assert _new_catalog[0].per_hour == usd("48")
    assert cost(from_json(stored, Resource)) == usd("24")


def test_cost_is_unknown_without_a_launch_price_and_zero_before_start() -> None:
    assert cost(Resource(id="x", provider="aws", state=ResourceState.RUNNING)) is None
    assert cost(resource(per_minute(), state=ResourceState.PENDING)) == usd("0")


# --- JSON round trips ---------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False)
currencies = st.sampled_from(["USD", "EUR", "GBP"])
durations = st.integers(min_value=1, max_value=86400).map(lambda s: timedelta(seconds=s))


@st.composite
def prices(draw: st.DrawFn) -> Price:
    currency = draw(currencies)
    optional_money = st.none() | amounts.map(lambda a: Money(a, currency))
    return Price(
        per_hour=Money(draw(amounts), currency),
        gpu_count=draw(st.integers(0, 16)),
        billing_increment=draw(durations),
        minimum_duration=draw(st.integers(0, 3600).map(lambda s: timedelta(seconds=s))),
        spot=draw(st.booleans()),
        storage_per_gb_month=draw(optional_money),
        egress_per_gb=draw(optional_money),
        observed_at=draw(st.none() | st.just(T0)),
        source=draw(st.sampled_from(["live", "snapshot", "static"])),
    )


@given(amounts, currencies)
def test_money_round_trips_through_json(amount: Decimal, currency: str) -> None:
    money = Money(amount, currency)
    back = from_json(to_json(money), Money)
    assert back == money
    assert isinstance(back.amount, Decimal)


@given(prices())
def test_price_round_trips_through_json(price: Price) -> None:
    assert from_json(to_json(price), Price) == price


@given(prices(), st.sampled_from(["H100 SXM", "L4", "TPU v5p", "mystery"]), st.integers(0, 8))
def test_offer_round_trips_through_json(price: Price, gpu_name: str, count: int) -> None:
    offer = Offer(
        provider="runpod", instance_type="x", gpu=normalize_gpu(gpu_name), gpu_count=count,
        price=price, vcpus=16, memory_gb=128.0, region="us-east-1",
    )
    back = from_json(to_json(offer), Offer)
    assert back == offer
    assert back.per_gpu_hour == offer.per_gpu_hour


def test_money_str_is_readable_and_never_fails_on_large_amounts():
    assert str(Money("0.6")) == "0.60 USD"
    assert str(Money("0.0002777777777777777777777778")) == "0.000278 USD"
    assert str(Money(10**30)) == "1000000000000000000000000000000.00 USD"
    assert Money(10**30).rounded(4).amount == Decimal(10**30)
