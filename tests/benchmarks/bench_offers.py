"""Offer search benchmark: load 100,000 offers, then filter and sort them.

Run: ``python tests/benchmarks/bench_offers.py [--n 100000] [--gpuhunt PYTHON]``, or
through ``tests/benchmarks/run.py`` (``measure()`` then ``markdown()``), which takes
the gpuhunt interpreter from ``RUNCTL_BENCH_GPUHUNT_PYTHON``.

The 100,000 offers are the packaged snapshot's real offers, repeated with a
region suffix and a small price change per copy, so the mix of GPUs, providers
and prices is the real one. Targets: < 300 ms to load, < 20 ms per query.
With a gpuhunt interpreter (gpuhunt lives in its own venv, not the project's),
gpuhunt's filter is timed on the same rows.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from runctl import catalog
from runctl.models import Offer, OfferQuery
from runctl.offers import OfferList, combine, select

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
#: The query the client-path rows use: the broadest filter with many results.
BROAD = "any GPU >= 40 GB under $2/GPU-h, us-*"
VIEWS = ("per_hour", "per_gpu_hour", "per_gpu_memory_gb_hour", "per_bf16_pflop_hour")

#: gpuhunt figures from the earlier run, for when no gpuhunt interpreter is given.
EARLIER_GPUHUNT = {
    "date": "2026-11-27",
    "version": "0.1.34",
    "load_ms": 485.0,
    "queries": {
        "cheapest 10 H100 per GPU-hour": (69.0, 7064),
        "8x A100-80GB on-demand, all": (34.0, 712),
        "any GPU >= 40 GB under $2/GPU-h, us-*": (61.0, 44408),
        "spot L4 on aws/gcp, all": (58.0, 4327),
        "everything, sorted per hour (100k rows)": (79.0, 100000),
    },
}
GPUHUNT_NOTES = {
    "cheapest 10 H100 per GPU-hour": "no limit",
    "any GPU >= 40 GB under $2/GPU-h, us-*": "memory filter only",
}


def make_file(n: int, path: Path) -> None:
    """Write a snapshot file of ``n`` offers made from the packaged snapshot's offers."""
    base = catalog._load_packaged()
    writer = catalog._Writer()
    copy = 0
    while len(writer) < n:
        for o in base.offers:
            if len(writer) >= n:
                break
            gpu = o.gpu
            price = o.price.per_hour.amount * (1 + Decimal(copy) / 1000)
            writer.add([
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


def fresh(path: Path) -> catalog.Snapshot:
    """A newly parsed snapshot: no index views built, no offers built."""
    return catalog._parse(path.read_bytes(), str(path))


GPUHUNT_SCRIPT = r"""
import csv, json, statistics, sys, time

import gpuhunt
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
version = getattr(gpuhunt, "__version__", None)
if version is None:
    from importlib.metadata import version as v
    version = v("gpuhunt")
out = {"load_ms": load_ms, "version": version, "queries": {}}
for name, kw in queries.items():
    q = QueryFilter(**kw)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        res = sorted((i for i in items if matches(i, q)), key=lambda i: i.price)
        times.append((time.perf_counter() - t) * 1000)
    out["queries"][name] = (statistics.median(times), len(res))
print(json.dumps(out))
"""


def run_gpuhunt(python: str, offers: Sequence[Offer], tmp: Path) -> dict[str, Any]:
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


def measure(
    n: int = 100_000, repeat: int = 7, gpuhunt: str | None = None
) -> dict[str, Any]:
    """Time loading and searching ``n`` offers; medians in ms.

    Args:
        n: offers in the generated snapshot.
        repeat: runs per warm query.
        gpuhunt: an interpreter with gpuhunt installed (default: the
            ``RUNCTL_BENCH_GPUHUNT_PYTHON`` environment variable).
    """
    gpuhunt = gpuhunt or os.environ.get("RUNCTL_BENCH_GPUHUNT_PYTHON") or None
    result: dict[str, Any] = {
        "n": n, "repeat": repeat, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "base_offers": len(catalog._load_packaged().offers),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "snapshot.json.gz"
        make_file(n, path)
        blob = path.read_bytes()
        result["file_mb"] = len(blob) / 1e6
        import gzip

        result["json_ms"], _ = timed(lambda: json.loads(gzip.decompress(blob)), 5)
        result["load_ms"], snap = timed(lambda: fresh(path), 5)
        offers = snap.offers
        assert isinstance(offers, OfferList)
        result["offers"] = len(offers)

        # One-time costs of a fresh snapshot: each price view's sorted order, on first use.
        views: dict[str, list[float]] = {name: [] for name in VIEWS}
        for _ in range(3):
            index = fresh(path).offers._index()  # type: ignore[attr-defined]
            for name in VIEWS:
                start = time.perf_counter()
                index.view(name)
                views[name].append((time.perf_counter() - start) * 1000)
        result["view_ms"] = {name: statistics.median(t) for name, t in views.items()}

        # Building the offers a search found, the first time they are looked at.
        built: dict[str, list[float]] = {name: [] for name in QUERIES}
        for _ in range(3):
            cold = fresh(path).offers
            for name, query in QUERIES.items():
                found = cold.select(query)  # type: ignore[attr-defined]
                gc.collect()
                start = time.perf_counter()
                list(found)
                built[name].append((time.perf_counter() - start) * 1000)

        plain = list(offers)
        queries: dict[str, dict[str, Any]] = {}
        for name, query in QUERIES.items():
            offers.select(query)  # first search of a view builds its sorted order
            warm, found = timed(functools.partial(offers.select, query), repeat)
            as_list, _ = timed(functools.partial(select, offers, query), repeat)
            plain_ms, _ = timed(functools.partial(select, plain, query), 2)
            queries[name] = {
                "results": len(found), "lazy_ms": warm, "list_ms": as_list,
                "build_ms": statistics.median(built[name]), "plain_ms": plain_ms,
            }
        result["queries"] = queries

        # What AsyncClient.offers() does per call: combine() with the snapshot.
        query = QUERIES[BROAD]
        lam = [o for o in offers if o.provider == "lambda"]
        client: dict[str, float] = {}
        client["snapshot only"], _ = timed(lambda: combine({}, {}, offers, query), repeat)
        client["lambda answered live"], _ = timed(
            lambda: combine({"lambda": lam}, {}, offers, query), repeat
        )
        client["plain list of the snapshot's offers"], _ = timed(
            lambda: combine({}, {}, [o for o in offers if o.provider], query), repeat
        )
        result["combine_ms"] = client
        result["lambda_live_offers"] = len(lam)

        if gpuhunt:
            gh = run_gpuhunt(gpuhunt, offers, tmp)
            result["gpuhunt"] = gh if "error" not in gh else None
            result["gpuhunt_error"] = gh.get("error")
    return result


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def markdown(result: dict[str, Any]) -> str:
    """The "Offer search" section of docs/benchmarks.md."""
    n = result["n"]
    queries = result["queries"]
    lines = [
        "## Offer search",
        "",
        "Command: `python tests/benchmarks/bench_offers.py [--n 100000] [--gpuhunt PYTHON]`",
        "(project venv; `--gpuhunt`, or `RUNCTL_BENCH_GPUHUNT_PYTHON` under `run.py`, names an",
        "interpreter of a separate venv with `gpuhunt` installed).",
        "",
        f"Data: {n:,} offers made from the packaged snapshot's real offers "
        f"({result['base_offers']:,}), repeated",
        "with a region suffix and a 0.1 % price step per copy, so the mix of GPUs, providers and",
        f"prices is the real one. File: {result['file_mb']:.2f} MB gzip'd. "
        f"Machine: {result['machine']} (shared),",
        f"CPython {result['python']}; medians of {result['repeat']} runs (load: 5; one-time costs: "
        "3 fresh snapshots);",
        "numbers vary by about ±20 % with load from other processes.",
        "",
        "Targets: load under 300 ms, every query under 20 ms.",
        "",
        "| step | ms |",
        "|---|---|",
        f"| **load {n:,} offers** (gunzip, parse JSON, index the columns) | "
        f"**{_ms(result['load_ms'])}** |",
        f"| of which gunzip + JSON parse | {_ms(result['json_ms'])} |",
    ]
    for name, ms in result["view_ms"].items():
        lines.append(f"| first search sorted `{name}`: build that view's order (once) | {_ms(ms)} |")
    lines += [
        "",
        "A snapshot holds its offers as columns; an `Offer` is built only when it is looked at",
        "(and kept). The query columns:",
        "",
        "- **`OfferList.select`**: the search, returning a lazy `OfferList` (what",
        "  `AsyncClient.offers()` returns, through `combine()`);",
        "- `select()` → list: the same, returning a list of `Offer`s, once they have been built;",
        "- building the found offers the first time (`list(result)` on a fresh snapshot);",
        "- a plain list: `select(list_of_offers, q)`, which indexes the list on every call.",
        "",
        "| query | **`OfferList.select`** ms | `select()` → list ms | build found offers, first time ms "
        "| plain list ms | results |",
        "|---|---|---|---|---|---|",
    ]
    for name, q in queries.items():
        lines.append(
            f"| {name} | **{_ms(q['lazy_ms'])}** | {_ms(q['list_ms'])} | {_ms(q['build_ms'])} "
            f"| {_ms(q['plain_ms'])} | {q['results']:,} |"
        )
    lines += [
        "",
        f"`combine()` per call (what `AsyncClient.offers()` runs) for \"{BROAD}\" over the",
        f"{n:,}-offer snapshot; the snapshot's index is built once and reused:",
        "",
        "| snapshot passed as | ms |",
        "|---|---|",
    ]
    labels = {
        "snapshot only": "`snapshot.offers`, no live answers",
        "lambda answered live": f"`snapshot.offers`, lambda answered live "
        f"({result['lambda_live_offers']:,} offers, indexed per call)",
        "plain list of the snapshot's offers": "a list of the snapshot's offers "
        "(as `AsyncClient.offers()` builds it; recognised by identity)",
    }
    for key, ms in result["combine_ms"].items():
        lines.append(f"| {labels.get(key, key)} | {_ms(ms)} |")
    lines.append("")

    gh: dict[str, Any] | None = result.get("gpuhunt")
    if gh is None:
        gh = {
            "version": EARLIER_GPUHUNT["version"], "load_ms": EARLIER_GPUHUNT["load_ms"],
            "queries": EARLIER_GPUHUNT["queries"],
        }
        why = result.get("gpuhunt_error") or "no gpuhunt interpreter given"
        lines += [
            f"### gpuhunt (earlier figures, measured {EARLIER_GPUHUNT['date']}; not re-run: {why})",
            "",
        ]
    else:
        lines += [f"### gpuhunt {gh['version']} (measured in this run)", ""]
    lines += [
        "gpuhunt's `query()` cannot run here: it downloads its catalogs from the network first.",
        "This times what `query()` does after loading — `matches(item, QueryFilter)` over",
        f"`CatalogItem`s, then a sort by price — on the same {n:,} rows. gpuhunt has no",
        "region-prefix, per-GPU-hour or limit filters, so two rows compare unlike work.",
        "",
        "| query | runctl `OfferList.select` ms | gpuhunt ms | gpuhunt results |",
        "|---|---|---|---|",
    ]
    for name, q in queries.items():
        found = gh["queries"].get(name)
        if found is None:
            lines.append(f"| {name} | {_ms(q['lazy_ms'])} | n/a (no such view) | |")
            continue
        note = f" ({GPUHUNT_NOTES[name]})" if name in GPUHUNT_NOTES else ""
        lines.append(
            f"| {name} | {_ms(q['lazy_ms'])} | {_ms(found[0])} | {found[1]:,}{note} |"
        )
    lines += [
        "",
        f"Building gpuhunt's {n:,} `CatalogItem`s took {_ms(gh['load_ms'])} ms "
        f"(runctl's load: {_ms(result['load_ms'])} ms).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--gpuhunt", metavar="PYTHON", help="interpreter with gpuhunt installed")
    args = parser.parse_args()
    print(markdown(measure(args.n, args.repeat, args.gpuhunt)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
