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

Searching a large list is fast because an :class:`OfferList` keeps an index,
built on first search and reused by every later one: per offer, its *kind* (the
provider, GPU, GPU count, vCPUs, RAM, spot and currency it shares with many
other offers), its region and its exact price; per price view, the offers
pre-sorted. A filter on anything but price and region is decided once per kind
(a few hundred) instead of once per offer, and a price limit on the view being
sorted by cuts the sorted order short. The snapshot's offers are indexed
straight from the snapshot file's columns, and an :class:`~runctl.models.Offer`
is only built when it is looked at, so a search that finds 10,000 offers costs
what finding them costs, not what building them would.

Prices stay :class:`~decimal.Decimal` throughout: every comparison and every
sort is exact.
"""

from __future__ import annotations

import html
import operator
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, overload

from .errors import RunctlError
from .offer_index import _SHARED, _Index, _Rows
from .offer_table import _table_rows, format_table, to_records

if TYPE_CHECKING:
    from .models import Offer, OfferQuery

__all__ = [
    "OfferList",
    "combine",
]



















class OfferList(Sequence["Offer"]):
    """Offers from one search, with what went wrong and where prices came from.

    It is a read-only sequence of :class:`~runctl.models.Offer`.

    Attributes:
        errors: provider name to the failure (a :class:`~runctl.errors.RunctlError`
            or a message) for each provider whose live offers could not be read;
            their snapshot prices are shown instead, if any.
        sources: provider name to ``"live"`` or ``"snapshot"``.
    """

    __slots__ = ("_cached_index", "_items", "errors", "sources")

    def __init__(
        self,
        offers: Iterable[Offer] = (),
        *,
        errors: Mapping[str, str | RunctlError] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        items: Sequence[Offer]
        if isinstance(offers, OfferList):
            items = offers._items
        elif isinstance(offers, _Rows):
            items = offers
        else:
            items = tuple(offers)
        self._items: Sequence[Offer] = items
        self.errors: Mapping[str, str | RunctlError] = dict(errors or {})
        self.sources: Mapping[str, str] = dict(sources or {})
        self._cached_index: _Index | None = None

    @classmethod
    def _of_index(cls, index: _Index) -> OfferList:
        """All offers of ``index``, searched through it (how the snapshot holds its offers)."""
        listed = cls(_Rows(index, range(index.n)))
        listed._cached_index = index
        return listed

    def _index(self) -> _Index:
        if self._cached_index is None:
            items = self._items
            if isinstance(items, _Rows) and not items.extra:
                of = items.of
                self._cached_index = of if items.whole() else of.subset(items.rows)
            else:
                self._cached_index = _Index.from_offers(tuple(items))
        return self._cached_index

    @overload
    def __getitem__(self, i: int) -> Offer: ...
    @overload
    def __getitem__(self, i: slice) -> OfferList: ...
    def __getitem__(self, i: int | slice) -> Offer | OfferList:
        if isinstance(i, slice):
            return OfferList(self._items[i], errors=self.errors, sources=self.sources)
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Offer]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OfferList):
            return list(self) == list(other) and dict(self.errors) == dict(other.errors)
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        extra = f", errors={sorted(self.errors)}" if self.errors else ""
        return f"<OfferList of {len(self)} offers{extra}>"

    def select(self, query: OfferQuery) -> OfferList:
        """A narrower search over these offers (keeps ``errors`` and ``sources``)."""
        index = self._index()
        return OfferList(
            _Rows(index, index.search(query)), errors=self.errors, sources=self.sources
        )

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per offer, e.g. for ``pandas.DataFrame(offers.to_records())``."""
        return to_records(self)

    def format_table(self, *, max_rows: int | None = 50) -> str:
        """A plain-text table, cheapest first as searched, for terminals."""
        text = format_table(self, max_rows=max_rows)
        if self.errors:
            text += "\nlive prices unavailable, snapshot prices shown instead:"
            for name, e in sorted(self.errors.items()):
                text += f"\n  {name}: {_error_text(e, name)}"
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
        for note in sorted({o.note for o in self[: len(rows)] if o.note}):
            parts.append(f"<p>* {html.escape(note)}</p>")
        if self.errors:
            items = "".join(
                f"<li>{html.escape(name)}: {html.escape(_error_text(e, name))}</li>"
                for name, e in sorted(self.errors.items())
            )
            parts.append(f"<p>Live prices unavailable (snapshot shown):</p><ul>{items}</ul>")
        return "".join(parts)


def _error_text(error: str | BaseException, provider: str = "") -> str:
    text = error if isinstance(error, str) else str(error)
    # Provider errors already start with the provider's name; say it once.
    prefix = f"{provider}: "
    return text[len(prefix):] if provider and text.startswith(prefix) else text






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

    Returns:
        A new list. :meth:`OfferList.select` is cheaper for large results: it
        builds each offer only when it is looked at.
    """
    index = offers._index() if isinstance(offers, OfferList) else _Index.from_offers(offers)
    return index.offers(index.search(query))


def _snapshot_index(snapshot: Sequence[Offer]) -> tuple[_Index, bytearray | None]:
    """An index of ``snapshot`` and which of its positions to search (``None``: all).

    The snapshot's own :class:`OfferList` (``load_snapshot(...).offers``), a slice
    of it, or a plain list of its offers in order (what a caller filtering it by
    provider passes) all reuse the snapshot's index; anything else is indexed here.
    """
    if isinstance(snapshot, OfferList):
        items = snapshot._items
        if isinstance(items, _Rows) and not items.extra:
            if items.whole():
                return items.of, None
            rows: Sequence[int] = items.rows
            if (isinstance(rows, range) and rows.step == 1) or (
                rows and all(map(operator.lt, rows, islice(rows, 1, None)))
            ):
                return items.of, _mask(items.of.n, rows)
        return snapshot._index(), None
    for index in list(_SHARED):
        found = index.rows_of(snapshot)
        if found is not None:
            if len(found) == index.n:  # n ascending positions below n: all of them
                return index, None
            return index, _mask(index.n, found)
    return _Index.from_offers(snapshot), None


def _mask(n: int, rows: Iterable[int]) -> bytearray:
    mask = bytearray(n)
    for row in rows:
        mask[row] = 1
    return mask


def _merge(
    first: _Index, first_rows: list[int], second: _Index, second_rows: list[int], query: OfferQuery
) -> _Rows:
    """Two searches' results as one, in the view's order; ``first`` wins ties."""
    if not first_rows:
        return _Rows(second, second_rows)
    if not second_rows:
        return _Rows(first, first_rows)
    extra = first.offers(first_rows)
    first_values = first.view(query.sort).by_row
    second_values: list[Any] = list(map(second.view(query.sort).by_row.__getitem__, second_rows))
    try:
        valued = second_values.index(None)  # values without a price view come last
    except ValueError:
        valued = len(second_values)
    merged: list[int] = []
    start = 0
    for j, row in enumerate(first_rows):
        value = first_values[row]
        at = valued if value is None else bisect_left(second_values, value, start, valued)
        merged += second_rows[start:at]
        merged.append(~j)
        start = at
    merged += second_rows[start:]
    if query.limit is not None:
        del merged[query.limit:]
    return _Rows(second, merged, extra)


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

    The snapshot is searched through its own index, built once per process, when
    ``snapshot`` is ``load_snapshot(settings).offers``, a slice of it, or a list of
    its offers in their order; only the live offers are indexed per call.

    Args:
        live: provider name to the offers it returned.
        failures: provider name to the exception its ``offers()`` raised.
        snapshot: the snapshot's offers (``load_snapshot(settings).offers``).
        query: the search to apply to the merged offers.
    """
    answered = frozenset(live)
    index, within = _snapshot_index(snapshot)
    sources: dict[str, str] = dict.fromkeys(live, "live")
    for name in index.providers(within):
        if name not in answered:
            sources.setdefault(name, "snapshot")
    errors: dict[str, str | RunctlError] = {
        name: e if isinstance(e, RunctlError) else f"{type(e).__name__}: {e}"
        for name, e in failures.items()
    }
    if query.providers:
        wanted = set(query.providers)
        sources = {name: src for name, src in sources.items() if name in wanted}
    found = index.search(query, exclude=answered, within=within)
    live_offers = [offer for offers in live.values() for offer in offers]
    if live_offers:
        live_index = _Index.from_offers(live_offers)
        rows = _merge(live_index, live_index.search(query), index, found, query)
    else:
        rows = _Rows(index, found)
    return OfferList(rows, errors=errors, sources=sources)








