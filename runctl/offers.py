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

import gc
import html
import operator
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, getcontext
from itertools import compress, islice
from typing import TYPE_CHECKING, Any, overload

from .errors import RunctlError
from .gpus import gpu_matches

if TYPE_CHECKING:
    from .cost import Money
    from .models import Gpu, Offer, OfferQuery

__all__ = ["OfferList", "combine", "format_table", "select", "to_records"]

_VIEWS = ("per_hour", "per_gpu_hour", "per_gpu_memory_gb_hour", "per_bf16_pflop_hour")
#: A per-GPU price limit for machines without GPUs: no amount is at or below it.
_NEVER = Decimal("-Infinity")


def _divisor(view: str, gpu: Gpu | None, gpu_count: int) -> Decimal | int | None:
    """What ``per_hour`` is divided by for ``view``; ``None`` when the view has no value.

    The same expressions as the :class:`~runctl.models.Offer` properties, so the
    quotient is the very Decimal the property returns (test_offers checks it).
    """
    from .cost import _to_decimal

    if view == "per_gpu_hour":
        return None if gpu_count == 0 else gpu_count
    if view == "per_gpu_memory_gb_hour":
        memory = None if gpu is None or gpu.memory_gb is None else gpu.memory_gb * gpu_count
        return _to_decimal(memory) if memory else None
    if view == "per_bf16_pflop_hour":
        if gpu is None or not gpu.bf16_tflops or gpu_count == 0:
            return None
        divisor: Decimal = _to_decimal(gpu.bf16_tflops) * gpu_count / 1000
        return divisor
    raise ValueError(f"unknown price view {view!r}")


class _Kinds:
    """Distinct kinds of offer: everything but region and price that a filter looks at.

    ``spot`` is 1 for ``price.spot is True``, 0 for ``is False`` and 2 for anything
    else, so the filter keeps its identity test.
    """

    def __init__(self) -> None:
        self.provider: list[str] = []
        self.gpu: list[Gpu | None] = []
        self.gpu_count: list[int] = []
        self.vcpus: list[int | None] = []
        self.memory_gb: list[float | None] = []
        self.spot: list[int] = []
        self.currency: list[str] = []
        self._divisors: dict[str, list[Decimal | int | None]] = {}

    def add(
        self, provider: str, gpu: Gpu | None, gpu_count: int, vcpus: int | None,
        memory_gb: float | None, spot: object, currency: str,
    ) -> int:
        """Append a kind and return its number."""
        self.provider.append(provider)
        self.gpu.append(gpu)
        self.gpu_count.append(gpu_count)
        self.vcpus.append(vcpus)
        self.memory_gb.append(memory_gb)
        self.spot.append(1 if spot is True else 0 if spot is False else 2)
        self.currency.append(currency)
        return len(self.provider) - 1

    def __len__(self) -> int:
        return len(self.provider)

    def divisors(self, view: str) -> list[Decimal | int | None]:
        found = self._divisors.get(view)
        if found is None:
            found = self._divisors[view] = [
                _divisor(view, gpu, n) for gpu, n in zip(self.gpu, self.gpu_count, strict=True)
            ]
        return found


class _View:
    """The offers sorted by one price view, cheapest first, those without a value last."""

    __slots__ = ("by_row", "kinds", "order", "values")

    def __init__(self, index: _Index, name: str) -> None:
        amount = index.amount
        by_row: Sequence[Decimal | None]
        if name == "per_hour":
            by_row = amount
            valued = list(range(index.n))
            unvalued: list[int] = []
        else:
            divisors = index.kinds.divisors(name)
            per_row = map(divisors.__getitem__, index.kind)
            by_row = [None if d is None else a / d for a, d in zip(amount, per_row)]
            valued = [i for i, v in enumerate(by_row) if v is not None]
            unvalued = (
                [i for i, v in enumerate(by_row) if v is None] if len(valued) < index.n else []
            )
        values: list[Decimal] = list(map(by_row.__getitem__, valued))  # type: ignore[arg-type]
        # Sort by float first (fast), then stably by the exact Decimal. The float of a
        # Decimal is monotone, so the second pass only reorders values that collided
        # in float, and on an already sorted list it is one linear pass. Equal prices
        # keep their input order, and the result is exactly the Decimal order.
        floats = list(map(float, values))
        positions = list(range(len(valued)))
        positions.sort(key=floats.__getitem__)
        positions.sort(key=values.__getitem__)
        self.order: list[int] = [valued[p] for p in positions] + unvalued
        self.values: list[Decimal] = [values[p] for p in positions]
        self.by_row = by_row
        self.kinds: list[int] = list(map(index.kind.__getitem__, self.order))


#: Indexes whose materialised offers can be recognised by identity (the snapshot's),
#: so that combine() given a plain list of them reuses the index.
_SHARED: weakref.WeakSet[_Index] = weakref.WeakSet()


class _Index:
    """Columns of an offer list that every search needs; offers built on demand.

    Args:
        kind: per offer, its number in ``kinds``.
        region: per offer, its region's position in ``region_names``.
        region_names: region names (``None`` or ``""`` for none).
        amount: per offer, ``price.per_hour.amount``.
        kinds: the distinct kinds.
        make: builds the offer at a position (called at most once per position).
        shared: remember built offers by identity (see :func:`combine`).
    """

    def __init__(
        self,
        *,
        kind: Sequence[int],
        region: Sequence[int],
        region_names: Sequence[str | None],
        amount: Sequence[Decimal],
        kinds: _Kinds,
        make: Callable[[int], Offer],
        cache: list[Offer | None] | None = None,
        shared: bool = False,
    ) -> None:
        self.n = len(kind)
        self.kind = kind
        self.region = region
        self.region_names = region_names
        self.amount = amount
        self.kinds = kinds
        self._make = make
        self._cache: list[Offer | None] = [None] * self.n if cache is None else cache
        self._row_of: dict[int, int] | None = {} if shared else None
        if shared:
            _SHARED.add(self)
        self._views: dict[str, _View] = {}
        self._region_ids: set[int] | None = None
        self._region_masks: dict[tuple[str, ...], list[bool]] = {}
        self._providers: list[str] | None = None
        self.currencies = frozenset(kinds.currency)

    @classmethod
    def from_offers(cls, offers: Sequence[Offer]) -> _Index:
        """Index offer objects (a live answer, or any list a user passes)."""
        kinds = _Kinds()
        kind_of: dict[tuple[Any, ...], int] = {}
        region_of: dict[str | None, int] = {}
        names: list[str | None] = []
        kind: list[int] = []
        region: list[int] = []
        amount: list[Decimal] = []
        for o in offers:
            price = o.price
            money = price.per_hour
            # The GPU by identity: hashing a Gpu hashes all its fields, and offers
            # from one source share their Gpu objects anyway.
            key = (
                o.provider, id(o.gpu), o.gpu_count, o.vcpus, o.memory_gb,
                1 if price.spot is True else 0 if price.spot is False else 2, money.currency,
            )
            k = kind_of.get(key)
            if k is None:
                k = kind_of[key] = kinds.add(
                    o.provider, o.gpu, o.gpu_count, o.vcpus, o.memory_gb, price.spot,
                    money.currency,
                )
            kind.append(k)
            r = region_of.get(o.region)
            if r is None:
                r = region_of[o.region] = len(names)
                names.append(o.region)
            region.append(r)
            amount.append(money.amount)
        listed = list(offers)
        return cls(
            kind=kind, region=region, region_names=names, amount=amount, kinds=kinds,
            make=listed.__getitem__, cache=list(listed),
        )

    def subset(self, rows: Sequence[int]) -> _Index:
        """An index of some of these offers, in the order of ``rows``."""
        return _Index(
            kind=list(map(self.kind.__getitem__, rows)),
            region=list(map(self.region.__getitem__, rows)),
            region_names=self.region_names,
            amount=list(map(self.amount.__getitem__, rows)),
            kinds=self.kinds,
            make=lambda i: self.offer(rows[i]),
        )

    def offer(self, row: int) -> Offer:
        """The offer at ``row``, built the first time it is asked for."""
        found = self._cache[row]
        if found is None:
            found = self._cache[row] = self._make(row)
            if self._row_of is not None:
                self._row_of[id(found)] = row
        return found

    def offers(self, rows: Sequence[int]) -> list[Offer]:
        """The offers at ``rows``, building those not built yet in one go."""
        cache = self._cache
        if None in map(cache.__getitem__, rows):
            # The new offers hold no reference cycles; a collection pass every few
            # hundred of them would find nothing and costs a third of the time.
            paused = gc.isenabled()
            gc.disable()
            try:
                for row in rows:
                    if cache[row] is None:
                        self.offer(row)
            finally:
                if paused:
                    gc.enable()
        return list(map(cache.__getitem__, rows))  # type: ignore[arg-type]

    def iter_offers(self, rows: Sequence[int]) -> Iterator[Offer]:
        """The offers at ``rows``, built a chunk at a time as the iteration reaches them."""
        for start in range(0, len(rows), 2048):
            yield from self.offers(rows[start : start + 2048])

    def rows_of(self, offers: Sequence[Offer]) -> list[int] | None:
        """The positions of ``offers`` if they are offers of this index in index order."""
        row_of = self._row_of
        if row_of is None or not offers:
            return None
        found = list(map(row_of.get, map(id, offers)))
        if None in found:
            return None
        rows: list[int] = found  # type: ignore[assignment]
        return rows if all(map(operator.lt, rows, islice(rows, 1, None))) else None

    def view(self, name: str) -> _View:
        found = self._views.get(name)
        if found is None:
            found = self._views[name] = _View(self, name)
        return found

    def providers(self, within: bytearray | None = None) -> list[str]:
        """The providers with offers here, in order of first appearance."""
        if within is None and self._providers is not None:
            return self._providers
        present = set(self.kind if within is None else compress(self.kind, within))
        names = list(dict.fromkeys(self.kinds.provider[k] for k in sorted(present)))
        if within is None:
            self._providers = names
        return names

    def _region_mask(self, prefixes: tuple[str, ...]) -> list[bool]:
        found = self._region_masks.get(prefixes)
        if found is None:
            if self._region_ids is None:
                self._region_ids = set(self.region)
            names = self.region_names
            found = [False] * len(names)
            for r in self._region_ids:
                found[r] = (names[r] or "").lower().startswith(prefixes)
            if len(self._region_masks) > 32:
                self._region_masks.clear()
            self._region_masks[prefixes] = found
        return found

    def _kind_mask(self, query: OfferQuery, exclude: frozenset[str]) -> list[bool] | None:
        """Per kind, whether it passes every filter but price and region (``None``: all do)."""
        k = self.kinds
        checks: list[Callable[[int], bool]] = []
        if query.providers:
            wanted = frozenset(query.providers)
            checks.append(lambda i: k.provider[i] in wanted)
        if exclude:
            checks.append(lambda i: k.provider[i] not in exclude)
        if query.gpu is not None:
            name = query.gpu
            gpu_ok: dict[int, bool] = {}

            def gpu_test(i: int) -> bool:
                gpu = k.gpu[i]
                if gpu is None:
                    return False
                found = gpu_ok.get(id(gpu))
                if found is None:
                    found = gpu_ok[id(gpu)] = gpu_matches(name, gpu)
                return found

            checks.append(gpu_test)
        if query.spot is not None:
            spot = 1 if query.spot else 0
            checks.append(lambda i: k.spot[i] == spot)
        if query.count is not None:
            count = query.count
            checks.append(lambda i: k.gpu_count[i] == count)
        if query.min_gpu_memory_gb is not None:
            gmem = query.min_gpu_memory_gb

            def gmem_test(i: int) -> bool:
                gpu = k.gpu[i]
                return gpu is not None and (gpu.memory_gb or 0) >= gmem

            checks.append(gmem_test)
        if query.min_vcpus is not None:
            vcpus = query.min_vcpus
            checks.append(lambda i: (k.vcpus[i] or 0) >= vcpus)
        if query.min_memory_gb is not None:
            mem = query.min_memory_gb
            checks.append(lambda i: (k.memory_gb[i] or 0) >= mem)
        currency = query.currency
        if self.currencies != {currency}:
            checks.append(lambda i: k.currency[i] == currency)
        if not checks:
            return None
        ok = [True] * len(k)
        for check in checks:
            ok = [passed and check(i) for i, passed in enumerate(ok)]
        return ok

    def search(
        self,
        query: OfferQuery,
        *,
        exclude: frozenset[str] = frozenset(),
        within: bytearray | None = None,
    ) -> list[int]:
        """Positions of the offers matching ``query``, in order.

        Args:
            query: the search.
            exclude: leave out these providers' offers.
            within: only positions where this is non-zero.
        """
        view = self.view(query.sort)
        order, values, kinds_in_order = view.order, view.values, view.kinds
        end = len(order)
        ok_kind = self._kind_mask(query, exclude)
        # Tests of single offers, each a C-level pass over what the previous one kept.
        tests: list[Callable[[list[int]], list[int]]] = []
        if within is not None:
            tests.append(lambda rows: list(compress(rows, map(within.__getitem__, rows))))
        if query.regions:
            ok_region = self._region_mask(tuple(r.lower() for r in query.regions))
            region = self.region
            tests.append(lambda rows: list(
                compress(rows, map(ok_region.__getitem__, map(region.__getitem__, rows)))
            ))
        amount = self.amount
        top = query.max_per_hour
        if top is not None:
            if query.sort == "per_hour":
                # The view's values are the amounts themselves: an exact cut.
                end = bisect_right(values, top)
            else:
                tests.append(lambda rows: list(
                    compress(rows, map(top.__ge__, map(amount.__getitem__, rows)))
                ))
        top_gpu = query.max_per_gpu_hour
        if top_gpu is not None:
            if query.sort == "per_gpu_hour":
                end = min(end, _cut(values, top_gpu))
            # amount <= limit * gpu_count, as Offer.per_gpu_hour would be compared.
            limits = [top_gpu * n if n > 0 else _NEVER for n in self.kinds.gpu_count]
            kind = self.kind
            tests.append(lambda rows: list(compress(rows, map(
                operator.le,
                map(amount.__getitem__, rows),
                map(limits.__getitem__, map(kind.__getitem__, rows)),
            ))))

        def run(start: int, stop: int) -> list[int]:
            rows = order[start:stop]
            if ok_kind is not None:
                rows = list(compress(rows, map(ok_kind.__getitem__, kinds_in_order[start:stop])))
            for test in tests:
                if not rows:
                    break
                rows = test(rows)
            return rows

        limit = query.limit
        if limit is None:
            return run(0, end)
        # Walk the sorted order in growing chunks and stop once ``limit`` are found.
        found: list[int] = []
        start, step = 0, max(1024, 16 * limit)
        while start < end and len(found) < limit:
            stop = min(end, start + step)
            found += run(start, stop)
            start, step = stop, step * 4
        return found[:limit]


def _cut(values: list[Decimal], top: Decimal) -> int:
    """How much of the sorted per-GPU-hour ``values`` can be at or below ``top``.

    A view value is ``amount / gpu_count`` rounded to the context precision, and
    the exact test (``amount <= top * gpu_count``) rounds too, so the cut allows
    a margin far wider than both roundings; rows inside it are still tested exactly.
    """
    prec = getcontext().prec
    if prec < 8:
        return len(values)
    return bisect_right(values, top * (1 + Decimal(10) ** (3 - prec)))


class _Rows(Sequence["Offer"]):
    """Offers of an index at some positions, built when looked at.

    A negative position ``~j`` stands for ``extra[j]`` (live offers merged in).
    """

    __slots__ = ("extra", "of", "rows")

    def __init__(self, of: _Index, rows: Sequence[int], extra: Sequence[Offer] = ()) -> None:
        self.of = of
        self.rows = rows
        self.extra = extra

    def whole(self) -> bool:
        return not self.extra and isinstance(self.rows, range) and self.rows == range(self.of.n)

    def _get(self, row: int) -> Offer:
        return self.of.offer(row) if row >= 0 else self.extra[~row]

    @overload
    def __getitem__(self, i: int) -> Offer: ...
    @overload
    def __getitem__(self, i: slice) -> _Rows: ...
    def __getitem__(self, i: int | slice) -> Offer | _Rows:
        if isinstance(i, slice):
            return _Rows(self.of, self.rows[i], self.extra)
        return self._get(self.rows[i])

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Offer]:
        if self.extra:
            return map(self._get, self.rows)
        return self.of.iter_offers(self.rows)


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
