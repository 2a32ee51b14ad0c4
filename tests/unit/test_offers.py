"""Offer search: filters, price-view sorting, merging live with snapshot, and rendering."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from runctl.cost import Money, Price
from runctl.errors import ProviderConnectionError
from runctl.gpus import normalize_gpu
from runctl.models import Offer, OfferQuery
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
