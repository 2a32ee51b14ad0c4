"""Offers as people and tools read them: a text table, and plain records.

:func:`format_table` is what ``runctl offers`` prints and what an
:class:`~runctl.offers.OfferList` shows as text; :func:`to_records` gives one plain
dict per offer (JSON-ready strings for money) for pandas, CSV or a UI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cost import Money
    from .models import Offer

__all__ = ["format_table", "to_records"]


def _money(amount: Money | None, places: int = 2) -> str:
    if amount is None:
        return "-"
    return f"{amount.rounded(places).amount:f}"


def _table_rows(
    offers: Sequence[Offer], *, max_rows: int | None
) -> tuple[list[str], list[list[str]]]:
    header = [
        "provider", "instance type", "gpus", "gpu mem GB", "vcpus", "ram GB", "region",
        "spot", "per hour", "per GPU-hour", "per BF16 PFLOP-hour", "source",
    ]
    rows: list[list[str]] = []
    shown = offers if max_rows is None else offers[:max_rows]
    for o in shown:
        gpus = "-" if o.gpu is None else f"{o.gpu_count}x {o.gpu.name}"
        currency = o.price.currency
        rows.append([
            o.provider,
            f"{o.instance_type}*" if o.note else o.instance_type,
            gpus,
            "-" if o.gpu_memory_gb is None else f"{o.gpu_memory_gb:g}",
            "-" if o.vcpus is None else str(o.vcpus),
            "-" if o.memory_gb is None else f"{o.memory_gb:g}",
            f"{o.region} ({o.zone})" if o.region and o.zone else (o.region or o.zone or "-"),
            "spot" if o.spot else "",
            f"{_money(o.per_hour, 4)} {currency}",
            _money(o.per_gpu_hour, 4),
            _money(o.per_bf16_pflop_hour, 2),
            o.price.source,
        ])
    return header, rows


def format_table(offers: Sequence[Offer], *, max_rows: int | None = 50) -> str:
    """Offers as an aligned plain-text table (for the CLI).

    Args:
        offers: the offers, in the order to show them.
        max_rows: show at most this many (``None``: all); a last line says how many
            were left out.
    """
    header, rows = _table_rows(offers, max_rows=max_rows)
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if len(offers) > len(rows):
        lines.append(f"... {len(offers) - len(rows)} more")
    notes = sorted({o.note for o in offers[: len(rows)] if o.note})
    lines += [f"* {note}" for note in notes]
    if not rows:
        lines.append("(no offers)")
    return "\n".join(lines)


def to_records(offers: Iterable[Offer]) -> list[dict[str, Any]]:
    """One flat dict per offer: plain values, amounts as :class:`~decimal.Decimal`.

    Keys: provider, instance_type, gpu (display name), gpu_model, gpu_variant,
    gpu_count, gpu_memory_gb (per GPU), bf16_tflops (per GPU), vcpus, memory_gb,
    region, zone, spot, available, currency, per_hour, per_gpu_hour,
    per_gpu_memory_gb_hour, per_bf16_pflop_hour, billing_increment_s,
    minimum_duration_s, source, observed_at, note.
    """
    records = []
    for o in offers:
        gpu = o.gpu
        price = o.price

        def amount(m: Money | None) -> Decimal | None:
            return None if m is None else m.amount

        records.append({
            "provider": o.provider,
            "instance_type": o.instance_type,
            "gpu": None if gpu is None else gpu.name,
            "gpu_model": None if gpu is None else gpu.model,
            "gpu_variant": None if gpu is None else gpu.variant,
            "gpu_count": o.gpu_count,
            "gpu_memory_gb": None if gpu is None else gpu.memory_gb,
            "bf16_tflops": None if gpu is None else gpu.bf16_tflops,
            "vcpus": o.vcpus,
            "memory_gb": o.memory_gb,
            "region": o.region,
            "zone": o.zone,
            "spot": o.spot,
            "available": o.available,
            "currency": price.currency,
            "per_hour": price.per_hour.amount,
            "per_gpu_hour": amount(o.per_gpu_hour),
            "per_gpu_memory_gb_hour": amount(o.per_gpu_memory_gb_hour),
            "per_bf16_pflop_hour": amount(o.per_bf16_pflop_hour),
            "billing_increment_s": price.billing_increment.total_seconds(),
            "minimum_duration_s": price.minimum_duration.total_seconds(),
            "source": price.source,
            "observed_at": price.observed_at,
            "note": o.note,
        })
    return records
