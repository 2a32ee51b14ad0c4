"""Building the offline price snapshot from the provider catalog CSV files.

:func:`build` reads a directory of per-provider CSV files (and its SOURCE.md for
provenance), normalises every row (canonical GPUs, exact ``Decimal`` prices, the
catalogs' billing rules) and writes the columnar snapshot that
:mod:`runctl.catalog` reads at run time. Run it as
``python -m runctl.catalog build SRC_DIR [OUT_FILE]``."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .gpus import gpu_for_instance_type

if TYPE_CHECKING:
    pass
from .catalog import _DEFAULT_RULE, BILLING_RULES, _packaged_path, _parse, _plain, _write, _Writer

__all__ = ["build"]


def _number(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    return value


def _int_or_none(text: str) -> int | None:
    value = _number(text)
    return None if value is None else int(value)


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _read_source_md(src: Path) -> dict[str, tuple[str, str]]:
    """``{file name: (source path, commit)}`` from the tables in SOURCE.md."""
    found: dict[str, tuple[str, str]] = {}
    try:
        text = (src / "SOURCE.md").read_text("utf-8")
    except OSError:
        return found
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].endswith(".csv") and len(cells[2]) == 40:
            found.setdefault(cells[0], (cells[1], cells[2]))
    return found


def build(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    repository: str = "skypilot-org/skypilot-catalog",
    observed_at: datetime | None = None,
) -> Path:
    """Rebuild the packaged snapshot from published catalog CSV files.

    ``src`` holds one ``<provider>.csv`` per provider with the columns
    ``provider,instance_type,accelerator_name,accelerator_count,vcpus,memory_gib,
    gpu_memory_mib,region,zone,price_usd_per_hour,spot_price_usd_per_hour`` and a
    ``SOURCE.md`` naming each file's source path and commit.

    Rules: exact repeated rows are kept once; rows without a price are skipped;
    machines with a fractional GPU count (AWS g6f/gr6f partitions) are skipped,
    since a fraction of a GPU is not comparable per GPU-hour; a spot price of 0 is
    taken as "no spot offer". A spot price above the on-demand one is kept as
    published.

    Args:
        src: the directory of CSV files.
        out: where to write (default: the packaged ``runctl/data/snapshot.json.gz``).
        repository: the repository the files came from, recorded as provenance.
        observed_at: when the figures were read (default: the newest CSV's mtime).

    Returns:
        The path written.
    """
    src_dir = Path(src)
    files = sorted(p for p in src_dir.glob("*.csv") if p.name != "accelerators.csv")
    if not files:
        raise FileNotFoundError(f"{src_dir}: no provider CSV files")
    sources = _read_source_md(src_dir)
    if observed_at is None:
        newest = max(p.stat().st_mtime for p in files)
        observed_at = datetime.fromtimestamp(newest, timezone.utc).replace(microsecond=0)
    writer = _Writer()
    providers: dict[str, Any] = {}
    for path in files:
        name = path.stem
        rule = BILLING_RULES.get(name, _DEFAULT_RULE)
        skipped: dict[str, int] = {}
        kept = 0

        def skip(reason: str, skipped: dict[str, int] = skipped) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        with path.open(newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                count_text = rec["accelerator_count"]
                try:
                    count_value = Decimal(count_text)
                except InvalidOperation:
                    skip("bad accelerator count")
                    continue
                if count_value != count_value.to_integral_value():
                    skip("fractional GPU count")
                    continue
                accel = rec["accelerator_name"]
                instance_type = rec["instance_type"]
                count = int(count_value)
                if not instance_type:
                    # GCP's rows price the accelerators alone (the VM is billed on top);
                    # TPU names are whole slices.
                    is_tpu = accel.lower().startswith("tpu-")
                    instance_type = accel if is_tpu else f"{accel}:{count}"
                if accel.lower().startswith("tpu-"):
                    found = gpu_for_instance_type(accel, provider=name)
                    if found is not None:
                        count = found[1]
                gmem = _number(rec["gpu_memory_mib"])
                base = [
                    writer.s(name), writer.s(instance_type), writer.s(accel), count,
                    _int_or_none(rec["vcpus"]), _number(rec["memory_gib"]),
                    None if gmem is None else round(gmem / 1024, 1),
                    writer.s(rec["region"]), writer.s(rec["zone"]),
                ]
                on_demand = _decimal(rec["price_usd_per_hour"])
                spot = _decimal(rec["spot_price_usd_per_hour"])
                if on_demand is None:
                    skip("empty price")
                else:
                    if writer.add([*base, writer.s(_plain(on_demand)), 0, 0]):
                        kept += 1
                    else:
                        skip("duplicate row")
                if spot is not None and spot > 0 and writer.add(
                    [*base, writer.s(_plain(spot)), 1, 0]
                ):
                    kept += 1
        source_path, commit = sources.get(path.name, ("", ""))
        providers[name] = {
            "source": "snapshot",
            "origin": f"{repository}/{source_path}" if source_path else str(path.name),
            "commit": commit or None,
            "observed_at": observed_at.isoformat(),
            "rows": kept,
            "skipped": skipped,
            "increment_s": int(rule.increment.total_seconds()),
            "minimum_s": int(rule.minimum.total_seconds()),
            "billing": rule.source,
            "note": rule.note,
        }
    target = Path(out) if out is not None else _packaged_path()
    return _write(target, writer, providers, datetime.now(timezone.utc).replace(microsecond=0))


def _main(argv: Sequence[str]) -> int:
    usage = "usage: python -m runctl.catalog build SRC_DIR [OUT_FILE]"
    if len(argv) < 2 or argv[0] != "build":
        print(usage, file=sys.stderr)
        return 2
    path = build(argv[1], argv[2] if len(argv) > 2 else None)
    snapshot = _parse(path.read_bytes(), str(path))
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {len(snapshot.offers):,} offers)")
    for name, p in sorted(snapshot.provenance.items()):
        print(f"  {name:11} {p.rows:6,} offers  skipped {dict(p.skipped) or '-'}")
    return 0
