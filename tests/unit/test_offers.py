"""Offer search: filters, price-view sorting, merging live with snapshot, and rendering."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl.cost import Money, Price
from runctl.errors import ProviderConnectionError
from runctl.gpus import normalize_gpu
from runctl.models import Gpu, Offer, OfferQuery
from runctl.offers import OfferList, combine, format_table, select, to_records


def offer(
    provider: str, gpu: str, count: int, per_hour: str, *, spot: bool = False,
    region: str = "us-east-1", vcpus: int = 32, memory_gb: float = 256, currency: str = "USD",
    source: str = "snapshot", instance_type: str | None = None,
) -> Offer:
    return Offer(
        provider=provider, instance_type=instance_type or f"{count}x-{gpu}",
        gpu=normalize_gpu(gpu, provider=provider), gpu_count=count,
        price=Price(per_hour=Money(Decimal(per_hour), currency), gpu_count=count, spot=spot,
                    billing_increment=timedelta(seconds=1), source=source),
        vcpus=vcpus, memory_gb=memory_gb, region=region,
    )


OFFERS = [
    offer("aws", "H100 SXM", 8, "98.32", region="us-east-1"),            # 12.29 / GPU-h
    offer("lambda", "H100 SXM", 8, "23.92", region="us-west-1"),         # 2.99
    offer("runpod", "H100 PCIe", 1, "1.99", region="eu-ro-1"),           # 1.99
    offer("runpod", "H100 NVL", 2, "5.18", region="us-tx-3"),            # 2.59
    offer("gcp", "A100 80GB SXM", 8, "40.22", region="us-central1"),     # 5.03
    offer("runpod", "A100 80GB PCIe", 1, "1.64", spot=True, region="ca-mtl-1"),
    offer("gcp", "nvidia-tesla-a100", 1, "3.67", region="europe-west4"),  # A100 40GB
    offer("aws", "L4", 1, "0.80", region="us-east-2", vcpus=4, memory_gb=16),
    offer("vast", "mystery card", 1, "0.10", region="Texas, US"),
]


def names(offers: list[Offer] | OfferList) -> list[tuple[str, str]]:
    return [(o.provider, o.gpu.name if o.gpu else "-") for o in offers]


def test_gpu_family_matches_every_variant() -> None:
    found = select(OFFERS, OfferQuery(gpu="H100"))
    assert {o.gpu.variant for o in found if o.gpu} == {"SXM", "PCIe", "NVL"}


def test_gpu_memory_variant_narrows_the_family() -> None:
    found = select(OFFERS, OfferQuery(gpu="A100-80GB"))
    assert names(found) == [("runpod", "A100 80GB PCIe"), ("gcp", "A100 80GB SXM")]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (OfferQuery(count=8), {"aws", "lambda", "gcp"}),
        (OfferQuery(min_gpu_memory_gb=90), {"runpod"}),  # H100 NVL, 94 GB
        (OfferQuery(min_vcpus=8), {"aws", "lambda", "runpod", "gcp", "vast"}),
        (OfferQuery(min_memory_gb=100, gpu="L4"), set()),
        (OfferQuery(max_per_hour=Decimal("2")), {"runpod", "aws", "vast"}),
        (OfferQuery(spot=True), {"runpod"}),
        (OfferQuery(regions=["us-"]), {"aws", "lambda", "runpod", "gcp"}),
        (OfferQuery(providers=["gcp"]), {"gcp"}),
    ],
)
def test_each_filter(query: OfferQuery, expected: set[str]) -> None:
    assert {o.provider for o in select(OFFERS, query)} == expected


def test_region_prefix_is_a_prefix_not_a_substring() -> None:
    found = select(OFFERS, OfferQuery(regions=["us-east"]))
    assert {o.region for o in found} == {"us-east-1", "us-east-2"}


def test_max_per_gpu_hour_uses_the_per_gpu_price() -> None:
    found = select(OFFERS, OfferQuery(gpu="H100", max_per_gpu_hour="3"))
    assert {o.provider for o in found} == {"lambda", "runpod"}  # 2.99, 1.99, 2.59 / GPU-h


def test_sort_by_each_price_view_cheapest_first_unknown_last() -> None:
    per_hour = select(OFFERS, OfferQuery(sort="per_hour"))
    assert [o.per_hour.amount for o in per_hour] == sorted(o.per_hour.amount for o in OFFERS)
    per_gpu = select(OFFERS, OfferQuery(gpu="H100", sort="per_gpu_hour"))
    assert [str(o.per_gpu_hour.amount) for o in per_gpu if o.per_gpu_hour] == [
        "1.99", "2.59", "2.99", "12.29"
    ]
    by_flop = select(OFFERS, OfferQuery(sort="per_bf16_pflop_hour"))
    assert by_flop[-1].gpu is not None and not by_flop[-1].gpu.known  # no figures: last
    values = [o.per_bf16_pflop_hour.amount for o in by_flop if o.per_bf16_pflop_hour]
    assert values == sorted(values)
    by_mem = select(OFFERS, OfferQuery(sort="per_gpu_memory_gb_hour", limit=1))
    # $1.64 for 80 GB ($0.0205/GB-h) beats the L4's $0.80 for 24 GB ($0.033/GB-h).
    assert names(by_mem) == [("runpod", "A100 80GB PCIe")]


def test_limit_keeps_the_cheapest() -> None:
    assert names(select(OFFERS, OfferQuery(gpu="H100", sort="per_gpu_hour", limit=2))) == [
        ("runpod", "H100 PCIe"), ("runpod", "H100 NVL")
    ]


def test_offers_in_another_currency_are_not_compared_as_if_dollars() -> None:
    euro = offer("scaleway", "H100 SXM", 1, "0.01", currency="EUR")
    assert euro not in select([*OFFERS, euro], OfferQuery(gpu="H100"))
    assert select([*OFFERS, euro], OfferQuery(gpu="H100", currency="EUR")) == [euro]


def test_an_offer_list_searches_like_a_plain_list_and_reuses_its_index() -> None:
    listed = OfferList(OFFERS)
    for query in [OfferQuery(gpu="H100", sort="per_gpu_hour"), OfferQuery(spot=False, limit=3)]:
        assert select(listed, query) == select(list(OFFERS), query)
    assert listed._index() is listed._index()


def test_combine_replaces_snapshot_rows_of_providers_that_answered() -> None:
    snapshot = [o for o in OFFERS if o.provider in {"lambda", "runpod", "aws"}]
    fresh = offer("lambda", "H100 SXM", 8, "21.52", source="live")
    result = combine(
        live={"lambda": [fresh]},
        failures={"runpod": ProviderConnectionError("timed out", provider="runpod")},
        snapshot=snapshot,
        query=OfferQuery(),
    )
    lam = [o for o in result if o.provider == "lambda"]
    assert lam == [fresh]  # the snapshot's lambda row is gone, not doubled
    assert {o.provider for o in result} == {"lambda", "runpod", "aws"}
    assert result.sources == {"lambda": "live", "runpod": "snapshot", "aws": "snapshot"}
    assert isinstance(result.errors["runpod"], ProviderConnectionError)


def test_combine_reports_non_runctl_failures_as_text() -> None:
    result = combine({}, {"vast": RuntimeError("boom")}, OFFERS, OfferQuery(providers=["vast"]))
    assert result.errors == {"vast": "RuntimeError: boom"}
    assert result.sources == {"vast": "snapshot"}
    assert names(result) == [("vast", "unknown (mystery card)")]


def test_combine_applies_the_query() -> None:
    result = combine({}, {}, OFFERS, OfferQuery(gpu="L4"))
    assert names(result) == [("aws", "L4")]


def test_records_are_flat_and_keep_decimals() -> None:
    records = to_records(select(OFFERS, OfferQuery(gpu="L4")))
    assert records == [records[0]]
    rec = records[0]
    assert rec["gpu"] == "L4" and rec["gpu_count"] == 1 and rec["currency"] == "USD"
    assert rec["per_hour"] == Decimal("0.80")
    assert isinstance(rec["per_bf16_pflop_hour"], Decimal)
    assert all(not isinstance(v, (dict, list, Money)) for v in rec.values())
    assert OfferList(OFFERS).to_records() == to_records(OFFERS)


def test_text_table_lists_every_offer_and_the_failures() -> None:
    text = OfferList(OFFERS[:2], errors={"vast": "HTTP 500"}).format_table()
    lines = text.splitlines()
    assert lines[0].startswith("PROVIDER")
    assert "8x H100 SXM" in lines[1] and "98.3200 USD" in lines[1]
    assert "vast: HTTP 500" in lines[-1]
    assert format_table(OFFERS, max_rows=2).splitlines()[-1] == f"... {len(OFFERS) - 2} more"
    assert "(no offers)" in format_table([])


def test_html_table_escapes_provider_values() -> None:
    evil = offer("runpod", "H100 SXM", 1, "1", instance_type="<script>alert(1)</script>")
    page = OfferList([evil], errors={"vast": "<b>down</b>"})._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>down</b>" not in page
    assert page.startswith("<table>")


def test_offer_list_is_a_sequence() -> None:
    listed = OfferList(OFFERS, errors={"x": "y"})
    assert len(listed) == len(OFFERS)
    assert listed[0] == OFFERS[0]
    assert isinstance(listed[:2], OfferList) and listed[:2].errors == {"x": "y"}
    assert list(listed) == OFFERS
    assert "errors=['x']" in repr(listed)


# --- the index gives exactly what a plain Decimal search gives ---------------------------------

GPUS: list[Gpu | None] = [normalize_gpu(name) for name in ("H100 SXM", "H100 NVL", "A100 80GB SXM", "L4", "T4")]
GPUS += [normalize_gpu("mystery card"), normalize_gpu("other card"), None]


def reference(offers: list[Offer], q: OfferQuery) -> list[Offer]:
    """The search spelled out offer by offer, in Decimal: what select() must return."""
    from runctl.gpus import gpu_matches

    def keep(o: Offer) -> bool:
        amount = o.price.per_hour.amount
        prefixes = tuple(r.lower() for r in q.regions)
        return (
            (not q.providers or o.provider in q.providers)
            and (q.gpu is None or (o.gpu is not None and gpu_matches(q.gpu, o.gpu)))
            and (q.spot is None or o.price.spot is q.spot)
            and (q.count is None or o.gpu_count == q.count)
            and (q.min_gpu_memory_gb is None
                 or (o.gpu is not None and (o.gpu.memory_gb or 0) >= q.min_gpu_memory_gb))
            and (q.min_vcpus is None or (o.vcpus or 0) >= q.min_vcpus)
            and (q.min_memory_gb is None or (o.memory_gb or 0) >= q.min_memory_gb)
            and (not prefixes or (o.region or "").lower().startswith(prefixes))
            and o.price.per_hour.currency == q.currency
            and (q.max_per_hour is None or amount <= q.max_per_hour)
            and (q.max_per_gpu_hour is None
                 or (o.gpu_count > 0 and amount <= q.max_per_gpu_hour * o.gpu_count))
        )

    def key(o: Offer) -> tuple[bool, Decimal]:
        value = o.price_view(q.sort)
        return (value is None, Decimal(0) if value is None else value.amount)

    found = sorted((o for o in offers if keep(o)), key=key)  # stable: ties keep input order
    return found if q.limit is None else found[: q.limit]


amounts = st.one_of(
    st.decimals(min_value=0, max_value=200, places=5),
    st.sampled_from([Decimal(x) for x in ("0", "1", "2", "3", "2.99", "1.999995", "98.32", "7")]),
)


@st.composite
def offer_lists(draw: st.DrawFn) -> list[Offer]:
    out = []
    for _ in range(draw(st.integers(0, 40))):
        count = draw(st.sampled_from([0, 1, 2, 3, 7, 8]))
        out.append(Offer(
            provider=draw(st.sampled_from(["aws", "gcp", "runpod"])),
            instance_type=draw(st.sampled_from(["a", "b"])),
            gpu=draw(st.sampled_from(GPUS)), gpu_count=count,
            price=Price(
                per_hour=Money(draw(amounts), draw(st.sampled_from(["USD", "USD", "EUR"]))),
                gpu_count=count, spot=draw(st.booleans()),
            ),
            vcpus=draw(st.sampled_from([None, 4, 32])),
            memory_gb=draw(st.sampled_from([None, 16.0, 256.0])),
            region=draw(st.sampled_from([None, "us-east-1", "US-west-2", "eu-west-1", ""])),
        ))
    return out


@st.composite
def queries(draw: st.DrawFn, offers: list[Offer]) -> OfferQuery:
    def price_limit() -> Decimal | None:
        # Often exactly an offer's own price or per-GPU price: the boundary cases.
        choices: list[Decimal | None] = [None, None, None, draw(amounts)]
        for o in offers[:5]:
            choices.append(o.per_hour.amount)
            if o.per_gpu_hour is not None:
                choices.append(o.per_gpu_hour.amount)
        return draw(st.sampled_from(choices))

    def maybe(*values: Any) -> Any:
        # Mostly unset, so that most searches find something.
        return draw(st.sampled_from([None, None, None, None, *values]))

    return OfferQuery(
        gpu=maybe("H100", "A100-80GB", "L4", "mystery"),
        count=maybe(1, 8),
        min_gpu_memory_gb=maybe(40, 80.5),
        min_vcpus=maybe(8),
        min_memory_gb=maybe(100),
        max_per_hour=price_limit(),
        max_per_gpu_hour=price_limit(),
        spot=maybe(True, False),
        regions=maybe(("us-",), ("eu", "us-west")) or (),
        providers=maybe(("aws",), ("gcp", "runpod")) or (),
        currency=draw(st.sampled_from(["USD", "USD", "USD", "EUR"])),
        sort=draw(st.sampled_from(["per_hour", "per_gpu_hour", "per_gpu_memory_gb_hour",
                                   "per_bf16_pflop_hour"])),
        limit=maybe(1, 3),
    )


@given(st.data())
@settings(max_examples=400)
def test_search_equals_the_plain_decimal_search(data: st.DataObject) -> None:
    offers = data.draw(offer_lists())
    listed = OfferList(offers)
    for _ in range(3):
        q = data.draw(queries(offers))
        expected = reference(offers, q)
        assert select(offers, q) == expected
        assert list(listed.select(q)) == expected
        # A narrower search of a result is the search of that result as a list.
        narrower = OfferQuery(sort="per_gpu_hour", max_per_hour=q.max_per_hour)
        assert list(listed.select(q).select(narrower)) == reference(expected, narrower)


@given(offer_lists())
def test_index_prices_are_the_offer_properties(offers: list[Offer]) -> None:
    index = OfferList(offers)._index()
    for view in ("per_hour", "per_gpu_hour", "per_gpu_memory_gb_hour", "per_bf16_pflop_hour"):
        values = index.view(view).by_row
        for o, value in zip(offers, values, strict=True):
            money = o.price_view(view)
            assert value == (None if money is None else money.amount)


def test_a_limit_at_a_rounded_per_gpu_price_is_exact() -> None:
    # $1 for 3 GPUs is 0.3333333333333333333333333333 (rounded) per GPU-hour; that
    # rounded figure as a limit is below $1 / 3 GPUs, so the offer is out.
    third = offer("aws", "L4", 3, "1")
    assert third.per_gpu_hour is not None
    q = OfferQuery(max_per_gpu_hour=third.per_gpu_hour.amount, sort="per_gpu_hour")
    assert select([third], q) == reference([third], q) == []
    q = OfferQuery(max_per_gpu_hour=Decimal(1) / 3 + Decimal("1e-27"), sort="per_gpu_hour")
    assert select([third], q) == [third]
    # $2 for 3 GPUs rounds up to ...6667 per GPU-hour, above a limit of ...6666; but
    # that limit times 3 rounds to 2.000..., so the offer is in, as the Decimal test says.
    two_thirds = offer("aws", "L4", 3, "2")
    q = OfferQuery(max_per_gpu_hour=Decimal("0." + "6" * 28), sort="per_gpu_hour")
    assert select([two_thirds], q) == reference([two_thirds], q) == [two_thirds]


def test_prices_equal_as_floats_still_sort_exactly() -> None:
    # Both are 1.0 as floats; Decimal order puts the dollar first.
    above = offer("aws", "L4", 1, "1.00000000000000000001")
    dollar = offer("gcp", "L4", 1, "1")
    for sort in ("per_hour", "per_gpu_hour"):
        assert select([above, dollar], OfferQuery(sort=sort)) == [dollar, above]


def test_snapshot_searches_equal_the_plain_search_of_its_offers() -> None:
    from runctl import catalog
    from runctl.config import load_settings

    snapshot = catalog.load_snapshot(load_settings(), warn=False).offers
    assert isinstance(snapshot, OfferList)
    every = list(snapshot)
    for q in [
        OfferQuery(gpu="H100", sort="per_gpu_hour", limit=10),
        OfferQuery(min_gpu_memory_gb=40, max_per_gpu_hour=Decimal(2), regions=["us-"],
                   sort="per_gpu_hour"),
        OfferQuery(sort="per_bf16_pflop_hour", limit=20),
        OfferQuery(gpu="L4", spot=True, providers=["aws", "gcp"], max_per_hour=Decimal("1")),
        OfferQuery(count=8, sort="per_gpu_memory_gb_hour"),
    ]:
        expected = reference(every, q)
        assert list(snapshot.select(q)) == expected
        assert select(snapshot, q) == expected
        assert list(combine({}, {}, snapshot, q)) == expected
        # A list of its offers (as a caller filtering by provider builds it) is recognised.
        some = [o for o in snapshot if o.provider in {"aws", "lambda"}]
        assert list(combine({}, {}, some, q)) == reference(some, q)
        assert list(combine({}, {}, snapshot[100:5000], q)) == reference(every[100:5000], q)


def test_live_offers_merge_into_the_snapshot_in_price_order_and_win_ties() -> None:
    from runctl import catalog
    from runctl.config import load_settings

    snapshot = catalog.load_snapshot(load_settings(), warn=False).offers
    cheap_aws = next(o for o in snapshot if o.provider == "aws" and o.gpu_count == 1)
    tie = offer("lambda", "H100 SXM", 1, str(cheap_aws.per_hour.amount), source="live")
    live = {"lambda": [tie, offer("lambda", "H100 SXM", 8, "23.92", source="live")]}
    for q in [OfferQuery(), OfferQuery(sort="per_gpu_hour", limit=50), OfferQuery(gpu="H100")]:
        merged = [*live["lambda"], *(o for o in snapshot if o.provider != "lambda")]
        assert list(combine(live, {}, snapshot, q)) == reference(merged, q)


def test_snapshot_offers_are_built_once_and_only_when_looked_at() -> None:
    from runctl import catalog
    from runctl.config import load_settings

    path = catalog._packaged_path()
    snapshot = catalog._parse(path.read_bytes(), str(path)).offers
    assert isinstance(snapshot, OfferList)
    found = snapshot.select(OfferQuery(gpu="H100", limit=5))
    index = snapshot._index()
    assert sum(o is not None for o in index._cache) == 0
    first = found[0]
    assert sum(o is not None for o in index._cache) == 1
    assert snapshot.select(OfferQuery(gpu="H100", limit=5))[0] is first
    assert first in catalog.load_snapshot(load_settings(), warn=False).offers


def test_a_partial_price_says_so_wherever_it_is_shown():
    from runctl import catalog
    from runctl.config import load_settings
    from runctl.models import OfferQuery

    snapshot = catalog.load_snapshot(load_settings(), warn=False)
    found = snapshot.offers.select(OfferQuery(providers=("gcp",), gpu="H100", count=8, limit=3))
    assert found
    assert all(o.note == catalog.ACCELERATORS_ONLY for o in found)
    assert catalog.ACCELERATORS_ONLY in found.format_table()
    assert catalog.ACCELERATORS_ONLY in found._repr_html_()
    assert found.to_records()[0]["note"] == catalog.ACCELERATORS_ONLY
    aws = snapshot.offers.select(OfferQuery(providers=("aws",), gpu="H100", limit=1))
    assert aws[0].note is None
