"""The offer index: columnar, sorted price views that a query filters without copying.

An :class:`_Index` holds one column per filterable field and, built on first use, one
sorted order per price view; :func:`select` answers an
:class:`~runctl.models.OfferQuery` from it with exact ``Decimal`` ordering and exact
GPU matching. The snapshot's index is built once per snapshot and shared."""

from __future__ import annotations

import gc
import operator
import weakref
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, getcontext
from itertools import compress, islice
from typing import TYPE_CHECKING, Any, overload

from .gpus import gpu_matches

if TYPE_CHECKING:
    from .models import Gpu, Offer, OfferQuery

__all__ = [
]


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






