"""Run every benchmark and write docs/benchmarks.md (the `nox -s bench` session)."""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

#: Benchmark modules, each with measure() -> dict and markdown(dict) -> str.
MODULES = ["bench_import", "bench_offers"]


def main() -> None:
    sections = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            print(f"skipping {name}: {e}", file=sys.stderr)
            continue
        print(f"running {name} ...", file=sys.stderr)
        sections.append(module.markdown(module.measure()))
    header = [
        "# Benchmarks",
        "",
        "Written by `nox -s bench` (tests/benchmarks/run.py); do not edit by hand.",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
    ]
    out = HERE.parent.parent / "docs" / "benchmarks.md"
    out.write_text("\n".join(header + sections))
    print(out.read_text())


if __name__ == "__main__":
    main()
