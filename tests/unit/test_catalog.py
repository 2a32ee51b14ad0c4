"""The offline price snapshot: built from published figures, with provenance and staleness."""

from __future__ import annotations

import gzip
import json
import os
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from runctl import catalog, catalog_build
from runctl.config import load_settings
from runctl.cost import Money, Price
from runctl.errors import ProviderConnectionError
from runctl.gpus import normalize_gpu
from runctl.models import Offer, OfferQuery

HEADER = (
    "provider,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,"
    "gpu_memory_mib,region,zone,price_usd_per_hour,spot_price_usd_per_hour\n"
)


def write_source(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    (src / "aws.csv").write_text(
        HEADER
        + "aws,p5.48xlarge,H100,8,192,2048,81920,us-east-1,use1-az1,98.32,40.1\n"
        + "aws,p5.48xlarge,H100,8,192,2048,81920,us-east-1,use1-az1,98.32,40.1\n"  # repeat
        + "aws,p5e.48xlarge,H200,8,192,2048,,us-east-2,use2-az1,,\n"  # no price
        + "aws,g6f.large,L4,0.125,2,8,2861,us-east-1,use1-az1,0.2,\n"  # fractional GPU
    )
    (src / "vast.csv").write_text(
        HEADER + 'vast,1x-H100_SXM-32-65536,H100,1,32,64,81559,"Texas, US, NA",,1.87,0\n'
    )
    (src / "SOURCE.md").write_text(
        "| aws.csv | catalogs/v8/aws/vms.csv | " + "a" * 40 + " | 1 | 1 | 1 |\n"
    )
    return src


def test_build_keeps_provenance_dedupes_and_skips(tmp_path: Path) -> None:
    out = catalog_build.build(write_source(tmp_path), tmp_path / "snap.json.gz",
                        observed_at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    snap = catalog._parse(out.read_bytes(), str(out))
    aws = snap.provenance["aws"]
    assert aws.origin == "skypilot-org/skypilot-catalog/catalogs/v8/aws/vms.csv"
    assert aws.commit == "a" * 40
    assert aws.observed_at == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert dict(aws.skipped) == {"duplicate row": 1, "empty price": 1, "fractional GPU count": 1}
    offers = [o for o in snap.offers if o.provider == "aws"]
    # One on-demand and one spot offer survive from the four rows.
    assert sorted((o.spot, o.per_hour) for o in offers) == [
        (False, Money(Decimal("98.32"))), (True, Money(Decimal("40.1")))
    ]
    on_demand = next(o for o in offers if not o.spot)
    assert on_demand.gpu is not None and on_demand.gpu.name == "H100 SXM"
    assert on_demand.per_gpu_hour == Money(Decimal("12.29"))
    assert on_demand.price.source == "snapshot"
    # AWS's published rule: per second with a 60 s minimum.
    assert on_demand.price.billing_increment == timedelta(seconds=1)
    assert on_demand.price.minimum_duration == timedelta(seconds=60)
    # A spot price of 0 means "no spot offer", not a free machine.
    assert [o.spot for o in snap.offers if o.provider == "vast"] == [False]


def test_decoded_offers_equal_offers_built_through_the_validating_constructors(
    tmp_path: Path,
) -> None:
    out = catalog_build.build(write_source(tmp_path), tmp_path / "snap.json.gz")
    snap = catalog._parse(out.read_bytes(), str(out))
    for offer in snap.offers:
        p = offer.price
        rebuilt = Offer(
            provider=offer.provider, instance_type=offer.instance_type, gpu=offer.gpu,
            gpu_count=offer.gpu_count, vcpus=offer.vcpus, memory_gb=offer.memory_gb,
            region=offer.region, zone=offer.zone,
            price=Price(
                per_hour=Money(p.per_hour.amount, "USD"), gpu_count=p.gpu_count,
                billing_increment=p.billing_increment, minimum_duration=p.minimum_duration,
                spot=p.spot, observed_at=p.observed_at, source=p.source,
            ),
        )
        assert offer == rebuilt
        assert repr(offer) == repr(rebuilt)


def test_packaged_snapshot_is_small_real_and_names_its_sources() -> None:
    path = catalog._packaged_path()
    assert path.stat().st_size < 1_000_000
    snap = catalog.load_snapshot(load_settings(), warn=False)
    assert len(snap.offers) > 5000
    assert {"aws", "gcp", "azure", "lambda", "runpod", "vast", "paperspace"} <= set(snap.provenance)
    for p in snap.provenance.values():
        assert p.commit and len(p.commit) == 40
        assert p.origin.startswith("skypilot-org/skypilot-catalog/catalogs/")
    assert all(o.price.source == "snapshot" for o in snap.offers)
    assert all(isinstance(o.price.per_hour.amount, Decimal) for o in snap.offers[:100])
    lam = [o for o in snap.offers if o.provider == "lambda"]
    assert lam and all(o.price.billing_increment == timedelta(minutes=1) for o in lam)


def file_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A snapshot file's offers as one tuple each: their kind's fields, region, zone, price."""
    kinds, columns = data["kinds"], data["offers"]
    return [
        (*kinds[k], region, zone, price)
        for k, region, zone, price in zip(*(columns[c] for c in catalog.OFFER_COLUMNS))
    ]


def test_packaged_snapshot_has_no_exact_duplicates_or_fractional_gpus() -> None:
    data = json.loads(gzip.decompress(catalog._packaged_path().read_bytes()))
    rows = file_rows(data)
    assert len(rows) == len(set(rows)) == len(catalog.load_snapshot(load_settings(), warn=False).offers)
    assert all(isinstance(kind[3], int) for kind in data["kinds"])


def test_stale_snapshot_warns_with_a_runctl_warning(runctl_home: Path) -> None:
    (runctl_home / "config.toml").write_text("max_snapshot_age_days = 1\n")
    settings = load_settings()
    snap = catalog.load_snapshot(settings, warn=False)
    future = snap.observed_at + timedelta(days=2)
    assert snap.is_stale(settings, now=future)
    old = attrs.evolve(snap, observed_at=snap.observed_at - timedelta(days=400))
    assert old.is_stale(settings)
    with pytest.warns(catalog.StaleSnapshotWarning, match="days old"):
        # The packaged snapshot is at least as old as today's build: force the age.
        catalog.load_snapshot(attrs.evolve(settings, max_snapshot_age_days=1e-9))


def test_fresh_snapshot_does_not_warn() -> None:
    settings = attrs.evolve(load_settings(), max_snapshot_age_days=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        catalog.load_snapshot(settings)


class FakeProvider:
    """A provider that answers offers() with fixed offers, or fails."""

    api_version = 2

    def __init__(self, name: str, offers: Sequence[Offer] | None) -> None:
        self.name = name
        self._offers = offers

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        if self._offers is None:
            raise ProviderConnectionError("down", provider=self.name)
        return self._offers


def live_offer(provider: str, per_hour: str) -> Offer:
    return Offer(
        provider=provider, instance_type="gpu_1x_h100_sxm5", gpu=normalize_gpu("H100 SXM"),
        gpu_count=1, region="us-east-1",
        price=Price(per_hour=Money(Decimal(per_hour)), billing_increment=timedelta(minutes=1)),
    )


@pytest.mark.anyio
async def test_refresh_uses_live_offers_and_falls_back_per_provider(runctl_home: Path) -> None:
    settings = load_settings()
    before = catalog.load_snapshot(settings, warn=False)
    runpod_before = [o for o in before.offers if o.provider == "runpod"]
    snap = await catalog.refresh(
        [FakeProvider("lambda", [live_offer("lambda", "2.49")]), FakeProvider("runpod", None)],
        settings,
    )
    assert catalog.snapshot_path(settings).exists()
    assert snap.provenance["lambda"].source == "live"
    assert snap.provenance["runpod"].source == "snapshot"
    assert "down" in snap.provenance["runpod"].note
    lam = [o for o in snap.offers if o.provider == "lambda"]
    assert [(o.per_hour, o.price.source) for o in lam] == [(Money(Decimal("2.49")), "live")]
    assert lam[0].price.billing_increment == timedelta(minutes=1)
    runpod = [o for o in snap.offers if o.provider == "runpod"]
    assert len(runpod) == len(runpod_before)
    assert all(o.price.source == "snapshot" for o in runpod)
    # The refreshed user copy is what load_snapshot returns from now on.
    again = catalog.load_snapshot(settings, warn=False)
    assert [o for o in again.offers if o.provider == "lambda"] == lam


def test_cli_build_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert catalog_build._main(["build", str(write_source(tmp_path)), str(tmp_path / "o.json.gz")]) == 0
    assert "offers" in capsys.readouterr().out
    assert catalog_build._main([]) == 2


def test_rebuild_from_the_shared_source_is_identical_when_present() -> None:
    src = Path(os.environ.get("RUNCTL_CATALOG_SRC", "/work/shared/catalog-data"))
    if not (src / "SOURCE.md").exists():
        pytest.skip("published catalog files not available here")
    packaged = json.loads(gzip.decompress(catalog._packaged_path().read_bytes()))
    observed = datetime.fromisoformat(packaged["providers"]["aws"]["observed_at"])
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = catalog_build.build(src, Path(tmp) / "s.json.gz", observed_at=observed)
        rebuilt = json.loads(gzip.decompress(out.read_bytes()))
    assert rebuilt["strings"] == packaged["strings"]
    assert file_rows(rebuilt) == file_rows(packaged)
    assert rebuilt["providers"] == packaged["providers"]


def test_a_format_1_file_from_an_earlier_runctl_still_loads(tmp_path: Path) -> None:
    out = catalog_build.build(write_source(tmp_path), tmp_path / "snap.json.gz")
    data = json.loads(gzip.decompress(out.read_bytes()))
    columns = ("kind_columns", "kinds", "offer_columns", "offers")
    # Format 1 kept one array per offer: the fields in catalog.COLUMNS order.
    rows = [[*kind[:7], region, zone, price, *kind[7:]] for *kind, region, zone, price
            in file_rows(data)]
    old = {**{k: v for k, v in data.items() if k not in columns}, "format": 1, "rows": rows}
    path = tmp_path / "v1.json.gz"
    path.write_bytes(gzip.compress(json.dumps(old).encode()))
    assert list(catalog._parse(path.read_bytes(), str(path)).offers) == list(
        catalog._parse(out.read_bytes(), str(out)).offers
    )


@pytest.mark.anyio
async def test_refresh_leaves_out_a_provider_whose_offers_have_fixed_prices(
    runctl_home: Path,
) -> None:
    # This machine at no cost (a "static" price) is not a market price to keep.
    fixed = attrs.evolve(live_offer("here", "0"), price=Price(
        per_hour=Money(Decimal(0)), billing_increment=timedelta(seconds=1), source="static"))
    snap = await catalog.refresh([FakeProvider("here", [fixed])], load_settings())
    assert "here" not in snap.provenance
    assert not [o for o in snap.offers if o.provider == "here"]


def test_every_snapshot_provider_has_its_billing_rule_as_data() -> None:
    before = catalog.load_snapshot(load_settings(), warn=False)
    for name, provenance in before.provenance.items():
        rule = catalog.BILLING_RULES[name]
        assert provenance.billing == rule.source, name
        rows = [o for o in before.offers if o.provider == name][:50]
        assert all(o.price.billing_increment == rule.increment for o in rows), name
