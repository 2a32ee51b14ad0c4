"""Searching offers across providers: filter, sort by any price view, merge live with snapshot.

:func:`select` applies an :class:`~runctl.models.OfferQuery` to offers.
:func:`combine` merges live answers with the offline snapshot without counting a
provider twice, and returns an :class:`OfferList`: a plain sequence of offers
that also says which providers failed (``errors``), where each provider's
prices came from (``sources``), and renders itself as a notebook table, a text
table or records for pandas.

Prices are only compared within ``OfferQuery.currency``: an offer priced in
another currency is left out of a search rather than compared as if the
numbers were the same unit (convert it first with :meth:`runctl.Price.convert`).

Searching a large list is fast because an :class:`OfferList` keeps a small
index (each distinct GPU matched once, each price view computed once and
pre-sorted), built on first search and reused by every later one.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, overload

from .errors import RunctlError
from .gpus import gpu_matches

if TYPE_CHECKING:
    from .cost import Money
    from .models import Gpu, Offer, OfferQuery

__all__ = ["OfferList", "combine", "format_table", "select", "to_records"]

_VIEWS = ("per_hour", "per_gpu_hour", "per_gpu_memory_gb_hour", "per_bf16_pflop_hour")


class _Index:
    """Columns of an offer list that every search needs, computed once."""

    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = offers
        gpu_ids: dict[Gpu, int] = {}
        self.gpus: list[Gpu] = []
        self.gpu_of: list[int] = []
        for offer in offers:
            gpu = offer.gpu
            if gpu is None:
                self.gpu_of.append(-1)
                continue
            found = gpu_ids.get(gpu)
            if found is None:
                found = gpu_ids[gpu] = len(self.gpus)
                self.gpus.append(gpu)
            self.gpu_of.append(found)
        self.currencies = frozenset(o.price.per_hour.currency for o in offers)
        self._views: dict[str, list[Decimal | None]] = {}
        self._orders: dict[str, list[int]] = {}

    def view(self, name: str) -> list[Decimal | None]:
        found = self._views.get(name)
        if found is None:
            values: list[Decimal | None] = []
            for offer in self.offers:
                money: Money | None = getattr(offer, name)
                values.append(None if money is None else money.amount)
            found = self._views[name] = values
        return found

    def order(self, name: str) -> list[int]:
        """Offer positions, cheapest first under view ``name``; offers without the view last."""
        found = self._orders.get(name)
        if found is None:
            values = self.view(name)
            with_value = [(v, i) for i, v in enumerate(values) if v is not None]
            # (value, position) pairs: equal prices keep their input order.
            with_value.sort()
            found = [i for _, i in with_value] + [i for i, v in enumerate(values) if v is None]
            self._orders[name] = found
        return found


def _checks(index: _Index, query: OfferQuery) -> list[Callable[[Offer], bool]]:
    """One test per filter of ``query``, most selective first."""
    checks: list[Callable[[Offer], bool]] = []
    if query.providers:
        wanted = frozenset(query.providers)
        checks.append(lambda o: o.provider in wanted)
    if query.spot is not None:
        spot = query.spot
        checks.append(lambda o: o.price.spot is spot)
    if query.count is not None:
        count = query.count
        checks.append(lambda o: o.gpu_count == count)
    if query.min_gpu_memory_gb is not None:
        gmem = query.min_gpu_memory_gb
        checks.append(lambda o: o.gpu is not None and (o.gpu.memory_gb or 0) >= gmem)
    if query.min_vcpus is not None:
        vcpus = query.min_vcpus
        checks.append(lambda o: (o.vcpus or 0) >= vcpus)
    if query.min_memory_gb is not None:
        mem = query.min_memory_gb
        checks.append(lambda o: (o.memory_gb or 0) >= mem)
    if query.regions:
        prefixes = tuple(r.lower() for r in query.regions)
        checks.append(lambda o: (o.region or "").lower().startswith(prefixes))
    currency = query.currency
    if index.currencies != {currency}:
        checks.append(lambda o: o.price.per_hour.currency == currency)
    if query.max_per_hour is not None:
        top = query.max_per_hour
        checks.append(lambda o: o.price.per_hour.amount <= top)
    if query.max_per_gpu_hour is not None:
        top_gpu = query.max_per_gpu_hour
        checks.append(
            lambda o: o.gpu_count > 0 and o.price.per_hour.amount <= top_gpu * o.gpu_count
        )
    return checks


def _search(index: _Index, query: OfferQuery) -> list[Offer]:
    offers = index.offers
    order = index.order(query.sort)
    allowed_gpu: list[bool] | None = None
    if query.gpu is not None:
        wanted = query.gpu
        allowed_gpu = [gpu_matches(wanted, gpu) for gpu in index.gpus]
        gpu_of = index.gpu_of
        # Narrow by GPU first: it is cheap (one list lookup) and usually the most selective.
        order = [i for i in order if gpu_of[i] >= 0 and allowed_gpu[gpu_of[i]]]
    checks = _checks(index, query)
    limit = query.limit
    if not checks:
        picked = order if limit is None else order[:limit]
        return [offers[i] for i in picked]
    if limit is not None and len(checks) == 1:
        # Walk the sorted order and stop at ``limit`` matches.
        (test,) = checks
        out: list[Offer] = []
        for i in order:
            if test(offers[i]):
                out.append(offers[i])
                if len(out) >= limit:
                    break
        return out
    # One tight pass per filter, each over what the previous one kept, is several
    # times faster in CPython than testing every filter on every offer in turn.
    found = [offers[i] for i in order]
    for test in checks:
        found = [o for o in found if test(o)]
    return found if limit is None else found[:limit]


def select(offers: Sequence[Offer], query: OfferQuery) -> list[Offer]:
    """The offers matching ``query``, cheapest first under ``query.sort``, at most ``query.limit``.

    Filters: GPU model or family (``"H100"`` matches SXM, PCIe and NVL; ``"A100-80GB"``
    only 80 GB A100s), exact GPU count, minimum GPU memory, vCPUs and RAM, maximum
    price per hour and per GPU-hour (in ``query.currency``), spot or on-demand,
    region prefixes and providers. Offers without a value for the sort view (e.g.
    no known BF16 throughput) come last. Ties keep the input order.

    Args:
        offers: offers to search; an :class:`OfferList` is searched through its
            cached index, any other sequence is indexed for this call.
        query: what to look for.
    """
    index = offers._index() if isinstance(offers, OfferList) else _Index(tuple(offers))
    return _search(index, query)


class OfferList(Sequence["Offer"]):
    """Offers from one search, with what went wrong and where prices came from.

    It is a read-only sequence of :class:`~runctl.models.Offer`.

    Attributes:
        errors: provider name to the failure (a :class:`~runctl.errors.RunctlError`
            or a message) for each provider whose live offers could not be read;
            their snapshot prices are shown instead, if any.
        sources: provider name to ``"live"`` or ``"snapshot"``.
    """

    __slots__ = ("_cached_index", "_offers", "errors", "sources")

    def __init__(
        self,
        offers: Iterable[Offer] = (),
        *,
        errors: Mapping[str, str | RunctlError] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self._offers: tuple[Offer, ...] = tuple(offers)
        self.errors: Mapping[str, str | RunctlError] = dict(errors or {})
        self.sources: Mapping[str, str] = dict(sources or {})
        self._cached_index: _Index | None = None

    def _index(self) -> _Index:
        if self._cached_index is None:
            self._cached_index = _Index(self._offers)
        return self._cached_index

    @overload
    def __getitem__(self, i: int) -> Offer: ...
    @overload
    def __getitem__(self, i: slice) -> OfferList: ...
    def __getitem__(self, i: int | slice) -> Offer | OfferList:
        if isinstance(i, slice):
            return OfferList(self._offers[i], errors=self.errors, sources=self.sources)
        return self._offers[i]

    def __len__(self) -> int:
        return len(self._offers)

    def __iter__(self) -> Iterator[Offer]:
        return iter(self._offers)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OfferList):
            return self._offers == other._offers and dict(self.errors) == dict(other.errors)
        if isinstance(other, (list, tuple)):
            return list(self._offers) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        extra = f", errors={sorted(self.errors)}" if self.errors else ""
        return f"<OfferList of {len(self)} offers{extra}>"

    def select(self, query: OfferQuery) -> OfferList:
        """A narrower search over these offers (keeps ``errors`` and ``sources``)."""
        return OfferList(select(self, query), errors=self.errors, sources=self.sources)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per offer, e.g. for ``pandas.DataFrame(offers.to_records())``."""
        return to_records(self)

    def format_table(self, *, max_rows: int | None = 50) -> str:
        """A plain-text table, cheapest first as searched, for terminals."""
        text = format_table(self, max_rows=max_rows)
        if self.errors:
            failed = "; ".join(
                f"{name}: {_error_text(e)}" for name, e in sorted(self.errors.items())
            )
            text += f"\nlive prices unavailable (snapshot shown): {failed}"
        return text

    def __str__(self) -> str:
        return self.format_table()

    def _repr_html_(self) -> str:
        """The offers as an HTML table, for Jupyter. Every value is escaped."""
        header, rows = _table_rows(self, max_rows=200)
        parts = ["<table>", "<thead><tr>"]
        parts += [f"<th>{html.escape(h)}</th>" for h in header]
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
        if len(self) > len(rows):
            parts.append(f"<p>{len(rows)} of {len(self)} offers shown.</p>")
        if self.errors:
            items = "".join(
                f"<li>{html.escape(name)}: {html.escape(_error_text(e))}</li>"
                for name, e in sorted(self.errors.items())
            )
            parts.append(f"<p>Live prices unavailable (snapshot shown):</p><ul>{items}</ul>")
        return "".join(parts)


def _error_text(error: str | BaseException) -> str:
    return error if isinstance(error, str) else str(error)


def combine(
    live: Mapping[str, Sequence[Offer]],
    failures: Mapping[str, BaseException],
    snapshot: Sequence[Offer],
    query: OfferQuery,
) -> OfferList:
    """Merge live offers with the snapshot's, then search them with ``query``.

    A provider that answered live replaces all of its snapshot offers (so nothing
    is counted twice); a provider that failed keeps its snapshot offers and is
    listed in ``errors``; providers not asked at all keep their snapshot offers.

    Args:
        live: provider name to the offers it returned.
        failures: provider name to the exception its ``offers()`` raised.
        snapshot: the snapshot's offers (``load_snapshot(settings).offers``).
        query: the search to apply to the merged offers.
    """
    answered = set(live)
    merged: list[Offer] = [offer for offers in live.values() for offer in offers]
    sources: dict[str, str] = dict.fromkeys(answered, "live")
    for offer in snapshot:
        if offer.provider not in answered:
            merged.append(offer)
            sources.setdefault(offer.provider, "snapshot")
    errors: dict[str, str | RunctlError] = {
        name: e if isinstance(e, RunctlError) else f"{type(e).__name__}: {e}"
        for name, e in failures.items()
    }
    if query.providers:
        wanted = set(query.providers)
        sources = {name: src for name, src in sources.items() if name in wanted}
    return OfferList(select(merged, query), errors=errors, sources=sources)


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
            o.instance_type,
            gpus,
            "-" if o.gpu_memory_gb is None else f"{o.gpu_memory_gb:g}",
            "-" if o.vcpus is None else str(o.vcpus),
            "-" if o.memory_gb is None else f"{o.memory_gb:g}",
            o.region or "-",
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
    if not rows:
        lines.append("(no offers)")
    return "\n".join(lines)


def to_records(offers: Iterable[Offer]) -> list[dict[str, Any]]:
    """One flat dict per offer: plain values, amounts as :class:`~decimal.Decimal`.

    Keys: provider, instance_type, gpu (display name), gpu_model, gpu_variant,
    gpu_count, gpu_memory_gb (per GPU), bf16_tflops (per GPU), vcpus, memory_gb,
    region, zone, spot, available, currency, per_hour, per_gpu_hour,
    per_gpu_memory_gb_hour, per_bf16_pflop_hour, billing_increment_s,
    minimum_duration_s, source, observed_at.
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
        })
    return records
