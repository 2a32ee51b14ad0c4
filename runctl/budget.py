"""Spending limits, checked before every launch: per hour of what runs, and in total.

:class:`Budget` holds the limits (from the settings); :func:`check_budget` refuses a
launch that would break one. :func:`runctl.lifecycle.launch_safely` runs the check in
the same ledger transaction as the launch's intent, so a limit holds across processes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from .cost import Money, Price
from .errors import (
    BudgetExceededError,
    CurrencyMismatchError,
    ValidationError,
)

if TYPE_CHECKING:
    from .ledger import Ledger, Spend

__all__ = ["Budget", "check_budget"]


def _show(amount: Money) -> str:
    try:
        return str(amount.rounded())
    except ArithmeticError:  # too large to round to cents in the default decimal context
        return f"{amount.amount:E} {amount.currency}"


def _optional_money(value: object, currency: str, field: str) -> Money | None:
    if value is None:
        return None
    money = value if isinstance(value, Money) else Money(value, currency)
    if money.amount < 0:
        raise ValidationError(
            field, f"{money.amount} is negative", allowed="an amount >= 0, or None"
        )
    return money


@attrs.frozen(kw_only=True)
class Budget:
    """Spending limits checked before every launch, across all providers.

    Attributes:
        max_hourly_spend: the most that everything running may cost per hour,
            the new launch included.
        max_total_spend: the most the ledger's launches may cost in total: what
            ended launches cost, what running ones cost so far, and what the new
            launch costs if it runs for its whole TTL.
    """

    max_hourly_spend: Money | None = None
    max_total_spend: Money | None = None

    @classmethod
    def from_settings(cls, settings: Any, currency: str = "USD") -> Budget:
        """The budget configured in :class:`~runctl.config.Settings`.

        Reads ``max_hourly_spend`` and ``max_total_spend`` (amounts in ``currency``;
        ``None``: no limit).
        """
        return cls(
            max_hourly_spend=_optional_money(
                getattr(settings, "max_hourly_spend", None), currency, "max_hourly_spend"
            ),
            max_total_spend=_optional_money(
                getattr(settings, "max_total_spend", None), currency, "max_total_spend"
            ),
        )

    @property
    def unlimited(self) -> bool:
        """True when no limit is set."""
        return self.max_hourly_spend is None and self.max_total_spend is None


def check_budget(
    budget: Budget,
    ledger: Ledger,
    *,
    price: Price | None,
    ttl: timedelta | None,
    now: datetime | None = None,
) -> None:
    """Raise if launching at ``price`` for up to ``ttl`` would break ``budget``.

    A launch whose price is not known beforehand (no offer) adds nothing to the
    sums, but is still refused when what runs already reaches a limit.

    Raises:
        BudgetExceededError: naming the spend so far, the launch's share and the limit.
        CurrencyMismatchError: the launch is priced in another currency than the budget.
    """
    _check_budget(budget, lambda currency: ledger.spend(currency, now=now), price, ttl)


def _check_budget(
    budget: Budget,
    spend_in: Callable[[str], Spend],
    price: Price | None,
    ttl: timedelta | None,
) -> None:
    for limit, kind in ((budget.max_hourly_spend, "hourly"), (budget.max_total_spend, "total")):
        if limit is None:
            continue
        if price is not None and price.currency != limit.currency:
            raise CurrencyMismatchError(price.currency, limit.currency)
        spend = spend_in(limit.currency)
        if kind == "hourly":
            current = spend.hourly
            extra = price.per_hour if price is not None else Money.zero(limit.currency)
            unit, setting = "/h", "max_hourly_spend"
            what = "running"
        else:
            current = spend.total
            if price is None:
                extra = Money.zero(limit.currency)
            elif ttl is not None:
                extra = price.compute_cost(ttl)
            else:
                extra = price.minimum_charge
            unit, setting = "", "max_total_spend"
            what = "spent so far"
        after = current + extra
        if after > limit or (price is None and current >= limit):
            share = "" if price is None else f" + this launch {_show(extra)}{unit}"
            raise BudgetExceededError(
                f"launch refused: {kind} spend would be {_show(after)}{unit} "
                f"({what} {_show(current)}{unit}{share}); {setting} is {_show(limit)}{unit}"
            )
