"""Money, prices and billing rules.

Every amount is a :class:`decimal.Decimal` with its currency beside it; floats
never touch money. A :class:`Price` is what one instance costs per hour *and*
how the provider bills it (increment, minimum), so that an estimate or the
cost of a finished run is what the invoice will say, not an approximation.

Units, in one place:

- ``Price.per_hour``: the whole instance, per hour, all its GPUs included.
- ``Price.billing_increment``: time is billed in whole multiples of this.
- ``Price.minimum_duration``: a run is billed at least this long.
- ``Price.storage_per_gb_month``: disk, per GB and per month of 730 hours.
- ``Price.egress_per_gb``: data leaving the provider, per GB.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Literal

import attrs

from .errors import CurrencyMismatchError, ValidationError

if TYPE_CHECKING:
    from .models import Offer, Resource

__all__ = [
    "HOURS_PER_MONTH",
    "BillingRule",
    "Money",
    "Price",
    "PriceSource",
    "StorageNotPricedWarning",
    "billed_duration",
    "cost",
    "estimate",
]

#: Hours in the billing month cloud providers use for per-month prices (365 * 24 / 12).
HOURS_PER_MONTH = Decimal(730)

PriceSource = Literal["live", "snapshot", "static"]


@attrs.frozen(kw_only=True)
class BillingRule:
    """How a provider bills running time, as it documents it publicly.

    A provider declares its own (``billing_rule`` on its class); the price
    snapshot records the rule of every provider it holds.

    Attributes:
        increment: time is billed in whole multiples of this.
        minimum: a run is billed at least this long.
        source: where the rule is documented.
        note: caveats (e.g. a rule not confirmed in the provider's own docs).
    """

    increment: timedelta
    minimum: timedelta = timedelta(0)
    source: str = ""
    note: str = ""
_SOURCES = ("live", "snapshot", "static")
_HOUR = Decimal(3600)


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValidationError("amount", f"{value!r} is not an amount", allowed="a Decimal or str")
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValidationError(
                "amount", f"{value!r} is not a number", allowed="a decimal number"
            ) from None
    elif isinstance(value, float):
        # Floats are accepted at the boundary, through their shortest repr, so 0.1 means 0.1.
        result = Decimal(repr(value))
    else:
        raise ValidationError(
            "amount", f"{type(value).__name__} is not an amount", allowed="Decimal, int or str"
        )
    if not result.is_finite():
        raise ValidationError("amount", f"{value!r} is not finite", allowed="a finite number")
    return result


def _check_currency(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not (isinstance(value, str) and len(value) == 3 and value.isalpha() and value.isupper()):
        raise ValidationError(
            attribute.name, f"{value!r} is not a currency code", allowed="ISO 4217, e.g. 'USD'"
        )


@attrs.frozen
class Money:
    """An exact amount of one currency.

    Arithmetic between two amounts of different currencies raises
    :class:`~runctl.errors.CurrencyMismatchError`; use :meth:`convert` with
    rates you supply.

    ``str()`` shows at least two and at most six decimals (``0.60 USD``,
    ``0.000278 USD``); ``amount`` keeps every digit.

    Attributes:
        amount: the amount; strings and ints are exact, floats go through their repr.
        currency: ISO 4217 code.
    """

    amount: Decimal = attrs.field(converter=_to_decimal)
    currency: str = attrs.field(default="USD", validator=_check_currency)

    @classmethod
    def zero(cls, currency: str = "USD") -> Money:
        """Return zero in ``currency``."""
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, (Decimal, int)):
            return NotImplemented
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: Decimal | int) -> Money:
        if isinstance(divisor, bool) or not isinstance(divisor, (Decimal, int)):
            return NotImplemented
        return Money(self.amount / divisor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def rounded(self, places: int = 2) -> Money:
        """Round half-even to ``places`` decimals (for display; keep exact amounts for sums)."""
        with localcontext() as ctx:
            ctx.prec = max(28, self.amount.adjusted() + places + 4)
            amount = self.amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
        return Money(amount, self.currency)

    def convert(self, currency: str, rates: Mapping[str, Decimal | str]) -> Money:
        """Convert with a rate the caller supplies; runctl never guesses exchange rates.

        Args:
            currency: the target currency.
            rates: units of the *target* currency per one unit of each source currency,
                e.g. ``{"EUR": Decimal("1.08")}`` to convert EUR to USD.

        Raises:
            CurrencyMismatchError: no rate for this currency was given.
        """
        if currency == self.currency:
            return self
        if self.currency not in rates:
            raise CurrencyMismatchError(self.currency, currency)
        return Money(self.amount * _to_decimal(rates[self.currency]), currency)

    def __str__(self) -> str:
        # Enough precision for any amount's integer digits plus six decimals.
        with localcontext() as ctx:
            ctx.prec = max(28, self.amount.adjusted() + 10)
            shown = self.amount.quantize(Decimal("0.000001"), ROUND_HALF_EVEN).normalize()
            if shown.as_tuple().exponent > -2:  # type: ignore[operator]
                shown = shown.quantize(Decimal("0.01"))
        return f"{shown:f} {self.currency}"


def _check_source(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _SOURCES:
        raise ValidationError(attribute.name, f"{value!r} is unknown", allowed=", ".join(_SOURCES))


def _check_duration(_: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValidationError(
            attribute.name, f"{value!r} is not a duration", allowed="a timedelta >= 0"
        )


def _check_nonnegative_money(_: object, attribute: attrs.Attribute[Money], value: Money) -> None:
    if not isinstance(value, Money):
        raise ValidationError(
            attribute.name,
            f"{type(value).__name__} is not Money",
            allowed="Money(amount, currency)",
        )
    if value.amount < 0:
        raise ValidationError(attribute.name, f"{value} is negative", allowed="an amount >= 0")


def _check_optional_money(
    instance: object, attribute: attrs.Attribute[Money | None], value: Money | None
) -> None:
    if value is not None:
        _check_nonnegative_money(instance, attribute, value)  # type: ignore[arg-type]


@attrs.frozen(kw_only=True)
class Price:
    """What one instance costs, and how the provider bills it.

    Attributes:
        per_hour: price of the whole instance per hour (all its GPUs).
        gpu_count: GPUs in the instance, for the per-GPU view (0 for CPU-only).
        billing_increment: time is billed in whole multiples of this (1 s, 1 min, 1 h).
        minimum_duration: a run is billed at least this long.
        spot: an interruptible (spot, preemptible, community) price.
        storage_per_gb_month: disk price, when the provider charges it separately.
        egress_per_gb: price of data leaving the provider, when known.
        observed_at: when this price was read.
        source: ``"live"`` (the provider's API), ``"snapshot"`` (runctl's offline
            catalog) or ``"static"`` (fixed by definition, like the local provider's 0).
    """

    per_hour: Money = attrs.field(validator=_check_nonnegative_money)
    gpu_count: int = attrs.field(default=1)
    billing_increment: timedelta = attrs.field(
        default=timedelta(seconds=1), validator=_check_duration
    )
    minimum_duration: timedelta = attrs.field(default=timedelta(0), validator=_check_duration)
    spot: bool = False
    storage_per_gb_month: Money | None = attrs.field(default=None, validator=_check_optional_money)
    egress_per_gb: Money | None = attrs.field(default=None, validator=_check_optional_money)
    observed_at: datetime | None = None
    source: str = attrs.field(default="live", validator=_check_source)

    @gpu_count.validator
    def _check_gpu_count(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError("gpu_count", f"{value!r} is invalid", allowed="an int >= 0")

    @billing_increment.validator
    def _check_increment(self, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
        if value <= timedelta(0):
            raise ValidationError(
                "billing_increment", f"{value!r} is not positive", allowed="a timedelta > 0"
            )

    def __attrs_post_init__(self) -> None:
        # One price, one currency: a storage rate in EUR on a USD price would make
        # every estimate silently wrong.
        for name in ("storage_per_gb_month", "egress_per_gb"):
            amount = getattr(self, name)
            if amount is not None and amount.currency != self.per_hour.currency:
                raise CurrencyMismatchError(self.per_hour.currency, amount.currency)

    @property
    def currency(self) -> str:
        """The currency of every amount in this price."""
        return self.per_hour.currency

    def convert(self, currency: str, rates: Mapping[str, Decimal | str]) -> Price:
        """This price in ``currency``, with exchange rates the caller supplies.

        Args:
            currency: the target currency.
            rates: units of ``currency`` per one unit of the source currency,
                as for :meth:`Money.convert`.

        Raises:
            CurrencyMismatchError: no rate was given for this price's currency.
        """
        if currency == self.currency:
            return self

        def conv(amount: Money | None) -> Money | None:
            return None if amount is None else amount.convert(currency, rates)

        return attrs.evolve(
            self,
            per_hour=self.per_hour.convert(currency, rates),
            storage_per_gb_month=conv(self.storage_per_gb_month),
            egress_per_gb=conv(self.egress_per_gb),
        )

    def scaled(self, instances: int) -> Price:
        """The price of ``instances`` such instances billed together (a multi-node launch).

        Per-hour amounts and the GPU count are multiplied; the billing rules stay.
        """
        if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
            raise ValidationError("nodes", f"{instances!r} is invalid", allowed="an int >= 1")
        if instances == 1:
            return self
        return attrs.evolve(
            self, per_hour=self.per_hour * instances, gpu_count=self.gpu_count * instances
        )

    @property
    def per_gpu_hour(self) -> Money | None:
        """Price per GPU per hour; ``None`` for a machine without GPUs."""
        if self.gpu_count == 0:
            return None
        return self.per_hour / self.gpu_count

    @property
    def minimum_charge(self) -> Money:
        """The least a run on this price can cost (``minimum_duration`` at ``per_hour``)."""
        return self.per_hour * _seconds(self.minimum_duration) / _HOUR

    def billed_duration(self, elapsed: timedelta) -> timedelta:
        """The duration the provider bills for ``elapsed`` of running time."""
        return billed_duration(elapsed, self.billing_increment, self.minimum_duration)

    def compute_cost(self, elapsed: timedelta) -> Money:
        """Cost of running ``elapsed``, with the increment and minimum applied."""
        # Multiply before dividing: 60/3600 is not exact in Decimal, 36 * 60 / 3600 is.
        return self.per_hour * _seconds(self.billed_duration(elapsed)) / _HOUR


def _seconds(duration: timedelta) -> Decimal:
    # timedelta is exact in microseconds; Decimal keeps it exact.
    return (
        Decimal(duration.days) * 86400
        + Decimal(duration.seconds)
        + Decimal(duration.microseconds) / Decimal(1_000_000)
    )


def billed_duration(
    elapsed: timedelta, increment: timedelta, minimum: timedelta = timedelta(0)
) -> timedelta:
    """Round ``elapsed`` up to whole ``increment``s, and to at least ``minimum``.

    >>> billed_duration(timedelta(seconds=61), timedelta(minutes=1))
    datetime.timedelta(seconds=120)
    """
    if elapsed < timedelta(0):
        raise ValidationError("elapsed", f"{elapsed!r} is negative", allowed="a timedelta >= 0")
    elapsed = max(elapsed, minimum)
    steps = math.ceil(_seconds(elapsed) / _seconds(increment))
    return increment * steps


class StorageNotPricedWarning(UserWarning):
    """:func:`estimate` was given ``disk_gb`` for a price that has no storage rate."""


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValidationError(
                "duration", f"{value!r} is negative", allowed="a timedelta >= 0, or seconds >= 0"
            )
        return value
    # Seconds, as LaunchSpec.ttl takes them.
    if (
        isinstance(value, (int, float, Decimal))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return timedelta(seconds=float(value))
    raise ValidationError(
        "duration",
        f"{value!r} is not a duration",
        allowed="a timedelta such as timedelta(hours=3), or a number of seconds such as 10800",
    )


def estimate(offer: Offer | Price, duration: timedelta | float, *, disk_gb: int = 0) -> Money:
    """What running ``offer`` for ``duration`` will cost, billing rules applied.

    Args:
        offer: an offer, or a bare price.
        duration: planned running time: a ``timedelta``, or a number of seconds.
        disk_gb: disk to attach; charged at ``storage_per_gb_month`` when the price has
            it. When it has none, the estimate covers compute only and a
            :class:`StorageNotPricedWarning` says so.

    Returns:
        The exact amount, in the price's currency.

    Raises:
        ValidationError: ``offer`` is not an offer or price, ``duration`` is not a
            duration, or ``disk_gb`` is not an int >= 0.
    """
    from .models import Offer

    if isinstance(offer, Price):
        price = offer
    elif isinstance(offer, Offer):
        price = offer.price
    else:
        raise ValidationError(
            "offer", f"{type(offer).__name__} is not an offer",
            allowed="an Offer (from offers()) or a Price",
        )
    elapsed = _duration(duration)
    if isinstance(disk_gb, bool) or not isinstance(disk_gb, int) or disk_gb < 0:
        raise ValidationError("disk_gb", f"{disk_gb!r} is invalid", allowed="an int >= 0")
    total = price.compute_cost(elapsed)
    if disk_gb and price.storage_per_gb_month is None:
        import warnings

        warnings.warn(
            f"estimate: disk_gb={disk_gb} is not in the estimate: this price has no storage "
            "rate (storage_per_gb_month), so it covers compute only",
            StorageNotPricedWarning,
            stacklevel=2,
        )
    if disk_gb and price.storage_per_gb_month is not None:
        # Storage is billed for the same duration as the instance it is attached to.
        seconds = _seconds(price.billed_duration(elapsed))
        total = total + price.storage_per_gb_month * disk_gb * seconds / (_HOUR * HOURS_PER_MONTH)
    return total


def cost(resource: Resource, *, now: datetime | None = None) -> Money | None:
    """Cost of ``resource`` so far (if running) or in total (if ended).

    Uses the price the resource was launched at, never today's catalog, and the
    running time the provider reported (``started_at`` to ``ended_at`` or now).

    Returns:
        ``None`` when the launch price is unknown.
    """
    if resource.price is None:
        return None
    started = resource.started_at or resource.created_at
    if started is None:
        return Money.zero(resource.price.currency)
    end = resource.ended_at or now or _utcnow()
    elapsed = max(end - started, timedelta(0))
    return resource.price.compute_cost(elapsed)


def _utcnow() -> datetime:
    from .clock import now

    return now()
