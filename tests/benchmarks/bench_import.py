"""How much `import runctl` adds to a bare interpreter's start-up (target: under 50 ms).

Measured as the median wall time of `python -c "import runctl"` minus the median of
`python -c "pass"`, over interleaved runs, plus `-X importtime`'s own figure for the
package.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 40


def _wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - started) * 1000


def _importtime_ms(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True, text=True, check=True,
    ).stderr
    for line in reversed(out.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    raise RuntimeError(f"{module} not in -X importtime output")


def measure(runs: int = RUNS) -> dict[str, float]:
    bare, with_runctl = [], []
    for _ in range(runs):
        bare.append(_wall("pass"))
        with_runctl.append(_wall("import runctl"))
    client = [_wall("import runctl; runctl.Client") for _ in range(max(5, runs // 4))]
    return {
        "bare_ms": statistics.median(bare),
        "import_ms": statistics.median(with_runctl),
        "added_ms": statistics.median(with_runctl) - statistics.median(bare),
        "importtime_ms": statistics.median(_importtime_ms("runctl") for _ in range(10)),
        "client_added_ms": statistics.median(client) - statistics.median(bare),
        "runs": runs,
    }


def markdown(result: dict[str, float]) -> str:
    return "\n".join(
        [
            "## `import runctl`",
            "",
            "Target: `import runctl` adds under 50 ms to a bare interpreter's start-up.",
            "",
            "| measure | ms |",
            "|---|---|",
            f"| bare `python -c pass` (median of {result['runs']:.0f}) | {result['bare_ms']:.1f} |",
            f"| `python -c 'import runctl'` | {result['import_ms']:.1f} |",
            f"| **added by `import runctl`** | **{result['added_ms']:.1f}** |",
            f"| `-X importtime` cumulative for `runctl` | {result['importtime_ms']:.2f} |",
            f"| added by `import runctl; runctl.Client` (loads anyio, httpx, attrs, cattrs) | "
            f"{result['client_added_ms']:.1f} |",
            "",
            "For comparison, measured on these machines by the issue author: SkyPilot's `import sky` "
            "adds 1,793 ms, `import dstack.api` 837 ms, `import gpuhunt` 110 ms.",
            "",
        ]
    )


if __name__ == "__main__":
    print(markdown(measure()))
