"""Offer search benchmark: load 100,000 offers, then filter and sort them.

Run: ``python tests/benchmarks/bench_offers.py [--n 100000] [--gpuhunt PYTHON]``

The 100,000 offers are the packaged snapshot's real offers, repeated with a
region suffix and a small price change per copy, so the mix of GPUs, providers
and prices is the real one. Targets: < 300 ms to load, < 20 ms per query.
``--gpuhunt PYTHON`` also times gpuhunt's ``query()`` on the same rows, run by
that interpreter (gpuhunt lives in its own venv, not the project's).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from runctl import catalog
from runctl.models import OfferQuery
from runctl.offers import OfferList, select

QUERIES: dict[str, OfferQuery] = {
    "cheapest 10 H100 per GPU-hour": OfferQuery(gpu="H100", sort="per_gpu_hour", limit=10),
    "8x A100-80GB on-demand, all": OfferQuery(gpu="A100-80GB", count=8, spot=False),
    "any GPU >= 40 GB under $2/GPU-h, us-*": OfferQuery(
        min_gpu_memory_gb=40, max_per_gpu_hour=Decimal(2), regions=("us-",), sort="per_gpu_hour"
    ),
    "all offers by BF16 PFLOP-hour, top 20": OfferQuery(sort="per_bf16_pflop_hour", limit=20),
    "spot L4 on aws/gcp, all": OfferQuery(gpu="L4", spot=True, providers=("aws", "gcp")),
    "everything, sorted per hour (100k rows)": OfferQuery(),
}


def make_file(n: int, path: Path) -> None:
    """Write a snapshot file of ``n`` offers made from the packaged snapshot's offers."""
    base = catalog._load_packaged()
    writer = catalog._Writer()
    offers = base.offers
    copy = 0
    while len(writer.rows) < n:
        for o in offers:
            if len(writer.rows) >= n:
                break
            gpu = o.gpu
            price = o.price.per_hour.amount * (1 + Decimal(copy) / 1000)
            writer.rows.append([
                writer.s(o.provider), writer.s(o.instance_type),
                writer.s("" if gpu is None else (gpu.raw or gpu.name)), o.gpu_count,
                o.vcpus, o.memory_gb, None if gpu is None else gpu.memory_gb,
                writer.s(f"{o.region}-{copy}" if copy else o.region), writer.s(o.zone),
                writer.s(catalog._plain(price.quantize(Decimal("0.00001")))), int(o.spot), 0,
            ])
        copy += 1
    providers = {
        name: {
            "source": p.source, "origin": p.origin, "commit": p.commit,
            "observed_at": p.observed_at.isoformat(), "rows": p.rows,
            "increment_s": 1, "minimum_s": 60,
        }
        for name, p in base.provenance.items()
    }
    catalog._write(path, writer, providers, base.built_at)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time in ms over ``repeat`` runs, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


GPUHUNT_SCRIPT = r"""
import csv, json, statistics, sys, time

from gpuhunt._internal.models import AcceleratorVendor, CatalogItem
from gpuhunt._internal.constraints import QueryFilter, matches

rows = list(csv.DictReader(open(sys.argv[1])))
VENDORS = {v.value: v for v in AcceleratorVendor}
t = time.perf_counter()
items = []
for r in rows:
    items.append(CatalogItem(
        instance_name=r["instance_type"], location=r["region"], price=float(r["price"]),
        cpu=int(r["vcpus"] or 0), memory=float(r["memory_gb"] or 0), gpu_count=int(r["gpu_count"]),
        gpu_name=r["gpu"], gpu_memory=float(r["gpu_memory_gb"] or 0), spot=r["spot"] == "1",
        disk_size=None, provider=r["provider"], flags=[],
        gpu_vendor=VENDORS.get(r["vendor"], AcceleratorVendor.NVIDIA) if int(r["gpu_count"]) else None,
    ))
load_ms = (time.perf_counter() - t) * 1000
queries = {
    "cheapest 10 H100 per GPU-hour": dict(gpu_name=["H100"]),
    "8x A100-80GB on-demand, all": dict(gpu_name=["A100"], min_gpu_memory=80, min_gpu_count=8, max_gpu_count=8, spot=False),
    "any GPU >= 40 GB under $2/GPU-h, us-*": dict(min_gpu_memory=40),
    "spot L4 on aws/gcp, all": dict(gpu_name=["L4"], spot=True, provider=["aws", "gcp"]),
    "everything, sorted per hour (100k rows)": dict(),
}
out = {"load_ms": load_ms}
for name, kw in queries.items():
    q = QueryFilter(**kw)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        res = sorted((i for i in items if matches(i, q)), key=lambda i: i.price)
        times.append((time.perf_counter() - t) * 1000)
    out[name] = (statistics.median(times), len(res))
print(json.dumps(out))
"""


def run_gpuhunt(python: str, offers: OfferList, tmp: Path) -> dict[str, Any]:
    """Time gpuhunt's filter (its ``matches`` + sort, what ``query()`` does per item)."""
    path = tmp / "offers.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["provider", "instance_type", "region", "price", "vcpus", "memory_gb",
                    "gpu_count", "gpu", "gpu_memory_gb", "spot", "vendor"])
        for o in offers:
            w.writerow([o.provider, o.instance_type, o.region or "", o.price.per_hour.amount,
                        o.vcpus or "", o.memory_gb or "", o.gpu_count,
                        o.gpu.model if o.gpu else "", (o.gpu.memory_gb or "") if o.gpu else "",
                        int(o.spot), o.gpu.vendor if o.gpu else ""])
    script = tmp / "gh.py"
    script.write_text(GPUHUNT_SCRIPT)
    out = subprocess.run([python, str(script), str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--gpuhunt", metavar="PYTHON", help="interpreter with gpuhunt installed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "snapshot.json.gz"
        make_file(args.n, path)
        blob_size = path.stat().st_size
        load_ms, snap = timed(lambda: catalog._parse(path.read_bytes(), str(path)), 3)
        offers = OfferList(snap.offers)
        index_ms, _ = timed(lambda: OfferList(snap.offers)._index(), 1)
        print(f"{len(offers):,} offers, file {blob_size / 1e6:.2f} MB")
        print(f"load (gunzip + parse + build offers): {load_ms:.1f} ms (target < 300 ms)")
        print(f"first-search index build:             {index_ms:.1f} ms (once per OfferList)")
        gh = run_gpuhunt(args.gpuhunt, offers, tmp) if args.gpuhunt else None
        if gh and "error" in gh:
            print(f"gpuhunt: {gh['error']}")
            gh = None
        if gh:
            print(f"gpuhunt load (build CatalogItem objects): {gh['load_ms']:.1f} ms")
        print()
        print(f"| query | runctl ms (cold: plain list) | runctl ms (OfferList, indexed) "
              f"| results |{' gpuhunt ms | gpuhunt results |' if gh else ''}")
        print(f"|---|---|---|---|{'---|---|' if gh else ''}")
        plain = list(snap.offers)
        for name, query in QUERIES.items():
            offers.select(query)  # first search of a view builds its sort order
            warm, result = timed(lambda q=query: select(offers, q), args.repeat)
            cold, _ = timed(lambda q=query: select(plain, q), 2)
            line = f"| {name} | {cold:.1f} | {warm:.2f} | {len(result):,} |"
            if gh:
                found = gh.get(name)
                line += f" {found[0]:.1f} | {found[1]:,} |" if found else " n/a | |"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
